"""Start-up stays light: `launch --help` and `launch list` never import pydantic, YAML,
the bundle code, any backend module or any provider SDK.

These check which modules are loaded, not how long anything takes, so they are
deterministic on any machine. Each check runs in a fresh interpreter: the test
process itself has imported half the project already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.backend import Handle, JobState, Status
from launcher.store import JobRecord, Store

REPO = Path(__file__).resolve().parent.parent

# Exact module names; a name also forbids its submodules (google.cloud -> google.cloud.storage).
HEAVY = ("boto3", "botocore", "google.cloud", "google.api_core", "azure", "kubernetes", "pydantic", "pydantic_core",
         "yaml", "backends.local", "launcher.spec", "launcher.bundle", "rich", "psycopg", "launcher.store_pg",
         "launcher.ui", "starlette", "uvicorn", "jinja2")
# `list` may load the local backend (it refreshes unfinished local jobs), never the rest.
NEVER_FOR_LIST = tuple(m for m in HEAVY if m != "backends.local")


def _at_interpreter_start() -> set[str]:
    """Modules every Python in this environment has before running anything (e.g. the bare
    `google.cloud` namespace that google-cloud-*'s .pth files create): not launch's doing."""
    result = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sorted(sys.modules)))"],
                            capture_output=True, text=True, timeout=60)
    return set(json.loads(result.stdout))


BASELINE = _at_interpreter_start()


def _offenders(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if m not in BASELINE and any(m == f or m.startswith(f + ".") for f in forbidden))


def _python(args: list[str], home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LAUNCH_HOME": str(home)}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)


def test_import_cli_is_light(tmp_path: Path) -> None:
    """The entry point imports not even click (it answers --help itself); the commands import click only."""
    code = "import json, sys; import launcher.cli; print(json.dumps(sorted(sys.modules)))"
    result = _python(["-c", code], tmp_path / "home")
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout)
    assert "launcher.cli" in modules and _offenders(modules, (*HEAVY, "click", "launcher.commands")) == []
    code = "import json, sys; import launcher.commands; print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(_python(["-c", code], tmp_path / "home").stdout)
    assert "click" in modules and _offenders(modules, HEAVY) == []


# Runs the real console-script entry with the given argv, then, at interpreter exit (after click's
# sys.exit), writes every module that was ever loaded to the file named by argv[1].
_WRAPPER = """
import atexit, json, sys
out, args = sys.argv[1], sys.argv[2:]
def dump():
    with open(out, "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(dump)
sys.argv = ["launch", *args]
from launcher.cli import run_main
run_main()
"""


def _modules_after(home: Path, tmp_path: Path, *args: str) -> tuple[list[str], subprocess.CompletedProcess]:
    out = tmp_path / "modules.json"
    out.unlink(missing_ok=True)
    result = _python(["-c", _WRAPPER, str(out), *args], home)
    assert result.returncode == 0, f"launch {' '.join(args)}: exit {result.returncode}\n{result.stderr}"
    assert out.exists(), "the atexit hook did not run"
    return json.loads(out.read_text()), result


@pytest.fixture
def home_with_jobs(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    store = Store.open(home)
    now = time.time()
    # unfinished jobs too: `list` refreshes local ones and must still stay light
    for i, (backend, state) in enumerate([("local", JobState.SUCCEEDED), ("sagemaker", JobState.RUNNING),
                                          ("vertex", JobState.FAILED), ("local", JobState.RUNNING),
                                          ("local", JobState.CANCELLED), ("vertex", JobState.PENDING)]):
        job_id = f"bert-20240101-00000{i}-abc{i:03d}"
        store.reserve(JobRecord(id=job_id, name="bert", backend=backend, handle=None,
                                spec={"name": "bert", "run": "python train.py"}, state=JobState.PENDING,
                                created_at=now - 100 * i, updated_at=now - 100 * i))
        data = {"job_dir": str(home / "local" / job_id), "nodes": []} if backend == "local" else {"n": i}
        store.set_handle(job_id, Handle(backend, job_id, data))
        store.set_status(job_id, Status(state, state.value.lower(), "line one\nline two",
                                        started_at=now - 100 * i + 1, ended_at=now - 100 * i + 50))
    store.close()
    return home


@pytest.mark.parametrize("args", [("list",), ("list", "-o", "json"), ("list", "--all"),
                                  ("list", "--backend", "local", "--state", "succeeded")],
                         ids=lambda a: " ".join(a))
def test_list_does_not_import_pydantic_or_yaml(home_with_jobs: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    modules, result = _modules_after(home_with_jobs, tmp_path, *args)
    assert "launcher.store" in modules  # it really listed, through the store
    assert "bert-20240101-000000-abc000" in result.stdout
    assert _offenders(modules, NEVER_FOR_LIST) == []


def test_list_json_output_is_the_jobs(home_with_jobs: Path, tmp_path: Path) -> None:
    _, result = _modules_after(home_with_jobs, tmp_path, "list", "-o", "json")
    rows = json.loads(result.stdout)
    assert [r["id"][-6:] for r in rows] == [f"abc{i:03d}" for i in range(6)]


@pytest.mark.parametrize("args", [("--help",), ("list", "--help"), ("--version",)], ids=lambda a: " ".join(a))
def test_help_and_version_are_light(tmp_path: Path, args: tuple[str, ...]) -> None:
    modules, result = _modules_after(tmp_path / "home", tmp_path, *args)
    assert result.stdout.strip()
    assert _offenders(modules, HEAVY) == []
    assert "launcher.store" not in modules  # help never opens the store


def test_list_on_empty_home_is_light(tmp_path: Path) -> None:
    modules, result = _modules_after(tmp_path / "home", tmp_path, "list")
    assert "no jobs yet" in result.stdout
    assert _offenders(modules, NEVER_FOR_LIST) == []


def test_azureml_backend_imports_and_renders_without_the_sdk(tmp_path: Path) -> None:
    """azure-ai-ml marked absent (sys.modules entry None): the module loads and renders a request."""
    code = ("import json, sys\nsys.modules['azure'] = None\n"
            "from pathlib import Path\nfrom backends.azureml import AzureMLBackend\n"
            "from launcher.spec import parse_spec\n"
            "spec = parse_spec('name: x\\nimage: i\\nrun: r\\nresources:\\n  accelerators: T4\\n', 'spec.yaml', "
            "base_dir=Path('.'))\n"
            "b = AzureMLBackend({'subscription_id': '11111111-2222-3333-4444-555555555555', 'resource_group': 'rg', "
            "'workspace_name': 'ws-a'})\n"
            "request = b.render(spec, 'x-20260101-000000-abcdef', None, {})\n"
            "loaded = sorted(m for m, v in sys.modules.items() if v)\n"
            "print(json.dumps({'op': request.operation, 'modules': loaded}))\n")
    result = _python(["-c", code], tmp_path / "home")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["op"].endswith("/workspaces/ws-a/jobs/x-20260101-000000-abcdef")
    assert _offenders(out["modules"], ("azure", "requests", "msrest")) == []


def test_list_with_azureml_jobs_does_not_import_azure(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = Store.open(home)
    now = time.time()
    for i, state in enumerate([JobState.RUNNING, JobState.SUCCEEDED]):
        job_id = f"az-20240101-00000{i}-abc{i:03d}"
        store.reserve(JobRecord(id=job_id, name="az", backend="azureml", handle=None, spec={"name": "az"},
                                state=JobState.PENDING, created_at=now - i, updated_at=now - i))
        store.set_handle(job_id, Handle("azureml", job_id, {"name": job_id, "workspace_name": "ws"}))
        store.set_status(job_id, Status(state, "Running" if i == 0 else "Completed"))
    store.close()
    modules, result = _modules_after(home, tmp_path, "list")
    assert "az-20240101-000000-abc000" in result.stdout
    assert _offenders(modules, (*NEVER_FOR_LIST, "backends.azureml")) == []
