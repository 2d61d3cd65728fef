"""`launch validate --backend X` is the pre-flight check CI runs: it refuses whatever
`run --dry-run --backend X` refuses, says every problem in one round, locates each one where it
was set (spec line, --set flag, config.toml line, or "not set anywhere"), and can answer in JSON.
config.toml typos get the same "did you mean" as spec typos."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from launcher import registry

SPEC = "name: demo\nrun: python train.py\nresources:\n  accelerators: H100:8\n"
PROBLEM = re.compile(r"^  (\S.*)$", re.M)


@pytest.fixture
def no_cloud_defaults(tmp_path: Path) -> dict[str, str]:
    """No region, project or workspace from this machine's environment: only what a test sets."""
    return {"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "GOOGLE_CLOUD_PROJECT": "", "CLOUDSDK_CONFIG": str(tmp_path),
            "CLOUDSDK_CORE_PROJECT": "", "CLOUDSDK_COMPUTE_REGION": "", "HOME": str(tmp_path)}


def _problems(stderr: str) -> list[str]:
    return PROBLEM.findall(stderr)


@pytest.mark.parametrize("backend", registry.names())
def test_validate_refuses_what_a_dry_run_refuses(cli, write_spec, launch_home, backend, no_cloud_defaults):
    spec = write_spec(SPEC)
    dry = cli("run", "--dry-run", str(spec), "--backend", backend, env=no_cloud_defaults)
    checked = cli("validate", str(spec), "--backend", backend, env=no_cloud_defaults)
    assert checked.returncode == dry.returncode, f"dry run:\n{dry.stderr}\nvalidate:\n{checked.stderr}"
    assert _problems(checked.stderr) == _problems(dry.stderr)
    if dry.returncode == 0:
        assert checked.stdout.startswith(f"{spec}: ok") and f"ready for {backend}" in checked.stdout
    else:
        assert checked.returncode == 2 and checked.stdout == "" and _problems(checked.stderr), checked.stderr
    assert not (launch_home / "bundles").exists() or not any((launch_home / "bundles").iterdir())


def test_sagemaker_says_region_and_role_in_one_round(cli, write_spec, no_cloud_defaults):
    spec = write_spec(SPEC + "image: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3\n")
    result = cli("validate", str(spec), "--backend", "sagemaker", env=no_cloud_defaults)
    assert result.returncode == 2
    fields = re.findall(r"(backends\.sagemaker\.\w+):", result.stderr)
    assert fields == ["backends.sagemaker.region", "backends.sagemaker.role_arn"], result.stderr


def test_a_setting_set_nowhere_says_so(cli, write_spec, no_cloud_defaults):
    spec = write_spec(SPEC)
    result = cli("validate", str(spec), "--backend", "lambda_cloud", env=no_cloud_defaults)
    (line,) = _problems(result.stderr)
    assert line.startswith(f"{spec}: backends.lambda_cloud.ssh_key_name:"), line  # no line 1: it is not there
    assert "not set anywhere (spec, " in line and "config.toml, --set)" in line


def test_a_missing_setting_points_at_its_backend_section(cli, write_spec, no_cloud_defaults):
    spec = write_spec(SPEC + "backends:\n  sagemaker:\n    bucket: my-bucket\n")
    result = cli("validate", str(spec), "--backend", "sagemaker", "--set", "backends.sagemaker.region=us-east-1",
                 env=no_cloud_defaults)
    assert f"{spec}:6: backends.sagemaker.role_arn:" in result.stderr, result.stderr
    assert "not set anywhere" not in result.stderr


def test_a_missing_setting_is_not_blamed_on_an_unrelated_set_flag(cli, write_spec, no_cloud_defaults):
    spec = write_spec(SPEC)
    result = cli("validate", str(spec), "--backend", "sagemaker", "--set", "backends.sagemaker.region=us-east-1",
                 env=no_cloud_defaults)
    (role,) = [p for p in _problems(result.stderr) if "role_arn" in p]
    assert not role.startswith("--set"), role
    assert role.startswith(f"{spec}: backends.sagemaker.role_arn:") and "not set anywhere" in role


def test_a_typo_in_a_set_flag_is_still_the_flag(cli, write_spec):
    result = cli("validate", write_spec(SPEC), "--set", "backends.sagemaker.regoin=us-east-1")
    assert "--set backends.sagemaker.regoin=us-east-1: backends.sagemaker.regoin: unknown key; did you mean " \
           "'region'?" in result.stderr, result.stderr


def test_a_bad_value_from_config_points_at_its_line(cli, write_spec, launch_home, no_cloud_defaults):
    launch_home.mkdir(parents=True, exist_ok=True)
    config = launch_home / "config.toml"
    config.write_text('default_backend = "local"\n\n[backends.sagemaker]\nregion = "us-east-1"\n'
                      'role_arn = "not-a-role"\n')
    spec = write_spec(SPEC + "image: img\n")
    result = cli("validate", str(spec), "--backend", "sagemaker", env=no_cloud_defaults)
    assert f"{config}:5: backends.sagemaker.role_arn: 'not-a-role' is not an IAM role ARN" in result.stderr, \
        result.stderr


