"""Process identity that survives pid reuse: a pid plus its kernel start time.

A job's pid is read again from another shell hours later; by then the number may
belong to someone else, so liveness compares the start time recorded at launch.
"""

from __future__ import annotations

import os
from pathlib import Path


def start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (clock ticks since boot); None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parens; fields follow the last ')'.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def is_alive(pid: int, recorded_start: str | None) -> bool:
    """True while the process we started runs: not gone, not a zombie, not a reused pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we can know
    tail = stat[stat.rfind(")") + 2:].split()
    if tail and tail[0] in ("Z", "X"):
        return False
    return recorded_start is None or (len(tail) > 19 and tail[19] == recorded_start)


def signal_group(pgid: int, signum: int) -> bool:
    """Signal a whole process group; False when it no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True
