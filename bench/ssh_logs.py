"""How fast are `launch status` and `launch logs` for an ssh job, next to a plain `ssh host cat file`?

Run by hand (not in CI), with the project's virtualenv, on a machine with OpenSSH's sshd and client:

    .venv/bin/python bench/ssh_logs.py                      # 100 MB log, 5 interleaved runs of each command
    .venv/bin/python bench/ssh_logs.py --runs 9 --size-mb 200 --json /tmp/ssh_logs.json
    .venv/bin/python bench/ssh_logs.py --profile            # also: cProfile of one `launch logs` (top 20)

A throwaway sshd on 127.0.0.1 (tests/fakes/sshd.py) plays the host and a temporary LAUNCH_HOME holds the
store. Two jobs go through the real CLI (`launch run spec.yaml --backend ssh`): one writes a ~100 MB log
(`yes | head -c`, 101-byte lines) and is waited for; one sleeps, so `launch status` of it really asks the
host (the store answers a finished job's status without any ssh call: that row is shown too, for scale).

Every command runs as a fresh subprocess with stdout to /dev/null, round-robin (one run of each per round,
the order rotated each round) after one untimed run of each, which also starts the backend's ControlMaster
(/tmp/launch-ssh-<uid>/) and puts the log in the page cache. The baseline `ssh -F cfg ALIAS cat LOG` runs
warm (over the same ControlPath the backend uses, ControlMaster=no) and cold (ControlPath=none: a new
connection, key exchange and login per run). Peak RSS is GNU time's %M where /usr/bin/time exists.

Bars (issue 6): with a warm connection, `launch status` of an ssh job under 0.3 s median, and `launch logs`
of a 100 MB remote log at >= 50% of the throughput of the warm `ssh host cat file` of the same run.
Exits 1 if a bar is missed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STATUS_BAR_S = 0.3
THROUGHPUT_BAR = 0.5
SUBMITTED = re.compile(r"submitted (\S+) to ssh")
GNU_TIME = Path("/usr/bin/time")


def launch_script() -> Path:
    launch = Path(sys.executable).parent / "launch"
    if launch.exists():
        return launch
    found = shutil.which("launch")
    if not found:
        raise SystemExit(f"no `launch` console script next to {sys.executable}; pip install -e . first")
    return Path(found)


def spec_text(name: str, run: str, host_spec: str, ssh_config: Path, remote_root: Path) -> str:
    run_block = "".join(f"  {line}\n" for line in run.splitlines())
    return (f"name: {name}\nrun: |\n{run_block}backends:\n  ssh:\n    hosts: [{json.dumps(host_spec)}]\n"
            f"    ssh_config: {json.dumps(str(ssh_config))}\n    remote_root: {json.dumps(str(remote_root))}\n"
            f"    cancel_grace: 1s\n")


def submit(launch: Path, spec: Path, env: dict[str, str], *extra: str, timeout: float = 600) -> str:
    done = subprocess.run([str(launch), "run", str(spec), "--backend", "ssh", *extra], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    found = SUBMITTED.search(done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"launch run {spec.name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return found.group(1)


def run_timed(argv: list[str], env: dict[str, str], rss: bool) -> tuple[float, int | None]:
    """Wall seconds of one run (stdout to /dev/null) and its peak RSS in KiB (through GNU time, whose own
    fork+exec adds ~1 ms; wait4's ru_maxrss is no use after a vfork+exec: it counts the parent's pages)."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-rss-") as out:
        full = [str(GNU_TIME), "-f", "%M", "-o", out.name, *argv] if rss else argv
        start = time.perf_counter()
        done = subprocess.run(full, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, timeout=900)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr.decode(errors='replace')}")
        peak = None
        if rss:
            out.seek(0)
            lines = out.read().strip().splitlines()
            peak = int(lines[-1]) if lines and lines[-1].isdigit() else None
    return elapsed, peak


def count_output(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Bytes and newlines that a command writes (the untimed check run)."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None
    size = newlines = 0
    while chunk := proc.stdout.read(1 << 20):
        size += len(chunk)
        newlines += chunk.count(b"\n")
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{err.decode(errors='replace')}")
    return size, newlines


def profile_logs(job: str, env: dict[str, str], top: int = 20) -> str:
    """`python -m cProfile -m launcher logs JOB > /dev/null`, stats to a file, top N by cumtime and tottime."""
    with tempfile.TemporaryDirectory(prefix="bench-prof-") as tmp:
        prof = Path(tmp) / "logs.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "launcher", "logs", job],
                       env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, check=True,
                       timeout=1800)
        text = io.StringIO()
        stats = pstats.Stats(str(prof), stream=text).strip_dirs()
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(10)
    return text.getvalue()


