"""The tools users would pick instead of `launch`, each in a throwaway virtualenv of its own.

Run by hand: `.venv/bin/python bench/peers.py` installs (or reuses) them and prints what it found.
The venvs live under /tmp/launch-bench-peers (override: LAUNCH_BENCH_PEERS) so a re-run of the
benchmark reuses them; each is built from the same interpreter as `launch`'s own venv, so start-up
times compare like with like. A peer that fails to install is reported, never fatal: its rows say so.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(os.environ.get("LAUNCH_BENCH_PEERS", "/tmp/launch-bench-peers"))
# name -> (pip requirement, console script)
PEERS = {
    "skypilot": ("skypilot", "sky"),
    "dstack": ("dstack", "dstack"),
    "torchx": ("torchx", "torchx"),
}
INSTALL_TIMEOUT_S = 1500


@dataclass(frozen=True)
class Peer:
    """One installed peer tool, or why it is missing (`error` set, `command` None)."""

    name: str
    command: Path | None
    version: str
    error: str = ""


def _base_python() -> str:
    """The interpreter the project's venv was made from (a venv of a venv would still work, but this is plainer)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base) if base.exists() else sys.executable


def _version(venv: Path, requirement: str) -> str:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "show", requirement], capture_output=True,
                          text=True, timeout=120)
    for line in done.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return "?"


def ensure(name: str, *, install: bool = True) -> Peer:
    """The peer's console script in its venv; installs it there first when missing (and `install`)."""
    requirement, script = PEERS[name]
    venv = ROOT / name
    command = venv / "bin" / script
    marker = venv / ".installed"
    if marker.exists() and command.exists():
        return Peer(name, command, marker.read_text().strip())
    if not install:
        return Peer(name, None, "", "not installed (run with --with-peers)")
    ROOT.mkdir(parents=True, exist_ok=True)
    log = ROOT / f"{name}.install.log"
    try:
        with log.open("w") as out:
            subprocess.run([_base_python(), "-m", "venv", "--clear", str(venv)], stdout=out, stderr=out, check=True,
                           timeout=300)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", requirement],
                           stdout=out, stderr=out, check=True, timeout=INSTALL_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return Peer(name, None, "", f"install failed ({type(exc).__name__}): {' / '.join(tail)[:300]}")
    if not command.exists():
        return Peer(name, None, "", f"installed, but no `{script}` console script in {venv / 'bin'}")
    version = _version(venv, requirement)
    marker.write_text(version + "\n")
    return Peer(name, command, version)


def main() -> int:
    for name in PEERS:
        peer = ensure(name)
        print(f"{name}: {peer.command or peer.error} {peer.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
