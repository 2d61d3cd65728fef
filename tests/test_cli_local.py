"""The `launch` CLI end to end on the local backend: real subprocesses, real jobs.

Every command runs as `python -m launcher ...` in its own process (the `cli`
fixture), so these tests also prove that jobs outlive the command that started
them and that any later shell can find, follow, wait for and cancel them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import live_group_members

from launcher import procs

REPO = Path(__file__).resolve().parent.parent
SUBMITTED = re.compile(r"submitted (\S+) to local")


# -- helpers -----------------------------------------------------------------------


def submit(cli, spec: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`launch run SPEC` without waiting; returns the job id."""
    result = cli("run", str(spec), *args, env=env, check_rc=0)
    found = SUBMITTED.search(result.stdout)
    assert found, result.stdout
    return found.group(1)


def status_json(cli, job: str) -> dict:
    return json.loads(cli("status", job, "-o", "json", check_rc=0).stdout)


def node_dir(launch_home: Path, job: str, rank: int = 0) -> Path:
    return launch_home / "local" / job / f"node-{rank}"


def node_pid(launch_home: Path, job: str, rank: int = 0) -> int:
    return json.loads((node_dir(launch_home, job, rank) / "pid.json").read_text())["pid"]


def wait_for_log(launch_home: Path, job: str, text: str, timeout: float = 10.0, rank: int = 0) -> None:
    log = node_dir(launch_home, job, rank) / "log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and text in log.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {log}"
        time.sleep(0.05)


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # not reaped yet (the parent CLI exited and init reaps lazily): a zombie is gone too
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X")


def assert_stopped(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not (pid_gone(pid) and not live_group_members(pid)):
        assert time.monotonic() < deadline, f"process group {pid} is still running"
        time.sleep(0.05)


def db_rows(launch_home: Path) -> int:
    db = launch_home / "jobs.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE name = 'jobs'").fetchall()
        return conn.execute("SELECT count(*) FROM jobs").fetchone()[0] if tables else 0


def local_dirs(launch_home: Path) -> list[Path]:
    root = launch_home / "local"
    return sorted(root.iterdir()) if root.exists() else []


@pytest.fixture(autouse=True)
def _no_stray_jobs(launch_home: Path):
    """Kill whatever a failing test left running."""
    yield
    for pid_file in (launch_home / "local").glob("*/node-*/pid.json"):
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError, OSError):
            node = json.loads(pid_file.read_text())
            if procs.is_alive(node["pid"], node.get("start")):  # still ours, not a reused pid
                os.killpg(node["pgid"], signal.SIGKILL)


# -- run, status, wait ---------------------------------------------------------------


def test_quickstart_follow(cli):
    result = cli("run", "job_specs/quickstart.yaml", "--follow", check_rc=0)
    for epoch in (1, 10, 20):
        assert re.search(rf"^epoch +{epoch} +loss [0-9.]+ +accuracy [0-9.]+$", result.stdout, re.M), result.stdout
    assert "final accuracy" in result.stdout
    job = SUBMITTED.search(result.stdout).group(1)
    record = status_json(cli, job)
    assert record["state"] == "SUCCEEDED"
    assert record["exit_code"] == 0
    assert record["id"] == job


@pytest.mark.parametrize(("command", "wait_rc", "state", "code"), [
    ("exit 0", 0, "SUCCEEDED", 0),
    ("exit 3", 1, "FAILED", 3),
])
def test_run_returns_at_once_and_wait_gives_the_result(cli, write_spec, launch_home, tmp_path, command, wait_rc,
                                                       state, code):
    go = tmp_path / "go"  # the job waits for it: `run` returning at all shows it did not wait for the job
    run = f"while [ ! -e {go} ]; do sleep 0.05; done; echo still-ran-after-cli; {command}"
    job = submit(cli, write_spec(f"name: bg\nrun: {json.dumps(run)}\n"))
    assert status_json(cli, job)["state"] in ("PENDING", "STARTING", "RUNNING")
    go.touch()
    result = cli("wait", job, check_rc=wait_rc)
    assert state in result.stderr
    record = status_json(cli, job)
    assert (record["state"], record["exit_code"]) == (state, code)
    assert "still-ran-after-cli" in cli("logs", job, check_rc=0).stdout


