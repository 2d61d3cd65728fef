"""Installs with fewer extras: the README's command 1 (`pip install -e .`) brings no provider SDK.

Every command must still work (backends, plan, list --sync, validate, dry runs, local runs), and
a real call to a cloud backend must exit 2 with the pip line that installs its SDK for this
installation, never 70 with a ModuleNotFoundError.

The CLI runs in a subprocess with the provider SDKs hidden: their sys.modules entries set to None,
so `import boto3` fails as on a machine without it and find_spec answers None (or raises, for
`google.cloud.x` without `google`, as it does there). In ci/test's second leg (a venv with
`pip install -e .` only, running `-m minimal_install`) they are absent for real.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.registry import install_line_for

pytestmark = pytest.mark.minimal_install

REPO = Path(__file__).resolve().parent.parent
# the provider SDKs' top-level modules, one backend's per line
HIDDEN = (
    "boto3", "botocore", "s3transfer", "google", "azure", "requests",
    "huggingface_hub",
    "alibabacloud_pai_dlc20201203", "alibabacloud_credentials", "alibabacloud_tea_openapi", "alibabacloud_tea_util",
    "darabonba", "Tea",
    "kubernetes",
    "tencentcloud",
    "baidubce",
    "openai",
    "starlette", "uvicorn", "jinja2",  # `launch ui`'s extra, not a backend's
)
# backend -> what the user is told is missing
CLOUD = {
    "sagemaker": "boto3",
    "vertex": "google-cloud-aiplatform",
    "azureml": "azure-ai-ml",
    "lambda_cloud": "requests",
    "hf_jobs": "huggingface_hub",
    "pai_dlc": "alibabacloud-pai-dlc20201203",
    "kubernetes": "kubernetes",
    "coreweave": "kubernetes",
    "tione": "tencentcloud-sdk-python-tione",
    "aihc": "bce-python-sdk",
    "azure_openai": "openai",
    "openai": "openai",
}
# What google-cloud-*'s .pth files load at start-up (`google`, `google.cloud`) is unloaded first, so
# that, as on a machine without them, find_spec("google.cloud.x") raises for want of `google`.
BOOT = f"""import sys
for name in [m for m in sys.modules if m.split(".")[0] in {HIDDEN!r}]:
    del sys.modules[name]
