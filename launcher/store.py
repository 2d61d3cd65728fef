"""The job history: one row per job, shared by every `launch` process.

One interface (`JobStore`), two homes: this machine's SQLite file (the default, zero setup) and a
team's PostgreSQL database (`store_url`, see launcher/store_pg.py). The SQL both run is written once
here; each implementation supplies transactions, error handling and its schema migrations.

SQLite: WAL mode and a busy timeout let many concurrent CLI calls read and write without
"database is locked" reaching the user; writes take the lock up front (BEGIN
IMMEDIATE) so they never fail half-way through a read-then-write. The file is
private (0600): it lists what a user runs where.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from launcher.backend import Handle, JobState, Status
from launcher.errors import UsageError

SCHEMA_VERSION = 6
# What a submit sent lives in job_requests since version 6 (jobs.request stays, empty): SQLite rewrites a row whole,
# overflow pages included, when its size changes, so every status change rewrote the request with it (tens of KiB
# where a provider takes the job's files inline).
_REQUESTS_DDL = "CREATE TABLE IF NOT EXISTS job_requests (job_id TEXT PRIMARY KEY, request TEXT NOT NULL)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    backend TEXT NOT NULL,
    handle TEXT,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    raw_state TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    url TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    idempotency_key TEXT UNIQUE,
    group_id TEXT,
    params TEXT,
    finished_at REAL,
    submitted_by TEXT,
    submitted_host TEXT,
    ci_url TEXT,
    est_cost_usd REAL,
    request TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_group ON jobs (group_id);
CREATE TABLE IF NOT EXISTS job_states (job_id TEXT NOT NULL, at REAL NOT NULL, state TEXT NOT NULL,
                                       raw_state TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS job_states_job ON job_states (job_id);
""" + _REQUESTS_DDL + ";\n"
REQUESTS_TABLE = (_REQUESTS_DDL,  # the upgrade to version 6 (SQLite) and 2 (PostgreSQL)
                  "INSERT INTO job_requests SELECT id, request FROM jobs WHERE request IS NOT NULL",
                  "UPDATE jobs SET request = NULL WHERE request IS NOT NULL")
# what each older schema lacks; applied in order by _migrate
_UPGRADES = {1: ("ALTER TABLE jobs ADD COLUMN group_id TEXT",), 2: ("ALTER TABLE jobs ADD COLUMN params TEXT",),
             # jobs that ended before version 4 were finished inside the backend's status
             3: ("ALTER TABLE jobs ADD COLUMN finished_at REAL",
                 "UPDATE jobs SET finished_at = updated_at WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"),
             # who submitted, what was sent, what it may cost, and the state history (its current state seeds it)
             4: (*(f"ALTER TABLE jobs ADD COLUMN {column}" for column in (
                 "submitted_by TEXT", "submitted_host TEXT", "ci_url TEXT", "est_cost_usd REAL", "request TEXT")),
                 "CREATE TABLE job_states (job_id TEXT NOT NULL, at REAL NOT NULL, state TEXT NOT NULL, "
                 "raw_state TEXT NOT NULL DEFAULT '')",
                 "INSERT INTO job_states SELECT id, updated_at, state, raw_state FROM jobs"),
             5: REQUESTS_TABLE}
_COLUMNS = ("id", "name", "backend", "handle", "spec", "state", "raw_state", "message", "exit_code",
            "url", "created_at", "updated_at", "started_at", "ended_at", "idempotency_key", "group_id", "params",
            "finished_at", "submitted_by", "submitted_host", "ci_url", "est_cost_usd")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM jobs"
INSERT_JOB = f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
INSERT_REQUEST = "INSERT INTO job_requests (job_id, request) VALUES (?, ?)"
# a stored job in one of these states keeps it against a later non-terminal status (a stale list or poll);
# `never-created` is launch's own verdict on an unconfirmed submit, which the provider may still contradict
_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
_RETRIES = 20


