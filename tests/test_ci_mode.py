"""`launch` as a CI step: interrupting `run --follow` cancels the job, idempotency keys
default from the CI's own variables, and GitHub Actions gets a step summary and an
`::error::` annotation. Real subprocesses and real signals on the local backend."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_cli_local import node_pid, wait_for_log

from launcher import ci_env
from launcher.backend import JobState
from launcher.store import JobRecord

REPO = Path(__file__).resolve().parent.parent
GITHUB = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "9001", "GITHUB_RUN_ATTEMPT": "1", "GITHUB_JOB": "train",
          "GITHUB_ACTION": "__run_2", "GITHUB_REPOSITORY": "acme/models"}


def _jobs(cli) -> list[dict]:
    return json.loads(cli("list", "-o", "json", check_rc=0).stdout)


def test_github_step_retry_returns_the_same_job(cli, write_spec):
    spec = write_spec("name: ci\nrun: echo hi\n")
    first = cli("run", str(spec), env=GITHUB, check_rc=0)
    assert "idempotency key gha-9001-1-" in first.stderr and "GitHub Actions run 9001 attempt 1" in first.stderr
    again = cli("run", str(spec), env=GITHUB, check_rc=0)
    assert "already exists for idempotency key" in again.stdout
    assert len(_jobs(cli)) == 1
    cli("run", str(spec), env={**GITHUB, "GITHUB_RUN_ATTEMPT": "2"}, check_rc=0)  # "Re-run jobs": trains again
    cli("run", str(spec), "--set", "env.LR=0.1", env=GITHUB, check_rc=0)  # another submission in the step
    cli("run", str(spec), "--idempotency-key", "", env=GITHUB, check_rc=0)  # opted out
    assert len(_jobs(cli)) == 4


def test_gitlab_job_gets_a_key_and_plain_shells_get_none():
    key = ci_env.default_idempotency_key({"GITLAB_CI": "true", "CI_PIPELINE_ID": "77", "CI_JOB_ID": "501"},
                                         spec_file="s.yaml", overrides=(), backend="local")
    assert key is not None and key.key.startswith("glab-77-501-")
    assert ci_env.default_idempotency_key({}, spec_file="s.yaml", overrides=(), backend="local") is None
    other = ci_env.default_idempotency_key({"GITLAB_CI": "true", "CI_PIPELINE_ID": "77", "CI_JOB_ID": "501"},
                                           spec_file="s.yaml", overrides=(), backend="vertex")
    assert other is not None and other.key != key.key


def test_failed_run_writes_summary_and_error_annotation(cli, write_spec, tmp_path):
    summary = tmp_path / "summary.md"
    spec = write_spec("name: breaks\nrun: echo 'loss is nan'; exit 3\n")
    result = cli("run", str(spec), "--wait", env={**GITHUB, "GITHUB_STEP_SUMMARY": str(summary)}, check_rc=1)
    (job,) = _jobs(cli)
    text = summary.read_text()
    assert f"`{job['id']}`" in text and "| backend | local |" in text
    assert "| state | FAILED (exit 3) |" in text and "| duration |" in text and "estimated cost" in text
    annotations = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert len(annotations) == 1
    assert f"title=launch%3A {job['id']} FAILED::" in annotations[0]


def test_successful_run_writes_summary_without_annotation(cli, write_spec, tmp_path):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier steps\n")
    result = cli("run", str(write_spec("name: fine\nrun: echo ok\n")), "--follow",
                 env={**GITHUB, "GITHUB_STEP_SUMMARY": str(summary)}, check_rc=0)
    assert "::error" not in result.stdout
    text = summary.read_text()
    assert text.startswith("earlier steps\n") and "| state | SUCCEEDED (exit 0) |" in text  # appended, not replaced


def test_annotation_and_summary_escape_what_would_break_them():
    record = JobRecord(id="j-1", name="n", backend="vertex", handle=None, spec={}, state=JobState.FAILED,
                       message="line one\nline two | 100% done\r", created_at=1, started_at=10, ended_at=3610)
    line = ci_env.error_annotation(record)
    assert "\n" not in line and "\r" not in line
    assert line.endswith("::line one%0Aline two | 100%25 done%0D")
    summary = ci_env.step_summary(record, 12.5)
    assert "line one<br>line two \\| 100% done" in summary and "$12.50" in summary and "| duration | 1h" in summary


def test_estimated_cost_is_catalog_price_times_duration():
    from launcher import catalog
    from launcher.accelerators import parse

    spec = {"name": "x", "run": "y", "image": "i", "resources": {"accelerators": "A100-40GB:8", "nodes": 2}}
    record = JobRecord(id="j", name="x", backend="vertex", handle=None, spec=spec, state=JobState.SUCCEEDED,
                       started_at=0.0 + 1, ended_at=1800.0 + 1)
    price = catalog.find("vertex", parse("A100-40GB:8"))[0].ondemand_usd_hr
    assert ci_env.estimated_cost(record) == pytest.approx(round(price * 2 * 0.5, 2))


def _start_follow(launch_home: Path, spec: Path, *extra: str) -> subprocess.Popen:
    """`launch run --follow` as a terminal starts it: SIGINT at its default (a suite started in the background,
    as `cmd &` in a script, inherits SIGINT ignored, and so would the CLI, which then never sees the Ctrl-C)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI")}
    return subprocess.Popen([sys.executable, "-m", "launcher", "run", str(spec), "--follow", *extra],
                            env={**env, "LAUNCH_HOME": str(launch_home)}, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _job_of(cli) -> str:
    deadline = time.monotonic() + 30
    while not (jobs := _jobs(cli)) or jobs[0]["handle"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return jobs[0]["id"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_run_follow_cancels_the_job(cli, write_spec, launch_home, signum):
    spec = write_spec("name: long\nrun: echo started; sleep 60\n")
    proc = _start_follow(launch_home, spec)
    job = _job_of(cli)
    wait_for_log(launch_home, job, "started", timeout=20)
    pid = node_pid(launch_home, job)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert f"interrupted: cancelling job {job}" in err
    assert json.loads(cli("status", job, "-o", "json", check_rc=0).stdout)["state"] == "CANCELLED"
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)


def test_detach_on_interrupt_leaves_the_job_running(cli, write_spec, launch_home):
    spec = write_spec("name: keep\nrun: echo started; sleep 60\n")
    proc = _start_follow(launch_home, spec, "--detach-on-interrupt")
    job = _job_of(cli)
    wait_for_log(launch_home, job, "started", timeout=20)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "keeps running" in err
    assert json.loads(cli("status", job, "-o", "json", check_rc=0).stdout)["state"] == "RUNNING"
    cli("cancel", job, check_rc=0)
