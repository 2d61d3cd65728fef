"""Azure ML render: golden ARM bodies (checked against the SDK's REST models), the workspace
taken from spec / config / config.json, the problems found before anything is sent, the
state table, and a dry run that never imports azure-ai-ml.

Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and review the diff.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from fakes.azureml_fake import check_model
from helpers import check_golden

from backends.azureml import render as rendering
from backends.azureml.backend import STATES, AzureMLBackend
from launcher.backend import JobState, map_state
from launcher.bundle import Bundle, Piece
from launcher.errors import BackendError, SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "azureml"
JOB_ID = "golden-20260101-000000-abcdef"
WORKSPACE = {"subscription_id": "11111111-2222-3333-4444-555555555555", "resource_group": "rg-ml",
             "workspace_name": "ws-team"}
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
BOOTSTRAP_WORD = rendering._shell_text((Path(__file__).parent.parent / "launcher" / "bootstrap.sh").read_text())

CASES = {
    "t4_single": ("name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: T4:1\n", None),
    "h100x8_2nodes_torchrun": (
        "name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: H100:8\n  nodes: 2\n"
        "distributed: torchrun\nmax_runtime: 24h\n", None),
    "spot": ("name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: A100-80GB:8\n"
             "spot: true\n", None),
    "every_optional_field": (
        "name: golden\nimage: img:1\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: H100:8\n  nodes: 4\n  disk_gb: 500\n"
        "distributed: torchrun\nmax_runtime: 90061\ncheckpoint_dir: /ckpt\n"
        "backends:\n  azureml:\n    compute: gpu-cluster\n    job_tier: Premium\n    shm_size: 64g\n", "CI run #42"),
}


def render(text: str, key: str | None = None, settings: dict | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    merged = {**WORKSPACE, **(settings or {}), **spec.backends.get("azureml", {})}
    secrets = {name: "****" for name in spec.secrets}
    return AzureMLBackend(merged).render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_body_matches_the_sdk_models(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray config.json
    request = render(*CASES[case])
    assert check_model(request.payload, _job_base()) == []
    repo = Path(__file__).resolve().parent.parent
    # bootstrap.sh rides in the command (render.node_command); its own tests own its text, the golden its place
    payload = json.loads(json.dumps(request.payload).replace(json.dumps(BOOTSTRAP_WORD)[1:-1], "<bootstrap.sh>"))
    shown = {"operation": request.operation, "payload": payload,
             "uploads": [{"destination": u.destination, "content": u.content} if u.source is None else
                         {"destination": u.destination,
                          "source": str(u.source.relative_to(repo) if u.source.is_relative_to(repo) else u.source)}
                         for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def _job_base():
    from azure.ai.ml._restclient.arm_ml_service.models import JobBase

    return JobBase


def test_torchrun_two_nodes_runs_one_process_per_node_with_azure_topology(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    props = render(*CASES["h100x8_2nodes_torchrun"]).payload["properties"]
    assert props["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 1}
    assert props["resources"]["instanceCount"] == 2
    assert props["resources"]["instanceType"] == "Standard_ND96isr_H100_v5"
    env = props["environmentVariables"]
    assert env["LAUNCH_GPUS_PER_NODE"] == "8" and env["LAUNCH_DISTRIBUTED"] == "torchrun"
    assert env["LAUNCH_NUM_NODES"] == "2" and env["LAUNCH_RUN_FILE"] == ".launch-job/run.sh"
    assert 'LAUNCH_NODE_RANK="${NODE_RANK:-0}"' in props["command"]
    assert props["command"].endswith(" exec sh .launch-job/bootstrap.sh")
    assert props["limits"] == {"timeout": "P1D", "jobLimitsType": "Command"}
    assert props["experimentName"] == "golden" and props["tags"] == {"launch_job_id": JOB_ID}


def test_spot_asks_for_the_spot_tier_and_a_named_cluster_drops_the_vm_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    props = render(*CASES["spot"]).payload["properties"]
    assert props["queueSettings"] == {"jobTier": "Spot"}
    assert props["resources"]["instanceType"] == "Standard_ND96amsr_A100_v4" and "computeId" not in props
    props = render(*CASES["every_optional_field"]).payload["properties"]
    assert props["computeId"].endswith("/workspaces/ws-team/computes/gpu-cluster")
    assert "instanceType" not in props["resources"] and props["resources"]["shmSize"] == "64g"
    assert props["queueSettings"] == {"jobTier": "Premium"}
    assert props["tags"]["launch_idempotency_key"] == "CI run #42"
    assert props["environmentVariables"]["WANDB_API_KEY"] == "****"
    assert props["environmentVariables"]["LAUNCH_BUNDLE"] == "d" * 64 + ".tar.gz"


def test_request_names_the_arm_put_and_the_uploads():
    request = render(*CASES["every_optional_field"])
    assert request.operation == ("PUT /subscriptions/11111111-2222-3333-4444-555555555555/resourceGroups/rg-ml/"
                                 f"providers/Microsoft.MachineLearningServices/workspaces/ws-team/jobs/{JOB_ID}")
    # the code asset is the bundle alone; the job's own files are written by its command
    assert [u.destination for u in request.uploads] == [f"code/{'d' * 64}.tar.gz"]
    command = request.payload["properties"]["command"]
    assert request.payload["properties"]["codeId"] == rendering.CODE_ID
    assert command.startswith("mkdir -p .launch-job && printf '%s' ")
    for name, text in (("bootstrap.sh", BOOTSTRAP_WORD), ("run.sh", "'python train.py'"),
                       ("setup.sh", "'pip install -r requirements.txt'")):
        assert f" && printf '%s' {text} > .launch-job/{name} && " in command


def overlay_render(tmp_path: Path, overlay_bytes: bytes, run: str = "python train.py"):
    (tmp_path / "o.tar.gz").write_bytes(overlay_bytes)
    overlay = Piece(tmp_path / "o.tar.gz", "e" * 64, len(overlay_bytes))
    spec = parse_spec(CASES["every_optional_field"][0].replace("run: python train.py", f"run: {json.dumps(run)}"),
                      "spec.yaml", base_dir=Path(__file__).parent)
    return AzureMLBackend(WORKSPACE).render(spec, JOB_ID, replace(BUNDLE, overlay=overlay), {})


def test_a_small_overlay_rides_in_the_command_and_the_asset_stays_the_base(tmp_path, monkeypatch):
    """An edit's overlay is written by the command (base64), so the code asset is the base alone, the same
    asset as before the edit; the overlay's bytes are exactly the packed ones."""
    monkeypatch.chdir(tmp_path)
    overlay_bytes = bytes(range(256)) * 4  # every byte value: the encoding must carry binary
    props = overlay_render(tmp_path, overlay_bytes).payload["properties"]
    assert props["environmentVariables"]["LAUNCH_BUNDLE_OVERLAY"] == f".launch-job/{'e' * 64}.tar.gz"
    step = rendering.overlay_step(f".launch-job/{'e' * 64}.tar.gz", base64.b64encode(overlay_bytes).decode())
    assert f" && {step} && " in props["command"] and "${{" not in step
    (tmp_path / ".launch-job").mkdir()
    subprocess.run(["sh", "-c", step], cwd=tmp_path, check=True)
    assert (tmp_path / ".launch-job" / f"{'e' * 64}.tar.gz").read_bytes() == overlay_bytes
    # an image without base64 is told what is missing, before bootstrap.sh
    no_tools = subprocess.run(["/bin/sh", "-c", step], cwd=tmp_path, env={"PATH": str(tmp_path / "empty")},
                              capture_output=True, text=True)
    assert no_tools.returncode == 127 and "this image has no base64 command" in no_tools.stderr