@dataclass(frozen=True)
class JobRecord:
    id: str
    name: str
    backend: str
    handle: Handle | None
    spec: dict[str, Any]
    state: JobState
    raw_state: str = ""
    message: str = ""
    exit_code: int | None = None
    url: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    idempotency_key: str | None = None
    group_id: str | None = None  # the sweep this job belongs to (`list --group`, `cancel --group`)
    params: dict[str, str] | None = None  # its sweep point (lr=3e-4): what tells a group's jobs apart
    finished_at: float | None = None  # when the backend's `finish` ran after the end (None: not yet)
    submitted_by: str | None = None  # the user who submitted it (`list --mine`, `--user`)
    submitted_host: str | None = None  # the machine it was submitted from: where local-only artifacts live
    ci_url: str | None = None  # the CI run that submitted it (`list --ci`)
    est_cost_usd: float | None = None  # catalog price x nodes x max_runtime at submit time (an upper bound)
    # read from a store other machines share (not stored): only there can a job be another machine's local job
    shared: bool = field(default=False, compare=False, repr=False)

    @property
    def local_elsewhere(self) -> bool:
        """A job whose status and logs are files on the machine that submitted it (the local backend),
        seen from another machine through a shared store: neither can be read from here. A machine's
        own SQLite history never says so, even after its hostname changed."""
        return self.shared and self.handle is not None and self.handle.fast_status \
            and self.submitted_host is not None and self.submitted_host != this_host()

    @property
    def label(self) -> str:
        """The sweep point as `lr=3e-4 batch=32`; empty for a job that is no sweep's."""
        return point_label(self.params or {})

    def needs_refresh(self, *, all_backends: bool) -> bool:
        """Unfinished (or ended, but the backend's `finish` has not run), and either its status is a
        cheap local read or every backend was asked for."""
        return (self.needs_finish or not self.state.is_terminal) and self.handle is not None \
            and (all_backends or self.handle.fast_status) and not self.local_elsewhere

    @property
    def needs_finish(self) -> bool:
        """Ended, and the backend's `finish` (machines given back, logs saved) has not run yet."""
        return self.state.is_terminal and self.finished_at is None and self.handle is not None

    @property
    def status(self) -> Status:
        """The job's last known status, as the backend reported it."""
        return Status(self.state, self.raw_state, self.message, self.exit_code, self.started_at, self.ended_at,
                      self.url)

    @property
    def submitted(self) -> bool:
        """False while a submit is in flight (or crashed before the provider answered)."""
        return self.handle is not None

    def to_json(self) -> dict[str, Any]:
        out = {c: getattr(self, c) for c in _COLUMNS}
        out["state"] = self.state.value
        out["handle"] = self.handle.to_json() if self.handle else None
        return out


@functools.cache
def this_host() -> str:
    import socket

    return socket.gethostname()


def point_label(params: dict[str, str]) -> str:
    """A sweep point as the user typed it: `lr=3e-4 batch=32`."""
    return " ".join(f"{k}={v}" for k, v in params.items())


def _row_to_record(row: Any, shared: bool = False) -> JobRecord:
    """One damaged row must not hide every other job: unreadable parts read as absent."""
    values = dict(zip(_COLUMNS, row, strict=True))
    values["shared"] = shared
    try:
        values["handle"] = Handle.from_json(json.loads(values["handle"])) if values["handle"] else None
    except (ValueError, KeyError, TypeError, AttributeError):
        values["handle"] = None
        values["message"] = "the stored handle is damaged; `launch list --sync` may recover it"
    try:
        values["spec"] = json.loads(values["spec"])
    except (ValueError, TypeError):
        values["spec"] = {}
    try:
        params = json.loads(values["params"]) if values["params"] else None
        values["params"] = {str(k): str(v) for k, v in params.items()} if isinstance(params, dict) else None
    except (ValueError, TypeError):
        values["params"] = None
    values["state"] = JobState.parse(values["state"])
    return JobRecord(**values)


