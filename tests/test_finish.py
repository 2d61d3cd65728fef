"""`status` is a query; what has to happen once a job has ended (stragglers stopped, machines given
back, logs saved) is the backend's `finish`, which the runner calls once per ended job and again
only when it failed. The ssh and Lambda backends' own cases are in test_ssh_backend.py and
test_lambda_e2e.py; the plugin's in test_plugin_backend.py."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import live_group_members

from backends.local import LocalBackend
from launcher import logs, registry, runner
from launcher.backend import Backend, Capabilities, Handle, JobState, LogLine, Readiness, Request, Status, Summary
from launcher.errors import BackendUnreachable, UsageError
from launcher.spec import parse_spec
from launcher.store import JobRecord, Store


def _record(store: Store, job_id: str, handle: Handle, state: JobState = JobState.RUNNING) -> JobRecord:
    now = time.time()
    return store.reserve(JobRecord(id=job_id, name="j", backend=handle.backend, handle=handle, spec={},
                                   state=state, created_at=now, updated_at=now))


def _until(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_local_status_stops_no_straggler_and_the_runners_finish_does(launch_home: Path, tmp_path: Path):
    """Node 1 fails while node 0 would sleep on: the job has FAILED, and asking says so without
    stopping node 0; the runner's refresh then finishes the job once, which stops it."""
    text = "name: straggle\nrun: '[ \"$LAUNCH_NODE_RANK\" = 1 ] && exit 7; sleep 60'\nresources: {nodes: 2}\n"
    backend = LocalBackend({})
    handle = backend.submit(backend.render(parse_spec(text, str(tmp_path / "s.yaml")), "straggle-20260101-000000-"
                                           "abcdef", None, {}))
    node0 = handle.data["nodes"][0]["pgid"]
    try:
        _until(lambda: (Path(handle.data["nodes"][1]["dir"]) / "exit_code").exists(), "node 1 to exit")
        for _ in range(3):
            status = backend.status(handle)
            assert (status.state, status.exit_code, status.message) == (JobState.FAILED, 7, "node 1 exited with code 7")
        assert live_group_members(node0), "status stopped a node: it must be a query"
        store = Store.open()
        record = runner.refresh(store, _record(store, handle.job_id, handle), backend)
        assert record.state is JobState.FAILED and record.finished_at is not None
        _until(lambda: not live_group_members(node0), "finish to stop node 0", timeout=5)
    finally:
        backend._stop(handle, grace_s=0)


class Ending(Backend):
    """A backend whose job has ended, counting `finish` calls; `failures` of them raise first."""

    name = "ending"
    capabilities = Capabilities()
    settings_model = None  # type: ignore[assignment]  # never validated here

    def __init__(self, settings: Any = None, client: Any = None, failures: int = 0) -> None:
        self.failures = failures
        self.finished: list[Status] = []
        self.asked = 0

    @classmethod
    def readiness(cls, settings: Any) -> Readiness:
        return Readiness(True, True)

    def render(self, spec: Any, job_id: str, bundle: Any, secrets: Any, *, idempotency_key: str | None = None
               ) -> Request:
        return Request(self.name, job_id, "end", {})

    def submit(self, request: Request) -> Handle:
        return Handle(self.name, request.job_id)

    def status(self, handle: Handle) -> Status:
        self.asked += 1
        return Status(JobState.FAILED, "ended", "node 0 exited with code 3", exit_code=3)

    def finish(self, handle: Handle, status: Status) -> None:
        self.finished.append(status)
        if self.failures:
            self.failures -= 1
            raise BackendUnreachable("the machines did not answer (test)")

    def logs(self, handle: Handle, *, follow: bool = False, since: Any = None,
             node: int | None = None) -> Iterator[LogLine]:
        yield from ()

    def cancel(self, handle: Handle) -> None:
        return None

    def list(self, *, since: float | None = None) -> Iterator[Summary]:
        yield from ()


def test_finish_runs_once_with_the_stored_outcome(launch_home: Path):
    store, backend = Store.open(), Ending()
    record = _record(store, "ending-20260101-000000-abcdef", Handle("ending", "ending-20260101-000000-abcdef"))
    for _ in range(4):  # the refreshes of wait, status, list --refresh...
        record = runner.refresh(store, store.get(record.id) or record, backend)
    assert backend.asked == 1, "a terminal state sticks: the provider is not asked again"
    assert [s.exit_code for s in backend.finished] == [3]
    assert backend.finished[0].message == "node 0 exited with code 3"
    assert store.get(record.id).finished_at is not None


def test_a_failed_finish_is_a_warning_and_is_tried_again(launch_home: Path):
    """Crash safety: the store says finished only after finish returned, so a failure (or a crash)
    in between leaves the next refresh to do it; the job's outcome is stored at once all the same."""
    store, backend = Store.open(), Ending(failures=1)
    job_id = "ending-20260101-000000-bcdefa"
    said: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda entry: said.append(entry.getMessage())  # type: ignore[method-assign]
    logs.get().addHandler(handler)
    try:
        record = runner.refresh(store, _record(store, job_id, Handle("ending", job_id)), backend)
    finally:
        logs.get().removeHandler(handler)
    assert record.state is JobState.FAILED and record.finished_at is None
    assert len(said) == 1 and "could not finish it" in said[0] and "the machines did not answer" in said[0]
    assert record.needs_refresh(all_backends=True) and not record.needs_refresh(all_backends=False)
    record = runner.refresh(store, record, backend)
    assert record.finished_at is not None and len(backend.finished) == 2
    runner.refresh(store, record, backend)
    assert len(backend.finished) == 2


def test_jobs_that_ended_before_the_upgrade_are_not_finished_again(launch_home: Path):
    """Their backend's status did the finishing back then: a store from before finish_at counts them done."""
    path = launch_home / "jobs.db"
    launch_home.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, handle TEXT, "
            "spec TEXT NOT NULL, state TEXT NOT NULL, raw_state TEXT NOT NULL DEFAULT '', message TEXT NOT NULL "
            "DEFAULT '', exit_code INTEGER, url TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
            "started_at REAL, ended_at REAL, idempotency_key TEXT UNIQUE, group_id TEXT, params TEXT); "
            "INSERT INTO jobs (id, name, backend, spec, state, created_at, updated_at) VALUES "
            "('old-done', 'old', 'local', '{}', 'SUCCEEDED', 1, 2), "
            "('old-running', 'old', 'local', '{}', 'RUNNING', 1, 2);"
            "PRAGMA user_version = 3;")
    store = Store.open()
    assert store.get("old-done").finished_at == 2
    assert store.get("old-running").finished_at is None


def test_a_class_that_is_no_backend_is_one_clear_error(monkeypatch: pytest.MonkeyPatch):
    """The core calls the contract's hooks without probing for them: a plugin class that does not
    subclass Backend is refused when loaded, not half-way through a run."""
    monkeypatch.setattr(registry, "_entry_point", lambda name: "json:JSONDecoder")
    registry.backend_class.cache_clear()
    try:
        with pytest.raises(UsageError) as refused:
            registry.backend_class("stranger")
    finally:
        registry.backend_class.cache_clear()
    assert "not a launcher.backend.Backend subclass" in refused.value.message
