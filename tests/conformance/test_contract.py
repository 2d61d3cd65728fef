"""The backend contract (launcher/backend.py), checked on every backend against its fake.

Parametrized by conftest.py's `world` fixture over the registry plus the test plugin: a new backend
gets every check here by adding one World builder. The checks call the backend the way the runner
does (runner.prepare renders with masked or real secrets; then the backend answers one question
at a time), in this process, so sockets and the clock can be taken away from render.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conformance.conftest import FIRST, LINE_PREFIX, REPO, SECOND, SECRET_NAME, SECRET_VALUE, Setup
from launcher import config, registry, runner
from launcher.backend import Backend, Handle, JobState, LogLine, Request, Status
from launcher.bundle import pack
from launcher.errors import EXIT_USAGE
from launcher.spec import load_spec

MASK = runner.MASK


# -- helpers ------------------------------------------------------------------------------------------------------


def prepared(setup: Setup, *, dry_run: bool, key: str | None = None) -> tuple[Backend, Request]:
    """runner.prepare: settings merged and checked, code packed, secrets read (masked for a dry run), rendered."""
    _, backend, request, _ = runner.prepare(load_spec(str(setup.spec_file)), setup.world.name, dry_run=dry_run,
                                            idempotency_key=key)
    return backend, request


def backend_and_spec(setup: Setup) -> tuple[Backend, Any]:
    """The backend and the spec as its render sees it (config < spec settings)."""
    user_spec = load_spec(str(setup.spec_file))
    return runner.backend_and_spec(setup.world.name, user_spec)


def submitted(setup: Setup, key: str | None = None) -> tuple[Backend, Handle]:
    backend, request = prepared(setup, dry_run=False, key=key)
    return backend, backend.submit(request)


def canonical(request: Request, *, secret: str | None = None) -> str:
    """The request as bytes to compare, the secret's value (real only in what submit sends) masked."""
    text = json.dumps(request.to_display(), sort_keys=True)
    return text.replace(secret, MASK) if secret else text


def differences(sent: Any, shown: Any, path: str = "") -> list[str]:
    """Where two JSON values differ, as `path: sent | shown` lines (a long payload's diff, readable)."""
    if isinstance(sent, dict) and isinstance(shown, dict):
        return [line for key in sorted(set(sent) | set(shown), key=str)
                for line in differences(sent.get(key, "<absent>"), shown.get(key, "<absent>"), f"{path}.{key}")]
    if isinstance(sent, list) and isinstance(shown, list) and len(sent) == len(shown):
        return [line for i, (a, b) in enumerate(zip(sent, shown, strict=True))
                for line in differences(a, b, f"{path}[{i}]")]
    return [] if sent == shown else [f"{path or '.'}: sent {sent!r:.160} | dry run {shown!r:.160}"]


def read(backend: Backend, handle: Handle, since: Any) -> tuple[list[str], Any]:
    """The lines after `since` and the cursor after them, as the runner's follow reads them (a generator
    may return a cursor where it moved on without a line)."""
    lines: list[str] = []
    cursor = since
    stream = iter(backend.logs(handle, since=since))
    while True:
        try:
            block: LogLine = next(stream)
        except StopIteration as end:
            return lines, cursor if end.value is None else end.value
        lines.extend(block.lines())
        cursor = block.cursor


def counted(setup: Setup, lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(setup.world.line_prefix)]


