"""The TI-ONE fake holds requests to tccli's api.json: an unknown member (at any depth), a value of the wrong
type, a required member left out, a request without a TC3 signature, each is refused in Tencent's error shape
and recorded, so a backend that sent one would fail its tests. Reached as the backend reaches it: the official
SDK over http (and raw HTTP for what the SDK itself would never send). Also the credential chain's order and
the backend's refusal to send a member the installed SDK would drop."""

from __future__ import annotations

import json
import urllib.request

import pytest
from fakes.tione_fake import ApiDefinition, TioneStack

from launcher.errors import BackendError, BackendUnreachable

BODY = {"Name": "fake-20260101-000000-abcdef", "ChargeType": "POSTPAID_BY_HOUR",
        "ResourceConfigInfos": [{"Role": "WORKER", "InstanceType": "TI.S.LARGE.POST", "InstanceNum": 1}],
        "ImageInfo": {"ImageType": "CUSTOM", "ImageUrl": "img:1"}, "StartCmdInfo": {"StartCmd": "echo hi"},
        "Tags": [{"TagKey": "launch-job-id", "TagValue": "fake-20260101-000000-abcdef"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with TioneStack(tmp_path_factory.mktemp("tione-fake")) as running:
        yield running


@pytest.fixture
def tione(stack):
    stack.reset()
    yield stack.tione
    stack.tione.stop_all()
    stack.tione.violations.clear()  # each test here makes them on purpose


def _client(tione):
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile
    from tencentcloud.tione.v20211111.tione_client import TioneClient

    profile = ClientProfile(httpProfile=HttpProfile(endpoint=tione.endpoint, protocol="http"))
    return TioneClient(Credential("AKIDx", "secret"), "ap-guangzhou", profile)


def _create(tione, body: dict):
    from tencentcloud.tione.v20211111 import models

    request = models.CreateTrainingTaskRequest()
    request._deserialize(body)  # as a request from an older or newer definition would arrive: unchecked
    return _client(tione).CreateTrainingTask(request)


def test_a_valid_request_is_answered_and_the_task_runs(tione):
    answer = _create(tione, BODY)
    assert answer.Id.startswith("train-") and tione.violations == []
    assert tione.wait_ended("fake-20260101-000000-abcdef")["Status"] == "SUCCEED"


@pytest.mark.parametrize(("change", "code", "named"), [
    (lambda b: b["ResourceConfigInfos"][0].update(InstanceNum=-1), "InvalidParameter", "InstanceNum"),
    (lambda b: b["ImageInfo"].pop("ImageUrl"), "MissingParameter", "ImageInfo.ImageUrl"),
    (lambda b: b.pop("ChargeType"), "MissingParameter", "ChargeType"),
    (lambda b: b["Tags"][0].update(TagValue=7), "InvalidParameter", "Tags.0.TagValue"),
])
def test_a_request_the_definition_refuses_is_answered_in_tencents_shape(tione, change, code, named):
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    body = json.loads(json.dumps(BODY))
    change(body)
    with pytest.raises(TencentCloudSDKException) as refused:
        _create(tione, body)
    assert refused.value.code == code and named in refused.value.message
    assert len(tione.violations) == 1 and not tione.tasks


def test_an_unknown_member_is_refused_even_where_the_sdk_would_drop_it():
    body = {**BODY, "ImageInfo": {**BODY["ImageInfo"], "Registry": "x"}, "Priority": 3}
    found = ApiDefinition().problems("CreateTrainingTaskRequest", body, "", inbound=True)
    assert sorted(p for _, p in found) == ["ImageInfo.Registry is not a member of ImageInfo",
                                           "Priority is not a member of CreateTrainingTaskRequest"]
    assert {c for c, _ in found} == {"UnknownParameter"}


def test_an_unsigned_request_is_refused(tione):
    request = urllib.request.Request(f"http://{tione.endpoint}/", data=json.dumps(BODY).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "X-TC-Action": "CreateTrainingTask",
                                              "X-TC-Version": "2021-11-11", "X-TC-Region": "ap-guangzhou",
                                              "X-TC-Timestamp": "1"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as answer:
        error = json.loads(answer.read())["Response"]["Error"]
    assert error["Code"] == "AuthFailure.SignatureFailure" and not tione.tasks and tione.violations


def test_the_backend_refuses_a_member_the_installed_sdk_would_drop(stack, tione):
    from backends.tione import TioneBackend

    backend = TioneBackend({"region": "ap-guangzhou", "cos_bucket": stack.BUCKET, "endpoint": tione.endpoint,
                            "protocol": "http"}, client=_client(tione))
    with pytest.raises(BackendError, match="Priority"):
        backend._call("CreateTrainingTask", {**BODY, "Priority": 3})
    assert tione.calls == []  # nothing was sent


def test_the_credential_chain_reads_tcclis_profile_and_says_what_to_set_without_one(tmp_path, monkeypatch):
    from backends.tione.client import credentials

    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TCCLI_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(BackendUnreachable) as missing:
        credentials()
    assert "TENCENTCLOUD_SECRET_ID" in missing.value.hint and "tccli configure" in missing.value.hint
    (tmp_path / ".tccli").mkdir()
    (tmp_path / ".tccli" / "team.credential").write_text(json.dumps({"secretId": "AKIDteam", "secretKey": "k"}))
    monkeypatch.setenv("TCCLI_PROFILE", "team")
    assert credentials().secret_id == "AKIDteam"
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDenv")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "k2")
    assert credentials().secret_id == "AKIDenv"  # the environment comes first
