"""`launch run --sweep`: a grid of jobs on the local backend, as a group that `list --group`
and `cancel --group` reach, with --max-parallel bounding how many run at once."""

from __future__ import annotations

import json
import re

import pytest

from launcher import sweep
from launcher.errors import UsageError

GROUP = re.compile(r"^group (\S+):", re.M)


def _group_jobs(cli, group: str) -> list[dict]:
    return json.loads(cli("list", "--group", group, "-o", "json", check_rc=0).stdout)


def test_grid_of_four_runs_with_values_as_env_and_substitutions(cli, write_spec):
    spec = write_spec("name: sw\nrun: echo \"lr=$lr batch=${batch} tag=${tag}\"\n"
                      "env: {tag: 'run-${lr}'}\n")
    result = cli("run", str(spec), "--sweep", "lr=1e-3,3e-4", "--sweep", "batch=32,64", "--wait", check_rc=0)
    group = GROUP.search(result.stdout).group(1)
    jobs = _group_jobs(cli, group)
    assert len(jobs) == 4 and {j["state"] for j in jobs} == {"SUCCEEDED"}
    seen = set()
    for job in jobs:
        lines = cli("logs", job["id"], check_rc=0).stdout.splitlines()
        seen.update(line for line in lines if not line.startswith("[launch]"))
    assert seen == {f"lr={lr} batch={b} tag=run-{lr}" for lr in ("1e-3", "3e-4") for b in ("32", "64")}
    # the summary table: one row per point, in grid order
    rows = [line for line in result.stdout.splitlines() if line.startswith("lr=")]
    assert [r.split()[:2] for r in rows] == [["lr=1e-3", "batch=32"], ["lr=1e-3", "batch=64"],
                                            ["lr=3e-4", "batch=32"], ["lr=3e-4", "batch=64"]]
    assert all(r.rstrip().endswith("SUCCEEDED") for r in rows)


def test_max_parallel_bounds_jobs_running_at_once(cli, write_spec):
    spec = write_spec("name: par\nrun: sleep 1\n")
    result = cli("run", str(spec), "--sweep", "i=1,2,3,4,5", "--max-parallel", "2", "--wait", "-o", "json",
                 check_rc=0)
    group = json.loads(result.stdout)["group"]
    jobs = _group_jobs(cli, group)
    assert len(jobs) == 5
    events = sorted([(j["created_at"], 1) for j in jobs] + [(j["ended_at"], -1) for j in jobs])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_cancel_group_stops_every_unfinished_job(cli, write_spec):
    spec = write_spec("name: cg\nrun: sleep 60\n")
    out = json.loads(cli("run", str(spec), "--sweep", "x=a,b,c", "-o", "json", check_rc=0).stdout)
    group = out["group"]
    assert len(out["jobs"]) == 3 and all(j["job_id"] and j["error"] is None for j in out["jobs"])
    assert group.startswith("cg-sweep-")
    cancelled = cli("cancel", "--group", "cg-sw", check_rc=0).stdout  # a unique prefix, as for job ids
    assert cancelled.count("CANCELLED") == 3
    assert {j["state"] for j in _group_jobs(cli, group)} == {"CANCELLED"}
    other = cli("list", "--group", "no-such-group", check_rc=2)
    assert "no sweep group matches 'no-such-group'" in other.stderr


def test_group_prefixes_resolve_like_job_ids(cli, write_spec):
    spec = write_spec("name: gp\nrun: echo hi\n")
    first = json.loads(cli("run", str(spec), "--sweep", "x=a", "--wait", "-o", "json", check_rc=0).stdout)["group"]
    second = json.loads(cli("run", str(spec), "--sweep", "x=b", "--wait", "-o", "json", check_rc=0).stdout)["group"]
    assert [j["params"] for j in _group_jobs(cli, first[:-2])] == [{"x": "a"}]
    assert [j["params"] for j in _group_jobs(cli, second)] == [{"x": "b"}]
    ambiguous = cli("list", "--group", "gp-sweep", check_rc=2)
    assert "several sweep groups" in ambiguous.stderr and first in ambiguous.stderr and second in ambiguous.stderr
    assert "several sweep groups" in cli("cancel", "--group", "gp", check_rc=2).stderr


def test_list_and_status_show_each_job_by_its_point(cli, write_spec):
    spec = write_spec("name: pt\nrun: echo hi\n")
    out = json.loads(cli("run", str(spec), "--sweep", "lr=1e-3,3e-4", "--sweep", "b=32", "--wait", "-o", "json",
                         check_rc=0).stdout)
    plain = cli("run", str(write_spec("name: solo\nrun: echo hi\n", "solo.yaml")), "--wait", check_rc=0)
    solo = re.search(r"submitted (\S+)", plain.stdout).group(1)
    table = cli("list", check_rc=0).stdout.splitlines()
    assert table[0].split()[:3] == ["JOB", "POINT", "BACKEND"]
    by_id = {line.split()[0]: line.split()[1:4] for line in table[1:]}
    for job in out["jobs"]:
        lr = job["params"]["lr"]
        assert by_id[job["job_id"]] == [f"lr={lr}", "b=32", "local"]
        status = cli("status", job["job_id"], check_rc=0).stdout
        assert f"point:    lr={lr} b=32\n" in status
    assert by_id[solo][:2] == ["-", "local"]
    assert "point:" not in cli("status", solo, check_rc=0).stdout
    # a listing without sweep jobs keeps the table it always had
    assert cli("list", "-n", "1", check_rc=0).stdout.split()[:3] == ["JOB", "BACKEND", "STATE"]


