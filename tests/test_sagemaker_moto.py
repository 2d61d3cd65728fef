"""The SageMaker backend end to end: the real CLI and boto3 over HTTP against a moto server.

moto never moves a training job's status and has no StopTrainingJob; the harness in
tests/fakes/moto_sagemaker.py adds StopTrainingJob (AWS semantics), AWS's ResourceInUse on a
duplicate name, and `set_job_state` to drive a job through InProgress/Training/Completed/
Failed/Stopped in moto's backend. CloudWatch events are written into moto to test log
following, the multi-node merge and the "streams not there yet" case.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.moto_sagemaker import MotoSageMaker

ROLE = "arn:aws:iam::123456789012:role/Train"
SUBMITTED = re.compile(r"submitted (\S+) to sagemaker")


@pytest.fixture(scope="module")
def aws():
    with MotoSageMaker() as server:
        yield server


@pytest.fixture
def sm(aws, cli, write_spec, tmp_path):
    """Runs the CLI against moto; `sm.spec(...)` writes a SageMaker spec with a code dir."""
    aws.reset()
    aws.client("s3").create_bucket(Bucket="team-bucket")

    class Helper:
        server = aws

        @staticmethod
        def run(*args: str, check_rc: int | None = None, **kw):
            return cli(*args, env={**aws.env(), **kw.pop("env", {})}, check_rc=check_rc, **kw)

        @staticmethod
        def spec(extra: str = "", *, bucket: str | None = "team-bucket", nodes: int = 1) -> Path:
            code = tmp_path / "src"
            code.mkdir(exist_ok=True)
            (code / "train.py").write_text("print('hi')\n")
            bucket_line = f"    bucket: {bucket}\n" if bucket else ""
            return write_spec(
                "name: sm-job\nimage: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3\n"
                f"code: ./src\nrun: python train.py\nresources:\n  accelerators: T4:1\n  nodes: {nodes}\n{extra}"
                f"backends:\n  sagemaker:\n    region: us-east-1\n    role_arn: {ROLE}\n{bucket_line}")

        @staticmethod
        def submit(spec: Path, *extra: str) -> str:
            result = Helper.run("run", str(spec), "--backend", "sagemaker", *extra, check_rc=0)
            return SUBMITTED.search(result.stdout).group(1)

    yield Helper
    assert aws.take_model_violations() == [], "a request broke botocore's model: AWS would have refused it"


def _status(sm, job: str) -> dict:
    return json.loads(sm.run("status", job, "-o", "json", check_rc=0).stdout)


def test_dry_run_sends_nothing_and_matches_what_run_sends(sm):
    spec = sm.spec()
    dry = json.loads(sm.run("run", str(spec), "--backend", "sagemaker", "--dry-run", check_rc=0).stdout)
    assert dry["operation"] == "CreateTrainingJob"
    assert sm.server.created_requests == []
    job = sm.submit(spec)
    (sent,) = sm.server.created_requests
    # the same request but for the job id (a new one per submit)
    assert json.dumps(sent, sort_keys=True).replace(job, "ID") == \
        json.dumps(dry["payload"], sort_keys=True).replace(dry["job_id"], "ID")
    s3 = sm.server.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="team-bucket")["Contents"]}
    assert {f"launch/jobs/{job}/bootstrap.sh", f"launch/jobs/{job}/run.sh"} <= keys
    assert any(k.startswith("launch/bundles/") and k.endswith(".tar.gz") for k in keys)
    run_sh = s3.get_object(Bucket="team-bucket", Key=f"launch/jobs/{job}/run.sh")["Body"].read()
    assert run_sh == b"python train.py"


def test_status_follows_the_provider_states(sm):
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec())
    assert _status(sm, job)["state"] == "STARTING"
    sm.server.set_job_state(job, "InProgress", "Training")
    record = _status(sm, job)
    assert record["state"] == "RUNNING" and record["raw_state"] == "InProgress/Training"
    assert record["url"].endswith(f"#/jobs/{job}")
    sm.server.set_job_state(job, "Completed", "Completed")
    assert _status(sm, job)["state"] == "SUCCEEDED"
    sm.run("wait", job, check_rc=0)


def test_run_wait_exits_1_with_the_failure_reason(sm):
    sm.server.hold_new_jobs_in_progress()
    spec = sm.spec()
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "run", str(spec), "--backend", "sagemaker", "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(sm))
    job = _wait_for_job(sm)
    sm.server.set_job_state(job, "Failed", "Failed", failure_reason="AlgorithmError: CUDA out of memory")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "CUDA out of memory" in err and f"submitted {job}" in out


def test_max_runtime_exceeded_is_failed_with_a_timeout_message(sm):
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec())
    sm.server.set_job_state(job, "Stopped", "MaxRuntimeExceeded")
    record = _status(sm, job)
    assert record["state"] == "FAILED" and "max_runtime" in record["message"]


def test_logs_wait_for_streams_then_merge_nodes_in_time_order(sm):
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec(nodes=2))
    empty = sm.run("logs", job, check_rc=0)  # no log group or stream yet: nothing, not an error
    assert empty.stdout == ""
    t0 = int(time.time() * 1000)
    sm.server.put_logs(job, 1, ["a1", "a3"], start_ms=t0, step_ms=20)
    sm.server.put_logs(job, 2, ["b2", "b4"], start_ms=t0 + 10, step_ms=20)
    lines = sm.run("logs", job, check_rc=0).stdout.splitlines()
    assert lines == ["[node 0] a1", "[node 1] b2", "[node 0] a3", "[node 1] b4"]
    assert sm.run("logs", job, "--node", "1", check_rc=0).stdout.splitlines() == ["b2", "b4"]


def test_follow_streams_until_the_job_ends_without_repeats(sm):
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec())
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "logs", "-f", job], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(sm))
    t0 = int(time.time() * 1000)
    time.sleep(1.0)
    sm.server.put_logs(job, 1, [f"line {i}" for i in range(5)], start_ms=t0)
    time.sleep(1.5)
    sm.server.put_logs(job, 1, [f"line {i}" for i in range(5, 10)], start_ms=t0 + 100)
    time.sleep(1.0)
    sm.server.set_job_state(job, "Completed", "Completed")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == [f"line {i}" for i in range(10)]


def test_follow_reads_past_pages_without_events(sm):
    """CloudWatch may answer pages without events while nextForwardToken moves on; only a token that comes back
    as sent is the end. Stopping at the first empty page never showed a line."""
    sm.server.hold_new_jobs_in_progress()
    sm.server.empty_log_pages()
    job = sm.submit(sm.spec(nodes=2))
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "logs", "-f", job], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(sm))
    t0 = int(time.time() * 1000)
    sm.server.put_logs(job, 1, ["a1", "a3"], start_ms=t0, step_ms=20)
    sm.server.put_logs(job, 2, ["b2"], start_ms=t0 + 10)
    time.sleep(1.5)
    sm.server.put_logs(job, 1, ["a5"], start_ms=t0 + 100)
    time.sleep(1.0)
    sm.server.set_job_state(job, "Completed", "Completed")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["[node 0] a1", "[node 1] b2", "[node 0] a3", "[node 0] a5"]
    assert sm.run("logs", job, "--node", "1", check_rc=0).stdout.splitlines() == ["b2"]


def test_follow_keeps_the_token_of_reads_that_showed_nothing(sm):
    """A read that moved the token without a line must still move the cursor: reading again from the head at
    every poll re-reads every empty page (CloudWatch's quota is per account) and never gets further."""
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec())
    stream = sm.server.put_logs(job, 1, [])  # the stream exists, nothing written yet
    sm.server.empty_log_pages()
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "logs", "-f", job], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(sm))
    deadline = time.time() + 30
    while len([r for r in sm.server.log_reads if r[0] == stream]) < 6 and time.time() < deadline:
        time.sleep(0.2)  # several polls that found nothing
    sm.server.put_logs(job, 1, ["late", "lines"])
    time.sleep(1.5)
    sm.server.set_job_state(job, "Completed", "Completed")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["late", "lines"]
    reads = [token for name, token in sm.server.log_reads if name == stream]
    assert len(reads) > 6 and reads.count(None) == 1, reads  # the head was read once, then the cursor went on


