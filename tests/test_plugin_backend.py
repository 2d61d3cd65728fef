"""A backend from another package, installed with pip, works through the CLI unchanged."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    target = tmp_path_factory.mktemp("plugin-site")
    source = tmp_path_factory.mktemp("plugin-src") / "plugin_pkg"
    shutil.copytree(PLUGIN, source)  # pip builds in place: keep build/ out of the repo
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    assert list(target.glob("launch_echo_backend-*.dist-info"))
    return str(target)


def _env(plugin_path: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(filter(None, [plugin_path, os.environ.get("PYTHONPATH")]))}


def test_backends_lists_plugin_only_when_installed(cli, plugin_path):
    without = json.loads(cli("backends", "-o", "json", check_rc=0).stdout)
    assert "echo" not in {row["name"] for row in without}
    rows = json.loads(cli("backends", "-o", "json", env=_env(plugin_path), check_rc=0).stdout)
    by_name = {row["name"]: row for row in rows}
    assert {"local", "echo"} <= set(by_name)
    assert by_name["echo"]["detail"] == "echoes the run command"


def test_plugin_runs_a_job_end_to_end(cli, plugin_path, write_spec):
    spec = write_spec("name: plug\nrun: python train.py --lr 3\n")
    env = _env(plugin_path)
    result = cli("run", str(spec), "--backend", "echo", "--follow", env=env, check_rc=0)
    assert "echo: python train.py --lr 3" in result.stdout
    listed = json.loads(cli("list", "--backend", "echo", "-o", "json", env=env, check_rc=0).stdout)
    assert [r["state"] for r in listed] == ["SUCCEEDED"]


def test_plugin_settings_are_validated_by_the_plugin(cli, plugin_path, write_spec):
    spec = write_spec("name: plug\nrun: x\nbackends:\n  echo:\n    exit_cod: 1\n")
    result = cli("run", str(spec), "--backend", "echo", env=_env(plugin_path))
    assert result.returncode == 2
    assert "spec.yaml:5" in result.stderr and "backends.echo.exit_cod" in result.stderr
    assert "did you mean 'exit_code'" in result.stderr


def test_plugin_failure_exit_code(cli, plugin_path, write_spec):
    spec = write_spec("name: plug\nrun: x\nbackends:\n  echo:\n    exit_code: 5\n")
    result = cli("run", str(spec), "--backend", "echo", "--wait", env=_env(plugin_path))
    assert result.returncode == 1, result.stderr


def test_unreachable_backend_exits_4_and_records_nothing(cli, plugin_path, write_spec, launch_home):
    spec = write_spec("name: plug\nrun: x\nbackends:\n  echo:\n    unreachable: true\n")
    result = cli("run", str(spec), "--backend", "echo", "--wait", env=_env(plugin_path))
    assert result.returncode == 4, result.stderr
    assert "echo service unreachable" in result.stderr and "Traceback" not in result.stderr
    listed = json.loads(cli("list", "-o", "json", env=_env(plugin_path), check_rc=0).stdout)
    assert listed == []


def test_single_node_limit_is_a_located_problem_validate_reports(cli, plugin_path, write_spec):
    spec = write_spec("name: plug\nrun: x\nresources:\n  nodes: 3\n")
    for command in (("validate", str(spec), "--backend", "echo"), ("run", "--dry-run", str(spec), "--backend", "echo")):
        result = cli(*command, env=_env(plugin_path))
        assert result.returncode == 2, result.stderr
        assert "spec.yaml:4: resources.nodes: the echo backend runs single-node jobs only" in result.stderr


def test_plugin_brings_its_own_catalog_rows(cli, plugin_path, write_spec):
    """A backend from another package ships prices (catalog_rows); the core merges them beside the built-ins'."""
    env = _env(plugin_path)
    rows = json.loads(cli("catalog", "-o", "json", env=env, check_rc=0).stdout)
    echo = [r for r in rows if r["backend"] == "echo"]
    assert [(r["accelerator"], r["count"], r["instance_type"], r["ondemand_usd_hr"]) for r in echo] == [
        ("T4", 1, "echo-t4", 0.25)]
    assert echo[0]["source"] == "https://example.invalid/echo-prices" and echo[0]["as_of"] == "2026-11-30"
    assert {"sagemaker", "vertex", "azureml", "lambda_cloud"} <= {r["backend"] for r in rows}
    table = cli("catalog", "-b", "echo", env=env, check_rc=0).stdout
    assert "echo-t4" in table and "ml." not in table
    without = cli("catalog", "-b", "echo", check_rc=2)  # not installed: no rows, and not a known backend
    assert "no backend 'echo'" in without.stderr

    spec = write_spec("name: plug\nrun: x\nresources:\n  accelerators: T4\nmax_runtime: 2h\n")
    planned = {r["backend"]: r for r in json.loads(cli("plan", str(spec), "-o", "json", "--no-live",
                                                         env=env, check_rc=0).stdout)}
    assert planned["echo"]["fits"] and planned["echo"]["instance_type"] == "echo-t4"
    assert planned["echo"]["hourly_usd"] == 0.25 and planned["echo"]["est_cost_usd"] == 0.5
    assert planned["echo"]["price_as_of"] == "2026-11-30"
    too_many = write_spec("name: plug\nrun: x\nresources:\n  accelerators: T4:4\n")
    row = {r["backend"]: r for r in json.loads(cli("plan", str(too_many), "-o", "json", "--no-live",
                                                   env=env, check_rc=0).stdout)}["echo"]
    assert not row["fits"] and "echo has no instance type with T4:4; it offers T4:1" in row["reason"]


