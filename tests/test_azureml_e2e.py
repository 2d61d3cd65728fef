"""The azureml backend end to end: the real CLI in a subprocess, the real azure-ai-ml MLClient,
over TLS to the local fake of ARM + run history (tests/fakes/azureml_fake.py). The CLI finds
the fake through `backends.azureml.endpoint` and authenticates with LAUNCH_AZURE_ACCESS_TOKEN;
REQUESTS_CA_BUNDLE trusts the fake's throwaway certificate."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from fakes.azureml_fake import AzureMLFake

SUBMITTED = re.compile(r"submitted (\S+) to azureml")


@pytest.fixture(scope="module")
def server():
    with AzureMLFake() as fake:
        yield fake


@pytest.fixture
def az(server, cli, write_spec, tmp_path, launch_home):
    server.reset()
    server.add_compute("gpu-cluster")
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        f'[backends.azureml]\nendpoint = "{server.url}"\nsubscription_id = "{server.subscription}"\n'
        f'resource_group = "{server.resource_group}"\n')
    env = {**server.client_env("cli-token"), "API_KEY": "very-secret-value"}

    class Helper:
        fake = server
        environment: ClassVar[dict[str, str]] = {**os.environ, "LAUNCH_HOME": str(launch_home), **env}

        @staticmethod
        def run(*args: str, check_rc: int | None = None, **kw):
            return cli(*args, env=env, check_rc=check_rc, cwd=tmp_path, **kw)

        @staticmethod
        def spec(nodes: int = 1, extra: str = "", workspace: str = "ws-test") -> str:
            code = tmp_path / "src"
            code.mkdir(exist_ok=True)
            (code / "train.py").write_text("print('hi')\n")
            return str(write_spec(
                f"name: az-job\nimage: mcr.microsoft.com/azureml/curated/acpt-pytorch-2.2-cuda12.1:1\ncode: ./src\n"
                f"run: python train.py\nsecrets: [API_KEY]\nresources:\n  accelerators: H100:8\n  nodes: {nodes}\n"
                f"{extra}backends:\n  azureml:\n    workspace_name: {workspace}\n"))

        @staticmethod
        def submit(spec: str, *extra: str) -> str:
            out = Helper.run("run", spec, "--backend", "azureml", *extra, check_rc=0).stdout
            return SUBMITTED.search(out).group(1)

    return Helper


def _status(az, job: str) -> dict:
    return json.loads(az.run("status", job, "-o", "json", check_rc=0).stdout)


def test_dry_run_sends_nothing_then_run_creates_that_job(az):
    spec = az.spec(nodes=2, extra="distributed: torchrun\n")
    dry = az.run("run", spec, "--backend", "azureml", "--dry-run", check_rc=0)
    shown = json.loads(dry.stdout)
    assert shown["operation"].startswith(f"PUT {az.fake.workspace_id()}/jobs/az-job-")
    assert shown["payload"]["properties"]["environmentVariables"]["API_KEY"] == "****"
    assert "very-secret-value" not in dry.stdout + dry.stderr
    assert az.fake.requests == []
    result = az.run("run", spec, "--backend", "azureml", check_rc=0)
    assert result.stderr == ""  # none of the SDK's own chatter (experimental classes, upload colour codes)
    job = SUBMITTED.search(result.stdout).group(1)
    assert list(az.fake.jobs) == [job]
    props = az.fake.job_puts[0]["properties"]
    assert props["distribution"]["distributionType"] == "PyTorch" and props["resources"]["instanceCount"] == 2
    assert props["tags"]["launch_job_id"] == job and props["experimentName"] == "az-job"
    listing = json.loads(az.run("list", "-o", "json", check_rc=0).stdout)
    assert [r["id"] for r in listing] == [job]
    assert "very-secret-value" not in json.dumps(listing)


def test_status_cancel_and_list_sync(az):
    job = az.submit(az.spec())
    record = _status(az, job)
    assert record["state"] == "PENDING" and "ml.azure.com/runs/" + job in record["url"]
    az.fake.set_status(job, "Running")
    cancelled = json.loads(az.run("cancel", job, "-o", "json", check_rc=0).stdout)
    assert az.fake.jobs[job]["properties"]["status"] == "CancelRequested" and cancelled["state"] == "CANCELLING"
    az.fake.set_status(job, "Canceled")
    assert _status(az, job)["state"] == "CANCELLED"
    # a lost local history is rebuilt from the jobs carrying our tag (the workspace then comes from config)
    with open(os.path.join(az.environment["LAUNCH_HOME"], "config.toml"), "a") as config:
        config.write(f'workspace_name = "{az.fake.workspace}"\n')
    for leftover in ("jobs.db", "jobs.db-wal", "jobs.db-shm"):
        path = os.path.join(az.environment["LAUNCH_HOME"], leftover)
        if os.path.exists(path):
            os.remove(path)
    synced = az.run("list", "--sync", "-b", "azureml", "-o", "json", check_rc=0)
    assert [r["id"] for r in json.loads(synced.stdout)] == [job]


def test_logs_follow_prints_each_line_once_until_the_job_ends(az):
    job = az.submit(az.spec(nodes=2, extra="distributed: torchrun\n"))
    az.fake.set_status(job, "Running")
    az.fake.add_log(job, "rank0 step 1\n", node=0)
    az.fake.add_log(job, "rank1 step 1\n", node=1)
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "logs", job, "-f"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=az.environment)

    def later() -> None:
        time.sleep(1.5)
        az.fake.add_log(job, "rank0 step 2\nrank0 done", node=0)
        time.sleep(1)
        az.fake.set_status(job, "Completed")

    threading.Thread(target=later, daemon=True).start()
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    for text in ("rank0 step 1", "rank1 step 1", "rank0 step 2", "rank0 done"):
        assert sum(text in line for line in lines) == 1, out
    only = az.run("logs", job, "--node", "1", check_rc=0).stdout
    assert "rank1 step 1" in only and "rank0" not in only


@pytest.mark.parametrize("final,code", [("Completed", 0), ("Failed", 1)])
def test_run_wait_exit_codes(az, final, code):
    proc = subprocess.Popen([sys.executable, "-m", "launcher", "run", az.spec(), "--backend", "azureml", "--wait"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=az.environment,
                            cwd=os.path.dirname(az.spec()))
    deadline = time.time() + 60
    while not az.fake.jobs and time.time() < deadline:
        time.sleep(0.1)
    (job,) = az.fake.jobs
    az.fake.set_status(job, final, error="User process exited with status code 7" if final == "Failed" else None)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == code, err
    if final == "Failed":
        assert "status code 7" in out + err


def test_a_missing_compute_is_a_clear_error_and_nothing_is_recorded(az):
    spec = az.spec(extra="")
    result = az.run("run", spec, "--backend", "azureml", "--set", "backends.azureml.compute=ghost-cluster")
    assert result.returncode == 1
    assert "no compute named 'ghost-cluster'" in result.stderr and "Traceback" not in result.stderr
    assert az.fake.jobs == {} and json.loads(az.run("list", "-o", "json", check_rc=0).stdout) == []


def test_a_missing_workspace_names_the_settings_to_set(az, launch_home):
    (launch_home / "config.toml").write_text(f'[backends.azureml]\nendpoint = "{az.fake.url}"\n')
    spec = Path(az.spec())
    spec.write_text(spec.read_text().replace("backends:\n  azureml:\n    workspace_name: ws-test\n", ""))
    result = az.run("run", str(spec), "--backend", "azureml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for key in ("subscription_id", "resource_group", "workspace_name"):
        assert f"backends.azureml.{key}" in result.stderr
    assert az.fake.requests == []


def test_rejected_credentials_exit_4_without_a_record(az):
    az.fake.fail_auth = True
    result = az.run("run", az.spec(), "--backend", "azureml")
    assert result.returncode == 4 and "az login" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(az.run("list", "-o", "json", check_rc=0).stdout) == []
