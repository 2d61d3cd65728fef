"""A create that reached the provider but whose answer was lost (the proxy resets the connection after
the fake made the job), followed by more faults. The full exactly-once run (seed 20261125) once left
such a Vertex job running while its `launch run` exited 4 and deleted its record: the retried submit
uploaded again before looking for the job, the re-upload failed for good, and the failure was reported
as if nothing had been created. Now the job is adopted when it can be found, and when it cannot, the
error says plainly that it may exist and the record stays for `launch list --sync`."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.store import Store

from .conftest import SUBMITTED, Cloud, assert_clear_error, launch_env, run_launch, start_launch

LOOKUP = r"^GET \S*/customJobs\?"  # the find by job-id label (list with a filter)
BUNDLE_CHECK = r"^GET /storage/v1/b/team-bucket/o/"  # the re-upload's first request: is the bundle there?


@pytest.fixture
def vertex(clouds: dict[str, Cloud], launch_home: Path) -> Iterator[Cloud]:
    """The Vertex entry of the harness, fresh, with this test's LAUNCH_HOME pointed at its proxy."""
    cloud = clouds["vertex"]
    cloud.reset()
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(cloud.config)
    yield cloud
    cloud.proxy.reset(rate=0.0)


@pytest.fixture
def spec(vertex: Cloud, tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    path = tmp_path / "vertex.yaml"
    path.write_text(vertex.spec_text)
    return path


def _run_with_lost_create(cloud: Cloud, spec: Path, env: dict[str, str],
                          *later_faults: tuple[str, str | int, int]) -> subprocess.CompletedProcess[str]:
    """`launch run` whose first create is carried out by the fake and its answer lost (a reset); the
    faults in `later_faults` (pattern, kind, times) are armed once the create has reached the fake."""
    hold = cloud.proxy.hold_next(cloud.create_request, after=True)
    proc = start_launch(["run", str(spec), "--backend", cloud.name], env)
    try:
        hold.wait_arrived(90)
        assert len(cloud.provider_jobs()) == 1  # the create was carried out
        for pattern, kind, times in later_faults:
            cloud.proxy.fail_next(pattern, kind, times=times)
    finally:
        hold.drop()  # the answer is lost: the client sees its connection reset
    stdout, stderr = proc.communicate(timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_a_job_whose_create_answer_was_lost_is_adopted_although_the_retry_could_not_upload(
        vertex: Cloud, spec: Path, launch_home: Path):
    env = launch_env(launch_home, vertex.env)
    # the look right after the lost create fails (a reset), and so would the re-upload (403) had the
    # retried submit uploaded before looking
    result = _run_with_lost_create(vertex, spec, env, (LOOKUP, "reset", 1), (BUNDLE_CHECK, 403, 5))
    assert result.returncode == 0, result.stderr
    (job,) = vertex.provider_jobs()
    printed = SUBMITTED.search(result.stdout)
    assert printed is not None and printed.group(1) == job, result.stdout
    (record,) = Store.open().list(backend="vertex", limit=None)
    assert record.id == job and record.handle is not None


def test_a_job_that_may_exist_is_said_to_and_kept_for_sync(vertex: Cloud, spec: Path, launch_home: Path):
    env = launch_env(launch_home, vertex.env)
    # after the lost create every look is refused (403) and the re-upload too: the job cannot be found
    result = _run_with_lost_create(vertex, spec, env, (LOOKUP, 403, 50), (BUNDLE_CHECK, 403, 50))
    vertex.proxy.reset()
    (job,) = vertex.provider_jobs()
    assert result.returncode == 4, result.stderr
    error = assert_clear_error(result)
    assert f"job {job} may have been created at vertex" in error and "launch list --sync" in error, error
    (record,) = Store.open().list(backend="vertex", limit=None)
    assert (record.id, record.handle, record.state.value) == (job, None, "UNKNOWN")
    sync = run_launch(["list", "--sync", "--all", "-o", "json", "--backend", "vertex"], env)
    assert sync.returncode == 0, sync.stderr
    (listed,) = json.loads(sync.stdout)
    assert listed["id"] == job and listed["state"] == "PENDING"  # recorded, with the provider's handle
