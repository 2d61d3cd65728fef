"""The shared job store on a real PostgreSQL server, through the real CLI: who submitted what from
where, `list --mine/--user/--ci`, `store migrate`, local-only jobs seen from another machine,
credentials that are never shown, several machines syncing at once, and the database going away
mid-run (exit 4, nothing half-written, and everything back once it returns).

The interface itself (reserve, keys, status, prefixes, many processes) runs on both stores in
tests/test_store.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakes.postgres import PASSWORD

from launcher.backend import Handle, JobState, Status
from launcher.store import JobRecord, Store
from launcher.store_pg import PgStore

REPO = Path(__file__).resolve().parent.parent
TOKEN = "tok-Very$ecret-4711"
TINY = """\
name: tiny
run: echo "hello from $HOSTNAME"
resources:
  accelerators: cpu
secrets: [TINY_TOKEN]
"""


@pytest.fixture
def shared(pg_url: str) -> Any:
    store = PgStore(pg_url)
    yield store
    store.close()


@pytest.fixture
def launch(cli: Callable[..., Any], pg_url: str) -> Callable[..., Any]:
    """`launch ...` with LAUNCH_STORE_URL set to this test's PostgreSQL store."""
    def run(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return cli(*args, env={"LAUNCH_STORE_URL": pg_url, "TINY_TOKEN": TOKEN, **(env or {})}, **kwargs)
    return run


def _dump(pg_url: str) -> str:
    """Every row of the test's schema as text: what a secret must never appear in."""
    import psycopg

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT row_to_json(j)::text FROM jobs j").fetchall()
        rows += conn.execute("SELECT row_to_json(s)::text FROM job_states s").fetchall()
        rows += conn.execute("SELECT row_to_json(r)::text FROM job_requests r").fetchall()
    return "\n".join(r[0] for r in rows)


def test_a_run_records_who_where_what_and_its_history(launch: Any, write_spec: Any, pg_url: str,
                                                      shared: PgStore, launch_home: Path) -> None:
    spec = write_spec(TINY)
    ci = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "991", "GITHUB_RUN_ATTEMPT": "2",
          "GITHUB_REPOSITORY": "team/models", "GITHUB_SERVER_URL": "https://github.example.com"}
    from_ci = json.loads(launch("run", str(spec), "--wait", "-o", "json", env=ci, check_rc=0).stdout)
    by_hand = json.loads(launch("run", str(spec), "--wait", "-o", "json", check_rc=0).stdout)
    assert not (launch_home / "jobs.db").exists()  # the history went to PostgreSQL only

    record = shared.get(from_ci["id"])
    import getpass
    import socket

    assert (record.submitted_by, record.submitted_host) == (getpass.getuser(), socket.gethostname())
    assert record.ci_url == "https://github.example.com/team/models/actions/runs/991/attempts/2"
    assert shared.get(by_hand["id"]).ci_url is None
    states = [s for _, s, _ in shared.history(record.id)]
    assert states[0] is JobState.PENDING and states[-1] is JobState.SUCCEEDED
    request = shared.request(record.id)
    assert request["job_id"] == record.id and "****" in json.dumps(request)
    assert TOKEN not in _dump(pg_url)

    status = json.loads(launch("status", record.id, "-o", "json", check_rc=0).stdout)
    assert [h["state"] for h in status["history"]][-1] == "SUCCEEDED" and TOKEN not in json.dumps(status)
    assert status["submitted_by"] == getpass.getuser() and status["ci_url"] == record.ci_url
    shown = launch("status", record.id, check_rc=0).stdout
    assert f"by:       {getpass.getuser()}@{socket.gethostname()}" in shown and "ci run:" in shown

    def listed(*flags: str) -> list[str]:
        return [r["id"] for r in json.loads(launch("list", "-o", "json", *flags, check_rc=0).stdout)]
    assert listed() == [by_hand["id"], from_ci["id"]]
    assert listed("--ci") == [from_ci["id"]]
    assert listed("--mine") == [by_hand["id"], from_ci["id"]]
    assert listed("--user", "someone-else") == []
    assert launch("list", "--mine", "--user", "x", check_rc=2).stderr.startswith("error: give --mine")
    table = launch("list", check_rc=0).stdout.splitlines()
    assert table[0].split() == ["JOB", "BACKEND", "STATE", "CREATED", "BY", "MESSAGE"]
    assert f"{getpass.getuser()}@{socket.gethostname()} (ci)" in table[2] and "(ci)" not in table[1]


