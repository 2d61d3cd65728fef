"""A `backends.<name>` section that passed its backend's settings model is not checked again (nor its
backend imported) until the section or the code that checks it changes; a refusal is checked every
time; the file holds digests only, never a setting's value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher import registry, settings_cache
from launcher.errors import SpecError
from launcher.spec import parse_spec

REPO = Path(__file__).resolve().parent.parent
SECTION = "  vertex: {project: secret-project-42, region: us-central1, staging_bucket: gs://bench-bucket}\n"


def spec_text(section: str = SECTION) -> str:
    return f"name: x\nrun: echo hi\nbackends:\n{section}"


@pytest.fixture
def fresh(launch_home, monkeypatch):
    settings_cache._load.cache_clear()
    yield launch_home
    settings_cache._load.cache_clear()


def test_a_passing_section_is_remembered_as_a_digest_and_not_checked_again(fresh, monkeypatch):
    parse_spec(spec_text(), "spec.yaml")
    stored = (fresh / settings_cache.FILE).read_text()
    assert "secret-project-42" not in stored and all(len(d) == 64 for d in json.loads(stored))
    assert oct((fresh / settings_cache.FILE).stat().st_mode & 0o777) == "0o600"
    settings_cache._load.cache_clear()  # a later command

    def no_model(name):
        raise AssertionError(f"{name}'s model was built again")

    monkeypatch.setattr(registry, "settings_model", no_model)
    parse_spec(spec_text(), "spec.yaml")
    with pytest.raises(AssertionError, match="built again"):  # another section is checked for real
        parse_spec(spec_text(SECTION.replace("us-central1", "europe-west4")), "spec.yaml")


def test_a_refused_section_is_checked_every_time(fresh):
    bad = "  vertex: {project: p, region: us-central1, staging_bucket: gs://bench-bucket, machine_typo: x}\n"
    for _ in range(2):
        with pytest.raises(SpecError, match="machine_typo"):
            parse_spec(spec_text(bad), "spec.yaml")
    assert not (fresh / settings_cache.FILE).exists()


def test_an_edit_to_the_backend_code_checks_again(tmp_path, monkeypatch):
    package = tmp_path / "pkg_settings_probe"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "model.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = settings_cache.key("probe", {"a": 1}, "pkg_settings_probe.sub.model:Backend")
    assert before == settings_cache.key("probe", {"a": 1}, "pkg_settings_probe.sub.model:Backend")
    assert before != settings_cache.key("probe", {"a": 2}, "pkg_settings_probe.sub.model:Backend")
    settings_cache._fingerprint.cache_clear()  # a later command, after the edit
    (package / "sub" / "model.py").write_text("X = 22\n")
    os.utime(package / "sub" / "model.py", ns=(time.time_ns(), time.time_ns() + 10**9))
    assert settings_cache.key("probe", {"a": 1}, "pkg_settings_probe.sub.model:Backend") != before
    settings_cache._fingerprint.cache_clear()
    assert settings_cache.key("probe", {}, "no_such_package_anywhere.x:Y") is None


def test_a_dry_run_imports_only_the_backend_it_runs_on_once_the_sections_are_known(tmp_path):
    """The benchmark's case: a spec with settings for several backends, run again."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text(SECTION + "  sagemaker: {region: us-east-1, role_arn: "
                              "'arn:aws:iam::123456789012:role/Train', bucket: bench-bucket}\n"
                              "  hf_jobs: {namespace: org}\n"))
    code = ("import json, sys\nsys.argv = ['launch', 'run', sys.argv[1], '--backend', 'local', '--dry-run']\n"
            "from launcher.cli import run_main\ntry:\n    run_main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = {**os.environ, "LAUNCH_HOME": str(tmp_path / "home")}

    def modules() -> list[str]:
        done = subprocess.run([sys.executable, "-c", code, str(spec)], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert "would run" in done.stderr, done.stderr
        return json.loads(done.stderr.splitlines()[-1])

    first = modules()
    assert "backends.vertex.backend" in first or any(m.startswith("backends.vertex") for m in first)
    second = modules()
    assert not any(m.startswith(("backends.vertex", "backends.sagemaker", "backends.hf_jobs")) for m in second)
    assert "backends.local" in second


# -- the settings an existing job's backend is built with (runner.checked_settings: status, logs, cancel, submit)

HF_SECTION = {"namespace": "org", "flavor": "a10g-small"}


@pytest.fixture
def later_command(fresh, monkeypatch):
    """Each call of the returned function starts "a later command": nothing remembered in the process."""
    from launcher import runner, spec

    calls: list[str] = []
    real = spec.validate_settings

    def validate_settings(backend, settings, origin, where="the job spec"):
        calls.append(where)
        return real(backend, settings, origin, where)

    monkeypatch.setattr(spec, "validate_settings", validate_settings)

    def later() -> list[str]:
        monkeypatch.setattr(runner, "_checked", {})
        settings_cache._load.cache_clear()
        calls.clear()
        return calls
    return later


def test_a_backend_whose_settings_passed_before_is_built_without_checking_them_again(later_command):
    from launcher import runner

    first = runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml")
    checks = later_command()
    assert runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml") == first == HF_SECTION
    assert checks == []  # neither config.toml's section nor the spec's was checked again
    assert runner.checked_settings("hf_jobs", {**HF_SECTION, "flavor": "t4-small"}, "spec.yaml")
    assert len(checks) == 2  # another value: config.toml's section and the merged one, checked


def test_an_invalid_setting_is_refused_every_time_even_beside_one_that_passed(later_command):
    from launcher import runner

    runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml")
    for _ in range(2):
        later_command()
        with pytest.raises(SpecError, match="flavour"):
            runner.checked_settings("hf_jobs", {**HF_SECTION, "flavour": "x"}, "spec.yaml")
    later_command()
    from launcher import config

    path = config.ensure_home() / "config.toml"  # a config.toml edited since: checked again, and refused
    path.write_text("[backends.hf_jobs]\nendpoint = 42\n")
    config.load.cache_clear()
    with pytest.raises(SpecError, match="endpoint"):
        runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml")


def test_changed_checking_code_checks_the_settings_again(later_command, monkeypatch):
    from launcher import runner

    runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml")
    checks = later_command()
    monkeypatch.setattr(settings_cache, "_fingerprint", lambda package: [["edited.py", 1, time.time_ns()]])
    runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml")
    assert len(checks) == 2


def test_a_token_in_settings_never_reaches_the_cache(later_command):
    from launcher import config, runner

    config.ensure_home()
    (config.home() / "config.toml").write_text('[backends.hf_jobs]\ntoken = "hf_canary_secret_7f3a"\n')
    config.load.cache_clear()
    assert runner.checked_settings("hf_jobs", HF_SECTION, "spec.yaml")["token"] == "hf_canary_secret_7f3a"
    stored = (config.home() / settings_cache.FILE).read_text()
    assert "hf_canary" not in stored and all(len(d) == 64 for d in json.loads(stored))


def test_logs_of_a_job_whose_settings_are_known_import_no_pydantic(tmp_path):
    """`launch logs`/`status` build the job's backend: once its settings passed, without pydantic."""
    from launcher.backend import Handle, JobState
    from launcher.store import JobRecord, Store

    home = tmp_path / "home"
    job_dir = home / "local" / "j-20260101-000000-abcdef"
    (job_dir / "node-0").mkdir(parents=True)
    (job_dir / "node-0" / "log").write_text("hello from the job\n")
    (job_dir / "node-0" / "exit_code").write_text("0\n")
    store = Store.open(home)
    job_id = job_dir.name
    store.reserve(JobRecord(id=job_id, name="j", backend="local", handle=None, state=JobState.PENDING,
                            spec={"name": "j", "run": "true", "backends": {"local": {"cancel_grace": "3s"}}},
                            created_at=time.time(), updated_at=time.time()))
    store.set_handle(job_id, Handle("local", job_id, {"job_dir": str(job_dir), "submitted_at": 0.0, "nodes": [
        {"rank": 0, "pid": 2 ** 22 + 7, "pgid": 2 ** 22 + 7, "start": None, "dir": str(job_dir / "node-0")}]},
        fast_status=True))
    store.close()
    code = ("import json, sys\nsys.argv = ['launch', 'logs', sys.argv[1]]\nfrom launcher.cli import run_main\n"
            "try:\n    run_main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = {**os.environ, "LAUNCH_HOME": str(home)}

    def modules() -> list[str]:
        done = subprocess.run([sys.executable, "-c", code, job_id], env=env, cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert "hello from the job" in done.stdout, done.stderr
        return json.loads(done.stderr.splitlines()[-1])

    assert "pydantic" in modules()  # the first time, the settings are checked
    assert not any(m.startswith(("pydantic", "launcher.spec")) for m in modules())