def test_the_asset_keeps_the_overlay_when_the_command_would_grow_too_long(tmp_path, monkeypatch):
    """The command stays within COMMAND_BUDGET (under Linux's 128 KiB for one argument): an overlay that would
    pass it, here beside a long run:, joins the base in the code asset instead."""
    monkeypatch.chdir(tmp_path)
    fits = overlay_render(tmp_path, os.urandom(30_000))
    assert len(fits.uploads) == 1 and len(fits.payload["properties"]["command"].encode()) <= rendering.COMMAND_BUDGET
    large = overlay_render(tmp_path, os.urandom(30_000), run="echo " + "x" * 50_000)
    props = large.payload["properties"]
    assert [u.destination for u in large.uploads] == [f"code/{'d' * 64}.tar.gz", f"code/{'e' * 64}.tar.gz"]
    assert props["environmentVariables"]["LAUNCH_BUNDLE_OVERLAY"] == f"{'e' * 64}.tar.gz"
    assert "base64 -d" not in props["command"]


def test_a_dry_run_shows_a_placeholder_that_a_real_submit_refuses(tmp_path, monkeypatch):
    """A dry run packs without writing the overlay: its command names the overlay instead. Should such a command
    ever reach submit, it is refused before anything is sent, never run with a placeholder."""
    monkeypatch.chdir(tmp_path)
    request = overlay_render(tmp_path, b"overlay")
    (tmp_path / "o.tar.gz").unlink()
    overlay = Piece(tmp_path / "o.tar.gz", "e" * 64, 7)
    spec = parse_spec(CASES["every_optional_field"][0], "spec.yaml", base_dir=Path(__file__).parent)
    dry = AzureMLBackend(WORKSPACE).render(spec, JOB_ID, replace(BUNDLE, overlay=overlay), {})
    command = dry.payload["properties"]["command"]
    assert f"'<the overlay {'e' * 64}.tar.gz, base64: written at submit>' | base64 -d" in command
    assert rendering.holds_overlay_placeholder(command)
    assert not rendering.holds_overlay_placeholder(request.payload["properties"]["command"])
    with pytest.raises(BackendError, match="placeholder"):
        AzureMLBackend(WORKSPACE).submit(dry)
    # a job file's text cannot forge it: its quotes are escaped
    forged = overlay_render(tmp_path, b"overlay", run="echo \"base64: written at submit>' | base64 -d\"")
    assert not rendering.holds_overlay_placeholder(forged.payload["properties"]["command"])