def test_run_help_lists_the_installed_backends(cli, plugin_path):
    """--backend's help comes from the registry: a plugin is listed once installed, not before."""
    def backend_help(env=None):
        text = " ".join(cli("run", "--help", env=env, check_rc=0).stdout.split())
        return text[text.index("Where to run:"):text.index("'a,b'")]

    before = backend_help()
    assert "local (default)" in before and "sagemaker" in before and "echo" not in before
    assert "echo" in backend_help(_env(plugin_path))


def test_plugin_uses_only_the_public_contract():
    """What a third-party backend may import from launch: the contract and its errors, nothing else."""
    import ast

    tree = ast.parse((PLUGIN / "launch_echo_backend.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert {m for m in imported if m.split(".")[0] in ("launcher", "backends")} == {"launcher.backend",
                                                                                   "launcher.errors"}
    source = (PLUGIN / "launch_echo_backend.py").read_text()
    assert "class EchoBackend(Backend)" in source and "LazySettings(" in source and "__get__" not in source


def test_plugin_job_is_finished_once_however_often_it_is_looked_at(cli, plugin_path, write_spec, launch_home):
    """The runner calls the plugin's `finish` the first time it sees the job ended, then never again."""
    spec = write_spec("name: plug\nrun: echo once\n")
    env = _env(plugin_path)
    job = json.loads(cli("run", str(spec), "--backend", "echo", "--wait", "-o", "json", env=env, check_rc=0).stdout)
    trace = launch_home / "echo" / f"{job['id']}.finished"
    assert trace.read_text() == "SUCCEEDED\n"
    for command in (("status", job["id"]), ("wait", job["id"]), ("list", "--refresh"), ("logs", job["id"]),
                    ("list", "--sync", "--backend", "echo")):
        cli(*command, env=env, check_rc=0)
    assert trace.read_text() == "SUCCEEDED\n"
    assert json.loads(cli("status", job["id"], "-o", "json", env=env, check_rc=0).stdout)["finished_at"]


def test_plugin_job_is_found_by_its_idempotency_key_through_the_default_find(cli, plugin_path, write_spec,
                                                                             launch_home):
    """The plugin writes no `find`: the contract's default scans its `list`, so a CI re-run on a
    machine whose store is empty gets the first job back instead of a second one."""
    spec = write_spec("name: plug\nrun: echo keyed\n")
    env = _env(plugin_path)
    first = json.loads(cli("run", str(spec), "--backend", "echo", "--idempotency-key", "ci-77", "-o", "json",
                           env=env, check_rc=0).stdout)
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    again = cli("run", str(spec), "--backend", "echo", "--idempotency-key", "ci-77", "-o", "json", env=env, check_rc=0)
    assert json.loads(again.stdout)["id"] == first["id"]
    assert "already exists" in again.stderr
    assert len(list((launch_home / "echo").glob("*.json"))) == 1
