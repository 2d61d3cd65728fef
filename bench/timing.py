"""The one way the benchmarks time things, and the row every one of them reports.

Commands run as fresh subprocesses (stdout to /dev/null unless asked), interleaved with their
baseline round by round so a burst of load on a shared machine lands on both sides of a ratio
instead of skewing one. Peak RSS comes from GNU time (/usr/bin/time -f %M): wait4's ru_maxrss
is no use after Python's vfork+exec, where it still counts the parent's pages.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GNU_TIME = Path("/usr/bin/time")


@dataclass(frozen=True)
class Stats:
    """Samples of one measured thing (seconds, or any unit the caller says), and peak RSS if taken."""

    samples: tuple[float, ...]
    peak_rss_kib: int | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def runs(self) -> int:
        return len(self.samples)


@dataclass
class Row:
    """One line of BENCHMARKS.md: ours beside its baseline, measured in the same run.

    `ratio` is ours / baseline of the medians (times: lower is better for us). `goal` is the
    bar in words and `met` whether this run met it (None: no goal on this row)."""

    what: str
    ours: str
    ours_stats: Stats | None
    baseline: str
    baseline_stats: Stats | None
    unit: str = "ms"
    goal: str = ""
    met: bool | None = None
    note: str = ""
    ratio_override: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.ratio_override is not None:
            return self.ratio_override
        if not self.ours_stats or not self.baseline_stats or not self.baseline_stats.median:
            return None
        return self.ours_stats.median / self.baseline_stats.median


@dataclass
class Section:
    """A benchmark's rows plus what a reader needs to trust them (setup, caveats, profiles)."""

    title: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """A command to time: a label, its argv, and the environment it runs in."""

    label: str
    argv: Sequence[str]
    env: dict[str, str] | None = None
    cwd: str | None = None
    timeout: float = 900
    drain: bool = False  # stdout into a pipe this process reads (as `| grep` would) instead of /dev/null


FLAT_MIB = 8  # peak RSS may differ by allocator noise between log sizes, not by anything like the log's size


def memory_row(ours: str, big_label: str, big: Stats, small_label: str, small: Stats) -> Row:
    """Peak RSS of one command on a log 4x the size of another: flat means it does not grow with the log."""
    met = None
    if big.peak_rss_kib and small.peak_rss_kib:
        met = (big.peak_rss_kib - small.peak_rss_kib) / 1024 < FLAT_MIB
    return Row("peak RSS: 4x the log", f"{ours} ({big_label})", Stats((float(big.peak_rss_kib or 0),)),
               f"{ours} ({small_label})", Stats((float(small.peak_rss_kib or 0),)), unit="KiB",
               goal=f"flat (grows < {FLAT_MIB} MiB)", met=met)


def launch_script() -> str:
    """The `launch` console script of the interpreter running the benchmark (the project's venv)."""
    launch = Path(sys.executable).parent / "launch"
    if launch.exists():
        return str(launch)
    found = shutil.which("launch")
    if not found:
        raise SystemExit(f"no `launch` console script next to {sys.executable}; pip install -e . first")
    return found


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without what would change what `launch` does or how Python starts."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "LAUNCH_BACKEND", "PYTHONPATH")
           and not k.startswith(("GITHUB_", "GITLAB_", "CI_"))}
    env.pop("CI", None)
    env.update(extra)
    return env


def run_once(case: Case, *, rss: bool = False) -> tuple[float, int | None]:
    """Wall seconds of one run of `case` and, with `rss`, its peak RSS in KiB. A non-zero exit
    is an error: a benchmark of a command that failed measures nothing."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as out, tempfile.TemporaryFile() as err:
        use_time = rss and GNU_TIME.exists()
        argv = [str(GNU_TIME), "-f", "%M", "-o", out.name, *case.argv] if use_time else list(case.argv)
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=case.env, cwd=case.cwd, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE if case.drain else subprocess.DEVNULL, stderr=err)
        # Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which would land in every sample:
        # wait blocking, and let a timer kill a command that hangs
        killer = threading.Timer(case.timeout, proc.kill)
        killer.start()
        try:
            if proc.stdout is not None:
                sink = bytearray(1 << 20)
                while proc.stdout.readinto(sink):
                    pass
                proc.stdout.close()
            proc.wait()
        finally:
            killer.cancel()
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{case.label} exited {proc.returncode}: "
                               f"{err.read().decode(errors='replace').strip()[-500:]}")
        peak = None
        if use_time:
            out.seek(0)
            lines = out.read().strip().splitlines()
            peak = int(lines[-1]) if lines and lines[-1].isdigit() else None
    return elapsed, peak


def interleaved(cases: Sequence[Case], runs: int, warmups: int = 1, *, rss_runs: int = 2) -> dict[str, Stats]:
    """Time every case `runs` times, one run of each per round with the order rotated every round,
    after `warmups` untimed rounds (page cache, .pyc files, connections). Peak RSS is taken in
    `rss_runs` extra rounds through GNU time (the highest seen), so its own fork+exec never
    lands in a timed sample."""
    samples: dict[str, list[float]] = {c.label: [] for c in cases}
    peaks: dict[str, list[int]] = {c.label: [] for c in cases}
    for round_ in range(warmups + runs + rss_runs):
        shift = round_ % len(cases)
        timed = warmups <= round_ < warmups + runs
        for case in list(cases[shift:]) + list(cases[:shift]):
            elapsed, peak = run_once(case, rss=round_ >= warmups + runs)
            if timed:
                samples[case.label].append(elapsed)
            if peak is not None:
                peaks[case.label].append(peak)
    return {label: Stats(tuple(s), max(peaks[label]) if peaks[label] else None) for label, s in samples.items()}


def interleaved_calls(prepare: dict[str, Callable[[], Callable[[], object]]], runs: int,
                      warmups: int = 1) -> dict[str, Stats]:
    """As `interleaved`, for in-process work (seconds per call): each round, `prepare[label]()` builds
    the call outside the clock (a payload, a fresh id), then only the call itself is timed."""
    samples: dict[str, list[float]] = {label: [] for label in prepare}
    labels = list(prepare)
    for round_ in range(warmups + runs):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            call = prepare[label]()
            start = time.perf_counter()
            call()
            if round_ >= warmups:
                samples[label].append(time.perf_counter() - start)
    return {label: Stats(tuple(s)) for label, s in samples.items()}


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"
