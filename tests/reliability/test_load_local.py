"""Load: 50 `launch run` at once on the local backend while `launch list` and `launch status` run in
a loop against the same store. No "database is locked" (or any error) reaches a user, no record is
lost, and every job reaches a terminal state with the exit code its command chose."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .conftest import SUBMITTED, TRACEBACK, launch_env, run_launch

JOBS = 50


def test_fifty_concurrent_runs_while_list_and_status_loop(launch_home: Path, tmp_path: Path):
    env = launch_env(launch_home)
    specs = []
    for i in range(JOBS):  # every 5th job fails on purpose: terminal states differ and must each be right
        spec = tmp_path / f"job{i}.yaml"
        spec.write_text(f"name: load-{i}\nrun: echo job {i}; exit {1 if i % 5 == 0 else 0}\n")
        specs.append(spec)
    stop = threading.Event()
    readers: list = []

    def read_loop() -> None:
        while not stop.is_set():
            listed = run_launch(["list", "--all", "-o", "json"], env)
            readers.append(listed)
            jobs = json.loads(listed.stdout or "[]") if listed.returncode == 0 else []
            if jobs:
                readers.append(run_launch(["status", jobs[len(readers) % len(jobs)]["id"], "-o", "json"], env))

    looper = threading.Thread(target=read_loop)
    looper.start()
    try:
        with ThreadPoolExecutor(JOBS) as pool:
            runs = list(pool.map(lambda spec: run_launch(["run", str(spec)], env), specs))
        submitted = {}
        for spec, result in zip(specs, runs, strict=True):
            assert result.returncode == 0, result.stderr
            submitted[SUBMITTED.search(result.stdout).group(1)] = spec
        deadline = time.monotonic() + 120
        while True:
            listed = run_launch(["list", "--all", "-o", "json"], env)
            assert listed.returncode == 0, listed.stderr
            records = {job["id"]: job for job in json.loads(listed.stdout)}
            if all(records.get(job, {}).get("state") in ("SUCCEEDED", "FAILED") for job in submitted):
                break
            assert time.monotonic() < deadline, {j: records.get(j, {}).get("state") for j in submitted}
            time.sleep(0.5)
    finally:
        stop.set()
        looper.join()

    assert set(records) == set(submitted), "a record was lost or invented"
    for job, spec in submitted.items():
        failing = int(spec.stem.removeprefix("job")) % 5 == 0
        assert records[job]["state"] == ("FAILED" if failing else "SUCCEEDED"), records[job]
    assert len(readers) >= 4, "the list/status loop hardly ran: the test proved little"
    for result in [*runs, *readers]:
        text = result.stdout + result.stderr
        assert "locked" not in text and TRACEBACK not in text and result.returncode == 0, text
