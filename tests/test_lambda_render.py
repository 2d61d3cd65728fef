"""The lambda_cloud pieces that need no machine: spec problems, instance type choice, error
mapping, the client's pacing against the fake's enforced limits, the fake's own spec checks, and
the node's on-exit hook run by a real `sh` with hostile values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from fakes.lambda_fake import INSTANCE_TYPES, LambdaFake

from backends.lambda_cloud import instances as inst
from backends.lambda_cloud.api import LambdaAPI, api_error
from launcher.errors import EXIT_UNREACHABLE, BackendError, BackendUnreachable, CapacityError, TransientBackendError

KEY = "k-123"


@pytest.fixture(scope="module")
def fake():
    with LambdaFake(api_key=KEY) as server:
        yield server


@pytest.fixture
def clean(fake):
    fake.reset()
    fake.request_interval_s = fake.launch_interval_s = 0.0
    yield fake
    fake.terminate_all()


def _types(fake) -> dict:
    return LambdaAPI(KEY, fake.base_url, request_interval_s=0).instance_types()


def test_instance_type_is_matched_on_gpu_model_memory_and_count(clean):
    types = _types(clean)
    pick = lambda acc, n, **kw: sorted(k for k, v in types.items() if inst.fits(v, acc, n, **kw))  # noqa: E731
    assert pick("A10", 1) == ["gpu_1x_a10"]  # never the A100s
    assert pick("A100-80GB", 8) == ["gpu_8x_a100_80gb_sxm4"] and pick("A100-40GB", 1) == ["gpu_1x_a100_sxm4"]
    assert pick("H100", 1) == ["gpu_1x_h100_pcie", "gpu_1x_h100_sxm5"] and pick("H100", 2) == []
    assert pick("H100", 8, min_vcpus=300) == [] and pick("H100", 8, min_memory_gib=1000) == ["gpu_8x_h100_sxm5"]


def test_regions_in_preference_order_cheapest_type_first(clean):
    clean.capacity = {"gpu_1x_h100_pcie": ["us-west-1"], "gpu_1x_h100_sxm5": ["us-east-1", "us-west-1"]}
    types = _types(clean)
    names = ["gpu_1x_h100_sxm5", "gpu_1x_h100_pcie"]
    assert inst.choices(types, names, ["us-east-1", "us-west-1", "us-south-1"]) == [
        ("us-east-1", "gpu_1x_h100_sxm5"), ("us-west-1", "gpu_1x_h100_pcie"), ("us-west-1", "gpu_1x_h100_sxm5")]
    assert inst.choices(types, names, [])[0] == ("us-west-1", "gpu_1x_h100_pcie")  # any region: cheapest first


@pytest.mark.parametrize(("status", "code", "kind", "words"), [
    (401, "global/invalid-api-key", BackendUnreachable, "LAMBDA_API_KEY"),
    (400, "global/quota-exceeded", CapacityError, "quota"),
    (400, "instance-operations/launch/insufficient-capacity", CapacityError, "capacity"),
    (400, "instance-operations/launch/file-system-in-wrong-region", BackendError, "own region"),
    (503, "global/internal-error", TransientBackendError, "busy or failing"),
    (400, "provider/some-new-thing", BackendError, "provider/some-new-thing"),
])
def test_error_envelopes_become_one_clear_error(status, code, kind, words):
    error = api_error(status, {"error": {"code": code, "message": "msg", "suggestion": "do this"}})
    assert type(error) is kind or isinstance(error, kind)
    assert words in str(error)
    if code == "global/invalid-api-key":
        assert error.exit_code == EXIT_UNREACHABLE
    if kind is BackendError and code.startswith("provider/"):
        assert "do this" in str(error)


def test_client_keeps_to_the_enforced_intervals(clean):
    clean.request_interval_s = 0.2
    api = LambdaAPI(KEY, clean.base_url, request_interval_s=0.2)
    started = time.monotonic()
    for _ in range(3):
        api.instances()
    assert clean.throttled == 0 and time.monotonic() - started >= 0.4


def test_a_429_is_waited_out_for_its_retry_after_by_the_one_retry_layer(clean):
    """The client retries nothing itself: the 429 carries Lambda's Retry-After to the policy the runner
    wraps every backend call in, which waits that long (not its own shorter backoff) and asks again."""
    from launcher.retry import DEFAULT

    clean.request_interval_s = 0.5
    api = LambdaAPI(KEY, clean.base_url, request_interval_s=0.0)
    api.instances()
    started = time.monotonic()
    assert DEFAULT.call(api.instances, "listing") == [] and clean.throttled == 1  # refused once, then served
    assert time.monotonic() - started >= 1  # the fake's Retry-After (whole seconds), past the policy's first wait
    assert api_error(429, {}, retry_after=3.0).retry_after == 3.0


def test_the_client_sends_a_failing_request_once(clean):
    """No retry loop inside the client (the runner's policy is the one layer): a 503 is raised after one
    request, though the API would have answered the third."""
    clean.fail_next(r"/instance-types$", 503, times=2)
    api = LambdaAPI(KEY, clean.base_url, request_interval_s=0.0)
    with pytest.raises(TransientBackendError):
        api.instance_types()
    assert [(method, path.rsplit("/", 1)[-1]) for method, path, _, _ in clean.calls] == [("GET", "instance-types")]


def test_launches_are_spaced_by_the_launch_interval(clean):
    clean.launch_interval_s = 0.4
    api = LambdaAPI(KEY, clean.base_url, request_interval_s=0.0, launch_interval_s=0.4)
    body = {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["k"]}
    started = time.monotonic()
    ids = api.launch(body) + api.launch(body)
    assert len(ids) == 2 and clean.throttled == 0 and time.monotonic() - started >= 0.4


def test_the_fake_rejects_what_the_spec_rejects(clean):
    import requests

    headers = {"Authorization": f"Bearer {KEY}"}
    missing_key = requests.post(clean.base_url + "/instance-operations/launch", headers=headers, timeout=10,
                                json={"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10"})
    assert missing_key.status_code == 400 and missing_key.json()["error"]["code"] == "global/invalid-parameters"
    bad_tag = requests.post(clean.base_url + "/instance-operations/launch", headers=headers, timeout=10,
                            json={"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
                                  "ssh_key_names": ["k"], "tags": [{"key": "Bad_Key", "value": "v"}]})
    assert bad_tag.status_code == 400
    assert any("ssh_key_names" in v for v in clean.violations) and any("Bad_Key" in v for v in clean.violations)
    assert clean.instances == {}
    clean.violations.clear()
    # and what it sends matches the spec's response schemas (checked on every answer)
    assert clean.spec.schema("InstanceType", _types(clean)["gpu_1x_a10"]["instance_type"]) == []
    assert set(INSTANCE_TYPES) == set(_types(clean))


def test_on_exit_hook_keeps_hostile_values_literal(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"'; touch {marker}; '$(touch {marker})`touch {marker}`\"\n"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "curl-args"
    (bin_dir / "curl").write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\" >> {seen}; done\n"
                                  f"printf '\\n\\0' >> {seen}\n")
    (bin_dir / "curl").chmod(0o755)
    instances = [{"id": f"id0{evil}", "rank": 0, "name": "job-n0"}, {"id": "id1", "rank": 1, "name": "job-n1"}]
    hook = tmp_path / "on_exit.sh"
    hook.write_text(inst.on_exit_hook(f"http://127.0.0.1:1/api/v1?{evil}", instances, 0, 0))
    (tmp_path / "lambda.key").write_text(inst.curl_config("abc"))
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "LAUNCH_NODE_RANK": "0"}
    subprocess.run(["sh", str(hook), "3"], env=env, check=True, timeout=30, capture_output=True)
    assert not marker.exists()
    calls = [c.split("\0")[:-1] for c in seen.read_text().split("\n\0") if c]
    rename, terminate = calls
    assert rename[-1].startswith(f"http://127.0.0.1:1/api/v1?{evil}/instances/id0%27")
    assert json.loads(rename[rename.index("-d") + 1]) == {"name": "job-n0-exit3"}
    # a failed node gives back every instance of the job (its peers would wait for it)
    assert json.loads(terminate[terminate.index("-d") + 1]) == {"instance_ids": [f"id0{evil}", "id1"]}
    assert "abc" not in " ".join(rename + terminate)  # the key is read from the 0600 file, not argv
    seen.unlink()
    subprocess.run(["sh", str(hook), "0; touch x"], env=env, check=True, timeout=30, capture_output=True)
    rename, terminate = [c.split("\0")[:-1] for c in seen.read_text().split("\n\0") if c]
    assert json.loads(rename[rename.index("-d") + 1]) == {"name": "job-n0-exitx"}  # not a number: no code


def test_missing_ssh_key_name_is_a_spec_error_with_its_line(cli, write_spec):
    spec = write_spec("name: nokey\nrun: echo hi\nresources:\n  accelerators: H100:8\nbackends:\n"
                      "  lambda_cloud:\n    regions: [us-east-1]\n")
    result = cli("run", str(spec), "--backend", "lambda_cloud", "--dry-run")
    assert result.returncode == 2 and "backends.lambda_cloud.ssh_key_name" in result.stderr
    cpu = write_spec("name: cpu\nrun: echo hi\nbackends:\n  lambda_cloud:\n    ssh_key_name: k\n", "cpu.yaml")
    result = cli("run", str(cpu), "--backend", "lambda_cloud", "--dry-run")
    assert result.returncode == 2 and "resources.accelerators" in result.stderr and "rents GPU" in result.stderr
    # the same spec with a GPU renders without any API key (a dry run calls nothing)
    gpu = write_spec("name: gpu\nrun: echo hi\nresources:\n  accelerators: A10\nbackends:\n  lambda_cloud:\n"
                     "    ssh_key_name: k\n", "gpu.yaml")
    result = cli("run", str(gpu), "--backend", "lambda_cloud", "--dry-run",
                 env={"LAMBDA_API_KEY": "", "PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "backends.lambda_cloud.api" in imported and "requests" not in imported  # no HTTP library for a dry run


def test_backend_module_imports_no_http_library():
    code = ("import sys; from backends.lambda_cloud import LambdaCloudBackend; "
            "assert 'requests' not in sys.modules and 'urllib3' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   env={k: v for k, v in os.environ.items() if k != "LAMBDA_API_KEY"})
