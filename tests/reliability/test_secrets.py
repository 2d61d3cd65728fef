"""A canary secret passed through `secrets:` reaches the job (the provider's request carries it) and
nowhere else: not the bytes of any file under LAUNCH_HOME (the SQLite store, its WAL, job dirs),
not the output of any command (text, -o json, --dry-run, --debug, -v), not the launcher's log
(stderr). The dry run shows it masked."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .conftest import Cloud, launch_env, run_launch

CANARY = "canary-7f3e9b1c-do-not-print"
CANARY_NAME = "LAUNCH_CANARY_TOKEN"


def _assert_nowhere(launch_home: Path, outputs: list[str]) -> None:
    for path in launch_home.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), f"the secret is in {path}"
    for text in outputs:
        assert CANARY not in text, text


def _commands(job: str, spec: Path, backend: str) -> list[list[str]]:
    """Every command that shows a job, in each output form, with and without --debug."""
    return [
        ["--debug", "run", str(spec), "--backend", backend, "--dry-run"],
        ["validate", str(spec), "--backend", backend],
        ["status", job], ["--debug", "-v", "status", job, "-o", "json"],
        ["list"], ["list", "--sync", "--all", "-o", "json"],
        ["logs", job], ["wait", job, "--timeout", "1", "-o", "json"], ["cancel", job, "-o", "json"],
    ]


def _check(launch_home: Path, spec: Path, backend: str, env: dict[str, str]) -> tuple[str, list[str]]:
    outputs = []
    for args in (["run", str(spec), "--backend", backend], ["--debug", "-v", "run", str(spec), "--backend", backend,
                                                              "-o", "json"]):
        result = run_launch(args, env)
        assert result.returncode == 0, result.stderr
        outputs += [result.stdout, result.stderr]
    job = json.loads(outputs[-2])["id"]
    dry = run_launch(["run", str(spec), "--backend", backend, "--dry-run", "-o", "json"], env)
    assert '"****"' in dry.stdout, "the dry run should show the secret masked"
    for args in _commands(job, spec, backend):
        result = run_launch(args, env)
        assert "Traceback" not in result.stderr or "--debug" in args, result.stderr
        outputs += [result.stdout, result.stderr]
    _assert_nowhere(launch_home, outputs)
    return job, outputs


def test_canary_secret_never_leaves_the_job_on_a_cloud(cloud: Cloud, cloud_spec: Path, launch_home: Path):
    cloud_spec.write_text(cloud.spec_text + f"secrets: [{CANARY_NAME}]\n")
    env = launch_env(launch_home, {**cloud.env, CANARY_NAME: CANARY})
    _check(launch_home, cloud_spec, cloud.name, env)
    assert cloud.got_secret(CANARY), "the secret never reached the provider's job: the test proved nothing"


def test_canary_secret_never_leaves_a_local_job(launch_home: Path, tmp_path: Path):
    spec = tmp_path / "local.yaml"
    proof = tmp_path / "job-saw-it"
    digest = hashlib.sha256(CANARY.encode()).hexdigest()  # the job checks the value without the spec holding it
    spec.write_text(f'name: canary\nrun: test "$(printf %s "${CANARY_NAME}" | sha256sum | cut -c1-64)" = "{digest}" '
                    f"&& touch {proof}; sleep 0.2\nsecrets: [{CANARY_NAME}]\n")
    env = launch_env(launch_home, {CANARY_NAME: CANARY})
    _check(launch_home, spec, "local", env)
    deadline = time.monotonic() + 30
    while not proof.exists():  # the job itself got the value
        assert time.monotonic() < deadline, "the local job never saw its secret"
        time.sleep(0.1)
    _assert_nowhere(launch_home, [])
