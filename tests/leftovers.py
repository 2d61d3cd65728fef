"""What the suite leaves running, for the session-end check in tests/conftest.py.

Every process the suite starts carries the session's token in its environment: pytest sets it
before the first test, subprocesses inherit it, and the test sshd (tests/fakes/sshd.py) sets it
in every session it serves, so jobs started over ssh carry it too. A test that hands a process a
fresh environment is still caught when the process works in, or names, the suite's temp dir.

Under pytest-xdist each worker is a session of its own: its token is the controller's token plus
WORKER_SEP and its id, and its temp dir is the controller's plus popen-<id>, so a worker's check finds
its own processes and none of another worker's (those are still running their tests); the controller,
once its workers have exited, checks with `workers=True` for whatever any worker left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

MARKER = "LAUNCH_TEST_SESSION"
WORKER_SEP = "."  # between the controller's token and a worker's id (tokens hold no dot themselves)


def _ancestors() -> set[int]:
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rfind(")") + 2:].split()[1])
    return found


def _describe(proc: Path) -> str:
    with contextlib.suppress(OSError):
        args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        return args[:200] or f"[{(proc / 'comm').read_text().strip()}]"
    return "?"


def suite_processes(token: str, roots: list[str], *, workers: bool = False) -> dict[int, str]:
    """{pid: command line} of live processes of this user, besides this one and its ancestors,
    whose environment holds MARKER=token (or, with `workers`, the token of one of its xdist
    workers), or whose working dir, command line or environment names one of `roots`."""
    mark = f"{MARKER}={token}".encode()
    worker_mark = mark + WORKER_SEP.encode()
    names = [r.encode() for r in roots if r]
    skip = _ancestors()
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) in skip:
            continue
        try:
            if proc.stat().st_uid != os.getuid():
                continue
            stat = (proc / "stat").read_text()
            if stat[stat.rfind(")") + 2:].split()[0] in ("Z", "X"):
                continue
            environment = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
            try:
                cwd = os.readlink(proc / "cwd").encode() + b"/"  # roots end in a separator
            except OSError:
                cwd = b""
        except OSError:  # gone meanwhile, or not ours to read
            continue
        entries = environment.split(b"\0")
        marked = mark in entries or (workers and any(e.startswith(worker_mark) for e in entries))
        if marked or any(name in blob for name in names for blob in (environment, cmdline, cwd)):
            found[int(proc.name)] = _describe(proc)
    return found


def settle(token: str, roots: list[str], grace_s: float = 10.0, *, workers: bool = False) -> dict[int, str]:
    """Those still there after `grace_s` (processes told to stop a moment ago get time to go)."""
    deadline = time.monotonic() + grace_s
    while (left := suite_processes(token, roots, workers=workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def kill(pids: list[int]) -> None:
    """SIGKILL each, with its process group where it leads one (a detached job's other processes)."""
    own = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pid and pid != own:
                os.killpg(pid, signal.SIGKILL)
            os.kill(pid, signal.SIGKILL)
