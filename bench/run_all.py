"""Run every benchmark and write BENCHMARKS.md at the repo root.

    .venv/bin/python bench/run_all.py [--with-peers] [--quick] [--only NAME ...] [--out PATH]

By hand only (nothing under tests/ or CI runs it). Each row is ours beside its baseline measured in
the same run (bench/timing.py interleaves them). A benchmark that cannot run (no sshd, a peer that
would not install) says so in its section; the others still run. --quick shrinks every benchmark to
check the harness in a minute or two: its numbers are not the published ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aihc_submit
import azure_openai_submit
import azureml_submit
import bundling
import cli_startup
import dry_run
import hf_jobs_submit
import kubernetes_submit
import lambda_submit
import local_logs
import pai_dlc_submit
import peers
import report
import sagemaker_submit
import shared_store
import slurm_submit
import ssh_logs
import sweep_submit
import tione_submit
import vertex_submit
from timing import REPO, Row, Section, Stats, load_average


def to_json(sections: list[Section], header: list[str]) -> str:
    return json.dumps({"header": header, "sections": [dataclasses.asdict(s) for s in sections]}, indent=1)


def from_json(text: str) -> tuple[list[Section], list[str]]:
    """Sections saved by an earlier run, to re-render BENCHMARKS.md (new notes) without measuring again."""
    data = json.loads(text)

    def stats(value: dict | None) -> Stats | None:
        return None if value is None else Stats(tuple(value["samples"]), value["peak_rss_kib"])

    sections = [Section(s["title"], [Row(**{**r, "ours_stats": stats(r["ours_stats"]),
                                            "baseline_stats": stats(r["baseline_stats"])}) for r in s["rows"]],
                        s["notes"]) for s in data["sections"]]
    return sections, data["header"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def submit_overhead(quick: bool) -> Section:
    """One section for every backend's submit overhead (each is its own script)."""
    sec = Section("Submit overhead: launcher vs a plain SDK script doing the same calls")
    parts: list[tuple[str, Callable[[], Section]]] = [
        ("SageMaker", lambda: sagemaker_submit.measure(quick)[0]),
        ("Vertex AI", lambda: vertex_submit.measure(quick)),
        ("Azure ML", lambda: azureml_submit.measure(quick)),
        ("Lambda Cloud", lambda: lambda_submit.measure(quick)),
        ("Hugging Face Jobs", lambda: hf_jobs_submit.measure(quick)),
        ("PAI-DLC", lambda: pai_dlc_submit.measure(quick)),
        ("Kubernetes", lambda: kubernetes_submit.measure(quick)),
        ("TI-ONE", lambda: tione_submit.measure(quick)),
        ("AIHC", lambda: aihc_submit.measure(quick)),
        ("Azure OpenAI", lambda: azure_openai_submit.measure(quick)),
    ]
    for name, run in parts:
        try:
            part = run()
        except Exception as exc:  # one backend's failure leaves the others' rows
            sec.notes.append(f"{name}: not measured: {type(exc).__name__}: {exc}")
            continue
        sec.rows += part.rows
        sec.notes += part.notes
    return sec


BENCHMARKS: dict[str, Callable[[bool, dict[str, peers.Peer]], Section]] = {
    "startup": lambda quick, found: cli_startup.measure(quick, found),
    "dry_run": lambda quick, _: dry_run.measure(quick),
    "submit": lambda quick, _: submit_overhead(quick),
    "sweep": lambda quick, _: sweep_submit.measure(quick),
    "bundling": lambda quick, _: bundling.measure(quick),
    "local_logs": lambda quick, _: local_logs.measure(quick),
    "ssh_logs": lambda quick, _: ssh_logs.measure(quick),
    "slurm": lambda quick, _: slurm_submit.measure(quick),
    "shared_store": lambda quick, _: shared_store.measure(quick),
}


def goals(sections: list[Section]) -> list[Row]:
    return [row for sec in sections for row in sec.rows if row.met is not None]


def render(sections: list[Section], header: list[str], extra: str) -> str:
    rows = goals(sections)
    summary = ["| goal | row | ours | baseline | ratio | result |", "|---|---|---:|---:|---:|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "n/a"
        summary.append(f"| {row.goal} | {row.what}: `{row.ours}` vs `{row.baseline}` | "
                       f"{report.value(row.ours_stats, row.unit)} | {report.value(row.baseline_stats, row.unit)} | "
                       f"{ratio} | {'met' if row.met else '**missed**'} |")
    met = sum(1 for r in rows if r.met)
    body = [
        "# Benchmarks",
        "",
        "`launch` next to what users would use instead: a bare interpreter, the provider SDKs called directly, "
        "SkyPilot, dstack and TorchX, `tar czf`, `cat` and `ssh cat`. Every row measures ours and its baseline "
        "in the same run, interleaved round by round. Ratio = our median / the baseline's median (for times: "
        "below 1 means we are faster). Written by `bench/run_all.py`; do not edit by hand.",
        "",
        *header,
        "",
        f"## Goals: {met} of {len(rows)} met",
        "",
        *summary,
        "",
        *(report.section(sec) for sec in sections),
        extra,
    ]
    return "\n".join(body).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--with-peers", action="store_true",
                        help="install (or reuse, under /tmp/launch-bench-peers) SkyPilot, dstack, TorchX and time them")
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs: checks the harness")
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), default=None, help="run only these")
    parser.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md", help="where to write (BENCHMARKS.md)")
    parser.add_argument("--notes", type=Path, default=Path(__file__).with_name("NOTES.md"),
                        help="Markdown appended after the tables (findings, what is not measured yet)")
    parser.add_argument("--json", type=Path, default=None, help="also save the measurements here")
    parser.add_argument("--render", type=Path, default=None, metavar="JSON",
                        help="measure nothing: write BENCHMARKS.md from a --json of an earlier run (new notes)")
    args = parser.parse_args()
    extra = args.notes.read_text() if args.notes.exists() else ""
    if args.render:
        sections, header = from_json(args.render.read_text())
        args.out.write_text(render(sections, header, extra))
        print(f"wrote {args.out} from {args.render}", file=sys.stderr)
        return 0

    started = datetime.now(UTC)
    load_start = load_average()
    t0 = time.perf_counter()
    found = {name: peers.ensure(name) for name in peers.PEERS} if args.with_peers else {}
    sections = []
    for name in args.only or BENCHMARKS:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {name} ...", file=sys.stderr, flush=True)
        try:
            sections.append(BENCHMARKS[name](args.quick, found))
        except (Exception, SystemExit) as exc:
            traceback.print_exc()
            sections.append(report.failed(name, exc))
        print(report.section(sections[-1]), file=sys.stderr, flush=True)
    load_end = load_average()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip()
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/run_all.py", *sys.argv[1:]])
    header = [
        f"- date: {started:%Y-%m-%d %H:%M} UTC; took {(time.perf_counter() - t0) / 60:.1f} min; commit {commit}"
        + (" (QUICK run: small sizes, few runs; not the published numbers)" if args.quick else ""),
        f"- machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()} ({_shown_path(Path(sys.executable))})",
        f"- load average (1 / 5 / 15 min) at start: {load_start}; at end: {load_end}"
        " (a shared machine: other processes ran during the benchmark)",
        f"- command: `{command}`",
    ]
    if args.json:
        args.json.write_text(to_json(sections, header))
    args.out.write_text(render(sections, header, extra))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0



def _shown_path(path: Path) -> str:
    """A path as the report shows it: relative to the checkout when inside it, so a published report
    names no directory of the machine it ran on."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return path.name


if __name__ == "__main__":
    sys.exit(main())
