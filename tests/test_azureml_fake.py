"""The azureml backend against the HTTPS fake of ARM + run history (tests/fakes/azureml_fake.py),
through the real azure-ai-ml MLClient: what the SDK puts on the wire is what render showed,
submits are idempotent, bad workspaces/computes/credentials fail cleanly, logs are read
incrementally per node, cancel is repeat-safe and list/find see our tags."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
import requests
from fakes.azureml_fake import AzureMLFake, StaticToken, UncheckedModel, check_model

from backends.azureml import AzureMLBackend
from launcher.backend import JobState
from launcher.bundle import pack
from launcher.errors import BackendError, BackendUnreachable, TransientBackendError
from launcher.spec import parse_spec

JOB = "demo-20260101-000000-abcdef"
SDK_PROPERTIES = ("mlflow.source.git.", "azureml.git.")  # what the SDK adds about the submitter's git checkout


@pytest.fixture(scope="module")
def server():
    with AzureMLFake() as fake:
        yield fake


@pytest.fixture
def azure(server, monkeypatch, tmp_path):
    server.reset()
    server.add_compute("gpu-cluster")
    for name, value in server.client_env("token-from-env").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "AzureCloud")  # the SDK sets it process-wide: restored after
    monkeypatch.chdir(tmp_path)
    return server


def backend(fake: AzureMLFake, **settings) -> AzureMLBackend:
    return AzureMLBackend({"subscription_id": fake.subscription, "resource_group": fake.resource_group,
                           "workspace_name": fake.workspace, "endpoint": fake.url, **settings})


def spec_of(text: str, base: Path):
    return parse_spec(text, "spec.yaml", base_dir=base)


MULTI = ("name: demo\nimage: img:1\ncode: ./src\nsetup: pip list\nrun: python train.py\nenv: {A: '1'}\n"
         "secrets: [API_KEY]\nresources:\n  accelerators: H100:8\n  nodes: 2\ndistributed: torchrun\n"
         "spot: true\nmax_runtime: 90061\n")


def submitted(fake, tmp_path, text=MULTI, key="ci-42", **settings):
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    spec = spec_of(text, tmp_path)
    bundle = pack(tmp_path / "src", tmp_path / "bundles")[0] if spec.code else None
    b = backend(fake, **settings)
    request = b.render(spec, JOB, bundle, {"API_KEY": "k-123"}, idempotency_key=key)
    return b, request, b.submit(request)


def _diff(rendered, sent, path=""):
    out = []
    if isinstance(rendered, dict) and isinstance(sent, dict):
        for key in sorted(set(rendered) | set(sent)):
            if key not in sent or key not in rendered:
                out.append(path + key)
            else:
                out.extend(_diff(rendered[key], sent[key], path + key + "."))
    elif rendered != sent:
        out.append(path.rstrip("."))
    return out


def test_the_sdk_sends_the_rendered_body_field_for_field(azure, tmp_path):
    _, request, handle = submitted(azure, tmp_path)
    (sent,) = azure.job_puts
    git = {k for k in sent["properties"]["properties"] if k.startswith(SDK_PROPERTIES)}
    sent = json.loads(json.dumps(sent))
    for key in git:
        del sent["properties"]["properties"][key]
    assert _diff(request.payload, sent) == ["properties.codeId", "properties.environmentId"]
    props = azure.job_puts[0]["properties"]
    # the ids the SDK filled in are what it registered here: the image, and a code dir holding our files
    (env,) = azure.environment_puts
    assert env["properties"]["image"] == "img:1" and props["environmentId"].endswith(
        "/versions/" + props["environmentId"].rsplit("/", 1)[1])
    # the code asset holds the bundle and nothing else; the job's own files are written by its command
    uploaded = {name.rsplit("/", 1)[1]: data for name, data in azure.blobs.items() if "#" not in name}
    (bundle_name,) = uploaded
    with tarfile.open(fileobj=io.BytesIO(uploaded[bundle_name])) as tar:
        assert "train.py" in [m.name.removeprefix("./") for m in tar.getmembers()]
    assert props["environmentVariables"]["LAUNCH_BUNDLE"] == bundle_name and bundle_name.endswith(".tar.gz")
    (code,) = azure.code_puts
    assert props["codeId"].endswith("/versions/1") and code["properties"]["isAnonymous"] is True
    assert " > .launch-job/run.sh && " in props["command"] and " > .launch-job/setup.sh && " in props["command"]
    assert props["environmentVariables"]["API_KEY"] == "k-123"  # real secrets reach the job, not the store
    assert handle.data["workspace_name"] == azure.workspace and handle.data["nodes"] == 2
    assert "ml.azure.com/runs/" + JOB in handle.data["url"]
    assert set(azure.tokens) == {"token-from-env"}


def test_a_retried_submit_adopts_the_job_instead_of_creating_another(azure, tmp_path):
    # the first PUT is stored but its answer lost (503): azure-core retries the same PUT, our name makes it land
    # on the same job; a later submit of the same request (the runner's retry, another process) finds and adopts it
    azure.fail_next(r"/jobs/" + JOB + "$", 503, method="PUT", after=True)
    b, request, handle = submitted(azure, tmp_path)
    assert list(azure.jobs) == [JOB] and len(azure.job_puts) == 2 and handle.job_id == JOB
    assert azure.job_puts[0] == azure.job_puts[1]
    again = b.submit(request)
    assert len(azure.job_puts) == 2 and again.data == handle.data


def test_a_service_that_stays_down_is_a_transient_error(azure, tmp_path):
    azure.fail_next(r"/computes/", 503, times=10)
    with pytest.raises(TransientBackendError):
        submitted(azure, tmp_path, compute="gpu-cluster")
    assert azure.jobs == {}


def test_a_compute_the_workspace_lacks_is_refused_before_anything_is_sent(azure, tmp_path):
    with pytest.raises(BackendError) as err:
        submitted(azure, tmp_path, compute="no-such-cluster")
    assert "no-such-cluster" in err.value.message and "az ml compute list" in err.value.hint
    assert azure.job_puts == [] and azure.code_puts == [] and azure.environment_puts == []


def test_a_named_cluster_is_used_as_is(azure, tmp_path):
    submitted(azure, tmp_path, compute="gpu-cluster")
    props = azure.job_puts[0]["properties"]
    assert props["computeId"].endswith("/computes/gpu-cluster") and "instanceType" not in props["resources"]


@pytest.mark.parametrize("flag,status", [("fail_auth", 401), ("deny", 403)])
def test_rejected_credentials_are_one_clear_error_with_exit_4(azure, tmp_path, flag, status):
    setattr(azure, flag, True)
    with pytest.raises(BackendUnreachable) as err:
        submitted(azure, tmp_path)
    assert err.value.exit_code == 4
    assert ("401" in err.value.message) if status == 401 else ("denied" in err.value.message)
    assert azure.jobs == {}


def test_no_credential_at_all_is_exit_4_naming_az_login(azure, tmp_path, monkeypatch):
    monkeypatch.delenv("LAUNCH_AZURE_ACCESS_TOKEN")
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME", "IDENTITY_ENDPOINT",
                 "MSI_ENDPOINT", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "no-az"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no az, pwsh or azd to ask
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")  # skip the managed-identity probe of 169.254.169.254
    b = backend(azure)
    spec = spec_of("name: demo\nimage: img:1\nrun: echo hi\n", tmp_path)
    with pytest.raises(BackendUnreachable) as err:
        b.submit(b.render(spec, JOB, None, {}))
    assert "az login" in err.value.hint and azure.jobs == {}


def test_status_follows_the_service_and_explains_failures(azure, tmp_path):
    b, _, handle = submitted(azure, tmp_path)
    assert b.status(handle).state is JobState.PENDING
    azure.set_status(JOB, "Queued")
    status = b.status(handle)
    assert status.state is JobState.PENDING and status.raw_state == "Queued" and "quota" in status.message
    azure.set_status(JOB, "Running")
    assert b.status(handle).state is JobState.RUNNING
    azure.set_status(JOB, "Failed", error="Execution failed. User process 'sh' exited with status code 3.")
    status = b.status(handle)
    assert status.state is JobState.FAILED and "status code 3" in status.message
    azure.set_status(JOB, "Brand-new-state")
    status = b.status(handle)
    assert status.state is JobState.UNKNOWN and status.raw_state == "Brand-new-state"
    azure.jobs.clear()
    assert b.status(handle).state is JobState.UNKNOWN


def test_logs_per_node_incremental_with_partial_lines_held_back(azure, tmp_path):
    b, _, handle = submitted(azure, tmp_path)
    assert list(b.logs(handle)) == []
    azure.set_status(JOB, "Running")
    azure.add_log(JOB, "n0 a\nn0 b\nn0 par", node=0)
    azure.add_log(JOB, "n1 a\n", node=1)
    first = list(b.logs(handle))
    assert [(line.node, line.text) for line in first] == [(0, "n0 a\nn0 b"), (1, "n1 a")]
    cursor = first[-1].cursor
    azure.add_log(JOB, "tial\nn0 c\n", node=0)
    second = list(b.logs(handle, since=cursor))
    assert [(line.node, line.text) for line in second] == [(0, "n0 partial\nn0 c")]
    assert list(b.logs(handle, since=second[-1].cursor)) == []
    assert [line.text for line in b.logs(handle, node=1)] == ["n1 a"]
    azure.add_log(JOB, "no newline at the end", node=1)
    assert list(b.logs(handle, since=second[-1].cursor)) == []
    azure.set_status(JOB, "Completed")  # ended: the last partial line is shown
    assert [line.text for line in b.logs(handle, since=json.loads(json.dumps(second[-1].cursor)))] == [
        "no newline at the end"]


def test_logs_fall_back_to_the_driver_logs_of_older_runtimes(azure, tmp_path):
    b, _, handle = submitted(azure, tmp_path, text="name: demo\nimage: img:1\nrun: echo hi\n")
    azure.add_log(JOB, "driver says hi\n", path="azureml-logs/70_driver_log.txt")
    assert [line.text for line in b.logs(handle)] == ["driver says hi"]


def test_cancel_is_repeat_safe_and_leaves_ended_jobs_alone(azure, tmp_path):
    b, _, handle = submitted(azure, tmp_path)
    azure.set_status(JOB, "Running")
    b.cancel(handle)
    assert b.status(handle).state is JobState.CANCELLING
    b.cancel(handle)
    azure.set_status(JOB, "Canceled")
    b.cancel(handle)
    assert b.status(handle).state is JobState.CANCELLED
    cancels = [p for m, p in azure.requests if m == "POST" and p.endswith("/cancel")]
    assert len(cancels) == 2
    azure.jobs.clear()
    b.cancel(handle)  # vanished: nothing to do


def test_list_and_find_see_only_our_tagged_jobs_across_pages(azure, tmp_path):
    b = backend(azure)
    for i in range(3):
        spec = spec_of(f"name: job{i}\nimage: img:1\nrun: echo {i}\n", tmp_path)
        b.submit(b.render(spec, f"job{i}-20260101-000000-00000{i}", None, {}, idempotency_key=f"key-{i}"))
    other = json.loads(json.dumps(azure.jobs["job0-20260101-000000-000000"]))
    other["name"], other["properties"]["tags"] = "not-ours", {"team": "x"}  # someone else's job in the workspace
    azure.jobs["not-ours"] = other
    listed = sorted(s.handle.job_id for s in b.list())
    assert listed == [f"job{i}-20260101-000000-00000{i}" for i in range(3)]
    found = b.find("key-1")
    assert found is not None and found.handle.job_id == "job1-20260101-000000-000001" and found.name == "job1"
    assert found.status.state is JobState.PENDING and found.idempotency_key == "key-1"
    assert b.find("key-unknown") is None
    pages = [p for m, p in azure.requests if m == "GET" and p.endswith("/jobs")]
    assert len(pages) >= 2  # three jobs at two a page: the nextLink was followed


def test_the_fake_rejects_bodies_the_sdk_models_would_not_produce(azure):
    url = f"{azure.url.rstrip('/')}{azure.workspace_id()}/jobs/bad?api-version=2025-01-01-preview"
    body = {"properties": {"jobType": "Command", "command": "x", "environmentId": "azureml:e:1",
                           "resources": {"instanceCount": "two", "gpus": 8}, "typo": 1,
                           "limits": {"jobLimitsType": "Command", "timeout": 3600}}}
    answer = requests.put(url, json=body, headers={"Authorization": "Bearer t"}, timeout=10,
                          verify=str(azure.ca_file))
    assert answer.status_code == 400
    text = answer.json()["error"]["message"]
    assert "properties.typo: unknown field" in text and "resources.gpus: unknown field" in text
    assert "resources.instanceCount: expected a number" in text and azure.jobs == {}
    assert "limits.timeout: not an ISO 8601 timedelta" in text  # a duration is ISO text ("PT1H"), as the SDK writes


def _sdk_models() -> dict[str, type]:
    """Models of the SDK's own kind, in its package: one whose hint does not resolve, one whose field
    has a type the checker has no rule for."""
    from azure.ai.ml._restclient.arm_ml_service._utils.model_base import Model, rest_field

    class Unresolvable(Model):
        value: _models.NoSuchModel | None = rest_field()  # noqa: F821 (the point: it does not resolve)

    class Unjudgeable(Model):
        value: bytes | None = rest_field()

    for model in (Unresolvable, Unjudgeable):
        model.__module__ = "azure.ai.ml._restclient.arm_ml_service.models._models"
    return {"unresolvable": Unresolvable, "unjudgeable": Unjudgeable}


@pytest.mark.parametrize("model, why", [("unresolvable", "cannot resolve the type hints of Unresolvable"),
                                        ("unjudgeable", "the checker has no rule for type <class 'bytes'>")])
def test_the_body_checker_fails_on_a_field_it_cannot_check_instead_of_passing_it(model, why):
    with pytest.raises(UncheckedModel) as raised:
        check_model({"value": "anything"}, _sdk_models()[model])
    assert why in str(raised.value)


def test_each_test_client_gets_its_own_cloud_and_a_bearer_token(azure):
    first, second = azure.ml_client(), azure.ml_client(token="other")
    assert first._cloud != second._cloud
    assert os.environ["AZUREML_CURRENT_CLOUD"] == second._cloud
    assert isinstance(first._credential, StaticToken)


@pytest.mark.parametrize("code", ["JobNodeCountExceedsCoreQuota", "QuotaExceeded"])
def test_a_quota_refusal_is_a_capacity_error_and_creates_nothing(azure, tmp_path, code):
    from launcher.errors import CapacityError

    azure.fail_next(r"/jobs/" + JOB + "$", 400, method="PUT", code=code, times=5)
    with pytest.raises(CapacityError) as err:  # the one error `--backend azureml,vertex` fails over on
        submitted(azure, tmp_path)
    assert "quota" in err.value.message.lower() and azure.jobs == {}


def test_a_connection_dropped_inside_an_sdk_asset_error_is_transient():
    """azure-ai-ml wraps a connection dropped during the code upload in its AssetException; the
    runner must retry it, not report a refusal (found by the reliability harness)."""
    from azure.ai.ml.exceptions import AssetException, ErrorCategory, ErrorTarget

    from backends.azureml.backend import _azure_error

    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as inner:
            raise AssetException(message=f"Error with code: ('Connection aborted.', {inner!r})",
                                 no_personal_data_message="upload failed", target=ErrorTarget.ASSET,
                                 error_category=ErrorCategory.SYSTEM_ERROR) from inner
    except AssetException as exc:
        assert isinstance(_azure_error(exc), TransientBackendError)