def _read(backend, handle, cursor=None) -> tuple[list[str], dict]:
    """One logs() call: its lines and the cursor it returns (the generator's return value)."""
    lines, reader = [], backend.logs(handle, since=cursor)
    while True:
        try:
            lines.append(next(reader).text)
        except StopIteration as end:
            return lines, end.value


def test_a_read_of_only_empty_pages_stops_and_returns_where_it_got(sm, monkeypatch):
    """Reading is bounded (MAX_EMPTY_PAGES pages without events in a row); the cursor it returns goes on."""
    import backends.sagemaker.logs as sagemaker_logs
    from backends.sagemaker import SageMakerBackend
    from launcher.spec import parse_spec

    for key, value in sm.server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sagemaker_logs, "MAX_EMPTY_PAGES", 1)
    backend = SageMakerBackend({"region": "us-east-1", "role_arn": ROLE, "bucket": "team-bucket"})
    spec = parse_spec("name: e\nimage: img\nrun: echo\n", "spec.yaml")
    handle = backend.submit(backend.render(spec, "e-20260101-000000-aaaaaa", None, {}))
    stream = sm.server.put_logs(handle.data["name"], 1, ["one", "two"])
    sm.server.empty_log_pages()
    lines, cursor = _read(backend, handle)
    assert lines == [] and cursor[stream]  # stopped after one empty page, with the token it moved to
    lines, cursor = _read(backend, handle, cursor)
    assert lines == ["one", "two"]
    assert _read(backend, handle, cursor) == ([], {stream: cursor[stream]})


def test_cancel_stops_the_job_and_is_safe_to_repeat(sm):
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec())
    assert "CANCELLING" in sm.run("cancel", job, check_rc=0).stdout
    assert sm.server.describe(job)["TrainingJobStatus"] == "Stopping"
    sm.run("cancel", job, check_rc=0)  # Stopping already: AWS refuses, we shrug
    sm.server.set_job_state(job, "Stopped", "Stopped")
    assert _status(sm, job)["state"] == "CANCELLED"
    assert sm.run("wait", job).returncode == 3