@pytest.mark.parametrize(("text", "where", "fragment"), [
    ('default_backnd = "ssh"\n', ":1: default_backnd:", "did you mean 'default_backend'?"),
    ('# defaults\n\n[backends.sagemakr]\nregion = "us-east-1"\n', ":3: backends.sagemakr:",
     "unknown backend; did you mean 'sagemaker'?"),
    ('[backends.sagemaker]\nregion = "us-east-1"\nrole_ran = "x"\n', ":3: backends.sagemaker.role_ran:",
     "unknown key; did you mean 'role_arn'?"),
    ('[backends]\nsagemaker.regoin = "us-east-1"\n', ":2: backends.sagemaker.regoin:", "did you mean 'region'?"),
])
def test_config_typos_get_did_you_mean_with_file_and_line(cli, write_spec, launch_home, text, where, fragment):
    launch_home.mkdir(parents=True, exist_ok=True)
    config = launch_home / "config.toml"
    config.write_text(text)
    for command in (("validate", str(write_spec(SPEC)), "--backend", "sagemaker"),
                    ("run", "--dry-run", str(write_spec(SPEC)), "--backend", "sagemaker")):
        result = cli(*command)
        assert result.returncode == 2, result.stderr
        assert f"{config}{where}" in result.stderr and fragment in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_ssh_pool_named_nowhere_is_a_located_problem(cli, write_spec):
    spec = write_spec(SPEC.replace("H100:8", "cpu") + "backends:\n  ssh:\n    pool: nope\n")
    result = cli("validate", str(spec), "--backend", "ssh")
    assert result.returncode == 2
    assert f"{spec}:7: backends.ssh.pool: no ssh pool named 'nope'" in result.stderr, result.stderr


def test_validate_json_lists_every_problem(cli, write_spec, no_cloud_defaults):
    spec = write_spec(SPEC + "backends:\n  sagemaker:\n    bucket: my-bucket\n")
    result = cli("validate", str(spec), "--backend", "sagemaker", "-o", "json", env=no_cloud_defaults)
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["file"] == str(spec)
    by_field = {p["field"]: p for p in report["problems"]}
    assert set(by_field) == {"backends.sagemaker.region", "backends.sagemaker.role_arn", "image"}
    assert by_field["backends.sagemaker.role_arn"] == {
        "file": str(spec), "line": 6, "field": "backends.sagemaker.role_arn",
        "message": by_field["backends.sagemaker.role_arn"]["message"]}
    assert "execution role" in by_field["backends.sagemaker.role_arn"]["message"]


def test_validate_json_spec_problems_and_ok(cli, write_spec):
    bad = cli("validate", str(write_spec("name: demo\nrun: x\nspot: maybe\n")), "-o", "json")
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["problems"] == [
        {"file": str(write_spec("name: demo\nrun: x\nspot: maybe\n")), "line": 3, "field": "spot",
         "message": "expected true or false; got 'maybe'"}]
    good = cli("validate", str(write_spec(SPEC)), "--backend", "local", "-o", "json", check_rc=0)
    assert json.loads(good.stdout) == {"file": str(write_spec(SPEC)), "ok": True, "problems": []}
    unknown = cli("validate", str(write_spec(SPEC)), "--backend", "nope", "-o", "json")
    assert unknown.returncode == 2
    (problem,) = json.loads(unknown.stdout)["problems"]
    assert "unknown backend 'nope'" in problem["message"]


def test_spec_and_config_problems_come_in_one_round(cli, write_spec, launch_home):
    launch_home.mkdir(parents=True, exist_ok=True)
    config = launch_home / "config.toml"
    config.write_text('[backends.sagemaker]\nregoin = "us-east-1"\n')
    spec = write_spec(SPEC + "spot: maybe\n")
    result = cli("validate", str(spec), "--backend", "sagemaker")
    assert result.returncode == 2
    assert f"{spec}:5: spot:" in result.stderr and f"{config}:2: backends.sagemaker.regoin:" in result.stderr, \
        result.stderr
    assert "2 problems in the job spec and " in result.stderr


def test_config_lines_follow_tables_dotted_and_quoted_keys():
    from launcher.config import source_lines

    text = ('# c\ndefault_backend = "ssh"\n[backends.sagemaker]  # aws\nregion = "us-east-1"\n'
            '[backends."vertex"]\nproject = "p"\n[backends.ssh.pools.gpu]\nhosts = ["a"]\n'
            '[bundles]\nmax_age = "7d"\n')
    lines = source_lines(text)
    assert lines[("default_backend",)] == 2
    assert lines[("backends",)] == 3 and lines[("backends", "sagemaker")] == 3
    assert lines[("backends", "sagemaker", "region")] == 4
    assert lines[("backends", "vertex", "project")] == 6
    assert lines[("backends", "ssh", "pools", "gpu", "hosts")] == 8
    assert lines[("bundles", "max_age")] == 10
