"""The job store against real SQLite files and a real PostgreSQL server: permissions and WAL
(SQLite's own), round trips, prefixes, listing, and many `launch` processes writing the same
store at once. Tests of the interface take `store`, which runs them on both."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.backend import Handle, JobState, Status
from launcher.errors import UsageError
from launcher.store import JobRecord, JobStore, Store

T0 = 1_700_000_000.0


def make_record(job_id: str, *, backend: str = "local", created_at: float = T0, key: str | None = None,
                handle: Handle | None = None, state: JobState = JobState.PENDING) -> JobRecord:
    return JobRecord(
        id=job_id, name=job_id.rsplit("-", 1)[0], backend=backend, handle=handle,
        spec={"name": "bert", "run": "python train.py", "resources": {"nodes": 2, "accelerators": "H100:8"}},
        state=state, message="submitting", created_at=created_at, updated_at=created_at, idempotency_key=key,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobStore]:
    """The same interface on both implementations."""
    if request.param == "sqlite":
        s: JobStore = Store.open(tmp_path / "home")
    else:
        from launcher.store_pg import PgStore

        s = PgStore(request.getfixturevalue("pg_url"))
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "home")
    yield s
    s.close()


def _raw(store: JobStore, sql: str) -> None:
    """Damage a row behind the store's back, whichever database holds it."""
    store._transact(lambda execute: execute(sql, ()))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The store must be private whatever the user's umask (0 is the hardest case)."""
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


# --- files and modes -------------------------------------------------------------------------------------------

def test_db_file_0600_and_new_home_0700(tmp_path: Path, umask: int) -> None:
    home = tmp_path / "new" / "home"
    s = Store.open(home)
    try:
        assert _mode(home) == 0o700
        assert _mode(home / "jobs.db") == 0o600
    finally:
        s.close()


def test_open_without_home_uses_launch_home_private(launch_home: Path, umask: int) -> None:
    assert not launch_home.exists()
    s = Store.open()
    try:
        assert s.path == launch_home / "jobs.db"
        assert _mode(launch_home) == 0o700
        assert _mode(launch_home / "jobs.db") == 0o600
    finally:
        s.close()


def test_wal_and_shm_not_group_or_world_readable(tmp_path: Path, umask: int) -> None:
    home = tmp_path / "home"
    s = Store.open(home)
    try:
        s.reserve(make_record("bert-1"))
        s.set_status("bert-1", Status(JobState.RUNNING, started_at=T0 + 1))
        sidecars = [home / "jobs.db-wal", home / "jobs.db-shm"]
        assert all(p.exists() for p in sidecars), sorted(os.listdir(home))
        for path in [home / "jobs.db", *sidecars]:
            assert _mode(path) & 0o077 == 0, f"{path.name} is {oct(_mode(path))}"
    finally:
        s.close()


