"""Submitting a 100-job sweep at once, against submitting the same jobs one `launch run` at a time.

Run by hand (not in CI): .venv/bin/python bench/sweep_submit.py [--quick]

Local backend, a job that ends at once (`run: true`), so the time is the launcher's own. Ours is
`launch run spec --sweep i=1,...,100 --max-parallel 16`: at most 16 of the sweep's jobs unfinished
at once, submitted concurrently, the next ones as earlier ones end (the sweep polls every
second, so most of its time is those polls). The baseline is what a user's shell loop does:
100 `launch run spec --set env.I=i` calls in sequence. Also shown: the sweep without a bound.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from pathlib import Path

import report
from timing import Case, Row, Section, clean_env, interleaved, launch_script

SPEC = "name: sweep-bench\nrun: 'true'\n"


def measure(quick: bool) -> Section:
    jobs, runs = (20, 1) if quick else (100, 3)
    launch = launch_script()
    values = ",".join(str(i) for i in range(1, jobs + 1))
    with tempfile.TemporaryDirectory(prefix="launch-bench-sweep-") as tmp:
        spec = Path(tmp) / "sweep.yaml"
        spec.write_text(SPEC)

        def home(name: str) -> dict[str, str]:
            return clean_env(LAUNCH_HOME=str(Path(tmp) / name))

        loop = (f"for i in $(seq 1 {jobs}); do {shlex.quote(launch)} run {shlex.quote(str(spec))} --set env.I=$i "
                "> /dev/null || exit 1; done")
        bounded = f"launch run --sweep i=1..{jobs} --max-parallel 16"
        unbounded = f"launch run --sweep i=1..{jobs}"
        sequential = f"{jobs} x launch run (shell loop)"
        cases = [
            Case(bounded, [launch, "run", str(spec), "--sweep", f"i={values}", "--max-parallel", "16"],
                 home("bounded"), cwd=tmp),
            Case(unbounded, [launch, "run", str(spec), "--sweep", f"i={values}"], home("unbounded"), cwd=tmp),
            Case(sequential, ["sh", "-c", loop], home("sequential"), cwd=tmp),
        ]
        got = interleaved(cases, runs, warmups=0, rss_runs=0)
    sec = Section(f"Sweep submission, {jobs} jobs (local backend)")
    sec.rows += [
        Row(f"{jobs} jobs, <= 16 unfinished at once", bounded, got[bounded], sequential, got[sequential], unit="s"),
        Row(f"{jobs} jobs, no bound (16 submit threads)", unbounded, got[unbounded], sequential, got[sequential],
            unit="s"),
    ]
    sec.notes.append(f"`run: true` on the local backend; {runs} interleaved runs each, no warm-up; the sweep returns "
                     "once every job is submitted (no --wait). With --max-parallel 16 the last jobs wait for "
                     "earlier ones to end, found by the sweep's 1 s status poll (launcher/sweep.py POLL_S).")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "20 jobs, one run each")


if __name__ == "__main__":
    sys.exit(main())
