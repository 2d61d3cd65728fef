"""Reading a local job's 1 GB log, against `cat` of the same file; and whether memory stays flat.

Run by hand (not in CI): .venv/bin/python bench/local_logs.py [--quick]

Two local jobs print training-style lines (~90 bytes each, `yes | head`, so the log is written at disk
speed and never held anywhere): a big one (1 GB, ~11.8M lines; --quick 200 MB) and one a quarter of its
size. A log this size makes the reading, not `launch`'s start-up, what is timed. Both have ended before
timing starts, so `launch logs -f` reads the whole log and returns: what a user sees who starts following
a job that has already written a lot. Every command's stdout is a pipe the benchmark reads and drops.
Peak RSS (GNU time) of `launch logs` and `launch logs -f` at both sizes says whether memory grows with the
log.

Goal (issues 10, 27): throughput >= 0.5x `cat` (time ratio <= 2) on a 1 GB log, with flat memory.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import report
from timing import Case, Row, Section, clean_env, interleaved, launch_script, memory_row

LINE = "step 000123 loss 0.123456 lr 0.000300 grad_norm 1.2345 tokens/s 123456.7 mem 12.3G rank 0 ok"
GOAL = 0.5


def run_job(launch: str, spec: Path, env: dict[str, str]) -> tuple[str, Path]:
    done = subprocess.run([launch, "run", str(spec), "--wait", "-o", "json"], env=env, capture_output=True,
                          text=True, timeout=900, check=True)
    record = json.loads(done.stdout)
    return record["id"], Path(record["handle"]["data"]["nodes"][0]["dir"]) / "log"


def newlines(chunks: Iterator[bytes]) -> int:
    """Lines in a stream of bytes, counted as they pass (a 1 GB log is never held whole)."""
    return sum(chunk.count(b"\n") for chunk in chunks)


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        yield from iter(lambda: file.read(1 << 20), b"")


def shown_lines(argv: list[str], env: dict[str, str]) -> int:
    """Lines `launch logs` prints, counted from its stdout as it streams."""
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    count = newlines(iter(lambda: proc.stdout.read(1 << 20), b""))
    if proc.wait(timeout=600):
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}")
    return count


def measure(quick: bool) -> Section:
    size_goal, runs = (200_000_000, 3) if quick else (1_000_000_000, 5)
    lines = size_goal // (len(LINE) + 1)
    launch = launch_script()
    sec = Section(f"Log follow, local job ({size_goal // 1_000_000:,} MB log)")
    with tempfile.TemporaryDirectory(prefix="launch-bench-logs-") as tmp:
        env = clean_env(LAUNCH_HOME=str(Path(tmp) / "home"))
        jobs = {}
        for label, count in (("big", lines), ("small", lines // 4)):
            spec = Path(tmp) / f"{label}.yaml"
            spec.write_text(f"name: logs-{label}\nrun: yes '{LINE}' | head -n {count}\n")
            jobs[label] = run_job(launch, spec, env)
        big_id, big_log = jobs["big"]
        small_id, _ = jobs["small"]
        size = big_log.stat().st_size
        cases = [
            Case("launch logs JOB", [launch, "logs", big_id], env, drain=True),
            Case("launch logs -f JOB", [launch, "logs", "-f", big_id], env, drain=True),
            Case("cat LOG", ["cat", str(big_log)], env, drain=True),
            Case("launch logs SMALL", [launch, "logs", small_id], env, drain=True),
            Case("launch logs -f SMALL", [launch, "logs", "-f", small_id], env, drain=True),
        ]
        in_file = newlines(file_chunks(big_log))  # the job's lines and the bootstrap's own two
        if (count := shown_lines(list(cases[0].argv), env)) != in_file:
            raise RuntimeError(f"launch logs showed {count} lines of the log's {in_file}")
        got = interleaved(cases, runs, warmups=1, rss_runs=1)
    cat = got["cat LOG"]
    mb = size / 1e6
    for ours in ("launch logs JOB", "launch logs -f JOB"):
        speed = cat.median / got[ours].median
        sec.rows.append(Row(f"read a {mb:.0f} MB / {lines:,}-line log", ours, got[ours], "cat LOG", cat, unit="s",
                            goal=f"throughput >= {GOAL}x cat (time ratio <= {1 / GOAL:.0f}x)", met=speed >= GOAL,
                            note=f"{mb / got[ours].median:.0f} MB/s vs {mb / cat.median:.0f} MB/s"))
    for ours in ("launch logs", "launch logs -f"):
        sec.rows.append(memory_row(ours, f"{lines:,} lines", got[ours + " JOB"], f"{lines // 4:,} lines",
                                   got[ours + " SMALL"]))
    sec.notes.append(f"both jobs have ended before timing (`-f` reads everything, then returns); 1 warm-up, "
                     f"then {runs} interleaved runs; every command's stdout is a pipe the benchmark drains (as "
                     "`| grep` would: `cat > /dev/null` alone skips the copy); RSS from one more run of each")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "a 200 MB log, fewer runs")


if __name__ == "__main__":
    sys.exit(main())
