"""A config.toml the backend's settings model refuses: every command that uses that backend says
where and what, never an internal error, and `launch backends` does not call it ready."""

from __future__ import annotations

import json
from pathlib import Path

BAD_AZURE = """\
[backends.azureml]
workspace_name = "bad name!!"
subscription_id = "x"
resource_group = "rg"
"""


def _write_config(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    path.write_text(text)
    return path


def test_list_sync_names_the_config_lines_in_order(cli, launch_home):
    path = _write_config(launch_home, BAD_AZURE)
    result = cli("list", "--sync", "-b", "azureml")
    assert result.returncode == 2, result.stderr
    assert "internal error" not in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip().startswith(str(path))]
    assert lines[0].startswith(f"{path}:2: backends.azureml.workspace_name:"), result.stderr
    assert lines[1].startswith(f"{path}:3: backends.azureml.subscription_id:"), result.stderr


def test_backends_does_not_call_a_misconfigured_backend_ready(cli, launch_home):
    path = _write_config(launch_home, BAD_AZURE)
    rows = {row["name"]: row for row in json.loads(cli("backends", "-o", "json", check_rc=0).stdout)}
    azure = rows["azureml"]
    assert azure["configured"] is False
    assert str(path) in azure["detail"] and "2 problems" in azure["detail"]
    assert "workspace_name" in azure["hint"]
    assert rows["local"]["configured"] is True


def test_status_of_a_job_after_its_config_broke_is_a_clear_error(cli, launch_home, write_spec):
    """A job recorded earlier is looked up with today's config: a broken config is the user's to
    fix (exit 2, file and line), not launch's bug (exit 70)."""
    from launcher.backend import Handle, JobState
    from launcher.store import JobRecord, Store

    store = Store.open()
    store.reserve(JobRecord(id="demo-20261201-000000-abcdef", name="demo", backend="azureml",
                            handle=Handle("azureml", "demo-20261201-000000-abcdef"), spec={},
                            state=JobState.RUNNING, raw_state="Running", message="", created_at=1.0,
                            updated_at=1.0))
    path = _write_config(launch_home, BAD_AZURE)
    result = cli("status", "demo-20261201")
    assert result.returncode == 2, result.stderr
    assert f"{path}:2" in result.stderr and "internal error" not in result.stderr