def test_a_local_job_seen_from_another_machine_says_where_it_lives(launch: Any, write_spec: Any,
                                                                   shared: PgStore) -> None:
    """Its status and logs are files on the submitting host: another machine shows the last stored
    state, never refreshes it from its own (absent) files, and says where to look."""
    job = json.loads(launch("run", str(write_spec(TINY)), "-o", "json", check_rc=0).stdout)["id"]
    shared._transact(lambda execute: execute(
        "UPDATE jobs SET submitted_host = 'ci-runner-7', state = 'RUNNING', finished_at = NULL WHERE id = ?",
        (job,)))
    logs = launch("logs", job, check_rc=2)
    assert "local to that machine" in logs.stderr and "ci-runner-7" in logs.stderr
    assert "Traceback" not in logs.stderr
    rows = json.loads(launch("list", "-o", "json", check_rc=0).stdout)
    assert [(r["id"], r["state"]) for r in rows] == [(job, "RUNNING")]
    assert json.loads(launch("status", job, "-o", "json", check_rc=0).stdout)["state"] == "RUNNING"


def test_credentials_from_url_pgpassword_or_pgpass_and_never_shown(cli: Any, pg_server: Any, pg_url: str,
                                                                   tmp_path: Path, launch_home: Path) -> None:
    no_password = pg_url.replace(pg_url.split("//")[1].split("@")[0], "launch")
    assert PASSWORD not in no_password
    cli("list", env={"LAUNCH_STORE_URL": no_password, "PGPASSWORD": PASSWORD}, check_rc=0)
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_server.port}:*:launch:{PASSWORD.replace(':', chr(92) + ':')}\n")
    pgpass.chmod(0o600)
    cli("list", env={"LAUNCH_STORE_URL": no_password, "PGPASSFILE": str(pgpass)}, check_rc=0)

    wrong = pg_url.replace("s3cret", "wr0ng")
    refused = cli("list", env={"LAUNCH_STORE_URL": wrong}, check_rc=4)  # at once: no retry helps
    assert "wr0ng" not in refused.stderr and "***" in refused.stderr and "password authentication" in refused.stderr
    # from config.toml too; a URL that is no PostgreSQL one is a usage error, its password masked
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(f'store_url = "{pg_url}"\n')
    cli("list", env={"PGPASSWORD": ""}, check_rc=0)
    (launch_home / "config.toml").write_text('store_url = "mysql://me:hunter2@db/launch"\n')
    bad = cli("list", check_rc=2)
    assert "hunter2" not in bad.stderr and "postgresql://" in bad.stderr
    # TLS options reach libpq as they are: this server has no TLS, so sslmode=require is refused
    tls = cli("list", env={"LAUNCH_STORE_URL": pg_url + "&sslmode=require"}, check_rc=4)
    assert "SSL" in tls.stderr and PASSWORD not in tls.stderr


def _local_history(home: Path, count: int) -> list[str]:
    store = Store.open(home)
    try:
        for i in range(count):
            job_id = f"old-2026010{i}-abc{i:03d}"
            store.reserve(JobRecord(id=job_id, name="old", backend="sagemaker", handle=None,
                                    spec={"name": "old", "i": i}, state=JobState.PENDING, created_at=1000.0 + i,
                                    updated_at=1000.0 + i, idempotency_key=f"k-{i}", submitted_by="ana"),
                          request={"payload": {"i": i}})
            store.set_handle(job_id, Handle("sagemaker", job_id, {"arn": f"arn:{i}"}))
            store.set_status(job_id, Status(JobState.SUCCEEDED, "Completed", exit_code=0))
        return [r.id for r in store.list()]
    finally:
        store.close()


