"""The example pipelines in ci/examples/ work: they parse, and their shell lines, run in
order as the CI would run them (bash -e, the workflow's env, a fresh virtualenv where
`pip install` really installs this package), submit the spec to the local backend and
fail exactly when the training run fails."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "ci" / "examples"
CONTAINS = re.compile(r"contains\(env\.(\w+), '([^']*)'\)")


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """An empty virtualenv: the pipelines' own install line puts `launch` in it."""
    venv = tmp_path_factory.mktemp("ci-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    return venv


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """This package's source (what its build reads), copied: `pip install DIR` builds in DIR, writing build/ and
    launch_jobs.egg-info/ there, and the repo's egg-info is what the registry and other test workers read."""
    copy = tmp_path_factory.mktemp("package") / "launch"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, copy / name)
    for name in ("launcher", "backends"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _base_env(venv: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "TMPDIR", "PIP_INDEX_URL",
                                                          "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT")}
    return {**keep, "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(venv),
            "LAUNCH_HOME": str(tmp_path / "launch-home"), "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _failing_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "broken.yaml"
    spec.write_text("name: broken\nrun: echo 'loss is nan' >&2; exit 5\n")
    return spec


def _run_line(line: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert "${{" not in line, f"a run line must take CI values through env:, not expressions: {line}"
    return subprocess.run(["bash", "-e", "-c", line], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def _should_run(condition: str | None, env: dict[str, str], failed: bool) -> bool:
    """The `if:` expressions the example uses; any other one fails the test so it is kept honest."""
    if condition is None:
        return not failed
    condition = condition.strip()
    if condition == "always()":
        return True
    if condition == "failure()":
        return failed
    found = CONTAINS.fullmatch(condition)
    assert found, f"the test does not understand if: {condition}"
    return not failed and found.group(2) in env.get(found.group(1), "")


def run_github_workflow(venv: Path, package: Path, tmp_path: Path, spec: str, backend: str = "local"
                        ) -> tuple[bool, list[tuple[str, int, str]], Path]:
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    summary = tmp_path / "step-summary.md"
    env = _base_env(venv, tmp_path, GITHUB_ACTIONS="true", GITHUB_RUN_ID="4242", GITHUB_RUN_ATTEMPT="1",
                    GITHUB_JOB="train", GITHUB_REPOSITORY="acme/models", GITHUB_STEP_SUMMARY=str(summary))
    env.update({k: str(v) for k, v in workflow["env"].items()})
    env.update(LAUNCH_BACKEND=backend, LAUNCH_SPEC=spec, LAUNCH_PACKAGE=str(package))
    (job,) = workflow["jobs"].values()
    failed, ran = False, []
    for index, step in enumerate(job["steps"]):
        if "run" not in step or not _should_run(step.get("if"), env, failed):
            continue
        step_env = {**env, "GITHUB_ACTION": f"__run_{index}",
                    **{k: "" if "${{" in str(v) else str(v) for k, v in (step.get("env") or {}).items()}}
        result = _run_line(step["run"], step_env)
        ran.append((step.get("name", step["run"]), result.returncode, result.stdout + result.stderr))
        failed = failed or result.returncode != 0
    return failed, ran, summary


def test_github_workflow_parses_and_is_complete():
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    assert workflow[True]["workflow_dispatch"]["inputs"]["backend"]  # `on:` reads as True in YAML 1.1
    (job,) = workflow["jobs"].values()
    lines = [step["run"] for step in job["steps"] if "run" in step]
    assert any(line.startswith("launch run ") and "--follow" in line for line in lines)
    for line in lines:
        assert "${{" not in line


def test_github_workflow_trains_and_succeeds(fresh_venv, package, tmp_path):
    failed, ran, summary = run_github_workflow(fresh_venv, package, tmp_path, "job_specs/quickstart.yaml")
    assert not failed, ran
    names = [name for name, _, _ in ran]
    assert names[:3] == ["Install launch", "Check the spec", "Train (logs stream here; the step's result is the "
                                                              "run's result)"]
    train_output = ran[2][2]
    assert "epoch  20" in train_output and "final accuracy" in train_output, train_output  # the logs streamed
    assert "| state | SUCCEEDED (exit 0) |" in summary.read_text()


def test_github_workflow_check_step_refuses_what_the_backend_would(fresh_venv, package, tmp_path):
    """The check is `validate --backend`: a spec the chosen backend cannot run stops the pipeline
    before anything is submitted (here Lambda Cloud without an SSH key name)."""
    failed, ran, _ = run_github_workflow(fresh_venv, package, tmp_path, "job_specs/quickstart.yaml",
                                         backend="lambda_cloud")
    assert failed
    check = next(r for r in ran if r[0] == "Check the spec")
    assert check[1] == 2 and "backends.lambda_cloud.ssh_key_name" in check[2], check
    assert not any(r[0].startswith("Train") for r in ran)


def test_github_workflow_fails_when_the_run_fails(fresh_venv, package, tmp_path):
    failed, ran, summary = run_github_workflow(fresh_venv, package, tmp_path, str(_failing_spec(tmp_path)))
    assert failed
    train = next(r for r in ran if r[0].startswith("Train"))
    assert train[1] == 1 and "::error title=launch%3A broken-" in train[2]
    assert ran[-1][0] == "Show the job history" and ran[-1][1] == 0  # `if: always()` still runs
    assert "FAILED" in ran[-1][2]
    assert "| state | FAILED (exit 5) |" in summary.read_text()


def test_gitlab_pipeline_trains_and_fails_with_the_run(fresh_venv, package, tmp_path):
    pipeline = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = pipeline["train"]
    for spec, expected in (("job_specs/quickstart.yaml", 0), (str(_failing_spec(tmp_path)), 1)):
        env = _base_env(fresh_venv, tmp_path, GITLAB_CI="true", CI_PIPELINE_ID="88", CI_JOB_ID=str(100 + expected))
        env.update({k: str(v) for k, v in pipeline["variables"].items()})
        env.update(LAUNCH_SPEC=spec, LAUNCH_PACKAGE=str(package))
        codes = []
        for line in job["script"]:
            result = _run_line(line, env)
            codes.append(result.returncode)
            if result.returncode:
                break
        assert codes[-1] == expected, codes
        for line in job["after_script"]:
            assert _run_line(line, env).returncode == 0