def summarize(label: str, seconds: list[float], rss: list[int | None], size: int | None) -> dict[str, Any]:
    median = statistics.median(seconds)
    peaks = [p for p in rss if p is not None]
    return {"command": label, "runs": len(seconds), "samples_s": seconds, "median_s": median,
            "min_s": min(seconds), "max_s": max(seconds), "bytes": size,
            "mb_per_s": size / 1e6 / median if size else None,
            "peak_rss_kib": max(peaks) if peaks else None}


def stop_master(transport: Any, host: Any) -> None:
    """Close the backend's ControlMaster for this throwaway host (its socket would name a dead server)."""
    path = transport.control_path(host)
    if path.exists():
        subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "exit", "x"], capture_output=True,
                       timeout=10)
        path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument("--size-mb", type=int, default=100, help="size of the remote log in MB (default 100)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write the results here")
    parser.add_argument("--profile", action="store_true", help="also cProfile one `launch logs` (top 20 cumtime)")
    args = parser.parse_args()
    if args.runs < 1 or args.size_mb < 1:
        parser.error("--runs and --size-mb must be >= 1")

    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO))
    from fakes.sshd import SSHServer, sshd_available

    from backends.ssh_transport import Host, SSHTransport

    if not sshd_available():
        raise SystemExit("needs /usr/sbin/sshd, ssh and ssh-keygen (Debian: openssh-server openssh-client)")
    launch = launch_script()
    rss = GNU_TIME.exists()

    with tempfile.TemporaryDirectory(prefix="launch-bench-ssh-") as tmp, SSHServer() as srv:
        home = Path(tmp) / "home"
        env = {**os.environ, "LAUNCH_HOME": str(home)}
        for var in ("PYTHONPROFILEIMPORTTIME", "LAUNCH_BACKEND"):
            env.pop(var, None)
        transport = SSHTransport(ssh_config=str(srv.ssh_config))  # as the backend builds it from the spec
        host = Host.parse(srv.host_spec)
        sleeper = None
        try:
            big = Path(tmp) / "big.yaml"
            big.write_text(spec_text("bench-logs", f"yes \"$(printf '%0100d' 0)\" | head -c {args.size_mb}000000",
                                     srv.host_spec, srv.ssh_config, srv.remote_root))
            t0 = time.perf_counter()
            job = submit(launch, big, env, "--wait")
            submit_s = time.perf_counter() - t0
            sleep = Path(tmp) / "sleep.yaml"
            sleep.write_text(spec_text("bench-status", "sleep 3600", srv.host_spec, srv.ssh_config, srv.remote_root))
            sleeper = submit(launch, sleep, env)

            log_path = srv.remote_root / "jobs" / job / "node-0" / "log"
            size = log_path.stat().st_size  # the "remote" is this machine's filesystem
            with log_path.open("rb") as f:
                log_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            ls = str(launch)
            warm = ["ssh", "-F", str(srv.ssh_config), "-o", f"ControlPath={transport.control_path(host)}",
                    "-o", "ControlMaster=no", srv.alias, "cat", str(log_path)]
            cold = ["ssh", "-F", str(srv.ssh_config), "-o", "ControlPath=none", "-o", "ControlMaster=no",
                    srv.alias, "cat", str(log_path)]
            cases: list[tuple[str, list[str], int | None]] = [
                ("launch status <running job> (ssh call)", [ls, "status", sleeper], None),
                ("launch status <finished job> (store only)", [ls, "status", job], None),
                ("launch logs <job>", [ls, "logs", job], size),
                ("ssh cat <log> (warm ControlMaster)", warm, size),
                ("ssh cat <log> (cold connection)", cold, size),
            ]

            # untimed: starts the ControlMaster, fills the page cache, checks that logs shows every line
            count_output([ls, "status", sleeper], env)
            if not transport.control_path(host).exists():
                raise SystemExit(f"no ControlMaster socket at {transport.control_path(host)} after `launch status`")
            shown_bytes, shown_lines = count_output([ls, "logs", job], env)
            cat_bytes, _ = count_output(warm, env)
            if cat_bytes != size or shown_lines < log_lines:
                raise SystemExit(f"check failed: log {size} B / {log_lines} lines; cat gave {cat_bytes} B, "
                                 f"launch logs {shown_bytes} B / {shown_lines} lines")
            count_output(cold, env)
            count_output([ls, "status", job], env)

            times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
            peaks: dict[str, list[int | None]] = {label: [] for label, _, _ in cases}
            for round_ in range(args.runs):
                shift = round_ % len(cases)
                for label, argv, _ in cases[shift:] + cases[:shift]:
                    elapsed, peak = run_timed(argv, env, rss)
                    times[label].append(elapsed)
                    peaks[label].append(peak)
            results = [summarize(label, times[label], peaks[label], nbytes) for label, _, nbytes in cases]
            profile = profile_logs(job, env) if args.profile else None
        finally:
            if sleeper:
                subprocess.run([str(launch), "cancel", sleeper], env=env, capture_output=True, timeout=120)
            stop_master(transport, host)

    by = {r["command"]: r for r in results}
    status_r, logs_r = by[cases[0][0]], by[cases[2][0]]
    warm_r, cold_r = by[cases[3][0]], by[cases[4][0]]
    ratio_warm = logs_r["mb_per_s"] / warm_r["mb_per_s"]
    ratio_cold = logs_r["mb_per_s"] / cold_r["mb_per_s"]
    for r in results:
        r["ratio_vs_warm_cat"] = r["mb_per_s"] / warm_r["mb_per_s"] if r["mb_per_s"] else None

    print(f"{platform.python_implementation()} {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} CPUs; {platform.node()}; sshd on {srv.address} (loopback)")
    print(f"log: {size / 1e6:.1f} MB, {log_lines} lines ({log_path.name} of job {job}, submitted and run in "
          f"{submit_s:.1f}s); {args.runs} interleaved runs each after 1 untimed; stdout to /dev/null\n")
    print("| command | median s | min-max s | MB/s | throughput / warm cat | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        mbs = f"{r['mb_per_s']:.0f}" if r["mb_per_s"] else ""
        ratio = f"{r['ratio_vs_warm_cat']:.0%}" if r["ratio_vs_warm_cat"] else ""
        peak = f"{r['peak_rss_kib'] / 1024:.0f}" if r["peak_rss_kib"] else "n/a"
        print(f"| `{r['command']}` | {r['median_s']:.3f} | {r['min_s']:.3f}-{r['max_s']:.3f} | {mbs} | {ratio} "
              f"| {peak} |")
    print(f"\n`launch logs` vs cold `ssh cat`: {ratio_cold:.0%} of its throughput\n")

    status_ok = status_r["median_s"] < STATUS_BAR_S
    logs_ok = ratio_warm >= THROUGHPUT_BAR
    print(f"bar: `launch status` (ssh job, warm connection) median {status_r['median_s']:.3f} s < "
          f"{STATUS_BAR_S} s: {'ok' if status_ok else 'MISSED'}")
    print(f"bar: `launch logs` of {size / 1e6:.0f} MB at {logs_r['mb_per_s']:.0f} MB/s = {ratio_warm:.0%} of warm "
          f"`ssh cat` ({warm_r['mb_per_s']:.0f} MB/s) >= {THROUGHPUT_BAR:.0%}: {'ok' if logs_ok else 'MISSED'}")
    if not logs_ok and not profile:
        print("(rerun with --profile for where `launch logs` spends its time)")
    if profile:
        print("\ncProfile of one `launch logs` (stdout to /dev/null):\n")
        print(profile)

    if args.json:
        args.json.write_text(json.dumps({
            "python": sys.version, "executable": sys.executable, "launch": str(launch), "machine": platform.machine(),
            "cpus": os.cpu_count(), "runs": args.runs, "size_mb": args.size_mb, "log_bytes": size,
            "log_lines": log_lines, "job": job, "status_job": sleeper,
            "bars": {"status_s": STATUS_BAR_S, "status_ok": status_ok, "throughput_ratio": THROUGHPUT_BAR,
                     "logs_over_warm_cat": ratio_warm, "logs_over_cold_cat": ratio_cold, "logs_ok": logs_ok},
            "results": results, "profile": profile,
        }, indent=2))
    return 0 if status_ok and logs_ok else 1


if __name__ == "__main__":
    sys.exit(main())
