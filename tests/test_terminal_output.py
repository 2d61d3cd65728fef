"""On a terminal, tables fit its width and states are in colour (rich); into a pipe the
output stays plain, aligned text and rich is never imported. The terminal is a real pty
with its window size set, as a terminal emulator sets it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from launcher.backend import Handle, JobState, Status
from launcher.store import JobRecord, Store

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LONG = "the provider said something long about quota " * 4


def on_a_terminal(home: Path, *args: str, columns: int = 80, stream: str = "stdout") -> tuple[str, str]:
    """Run `launch ARGS` with `stream` on a pty `columns` wide; returns (what the terminal got, the other stream)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    env.update({"LAUNCH_HOME": str(home), "TERM": "xterm-256color"})
    streams = {"stdout": slave, "stderr": subprocess.PIPE} if stream == "stdout" else {
        "stdout": subprocess.PIPE, "stderr": slave}
    proc = subprocess.Popen([sys.executable, "-m", "launcher", *args], **streams, stdin=subprocess.DEVNULL, env=env,
                            cwd=REPO)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    other = (proc.stderr if stream == "stdout" else proc.stdout).read().decode()
    assert proc.wait(timeout=60) == 0, other
    return b"".join(chunks).decode().replace("\r\n", "\n"), other


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    store = Store.open(home)
    now = time.time()
    for i, state in enumerate([JobState.SUCCEEDED, JobState.FAILED]):
        job_id = f"bert-finetune-20260101-00000{i}-abc{i:03d}"
        store.reserve(JobRecord(id=job_id, name="bert-finetune", backend="sagemaker", handle=None, spec={},
                                state=JobState.PENDING, created_at=now - i, updated_at=now - i))
        store.set_handle(job_id, Handle("sagemaker", job_id, {"n": i}))
        store.set_status(job_id, Status(state, state.value.lower(), LONG))
    store.close()
    return home


def test_list_on_a_terminal_fits_and_colours_states(home: Path) -> None:
    shown, _ = on_a_terminal(home, "list", columns=80)
    lines = ANSI.sub("", shown).splitlines()
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert "bert-finetune-20260101-000000-abc000" in ANSI.sub("", shown)  # ids are never cut
    colour_of = {m.group(2): m.group(1) for m in re.finditer(r"\x1b\[([0-9;]+)m(SUCCEEDED|FAILED)", shown)}
    assert set(colour_of) == {"SUCCEEDED", "FAILED"} and colour_of["SUCCEEDED"] != colour_of["FAILED"]


def test_plan_on_a_narrow_terminal_wraps_only_the_note(home: Path, tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: p\nrun: x\nresources: {accelerators: 'H100:8', nodes: 2}\n")
    shown, _ = on_a_terminal(home, "plan", str(spec), "--no-live", columns=100)
    lines = ANSI.sub("", shown).splitlines()
    assert all(len(line) <= 100 for line in lines), lines
    assert any(line.startswith("vertex") and "a3-highgpu-8g x 2" in line for line in lines), lines


def test_status_on_a_terminal_colours_the_state(home: Path) -> None:
    shown, _ = on_a_terminal(home, "status", "bert-finetune-20260101-000000")
    assert re.search(r"\x1b\[[0-9;]*mstate:\s+SUCCEEDED", shown), shown


def test_into_a_pipe_the_output_is_plain_and_rich_is_never_loaded(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "modules.json"
    code = ("import atexit, json, sys\n"
            f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
            "sys.argv = ['launch', 'list']\nfrom launcher.cli import run_main\nrun_main()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60,
                            env={**os.environ, "LAUNCH_HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    header = result.stdout.splitlines()[0]
    assert header.split() == ["JOB", "BACKEND", "STATE", "CREATED", "MESSAGE"]
    assert LONG[:60].rstrip() in result.stdout  # one line per job, message cut at 60 characters as always
    assert not [m for m in json.loads(out.read_text()) if m == "rich" or m.startswith("rich.")]


def test_the_end_of_a_job_is_in_colour_on_a_terminal_stderr(home: Path) -> None:
    shown, stdout = on_a_terminal(home, "wait", "bert-finetune-20260101-000000", stream="stderr")
    assert re.search(r"\x1b\[[0-9;]*mjob bert-finetune-20260101-000000-abc000 SUCCEEDED", shown), shown
    assert "\x1b[" not in stdout
