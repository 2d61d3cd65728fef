"""The Vertex backend end to end: the real CLI, the official JobServiceClient (REST) and
google-cloud-storage over HTTP against the local fake in tests/fakes/vertex_fake.py, which
parses every body with the official protos. Plain-http endpoints get anonymous credentials
(the backend never sends real tokens over http)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.vertex_fake import VertexFake

SUBMITTED = re.compile(r"submitted (\S+) to vertex")


@pytest.fixture(scope="module")
def gcp():
    with VertexFake(project="my-project", location="us-central1", buckets=("team-bucket",)) as fake:
        yield fake


@pytest.fixture
def vx(gcp, cli, write_spec, tmp_path, launch_home):
    gcp.reset()
    gcp.add_bucket("team-bucket")
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        "[backends.vertex]\n"
        f'api_endpoint = "{gcp.endpoint}"\nstorage_endpoint = "{gcp.endpoint}"\nlogging_endpoint = "{gcp.endpoint}"\n')

    class Helper:
        fake = gcp

        @staticmethod
        def run(*args: str, check_rc: int | None = None, **kw):
            return cli(*args, check_rc=check_rc, **kw)

        @staticmethod
        def spec(nodes: int = 1, extra: str = "", accel: str = "L4") -> Path:
            code = tmp_path / "src"
            code.mkdir(exist_ok=True)
            (code / "train.py").write_text("print('hi')\n")
            return write_spec(
                f"name: vx-job\nimage: us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3:latest\ncode: ./src\n"
                f"run: python train.py\nresources:\n  accelerators: {accel}\n  nodes: {nodes}\n{extra}"
                "backends:\n  vertex:\n    project: my-project\n    region: us-central1\n"
                "    staging_bucket: gs://team-bucket\n")

        @staticmethod
        def submit(spec: Path, *extra: str) -> str:
            out = Helper.run("run", str(spec), "--backend", "vertex", *extra, check_rc=0).stdout
            return SUBMITTED.search(out).group(1)

        @staticmethod
        def job_name(job: str) -> str:
            (name,) = [n for n, j in gcp.jobs.items() if j.display_name == job]
            return name

    return Helper


def _status(vx, job: str) -> dict:
    return json.loads(vx.run("status", job, "-o", "json", check_rc=0).stdout)


def test_dry_run_sends_nothing_then_run_creates_the_same_job(vx):
    spec = vx.spec()
    dry = json.loads(vx.run("run", str(spec), "--backend", "vertex", "--dry-run", check_rc=0).stdout)
    assert dry["operation"] == "projects/my-project/locations/us-central1/customJobs"
    assert vx.fake.created_bodies == [] and vx.fake.jobs == {}
    job = vx.submit(spec)
    stored = vx.fake.jobs[vx.job_name(job)]
    assert stored.labels["launch_job_id"] == job
    assert stored.job_spec.worker_pool_specs[0].machine_spec.machine_type == "g2-standard-4"
    keys = {name for bucket, name in vx.fake.objects if bucket == "team-bucket"}
    assert {f"launch/jobs/{job}/bootstrap.sh", f"launch/jobs/{job}/run.sh"} <= keys
    assert vx.fake.objects[("team-bucket", f"launch/jobs/{job}/run.sh")] == b"python train.py"
    assert any(k.startswith("launch/bundles/") for k in keys)


def test_status_maps_states_and_errors(vx):
    job = vx.submit(vx.spec())
    name = vx.job_name(job)
    assert _status(vx, job)["state"] == "PENDING"
    vx.fake.set_state(name, "JOB_STATE_RUNNING")
    record = _status(vx, job)
    assert record["state"] == "RUNNING" and "console.cloud.google.com/vertex-ai" in record["url"]
    vx.fake.set_state(name, "JOB_STATE_FAILED",
                      error_message="The replica workerpool0-0 exited with a non-zero status of 1")
    record = _status(vx, job)
    assert record["state"] == "FAILED" and "non-zero status of 1" in record["message"]
    assert vx.run("wait", job).returncode == 1


def test_run_wait_exits_0_on_success(vx):
    spec = vx.spec()
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "run", str(spec), "--backend", "vertex", "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})
    deadline = time.time() + 60
    while not vx.fake.jobs and time.time() < deadline:
        time.sleep(0.1)
    (name,) = vx.fake.jobs
    vx.fake.set_state(name, "JOB_STATE_SUCCEEDED")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "submitted" in out


def test_logs_across_nodes_in_time_order_and_follow_without_repeats(vx):
    job = vx.submit(vx.spec(nodes=2, extra="distributed: torchrun\n", accel="H100:8"))
    name = vx.job_name(job)
    assert vx.run("logs", job, check_rc=0).stdout == ""
    vx.fake.set_state(name, "JOB_STATE_RUNNING")
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "logs", "-f", job], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})
    vx.fake.add_log(name, "workerpool0-0", "chief 1")
    vx.fake.add_log(name, "workerpool1-0", "worker 1")
    time.sleep(1.5)
    vx.fake.add_log(name, "workerpool0-0", "chief 2")
    vx.fake.add_log(name, "workerpool1-0", "worker 2")
    time.sleep(1.5)
    vx.fake.set_state(name, "JOB_STATE_SUCCEEDED")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["[node 0] chief 1", "[node 1] worker 1", "[node 0] chief 2", "[node 1] worker 2"]
    only_worker = vx.run("logs", job, "--node", "1", check_rc=0).stdout.splitlines()
    assert only_worker == ["worker 1", "worker 2"]


def test_cancel_is_repeat_safe_and_finished_jobs_stay_finished(vx):
    job = vx.submit(vx.spec())
    name = vx.job_name(job)
    vx.fake.set_state(name, "JOB_STATE_RUNNING")
    assert "CANCELLING" in vx.run("cancel", job, check_rc=0).stdout
    vx.run("cancel", job, check_rc=0)
    vx.fake.set_state(name, "JOB_STATE_CANCELLED")
    assert vx.run("wait", job).returncode == 3
    done = vx.submit(vx.spec())
    vx.fake.set_state(vx.job_name(done), "JOB_STATE_SUCCEEDED")
    vx.run("cancel", done, check_rc=0)  # Vertex answers FAILED_PRECONDITION: nothing to do
    assert _status(vx, done)["state"] == "SUCCEEDED"


def test_create_answer_lost_then_retry_adopts_the_job(vx):
    """Creating is not idempotent at Vertex: the job was stored but the answer was a 503;
    the retry finds it by label instead of creating a second one."""
    vx.fake.fail_next_create_after_storing()
    job = vx.submit(vx.spec())
    assert len(vx.fake.jobs) == 1
    assert vx.job_name(job)


def test_list_sync_recovers_jobs_by_label(vx, launch_home):
    job = vx.submit(vx.spec(), "--idempotency-key", "ci-9")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    out = vx.run("list", "--sync", "--backend", "vertex", "-o", "json", check_rc=0,
                 env={"GOOGLE_CLOUD_PROJECT": "my-project", "GOOGLE_CLOUD_REGION": "us-central1"}).stdout
    (record,) = json.loads(out)
    assert record["id"] == job and record["idempotency_key"] == "ci-9"


def test_every_create_body_was_accepted_by_the_proto_parser(vx):
    vx.submit(vx.spec(nodes=3, extra="spot: true\nretries: 1\nmax_runtime: 2h\n", accel="A100-80GB:8"))
    (body,) = vx.fake.created_bodies
    assert body["jobSpec"]["scheduling"]["timeout"] == "7200s"
    assert [p["replicaCount"] for p in body["jobSpec"]["workerPoolSpecs"]] == ["1", "2"]


def test_idempotency_key_holds_on_a_fresh_machine(vx, launch_home):
    spec = vx.spec()
    first = vx.submit(spec, "--idempotency-key", "GitHub run #7 / attempt 1")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    again = vx.run("run", str(spec), "--backend", "vertex", "--idempotency-key", "GitHub run #7 / attempt 1",
                   check_rc=0)
    assert first in again.stdout and "already exists" in again.stdout
    assert len(vx.fake.jobs) == 1
    # and the adopted record answers the same key locally from now on
    third = vx.run("run", str(spec), "--backend", "vertex", "--idempotency-key", "GitHub run #7 / attempt 1",
                   check_rc=0)
    assert first in third.stdout and len(vx.fake.jobs) == 1


def test_late_log_entries_are_shown_once(vx, gcp, monkeypatch):
    """Cloud Logging may deliver an entry stamped before one already shown."""
    from datetime import UTC, datetime, timedelta

    from backends.vertex import VertexBackend
    from launcher import config

    job = vx.submit(vx.spec(nodes=2, accel="H100:8"))
    name = vx.job_name(job)
    config.load.cache_clear()
    settings = {**config.backend_settings("vertex"), "project": "my-project", "region": "us-central1"}
    backend = VertexBackend(settings)
    from launcher.store import Store

    handle = Store.open().get(job).handle
    base = datetime.now(UTC).replace(microsecond=0)
    gcp.add_log(name, "workerpool0-0", "chief early", timestamp=base)
    gcp.add_log(name, "workerpool0-0", "chief later", timestamp=base + timedelta(seconds=10))
    first = list(backend.logs(handle))
    assert [line.text for line in first] == ["chief early", "chief later"]
    gcp.add_log(name, "workerpool1-0", "worker late", timestamp=base + timedelta(seconds=5))  # arrives late
    second = list(backend.logs(handle, since=first[-1].cursor))
    assert [(line.node, line.text) for line in second] == [(1, "worker late")]
    assert list(backend.logs(handle, since=second[-1].cursor)) == []


def test_run_wait_exits_1_with_the_error_message(vx):
    spec = vx.spec()
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "run", str(spec), "--backend", "vertex", "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    deadline = time.time() + 60
    while not vx.fake.jobs and time.time() < deadline:
        time.sleep(0.1)
    (name,) = vx.fake.jobs
    vx.fake.set_state(name, "JOB_STATE_FAILED", error_message="Replica workerpool0-0 ran out of memory")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "ran out of memory" in err


def test_a_tpu_slice_is_created_as_one_pool_with_its_topology(vx):
    spec = vx.spec(accel="TPU-v5p:16", extra="spot: true\n")
    spec.write_text(spec.read_text() + "    reservation: any\n")
    job = vx.submit(spec)
    (pool,) = vx.fake.jobs[vx.job_name(job)].job_spec.worker_pool_specs
    assert (pool.replica_count, pool.machine_spec.machine_type, pool.machine_spec.tpu_topology) == \
        (1, "ct5p-hightpu-4t", "2x2x2")
    assert pool.machine_spec.reservation_affinity.reservation_affinity_type.name == "ANY_RESERVATION"
