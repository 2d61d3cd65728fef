"""Shell completion of job and group ids, through click's own protocol (the `_LAUNCH_COMPLETE`
variable the README's one line sets), in a fresh interpreter as a shell would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.backend import JobState
from launcher.store import JobRecord, Store

REPO = Path(__file__).resolve().parent.parent
# what completing must never load: it runs on every Tab press
HEAVY = ("pydantic", "yaml", "backends", "boto3", "google.api_core", "azure", "rich", "launcher.runner")

_WRAPPER = """
import atexit, json, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["launch"]
from launcher.cli import run_main
run_main()
"""


def complete(home: Path, tmp_path: Path, words: str, shell: str = "bash") -> tuple[list[str], list[str]]:
    """Ask for completions of the last word of `words`; returns (values, modules loaded)."""
    modules_file = tmp_path / "modules.json"
    env = {**os.environ, "LAUNCH_HOME": str(home), "_LAUNCH_COMPLETE": f"{shell}_complete",
           "COMP_WORDS": words, "COMP_CWORD": str(len(words.split(" ")) - 1)}
    result = subprocess.run([sys.executable, "-c", _WRAPPER, str(modules_file)], capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    values = [line.split(",", 1)[1] for line in result.stdout.splitlines() if line.startswith("plain,")]
    return values, json.loads(modules_file.read_text())


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    store = Store.open(home)
    now = time.time()
    for i, (job_id, group) in enumerate([("bert-20260101-000000-aaa111", None),
                                         ("bert-20260102-000000-bbb222", "bert-sweep-20260102-000000-ccc333"),
                                         ("gpt-20260103-000000-ddd444", "gpt-sweep-20260103-000000-eee555")]):
        store.reserve(JobRecord(id=job_id, name=job_id.split("-")[0], backend="local", handle=None, spec={},
                                state=JobState.SUCCEEDED, created_at=now + i, updated_at=now + i, group_id=group,
                                params={"lr": "1e-3"} if group else None))
    store.close()
    return home


@pytest.mark.parametrize("command", ["status", "logs", "wait", "cancel"])
def test_job_ids_complete_from_the_store(home: Path, tmp_path: Path, command: str) -> None:
    values, modules = complete(home, tmp_path, f"launch {command} ber")
    assert values == ["bert-20260102-000000-bbb222", "bert-20260101-000000-aaa111"]  # newest first
    assert [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []


def test_group_ids_complete_for_list_and_cancel(home: Path, tmp_path: Path) -> None:
    assert complete(home, tmp_path, "launch list --group ")[0] == ["gpt-sweep-20260103-000000-eee555",
                                                                   "bert-sweep-20260102-000000-ccc333"]
    assert complete(home, tmp_path, "launch cancel --group gp")[0] == ["gpt-sweep-20260103-000000-eee555"]


def test_commands_still_complete_and_an_empty_home_completes_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "never-used"
    assert "status" in complete(empty, tmp_path, "launch sta")[0]
    assert complete(empty, tmp_path, "launch status ")[0] == []
    assert not empty.exists()  # completing created no state directory


def test_zsh_gets_the_ids_too(home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "LAUNCH_HOME": str(home), "_LAUNCH_COMPLETE": "zsh_complete",
           "COMP_WORDS": "launch status gpt", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "launcher"], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=60)
    assert "gpt-20260103-000000-ddd444" in result.stdout.splitlines()


def test_the_readme_gives_the_line_that_turns_completion_on(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    line = 'eval "$(_LAUNCH_COMPLETE=bash_source launch)"'
    assert line in readme
    env = {**os.environ, "_LAUNCH_COMPLETE": "bash_source"}
    script = subprocess.run([sys.executable, "-m", "launcher"], capture_output=True, text=True, env=env, cwd=REPO,
                            timeout=60).stdout
    assert "complete -o nosort -F _launch_completion launch" in script  # what `eval` installs in bash
