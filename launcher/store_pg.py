"""A team's shared job history in PostgreSQL (`store_url = "postgresql://..."`).

The SQL is launcher/store.py's (one interface); this module supplies the connection, the
transactions and the schema. Exactly-once with many writers comes from the database: the job id and
the idempotency key are unique (a reserve is INSERT ... ON CONFLICT DO NOTHING, then the row that
won), and a status write locks its row (SELECT ... FOR UPDATE) before deciding whether it may
replace what is stored. psycopg (the `postgres` extra) is imported only here, when a URL is set.

Credentials come from the URL, ~/.pgpass or PGPASSWORD (libpq reads them); TLS options (sslmode,
sslrootcert, ...) are URL parameters passed to libpq as they are. No error shows the password.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from launcher.errors import BackendUnreachable, UsageError
from launcher.sdk import Sdk
from launcher.store import INSERT_JOB, REQUESTS_TABLE, Execute, JobStore, Rows, mask_url

DRIVER = Sdk("postgres", "psycopg", ("psycopg",))

# Each version's statements, applied in order under an advisory lock; `launch_schema` holds the version.
SCHEMA_VERSION = 2
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("""CREATE TABLE jobs (
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
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            started_at DOUBLE PRECISION,
            ended_at DOUBLE PRECISION,
            idempotency_key TEXT UNIQUE,
            group_id TEXT,
            params TEXT,
            finished_at DOUBLE PRECISION,
            submitted_by TEXT,
            submitted_host TEXT,
            ci_url TEXT,
            est_cost_usd DOUBLE PRECISION,
            request TEXT)""",
        "CREATE INDEX jobs_created ON jobs (created_at)",
        "CREATE INDEX jobs_group ON jobs (group_id)",
        "CREATE INDEX jobs_submitted_by ON jobs (submitted_by)",
        """CREATE TABLE job_states (job_id TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, state TEXT NOT NULL,
                                    raw_state TEXT NOT NULL DEFAULT '')""",
        "CREATE INDEX job_states_job ON job_states (job_id)"),
    2: REQUESTS_TABLE,  # what a submit sent, in a table of its own (launcher/store.py says why)
}
_LOCK_ID = 0x6C61756E6368  # "launch": one migrator at a time, however many machines start at once
# how long a dropped connection is reopened and the transaction rerun before exit 4: a restart or a
# failover rides through; LAUNCH_STORE_RETRY_S shortens it (tests) or lengthens it (a slow failover)
RETRY_S = 5.0
# refusals no retry changes (libpq gives them no SQLSTATE, only words): said at once
_FINAL = ("authentication failed", "does not exist", "no pg_hba.conf entry", "SSL")
_HINT = ("check that the database is up and reachable from here; `store_url` in config.toml or "
         "LAUNCH_STORE_URL names it (unset it to use this machine's SQLite history)")


class PgStore(JobStore):
    """One connection per store object (a connection's transactions are not thread-safe: a thread
    opens its own, as with SQLite). Every method is one transaction, rerun whole after a dropped
    connection: each is safe to repeat (a reserve that did land returns its own row)."""

    _FOR_UPDATE = " FOR UPDATE"
    SHARED = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = mask_url(url)
        if DRIVER.missing() is not None:
            raise UsageError(f"the shared job store ({self.where}) needs psycopg, which is not installed",
                             DRIVER.install_line())
        self._conn: Any = None
        self._run(self._migrate)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            options = {} if "connect_timeout" in self.url else {"connect_timeout": 10}
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, application_name="launch", **options)
            except psycopg.ProgrammingError as exc:  # a malformed URL or option: the user's to fix
                raise UsageError(f"the job store URL {self.where} is not usable: {self._clean(exc)}",
                                 "see https://www.postgresql.org/docs/current/libpq-connect.html") from None
        return self._conn

    def _run(self, action: Callable[[Any], Any]) -> Any:
        """`action(connection)`, with the connection reopened and the action rerun when it drops or a
        transaction meets a serialization failure or deadlock; then a clear exit 4."""
        import os

        import psycopg

        deadline = time.monotonic() + float(os.environ.get("LAUNCH_STORE_RETRY_S", RETRY_S))
        delay = 0.05
        while True:
            try:
                return action(self._connection())
            except psycopg.OperationalError as exc:
                if self._conn is not None and (self._conn.closed or self._conn.broken):
                    self._conn = None  # reopened on the next attempt (its transaction was rolled back)
                if time.monotonic() + delay > deadline or any(words in str(exc) for words in _FINAL):
                    raise BackendUnreachable(f"the shared job store at {self.where} cannot be reached: "
                                             f"{self._clean(exc)}", _HINT) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _clean(self, exc: Exception) -> str:
        """The driver's message on one line, with the URL's password removed should it appear."""
        from urllib.parse import unquote, urlsplit

        text = " ".join(str(exc).split())
        password = urlsplit(self.url).password
        for secret in {password, unquote(password)} if password else ():
            text = text.replace(secret, "***")
        return text[:400]

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Rows:
        statement = sql.replace("?", "%s")
        return self._run(lambda conn: conn.execute(statement, params).fetchall())  # type: ignore[no-any-return]

    def _insert_new(self, execute: Execute, values: tuple[Any, ...]) -> bool:
        # no conflict target: the id and the idempotency key both count, whichever another writer took first
        return bool(execute(INSERT_JOB + " ON CONFLICT DO NOTHING RETURNING id", values))

    def _transact(self, body: Callable[[Execute], Any]) -> Any:
        def run(conn: Any) -> Any:
            with conn.transaction():
                def execute(sql: str, params: tuple[Any, ...]) -> Rows:
                    cursor = conn.execute(sql.replace("?", "%s"), params)
                    return cursor.fetchall() if cursor.description else []
                return body(execute)
        return self._run(run)

    def _migrate(self, conn: Any) -> None:
        """Bring the database to SCHEMA_VERSION: each missing version's statements in one transaction,
        so a crash leaves the old schema or the new one, never half of it."""
        found = conn.execute("SELECT to_regclass('launch_schema') IS NOT NULL").fetchone()[0]
        if found and conn.execute("SELECT max(version) FROM launch_schema").fetchone()[0] == SCHEMA_VERSION:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute("CREATE TABLE IF NOT EXISTS launch_schema (version INTEGER NOT NULL, "
                         "applied_at DOUBLE PRECISION NOT NULL)")
            version = conn.execute("SELECT coalesce(max(version), 0) FROM launch_schema").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise UsageError(f"the job store at {self.where} has schema version {version}; this launch "
                                 f"knows up to {SCHEMA_VERSION}", "upgrade launch on this machine")
            for new in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[new]:
                    conn.execute(statement)
                conn.execute("INSERT INTO launch_schema VALUES (%s, %s)", (new, time.time()))