sys.modules.update(dict.fromkeys({HIDDEN!r}))
sys.argv = ["launch", *sys.argv[1:]]
from launcher.cli import run_main
run_main()
"""
FINETUNE = "finetune"  # a hosted fine-tuning spec instead of a container one
SPEC = "name: minimal\nimage: pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime\nrun: echo minimal-ok\n"
SETTINGS = {
    "local": ("cpu", {}),
    "ssh": ("cpu", {"hosts": ["nobody@127.0.0.1:9"]}),  # the discard port: nothing listens
    "sagemaker": ("A10G:1", {"region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/Train",
                             "bucket": "minimal-bucket"}),
    "vertex": ("L4:1", {"project": "my-project", "region": "us-central1", "staging_bucket": "gs://my-bucket"}),
    "azureml": ("T4:1", {"subscription_id": "00000000-0000-0000-0000-000000000000", "resource_group": "rg",
                         "workspace_name": "ws-minimal"}),
    "lambda_cloud": ("H100:1", {"ssh_key_name": "my-key"}),
    "hf_jobs": ("A10G:1", {"namespace": "alice"}),
    "pai_dlc": ("A10:1", {"region": "cn-hangzhou", "workspace_id": "ws-minimal", "bucket": "minimal-bucket"}),
    "slurm": ("cpu", {"login": "nobody@127.0.0.1:9"}),  # sbatch through a login node that is not there
    "kubernetes": ("H100:1", {"namespace": "ml"}),
    "coreweave": ("H100:8", {"namespace": "ml"}),
    "tione": ("T4:1", {"region": "ap-guangzhou", "cos_bucket": "minimal-1250000000"}),
    "aihc": ("A100-80GB:1", {"resource_pool_id": "cce-minimal", "queue": "default", "bos_bucket": "minimal-bucket"}),
    "azure_openai": (FINETUNE, {"endpoint": "https://minimal.openai.azure.com"}),
    "openai": (FINETUNE, {}),
}


def _spec(tmp_path: Path, backend: str) -> Path:
    accelerators, settings = SETTINGS[backend]
    path = tmp_path / f"{backend}.yaml"
    section = json.dumps({backend: settings})  # YAML reads JSON
    if accelerators == FINETUNE:
        (tmp_path / "train.jsonl").write_text('{"messages": [{"role": "user", "content": "hi"}, '
                                              '{"role": "assistant", "content": "hello"}]}\n')
        path.write_text(f"name: minimal\nfinetune:\n  base_model: gpt-4o-mini-2024-07-18\n"
                        f"  training_file: train.jsonl\nbackends: {section}\n")
        return path
    path.write_text(f"{SPEC}resources:\n  accelerators: {accelerators}\nbackends: {section}\n")
    return path


def _launch(home: Path, *args: str, env: dict[str, str] | None = None,
            cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_ACTIONS", "GITLAB_CI")}
    full_env.update({"LAUNCH_HOME": str(home), **(env or {})})
    return subprocess.run([sys.executable, "-c", BOOT, *args], capture_output=True, text=True, env=full_env,
                          cwd=cwd, timeout=60)


def _expected_line(extra: str, cwd: Path = REPO) -> str:
    """The line for how launch-jobs is installed here, read with importlib.metadata (not launch's
    reader): a checkout by its path, "." when it is the working directory; else the index."""
    for dist in importlib.metadata.distributions(name="launch-jobs"):
        text = dist.read_text("direct_url.json")
        if not text:
            continue  # an .egg-info left in the checkout by the editable build: not an install record
        record = json.loads(text)
        assert record.get("dir_info", {}).get("editable"), f"these tests expect an editable install: {record}"
        path = Path(record["url"].removeprefix("file://"))
        return f"pip install -e {shlex.quote(('.' if path == cwd else str(path)) + f'[{extra}]')}"
    return f"pip install 'launch-jobs[{extra}]'"


def _no_internal_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 70 and "internal error" not in result.stderr, result.stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "launch-home"


def test_backends_shows_every_missing_sdk_with_its_install_line(home: Path) -> None:
    result = _launch(home, "backends", "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(CLOUD) | {"local", "ssh"} <= set(rows)
    for name, package in CLOUD.items():
        assert rows[name]["sdk_installed"] is False, rows[name]
        assert package in rows[name]["detail"]
        assert rows[name]["hint"] == _expected_line(name)
    assert rows["local"]["sdk_installed"] is True and rows["local"]["configured"] is True

    text = _launch(home, "backends")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split()[:3] == ["BACKEND", "SDK", "CONFIGURED"]
    for name in CLOUD:
        row = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
        assert lines[row].split()[1] == "missing"
        assert lines[row + 1].strip() == f"install: {_expected_line(name)}"
    assert next(line for line in lines if line.startswith("local ")).split()[1] == "yes"


def test_plan_and_cheapest_answer_without_sdks(home: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, "vertex")
    result = _launch(home, "plan", str(spec), "-o", "json")
    assert result.returncode == 0, result.stderr
    rows = {row["backend"]: row for row in json.loads(result.stdout)}
    for name, package in CLOUD.items():
        assert rows[name]["configured"] is False
        assert f"{package} is not installed" in rows[name]["config_detail"]
    cheapest = _launch(home, "run", str(spec), "--backend", "cheapest", "--dry-run")
    _no_internal_error(cheapest)
    assert cheapest.returncode in (0, 2), cheapest.stderr


def test_list_sync_skips_backends_without_their_sdk(home: Path, tmp_path: Path) -> None:
    """Configured in config.toml but without the SDK: a plain sync leaves them out; naming one
    says how to install it."""
    home.mkdir(parents=True)
    toml = "".join(f"[backends.{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in
                                                   SETTINGS[name][1].items()) for name in CLOUD)
    (home / "config.toml").write_text(toml)
    env = {"LAMBDA_API_KEY": "secret_minimal_0123456789abcdef", "AWS_ACCESS_KEY_ID": "AKIAMINIMAL",
           "AWS_SECRET_ACCESS_KEY": "minimal"}
    result = _launch(home, "list", "--sync", env=env)
    assert result.returncode == 0, result.stderr
    synced = result.stderr.split("synced ", 1)[1].split(":", 1)[0].split(", ")
    assert "local" in synced and not set(CLOUD) & set(synced), result.stderr
    for name in CLOUD:
        named = _launch(home, "list", "--sync", "--backend", name, env=env)
        assert named.returncode == 2, named.stderr
        assert f"hint: {_expected_line(name)}" in named.stderr


@pytest.mark.parametrize("backend", sorted(SETTINGS))
def test_validate_and_dry_run_need_no_sdk(home: Path, tmp_path: Path, backend: str) -> None:
    spec = _spec(tmp_path, backend)
    checked = _launch(home, "validate", str(spec), "--backend", backend)
    assert checked.returncode == 0, checked.stderr
    assert "ok" in checked.stdout
    dry = _launch(home, "run", str(spec), "--backend", backend, "--dry-run", "-o", "json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["backend"] == backend
    shown = _launch(home, "run", str(spec), "--backend", backend, "--dry-run")  # text: JSON, or the provider's format
    assert shown.returncode == 0 and shown.stdout.strip(), shown.stderr


@pytest.mark.parametrize("backend", sorted(CLOUD))
def test_run_without_the_sdk_exits_2_with_the_install_line(home: Path, tmp_path: Path, backend: str) -> None:
    env = {"LAMBDA_API_KEY": "secret_minimal_0123456789abcdef"}
    result = _launch(home, "run", str(_spec(tmp_path, backend)), "--backend", backend, env=env)
    assert result.returncode == 2, result.stderr
    assert f"needs {CLOUD[backend]}, which is not installed" in result.stderr
    assert result.stderr.rstrip().endswith(f"hint: {_expected_line(backend)}")
    assert "could not terminate" not in result.stderr  # nothing was launched, nothing to give back
    listed = _launch(home, "list", "-o", "json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []  # nothing recorded


@pytest.mark.parametrize(("backend", "data"), [
    ("sagemaker", {"region": "us-east-1", "name": "minimal-1", "nodes": 1,
                   "arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/minimal-1"}),
    ("vertex", {"name": "projects/p/locations/us-central1/customJobs/1", "project": "p", "region": "us-central1",
                "id": "1", "nodes": 1}),
    ("azureml", {"name": "minimal-1", "subscription_id": "00000000-1111-2222-3333-444444444444",
                 "resource_group": "rg", "workspace_name": "ws", "nodes": 1, "url": None}),
    ("lambda_cloud", {"instances": [{"id": "i-1", "rank": 0, "name": "minimal-1-0", "region": "us-east-1",
                                     "type": "gpu_1x_a10", "ip": "127.0.0.1"}], "ssh": {}, "keep_instances": False,
                      "idempotency_key": None, "submitted_at": 1.0}),
    ("hf_jobs", {"namespace": "alice", "ids": ["0123456789abcdef01234567"]}),
    ("pai_dlc", {"region": "cn-hangzhou", "dlc_job_id": "dlc1a2b3c4d5e6f7", "nodes": 1}),
    ("kubernetes", {"namespace": "ml", "name": "minimal-1", "nodes": 1, "context": None, "idempotency_key": None}),
    ("tione", {"region": "ap-guangzhou", "task_id": "train-12345678901234567", "nodes": 1}),
    ("aihc", {"region": "bj", "resource_pool_id": "cce-minimal", "queue": "default", "aihc_job_id": "job-0123456789ab",
              "nodes": 1}),
    ("azure_openai", {"ft_job_id": "ftjob-0123456789abcdef"}),
    ("sagemaker", {}),  # a record from another version: the SDK is asked for before the record is read
    ("lambda_cloud", {}),
])
def test_commands_on_a_job_whose_sdk_was_removed_say_how_to_install_it(home: Path, backend: str,
                                                                       data: dict) -> None:
    from launcher.backend import Handle, JobState
    from launcher.store import JobRecord, Store

    job_id = f"minimal-20261201-000000-{backend[:6]}"
    now = time.time()
    Store.open(home).reserve(JobRecord(id=job_id, name="minimal", backend=backend, handle=Handle(backend, job_id, data),
                                       spec={}, state=JobState.RUNNING, raw_state="", message="", created_at=now,
                                       updated_at=now))
    for command in (("status",), ("logs",), ("logs", "--tail", "3"), ("wait", "--timeout", "1"), ("cancel",)):
        result = _launch(home, *command, job_id)
        assert result.returncode == 2, (command, result.stderr)
        assert f"hint: {_expected_line(backend)}" in result.stderr, (command, result.stderr)


def test_ui_without_its_extra_says_how_to_install_it(home: Path) -> None:
    """`launch ui` on the plain install: the pip line for the ui extra (exit 2), before anything listens."""
    result = _launch(home, "ui", "--port", "0")
    assert result.returncode == 2, result.stderr
    assert result.stderr.rstrip().endswith(f"hint: {_expected_line('ui')}"), result.stderr


def test_install_line_from_the_checkout_itself_is_dot(home: Path, tmp_path: Path) -> None:
    """Run from the directory launch was installed from (editable), the line is `pip install -e '.[x]'`."""
    expected = _expected_line("sagemaker", cwd=REPO)
    result = _launch(home, "run", str(_spec(tmp_path, "sagemaker")), "--backend", "sagemaker", cwd=REPO)
    assert result.returncode == 2 and f"hint: {expected}" in result.stderr, result.stderr
    elsewhere = _launch(home, "run", str(_spec(tmp_path, "sagemaker")), "--backend", "sagemaker", cwd=tmp_path)
    assert f"hint: {_expected_line('sagemaker', cwd=tmp_path)}" in elsewhere.stderr, elsewhere.stderr


def test_local_and_ssh_run_without_any_sdk(home: Path, tmp_path: Path) -> None:
    ran = _launch(home, "run", str(_spec(tmp_path, "local")), "--backend", "local", "--follow")
    assert ran.returncode == 0, ran.stderr
    assert "minimal-ok" in ran.stdout
    # ssh needs no SDK: an unreachable host is exit 4 (could not reach), not a crash
    unreachable = _launch(home, "run", str(_spec(tmp_path, "ssh")), "--backend", "ssh")
    _no_internal_error(unreachable)
    assert unreachable.returncode == 4, unreachable.stderr
    # nor does slurm: sbatch and friends are its API
    login = _launch(home, "run", str(_spec(tmp_path, "slurm")), "--backend", "slurm")
    _no_internal_error(login)
    assert login.returncode == 4, login.stderr


@pytest.mark.parametrize(("direct_url", "cwd", "line"), [
    (None, Path("/home/u"), "pip install 'launch-jobs[sagemaker]'"),  # from an index: no direct_url.json
    ({"url": "file:///src/launch", "dir_info": {"editable": True}}, Path("/src/launch"),
     "pip install -e '.[sagemaker]'"),
    ({"url": "file:///src/launch", "dir_info": {"editable": True}}, Path("/home/u"),
     "pip install -e '/src/launch[sagemaker]'"),
    ({"url": "file:///src/my%20launch", "dir_info": {}}, Path("/home/u"),
     "pip install '/src/my launch[sagemaker]'"),
    ({"url": "https://github.com/o/launch.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}}, Path("/"),
     "pip install 'launch-jobs[sagemaker] @ git+https://github.com/o/launch.git@abc123'"),
    ({"url": "file:///tmp/launch_jobs-0.1.0-py3-none-any.whl", "archive_info": {}}, Path("/"),
     "pip install 'launch-jobs[sagemaker] @ file:///tmp/launch_jobs-0.1.0-py3-none-any.whl'"),
])
def test_install_line_follows_how_launch_was_installed(direct_url: dict | None, cwd: Path, line: str) -> None:
    """PEP 610's direct_url.json shapes: editable / plain directory, VCS, archive; none for an index."""
    assert install_line_for(direct_url, "sagemaker", cwd) == line
