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
