"""A run with an idempotency key whose earlier submit died before the provider answered: the
reservation left behind must neither block the key forever nor let a live submit be doubled."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

from launcher.backend import JobState
from launcher.store import JobRecord, Store


def _reserve(launch_home, key: str, raw_state: str, created_at: float | None = None) -> str:
    store = Store.open(launch_home)
    now = created_at or time.time()
    job_id = f"stale-{abs(hash(raw_state)) % 10000}"
    store.reserve(JobRecord(id=job_id, name="keyed", backend="local", handle=None, spec={}, state=JobState.PENDING,
                            raw_state=raw_state, message="submitting", created_at=now, updated_at=now,
                            idempotency_key=key))
    return job_id


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_reservation_whose_submitter_died_is_submitted_afresh(cli, write_spec, launch_home):
    stale = _reserve(launch_home, "k-dead", f"submitting pid {_dead_pid()} on {socket.gethostname()}")
    spec = write_spec("name: keyed\nrun: echo fresh\n")
    out = json.loads(cli("run", str(spec), "--idempotency-key", "k-dead", "-o", "json", "--wait", check_rc=0).stdout)
    assert not out["existing"] and out["id"] != stale and out["state"] == "SUCCEEDED"
    assert [j["id"] for j in json.loads(cli("list", "-o", "json", check_rc=0).stdout)] == [out["id"]]
    again = json.loads(cli("run", str(spec), "--idempotency-key", "k-dead", "-o", "json", check_rc=0).stdout)
    assert again["existing"] and again["id"] == out["id"]


def test_a_reservation_whose_submitter_is_alive_is_returned_not_doubled(cli, write_spec, launch_home):
    live = _reserve(launch_home, "k-live", f"submitting pid {os.getpid()} on {socket.gethostname()}")
    spec = write_spec("name: keyed\nrun: echo x\n")
    out = json.loads(cli("run", str(spec), "--idempotency-key", "k-live", "-o", "json", check_rc=0).stdout)
    assert out["existing"] and out["id"] == live
    assert len(json.loads(cli("list", "-o", "json", check_rc=0).stdout)) == 1


def test_an_old_reservation_from_another_host_counts_as_abandoned(cli, write_spec, launch_home):
    _reserve(launch_home, "k-old", "submitting pid 1 on some-other-host", created_at=time.time() - 3600)
    out = json.loads(cli("run", str(write_spec("name: keyed\nrun: echo y\n")), "--idempotency-key", "k-old",
                         "-o", "json", check_rc=0).stdout)
    assert not out["existing"]