def test_a_bad_point_fails_the_whole_sweep_before_anything_runs(cli, write_spec):
    spec = write_spec("name: bad\nrun: echo ${nodes}\nresources: {nodes: '${nodes}'}\n")
    result = cli("run", str(spec), "--sweep", "nodes=1,zero", check_rc=2)
    assert "resources.nodes" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(cli("list", "-o", "json", check_rc=0).stdout) == []


def test_sweep_exit_code_is_the_worst_result(cli, write_spec):
    spec = write_spec("name: mix\nrun: exit $code\n")
    cli("run", str(spec), "--sweep", "code=0,1", "--wait", check_rc=1)


def test_dry_run_shows_every_point_and_submits_nothing(cli, write_spec):
    spec = write_spec("name: dry\nrun: python train.py --lr ${lr}\n")
    out = cli("run", str(spec), "--sweep", "lr=0.1,0.2,0.3", "--dry-run", check_rc=0)
    requests = json.loads(out.stdout)
    assert len(requests) == 3
    assert [r["payload"]["nodes"][0]["env"]["lr"] for r in requests] == ["0.1", "0.2", "0.3"]
    assert [next(u["content"] for u in r["uploads"] if u["destination"].endswith("/run.sh"))
            for r in requests] == [
        f"python train.py --lr {lr}" for lr in ("0.1", "0.2", "0.3")]
    assert json.loads(cli("list", "-o", "json", check_rc=0).stdout) == []


@pytest.mark.parametrize("flags, message", [
    (["--sweep", "lr"], "expected NAME=V1,V2"),
    (["--sweep", "1x=1"], "valid env var name"),
    (["--sweep", "lr=1,,2"], "empty value"),
    (["--sweep", "lr=1", "--sweep", "lr=2"], "given twice"),
    (["--sweep", "LAUNCH_X=1"], "LAUNCH_"),
    (["--max-parallel", "2"], "goes with --sweep"),
    (["--sweep", "a=1,2", "--follow"], "--follow streams one job"),
])
def test_bad_sweep_flags_are_usage_errors(cli, write_spec, flags, message):
    result = cli("run", str(write_spec("name: f\nrun: echo\n")), *flags, check_rc=2)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_grid_order_and_size_limit():
    axes = sweep.parse_axes(["a=1,2", "b=x,y,z"])
    assert sweep.grid(axes)[:4] == [{"a": "1", "b": "x"}, {"a": "1", "b": "y"}, {"a": "1", "b": "z"},
                                    {"a": "2", "b": "x"}]
    with pytest.raises(UsageError, match="at most"):
        sweep.grid(sweep.parse_axes([f"k{i}=" + ",".join(map(str, range(11))) for i in range(3)]))
    assert sweep.point_key(None, {"a": "1"}) is None
    assert sweep.point_key("k", {"a": "1"}) != sweep.point_key("k", {"a": "2"})


def test_a_version_1_history_gains_the_group_column_and_keeps_its_jobs(tmp_path):
    import sqlite3

    from launcher.store import Store

    path = tmp_path / "jobs.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, handle TEXT, "
        "spec TEXT NOT NULL, state TEXT NOT NULL, raw_state TEXT NOT NULL DEFAULT '', message TEXT NOT NULL "
        "DEFAULT '', exit_code INTEGER, url TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "started_at REAL, ended_at REAL, idempotency_key TEXT UNIQUE);"
        "INSERT INTO jobs (id, name, backend, spec, state, created_at, updated_at) "
        "VALUES ('old-1', 'old', 'local', '{}', 'SUCCEEDED', 1, 1); PRAGMA user_version = 1;")
    old.commit()
    old.close()
    store = Store(path)
    (record,) = store.list()
    assert record.id == "old-1" and record.group_id is None
    assert store.list(group="g") == []


def test_a_version_2_history_gains_the_params_column_and_keeps_its_jobs(tmp_path):
    import sqlite3

    from launcher.store import Store

    path = tmp_path / "jobs.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, backend TEXT NOT NULL, handle TEXT, "
        "spec TEXT NOT NULL, state TEXT NOT NULL, raw_state TEXT NOT NULL DEFAULT '', message TEXT NOT NULL "
        "DEFAULT '', exit_code INTEGER, url TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL, "
        "started_at REAL, ended_at REAL, idempotency_key TEXT UNIQUE, group_id TEXT);"
        "INSERT INTO jobs (id, name, backend, spec, state, created_at, updated_at, group_id) "
        "VALUES ('old-1', 'old', 'local', '{}', 'SUCCEEDED', 1, 1, 'g-1'); PRAGMA user_version = 2;")
    old.commit()
    old.close()
    store = Store(path)
    (record,) = store.list()
    assert record.id == "old-1" and record.group_id == "g-1" and record.params is None and record.label == ""
    assert store.resolve_group("g") == "g-1"
