"""The spec is read once per command and each backend's settings are checked once.

The CLI runs in-process here (click's runner) so the spec loader and the settings check can
be counted: `run --wait`, a sweep and a failover each parse the spec file exactly once and
check each backend's settings once (config.toml's own lines once, config < spec once), however
many times the command builds that backend (submit, a key's lookups, a retried submit, wait).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher import cli, config, registry, runner, spec, yaml_source
from launcher.backend import Backend, Capabilities, Handle, JobState, Readiness, Request, Status, new_job_id
from launcher.errors import CapacityError

VALIDATIONS: Counter = Counter()  # every check of a test backend's settings, of any kind, by backend


def _settings_model(backend: str):
    from pydantic import BaseModel, ConfigDict, model_validator

    class ShelfSettings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = 1

        @model_validator(mode="before")
        @classmethod
        def _count(cls, data):
            VALIDATIONS[backend] += 1
            return data

    ShelfSettings.__qualname__ = f"ShelfSettings_{backend}"
    return ShelfSettings


SHELVED: dict[str, Request] = {}  # what the test backends were sent, by job id


class _Shelf(Backend):
    """A test backend that keeps jobs in memory; each job has ended by the time it is asked."""

    name = "roomy"
    capabilities = Capabilities(multi_node=False, fast_status=True)
    settings_model = _settings_model("roomy")

    def __init__(self, settings, client=None):
        self.settings = settings

    @classmethod
    def readiness(cls, settings):
        return Readiness(sdk_installed=True, configured=True)

    def render(self, spec, job_id, bundle, secrets, *, idempotency_key=None):
        return Request(self.name, job_id, "shelve", {"run": spec.run, "key": idempotency_key})

    def submit(self, request):
        SHELVED[request.job_id] = request
        return Handle(self.name, request.job_id)

    def status(self, handle):
        return Status(JobState.SUCCEEDED, "done", exit_code=0, ended_at=time.time())

    def logs(self, handle, *, follow=False, since=None, node=None):
        return iter(())

    def cancel(self, handle):
        pass

    def list(self, *, since=None):
        return iter(())


class _FullShelf(_Shelf):
    """Has no capacity: the failover moves on."""

    name = "full"
    settings_model = _settings_model("full")

    def submit(self, request):
        raise CapacityError("no room on the shelf")


@pytest.fixture
def shelves(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`full` and `roomy` join the installed backends, as entry points would add them."""
    installed = registry._entry_points()
    monkeypatch.setattr(registry, "_entry_points", lambda: {**installed, "roomy": f"{__name__}:_Shelf",
                                                               "full": f"{__name__}:_FullShelf"})
    registry.backend_class.cache_clear()
    VALIDATIONS.clear()
    yield
    registry.backend_class.cache_clear()


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, launch_home: Path) -> Iterator[Counter]:
    """Counts spec-file parses (key "parse") and settings checks ((backend, "config.toml" or "spec"))."""
    counts: Counter = Counter()
    real_load, real_validate = yaml_source.load, spec.validate_settings

    def load(text, file):
        if not file.startswith("--set"):
            counts["parse"] += 1
        return real_load(text, file)

    def validate_settings(backend, settings, origin, where="the job spec"):
        counts[backend, "config.toml" if where == str(config.config_path()) else "spec"] += 1
        return real_validate(backend, settings, origin, where)

    monkeypatch.setattr(yaml_source, "load", load)
    monkeypatch.setattr(spec, "validate_settings", validate_settings)
    monkeypatch.setattr(runner, "_checked", {})  # a fresh process: nothing checked yet
    handler = signal.getsignal(signal.SIGTERM)  # `run --wait` turns SIGTERM into an interrupt
    yield counts
    signal.signal(signal.SIGTERM, handler)


def _launch(*args: str) -> str:
    result = CliRunner().invoke(cli.main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _spec(tmp_path: Path, run: str = "exit 0", sections: str = "  local: {cancel_grace: 3s}\n") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(f"name: once\nrun: {run}\nbackends:\n{sections}")
    return path


def test_run_wait_parses_once_and_checks_settings_once(counted: Counter, tmp_path: Path):
    _launch("run", str(_spec(tmp_path)), "--wait", "--set", "env.A=1")
    assert counted == {"parse": 1, ("local", "config.toml"): 1, ("local", "spec"): 1}


def test_a_sweep_parses_once_and_checks_settings_once(counted: Counter, tmp_path: Path):
    out = _launch("run", str(_spec(tmp_path, run='"echo ${lr}"')), "--sweep", "lr=1,2,3", "--wait",
                  "--idempotency-key", "sweep-once", "-o", "json")
    assert out.count('"SUCCEEDED"') == 3, out
    assert counted == {"parse": 1, ("local", "config.toml"): 1, ("local", "spec"): 1}


def test_a_failover_parses_once_and_checks_each_backend_once(counted: Counter, shelves: None, tmp_path: Path):
    sections = "  full: {size: 2}\n  roomy: {size: 3}\n"
    _launch("run", str(_spec(tmp_path, sections=sections)), "--backend", "full,roomy", "--wait",
            "--idempotency-key", "failover-once")
    assert counted == {"parse": 1, ("full", "config.toml"): 1, ("full", "spec"): 1,
                       ("roomy", "config.toml"): 1, ("roomy", "spec"): 1}
    # every check of any kind: the spec's own section, config.toml's, config < spec
    assert VALIDATIONS == {"full": 3, "roomy": 3}
    [request] = [r for r in SHELVED.values() if r.payload["key"] == "failover-once"]
    assert request.payload["run"] == "exit 0"


def test_a_sweep_checks_a_shared_settings_section_once(counted: Counter, shelves: None, tmp_path: Path):
    """The spec's own `backends.roomy` section is the same at every point: checked once, not per point."""
    out = _launch("run", str(_spec(tmp_path, run='"echo ${lr}"', sections="  roomy: {size: 3}\n")), "--backend",
                  "roomy", "--sweep", "lr=1,2,3", "--wait", "-o", "json")
    assert out.count('"SUCCEEDED"') == 3, out
    assert counted["parse"] == 1
    assert VALIDATIONS == {"roomy": 3}


def test_validate_with_backends_parses_once(counted: Counter, shelves: None, tmp_path: Path):
    _launch("validate", str(_spec(tmp_path, sections="  roomy: {size: 3}\n")), "--backend", "roomy,local")
    assert counted["parse"] == 1
    assert counted["roomy", "spec"] == counted["local", "spec"] == 1


def test_job_name_is_the_inverse_of_new_job_id():
    from launcher.backend import job_name

    assert job_name(new_job_id("bert-finetune-v2")) == "bert-finetune-v2"
    assert job_name(new_job_id("My Job")) == "my-job"