def test_store_migrate_copies_a_sqlite_history_idempotently_and_resumes(launch: Any, launch_home: Path,
                                                                        shared: PgStore) -> None:
    ids = _local_history(launch_home, 5)
    source = Store.open(launch_home)
    first = source.get(ids[-1])
    assert shared.import_record(first, source.request(first.id), source.history(first.id))  # a copy cut short
    source.close()

    out = launch("store", "migrate", check_rc=0).stdout
    assert "copied 4 job(s)" in out and "1 were there already" in out
    again = launch("store", "migrate", check_rc=0).stdout
    assert "copied 0 job(s)" in again and "5 were there already" in again
    assert [r.id for r in shared.list()] == ids
    copied = shared.get(ids[0])
    assert (copied.state, copied.handle, copied.submitted_by) == (
        JobState.SUCCEEDED, Handle("sagemaker", ids[0], {"arn": "arn:4"}), "ana")
    assert [s for _, s, _ in shared.history(ids[0])] == [JobState.PENDING, JobState.SUCCEEDED]
    assert shared.request(ids[0]) == {"payload": {"i": 4}}
    assert launch("store", "migrate", "--from", str(launch_home / "nope.db"), check_rc=2).stderr
    plain = launch("store", "migrate", env={"LAUNCH_STORE_URL": ""}, check_rc=2)
    assert "`store_url` is not set" in plain.stderr


