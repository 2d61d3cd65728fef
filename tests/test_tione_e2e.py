"""The tione backend end to end: the real CLI (subprocess) and the official Tencent Cloud SDK against the
local TI-ONE fake (tests/fakes/tione_fake.py: TC3 signature present, every request and answer checked
against tccli's api.json), whose tasks really run here, reading their files from what the backend uploaded
to moto's S3 (COS's S3-compatible API). What the conformance suite and the reliability harness check for
every backend (status without side effects, cancel repeat-safe, log cursors, exactly-once, faults, secrets
canary) is not repeated here."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from fakes.tione_fake import TioneStack
from helpers import BucketBackendCli, job_script

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with TioneStack(tmp_path_factory.mktemp("tione")) as running:
        yield running


@pytest.fixture
def tione(stack, launch_home, cli, write_spec, tmp_path):
    """The fake, reset, with LAUNCH_HOME pointed at it; afterwards nothing the API definition rejects."""
    fake = stack.tione
    stack.reset()
    helper = BucketBackendCli("tione", stack, fake, stack.SECRET, cli=cli, write_spec=write_spec,
                              launch_home=launch_home, tmp_path=tmp_path)
    yield helper
    helper.close()


def test_two_workers_run_a_torchrun_gloo_allreduce(tione):
    """A DDP task's workers get MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK; the topology maps them to LAUNCH_*
    and torchrun rendezvouses on them (both pods on this machine: MASTER_ADDR=127.0.0.1)."""
    job_script("allreduce.py", Path(tione.spec("run: x\n").parent) / "src")
    spec = tione.spec("run: python allreduce.py\nresources:\n  nodes: 2\ndistributed: torchrun\n"
                      f"env:\n  PATH: {json.dumps(f'{VENV_BIN}:/usr/bin:/bin')}\n  GLOO_SOCKET_IFNAME: lo\n")
    result = tione.run("run", str(spec), "--backend", "tione", "--follow", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert re.search(rf"^\[node {rank}\] allreduce ok sum=3 rank={rank} node={rank} master=\S+$",
                         result.stdout, re.M), result.stdout
    (body,) = tione.fake.created_bodies
    assert body["ResourceConfigInfos"] == [{"Role": "WORKER", "InstanceNum": 2, "InstanceType": "TI.S.2XLARGE32.POST"}]
    assert body["TrainingMode"] == "DDP"


def test_a_failing_worker_fails_the_task_with_tiones_reason(tione):
    job = tione.submit(tione.spec('run: echo before; [ "$LAUNCH_NODE_RANK" = 1 ] && exit 3; echo fine\n'
                                  "resources:\n  nodes: 2\n"))
    tione.fake.wait_ended(job)
    record = json.loads(tione.run("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "FAILED", record
    assert "worker-1 exited with code 3" in record["message"], record
    logs = tione.run("logs", job, check_rc=0).stdout
    assert "[node 0] fine" in logs and "[node 1] before" in logs


def test_cancel_stops_the_pods_and_is_repeat_safe(tione, tmp_path):
    marker = tmp_path / "still-running"
    job = tione.submit(tione.spec(f"run: sleep 30; touch {marker}\n"))
    deadline = time.monotonic() + 30
    while tione.fake.task_by_job(job)["Status"] != "RUNNING":
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    tione.run("cancel", job, check_rc=0)
    tione.fake.wait_ended(job)
    assert json.loads(tione.run("status", job, "-o", "json", check_rc=0).stdout)["state"] == "CANCELLED"
    tione.run("cancel", job, check_rc=0)
    assert tione.fake.calls.count("StopTrainingTask") == 1  # the second cancel saw the task had ended
    assert not marker.exists()


def test_logs_follow_merges_both_pods_to_the_end(tione):
    job = tione.submit(tione.spec("run: for i in 1 2 3; do echo line-$i; sleep 0.2; done\nresources:\n  nodes: 2\n"))
    out = tione.run("logs", job, "-f", timeout=60, check_rc=0).stdout
    for node in (0, 1):
        assert [line for line in out.splitlines() if line.startswith(f"[node {node}] line-")] == [
            f"[node {node}] line-{i}" for i in (1, 2, 3)], out
    assert tione.fake.calls.count("DescribeLogs") >= 2


def test_list_sync_finds_the_task_from_another_machine(tione, launch_home, tmp_path):
    job = tione.submit(tione.spec("run: python train.py\n"))
    tione.fake.wait_ended(job)
    fresh = tmp_path / "fresh-home"
    fresh.mkdir()
    (fresh / "config.toml").write_text((launch_home / "config.toml").read_text())
    listed = tione.run("list", "--sync", "-o", "json", env={"LAUNCH_HOME": str(fresh)}, check_rc=0).stdout
    (found,) = [j for j in json.loads(listed) if j["id"] == job]
    assert found["backend"] == "tione" and found["state"] == "SUCCEEDED"
    assert "hello from node 0" in tione.run("logs", job, env={"LAUNCH_HOME": str(fresh)}, check_rc=0).stdout


def test_a_rerun_with_the_same_key_submits_nothing_new_and_bundles_go_up_once(tione, launch_home):
    spec = tione.spec("run: python train.py\n")
    first = tione.submit(spec, "--idempotency-key", "nightly 7")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()  # a CI re-run on another machine: no local history, the task is found at TI-ONE by its tag
    again = tione.run("run", str(spec), "--backend", "tione", "--idempotency-key", "nightly 7", check_rc=0).stdout
    assert first in again and "already exists" in again and len(tione.fake.tasks) == 1
    bundles = {k for k in tione.stack.objects() if "/bundles/" in k}
    third = tione.submit(spec)  # a new job, same code: the same content-addressed bundle, no second one
    assert third != first and len(tione.fake.tasks) == 2
    assert {k for k in tione.stack.objects() if "/bundles/" in k} == bundles
    (mounted,) = {next(e["Value"] for e in body["Envs"] if e["Name"] == "LAUNCH_BUNDLE")
                  for body in tione.fake.created_bodies}
    assert mounted.rsplit("/", 1)[1] in {k.rsplit("/", 1)[1] for k in bundles}


def test_an_idempotency_key_tencent_cannot_tag_is_refused_before_anything_is_sent(tione):
    result = tione.run("run", str(tione.spec("run: python train.py\n")), "--backend", "tione",
                       "--idempotency-key", "nightly #7", check_rc=2)
    assert "tag value" in result.stderr and not tione.fake.calls


def test_quota_refusal_fails_over_to_the_next_backend(tione):
    tione.fake.fail_next_create("ResourceInsufficient.Quota")
    result = tione.run("run", str(tione.spec("run: python train.py\n")), "--backend", "tione,local", "-o", "json",
                       check_rc=0)
    assert json.loads(result.stdout)["backend"] == "local"
    assert "tione: no capacity" in result.stderr and not tione.fake.tasks


def test_logs_longer_than_one_describelogs_page_arrive_whole_and_in_order(tione):
    """DescribeLogs answers at most 1000 lines; the backend pages on with the Context token it returns."""
    job = tione.submit(tione.spec("run: seq 1 2500\n"))
    tione.fake.wait_ended(job)
    before = tione.fake.calls.count("DescribeLogs")
    out = tione.run("logs", job, check_rc=0).stdout
    assert [line for line in out.splitlines() if line.isdigit()] == [str(i) for i in range(1, 2501)], out[-300:]
    assert tione.fake.calls.count("DescribeLogs") - before == 3  # 1000 + 1000 + 500
