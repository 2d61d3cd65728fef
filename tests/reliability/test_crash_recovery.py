"""kill -9 of `launch run` at each step boundary of a submit, on every cloud backend:

- after the upload, before the create was sent (the proxy holds the create request);
- after the create was sent and carried out, before its answer arrived (the proxy holds the answer);
- after the answer, before the store write (a test-only sitecustomize SIGKILLs the process when
  Store.set_submitted, the write of the provider's answer, is called: the runner has no kill hook of its own).

Afterwards `launch list --sync` finds every job the provider has, a re-run with the same
--idempotency-key returns that job (on the same machine, and on a fresh one with an empty store),
and no boundary leaves two jobs at the provider.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from launcher.store import Store

from .conftest import Cloud, launch_env, run_launch, start_launch

KILL_HOOK = '''\
"""Test-only: SIGKILL this process where the runner writes the provider's answer to the store."""
import os
import signal

if os.environ.get("LAUNCH_TEST_KILL_AT") == "before-store-write":
    from launcher import store

    def _die(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    store.Store.set_submitted = _die
'''
BOUNDARIES = ("after-upload", "create-sent", "before-store-write")


def _kill_at(boundary: str, cloud: Cloud, args: list[str], env: dict[str, str], hook_dir: Path) -> None:
    if boundary == "before-store-write":
        hook_dir.mkdir(exist_ok=True)
        (hook_dir / "sitecustomize.py").write_text(KILL_HOOK)
        path = os.pathsep.join(filter(None, [str(hook_dir), env.get("PYTHONPATH")]))  # the checkout's, kept
        env = {**env, "PYTHONPATH": path, "LAUNCH_TEST_KILL_AT": boundary}
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == -9, result.stderr
        return
    hold = cloud.proxy.hold_next(cloud.create_request, after=boundary == "create-sent")
    proc = start_launch(args[3:], env)
    try:
        hold.wait_arrived(90)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        hold.drop()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -9


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_kill_at_each_submit_boundary_then_sync_and_rerun(boundary: str, cloud: Cloud, cloud_spec: Path,
                                                          launch_home: Path, tmp_path: Path):
    import sys

    env = launch_env(launch_home, cloud.env)
    key = f"ci-{boundary}"
    args = [sys.executable, "-m", "launcher", "run", str(cloud_spec), "--backend", cloud.name, "--idempotency-key", key]
    _kill_at(boundary, cloud, args, env, tmp_path / "hook")
    created = boundary != "after-upload"
    assert len(cloud.provider_jobs()) == (1 if created else 0)

    synced = run_launch(["list", "--sync", "--all", "-o", "json", "--backend", cloud.name], env)
    assert synced.returncode == 0, synced.stderr
    store = Store.open()
    restarted = boundary == "create-sent" and cloud.create_is_not_start  # launched, never started
    if created and not restarted:
        (job,) = cloud.provider_jobs()
        record = store.get(job)
        assert record is not None and record.handle is not None, "sync did not find the job the provider has"
        assert record.idempotency_key == key

    fresh = tmp_path / "fresh-machine"  # CI re-running on a new runner: empty store, same key
    fresh.mkdir()
    (fresh / "config.toml").write_text((launch_home / "config.toml").read_text())
    elsewhere = run_launch(["run", str(cloud_spec), "--backend", cloud.name, "--idempotency-key", key, "-o", "json"],
                           launch_env(fresh, cloud.env))
    assert elsewhere.returncode == 0, elsewhere.stderr
    answer = json.loads(elsewhere.stdout)
    assert len(cloud.runs()) == 1 and cloud.duplicates() == {}
    (job_at_provider,) = cloud.runs()
    assert answer["id"] == job_at_provider and answer["existing"] is (created and not restarted)
    # the same machine again: its reservation's submitter is dead; the job the provider has is returned
    again = run_launch(["run", str(cloud_spec), "--backend", cloud.name, "--idempotency-key", key, "-o", "json"], env)
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["existing"] is True and answer["id"] == job_at_provider
    assert len(cloud.runs()) == 1 and cloud.duplicates() == {}
    followed = run_launch(["status", job_at_provider, "-o", "json"], env)  # the job returned can be followed
    assert followed.returncode == 0, followed.stderr
