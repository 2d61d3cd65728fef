"""What an Azure ML node does with the rendered job: starting in the code directory the SDK
uploads, the job's command maps Azure's PyTorch-distribution variables (NODE_RANK, MASTER_ADDR,
MASTER_PORT) onto LAUNCH_* and runs the unchanged bootstrap.sh, which unpacks the bundle, runs
setup and the command (through torchrun with one worker per GPU when asked)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from backends.azureml.backend import AzureMLBackend, stage_code_dir
from launcher.bundle import pack
from launcher.spec import parse_spec

WORKSPACE = {"subscription_id": "11111111-2222-3333-4444-555555555555", "resource_group": "rg",
             "workspace_name": "ws-node"}
PRINT = ("echo rank=$LAUNCH_NODE_RANK nodes=$LAUNCH_NUM_NODES master=$LAUNCH_MASTER_ADDR:$LAUNCH_MASTER_PORT "
         "gpus=$LAUNCH_GPUS_PER_NODE out=$LAUNCH_OUTPUT_DIR; cat data.txt")


def node(tmp_path: Path, spec_text: str, azure_env: dict[str, str]) -> subprocess.CompletedProcess:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "data.txt").write_text("from the bundle\n")
    spec = parse_spec(spec_text, "spec.yaml", base_dir=tmp_path)
    bundle = pack(tmp_path / "src", tmp_path / "bundles")[0]
    request = AzureMLBackend(WORKSPACE).render(spec, "node-20260101-000000-abcdef", bundle, {})
    code = tmp_path / "code"
    stage_code_dir(request, code)
    props = request.payload["properties"]
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "torchrun").write_text('#!/bin/sh\necho "torchrun $*" | cut -d" " -f1-6\nshift 6\nexec "$@"\n')
    (stub / "torchrun").chmod(0o755)
    env = {"PATH": f"{stub}:{os.environ['PATH']}", **props["environmentVariables"], **azure_env,
           "LAUNCH_WORKDIR": str(tmp_path / "work")}
    return subprocess.run(["bash", "-c", props["command"]], cwd=code, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("rank", ["0", "1"])
def test_torchrun_node_gets_its_rank_and_master_from_azure(tmp_path, rank):
    result = node(tmp_path, "name: n\nimage: i\ncode: ./src\nrun: '" + PRINT + "'\nresources:\n"
                  "  accelerators: H100:8\n  nodes: 2\ndistributed: torchrun\n",
                  {"NODE_RANK": rank, "MASTER_ADDR": "10.0.0.4", "MASTER_PORT": "6105", "WORLD_SIZE": "2"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"torchrun --nnodes=2 --nproc_per_node=8 --node_rank={rank} --master_addr=10.0.0.4 " \
                       "--master_port=6105"
    assert lines[1] == f"rank={rank} nodes=2 master=10.0.0.4:6105 gpus=8 out={tmp_path}/code/outputs"
    assert lines[2] == "from the bundle"


def test_single_node_without_distribution_falls_back_to_rank_0(tmp_path):
    result = node(tmp_path, "name: n\nimage: i\ncode: ./src\nsetup: echo setting up\nrun: '" + PRINT + "'\n", {})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["setting up", "rank=0 nodes=1 master=127.0.0.1:29500 gpus=0 "
                                          f"out={tmp_path}/code/outputs", "from the bundle"]


def test_the_job_exit_code_is_the_node_exit_code(tmp_path):
    result = node(tmp_path, "name: n\nimage: i\ncode: ./src\nrun: exit 7\n", {})
    assert result.returncode == 7


def test_hostile_text_in_run_and_setup_reaches_the_node_as_text(tmp_path):
    """The job's files travel inside the command (render.node_command): quotes, substitutions, newlines
    and Azure ML's own `${{...}}` binding syntax in them must arrive byte for byte and run nothing."""
    marker = tmp_path / "pwned"
    values = [f"$(touch {marker})", f"`touch {marker}`", f"' ; touch {marker} ; '", "${{inputs.data}}",
              "$''{{x}}", "a\\b", "%s%n", "\u202e\u00e9\u4e2d\U0001f600", "-n"]
    run = "; ".join(f"printf '<%s>\\n' {shlex.quote(v)}" for v in values)
    setup = f"printf '%s\\n' '$(touch {marker})' '${{{{outputs.model}}}}'"
    result = node(tmp_path, f"name: n\nimage: i\ncode: ./src\nsetup: {json.dumps(setup, ensure_ascii=False)}\n"
                  f"run: {json.dumps(run, ensure_ascii=False)}\n",
                  {})
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), "text of the job's files was executed by a shell"
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"$(touch {marker})", "${{outputs.model}}"]
    assert lines[2:] == [f"<{v}>" for v in values]
