"""The aihc backend end to end: the real CLI (subprocess) and bce-python-sdk's signed transport against the
local AIHC fake (tests/fakes/aihc_fake.py: bce-auth-v1, X-API-Version v2, every query and body checked
against the published definition), whose jobs really run here, reading their files from what the backend
uploaded to moto's S3 (BOS's S3-compatible API). What the conformance suite and the reliability harness
check for every backend (status without side effects, cancel repeat-safe, log cursors, exactly-once,
faults, secrets canary) is not repeated here."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from fakes.aihc_fake import AihcStack
from helpers import BucketBackendCli, job_script

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with AihcStack(tmp_path_factory.mktemp("aihc")) as running:
        yield running


@pytest.fixture
def aihc(stack, launch_home, cli, write_spec, tmp_path):
    """The fake, reset, with LAUNCH_HOME pointed at it; afterwards nothing the API definition rejects."""
    fake = stack.aihc
    fake.reset()
    helper = BucketBackendCli("aihc", stack, fake, stack.ACCESS_KEY, cli=cli, write_spec=write_spec,
                              launch_home=launch_home, tmp_path=tmp_path)
    yield helper
    helper.close()


def test_two_pods_run_a_torchrun_gloo_allreduce(aihc):
    """The PyTorch operator gives each pod MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK; the topology maps them to
    LAUNCH_* and torchrun rendezvouses on them (both pods on this machine: MASTER_ADDR=127.0.0.1)."""
    job_script("allreduce.py", Path(aihc.spec("run: x\n").parent) / "src")
    spec = aihc.spec("run: python allreduce.py\nresources:\n  nodes: 2\ndistributed: torchrun\n"
                     f"env:\n  PATH: {json.dumps(f'{VENV_BIN}:/usr/bin:/bin')}\n  GLOO_SOCKET_IFNAME: lo\n")
    result = aihc.run("run", str(spec), "--backend", "aihc", "--follow", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert re.search(rf"^\[node {rank}\] allreduce ok sum=3 rank={rank} node={rank} master=\S+$",
                         result.stdout, re.M), result.stdout
    (request,) = aihc.fake.created
    assert request["body"]["jobSpec"]["replicas"] == 2 and request["body"]["jobType"] == "PyTorchJob"
    assert request["query"] == {"action": "CreateJob", "resourcePoolId": "cce-test-pool", "queueID": "default"}


def test_a_failing_pod_fails_the_job_with_its_reason(aihc):
    job = aihc.submit(aihc.spec('run: echo before; [ "$LAUNCH_NODE_RANK" = 1 ] && exit 3; echo fine\n'
                                "resources:\n  nodes: 2\n"))
    aihc.fake.wait_ended(job)
    record = json.loads(aihc.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "FAILED", record
    assert "worker-0: exited with code 3" in record["message"], record
    logs = aihc.run("logs", job, check_rc=0).stdout
    assert "[node 0] fine" in logs and "[node 1] before" in logs


def test_cancel_stops_the_pods_and_is_repeat_safe(aihc, tmp_path):
    marker = tmp_path / "still-running"
    job = aihc.submit(aihc.spec(f"run: sleep 30; touch {marker}\n"))
    deadline = time.monotonic() + 30
    while aihc.fake.job_by_launch_id(job)["status"] != "Running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    aihc.run("cancel", job, check_rc=0)
    aihc.fake.wait_ended(job)
    assert json.loads(aihc.run("status", job, "-o", "json", check_rc=0).stdout)["state"] == "CANCELLED"
    aihc.run("cancel", job, check_rc=0)
    assert aihc.fake.calls.count("StopJob") == 1  # the second cancel saw the job had ended
    assert not marker.exists()


def test_logs_follow_merges_both_pods_to_the_end(aihc):
    job = aihc.submit(aihc.spec("run: for i in 1 2 3; do echo line-$i; sleep 0.2; done\nresources:\n  nodes: 2\n"))
    out = aihc.run("logs", job, "-f", timeout=60, check_rc=0).stdout
    for node in (0, 1):
        assert [line for line in out.splitlines() if line.startswith(f"[node {node}] line-")] == [
            f"[node {node}] line-{i}" for i in (1, 2, 3)], out


def test_long_logs_come_in_pages_and_none_is_lost(aihc):
    job = aihc.submit(aihc.spec("run: seq 1 450\n"))
    aihc.fake.wait_ended(job)
    out = aihc.run("logs", job, check_rc=0).stdout
    numbers = [line.removeprefix("[node 0] ") for line in out.splitlines()]
    assert [n for n in numbers if n.isdigit()] == [str(i) for i in range(1, 451)], out[-500:]


def test_list_sync_finds_the_job_from_another_machine(aihc, launch_home, tmp_path):
    job = aihc.submit(aihc.spec("run: python train.py\n"))
    aihc.fake.wait_ended(job)
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    (fresh / "config.toml").write_text((launch_home / "config.toml").read_text())
    listed = aihc.run("list", "--sync", "-o", "json", env={"LAUNCH_HOME": str(fresh)}, check_rc=0).stdout
    (found,) = [j for j in json.loads(listed) if j["id"] == job]
    assert found["backend"] == "aihc" and found["state"] == "SUCCEEDED"
    assert "hello from node 0" in aihc.run("logs", job, env={"LAUNCH_HOME": str(fresh)}, check_rc=0).stdout


def test_a_rerun_with_the_same_key_submits_nothing_new_and_bundles_go_up_once(aihc, launch_home):
    spec = aihc.spec("run: python train.py\n")
    first = aihc.submit(spec, "--idempotency-key", "nightly #7")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()  # a CI re-run on another machine: no local history, the job is found at AIHC by its label
    again = aihc.run("run", str(spec), "--backend", "aihc", "--idempotency-key", "nightly #7", check_rc=0).stdout
    assert first in again and "already exists" in again and len(aihc.fake.jobs) == 1
    bundles = {k for k in aihc.stack.objects() if "/bundles/" in k}
    third = aihc.submit(spec)  # a new job, same code: the same content-addressed bundle, no second one
    assert third != first and len(aihc.fake.jobs) == 2
    assert {k for k in aihc.stack.objects() if "/bundles/" in k} == bundles
    (mounted,) = {e["value"] for r in aihc.fake.created for e in r["body"]["jobSpec"]["envs"]
                  if e["name"] == "LAUNCH_BUNDLE"}
    assert mounted.rsplit("/", 1)[1] in {k.rsplit("/", 1)[1] for k in bundles}


def test_a_capacity_refusal_fails_over_to_the_next_backend(aihc):
    aihc.fake.fail_next_create("ResourceQuotaExceeded", 400)
    result = aihc.run("run", str(aihc.spec("run: python train.py\n")), "--backend", "aihc,local", "-o", "json",
                      check_rc=0)
    assert json.loads(result.stdout)["backend"] == "local"
    assert "aihc: no capacity" in result.stderr and not aihc.fake.jobs


def test_missing_credentials_exit_4_with_the_fix_and_nothing_created(aihc, launch_home):
    result = aihc.run("run", str(aihc.spec("run: python train.py\n")), "--backend", "aihc",
                      env={"BCE_ACCESS_KEY_ID": "", "BCE_SECRET_ACCESS_KEY": ""})
    assert result.returncode == 4, result.stderr
    assert "BCE_ACCESS_KEY_ID" in result.stderr and "Traceback" not in result.stderr
    assert not aihc.fake.jobs


def test_credentials_from_config_toml_work_and_never_reach_the_store(aihc, launch_home):
    config = launch_home / "config.toml"
    config.write_text(config.read_text() + 'access_key_id = "bce-test-access-key-id"\n'
                      'secret_access_key = "test-secret-access-key"\n')
    job = aihc.submit(aihc.spec("run: python train.py\n"), env={"BCE_ACCESS_KEY_ID": "", "BCE_SECRET_ACCESS_KEY": ""})
    assert aihc.fake.wait_ended(job)["status"] == "Succeeded"
    stored = b"".join(p.read_bytes() for p in launch_home.rglob("*") if p.is_file() and p != config)
    assert b"test-secret-access-key" not in stored