def test_a_job_without_code_has_no_code_asset_and_uploads_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    request = render(*CASES["t4_single"])
    assert request.uploads == () and "codeId" not in request.payload["properties"]
    assert "LAUNCH_BUNDLE" not in request.payload["properties"]["environmentVariables"]


def test_file_text_never_forms_an_azure_ml_binding_in_the_command(tmp_path, monkeypatch):
    """Azure ML resolves `${{inputs.x}}` in a command before any shell sees it: text of the job's files
    that holds one must reach the node as text (tests/test_azureml_node.py runs it)."""
    monkeypatch.chdir(tmp_path)
    request = render("name: golden\nimage: img:1\nrun: echo '${{inputs.data}}' \"${{x}}\"\n")
    command = request.payload["properties"]["command"]
    assert "${{" not in command and "$''{{inputs.data}}" in command


@pytest.mark.parametrize("seconds", [1, 59, 60, 3600, 3661, 86400, 90061, 7 * 86400 + 5])
def test_iso_duration_is_what_the_sdk_writes(seconds):
    import isodate

    assert rendering.iso_duration(seconds) == isodate.duration_isoformat(timedelta(seconds=seconds))


def test_an_accelerator_azure_has_no_size_for_is_a_spec_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as err:
        render("name: x\nimage: img:1\nrun: r\nresources:\n  accelerators: L4:3\n")
    assert "resources.accelerators" in str(err.value) and "azureml" in str(err.value)
    # an explicit VM size is the way out
    props = render("name: x\nimage: img:1\nrun: r\nresources:\n  accelerators: L4:3\n",
                   settings={"instance_type": "Standard_NC24ads_L4_v3"}).payload["properties"]
    assert props["resources"]["instanceType"] == "Standard_NC24ads_L4_v3"


def test_missing_workspace_names_each_field_and_how_to_set_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = parse_spec("name: x\nrun: r\noutputs: s3://b/\n", "spec.yaml", base_dir=tmp_path)
    with pytest.raises(SpecError) as err:
        AzureMLBackend({}).render(spec, JOB_ID, None, {})
    text = str(err.value)
    for key in ("subscription_id", "resource_group", "workspace_name"):
        assert f"backends.azureml.{key}" in text
    assert "config.json" in text and "image" in text
    assert "outputs" not in text  # a foreign outputs: is ignored with a note, not refused (portable specs)