def test_wal_journal_mode_on(sqlite_store: Store) -> None:
    sqlite_store.reserve(make_record("bert-1"))
    # a fresh, independent connection sees the persistent journal mode of the file
    with sqlite3.connect(sqlite_store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopen_existing_store_keeps_data(tmp_path: Path) -> None:
    first = Store.open(tmp_path)
    first.reserve(make_record("bert-1"))
    first.close()
    second = Store.open(tmp_path)
    try:
        got = second.get("bert-1")
        assert got is not None and got.id == "bert-1"
    finally:
        second.close()


# --- round trips ----------------------------------------------------------------------------------------------

def test_reserve_get_round_trip_with_handle(store: JobStore) -> None:
    handle = Handle("sagemaker", "bert-1", {"arn": "arn:aws:sagemaker:us-east-1:1:training-job/bert-1",
                                            "region": "us-east-1", "nested": {"n": [1, 2, 3]}})
    record = make_record("bert-1", backend="sagemaker", key="ci-7")
    assert store.reserve(record) == record
    got = store.get("bert-1")
    assert got == record
    assert got is not None and got.handle is None and not got.submitted

    store.set_handle("bert-1", handle)
    got = store.get("bert-1")
    assert got is not None and got.submitted
    assert got.handle == handle
    assert isinstance(got.handle, Handle)
    assert got.spec == record.spec
    assert got.state is JobState.PENDING
    assert got.updated_at >= record.updated_at
    assert store.get("nope") is None
    # to_json is JSON-serialisable and carries the handle as a dict
    assert json.loads(json.dumps(got.to_json()))["handle"] == handle.to_json()


def test_idempotency_key_returns_first_record_and_inserts_nothing(store: JobStore) -> None:
    first = store.reserve(make_record("bert-1", key="ci-run-9", created_at=T0))
    again = store.reserve(make_record("bert-2", key="ci-run-9", created_at=T0 + 5))
    assert again.id == "bert-1"
    assert again == first
    assert store.get("bert-2") is None
    assert [r.id for r in store.list()] == ["bert-1"]
    # no key, or a different key: new jobs
    assert store.reserve(make_record("bert-3", created_at=T0 + 6)).id == "bert-3"
    assert store.reserve(make_record("bert-4", created_at=T0 + 7)).id == "bert-4"
    assert store.reserve(make_record("bert-5", key="ci-run-10", created_at=T0 + 8)).id == "bert-5"
    assert len(store.list()) == 4


def test_idempotent_reserve_returns_current_state(store: JobStore) -> None:
    store.reserve(make_record("bert-1", key="k"))
    store.set_handle("bert-1", Handle("local", "bert-1", {"pid": 12}))
    store.set_status("bert-1", Status(JobState.RUNNING, "running", started_at=T0 + 1))
    again = store.reserve(make_record("bert-2", key="k"))
    assert again.id == "bert-1"
    assert again.state is JobState.RUNNING
    assert again.handle == Handle("local", "bert-1", {"pid": 12})


def test_set_status_keeps_started_at_when_new_status_has_none(store: JobStore) -> None:
    store.reserve(make_record("bert-1"))
    store.set_status("bert-1", Status(JobState.RUNNING, "InProgress", started_at=T0 + 10))
    store.set_status("bert-1", Status(JobState.SUCCEEDED, "Completed", "done", exit_code=0, ended_at=T0 + 70,
                                      url="https://console/bert-1"))
    got = store.get("bert-1")
    assert got is not None
    assert got.started_at == T0 + 10
    assert got.ended_at == T0 + 70
    assert (got.state, got.raw_state, got.message, got.exit_code, got.url) == (
        JobState.SUCCEEDED, "Completed", "done", 0, "https://console/bert-1")
    # a later status without times keeps both
    store.set_status("bert-1", Status(JobState.SUCCEEDED, "Completed"))
    got = store.get("bert-1")
    assert got is not None and (got.started_at, got.ended_at) == (T0 + 10, T0 + 70)


def test_delete(store: JobStore) -> None:
    store.reserve(make_record("bert-1", key="k"))
    store.delete("bert-1")
    assert store.get("bert-1") is None
    store.delete("bert-1")  # repeatable
    # the key is free again once its job is gone
    assert store.reserve(make_record("bert-2", key="k")).id == "bert-2"


def test_set_submitted_writes_the_handle_and_the_status_as_set_handle_and_set_status_do(store: JobStore) -> None:
    """A confirmed submit's one transaction: the handle, and the status under set_status's rules."""
    handle = Handle("hf_jobs", "bert-1", {"namespace": "alice", "ids": ["abc"]})
    store.reserve(make_record("bert-1"))
    returned = store.set_submitted("bert-1", handle, Status(JobState.RUNNING, "submitted", "on its way"))
    got = store.get("bert-1")
    assert returned == got  # the job as stored, read back in the same transaction
    assert (got.handle, got.state, got.raw_state, got.message) == (handle, JobState.RUNNING, "submitted", "on its way")
    assert [s for _, s, _ in store.history("bert-1")] == [JobState.PENDING, JobState.RUNNING]
    store.set_status("bert-1", Status(JobState.CANCELLED, "cancelled"))
    later = Handle("hf_jobs", "bert-1", {"namespace": "alice", "ids": ["def"]})
    returned = store.set_submitted("bert-1", later, Status(JobState.PENDING, "submitted"))  # a late confirm
    assert returned is not None and (returned.state, returned.handle) == (JobState.CANCELLED, later)  # stays ended
    assert store.get("bert-1") == returned
    assert store.set_submitted("gone-1", handle, Status(JobState.PENDING, "submitted")) is None


def test_a_stale_status_never_overwrites_an_ended_job(store: JobStore) -> None:
    """A poll or provider list read before the end (another machine's, a slow one) arrives after it:
    the job stays ended. Terminal replaces terminal; launch's own `never-created` may be contradicted."""
    store.reserve(make_record("bert-1"))
    store.set_status("bert-1", Status(JobState.RUNNING, "InProgress", started_at=T0 + 1))
    store.set_status("bert-1", Status(JobState.SUCCEEDED, "Completed", exit_code=0, ended_at=T0 + 9))
    store.set_status("bert-1", Status(JobState.RUNNING, "InProgress"))
    store.set_status("bert-1", Status(JobState.UNKNOWN, "interrupted"))
    got = store.get("bert-1")
    assert (got.state, got.raw_state, got.exit_code, got.ended_at) == (JobState.SUCCEEDED, "Completed", 0, T0 + 9)
    store.set_status("bert-1", Status(JobState.FAILED, "Failed", exit_code=1))
    assert store.get("bert-1").state is JobState.FAILED
    assert [s for _, s, _ in store.history("bert-1")] == [JobState.PENDING, JobState.RUNNING, JobState.SUCCEEDED,
                                                          JobState.FAILED]
    store.reserve(make_record("bert-2"))
    store.set_status("bert-2", Status(JobState.FAILED, "never-created"))
    store.set_status("bert-2", Status(JobState.RUNNING, "InProgress"))
    assert store.get("bert-2").state is JobState.RUNNING
    store.set_status("nope", Status(JobState.RUNNING))  # no such job: nothing happens
    assert store.get("nope") is None and store.history("nope") == []


def test_the_same_id_twice_returns_the_stored_job(store: JobStore) -> None:
    """Two machines' `list --sync` adopting the same provider job: one row, no error."""
    first = store.reserve(make_record("bert-1", created_at=T0))
    assert store.reserve(make_record("bert-1", created_at=T0 + 5)) == first
    assert [r.created_at for r in store.list()] == [T0]


def test_submitter_request_estimate_round_trip_and_filters(store: JobStore) -> None:
    from dataclasses import replace

    mine = replace(make_record("a-1", created_at=T0), submitted_by="ana", submitted_host="laptop",
                   est_cost_usd=12.5)
    from_ci = replace(make_record("b-2", created_at=T0 + 1), submitted_by="ci", submitted_host="runner-3",
                      ci_url="https://ci.example.com/runs/7")
    store.reserve(mine, request={"payload": {"env": {"TOKEN": "****"}}})
    store.reserve(from_ci)
    assert store.get("a-1") == mine and store.get("b-2") == from_ci
    assert store.request("a-1") == {"payload": {"env": {"TOKEN": "****"}}} and store.request("b-2") is None
    assert [r.id for r in store.list(user="ana")] == ["a-1"]
    assert [r.id for r in store.list(ci=True)] == ["b-2"]
    assert store.list(user="ana", ci=True) == []
    assert store.get("a-1").to_json()["est_cost_usd"] == 12.5


def test_only_a_shared_store_holds_other_machines_local_jobs(store: JobStore) -> None:
    """A local-backend job submitted on another host is only readable there; in this machine's own
    SQLite history every job is this machine's, even after its hostname changed."""
    from dataclasses import replace

    handle = Handle("local", "l-1", {"job_dir": "/x"}, fast_status=True)
    store.reserve(replace(make_record("l-1", handle=handle), submitted_host="ci-runner-7"))
    store.reserve(replace(make_record("l-2", handle=handle), submitted_host=socket.gethostname()))
    elsewhere, here = store.get("l-1"), store.get("l-2")
    assert elsewhere.local_elsewhere is store.SHARED is (not isinstance(store, Store))
    assert elsewhere.needs_refresh(all_backends=True) is not store.SHARED
    assert not here.local_elsewhere and here.needs_refresh(all_backends=False)


def test_import_record_is_idempotent(store: JobStore) -> None:
    record = make_record("old-1", key="k-1")
    history = [(T0, JobState.PENDING, ""), (T0 + 3, JobState.SUCCEEDED, "done")]
    assert store.import_record(record, {"p": 1}, history)
    assert not store.import_record(record, {"p": 1}, history)
    assert not store.import_record(make_record("other-id", key="k-1"), None, [])  # the key is taken
    assert [r.id for r in store.list()] == ["old-1"]
    assert store.history("old-1") == history and store.request("old-1") == {"p": 1}


# --- resolve --------------------------------------------------------------------------------------------------

@pytest.fixture
def three_jobs(store: JobStore) -> JobStore:
    for i, job_id in enumerate(["bert-20240101-aaa111", "bert-20240101-aab222", "gpt-20240102-ccc333"]):
        store.reserve(make_record(job_id, created_at=T0 + i))
    return store


def test_resolve_full_id(three_jobs: JobStore) -> None:
    assert three_jobs.resolve("bert-20240101-aaa111").id == "bert-20240101-aaa111"


def test_resolve_full_id_that_is_also_a_prefix_of_another(store: JobStore) -> None:
    store.reserve(make_record("job-1", created_at=T0))
    store.reserve(make_record("job-10", created_at=T0 + 1))
    assert store.resolve("job-1").id == "job-1"


def test_resolve_unique_prefix(three_jobs: JobStore) -> None:
    assert three_jobs.resolve("gpt").id == "gpt-20240102-ccc333"
    assert three_jobs.resolve("bert-20240101-aab").id == "bert-20240101-aab222"


def test_resolve_ambiguous_prefix_names_candidates(three_jobs: JobStore) -> None:
    with pytest.raises(UsageError) as err:
        three_jobs.resolve("bert-2024")
    text = str(err.value)
    assert "bert-20240101-aaa111" in text and "bert-20240101-aab222" in text
    assert "gpt-20240102-ccc333" not in text


def test_resolve_ambiguous_many_candidates_truncated(store: JobStore) -> None:
    for i in range(8):
        store.reserve(make_record(f"bert-{i}", created_at=T0 + i))
    with pytest.raises(UsageError) as err:
        store.resolve("bert")
    assert "..." in err.value.message
    assert sum(f"bert-{i}" in err.value.message for i in range(8)) == 5


def test_resolve_no_match(three_jobs: JobStore) -> None:
    with pytest.raises(UsageError) as err:
        three_jobs.resolve("llama")
    assert "llama" in str(err.value)
    with pytest.raises(UsageError):
        three_jobs.resolve("aaa111")  # a suffix is not a prefix


@pytest.mark.parametrize("prefix", ["%", "_", "bert%", "bert_", "b_rt", "%aaa", "\\", "bert\\"])
def test_resolve_wildcards_are_literal(three_jobs: Store, prefix: str) -> None:
    with pytest.raises(UsageError) as err:
        three_jobs.resolve(prefix)
    assert "no job matches" in err.value.message


def test_resolve_literal_percent_and_underscore_in_ids(store: JobStore) -> None:
    store.reserve(make_record("a%b-1", created_at=T0))
    store.reserve(make_record("a_b-2", created_at=T0 + 1))
    store.reserve(make_record("axb-3", created_at=T0 + 2))
    assert store.resolve("a%").id == "a%b-1"
    assert store.resolve("a_").id == "a_b-2"
    assert store.resolve("ax").id == "axb-3"


def test_newest_is_the_latest_created_and_an_empty_store_says_so(store: JobStore) -> None:
    with pytest.raises(UsageError) as err:
        store.newest()
    assert "no jobs yet" in err.value.message
    store.reserve(make_record("b-2", created_at=T0 + 5))
    store.reserve(make_record("a-1", created_at=T0 + 9))
    store.reserve(make_record("c-3", created_at=T0 + 1))
    assert store.newest().id == "a-1"


def _grouped(store: JobStore, job_id: str, group: str | None, at: float, params: dict | None = None) -> None:
    from dataclasses import replace

    store.reserve(replace(make_record(job_id, created_at=at), group_id=group, params=params))


def test_groups_resolve_by_unique_prefix_newest_first(store: JobStore) -> None:
    _grouped(store, "x-1", "lr-sweep-20260101-aaa", T0)
    _grouped(store, "x-2", "lr-sweep-20260101-aaa", T0 + 1)
    _grouped(store, "x-3", "lr-sweep-20260102-bbb", T0 + 2)
    _grouped(store, "x-4", None, T0 + 3)
    assert store.group_ids() == ["lr-sweep-20260102-bbb", "lr-sweep-20260101-aaa"]
    assert store.resolve_group("lr-sweep-20260101") == "lr-sweep-20260101-aaa"
    assert store.resolve_group("lr-sweep-20260102-bbb") == "lr-sweep-20260102-bbb"
    with pytest.raises(UsageError) as err:
        store.resolve_group("lr-")
    assert "several sweep groups" in err.value.message and "lr-sweep-20260101-aaa" in err.value.message
    for missing in ("nope", "%", "_r", "x-1"):  # wildcards are literal; job ids are no groups
        with pytest.raises(UsageError):
            store.resolve_group(missing)
    assert store.job_ids("x-") == ["x-4", "x-3", "x-2", "x-1"] and store.job_ids("x-1") == ["x-1"]


def test_sweep_point_round_trips_and_damage_reads_as_none(store: JobStore) -> None:
    _grouped(store, "p-1", "g", T0, {"lr": "3e-4", "batch": "32"})
    record = store.get("p-1")
    assert record.params == {"lr": "3e-4", "batch": "32"} and record.label == "lr=3e-4 batch=32"
    assert record.to_json()["params"] == {"lr": "3e-4", "batch": "32"}
    _raw(store, "UPDATE jobs SET params = '[not json' WHERE id = 'p-1'")
    assert store.get("p-1").params is None and store.get("p-1").label == ""


# --- schema versions (SQLite) --------------------------------------------------------------------------------

_V1_COLUMNS = ("id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, handle TEXT, spec TEXT NOT NULL, "
               "state TEXT NOT NULL, raw_state TEXT NOT NULL DEFAULT '', message TEXT NOT NULL DEFAULT '', "
               "exit_code INTEGER, url TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, started_at REAL, "
               "ended_at REAL, idempotency_key TEXT UNIQUE")
_ADDED = {2: ", group_id TEXT", 3: ", params TEXT", 4: ", finished_at REAL",
          5: ", submitted_by TEXT, submitted_host TEXT, ci_url TEXT, est_cost_usd REAL, request TEXT"}


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_every_earlier_schema_upgrades_to_the_current_one(tmp_path: Path, version: int) -> None:
    """A history written by any earlier launch opens, keeps every job, and gains the new columns
    (empty) and a state history seeded with each job's last state."""
    from launcher.store import SCHEMA_VERSION

    home = tmp_path / "home"
    home.mkdir()
    columns = _V1_COLUMNS + "".join(_ADDED[v] for v in range(2, version + 1))
    with sqlite3.connect(home / "jobs.db") as db:
        db.execute(f"CREATE TABLE jobs ({columns})")
        db.execute("INSERT INTO jobs (id, name, backend, handle, spec, state, raw_state, created_at, updated_at, "
                   "idempotency_key) VALUES ('old-1', 'old', 'local', ?, '{\"name\": \"old\"}', 'SUCCEEDED', "
                   "'done', 1.0, 2.0, 'k-1'), ('old-2', 'old', 'local', NULL, '{}', 'RUNNING', '', 3.0, 4.0, NULL)",
                   (json.dumps(Handle("local", "old-1", {"pid": 1}).to_json()),))
        if version >= 5:  # a version 5 store: its state history, and what a submit sent in the job's row
            db.execute("CREATE TABLE job_states (job_id TEXT NOT NULL, at REAL NOT NULL, state TEXT NOT NULL, "
                       "raw_state TEXT NOT NULL DEFAULT '')")
            db.execute("INSERT INTO job_states SELECT id, updated_at, state, raw_state FROM jobs")
            db.execute("UPDATE jobs SET request = '{\"sent\": 1}' WHERE id = 'old-1'")
        db.execute(f"PRAGMA user_version = {version}")
    store = Store.open(home)
    try:
        assert store.request("old-1") == ({"sent": 1} if version >= 5 else None)  # moved to job_requests (v6)
        assert store._db.execute("SELECT count(*) FROM jobs WHERE request IS NOT NULL").fetchone()[0] == 0
        done, running = store.get("old-1"), store.get("old-2")
        assert (done.state, done.raw_state, done.handle, done.spec, done.idempotency_key) == (
            JobState.SUCCEEDED, "done", Handle("local", "old-1", {"pid": 1}), {"name": "old"}, "k-1")
        # ended before `finish` existed (v4): finished then; a v4 row says itself whether it was
        assert (done.finished_at, running.finished_at) == (2.0 if version < 4 else None, None)
        assert (done.submitted_by, done.submitted_host, done.ci_url, done.est_cost_usd) == (None, None, None, None)
        assert store.history("old-1") == [(2.0, JobState.SUCCEEDED, "done")]
        assert store.history("old-2") == [(4.0, JobState.RUNNING, "")]
        assert store.by_key("k-1") == done and store.reserve(make_record("new-3", key="k-1")) == done
        store.set_status("old-2", Status(JobState.FAILED, "lost"))
        assert [s for _, s, _ in store.history("old-2")] == [JobState.RUNNING, JobState.FAILED]
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        store.close()
    Store.open(home).close()  # opening the upgraded file again changes nothing
    with sqlite3.connect(home / "jobs.db") as db:
        assert db.execute("SELECT count(*) FROM job_states WHERE job_id = 'old-1'").fetchone()[0] == 1


# --- list -----------------------------------------------------------------------------------------------------

def test_list_filters_orders_and_limits(store: JobStore) -> None:
    specs = [("j0", "local", JobState.SUCCEEDED), ("j1", "sagemaker", JobState.RUNNING),
             ("j2", "local", JobState.FAILED), ("j3", "vertex", JobState.RUNNING),
             ("j4", "local", JobState.RUNNING), ("j5", "sagemaker", JobState.SUCCEEDED)]
    # insert out of creation order so ordering comes from created_at, not rowid
    for job_id, backend, state in reversed(specs):
        created = T0 + int(job_id[1:]) * 60
        store.reserve(make_record(job_id, backend=backend, created_at=created))
        store.set_status(job_id, Status(state))
    assert [r.id for r in store.list()] == ["j5", "j4", "j3", "j2", "j1", "j0"]
    assert [r.id for r in store.list(backend="local")] == ["j4", "j2", "j0"]
    assert [r.id for r in store.list(states=(JobState.RUNNING,))] == ["j4", "j3", "j1"]
    assert [r.id for r in store.list(states=(JobState.SUCCEEDED, JobState.FAILED))] == ["j5", "j2", "j0"]
    assert [r.id for r in store.list(backend="sagemaker", states=(JobState.RUNNING,))] == ["j1"]
    assert store.list(backend="azureml") == []
    assert [r.id for r in store.list(limit=2)] == ["j5", "j4"]
    assert [r.id for r in store.list(backend="local", limit=1)] == ["j4"]
    assert len(store.list(limit=100)) == 6


def test_list_empty(store: JobStore) -> None:
    assert store.list() == []


def test_unknown_state_in_file_reads_as_unknown(store: JobStore) -> None:
    store.reserve(make_record("bert-1"))
    _raw(store, "UPDATE jobs SET state = 'HIBERNATING' WHERE id = 'bert-1'")
    got = store.get("bert-1")
    assert got is not None and got.state is JobState.UNKNOWN


# --- many processes at once -----------------------------------------------------------------------------------

# Each worker: wait for "go" on stdin (so all start together), open its own store on the shared
# file or database (fresh: the schema setup races too), then interleave reserve/set_status/list/resolve.
# Prints one JSON line with what it saw; any exception prints a traceback and exits 1.
_WORKER = r"""
import json, sys, time, traceback
from pathlib import Path
from launcher.backend import Handle, JobState, Status
from launcher.store import JobRecord, Store

mode, where, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
try:
    if where.startswith("postgresql://"):
        from launcher.store_pg import PgStore
        store = PgStore(where)
    else:
        store = Store.open(Path(where))
    out = {"worker": worker}
    if mode == "keys":  # the same keys from every worker, each under this worker's own ids
        out["ids"] = {}
        for i in range(count):
            now = time.time()
            got = store.reserve(JobRecord(id=f"k{i:02d}-w{worker}", name="k", backend="local", handle=None,
                                          spec={"w": worker}, state=JobState.PENDING, created_at=now,
                                          updated_at=now, idempotency_key=f"ci-key-{i}"))
            out["ids"][f"ci-key-{i}"] = got.id
    elif mode == "key":
        now = time.time()
        got = store.reserve(JobRecord(id=f"race-w{worker:02d}", name="race", backend="local", handle=None,
                                      spec={"w": worker}, state=JobState.PENDING, created_at=now,
                                      updated_at=now, idempotency_key="ci-run-race"))
        out["id"] = got.id
    else:
        seen = 0
        for i in range(count):
            job_id = f"w{worker:02d}-j{i:02d}-{'abcdef'[i % 6]}"
            created = 1_700_000_000.0 + worker * 1000 + i
            got = store.reserve(JobRecord(id=job_id, name=f"w{worker}", backend=f"b{worker % 3}", handle=None,
                                          spec={"worker": worker, "i": i}, state=JobState.PENDING,
                                          created_at=created, updated_at=created,
                                          idempotency_key=f"key-{worker}-{i}"))
            assert got.id == job_id, (got.id, job_id)
            store.set_handle(job_id, Handle("local", job_id, {"pid": worker * 100 + i}))
            store.set_status(job_id, Status(JobState.RUNNING, "running", started_at=created + 1))
            seen = max(seen, len(store.list(limit=20)))
            store.list(backend=f"b{worker % 3}", states=(JobState.RUNNING, JobState.PENDING))
            assert store.resolve(f"w{worker:02d}-j{i:02d}").id == job_id
            final = JobState.SUCCEEDED if i % 2 == 0 else JobState.FAILED
            store.set_status(job_id, Status(final, "done", exit_code=i % 2, ended_at=created + 2))
            again = store.get(job_id)
            assert again is not None and again.state is final and again.started_at == created + 1, again
        out["seen"] = seen
    store.close()
    print(json.dumps(out), flush=True)
except BaseException:
    traceback.print_exc()
    sys.exit(1)
"""


def _run_workers(mode: str, where: Path | str, workers: int, count: int) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, mode, str(where), str(w), str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    try:
        for p in procs:  # barrier: every interpreter is up and imported before any touches the store
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        deadline = time.monotonic() + 120
        results = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    failures = [f"worker {w}: exit {p.returncode}\n{err}"
                for w, (p, (_, err)) in enumerate(zip(procs, results, strict=True))
                if p.returncode != 0 or err.strip()]
    assert not failures, "\n\n".join(failures)
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in results]


