"""How fast does `launch` answer? Wall time of the commands people type most, with 1,000 jobs in the store.

Run by hand (not in CI), with the project's virtualenv:

    .venv/bin/python bench/cli_startup.py                 # 3 warm-ups + 20 timed runs per command
    .venv/bin/python bench/cli_startup.py --runs 50 --json /tmp/startup.json

Every command runs as a fresh subprocess through the venv's `launch` console script, the way a user
or CI runs it, against a temporary LAUNCH_HOME filled with 1,000 realistic job records. `python -c pass`
(same interpreter) is the floor: the ratio column says how much `launch` adds to a bare interpreter.
Peak RSS comes from GNU time (/usr/bin/time -f %M) where installed.
The last row lists a history where every job has ended, so `list` refreshes nothing.

Bars: `launch --help` and `launch list` each under 100 ms median. Exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BAR_MS = 100.0
BARRED = ("launch --help", "launch list")
JOBS = 1000

BACKENDS = {
    "local": lambda job_id, i: {"job_dir": f"/home/me/.local/state/launch/local/{job_id}", "submitted_at": 0.0,
                                "cancel_grace_s": 10.0, "nodes": [{"rank": 0, "pid": 41000 + i, "pgid": 41000 + i,
                                "start": None, "dir": f"/home/me/.local/state/launch/local/{job_id}/node-0"}]},
    "ssh": lambda job_id, i: {"hosts": ["gpu-01.internal", "gpu-02.internal"], "remote_dir": f"/scratch/{job_id}"},
    "sagemaker": lambda job_id, i: {
        "region": "us-east-1", "name": job_id[:63],
        "arn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{job_id[:63]}"},
    "vertex": lambda job_id, i: {
        "project": "my-proj", "region": "us-central1",
        "name": f"projects/123456789012/locations/us-central1/customJobs/{8_000_000_000 + i}"},
    "azureml": lambda job_id, i: {"subscription": "00000000-0000-0000-0000-000000000000", "resource_group": "ml",
                                   "workspace": "ws", "name": job_id},
}
NAMES = ("bert-finetune", "llama-8b-sft", "resnet50-imagenet", "whisper-small-ft", "gpt2-pretrain", "vit-b16",
         "quickstart")
MESSAGES = {
    "SUCCEEDED": "",
    "FAILED": "exit code 1: CUDA out of memory. Tried to allocate 2.00 GiB\nsee logs for the full traceback",
    "CANCELLED": "cancelled by user",
    "RUNNING": "",
    "PENDING": "waiting for capacity (ml.p5.48xlarge)",
}


def fill_store(home: Path, count: int, seed: int = 7, finished_only: bool = False) -> str:
    """Write `count` jobs through launcher.store; returns the id of a finished job for `launch status`.

    The mix is ~12% unfinished (running, pending), as in a history with a few live jobs; those are the
    ones `launch list` may refresh. `finished_only` gives a history where every job has ended."""
    from launcher.backend import Handle, JobState, Status
    from launcher.runner import new_job_id
    from launcher.store import JobRecord, Store

    rng = random.Random(seed)
    store = Store.open(home)
    now = time.time()
    finished = ""
    weights = [("SUCCEEDED", 60), ("FAILED", 20), ("CANCELLED", 8), ("RUNNING", 8), ("PENDING", 4)]
    states = [s for s, w in weights for _ in range(w) if not finished_only or s not in ("RUNNING", "PENDING")]
    for i in range(count):
        name = rng.choice(NAMES)
        backend = rng.choice(list(BACKENDS))
        created = now - 90 * 86400 * (count - i) / count
        job_id = new_job_id(name, created)
        nodes = rng.choice([1, 1, 1, 2, 4])
        spec = {
            "name": name, "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", "code": "./src",
            "setup": "pip install -r requirements.txt", "run": f"python train.py --epochs {rng.randint(1, 20)}",
            "env": {"WANDB_PROJECT": "demo"}, "secrets": ["WANDB_API_KEY"],
            "resources": {"accelerators": rng.choice(["H100:8", "A100-80GB:8", "L4", "T4:1"]), "nodes": nodes,
                          "cpus": 16, "memory_gb": 128, "disk_gb": 200},
            "distributed": "torchrun" if nodes > 1 else None, "spot": rng.random() < 0.3, "max_runtime": "24h",
            "backends": {backend: {"region": "us-east-1"}},
        }
        store.reserve(JobRecord(id=job_id, name=name, backend=backend, handle=None, spec=spec,
                                state=JobState.PENDING, message="submitting", created_at=created,
                                updated_at=created, idempotency_key=f"ci-{i}" if rng.random() < 0.4 else None))
        store.set_handle(job_id, Handle(backend, job_id, BACKENDS[backend](job_id, i), fast_status=backend == "local"))
        state = JobState(rng.choice(states))
        started = created + rng.uniform(5, 600)
        ended = started + rng.uniform(60, 36000) if state.is_terminal else None
        store.set_status(job_id, Status(state, state.value.title(), MESSAGES[state.value],
                                        exit_code={"SUCCEEDED": 0, "FAILED": 1}.get(state.value),
                                        started_at=started if state is not JobState.PENDING else None,
                                        ended_at=ended, url=f"https://console.example/{backend}/{job_id}"))
        if state is JobState.SUCCEEDED:
            finished = job_id
    store.close()
    assert finished, "no finished job generated"
    return finished


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and exit code of one run; output goes to /dev/null."""
    start = time.perf_counter()
    code = subprocess.call(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, code


def peak_rss_kib(argv: list[str], env: dict[str, str], tries: int = 3) -> int | None:
    """Peak RSS through /usr/bin/time -f %M. (wait4's ru_maxrss is no use here: after a vfork+exec
    it still counts the parent's pages, so every command reads as this script's own size.)"""
    gnu_time = Path("/usr/bin/time")
    if not gnu_time.exists():
        return None
    peaks = []
    with tempfile.NamedTemporaryFile("r") as out:
        for _ in range(tries):
            subprocess.run([str(gnu_time), "-f", "%M", "-o", out.name, *argv], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=True)
            out.seek(0)
            peaks.append(int(out.read().strip().splitlines()[-1]))
    return statistics.median_high(peaks)


def bench(cases: list[tuple[str, list[str], dict[str, str]]], runs: int, warmups: int) -> list[dict[str, Any]]:
    """Round-robin over the commands (one run of each per round), so a burst of noise on the machine
    spreads over all of them instead of skewing one."""
    checks = {}
    for label, argv, env in cases:
        check = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            raise SystemExit(f"{label} exited {check.returncode}:\n{check.stdout}\n{check.stderr}")
        checks[label] = check
    # the first runs may refresh stale unfinished jobs and write the store; time the steady state
    times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    for round_ in range(warmups + runs):
        for label, argv, env in cases:
            elapsed, code = run_once(argv, env)
            if code != 0:
                raise SystemExit(f"{label} exited {code} during timing")
            if round_ >= warmups:
                times[label].append(elapsed * 1000)
    results = []
    for label, argv, env in cases:
        t, check = times[label], checks[label]
        results.append({"command": label, "argv": argv, "median_ms": statistics.median(t), "min_ms": min(t),
                        "max_ms": max(t), "peak_rss_kib": peak_rss_kib(argv, env), "runs": runs, "samples_ms": t,
                        "stdout_lines": len(check.stdout.splitlines()),
                        "stderr_lines": len(check.stderr.splitlines())})
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command (default 20)")
    parser.add_argument("--warmups", type=int, default=3, help="untimed runs first (default 3)")
    parser.add_argument("--jobs", type=int, default=JOBS, help=f"jobs in the store (default {JOBS})")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    args = parser.parse_args()

    launch = Path(sys.executable).parent / "launch"
    if not launch.exists():
        found = shutil.which("launch")
        if not found:
            raise SystemExit(f"no `launch` console script next to {sys.executable}; pip install -e . first")
        launch = Path(found)

    with tempfile.TemporaryDirectory(prefix="launch-bench-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "LAUNCH_HOME": str(home)}
        for var in ("PYTHONPROFILEIMPORTTIME", "PYTHONDONTWRITEBYTECODE", "LAUNCH_BACKEND"):
            env.pop(var, None)
        os.environ["LAUNCH_HOME"] = str(home)
        fill_start = time.perf_counter()
        finished = fill_store(home, args.jobs)
        fill_s = time.perf_counter() - fill_start
        done_home = Path(tmp) / "home-finished"
        fill_store(done_home, args.jobs, finished_only=True)
        done_env = {**env, "LAUNCH_HOME": str(done_home)}

        launch_ = str(launch)
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], env),
            ("launch --help", [launch_, "--help"], env),
            ("launch list", [launch_, "list"], env),
            ("launch list -o json", [launch_, "list", "-o", "json"], env),
            (f"launch list --all ({args.jobs} rows)", [launch_, "list", "--all"], env),
            ("launch status <finished>", [launch_, "status", finished], env),
            ("launch --version", [launch_, "--version"], env),
            ("launch list (every job finished)", [launch_, "list"], done_env),
        ]
        results = bench(cases, args.runs, args.warmups)

    floor = results[0]["median_ms"]
    for r in results:
        r["ratio"] = r["median_ms"] / floor
    print(f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; {args.jobs} jobs in the store (filled in {fill_s:.1f}s); "
          f"{args.warmups} warm-ups + {args.runs} runs each\n")
    print("| command | median ms | min-max ms | x `python -c pass` | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        rss = f"{r['peak_rss_kib'] / 1024:.1f}" if r["peak_rss_kib"] else "n/a"
        print(f"| `{r['command']}` | {r['median_ms']:.1f} | {r['min_ms']:.1f}-{r['max_ms']:.1f} | "
              f"{r['ratio']:.2f} | {rss} |")
    warned = [r["command"] for r in results if r["stderr_lines"]]
    if warned:
        print(f"\nstderr was not empty for: {', '.join(warned)}")
    print()
    failed = []
    for r in results:
        if r["command"] in BARRED:
            ok = r["median_ms"] < BAR_MS
            failed += [] if ok else [r["command"]]
            print(f"bar: `{r['command']}` median {r['median_ms']:.1f} ms < {BAR_MS:.0f} ms: {'ok' if ok else 'MISSED'}")

    if args.json:
        args.json.write_text(json.dumps({
            "python": sys.version, "executable": sys.executable, "launch": str(launch), "machine": platform.machine(),
            "cpus": os.cpu_count(), "jobs": args.jobs, "runs": args.runs, "warmups": args.warmups,
            "bar_ms": BAR_MS, "bars_missed": failed, "results": results,
        }, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
