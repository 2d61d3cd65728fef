"""`launch --help`, `-h`, `--version` and bare `launch` are answered from text rendered ahead
(launcher/help_text.py) without importing click: the text, the stream and the exit code must be
click's own, so the fast answer can never drift from the commands (regenerate with
`python -m launcher.help_text`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import cli, help_text

REPO = Path(__file__).resolve().parent.parent
DUMP = ("import atexit, json, sys\natexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "sys.argv = ['launch', *sys.argv[1:]]\nfrom launcher.cli import run_main\nrun_main()\n")


@pytest.mark.parametrize("args", cli.PRERENDERED, ids=lambda a: " ".join(a) or "no arguments")
def test_the_answer_is_clicks_own(args, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    stream, text, code = cli.prerendered(args)
    stdout, stderr, exit_code = help_text.render(args)
    assert (text, code) == ((stdout or stderr), exit_code), "run `python -m launcher.help_text` to regenerate"
    assert (stream is sys.stdout) == bool(stdout) and (stream is sys.stderr) == bool(stderr)


def test_other_command_lines_and_narrow_terminals_go_to_click(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    for args in [("list",), ("--help", "list"), ("run", "--help"), ("--debug",), ("-v", "--help")]:
        assert cli.prerendered(args) is None, args
    monkeypatch.setenv(cli.COMPLETE_VAR, "bash_complete")  # a shell completing: click's protocol
    assert cli.prerendered(()) is None
    monkeypatch.delenv(cli.COMPLETE_VAR)
    monkeypatch.setenv("COLUMNS", "60")  # click wraps its help to the terminal: let it
    assert cli.prerendered(("--help",)) is None


def _launch(columns: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": columns}
    return subprocess.run([sys.executable, "-c", DUMP, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)


def test_help_is_answered_without_click_and_narrow_help_by_click():
    wide = _launch("100", "--help")
    modules = json.loads(wide.stderr.splitlines()[-1])
    assert wide.returncode == 0 and wide.stdout == help_text.HELP
    assert "click" not in modules and "launcher.commands" not in modules
    narrow = _launch("60", "--help")
    assert narrow.returncode == 0 and "click" in json.loads(narrow.stderr.splitlines()[-1])
    assert narrow.stdout != help_text.HELP and "Usage: launch [OPTIONS] COMMAND [ARGS]..." in narrow.stdout


@pytest.mark.parametrize("columns", ["", "0", "abc", "79", "80", "200"])
def test_terminal_width_is_what_click_reads(columns, monkeypatch):
    import shutil

    monkeypatch.setenv("COLUMNS", columns)
    assert cli._terminal_columns() == shutil.get_terminal_size().columns


def test_a_bare_list_runs_with_clicks_own_defaults():
    """`launch list` skips click; the options it assumes are the ones click gives the command."""
    from launcher import commands

    assert commands.list_.make_context("list", []).params == cli.LIST_DEFAULTS


def test_a_bare_list_prints_what_the_click_command_prints(tmp_path):
    """The same table through both paths (the store's jobs, newest first), and an error said the same way."""
    from launcher.backend import JobState
    from launcher.store import JobRecord, Store

    home = tmp_path / "home"
    store = Store.open(home)
    for i in range(3):
        store.reserve(JobRecord(id=f"bert-2026010{i + 1}-000000-abc00{i}", name="bert", backend="sagemaker",
                                handle=None, spec={"name": "bert"}, state=JobState.SUCCEEDED, created_at=100.0 + i,
                                updated_at=100.0 + i))
    store.close()

    def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        full = {**os.environ, "LAUNCH_HOME": str(home), **(env or {})}
        return subprocess.run([sys.executable, "-c", DUMP, *args], env=full, cwd=REPO, capture_output=True,
                              text=True, timeout=60)

    fast, slow = launch("list"), launch("list", "-n", "50")  # any option goes through click
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout and "bert-20260103-000000-abc002" in fast.stdout
    assert "click" not in json.loads(fast.stderr.splitlines()[-1])
    assert "click" in json.loads(slow.stderr.splitlines()[-1])
    bad = {"LAUNCH_STORE_URL": "mysql://nowhere/db"}
    fast, slow = launch("list", env=bad), launch("list", "-n", "50", env=bad)
    assert fast.returncode == slow.returncode != 0
    assert fast.stderr.splitlines()[:-1] == slow.stderr.splitlines()[:-1]