def test_wait_of_cancelled_job_exits_3(cli, write_spec):
    job = submit(cli, write_spec("name: towait\nrun: sleep 60\nbackends: {local: {cancel_grace: 2s}}\n"))
    waiter = subprocess.Popen([sys.executable, "-m", "launcher", "wait", job], cwd=REPO,
                              env={**os.environ, "LAUNCH_HOME": os.environ["LAUNCH_HOME"]},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        cli("cancel", job, check_rc=0)
        assert waiter.wait(timeout=20) == 3
    finally:
        waiter.kill()
        waiter.communicate()


def test_run_wait_exit_code_and_failure_message(cli, write_spec):
    spec = write_spec("name: fails\nrun: echo context-line-1; echo context-line-2 >&2; exit 3\n")
    result = cli("run", str(spec), "--wait", check_rc=1)
    assert "FAILED" in result.stderr
    job = SUBMITTED.search(result.stdout).group(1)
    record = status_json(cli, job)
    assert record["state"] == "FAILED"
    assert record["exit_code"] == 3
    assert "code 3" in record["message"]
    # the log tail explains the failure on screen, but job output is never copied into the store
    assert "context-line-1" in result.stderr and "context-line-2" in result.stderr
    assert "context-line" not in record["message"]
    status = cli("status", job, check_rc=0)
    assert "FAILED" in status.stdout and "context-line-2" in status.stderr


def test_job_survives_the_following_cli_being_killed(cli, write_spec, launch_home):
    spec = write_spec("name: survivor\n"
                      "run: for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.25; done\n")
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "run", str(spec), "--follow"], cwd=REPO,
                            env={**os.environ, "LAUNCH_HOME": str(launch_home)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        seen = b""
        deadline = time.monotonic() + 15
        while b"tick-1" not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"launch run exited early: {seen!r}"
                seen += chunk
        job = SUBMITTED.search(seen.decode()).group(1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert status_json(cli, job)["state"] == "RUNNING"
    assert "tick-1" in cli("logs", job, check_rc=0).stdout
    cli("wait", job, check_rc=0)
    record = status_json(cli, job)
    assert record["state"] == "SUCCEEDED"
    logs = cli("logs", job, check_rc=0).stdout.splitlines()
    assert [line for line in logs if line.startswith("tick-")] == [f"tick-{i}" for i in range(1, 11)]


# -- cancel -------------------------------------------------------------------------


def test_cancel_running_job(cli, write_spec, launch_home):
    # a long grace: a job that honours SIGTERM must stop at once, not after the grace
    job = submit(cli, write_spec("name: tocancel\nrun: echo sleeping; sleep 60\n"
                                 "backends: {local: {cancel_grace: 30s}}\n"))
    wait_for_log(launch_home, job, "sleeping")
    pid = node_pid(launch_home, job)
    started = time.monotonic()
    result = cli("cancel", job, check_rc=0)
    assert time.monotonic() - started < 10
    assert "CANCELLED" in result.stdout
    assert_stopped(pid)
    assert status_json(cli, job)["state"] == "CANCELLED"
    cli("wait", job, check_rc=3)
    again = cli("cancel", job, check_rc=0)  # harmless to repeat
    assert "CANCELLED" in again.stdout
    assert status_json(cli, job)["state"] == "CANCELLED"


def test_cancel_sigkills_job_ignoring_sigterm_after_grace(cli, write_spec, launch_home):
    job = submit(cli, write_spec("name: stubborn\nrun: trap '' TERM; echo armed; sleep 60\n"
                                 "backends: {local: {cancel_grace: 2s}}\n"))
    wait_for_log(launch_home, job, "armed")
    pid = node_pid(launch_home, job)
    started = time.monotonic()
    cli("cancel", job, check_rc=0)
    took = time.monotonic() - started
    assert 1.8 <= took < 10, f"cancel took {took:.1f}s with a 2s grace"
    assert_stopped(pid)
    assert status_json(cli, job)["state"] == "CANCELLED"
    cli("wait", job, check_rc=3)


def test_cancel_of_finished_job_keeps_succeeded(cli, write_spec, launch_home):
    job = submit(cli, write_spec("name: quick\nrun: echo done\n"))
    exit_file = node_dir(launch_home, job) / "exit_code"
    deadline = time.monotonic() + 10
    while not exit_file.exists():  # finished, but the store has not been told yet
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = cli("cancel", job, check_rc=0)
    assert "SUCCEEDED" in result.stdout
    record = status_json(cli, job)
    assert (record["state"], record["exit_code"]) == ("SUCCEEDED", 0)
    cli("wait", job, check_rc=0)


# -- multi-node ------------------------------------------------------------------------


def test_multi_node_ranks_and_node_filter(cli, write_spec):
    spec = write_spec("name: multi\nrun: echo rank=$LAUNCH_NODE_RANK of $LAUNCH_NUM_NODES addr=$LAUNCH_MASTER_ADDR\n")
    result = cli("run", str(spec), "--set", "resources.nodes=3", "--wait", check_rc=0)
    job = SUBMITTED.search(result.stdout).group(1)
    logs = cli("logs", job, check_rc=0).stdout.splitlines()
    for rank in range(3):
        assert f"[node {rank}] rank={rank} of 3 addr=127.0.0.1" in logs
    one = cli("logs", job, "--node", "1", check_rc=0).stdout.splitlines()
    assert "rank=1 of 3 addr=127.0.0.1" in one
    assert not any("rank=0" in line or "rank=2" in line for line in one)


def test_multi_node_one_failure_fails_the_job_and_stops_the_rest(cli, write_spec, launch_home):
    spec = write_spec("name: onefails\nrun: '[ \"$LAUNCH_NODE_RANK\" = 1 ] && exit 7; sleep 30'\n"
                      "resources: {nodes: 3}\n")
    started = time.monotonic()
    result = cli("run", str(spec), "--wait", check_rc=1)
    assert time.monotonic() - started < 15, "the other nodes must be stopped, not waited for"
    job = SUBMITTED.search(result.stdout).group(1)
    record = status_json(cli, job)
    assert (record["state"], record["exit_code"]) == ("FAILED", 7)
    assert "node 1" in record["message"]
    for rank in (0, 2):
        assert_stopped(node_pid(launch_home, job, rank))


def test_multi_node_follow_shows_each_line_once(cli, write_spec):
    spec = write_spec("name: multifollow\n"
                      "run: for i in 1 2 3 4 5 6 7 8; do echo r$LAUNCH_NODE_RANK-$i; sleep 0.2; done\n"
                      "resources: {nodes: 2}\n")
    result = cli("run", str(spec), "--follow", check_rc=0)
    lines = result.stdout.splitlines()
    for rank in (0, 1):
        mine = [line for line in lines if line.startswith(f"[node {rank}] r{rank}-")]
        assert mine == [f"[node {rank}] r{rank}-{i}" for i in range(1, 9)], result.stdout


# -- logs -----------------------------------------------------------------------------


def test_logs_tail(cli, write_spec):
    job_run = cli("run", str(write_spec("name: tail\nrun: for i in 1 2 3 4 5 6; do echo line-$i; done\n")),
                  "--wait", check_rc=0)
    job = SUBMITTED.search(job_run.stdout).group(1)
    full = cli("logs", job, check_rc=0).stdout.splitlines()
    assert [line for line in full if line.startswith("line-")] == [f"line-{i}" for i in range(1, 7)]
    tail = cli("logs", job, "--tail", "2", check_rc=0).stdout.splitlines()
    assert tail == full[-2:]


def test_logs_follow_loses_and_repeats_nothing(cli, write_spec, launch_home):
    spec = write_spec("name: follow\n"
                      "run: for i in $(seq 1 20); do echo n-$i; sleep 0.1; done; printf no-newline-end\n")
    job = submit(cli, spec)
    followed = cli("logs", "-f", job, check_rc=0, timeout=30).stdout.splitlines()
    assert [line for line in followed if line.startswith("n-")] == [f"n-{i}" for i in range(1, 21)]
    assert any(line.startswith("no-newline-end") for line in followed), followed
    assert followed == cli("logs", job, check_rc=0).stdout.splitlines()


def test_final_line_without_newline_stays_its_own_line(cli, write_spec):
    result = cli("run", str(write_spec("name: nonl\nrun: echo first; printf last-without-newline\n")),
                 "--follow", check_rc=0)
    assert "last-without-newline" in result.stdout.splitlines(), result.stdout


# -- code bundle and setup ---------------------------------------------------------------


def test_code_bundle_and_setup(cli, write_spec, tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "script.sh").write_text('echo "script sees: $(cat marker)"\n')
    spec = write_spec("name: bundled\ncode: ./code\nsetup: echo setup-ran > marker\nrun: sh script.sh\n")
    result = cli("run", str(spec), "--follow", check_rc=0)
    assert "script sees: setup-ran" in result.stdout.splitlines()


def test_failing_setup_fails_the_job_with_its_exit_code(cli, write_spec, tmp_path):
    spec = write_spec("name: badsetup\nsetup: echo setting-up; exit 5\nrun: echo run-must-not-happen\n")
    result = cli("run", str(spec), "--wait", check_rc=1)
    job = SUBMITTED.search(result.stdout).group(1)
    record = status_json(cli, job)
    assert (record["state"], record["exit_code"]) == ("FAILED", 5)
    logs = cli("logs", job, check_rc=0).stdout
    assert "setting-up" in logs
    assert "run-must-not-happen" not in logs


# -- env and secrets ------------------------------------------------------------------


def test_env_value_is_passed_literally(cli, write_spec):
    marker = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    value = f"x y $(touch {marker}) `touch {marker}`"
    spec = write_spec(f"name: literal\nenv: {{A: \"{value}\"}}\nrun: printf 'A=%s\\n' \"$A\"\n")
    result = cli("run", str(spec), "--follow", check_rc=0)
    assert f"A={value}" in result.stdout.splitlines()
    assert not marker.exists()


def test_secret_reaches_job_but_is_never_stored_or_printed(cli, write_spec, launch_home, tmp_path):
    canary = f"canary-{uuid.uuid4().hex}"
    expected = tmp_path / "expected-token"
    expected.write_text(canary)
    spec = write_spec("name: secretive\nsecrets: [MY_TOKEN]\n"
                      f"run: '[ \"$MY_TOKEN\" = \"$(cat {expected})\" ] && echo token-ok'\n")
    env = {"MY_TOKEN": canary}
    outputs = []
    dry = cli("run", str(spec), "--dry-run", env=env, check_rc=0)
    outputs.append(dry)
    request = json.loads(dry.stdout)
    assert [n["env"]["MY_TOKEN"] for n in request["payload"]["nodes"]] == ["****"]
    run = cli("run", str(spec), "--wait", "-o", "json", env=env, check_rc=0)
    outputs.append(run)
    job = json.loads(run.stdout)["id"]
    assert "token-ok" in cli("logs", job, check_rc=0).stdout
    outputs += [cli("status", job, env=env, check_rc=0), cli("status", job, "-o", "json", env=env, check_rc=0),
                cli("list", "-o", "json", env=env, check_rc=0), cli("list", env=env, check_rc=0)]
    for result in outputs:
        assert canary not in result.stdout and canary not in result.stderr, result.args
    for name in ("jobs.db", "jobs.db-wal"):
        path = launch_home / name
        if path.exists():
            assert canary.encode() not in path.read_bytes(), name
    assert canary.encode() not in (launch_home / "local" / job / "handle.json").read_bytes()
    for path in launch_home.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), f"secret written to {path}"


def test_missing_secret(cli, write_spec, launch_home):
    spec = write_spec("name: nosecret\nsecrets: [MY_MISSING_TOKEN]\nrun: echo hi\n")
    assert "MY_MISSING_TOKEN" not in os.environ
    result = cli("run", str(spec), check_rc=2)
    assert "MY_MISSING_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr
    assert db_rows(launch_home) == 0
    assert local_dirs(launch_home) == []
    dry = cli("run", str(spec), "--dry-run", check_rc=0)
    assert "warning" in dry.stderr and "MY_MISSING_TOKEN" in dry.stderr
    json.loads(dry.stdout)


# -- dry run, idempotency, backends, accelerators ------------------------------------------


def test_dry_run_submits_nothing(cli, write_spec, launch_home, tmp_path):
    spec = write_spec("name: dry\nrun: touch " + str(tmp_path / "ran") + "\nresources: {nodes: 2}\n")
    result = cli("run", str(spec), "--dry-run", check_rc=0)
    request = json.loads(result.stdout)
    assert request["backend"] == "local"
    assert len(request["payload"]["nodes"]) == 2
    assert db_rows(launch_home) == 0
    assert local_dirs(launch_home) == []
    time.sleep(0.3)
    assert not (tmp_path / "ran").exists()
    assert "no jobs" in cli("list", check_rc=0).stdout


def test_idempotency_key(cli, write_spec, launch_home):
    spec = write_spec("name: idem\nrun: echo hi\n")
    first = submit(cli, spec, "--idempotency-key", "ci-run-42")
    second = cli("run", str(spec), "--idempotency-key", "ci-run-42", check_rc=0)
    assert first in second.stdout
    assert "already exists" in second.stdout
    assert not SUBMITTED.search(second.stdout)
    assert [p.name for p in local_dirs(launch_home)] == [first]
    assert len(json.loads(cli("list", "-o", "json", check_rc=0).stdout)) == 1


def test_idempotency_key_with_concurrent_submits(write_spec, launch_home):
    spec = write_spec("name: racing\nrun: echo hi\n")
    env = {**os.environ, "LAUNCH_HOME": str(launch_home)}
    procs = [subprocess.Popen([sys.executable, "-m", "launcher", "run", str(spec), "--idempotency-key", "same"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    ids = [re.search(r"^(?:job|submitted) (\S+) ", out).group(1) for out, _ in outs]
    assert len(set(ids)) == 1, outs
    assert sum("already exists" in out for out, _ in outs) == 3, outs
    assert len(local_dirs(launch_home)) == 1


def test_unknown_backend(cli, write_spec):
    result = cli("run", str(write_spec("name: nb\nrun: echo hi\n")), "--backend", "nope", check_rc=2)
    assert "unknown backend" in result.stderr
    assert "Traceback" not in result.stderr


def test_gpu_request_warns_but_runs_locally(cli, write_spec):
    spec = write_spec("name: gpu\nrun: echo gpus=$LAUNCH_GPUS_PER_NODE\nresources: {accelerators: 'H100:8'}\n")
    result = cli("run", str(spec), "--follow", check_rc=0)
    assert "warning" in result.stderr.lower() and "GPU" in result.stderr
    assert "gpus=8" in result.stdout.splitlines()


# -- list, prefixes, sync ------------------------------------------------------------------


def test_list_filters_and_prefixes(cli, write_spec):
    ok = SUBMITTED.search(cli("run", str(write_spec("name: alpha\nrun: echo ok\n")), "--wait",
                              check_rc=0).stdout).group(1)
    bad = SUBMITTED.search(cli("run", str(write_spec("name: alpine\nrun: exit 1\n", "b.yaml")), "--wait",
                               check_rc=1).stdout).group(1)
    succeeded = json.loads(cli("list", "--state", "SUCCEEDED", "-o", "json", check_rc=0).stdout)
    assert [r["id"] for r in succeeded] == [ok]
    failed = json.loads(cli("list", "--state", "failed", "-o", "json", check_rc=0).stdout)
    assert [r["id"] for r in failed] == [bad]
    local = json.loads(cli("list", "--backend", "local", "-o", "json", check_rc=0).stdout)
    assert {r["id"] for r in local} == {ok, bad}
    assert json.loads(cli("list", "--backend", "ssh", "-o", "json", check_rc=0).stdout) == []
    table = cli("list", check_rc=0).stdout
    assert ok in table and bad in table
    assert status_json(cli, ok[:12])["id"] == ok
    assert status_json(cli, bad[:12])["id"] == bad
    ambiguous = cli("status", "alp", check_rc=2)
    assert "several jobs" in ambiguous.stderr and ok in ambiguous.stderr and bad in ambiguous.stderr
    unknown = cli("status", "no-such-job", check_rc=2)
    assert "no job matches" in unknown.stderr
    cli("logs", "no-such-job", check_rc=2)
    cli("cancel", "no-such-job", check_rc=2)
    cli("wait", "no-such-job", check_rc=2)


def test_commands_without_a_job_mean_the_newest_and_say_so(cli, write_spec, launch_home):
    for command in ("status", "logs", "wait", "cancel"):
        empty = cli(command, check_rc=2)
        assert "no jobs yet" in empty.stderr and "Traceback" not in empty.stderr
    older = submit(cli, write_spec("name: same\nrun: echo older\n"))
    newer = submit(cli, write_spec("name: same\nrun: echo newer; sleep 60\nbackends: {local: {cancel_grace: 1s}}\n",
                                   "b.yaml"))
    said = f"(no JOB given: the newest job, {newer})"
    shown = cli("status", "-o", "json", check_rc=0)
    assert json.loads(shown.stdout)["id"] == newer and said in shown.stderr
    assert said not in shown.stdout  # stdout stays the answer alone
    wait_for_log(launch_home, newer, "newer")
    lines = cli("logs", check_rc=0).stdout.splitlines()
    assert "newer" in lines and "older" not in lines
    cancelled = cli("cancel", check_rc=0)
    assert cancelled.stdout.startswith(f"{newer}: CANCELL") and said in cancelled.stderr
    assert cli("wait", check_rc=3).stderr.count(said) == 1
    assert status_json(cli, older)["state"] == "SUCCEEDED"  # the older job was never touched
    both = cli("cancel", older, "--group", "x", check_rc=2)
    assert "not both" in both.stderr


def test_verbose_and_debug_work_after_the_subcommand(cli):
    assert cli("list", "-v", check_rc=0).stdout.startswith("no jobs yet")
    plain = cli("status", "no-such-job", check_rc=2)
    assert "Traceback" not in plain.stderr
    debug = cli("status", "no-such-job", "--debug", check_rc=2)
    assert "Traceback" in debug.stderr and "no job matches" in debug.stderr
    assert "--debug" in cli("status", "--help", check_rc=0).stdout


def test_catalog_with_an_unknown_backend_names_the_real_ones(cli):
    typo = cli("catalog", "-b", "aws", check_rc=2)
    assert "no backend 'aws'" in typo.stderr and "sagemaker" in typo.stderr and "vertex" in typo.stderr
    no_rows = cli("catalog", "-b", "local", check_rc=2)
    assert "machines you provide" in no_rows.stderr
    assert "ml.p5.48xlarge" in cli("catalog", "-b", "sagemaker", check_rc=0).stdout


def test_list_sync_readopts_jobs_after_the_db_is_lost(cli, write_spec, launch_home):
    result = cli("run", str(write_spec("name: lost-job\nrun: echo hi\n")), "--wait", check_rc=0)
    job = SUBMITTED.search(result.stdout).group(1)
    for name in ("jobs.db", "jobs.db-wal", "jobs.db-shm"):
        (launch_home / name).unlink(missing_ok=True)
    assert json.loads(cli("list", "-o", "json", check_rc=0).stdout) == []
    synced = cli("list", "--sync", "-o", "json", check_rc=0)
    records = json.loads(synced.stdout)
    assert [(r["id"], r["name"], r["state"], r["exit_code"]) for r in records] == [(job, "lost-job", "SUCCEEDED", 0)]
    assert "1 added" in synced.stderr
    again = cli("list", "--sync", "-o", "json", check_rc=0)
    assert len(json.loads(again.stdout)) == 1
    assert "hi" in cli("logs", job, check_rc=0).stdout.splitlines()


def test_idempotency_key_survives_a_lost_history(cli, write_spec, launch_home):
    spec = write_spec("name: once\nrun: echo ran-once\n")
    first = SUBMITTED.search(cli("run", str(spec), "--idempotency-key", "ci-55", "--wait", check_rc=0).stdout).group(1)
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    again = cli("run", str(spec), "--idempotency-key", "ci-55", check_rc=0)
    assert first in again.stdout and "already exists" in again.stdout
    assert len(list((launch_home / "local").iterdir())) == 1


def test_tail_reads_from_the_end_of_a_big_log(cli, write_spec):
    spec = write_spec("name: big\nrun: python3 -c \"[print('row', i) for i in range(200000)]\"\n")
    job = SUBMITTED.search(cli("run", str(spec), "--wait", check_rc=0).stdout).group(1)
    tail = cli("logs", job, "--tail", "3", check_rc=0).stdout.splitlines()
    assert tail == ["row 199998", "row 199999", "[launch] exit code 0"]
    assert cli("logs", job, "--tail", "0", "-f", check_rc=0).stdout == ""


def test_adopted_job_keeps_its_exit_code(cli, write_spec, launch_home):
    spec = write_spec("name: boom\nrun: echo boom; exit 7\n")
    first = cli("run", str(spec), "--idempotency-key", "k-boom", "--wait")
    assert first.returncode == 1
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    again = cli("run", str(spec), "--idempotency-key", "k-boom", "--wait")
    assert again.returncode == 1, again.stderr
    job = SUBMITTED.search(first.stdout).group(1)
    record = status_json(cli, job)
    assert record["exit_code"] == 7 and record["ended_at"] is not None
