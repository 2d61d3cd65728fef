"""The `local` backend in-process, with real detached processes (no mocks).

Each test renders a small spec, submits it through LocalBackend and watches the
real process groups under this test's LAUNCH_HOME. The CLI around it is tested
in test_cli_local.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from helpers import live_group_members

from backends.local import LocalBackend
from launcher import config, procs
from launcher.backend import Handle, JobState
from launcher.bundle import pack
from launcher.runner import new_job_id
from launcher.spec import parse_spec


def pid_gone(pid: int) -> bool:
    """No process with this pid any more (a not-yet-reaped zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X")


def wait_group_gone(pgid: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = live_group_members(pgid)
        if not left and pid_gone(pgid):
            return []
        time.sleep(0.05)
    return live_group_members(pgid) or [pgid]


class Job:
    """A submitted job: its backend, handle and directories."""

    def __init__(self, backend: LocalBackend, handle: Handle) -> None:
        self.backend = backend
        self.handle = handle
        self.dir = Path(handle.data["job_dir"])

    @property
    def nodes(self) -> list[dict]:
        return self.handle.data["nodes"]

    def log(self, rank: int = 0) -> str:
        return (self.dir / f"node-{rank}" / "log").read_text()

    def status(self):
        return self.backend.status(self.handle)

    def wait(self, timeout: float = 20.0):
        """Until the job has ended, then its `finish`, as the runner does once it sees the end."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status.state.is_terminal:
                self.backend.finish(self.handle, status)
                return status
            assert time.monotonic() < deadline, f"job still {status.state} after {timeout}s: {status.message}"
            time.sleep(0.05)

    def wait_running(self, marker: str | None = None, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ready = self.status().state == JobState.RUNNING and (
                marker is None or all(marker in self.log(n["rank"]) for n in self.nodes))
            if ready:
                return
            assert time.monotonic() < deadline, f"job never reached RUNNING with {marker!r} in its log"
            time.sleep(0.05)


@pytest.fixture
def submit(launch_home: Path, tmp_path: Path):
    """Render and submit a spec text with the local backend; returns a Job."""

    def run(text: str, secrets: dict[str, str] | None = None, overrides: tuple[str, ...] = ()) -> Job:
        spec_file = tmp_path / "spec.yaml"
        spec_file.write_text(text)
        spec = parse_spec(text, str(spec_file), overrides, base_dir=tmp_path)
        backend = LocalBackend(spec.backends.get("local", {}))
        bundle = pack(Path(spec.code), config.home() / "bundles")[0] if spec.code else None
        request = backend.render(spec, new_job_id(spec.name), bundle, secrets or {})
        job = Job(backend, backend.submit(request))
        jobs.append(job)
        return job

    jobs: list[Job] = []
    yield run
    for job in jobs:  # never leave a process behind, whatever the test did
        for node in job.nodes:
            if procs.is_alive(node["pid"], node.get("start")):  # still ours, not a reused pid
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(node["pgid"], signal.SIGKILL)


def test_every_node_sees_the_launch_environment(submit):
    job = submit("name: envcheck\n"
                 "run: env | grep '^LAUNCH_' | sort; echo cwd=$PWD\n"
                 "resources: {nodes: 2}\n")
    status = job.wait()
    assert status.state == JobState.SUCCEEDED, status.message
    assert status.exit_code == 0
    seen = []
    for rank in (0, 1):
        env = dict(line.split("=", 1) for line in job.log(rank).splitlines()
                   if line.startswith("LAUNCH_"))
        seen.append(env)
        assert env["LAUNCH_JOB_ID"] == job.handle.job_id
        assert env["LAUNCH_NODE_RANK"] == str(rank)
        assert env["LAUNCH_NUM_NODES"] == "2"
        assert env["LAUNCH_GPUS_PER_NODE"] == "0"
        assert env["LAUNCH_MASTER_ADDR"] == "127.0.0.1"
        assert 1024 < int(env["LAUNCH_MASTER_PORT"]) < 65536
        assert Path(env["LAUNCH_OUTPUT_DIR"]).is_dir()
        assert Path(env["LAUNCH_CHECKPOINT_DIR"]).is_dir()
        # the bootstrap's own inputs are not leaked into the job
        for internal in ("LAUNCH_RUN", "LAUNCH_SETUP", "LAUNCH_BUNDLE", "LAUNCH_WORKDIR", "LAUNCH_EXIT_FILE"):
            assert internal not in env
        assert f"cwd={job.dir / f'node-{rank}' / 'work'}" in job.log(rank)
        assert (job.dir / f"node-{rank}" / "exit_code").read_text().strip() == "0"
    assert seen[0]["LAUNCH_MASTER_PORT"] == seen[1]["LAUNCH_MASTER_PORT"]


def test_render_is_pure_and_submits_nothing(launch_home, tmp_path):
    text = "name: pure\nrun: echo hi\nenv: {A: b}\nresources: {nodes: 2}\n"
    spec = parse_spec(text, str(tmp_path / "spec.yaml"))
    backend = LocalBackend({})
    first = backend.render(spec, "pure-20250101-000000-abcdef", None, {"S": "v"})
    second = backend.render(spec, "pure-20250101-000000-abcdef", None, {"S": "v"})
    assert first == second
    assert [n["env"]["LAUNCH_NODE_RANK"] for n in first.payload["nodes"]] == ["0", "1"]
    assert not (launch_home / "local").exists()


def test_resubmit_of_same_job_adopts_instead_of_starting_again(submit):
    job = submit("name: once\nrun: echo started-once; sleep 30\n")
    job.wait_running("started-once")
    request = job.backend.render(parse_spec("name: once\nrun: echo started-once; sleep 30\n", "s.yaml"),
                                 job.handle.job_id, None, {})
    assert job.backend.submit(request).data["nodes"] == job.nodes
    # an interrupted submit (process started, handle.json not yet written) is adopted too
    (job.dir / "handle.json").unlink()
    assert job.backend.submit(request).data["nodes"][0]["pid"] == job.nodes[0]["pid"]
    time.sleep(0.3)
    assert job.log().count("started-once") == 1
    job.backend.cancel(job.handle)
    assert job.status().state == JobState.CANCELLED


def test_failed_job_reports_exit_code_not_its_output(submit):
    """The message names the node and code; the job's output (which may print a secret) stays
    in its log and is shown by the CLI, never copied into the status that the store keeps."""
    job = submit("name: failing\nrun: echo context-before-failure; exit 3\n")
    status = job.wait()
    assert status.state == JobState.FAILED
    assert status.exit_code == 3
    assert status.message == "node 0 exited with code 3"
    assert status.ended_at is not None and status.started_at is not None


def test_node_killed_from_outside_is_failed_not_running(submit):
    job = submit("name: killed\nrun: echo up; sleep 30\n")
    job.wait_running("up")
    os.killpg(job.nodes[0]["pgid"], signal.SIGKILL)
    status = job.wait(timeout=5)
    assert status.state == JobState.FAILED
    assert "without recording an exit code" in status.message


def test_cancel_stops_every_process_of_every_node(submit):
    # background grandchildren share the node's process group and must go too
    job = submit("name: cancelme\n"
                 "run: sleep 60 & sleep 60 & echo children-started; wait\n"
                 "resources: {nodes: 2}\n"
                 "backends: {local: {cancel_grace: 20s}}\n")
    job.wait_running("children-started")
    groups = [n["pgid"] for n in job.nodes]
    assert all(len(live_group_members(g)) >= 3 for g in groups)
    started = time.monotonic()
    job.backend.cancel(job.handle)
    assert time.monotonic() - started < 10, "a job that honours SIGTERM must not wait for the grace period"
    for pgid in groups:
        assert wait_group_gone(pgid) == []
    status = job.status()
    assert status.state == JobState.CANCELLED
    job.backend.cancel(job.handle)  # safe to repeat
    assert job.status().state == JobState.CANCELLED


def test_cancel_sigkills_a_job_that_ignores_sigterm_after_the_grace(submit):
    job = submit("name: stubborn\n"
                 "run: trap '' TERM; echo ignoring-term; sleep 60\n"
                 "backends: {local: {cancel_grace: 2s}}\n")
    job.wait_running("ignoring-term")
    started = time.monotonic()
    job.backend.cancel(job.handle)
    took = time.monotonic() - started
    assert 1.8 <= took < 10, f"cancel took {took:.1f}s with a 2s grace"
    assert wait_group_gone(job.nodes[0]["pgid"]) == []
    assert job.status().state == JobState.CANCELLED


def test_cancel_of_a_finished_job_keeps_its_outcome(submit):
    job = submit("name: done\nrun: echo finished\n")
    assert job.wait().state == JobState.SUCCEEDED
    job.backend.cancel(job.handle)
    status = job.status()
    assert status.state == JobState.SUCCEEDED
    assert status.exit_code == 0
    assert not (job.dir / "cancel_requested").exists()


def test_one_failed_node_ends_the_whole_job(submit):
    job = submit("name: onefails\n"
                 "run: '[ \"$LAUNCH_NODE_RANK\" = 1 ] && exit 7; sleep 30'\n"
                 "resources: {nodes: 3}\n")
    started = time.monotonic()
    status = job.wait(timeout=15)
    assert time.monotonic() - started < 10
    assert status.state == JobState.FAILED
    assert status.exit_code == 7
    assert "node 1" in status.message
    for node in job.nodes:
        assert wait_group_gone(node["pgid"]) == [], f"node {node['rank']} still runs"


def test_job_exit_code_is_the_first_failure_not_a_later_one(submit):
    """Node 1 crashes first (7); node 0 fails later as a consequence (1). Nobody polls in
    between, as when nobody runs `launch wait`. The job's exit code is the root cause."""
    job = submit("name: cascade\n"
                 "run: 'if [ \"$LAUNCH_NODE_RANK\" = 1 ]; then exit 7; fi; sleep 1; exit 1'\n"
                 "resources: {nodes: 2}\n")
    deadline = time.monotonic() + 10
    while not all((job.dir / f"node-{r}" / "exit_code").exists() for r in (0, 1)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    status = job.status()
    assert status.state == JobState.FAILED
    assert status.exit_code == 7, status.message
    assert status.message.startswith("node 1 "), status.message


def test_logs_hold_back_a_partial_line_and_resume_from_the_cursor(submit):
    job = submit("name: holdback\n"
                 "run: echo head; printf par; sleep 1.5; printf 'tial\\n'; echo after\n")
    deadline = time.monotonic() + 10
    while not job.log().endswith("head\npar"):
        assert time.monotonic() < deadline, job.log()
        time.sleep(0.02)
    early = list(job.backend.logs(job.handle))
    assert job.status().state == JobState.RUNNING
    texts = [text for block in early for text in block.lines()]  # blocks of lines, flattened
    assert texts[-1] == "head", "a partial line must not be shown while the node runs"
    job.wait()
    rest = [text for block in job.backend.logs(job.handle, since=early[-1].cursor) for text in block.lines()]
    assert rest[0] == "partial"
    assert "after" in rest
    everything = [text for block in job.backend.logs(job.handle) for text in block.lines()]
    assert everything == texts + rest
    assert list(job.backend.logs(job.handle, since=job_last_cursor(job))) == []


def job_last_cursor(job: Job):
    return list(job.backend.logs(job.handle))[-1].cursor


def test_log_cursor_of_a_multi_node_job_covers_every_node(submit):
    """Reading again from the last line's cursor must not repeat any node's lines."""
    job = submit("name: cursors\nrun: echo line-a; echo line-b\nresources: {nodes: 3}\n")
    assert job.wait().state == JobState.SUCCEEDED
    lines = list(job.backend.logs(job.handle))
    assert {line.node for line in lines} == {0, 1, 2}
    again = [(b.node, t) for b in job.backend.logs(job.handle, since=lines[-1].cursor) for t in b.lines()]
    assert again == []
    only_one = [line for line in job.backend.logs(job.handle, node=1)]
    assert {line.node for line in only_one} == {1}


def test_env_values_arrive_literally_and_secrets_stay_out_of_files(submit, launch_home, tmp_path):
    marker = tmp_path / "pwned"
    canary = f"canary-{os.getpid()}-{time.time_ns()}"
    (tmp_path / "expected").write_text(canary)  # the job compares against it without the spec holding it
    job = submit("name: literal\n"
                 f"env: {{A: \"x y $(touch {marker}) `touch {marker}` 'q'\"}}\n"
                 "secrets: [MY_TOKEN]\n"
                 "run: printf 'A=%s\\n' \"$A\"; [ \"$MY_TOKEN\" = \"$(cat " + str(tmp_path / "expected") + ")\" ]"
                 " && echo token-ok\n", secrets={"MY_TOKEN": canary})
    assert job.wait().state == JobState.SUCCEEDED
    log = job.log()
    assert f"A=x y $(touch {marker}) `touch {marker}` 'q'" in log
    assert not marker.exists()
    assert "token-ok" in log
    for path in launch_home.rglob("*"):
        if path.is_file():
            assert canary.encode() not in path.read_bytes(), f"secret value written to {path}"


def test_list_finds_jobs_from_their_directories(submit, launch_home):
    job = submit("name: my-listed-job\nrun: echo hi\n")
    assert job.wait().state == JobState.SUCCEEDED
    summaries = list(LocalBackend({}).list())
    assert [s.handle.job_id for s in summaries] == [job.handle.job_id]
    assert summaries[0].name == "my-listed-job"
    assert summaries[0].status.state == JobState.SUCCEEDED
    handle_json = json.loads((job.dir / "handle.json").read_text())
    assert Handle.from_json(handle_json) == job.handle
    assert list(LocalBackend({}).list(since=time.time() + 60)) == []


# -- distributed: torchrun without a torchrun --------------------------------------------------

BARE_PATH = "/usr/bin:/bin"  # no virtualenv on it: where a user's shell is before `activate`


@pytest.fixture
def warnings_seen(capsys):
    """What launch's logger warns about during the test (its handler binds stderr once)."""
    from launcher import logs

    logs.get.cache_clear()
    yield lambda: capsys.readouterr().err
    logs.get.cache_clear()


def torchrun_spec(setup: str = "", path: str = BARE_PATH) -> str:
    return ("name: dist\nrun: echo worker $LAUNCH_NODE_RANK\ndistributed: torchrun\n"
            f"env: {{PATH: '{path}'}}\n" + (f"setup: {setup}\n" if setup else ""))


def test_torchrun_missing_is_refused_before_anything_starts(submit, launch_home):
    import shutil
    import sys

    from launcher.errors import UsageError

    assert shutil.which("torchrun", path=BARE_PATH) is None  # the premise of this test
    with pytest.raises(UsageError) as info:
        submit(torchrun_spec())
    assert "no torchrun command on the PATH the job runs with" in info.value.message
    here = Path(sys.executable).parent
    if (here / "torchrun").exists():  # launch's own venv has torch: say to activate it
        assert str(here) in info.value.hint and "not on PATH" in info.value.hint
    else:
        assert "pip install torch" in info.value.hint
    assert not any((launch_home / "local").glob("*/node-0")), "nothing may start"


def test_torchrun_hint_without_torch_in_launchs_environment(submit, monkeypatch, tmp_path):
    import sys

    from launcher.errors import UsageError

    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python3"))
    with pytest.raises(UsageError) as info:
        submit(torchrun_spec())
    assert "pip install torch" in info.value.hint and "activate" in info.value.hint


def test_torchrun_missing_after_setup_fails_with_a_hint_in_the_log(submit, warnings_seen):
    """setup: may install torch, so the submit only warns; if it did not, the node says why
    instead of `torchrun: not found`."""
    job = submit(torchrun_spec(setup="echo setting up"))
    assert "no torchrun command on the PATH" in warnings_seen()
    status = job.wait()
    assert status.state == JobState.FAILED and status.exit_code == 127
    log = job.log()
    assert "setting up" in log  # setup ran first
    assert "there is no torchrun command on this node" in log
    assert "hint: install PyTorch where the job runs" in log and "activate the environment" in log
    assert "not found" not in log


def test_torchrun_on_the_jobs_path_runs_the_job_through_it(submit, tmp_path, warnings_seen):
    stub = tmp_path / "torch-bin"
    stub.mkdir()
    (stub / "torchrun").write_text('#!/bin/sh\necho "via torchrun $1 $2"\nshift 6\nexec "$@"\n')
    (stub / "torchrun").chmod(0o755)
    job = submit(torchrun_spec(path=f"{stub}:{BARE_PATH}"))
    status = job.wait()
    assert status.state == JobState.SUCCEEDED, job.log()
    assert "via torchrun --nnodes=1 --nproc_per_node=1" in job.log() and "worker 0" in job.log()
    assert "torchrun" not in warnings_seen()