def test_workspace_from_an_azureml_config_json_with_the_spec_winning(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(json.dumps({
        "subscription_id": "99999999-2222-3333-4444-555555555555", "resource_group": "rg-file",
        "workspace_name": "ws-file"}))
    spec = parse_spec("name: x\nimage: i\nrun: r\n", "spec.yaml", base_dir=tmp_path)
    request = AzureMLBackend({"workspace_name": "ws-spec"}).render(spec, JOB_ID, None, {})
    assert "/resourceGroups/rg-file/" in request.operation and "/workspaces/ws-spec/jobs/" in request.operation
    (tmp_path / "config.json").write_text('{"unrelated": true}')  # not an Azure ML config: ignored
    assert rendering.config_file_values(tmp_path)["workspace_name"] == "ws-file"


@pytest.mark.parametrize("raw,state", [
    ("NotStarted", JobState.PENDING), ("Queued", JobState.PENDING), ("Starting", JobState.STARTING),
    ("Provisioning", JobState.STARTING), ("Preparing", JobState.STARTING), ("Running", JobState.RUNNING),
    ("Finalizing", JobState.RUNNING), ("CancelRequested", JobState.CANCELLING), ("Completed", JobState.SUCCEEDED),
    ("Failed", JobState.FAILED), ("Canceled", JobState.CANCELLED), ("NotResponding", JobState.UNKNOWN),
    ("Paused", JobState.PENDING), ("Unknown", JobState.UNKNOWN), ("SomethingNew", JobState.UNKNOWN)])
def test_state_table(raw, state):
    assert map_state(STATES, raw) is state


def test_state_table_covers_every_azure_job_status():
    from azure.ai.ml._restclient.arm_ml_service.models import JobStatus

    assert {s.value for s in JobStatus} <= set(STATES)


def test_dry_run_never_imports_the_sdk(cli, write_spec):
    spec = write_spec("name: dry\nimage: img:1\nrun: echo hi\nsecrets: [TOKEN_X]\nresources:\n  accelerators: T4\n"
                      "backends:\n  azureml:\n    subscription_id: 11111111-2222-3333-4444-555555555555\n"
                      "    resource_group: rg\n    workspace_name: ws-one\n")
    code = ("import runpy, sys\nsys.argv = ['launch', 'run', sys.argv[1], '--backend', 'azureml', '--dry-run']\n"
            "try:\n    runpy.run_module('launcher', run_name='__main__')\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('azure', 'requests')))\n"
            "assert not bad, bad\n")
    env = {**os.environ, "TOKEN_X": "s3cret-value", "LAUNCH_HOME": str(spec.parent / "home")}
    result = subprocess.run([sys.executable, "-c", code, str(spec)], capture_output=True, text=True, env=env,
                            cwd=spec.parent, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["payload"]["properties"]["environmentVariables"]["TOKEN_X"] == "****"
    assert "s3cret-value" not in result.stdout + result.stderr


def test_readiness_names_what_is_missing_and_what_is_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = AzureMLBackend.readiness({"workspace_name": "ws-team"})
    assert missing.sdk_installed and not missing.configured
    assert "subscription_id" in missing.detail and "backends.azureml.resource_group" in missing.hint
    ready = AzureMLBackend.readiness({**WORKSPACE, "compute": "gpu-cluster"})
    assert ready.configured and "ws-team" in ready.detail and "gpu-cluster" in ready.detail


def test_a_cpu_job_runs_on_the_default_serverless_size(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resources = render("name: x\nimage: i\nrun: r\n").payload["properties"]["resources"]
    assert resources == {"instanceCount": 1, "instanceType": rendering.DEFAULT_CPU_SIZE, "properties": {}}


def test_cpu_and_memory_minimums_pick_the_size_launch_plan_prices(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = "name: x\nimage: i\nrun: r\nresources:\n  accelerators: T4\n  cpus: 12+\n  memory_gb: 100+\n"
    assert render(text).payload["properties"]["resources"]["instanceType"] == "Standard_NC16as_T4_v3"
    with pytest.raises(SpecError) as err:
        render(text.replace("12+", "999+"))
    assert "resources:" in str(err.value) and "999" in str(err.value)
