"""A job record whose handle lacks what its backend needs (written by another launch version, or edited by hand)
is one clear error for every command on the job (exit 2, naming the missing fields and `list --sync`), never a
KeyError from deep inside a backend call (exit 70). The backend declares the fields (`handle_fields`); the runner
checks them once, after the SDK check, for every backend."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from launcher import registry
from launcher.backend import Handle, JobState
from launcher.store import JobRecord, Store

DECLARING = sorted(name for name in registry.names() if registry.backend_class(name).handle_fields)


def _record(home: Path, backend: str, data: dict | None = None) -> str:
    job_id = f"incomplete-20261201-000000-{backend.replace('_', '')[:6]}"
    now = time.time()
    Store.open(home).reserve(JobRecord(id=job_id, name="incomplete", backend=backend,
                                       handle=Handle(backend, job_id, data or {}), spec={}, state=JobState.RUNNING,
                                       raw_state="", message="", created_at=now, updated_at=now))
    return job_id


def test_the_backends_that_read_their_handles_declare_what_they_read():
    assert {"slurm", "kubernetes", "sagemaker", "vertex", "lambda_cloud", "pai_dlc", "tione", "aihc",
            "azure_openai", "hf_jobs", "local", "ssh"} <= set(DECLARING)


@pytest.mark.parametrize("backend", DECLARING)
def test_status_of_a_record_without_its_handle_fields_is_one_clear_error(cli, launch_home, backend):
    job_id = _record(launch_home, backend)
    result = cli("status", job_id)
    assert result.returncode == 2, result.stderr
    missing = registry.backend_class(backend).handle_fields
    assert f"record lacks {', '.join(missing)}" in result.stderr and "launch list --sync" in result.stderr
    assert "internal error" not in result.stderr


def test_every_command_on_an_incomplete_slurm_record_says_so(cli, launch_home):
    """slurm has no SDK to ask for first: before handle_fields, each of these was exit 70 (KeyError)."""
    job_id = _record(launch_home, "slurm")
    for command in (("status",), ("logs",), ("wait", "--timeout", "1"), ("cancel",)):
        result = cli(*command, job_id)
        assert result.returncode == 2 and "record lacks slurm_id" in result.stderr, (command, result.stderr)


@pytest.mark.parametrize(("backend", "data", "garbled"), [
    ("local", {"job_dir": "/nonexistent", "nodes": "x"}, "nodes"),
    ("local", {"job_dir": 7, "nodes": [{"rank": 0, "pid": 1, "pgid": 1, "dir": "/nonexistent"}]}, "job_dir"),
    ("ssh", {"job_dir": "/j", "nodes": [{"rank": "0", "pid": 1, "host": "h", "dir": "/j/n"}]}, "nodes"),
    ("slurm", {"slurm_id": "x; rm -rf ~", "job_dir": "/j", "nodes": 1}, "slurm_id"),
    ("slurm", {"slurm_id": "12", "job_dir": "/j", "nodes": True}, "nodes"),
])
def test_a_handle_field_in_a_shape_the_backend_cannot_read_is_the_same_clear_error(cli, launch_home, backend, data,
                                                                                    garbled):
    """Present but garbled (another version's record, or edited by hand): before, local and ssh hit a
    KeyError and slurm's logs a ValueError (exit 70) on a plain install as on a full one."""
    job_id = _record(launch_home, backend, data)
    for command in (("status",), ("logs",), ("wait", "--timeout", "1"), ("cancel",)):
        result = cli(*command, job_id)
        assert result.returncode == 2, (command, result.stderr)
        assert f"record lacks {garbled}" in result.stderr and "internal error" not in result.stderr, result.stderr