def wait_status(backend: Backend, handle: Handle, done: Any, timeout: float = 60) -> Status:
    deadline = time.monotonic() + timeout
    while True:
        status = backend.status(handle)
        if done(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


# -- render ---------------------------------------------------------------------------------------------------------


def test_render_is_pure(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """No network, clock or randomness: two renders of the same job under different frozen clocks and
    random sources, with every socket refused, are the same request byte for byte."""
    backend, spec = backend_and_spec(setup)
    bundle = pack(Path(spec.code), config.home() / "bundles")[0] if spec.code else None
    job_id = runner.new_job_id(spec.name)
    secrets = {SECRET_NAME: SECRET_VALUE}

    def no_network(*args: Any, **kw: Any) -> Any:
        raise AssertionError(f"render opened a connection: {args!r}")

    for target, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"), (socket, "create_connection"),
                         (socket, "getaddrinfo")):
        monkeypatch.setattr(target, name, no_network)

    def render_at(clock: float, seed: int) -> str:
        with monkeypatch.context() as frozen:
            frozen.setattr(time, "time", lambda: clock)
            frozen.setattr(time, "time_ns", lambda: int(clock * 1e9))
            frozen.setattr(time, "monotonic", lambda: clock)
            frozen.setattr(uuid, "uuid4", lambda: uuid.UUID(int=seed))
            frozen.setattr(os, "urandom", lambda n: bytes([seed % 256]) * n)
            random.seed(seed)
            request = backend.render(spec, job_id, bundle, secrets)
        return json.dumps(request.to_display(), sort_keys=True)

    assert render_at(1_700_000_000.0, 1) == render_at(1_800_000_000.5, 2)


def test_dry_run_is_what_submit_sends(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dry run shows the request submit sends, secrets masked: as rendered, and as the provider
    received it. Both get the same job id (values derived from it, a port, a name, must match too)."""
    job_id = runner.new_job_id("conformance")
    monkeypatch.setattr(runner, "new_job_id", lambda name, now=None: job_id)
    _, dry = prepared(setup, dry_run=True)
    assert SECRET_VALUE not in json.dumps(dry.to_display())
    backend, real = prepared(setup, dry_run=False)
    assert canonical(real, secret=SECRET_VALUE) == canonical(dry)
    sent_before = len(setup.world.sent()) if setup.world.sent else 0
    backend.submit(real)
    if setup.world.sent is not None:
        sent = setup.world.sent()[sent_before:]
        assert len(sent) == 1, f"{len(sent)} create requests for one submit"
        body = json.loads(json.dumps(sent[0]).replace(SECRET_VALUE, MASK))
        for path in setup.world.filled_by_provider:
            *parents, leaf = path.split(".")
            at, shown = body, dry.payload
            for part in parents:
                at, shown = at[part], shown[part]
            assert at.get(leaf), f"the provider got no {path}"
            at[leaf] = shown[leaf]
        differ = differences(setup.world.wire(body), setup.world.wire(dry.payload))
        assert not differ, "what the provider received is not what the dry run shows:\n" + "\n".join(differ)


# -- status, cancel --------------------------------------------------------------------------------------------------


def test_status_has_no_side_effects(setup: Setup) -> None:
    """Two status calls, on a running job and on one that ended, change nothing the provider shows: no job
    stopped, no machine given back, no file written, no mutating request."""
    backend, running = submitted(setup)
    setup.show_first_lines(running)
    backend, ended = submitted(setup)
    setup.end(ended)
    for handle in (running, ended):
        before = setup.world.observe()
        first, second = backend.status(handle), backend.status(handle)
        assert setup.world.observe() == before, f"status of {handle.job_id} changed what the provider holds"
        assert (first.state, first.raw_state) == (second.state, second.raw_state)
    status = backend.status(ended)
    assert status.state is JobState.SUCCEEDED
    backend.finish(ended, status)  # where what status may not do happens: once, and safe to repeat
    backend.finish(ended, status)
    assert backend.status(ended).state is JobState.SUCCEEDED


def test_status_stops_nothing_when_one_node_failed(setup: Setup) -> None:
    """Node 1 of 2 fails while node 0 still runs: status says FAILED and leaves node 0 alone (two calls,
    nothing changes); `finish` is what stops it. (Backends that run nodes themselves: NODE_RUNNERS.)"""
    text = setup.spec_file.read_text().replace("resources:\n", "resources:\n  nodes: 2\n", 1)
    text = text.replace('run: "', 'run: "if [ \\"$LAUNCH_NODE_RANK\\" = 1 ]; then exit 3; fi; ', 1)
    assert "nodes: 2" in text and "exit 3" in text, text
    setup.spec_file.write_text(text)
    backend, handle = submitted(setup)
    setup.world.end(handle)  # returns once a node has ended: node 1 (node 0 waits for its go file)
    before = setup.world.observe()
    first, second = backend.status(handle), backend.status(handle)
    assert setup.world.observe() == before, "status stopped or changed something"
    assert first.state is second.state is JobState.FAILED, first
    backend.finish(handle, first)
    assert setup.world.observe() != before, "finish left the surviving node running"


def test_cancel_is_repeat_safe_and_works_on_an_ended_job(setup: Setup) -> None:
    backend, running = submitted(setup)
    setup.show_first_lines(running)
    backend.cancel(running)
    backend.cancel(running)
    state = wait_status(backend, running, lambda s: s.state.is_terminal or s.state is JobState.CANCELLING).state
    assert state in (JobState.CANCELLED, JobState.CANCELLING) or \
        (setup.world.name == "echo" and state is JobState.SUCCEEDED), state  # echo's job ends at submit
    backend.cancel(running)  # and once more now that it is over
    _, ended = submitted(setup)
    setup.end(ended)
    assert wait_status(backend, ended, lambda s: s.state.is_terminal).state is JobState.SUCCEEDED
    backend.cancel(ended)
    backend.cancel(ended)
    assert backend.status(ended).state is JobState.SUCCEEDED, "cancel changed a finished job's result"


@pytest.mark.filterwarnings("ignore:Unrecognized JobState enum value")  # proto-plus, on Vertex's new state
def test_an_unknown_raw_state_reads_unknown(setup: Setup) -> None:
    """A state the provider added after this version reads UNKNOWN, raw text kept: never a KeyError.
    (Backends that judge a job from its exit codes have no raw states: NO_RAW_STATES deselects them.)"""
    assert setup.world.set_raw_state is not None, f"{setup.world.name}: add it to NO_RAW_STATES or set set_raw_state"
    backend, handle = submitted(setup)
    raw = setup.world.set_raw_state(handle, "ConformanceNewState")
    status = backend.status(handle)
    assert status.state is JobState.UNKNOWN
    assert raw in status.raw_state


# -- list, find -------------------------------------------------------------------------------------------------------


def test_a_submitted_job_is_found_by_list_and_by_its_key(setup: Setup) -> None:
    key = f"conformance-{os.getpid()}-{time.monotonic_ns()}"
    backend, handle = submitted(setup, key=key)
    listed = {summary.handle.job_id: summary for summary in backend.list()}
    assert handle.job_id in listed
    found = backend.find(key)
    assert found is not None and found.handle.job_id == handle.job_id
    assert backend.find(key + "-other") is None
    again = backend.status(found.handle)  # the handle found again is one the backend can follow
    assert again.state is not JobState.UNKNOWN or again.raw_state


# -- logs -------------------------------------------------------------------------------------------------------------


def test_logs_resume_from_a_cursor_without_loss_or_repeats(setup: Setup) -> None:
    """Lines read, then the job prints more and ends: reading on from the cursor gives exactly the new
    lines, and what was read in two goes is the whole log read in one."""
    backend, handle = submitted(setup)
    setup.show_first_lines(handle)
    suite_lines = setup.world.line_prefix == LINE_PREFIX  # echo prints its run command only, at submit
    first, cursor = poll(lambda got: counted(setup, got) == FIRST if suite_lines else bool(got), backend, handle, None)
    setup.end(handle)
    cursor = json.loads(json.dumps(cursor))  # as `launch ui` keeps it between reconnects (an SSE event id)
    rest, cursor = poll(lambda got: counted(setup, got) == SECOND or not suite_lines, backend, handle, cursor)
    whole, _ = read(backend, handle, None)
    assert first + rest == whole, "reading on from a cursor lost or repeated lines"
    assert read(backend, handle, cursor)[0] == [], "the last cursor still had lines behind it"


def poll(enough: Any, backend: Backend, handle: Handle, cursor: Any, timeout: float = 60) -> tuple[list[str], Any]:
    """Read on from `cursor` until the lines read are `enough` (logs services lag; a job takes a moment)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        lines, cursor = read(backend, handle, cursor)
        got += lines
        if enough(got) or time.monotonic() > deadline:
            assert enough(got), f"after {timeout}s the logs read were {got!r}"
            return got, cursor
        time.sleep(0.2)


# -- the SDK ----------------------------------------------------------------------------------------------------------

HIDE = """import sys
roots = {roots!r}
for name in [m for m in sys.modules if m.split(".")[0] in roots]:
    del sys.modules[name]
sys.modules.update(dict.fromkeys(roots))
sys.argv = ["launch", *sys.argv[1:]]
from launcher.cli import run_main
run_main()
"""


def test_a_missing_sdk_is_exit_2_with_the_install_line(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real call without the provider SDK (its modules hidden) exits 2 with the pip line, no traceback."""
    world = setup.world
    # no SDK of its own: the backend must then run with every cloud SDK hidden
    roots = world.sdk or ("boto3", "botocore", "google", "azure", "requests")
    env = {**os.environ, "LAUNCH_HOME": str(setup.home), **world.env}
    result = subprocess.run([sys.executable, "-c", HIDE.format(roots=roots), "run", str(setup.spec_file),
                             "--backend", world.name], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    if not world.sdk:
        assert result.returncode == 0, result.stderr
        return
    monkeypatch.chdir(REPO)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert f"hint: {registry.install_line(world.extra)}" in result.stderr, result.stderr