def test_cancel_of_a_finished_job_keeps_its_result(sm):
    job = sm.submit(sm.spec())  # moto finishes jobs at once
    sm.run("cancel", job, check_rc=0)
    assert _status(sm, job)["state"] == "SUCCEEDED"


def test_list_sync_recovers_jobs_the_store_lost(sm, launch_home):
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec(), "--idempotency-key", "ci-7")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    synced = sm.run("list", "--sync", "--backend", "sagemaker", "-o", "json", check_rc=0)
    (record,) = json.loads(synced.stdout)
    assert record["id"] == job and record["state"] == "STARTING" and record["idempotency_key"] == "ci-7"


def test_default_bucket_is_created_on_first_use(sm):
    job = sm.submit(sm.spec(bucket=None))
    bucket = "launch-123456789012-us-east-1"
    assert bucket in {b["Name"] for b in sm.server.client("s3").list_buckets()["Buckets"]}
    (sent,) = sm.server.created_requests
    assert sent["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{bucket}/launch/jobs/{job}/"


def test_unchanged_code_is_uploaded_once(sm):
    spec = sm.spec()
    sm.submit(spec)
    s3 = sm.server.client("s3")
    bundles = [o for o in s3.list_objects_v2(Bucket="team-bucket")["Contents"] if "/bundles/" in o["Key"]]
    first = bundles[0]["LastModified"]
    time.sleep(1.1)
    sm.submit(spec)
    again = [o for o in s3.list_objects_v2(Bucket="team-bucket")["Contents"] if "/bundles/" in o["Key"]]
    assert len(again) == 1 and again[0]["LastModified"] == first


def test_missing_credentials_exit_4_and_record_nothing(sm):
    spec = sm.spec()
    env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "nobody-configured-this"}
    result = sm.run("run", str(spec), "--backend", "sagemaker", env=env)
    assert result.returncode == 4, result.stderr
    assert "credentials" in result.stderr.lower() and "Traceback" not in result.stderr
    assert json.loads(sm.run("list", "-o", "json", check_rc=0).stdout) == []


def test_retried_create_adopts_our_job_but_not_a_stranger(sm, monkeypatch):
    """A create whose answer was lost is retried: ResourceInUse for a job carrying our tag is ours."""
    from backends.sagemaker import SageMakerBackend
    from launcher.errors import BackendError
    from launcher.spec import parse_spec

    for key, value in sm.server.env().items():
        monkeypatch.setenv(key, value)
    backend = SageMakerBackend({"region": "us-east-1", "role_arn": ROLE, "bucket": "team-bucket"})
    spec = parse_spec("name: r\nimage: img\nrun: echo\n", "spec.yaml")
    request = backend.render(spec, "r-20260101-000000-aaaaaa", None, {})
    first = backend.submit(request)
    second = backend.submit(request)
    assert first.data["arn"] == second.data["arn"]
    assert len(sm.server.created_requests) == 2  # the retry reached AWS and was refused as a duplicate
    stranger = backend.render(spec, "r-20260101-000000-aaaaaa", None, {})
    object.__setattr__(stranger, "job_id", "someone-else")
    with pytest.raises(BackendError, match="already exists"):
        backend.submit(stranger)


def _env(sm) -> dict[str, str]:
    import os

    return {**os.environ, "LAUNCH_HOME": os.environ.get("LAUNCH_HOME", ""), **sm.server.env()}


def _wait_for_job(sm, timeout: float = 30) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sm.server.created_requests:
            return sm.server.created_requests[0]["TrainingJobName"]
        time.sleep(0.1)
    raise AssertionError("no CreateTrainingJob reached moto")




def test_idempotency_key_holds_on_a_fresh_machine(sm, launch_home):
    """A CI re-run lands on a new machine with an empty history: the provider's tag decides."""
    sm.server.hold_new_jobs_in_progress()
    spec = sm.spec()
    first = sm.submit(spec, "--idempotency-key", "gh-123-1")
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    again = sm.run("run", str(spec), "--backend", "sagemaker", "--idempotency-key", "gh-123-1", check_rc=0)
    assert first in again.stdout and "already exists" in again.stdout
    assert len(sm.server.created_requests) == 1
    other = sm.submit(spec, "--idempotency-key", "gh-124-1")
    assert other != first and len(sm.server.created_requests) == 2


def test_follow_waits_for_lines_that_land_after_the_job_ended(sm):
    """CloudWatch ingests asynchronously: the last lines can appear after the status says Completed."""
    sm.server.hold_new_jobs_in_progress()
    job = sm.submit(sm.spec())
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "logs", "-f", job], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(sm))
    t0 = int(time.time() * 1000)
    sm.server.put_logs(job, 1, ["first"], start_ms=t0)
    time.sleep(1.0)
    sm.server.set_job_state(job, "Completed", "Completed")
    time.sleep(2.0)
    sm.server.put_logs(job, 1, ["last words"], start_ms=t0 + 50)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines() == ["first", "last words"]
