"""Shell injection: the hostile-string corpus (the ssh backend's, tests/test_ssh_backend.py, which runs it
over a real sshd) through the local backend end to end and through bootstrap.sh as each cloud's node
runs it. Values travel in env:, secrets:, --set, file names in the code dir, the idempotency key and
quoted text inside setup/run; a planted marker file proves no shell executed any of them, and every
value arrives byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from launcher import registry
from launcher.spec import load_spec

from .conftest import REPO, launch_env, run_launch

BOOTSTRAP = REPO / "launcher" / "bootstrap.sh"


def corpus(marker: Path) -> list[str]:
    return [
        f"$(touch {marker})", f"`touch {marker}`", f"; touch {marker}", f"' ; touch {marker} ; '",
        f"\" ; touch {marker} ; \"", f"\n touch {marker}", f"| touch {marker}", f"&& touch {marker}",
        f"$(touch {marker}) *", "*", "~root", "$HOME", "a\\b", "--flag=$(id)", f"> {marker}",
        "${IFS}touch${IFS}" + str(marker), "%s%n", "\t tab", f"$((1+1))$(touch {marker})", "-n", "-e \\n",
        f"\\$(touch {marker})", "'", '"', "\\", f"{{a,b}}$(touch {marker})", "\u202e\u00e9\u4e2d\U0001f600",
    ]


def _spec_text(values: list[str], marker: Path, backend_block: str = "", code: bool = False) -> str:
    env_lines = "".join(f"  V{i}: {json.dumps(value, ensure_ascii=False)}\n" for i, value in enumerate(values))
    checks = "; ".join(f'printf "<%s>\\n" "$V{i}"' for i in range(len(values)))
    checks += '; printf "<%s>\\n" "$HOSTILE_SECRET" "$SET_VALUE"'
    setup = f"printf '%s\\n' '$(touch {marker})' '`touch {marker}`'"
    lines = [f"name: hostile\nenv:\n{env_lines}", f"run: {json.dumps(checks)}\n", f"setup: {json.dumps(setup)}\n",
             "secrets: [HOSTILE_SECRET]\n"]
    if code:
        lines.append("code: ./src\n")
    return "".join(lines) + backend_block


def _expected(values: list[str], secret: str, set_value: str) -> list[str]:
    return [f"<{value}>" for value in [*values, secret, set_value]]


def _printed(output: str, values: list[str]) -> list[str]:
    """The `<value>` lines the job printed, values with newlines joined back."""
    text = output[output.index("<"):] if "<" in output else ""
    found, current = [], None
    for line in text.split("\n"):
        if current is not None:
            current += "\n" + line
        elif line.startswith("<"):
            current = line
        if current is not None and current.endswith(">") and current.count("\n") == _newlines(current, values):
            found.append(current)
            current = None
    return found


def _newlines(text: str, values: list[str]) -> int:
    return next((v.count("\n") for v in values if f"<{v}>" == text), text.count("\n"))


def test_hostile_values_stay_text_on_the_local_backend(launch_home: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    values = corpus(marker)
    code = tmp_path / "src"
    code.mkdir()
    for i, name in enumerate(["$(touch PWN)", "`id`;x", "a b'c\"d", "-rf", "\\n"]):  # file names in the bundle
        (code / f"{name}{i}").write_text(name)
    spec = tmp_path / "hostile.yaml"
    spec.write_text(_spec_text(values, marker, code=True))
    secret, set_value = f"s3cr$(touch {marker})`id`'\"", f"x;touch {marker}"
    env = launch_env(launch_home, {"HOSTILE_SECRET": secret})
    result = run_launch(["run", str(spec), "--follow", "--set", f"env.SET_VALUE={set_value}",
                         "--idempotency-key", f"key$(touch {marker})"], env)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), "a value was executed by a shell"
    assert _printed(result.stdout, values) == _expected(values, secret, set_value), result.stdout
    assert f"$(touch {marker})" in result.stdout and f"`touch {marker}`" in result.stdout  # setup's quoted text
    job = json.loads(run_launch(["list", "--all", "-o", "json"], env).stdout)[0]["id"]
    work = next((launch_home / "local" / job).glob("node-0/work"))
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in code.iterdir())
    assert not (work.parent / "PWN").exists() and not Path("PWN").exists()


CLOUD_BLOCKS = {
    "sagemaker": ("backends:\n  sagemaker:\n    region: us-east-1\n    role_arn: arn:aws:iam::123456789012:role/T\n"
                  "    bucket: team-bucket\n"
                  "image: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3\n"),
    "vertex": ("backends:\n  vertex:\n    project: my-project\n    region: us-central1\n"
               "    staging_bucket: gs://team-bucket\n"
               "image: us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3:latest\n"),
    "pai_dlc": ("backends:\n  pai_dlc:\n    region: cn-hangzhou\n    workspace_id: ws-test\n    bucket: team-bucket\n"
                "image: dsw-registry.cn-hangzhou.cr.aliyuncs.com/pai/pytorch:2.3\n"),
    "tione": ("backends:\n  tione:\n    region: ap-guangzhou\n    cos_bucket: team-1250000000\n"
              "image: ccr.ccs.tencentyun.com/team/pytorch:2.3\n"),
    "aihc": ("backends:\n  aihc:\n    resource_pool_id: cce-test-pool\n    queue: default\n"
             "    bos_bucket: team-bucket\nimage: registry.baidubce.com/aihcp-public/pytorch:2.3.0\n"),
}


def _node_env(backend: str, payload: dict) -> dict[str, str]:
    """The environment the provider gives the training container, read from the request as sent."""
    if backend == "sagemaker":
        return dict(payload["Environment"])
    if backend == "pai_dlc":
        return dict(payload["Envs"])
    if backend == "tione":
        return {item["Name"]: item["Value"] for item in payload["Envs"]}
    if backend == "aihc":
        return {item["name"]: item["value"] for item in payload["body"]["jobSpec"]["envs"]}
    container = payload["job_spec"]["worker_pool_specs"][0]["container_spec"]
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.mark.parametrize("backend", sorted(CLOUD_BLOCKS))
def test_hostile_values_stay_text_through_each_clouds_bootstrap(backend: str, tmp_path: Path,
                                                                launch_home: Path):
    marker = tmp_path / "pwned"
    values = corpus(marker)
    spec_file = tmp_path / "hostile.yaml"
    spec_file.write_text(_spec_text(values, marker, CLOUD_BLOCKS[backend]))
    secret, set_value = f"s3cr$(touch {marker})`id`'\"", f"x;touch {marker}"
    spec = load_spec(spec_file, [f"env.SET_VALUE={set_value}"])
    spec = spec.with_backend_settings(backend, spec.backends[backend])
    request = registry.create(backend, spec.backends[backend]).render(
        spec, "hostile-20260101-000000-abcdef", None, {"HOSTILE_SECRET": secret}, idempotency_key="k")
    node = tmp_path / "node"  # what the provider puts on the node: the job's files and its environment
    node.mkdir()
    env = _node_env(backend, request.payload)
    for upload in request.uploads:
        if upload.content is not None:
            name = upload.destination.rsplit("/", 1)[-1]
            (node / name).write_text(upload.content)
            env[{"run.sh": "LAUNCH_RUN_FILE", "setup.sh": "LAUNCH_SETUP_FILE",
                 "topology.sh": "LAUNCH_TOPOLOGY"}[name]] = str(node / name)
    env.update(LAUNCH_WORKDIR=str(node / "work"), LAUNCH_OUTPUT_DIR=str(node / "out"),
               LAUNCH_CHECKPOINT_DIR=str(node / "ckpt"), PATH=os.environ["PATH"])
    result = subprocess.run(["sh", str(BOOTSTRAP)], capture_output=True, text=True, env=env, cwd=node, timeout=60)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), "a value was executed by a shell"
    assert _printed(result.stdout, values) == _expected(values, secret, set_value), result.stdout