def test_list_sync_from_several_machines_at_once_records_each_job_once(cli: Any, launch: Any, write_spec: Any,
                                                                       launch_home: Path, pg_url: str,
                                                                       shared: PgStore) -> None:
    """Jobs only the provider knows (here: the local backend's job dirs, submitted under a SQLite
    history) are adopted by three `list --sync` at once: each exactly once, and no command fails."""
    spec = write_spec(TINY)
    ids = {json.loads(cli("run", str(spec), "--wait", "-o", "json", env={"TINY_TOKEN": TOKEN},
                          check_rc=0).stdout)["id"] for _ in range(3)}
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI")}
    env.update({"LAUNCH_HOME": str(launch_home), "LAUNCH_STORE_URL": pg_url})
    procs = [subprocess.Popen([sys.executable, "-m", "launcher", "list", "--sync", "--backend", "local", "-o", "json"],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    assert {r.id for r in shared.list()} == ids
    assert all(r.state is JobState.SUCCEEDED for r in shared.list())


def test_database_down_mid_run_exits_4_writes_nothing_and_recovers(launch: Any, write_spec: Any, pg_server: Any,
                                                                   shared: PgStore, pg_url: str) -> None:
    spec = write_spec(TINY)
    done = json.loads(launch("run", str(spec), "--wait", "-o", "json", check_rc=0).stdout)["id"]
    before = _dump(pg_url)
    pg_server.stop()
    try:
        for args in (("list",), ("status", done), ("run", str(spec), "--wait")):
            result = launch(*args, env={"LAUNCH_STORE_RETRY_S": "0.3"}, check_rc=4)
            assert "the shared job store at postgresql://launch:***@127.0.0.1" in result.stderr, result.stderr
            assert "Traceback" not in result.stderr and PASSWORD not in result.stderr
    finally:
        pg_server.start()
    assert _dump(pg_url) == before  # the refused run left no reservation behind
    rows = json.loads(launch("list", "-o", "json", check_rc=0).stdout)
    assert [(r["id"], r["state"]) for r in rows] == [(done, "SUCCEEDED")]
    # the store object that was open across the restart reconnects by itself
    assert shared.get(done).state is JobState.SUCCEEDED
    again = json.loads(launch("run", str(spec), "--wait", "-o", "json", check_rc=0).stdout)
    assert again["state"] == "SUCCEEDED"


def test_a_restart_during_a_wait_is_ridden_out(launch: Any, write_spec: Any, pg_server: Any, launch_home: Path,
                                               pg_url: str) -> None:
    """A database back within the retries (a quick restart, a failover) costs a running `wait` nothing."""
    spec = write_spec(TINY.replace('echo "hello from $HOSTNAME"', "sleep 2"))
    job = json.loads(launch("run", str(spec), "-o", "json", check_rc=0).stdout)["id"]
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI")}
    env.update({"LAUNCH_HOME": str(launch_home), "LAUNCH_STORE_URL": pg_url})
    waiting = subprocess.Popen([sys.executable, "-m", "launcher", "wait", job], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import psycopg

    with psycopg.connect(pg_server.url(), autocommit=True) as watch:  # restart once `wait` holds a connection
        deadline = time.monotonic() + 60
        while not watch.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'launch' "
                                "AND pid <> pg_backend_pid()").fetchone()[0]:
            assert waiting.poll() is None and time.monotonic() < deadline, waiting.communicate()
            time.sleep(0.02)
    pg_server.stop()
    pg_server.start()
    _, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err


def test_schema_is_versioned_and_a_newer_one_is_refused(shared: PgStore, pg_url: str) -> None:
    from launcher.errors import UsageError
    from launcher.store_pg import SCHEMA_VERSION

    assert shared._rows("SELECT max(version) FROM launch_schema") == [(SCHEMA_VERSION,)]
    PgStore(pg_url).close()  # opening again migrates nothing
    assert shared._rows("SELECT count(*) FROM launch_schema") == [(SCHEMA_VERSION,)]
    newer = SCHEMA_VERSION + 1
    shared._transact(lambda execute: execute("INSERT INTO launch_schema VALUES (?, ?)", (newer, 0.0)))
    with pytest.raises(UsageError) as refused:
        PgStore(pg_url)
    assert f"schema version {newer}" in refused.value.message and "upgrade launch" in refused.value.hint


def test_a_version_1_schema_moves_each_request_to_its_own_table(shared: PgStore, pg_url: str) -> None:
    """Version 2 keeps what a submit sent in job_requests: the row a status change rewrites stays small."""
    shared.reserve(JobRecord(id="old-1", name="old", backend="local", handle=None, spec={}, state=JobState.PENDING,
                             created_at=1.0, updated_at=1.0), request={"sent": "x" * 20000})

    def back_to_version_1(execute: Any) -> None:  # as a version 1 store held it
        execute("UPDATE jobs SET request = (SELECT request FROM job_requests WHERE job_id = 'old-1')", ())
        execute("DROP TABLE job_requests", ())
        execute("DELETE FROM launch_schema WHERE version > 1", ())
    shared._transact(back_to_version_1)
    upgraded = PgStore(pg_url)
    try:
        assert upgraded.request("old-1") == {"sent": "x" * 20000}
        assert upgraded._rows("SELECT request FROM jobs") == [(None,)]
    finally:
        upgraded.close()


def test_without_psycopg_a_store_url_is_the_install_line(launch_home: Path) -> None:
    """A plain install (no `postgres` extra) told to use a shared store: exit 2 naming the extra."""
    boot = ("import sys; sys.modules.update(dict.fromkeys(['psycopg', 'psycopg_binary'])); "
            "sys.argv = ['launch', 'list']; from launcher.cli import run_main; run_main()")
    env = {**os.environ, "LAUNCH_HOME": str(launch_home), "LAUNCH_STORE_URL": "postgresql://ana:pw-123@127.0.0.1:9/x"}
    result = subprocess.run([sys.executable, "-c", boot], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    assert "needs psycopg" in result.stderr and "[postgres]" in result.stderr and "pw-123" not in result.stderr