Rows = list[tuple[Any, ...]]
Execute = Callable[[str, tuple[Any, ...]], Rows]


def _encoded(record: JobRecord) -> tuple[Any, ...]:
    """The record as the `jobs` row's values, in `_COLUMNS` order."""
    values = record.to_json()
    values["handle"] = json.dumps(values["handle"]) if values["handle"] else None
    values["spec"] = json.dumps(record.spec, sort_keys=True)
    values["params"] = json.dumps(record.params) if record.params else None
    return tuple(values[c] for c in _COLUMNS)


class JobStore:
    """What every caller uses; each method is one short transaction. The SQL is written once, with `?`
    placeholders; an implementation supplies `_rows` (one read), `_transact` (a write transaction,
    retried whole on contention) and `close`."""

    _FOR_UPDATE = ""  # PostgreSQL locks the row a read-then-write reads; SQLite's BEGIN IMMEDIATE already has
    SHARED = False  # other machines write to it too (see JobRecord.local_elsewhere)

    def close(self) -> None:
        raise NotImplementedError

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Rows:
        raise NotImplementedError

    def _transact(self, body: Callable[[Execute], Any]) -> Any:
        raise NotImplementedError

    def _insert_new(self, execute: Execute, values: tuple[Any, ...]) -> bool:
        """`INSERT_JOB` unless the job's id or idempotency key is taken; whether it inserted."""
        raise NotImplementedError

    def _select(self, sql: str, params: tuple[Any, ...] = ()) -> list[JobRecord]:
        shared = self.SHARED
        return [_row_to_record(r, shared) for r in self._rows(f"{_SELECT} {sql}", params)]

    def reserve(self, record: JobRecord, request: dict[str, Any] | None = None) -> JobRecord:
        """Insert a job before it is submitted; with an idempotency key already used,
        return that earlier job instead (the caller then submits nothing). An id already
        stored (another machine's sync recorded the same provider job) returns that row.
        `request` is what is sent, secrets masked, kept for `status -o json`."""
        values, sent = _encoded(record), json.dumps(request, sort_keys=True, default=str) if request else None

        def body(execute: Execute) -> JobRecord | None:
            if self._insert_new(execute, values):
                execute("INSERT INTO job_states VALUES (?, ?, ?, ?)",
                        (record.id, record.created_at, record.state.value, record.raw_state))
                if sent is not None:
                    execute(INSERT_REQUEST, (record.id, sent))
                return replace(record, shared=self.SHARED)
            found = execute(f"{_SELECT} WHERE idempotency_key = ?", (record.idempotency_key,)) \
                if record.idempotency_key else []
            found = found or execute(f"{_SELECT} WHERE id = ?", (record.id,))
            return _row_to_record(found[0], self.SHARED) if found else None  # None: deleted meanwhile

        for _ in range(_RETRIES):
            reserved = self._transact(body)
            if reserved is not None:
                return reserved
        raise AssertionError(f"job {record.id}: its conflicting row kept vanishing")

    def set_handle(self, job_id: str, handle: Handle) -> None:
        self._update(job_id, handle=json.dumps(handle.to_json()))

    def set_submitted(self, job_id: str, handle: Handle, status: Status) -> JobRecord | None:
        """`set_handle` then `set_status`, in one transaction: what a confirmed submit writes (one commit
        instead of two; the job is never seen with its handle but without the state that came with it).
        Returns the job as stored then, read in the same transaction (None when it is gone)."""
        write = self._status_write(job_id, status, handle=json.dumps(handle.to_json()))

        def body(execute: Execute) -> JobRecord | None:
            write(execute)
            found = execute(f"{_SELECT} WHERE id = ?", (job_id,))
            return _row_to_record(found[0], self.SHARED) if found else None
        return self._transact(body)  # type: ignore[no-any-return]

    def set_status(self, job_id: str, status: Status) -> None:
        """Store what the backend said, unless the job already ended: a status read before the end
        (a slow poll, a stale provider list on another machine) never turns it back into a running
        job. Each change of state is appended to the job's history."""
        self._transact(self._status_write(job_id, status))

    def _status_write(self, job_id: str, status: Status, *, handle: str | None = None) -> Callable[[Execute], None]:
        """The body of `set_status`'s transaction; with `handle`, that is written too (whatever the status
        write decides), in the same statement."""
        fields: dict[str, Any] = {
            "state": status.state.value, "raw_state": status.raw_state, "message": status.message,
            "exit_code": status.exit_code, "url": status.url,
        }
        if status.started_at is not None:
            fields["started_at"] = status.started_at
        if status.ended_at is not None:
            fields["ended_at"] = status.ended_at
        fields["updated_at"] = now = time.time()
        if handle is not None:
            fields["handle"] = handle
        assignments = ", ".join(f"{name} = ?" for name in fields)

        def body(execute: Execute) -> None:
            found = execute(f"SELECT state, raw_state FROM jobs WHERE id = ?{self._FOR_UPDATE}", (job_id,))
            if not found:
                return
            old_state, old_raw = found[0]
            if old_state in _TERMINAL and status.state.value not in _TERMINAL and old_raw != "never-created":
                if handle is not None:  # the job stays ended, and gets its handle
                    execute("UPDATE jobs SET handle = ?, updated_at = ? WHERE id = ?", (handle, now, job_id))
                return
            execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))
            if old_state != status.state.value:
                execute("INSERT INTO job_states VALUES (?, ?, ?, ?)", (job_id, now, status.state.value,
                                                                       status.raw_state))
        return body

    def set_finished(self, job_id: str) -> None:
        """The backend's `finish` has run for this ended job: later refreshes do not repeat it."""
        self._update(job_id, finished_at=time.time())

    def _update(self, job_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in fields)
        self._transact(lambda execute: execute(f"UPDATE jobs SET {assignments} WHERE id = ?",
                                               (*fields.values(), job_id)))

    def delete(self, job_id: str) -> None:
        def body(execute: Execute) -> None:
            execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            execute("DELETE FROM job_states WHERE job_id = ?", (job_id,))
            execute("DELETE FROM job_requests WHERE job_id = ?", (job_id,))
        self._transact(body)

    def get(self, job_id: str) -> JobRecord | None:
        found = self._select("WHERE id = ?", (job_id,))
        return found[0] if found else None

    def by_key(self, idempotency_key: str) -> JobRecord | None:
        found = self._select("WHERE idempotency_key = ?", (idempotency_key,))
        return found[0] if found else None

    def history(self, job_id: str) -> list[tuple[float, JobState, str]]:
        """Each state the job was stored in, oldest first: (when, state, the provider's raw state)."""
        rows = self._rows("SELECT at, state, raw_state FROM job_states WHERE job_id = ? ORDER BY at", (job_id,))
        return [(at, JobState.parse(state), raw) for at, state, raw in rows]

    def request(self, job_id: str) -> dict[str, Any] | None:
        """What the submit sent (secrets masked), as stored when it was reserved."""
        rows = self._rows("SELECT request FROM job_requests WHERE job_id = ?", (job_id,))
        try:
            return json.loads(rows[0][0]) if rows and rows[0][0] else None
        except ValueError:
            return None

    def import_record(self, record: JobRecord, request: dict[str, Any] | None,
                      history: list[tuple[float, JobState, str]]) -> bool:
        """Copy a job from another store as it is; False when this store has it already (by id, or its
        idempotency key under another id). Safe to repeat: what `launch store migrate` resumes with."""
        values, sent = _encoded(record), json.dumps(request, sort_keys=True) if request else None

        def body(execute: Execute) -> bool:
            if not self._insert_new(execute, values):
                return False
            if sent is not None:
                execute(INSERT_REQUEST, (record.id, sent))
            for at, state, raw in history or [(record.created_at, record.state, record.raw_state)]:
                execute("INSERT INTO job_states VALUES (?, ?, ?, ?)", (record.id, at, state.value, raw))
            return True
        return bool(self._transact(body))

    def resolve(self, prefix: str) -> JobRecord:
        """A job by full id or unique prefix; otherwise a usage error that helps pick."""
        if not prefix.strip():
            raise UsageError("no job id given", "`launch list` shows the jobs this machine knows")
        exact = self.get(prefix)
        if exact:
            return exact
        found = self._select("WHERE substr(id, 1, ?) = ? ORDER BY created_at DESC LIMIT 6", (len(prefix), prefix))
        if not found:
            raise UsageError(f"no job matches {prefix!r}", "`launch list` shows the jobs this machine knows")
        if len(found) > 1:
            shown = ", ".join(r.id for r in found[:5])
            raise UsageError(f"{prefix!r} matches several jobs: {shown}{', ...' if len(found) > 5 else ''}",
                             "give more of the id")
        return found[0]

    def newest(self) -> JobRecord:
        """The most recently created job: what `status`, `logs`, `wait` and `cancel` mean without a JOB."""
        found = self._select("ORDER BY created_at DESC LIMIT 1")
        if not found:
            raise UsageError("no jobs yet", "start one: launch run job_specs/quickstart.yaml")
        return found[0]

    def resolve_group(self, prefix: str) -> str:
        """A sweep group by full id or unique prefix, as `resolve` does for jobs."""
        if not prefix.strip():
            raise UsageError("no group id given", "`launch list` shows the groups of sweeps")
        found = self.group_ids(prefix, limit=6)
        if prefix in found:
            return prefix
        if not found:
            raise UsageError(f"no sweep group matches {prefix!r}", "`launch list` shows the groups of sweeps")
        if len(found) > 1:
            shown = ", ".join(found[:5])
            raise UsageError(f"{prefix!r} matches several sweep groups: {shown}{', ...' if len(found) > 5 else ''}",
                             "give more of the group id")
        return found[0]

    def job_ids(self, prefix: str = "", *, limit: int = 200) -> list[str]:
        """Ids starting with `prefix`, newest first (shell completion)."""
        rows = self._rows("SELECT id FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY created_at DESC LIMIT ?",
                          (len(prefix), prefix, limit))
        return [row[0] for row in rows]

    def group_ids(self, prefix: str = "", *, limit: int = 200) -> list[str]:
        """Sweep group ids starting with `prefix`, newest first."""
        rows = self._rows(
            "SELECT group_id FROM jobs WHERE group_id IS NOT NULL AND substr(group_id, 1, ?) = ? "
            "GROUP BY group_id ORDER BY max(created_at) DESC LIMIT ?", (len(prefix), prefix, limit))
        return [row[0] for row in rows]

    def list(self, *, backend: str | None = None, states: tuple[JobState, ...] = (),
             limit: int | None = None, group: str | None = None, user: str | None = None,
             ci: bool = False) -> list[JobRecord]:
        clauses, params = [], []
        if backend:
            clauses.append("backend = ?")
            params.append(backend)
        if group:
            clauses.append("group_id = ?")
            params.append(group)
        if user:
            clauses.append("submitted_by = ?")
            params.append(user)
        if ci:
            clauses.append("ci_url IS NOT NULL")
        if states:
            clauses.append(f"state IN ({', '.join('?' * len(states))})")
            params.extend(s.value for s in states)
        sql = ("WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY created_at DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return self._select(sql, tuple(params))


class Store(JobStore):
    """This machine's history in a SQLite file. Open with `Store.open()` (or `open_store()`, which
    picks the configured shared store when there is one)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _create_private(path)
        self._db = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA busy_timeout = 30000")
            if self._db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                self._migrate()
            self._db.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise
            raise UsageError(f"{path} is not a readable launch job store: {exc}",
                             "move it aside; `launch list --sync` rebuilds what the backends still know") from None

    @classmethod
    def open(cls, home: Path | None = None) -> Store:
        from launcher import config

        base = home or config.ensure_home()
        return cls(base / "jobs.db")

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        def run() -> None:
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode = WAL")
            with self._write():
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                has_table = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone()
                for old in range(version if has_table else SCHEMA_VERSION, SCHEMA_VERSION):
                    for statement in _UPGRADES.get(old, ()):
                        self._db.execute(statement)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        _retry(run)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Rows:
        return _retry(lambda: self._db.execute(sql, params).fetchall())  # type: ignore[no-any-return]

    def _insert_new(self, execute: Execute, values: tuple[Any, ...]) -> bool:
        # OR IGNORE and changes(), not ON CONFLICT ... RETURNING: the SQLite of older distributions lacks those
        execute(INSERT_JOB.replace("INSERT", "INSERT OR IGNORE", 1), values)
        return bool(execute("SELECT changes()", ())[0][0])

    def _transact(self, body: Callable[[Execute], Any]) -> Any:
        def run() -> Any:
            with self._write() as db:
                return body(lambda sql, params: db.execute(sql, params).fetchall())
        return _retry(run)


def open_store() -> JobStore:
    """The configured job store: the shared PostgreSQL one when `store_url` (config.toml) or
    LAUNCH_STORE_URL names one, else this machine's SQLite file. The driver loads only then."""
    url = configured_url()
    if url is None:
        return Store.open()
    from launcher.store_pg import PgStore

    return PgStore(url)


def configured_url() -> str | None:
    """LAUNCH_STORE_URL, else config.toml's `store_url`; None for the local SQLite store. The config
    file is parsed only when it mentions the key, so a SQLite user's `launch list` stays as fast."""
    from launcher import config

    url = os.environ.get("LAUNCH_STORE_URL")
    origin = "LAUNCH_STORE_URL"
    if url is None:
        try:
            text = config.config_path().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        if "store_url" not in text:
            return None
        url, origin = config.load().get("store_url"), f"{config.config_path()}: store_url"
    if url is None or (isinstance(url, str) and not url.strip()):
        return None
    if not isinstance(url, str) or not url.strip().startswith(("postgresql://", "postgres://")):
        shown = mask_url(url) if isinstance(url, str) else repr(url)
        raise UsageError(f"{origin} is {shown}: the shared job store takes a postgresql:// URL",
                         "e.g. postgresql://launch@db.example.com/launch?sslmode=verify-full; unset it to keep "
                         "the history in this machine's SQLite file")
    return url.strip()


def mask_url(url: str) -> str:
    """The URL with its password (user:password@, or a password= parameter) replaced: safe for errors."""
    import re

    masked = re.sub(r"^([a-z]+://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", masked)


def _create_private(path: Path) -> None:
    """Create the file 0600 before SQLite does, so it never exists world-readable. A file that exists
    is never opened here: closing a descriptor of it would drop every POSIX lock this process's open
    connections hold on it (a sweep's or `launch ui`'s other threads), and another process would then
    take them for gone, checkpoint and delete the WAL they still use ("database disk image is malformed")."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:  # a file made by someone else's umask: tighten it
            os.chmod(path, 0o600)
        return
    os.close(fd)  # new and empty: no connection holds a lock on it yet


def _retry(action: Any) -> Any:
    """Ride out lock contention beyond the busy timeout (WAL checkpoints, schema setup)."""
    for attempt in range(_RETRIES):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if ("locked" not in text and "busy" not in text) or attempt == _RETRIES - 1:
                raise
            time.sleep(min(0.05 * 2 ** attempt, 1.0))
    raise AssertionError("unreachable")
