"""`launch logs -f` streams: its memory does not grow with the size of the log it follows
(a follow that starts on a big finished log once held all of it at once)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _peak_kib_following(cli, write_spec, launch_home, megabytes: int) -> int:
    line = "x" * 99
    spec = write_spec(f"name: big{megabytes}\nrun: python3 -c \"import sys; sys.stdout.write(('{line}' + chr(10)) * "
                      f"{megabytes * 10_000})\"\n", name=f"big{megabytes}.yaml")
    job = json.loads(cli("run", str(spec), "--wait", "-o", "json", check_rc=0).stdout)["id"]
    out = subprocess.run([sys.executable, "-c", MEASURE, sys.executable, "-m", "launcher", "logs", "-f", job],
                         env={**os.environ, "LAUNCH_HOME": str(launch_home)}, cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=True)
    return int(out.stdout.strip())


def test_follow_memory_is_flat_in_the_log_size(cli, write_spec, launch_home):
    small = _peak_kib_following(cli, write_spec, launch_home, 5)
    big = _peak_kib_following(cli, write_spec, launch_home, 80)
    assert big - small < 25 * 1024, f"peak RSS {small} KiB for 5 MB, {big} KiB for 80 MB"