@pytest.fixture(params=["sqlite", "postgres"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path | str]:
    """Where many processes meet: a SQLite home dir, or a PostgreSQL store URL."""
    if request.param == "sqlite":
        return "sqlite", tmp_path / "home"
    return "postgres", str(request.getfixturevalue("pg_url"))


def _open(where: Path | str) -> JobStore:
    if isinstance(where, Path):
        return Store.open(where)
    from launcher.store_pg import PgStore

    return PgStore(where)


def test_many_processes_interleaved(shared: tuple[str, Path | str]) -> None:
    """SQLite: 20 processes x 25 jobs on one file. PostgreSQL: 10 machines' worth of processes x 5 jobs
    (50 runs) with their list/resolve/get loops: no record lost, none half-written, none overwritten."""
    kind, where = shared
    workers, count = (20, 25) if kind == "sqlite" else (10, 5)
    results = _run_workers("ops", where, workers, count)
    assert sorted(r["worker"] for r in results) == list(range(workers))

    if isinstance(where, Path):
        with sqlite3.connect(where / "jobs.db") as db:
            ids = [row[0] for row in db.execute("SELECT id FROM jobs")]
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert len(ids) == workers * count
        assert len(set(ids)) == workers * count

    s = _open(where)
    try:
        records = s.list()
        assert len(records) == workers * count
        by_id = {r.id: r for r in records}
        for w in range(workers):
            for i in range(count):
                created = T0 + w * 1000 + i
                r = by_id[f"w{w:02d}-j{i:02d}-{'abcdef'[i % 6]}"]
                assert r.state is (JobState.SUCCEEDED if i % 2 == 0 else JobState.FAILED)
                assert (r.exit_code, r.started_at, r.ended_at, r.raw_state) == (i % 2, created + 1, created + 2, "done")
                assert r.handle == Handle("local", r.id, {"pid": w * 100 + i})
                assert r.idempotency_key == f"key-{w}-{i}"
                assert [state for _, state, _ in s.history(r.id)] == [JobState.PENDING, JobState.RUNNING, r.state]
        assert [r.created_at for r in records] == sorted((r.created_at for r in records), reverse=True)
    finally:
        s.close()


def test_idempotency_key_race_twenty_processes(tmp_path: Path) -> None:
    """One key, 20 processes at once (PostgreSQL: test_same_keys_from_four_processes_one_job_each)."""
    where = tmp_path / "home"
    results = _run_workers("key", where, 20, 1)
    got_ids = {r["id"] for r in results}
    assert len(results) == 20
    assert len(got_ids) == 1, got_ids
    s = _open(where)
    try:
        assert [r.id for r in s.list()] == [got_ids.pop()]
    finally:
        s.close()


def test_same_keys_from_four_processes_one_job_each(shared: tuple[str, Path | str]) -> None:
    """4 processes x 50 submits under the same 50 keys: every process gets the same job for a key,
    and the store holds exactly one job per key."""
    _, where = shared
    results = _run_workers("keys", where, 4, 50)
    winners = results[0]["ids"]
    assert len(winners) == 50 and all(r["ids"] == winners for r in results)
    s = _open(where)
    try:
        records = s.list()
        assert sorted(r.idempotency_key for r in records) == sorted(winners)
        assert {r.idempotency_key: r.id for r in records} == winners
    finally:
        s.close()
