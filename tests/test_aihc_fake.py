"""The AIHC fake holds requests to the published definition (tests/vendor/bce-openapi-meta-aihc): a body
field the action does not have (at any depth), a required one left out, an explicit null, a request
without a bce-auth-v1 signature or the v2 version header, each is refused in Baidu's error shape and
recorded, so a backend that sent one would fail its tests. Reached as the backend reaches it: the SDK's
own transport, and the SDK's own JobClient.CreateJob, whose request the definition refuses (the reason
the backend builds its body itself)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from fakes.aihc_fake import ACCESS_KEY_ID, SECRET_ACCESS_KEY, AihcStack, check_request, now_iso

BODY = {"name": "fake-20260101-000000-abcdef", "queue": "default", "jobType": "PyTorchJob",
        "jobSpec": {"image": "img:1", "replicas": 1}, "command": "echo hi from the fake",
        "labels": [{"key": "launch-job-id", "value": "fake-20260101-000000-abcdef"}]}
QUERY = {"resourcePoolId": "cce-test-pool", "queueID": "default"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with AihcStack(tmp_path_factory.mktemp("aihc-fake")) as running:
        yield running


@pytest.fixture
def aihc(stack):
    stack.aihc.reset()
    yield stack.aihc
    stack.aihc.violations.clear()  # each test here makes them on purpose


def _config(aihc, key_id: str = ACCESS_KEY_ID, secret: str = SECRET_ACCESS_KEY):
    from backends.aihc.client import configuration

    return configuration({"endpoint": aihc.endpoint, "protocol": "http"}, (key_id, secret))


def test_a_body_the_definition_allows_creates_a_job_that_really_runs(aihc):
    from backends.aihc.client import call

    answer = call(_config(aihc), "CreateJob", QUERY, BODY)
    assert answer["jobId"].startswith("job-") and aihc.violations == []
    job = aihc.wait_ended("fake-20260101-000000-abcdef")
    assert job["status"] == "Succeeded"
    pod = f"{BODY['name']}-master-0"
    logs = call(_config(aihc), "DescribeJobLogs", QUERY, {"jobId": answer["jobId"], "podName": pod})
    assert logs["logs"] == ["hi from the fake"]


def test_the_sdks_own_create_job_is_refused_for_the_missing_queue_and_its_nulls(aihc):
    from baidubce.exception import BceHttpClientError
    from baidubce.services.aihc.aihc_client import AihcClient

    client = AihcClient(_config(aihc))
    with pytest.raises(BceHttpClientError) as refused:  # the SDK wraps the server's refusal
        client.CreateJob(resourcePoolId="cce-test-pool", queueID="default", name="sdk-job", command="echo",
                         jobSpec={"image": "img:1", "replicas": 1})
    assert refused.value.last_error.code == "InvalidParameter"
    (violation,) = aihc.violations
    assert "CreateJob.queue: required, missing" in violation
    assert "CreateJob.enableBccl: explicit null" in violation and "CreateJob.faultTolerance: explicit null" in violation
    assert not aihc.jobs


@pytest.mark.parametrize(("change", "expected"), [
    (lambda b: b.update(workspace="x"), "CreateJob.workspace: not in the definition"),
    (lambda b: b["jobSpec"].update(gpus=8), "CreateJob.jobSpec.gpus: not in the definition"),
    (lambda b: b.pop("command"), "CreateJob.command: required, missing"),
    (lambda b: b["jobSpec"].pop("image"), "CreateJob.jobSpec.image: required, missing"),  # i18n: "Yes"
    (lambda b: b["labels"][0].pop("value"), "CreateJob.labels.value: required, missing"),
    (lambda b: b.update(priority=None), "CreateJob.priority: explicit null"),
    (lambda b: b["jobSpec"].update(replicas="2"), "CreateJob.jobSpec.replicas: str where the definition says Integer"),
])
def test_each_kind_of_violation_is_named(change, expected):
    body = json.loads(json.dumps(BODY))
    change(body)
    assert any(p.startswith(expected) for p in check_request("CreateJob", QUERY, body))


def test_an_unsigned_request_or_a_foreign_key_or_no_version_is_refused(aihc):
    def raw(headers: dict) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://{aihc.endpoint}/?action=DescribeJobs&resourcePoolId=cce-test-pool",
                                         data=b"{}", method="POST", headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as refused:
            return refused.code, json.loads(refused.read())

    status, body = raw({"X-API-Version": "v2"})
    assert (status, body["code"]) == (400, "InvalidHTTPAuthHeader") and set(body) == {"requestId", "code", "message"}
    signed = f"bce-auth-v1/{ACCESS_KEY_ID}/2026-01-01T00:00:00Z/1800/host/abc"
    assert raw({"Authorization": signed})[1]["code"] == "InvalidVersion"
    assert raw({"Authorization": signed.replace(ACCESS_KEY_ID, "someone-else"), "X-API-Version": "v2"})[0] == 403
    assert raw({"Authorization": signed, "X-API-Version": "v2"})[1]["code"] == "SignatureDoesNotMatch"


def test_a_request_signed_with_the_wrong_secret_is_refused_and_the_right_one_passes(aihc):
    """The fake checks the signature by BCE's documented algorithm, computed on its own from the request as it
    arrived: the SDK's signing of our query and body is what is tested, not assumed."""
    from backends.aihc.client import aihc_errors, call
    from launcher.errors import LaunchError

    answer = call(_config(aihc), "DescribeJobs", {"resourcePoolId": "cce-test-pool"}, {"queue": "default"})
    assert (answer["totalCount"], answer["jobs"], aihc.violations) == (0, [], [])
    with pytest.raises(LaunchError) as refused, aihc_errors():
        call(_config(aihc, secret="not-the-secret"), "DescribeJobs", {"resourcePoolId": "cce-test-pool"}, {})
    assert "SignatureDoesNotMatch" in refused.value.message and refused.value.exit_code == 4
    assert aihc.violations and "signature" in aihc.violations[-1]


def test_find_reads_labels_through_describe_jobs_within_the_idempotency_window(aihc, monkeypatch):
    """DescribeJobs has no label filter: find reads the queue's jobs (newest first) for the key's digest label,
    and stops at jobs older than the idempotency window."""
    from backends.aihc import AihcBackend
    from backends.aihc.client import call
    from backends.aihc.render import idempotency_label

    body = json.loads(json.dumps(BODY))
    body["labels"].append({"key": "launch-idempotency-key", "value": idempotency_label("nightly #7")})
    job_id = call(_config(aihc), "CreateJob", QUERY, body)["jobId"]
    for key, value in AihcStack.ACCESS_KEY.items():
        monkeypatch.setenv(key, value)
    backend = AihcBackend({"endpoint": aihc.endpoint, "protocol": "http", "resource_pool_id": "cce-test-pool",
                           "queue": "default", "bos_bucket": "team-bucket"})
    found = backend.find("nightly #7")
    assert found is not None and found.handle.data["aihc_job_id"] == job_id
    assert found.handle.job_id == BODY["name"] and found.idempotency_key == "nightly #7"
    assert backend.find("nightly #8") is None
    aihc.jobs[job_id]["createdAt"] = now_iso(time.time() - 30 * 86400)  # older than the window
    assert backend.find("nightly #7") is None
