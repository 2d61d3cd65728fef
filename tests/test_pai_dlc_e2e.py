"""The pai_dlc backend end to end: the real CLI (subprocess) and the official Alibaba Cloud SDK against
the local DLC fake (tests/fakes/pai_dlc_fake.py: ACS3 signature and every body's keys checked against the
SDK's models, required fields from main.tea), whose jobs really run here, reading their files from what
the backend uploaded to moto's S3 (OSS's S3-compatible API). What the conformance suite and the
reliability harness check for every backend (status without side effects, cancel repeat-safe, log
cursors, exactly-once, faults, secrets canary) is not repeated here."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from fakes.pai_dlc_fake import DlcStack
from helpers import BucketBackendCli, job_script

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with DlcStack(tmp_path_factory.mktemp("dlc")) as running:
        yield running


@pytest.fixture
def dlc(stack, launch_home, cli, write_spec, tmp_path):
    """The fake, reset, with LAUNCH_HOME pointed at it; afterwards nothing the API definition rejects."""
    fake = stack.dlc
    fake.reset()
    helper = BucketBackendCli("pai_dlc", stack, fake, stack.ACCESS_KEY, cli=cli, write_spec=write_spec,
                              launch_home=launch_home, tmp_path=tmp_path)
    yield helper
    helper.close()


def test_two_pods_run_a_torchrun_gloo_allreduce(dlc):
    """DLC injects MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK into each pod; the topology maps them to LAUNCH_*
    and torchrun rendezvouses on them (both pods on this machine: MASTER_ADDR=127.0.0.1)."""
    job_script("allreduce.py", Path(dlc.spec("run: x\n").parent) / "src")
    spec = dlc.spec("run: python allreduce.py\nresources:\n  nodes: 2\ndistributed: torchrun\n"
                    f"env:\n  PATH: {json.dumps(f'{VENV_BIN}:/usr/bin:/bin')}\n  GLOO_SOCKET_IFNAME: lo\n")
    result = dlc.run("run", str(spec), "--backend", "pai_dlc", "--follow", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert re.search(rf"^\[node {rank}\] allreduce ok sum=3 rank={rank} node={rank} master=\S+$",
                         result.stdout, re.M), result.stdout
    (body,) = dlc.fake.created_bodies
    assert body["JobSpecs"][0]["PodCount"] == 2 and body["JobType"] == "PyTorchJob"


def test_a_failing_pod_fails_the_job_with_dlc_reason(dlc):
    job = dlc.submit(dlc.spec('run: echo before; [ "$LAUNCH_NODE_RANK" = 1 ] && exit 3; echo fine\n'
                              "resources:\n  nodes: 2\n"))
    dlc.fake.wait_ended(job)
    record = json.loads(dlc.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "FAILED", record
    assert "worker-1 exited with code 3" in record["message"], record
    logs = dlc.run("logs", job, check_rc=0).stdout
    assert "[node 0] fine" in logs and "[node 1] before" in logs


def test_cancel_stops_the_pods_and_is_repeat_safe(dlc, tmp_path):
    marker = tmp_path / "still-running"
    job = dlc.submit(dlc.spec(f"run: sleep 30; touch {marker}\n"))
    deadline = time.monotonic() + 30
    while dlc.fake.job_by_name(job)["Status"] != "Running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    dlc.run("cancel", job, check_rc=0)
    dlc.fake.wait_ended(job)
    assert json.loads(dlc.run("status", job, "-o", "json", check_rc=0).stdout)["state"] == "CANCELLED"
    dlc.run("cancel", job, check_rc=0)
    stops = [path for method, path in dlc.fake.calls if path.endswith("/stop")]
    assert len(stops) == 1  # the second cancel saw the job had ended
    assert not marker.exists()


def test_logs_follow_merges_both_pods_to_the_end(dlc):
    job = dlc.submit(dlc.spec("run: for i in 1 2 3; do echo line-$i; sleep 0.2; done\nresources:\n  nodes: 2\n"))
    out = dlc.run("logs", job, "-f", timeout=60, check_rc=0).stdout
    for node in (0, 1):
        assert [line for line in out.splitlines() if line.startswith(f"[node {node}] line-")] == [
            f"[node {node}] line-{i}" for i in (1, 2, 3)], out


def test_list_sync_finds_the_job_from_another_machine(dlc, launch_home, tmp_path):
    job = dlc.submit(dlc.spec("run: python train.py\n"))
    dlc.fake.wait_ended(job)
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    (fresh / "config.toml").write_text((launch_home / "config.toml").read_text())
    listed = dlc.run("list", "--sync", "-o", "json", env={"LAUNCH_HOME": str(fresh)}, check_rc=0).stdout
    (found,) = [j for j in json.loads(listed) if j["id"] == job]
    assert found["backend"] == "pai_dlc" and found["state"] == "SUCCEEDED"
    assert "hello from node 0" in dlc.run("logs", job, env={"LAUNCH_HOME": str(fresh)}, check_rc=0).stdout


def test_a_rerun_with_the_same_key_submits_nothing_new_and_bundles_go_up_once(dlc, launch_home):
    spec = dlc.spec("run: python train.py\n")
    first = dlc.submit(spec, "--idempotency-key", "nightly #7")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()  # a CI re-run on another machine: no local history, the job is found at DLC by its tag
    again = dlc.run("run", str(spec), "--backend", "pai_dlc", "--idempotency-key", "nightly #7", check_rc=0).stdout
    assert first in again and "already exists" in again and len(dlc.fake.jobs) == 1
    bundles = {k for k in dlc.stack.objects() if "/bundles/" in k}
    third = dlc.submit(spec)  # a new job, same code: the same content-addressed bundle, no second one
    assert third != first and len(dlc.fake.jobs) == 2
    assert {k for k in dlc.stack.objects() if "/bundles/" in k} == bundles
    (mounted,) = {body["Envs"]["LAUNCH_BUNDLE"] for body in dlc.fake.created_bodies}
    assert mounted.rsplit("/", 1)[1] in {k.rsplit("/", 1)[1] for k in bundles}


def test_quota_refusal_fails_over_to_the_next_backend(dlc):
    dlc.fake.fail_next_create("QuotaExceeded.GPU", 400)
    result = dlc.run("run", str(dlc.spec("run: python train.py\n")), "--backend", "pai_dlc,local", "-o", "json",
                     check_rc=0)
    assert json.loads(result.stdout)["backend"] == "local"
    assert "pai_dlc: no capacity" in result.stderr and not dlc.fake.jobs

