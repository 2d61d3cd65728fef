"""`launch list` from the team's shared PostgreSQL store beside the same history in SQLite.

Run by hand (not in CI), with the project's virtualenv; needs Debian's postgresql (as ci/test installs):

    .venv/bin/python bench/shared_store.py [--quick]

The 1,000 finished jobs of bench/cli_startup.py's history are written to a temporary SQLite
LAUNCH_HOME and copied with `launch store migrate` into a PostgreSQL server started for the run
(tests/fakes/postgres.py: a fresh cluster on a free 127.0.0.1 port, password auth). Both commands
run through the venv's `launch` script, interleaved round by round. Finished jobs only: `list`
then reads the store and refreshes nothing, so the rows compare the stores, not the backends.

Goal (issue 26): `launch list` from PostgreSQL within 2x of SQLite's time.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import report
from cli_startup import JOBS, fill_store
from timing import REPO, Case, Row, Section, clean_env, interleaved, launch_script

GOAL = 2.0


def measure(quick: bool) -> Section:
    runs, warmups = (5, 1) if quick else (20, 3)
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    from fakes.postgres import PostgresServer

    launch = launch_script()
    sec = Section("Shared job store: `launch list` from PostgreSQL vs SQLite")
    server = PostgresServer()
    try:
        with tempfile.TemporaryDirectory(prefix="launch-bench-") as tmp:
            home = Path(tmp) / "home"
            fill_store(home, JOBS, finished_only=True)
            sqlite_env = clean_env(LAUNCH_HOME=str(home))
            pg_env = clean_env(LAUNCH_HOME=str(home), LAUNCH_STORE_URL=server.url())
            subprocess.run([launch, "store", "migrate"], env=pg_env, capture_output=True, timeout=600, check=True)
            cases = [Case("list (SQLite)", [launch, "list"], sqlite_env),
                     Case("list (PostgreSQL)", [launch, "list"], pg_env),
                     Case("list --all (SQLite)", [launch, "list", "--all"], sqlite_env),
                     Case("list --all (PostgreSQL)", [launch, "list", "--all"], pg_env)]
            for case in cases:
                subprocess.run(case.argv, env=case.env, capture_output=True, timeout=120, check=True)
            got = interleaved(cases, runs, warmups)
    finally:
        server.close()
    for what, flags in ((f"list, {JOBS} jobs in the store (50 shown)", ""), (f"list --all, {JOBS} jobs", " --all")):
        ours, base = got[f"list{flags} (PostgreSQL)"], got[f"list{flags} (SQLite)"]
        sec.rows.append(Row(what, f"launch list{flags} (PostgreSQL)", ours, f"launch list{flags} (SQLite)", base,
                            goal=f"<= {GOAL}x", met=ours.median <= GOAL * base.median))
    sec.notes.append(f"{JOBS} finished jobs, the same rows in both stores (copied by `launch store migrate`); "
                     f"PostgreSQL 15 on 127.0.0.1 (TCP, scram password auth, fsync off: reads are timed); "
                     f"{warmups} warm-up rounds, then {runs} interleaved rounds")
    return sec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sec = measure(args.quick)
    print(report.section(sec))
    return 0 if all(row.met is not False for row in sec.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
