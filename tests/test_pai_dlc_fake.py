"""The DLC fake holds requests to the API's definition: a body key the SDK's model does not have (at any
depth), a required field left out (main.tea), a request without the SDK's ACS3 signature, each is refused
and recorded, so a backend that sent one would fail its tests. Reached as the backend reaches it: the
official SDK over http (and raw HTTP for what the SDK itself would never send)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from fakes.pai_dlc_fake import TEA_PATH, DlcStack, required_fields

BODY = {"WorkspaceId": "ws-test", "DisplayName": "fake-20260101-000000-abcdef", "JobType": "PyTorchJob",
        "JobSpecs": [{"Type": "Worker", "Image": "img:1", "PodCount": 1, "EcsSpec": "ecs.gn7i-c8g1.2xlarge"}],
        "UserCommand": "echo hi", "Settings": {"Tags": {"launch-job-id": "fake-20260101-000000-abcdef"}}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with DlcStack(tmp_path_factory.mktemp("dlc-fake")) as running:
        yield running


@pytest.fixture
def dlc(stack):
    stack.dlc.reset()
    yield stack.dlc
    stack.dlc.violations.clear()  # each test here makes them on purpose


def _client(dlc):
    from alibabacloud_pai_dlc20201203.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(Config(access_key_id="ak", access_key_secret="sk", region_id="cn-hangzhou", endpoint=dlc.endpoint,
                         protocol="http"))


def _raw(dlc, body: dict, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://{dlc.endpoint}/api/v1/jobs", data=json.dumps(body).encode(),
                                     method="POST", headers={"content-type": "application/json", **headers})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


SIGNED = {"Authorization": "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=00",
          "x-acs-action": "CreateJob", "x-acs-version": "2020-12-03", "x-acs-content-sha256": "00",
          "x-acs-signature-nonce": "n"}


def test_required_fields_come_from_main_tea():
    assert required_fields("CreateJobRequest", TEA_PATH.read_text()) == {"DisplayName", "JobSpecs", "JobType",
                                                                         "UserCommand"}


def test_a_valid_create_through_the_sdk_is_accepted_and_runs(dlc):
    from alibabacloud_pai_dlc20201203 import models

    job_id = _client(dlc).create_job(models.CreateJobRequest().from_map(BODY)).body.job_id
    assert dlc.wait_ended(BODY["DisplayName"])["Status"] == "Succeeded"
    logs = _client(dlc).get_pod_logs(job_id, f"{job_id}-worker-0", models.GetPodLogsRequest()).body.logs
    assert logs == ["hi"] and dlc.violations == []


@pytest.mark.parametrize("change, problem", [
    (lambda b: b["JobSpecs"][0].update(Bogus=1), "JobSpecs.0.Bogus"),
    (lambda b: b.update(Tags={"a": "b"}), "Tags"),
    (lambda b: b.pop("UserCommand"), "required ['UserCommand'] missing"),
])
def test_a_body_the_definition_rejects_is_refused_and_recorded(dlc, change, problem):
    body = json.loads(json.dumps(BODY))
    change(body)
    status, answer = _raw(dlc, body, SIGNED)
    assert status == 400 and answer["Code"] == "InvalidParameter"
    assert any(problem in v for v in dlc.violations), dlc.violations
    assert not dlc.jobs


def test_an_unsigned_request_is_refused(dlc):
    headers = {k: v for k, v in SIGNED.items() if k != "Authorization"}
    status, _ = _raw(dlc, BODY, headers)
    assert status == 400 and "ACS3-HMAC-SHA256" in dlc.violations[0] and not dlc.jobs


def test_a_required_field_the_sdk_lets_through_is_refused(dlc):
    """The SDK's validate() checks no required field: the fake is where a missing one is caught."""
    from alibabacloud_pai_dlc20201203 import models
    from alibabacloud_tea_openapi.exceptions import ClientException

    body = {k: v for k, v in BODY.items() if k != "JobType"}
    with pytest.raises(ClientException) as refused:
        _client(dlc).create_job(models.CreateJobRequest().from_map(body))
    assert refused.value.code == "InvalidParameter" and "JobType" in dlc.violations[0]
