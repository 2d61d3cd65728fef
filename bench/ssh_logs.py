"""`launch logs` of a 100 MB ssh job log, next to a plain `ssh host cat file`; and `launch status` of an ssh job.

Run by hand (not in CI), on a machine with OpenSSH's sshd and client:

    .venv/bin/python bench/ssh_logs.py [--quick] [--profile]

A throwaway sshd on 127.0.0.1 (tests/fakes/sshd.py) plays the host and a temporary LAUNCH_HOME holds the
store. Three jobs go through the real CLI (`launch run spec.yaml --backend ssh`): one writes a ~100 MB log
(`yes | head -c`, 101-byte lines; --quick: 20 MB) and one a quarter of that, both waited for; one sleeps,
so `launch status` of it really asks the host.

Every command runs as a fresh subprocess whose stdout is a pipe the benchmark drains, interleaved after
one untimed round, which also starts the backend's ControlMaster (/tmp/launch-ssh-<uid>/) and puts the
logs in the page cache. The baseline `ssh -F cfg ALIAS cat LOG` runs warm (over the same ControlPath the
backend uses, ControlMaster=no) and cold (ControlPath=none: a new connection per run). Peak RSS (GNU
time) of `launch logs` / `launch logs -f` at both log sizes says whether memory grows with the log.

Goals: `launch logs` throughput >= 0.5x the warm `ssh cat` of the same run, with flat memory (issue 10);
`launch status` of an ssh job under 0.3 s (issue 6).
"""

from __future__ import annotations

import argparse
import io
import json
import pstats
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import report
from timing import REPO, Case, Row, Section, clean_env, interleaved, launch_script, memory_row

STATUS_BAR_S = 0.3
THROUGHPUT_BAR = 0.5
SUBMITTED = re.compile(r"submitted (\S+) to ssh")


def spec_text(name: str, run: str, host_spec: str, ssh_config: Path, remote_root: Path) -> str:
    run_block = "".join(f"  {line}\n" for line in run.splitlines())
    return (f"name: {name}\nrun: |\n{run_block}backends:\n  ssh:\n    hosts: [{json.dumps(host_spec)}]\n"
            f"    ssh_config: {json.dumps(str(ssh_config))}\n    remote_root: {json.dumps(str(remote_root))}\n"
            f"    cancel_grace: 1s\n")


def submit(launch: str, spec: Path, env: dict[str, str], *extra: str, timeout: float = 600) -> str:
    done = subprocess.run([launch, "run", str(spec), "--backend", "ssh", *extra], env=env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    found = SUBMITTED.search(done.stdout)
    if done.returncode != 0 or not found:
        raise SystemExit(f"launch run {spec.name} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return found.group(1)


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


def stop_master(transport: Any, host: Any) -> None:
    """Close the backend's ControlMaster for this throwaway host (its socket would name a dead server)."""
    path = transport.control_path(host)
    if path.exists():
        subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={path}", "-O", "exit", "x"], capture_output=True,
                       timeout=10)
        path.unlink(missing_ok=True)


def measure(quick: bool, profile: bool = False) -> Section:
    size_mb, runs = (20, 3) if quick else (100, 5)
    sys.path[:0] = [str(REPO / "tests"), str(REPO)]
    from fakes.sshd import SSHServer, sshd_available

    from backends.remote.transport import Host, SSHTransport

    sec = Section(f"Log follow and status, ssh job ({size_mb} MB log, sshd on 127.0.0.1)")
    if not sshd_available():
        sec.notes.append("not measured: needs /usr/sbin/sshd, ssh and ssh-keygen (Debian: openssh-server "
                         "openssh-client)")
        return sec
    launch = launch_script()
    with tempfile.TemporaryDirectory(prefix="launch-bench-ssh-") as tmp, SSHServer() as srv:
        env = clean_env(LAUNCH_HOME=str(Path(tmp) / "home"))
        transport = SSHTransport(ssh_config=str(srv.ssh_config))  # as the backend builds it from the spec
        host = Host.parse(srv.host_spec)
        sleeper = None
        try:
            jobs = {}
            for label, mb in (("big", size_mb), ("small", size_mb / 4)):
                spec = Path(tmp) / f"{label}.yaml"
                spec.write_text(spec_text(f"bench-logs-{label}",
                                          f"yes \"$(printf '%0100d' 0)\" | head -c {int(mb * 1_000_000)}",
                                          srv.host_spec, srv.ssh_config, srv.remote_root))
                jobs[label] = submit(launch, spec, env, "--wait")
            sleep = Path(tmp) / "sleep.yaml"
            sleep.write_text(spec_text("bench-status", "sleep 3600", srv.host_spec, srv.ssh_config, srv.remote_root))
            sleeper = submit(launch, sleep, env)
            job = jobs["big"]
            log_path = srv.remote_root / "jobs" / job / "node-0" / "log"
            size = log_path.stat().st_size  # the "remote" is this machine's filesystem
            control = ["-o", f"ControlPath={transport.control_path(host)}", "-o", "ControlMaster=no"]
            warm = ["ssh", "-F", str(srv.ssh_config), *control, srv.alias, "cat", str(log_path)]
            cold = ["ssh", "-F", str(srv.ssh_config), "-o", "ControlPath=none", "-o", "ControlMaster=no",
                    srv.alias, "cat", str(log_path)]
            touch = ["ssh", "-F", str(srv.ssh_config), *control, srv.alias, "true"]
            cases = [
                Case("launch status RUNNING_JOB", [launch, "status", sleeper], env, drain=True),
                Case("ssh HOST true (warm)", touch, env, drain=True),
                Case("launch logs JOB", [launch, "logs", job], env, drain=True),
                Case("launch logs -f JOB", [launch, "logs", "-f", job], env, drain=True),
                Case("ssh HOST cat LOG (warm)", warm, env, drain=True),
                Case("ssh HOST cat LOG (cold)", cold, env, drain=True),
                Case("launch logs SMALL", [launch, "logs", jobs["small"]], env, drain=True),
                Case("launch logs -f SMALL", [launch, "logs", "-f", jobs["small"]], env, drain=True),
            ]
            count_output(cases[0].argv, env)  # starts the ControlMaster
            if not transport.control_path(host).exists():
                raise RuntimeError(f"no ControlMaster socket at {transport.control_path(host)} after `launch status`")
            _, shown_lines = count_output([launch, "logs", job], env)
            with log_path.open("rb") as f:
                log_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
            if shown_lines < log_lines:
                raise RuntimeError(f"launch logs showed {shown_lines} of {log_lines} lines")
            got = interleaved(cases, runs, warmups=1, rss_runs=1)
            if profile:
                sec.notes.append("cProfile of one `launch logs` (stdout to /dev/null):\n\n```\n"
                                 + profile_logs(job, env).strip() + "\n```")
        finally:
            if sleeper:
                subprocess.run([launch, "cancel", sleeper], env=env, capture_output=True, timeout=120)
            stop_master(transport, host)
    mb = size / 1e6
    warm_s = got["ssh HOST cat LOG (warm)"]
    for ours in ("launch logs JOB", "launch logs -f JOB"):
        speed = warm_s.median / got[ours].median
        sec.rows.append(Row(f"read a {mb:.0f} MB ssh log", ours, got[ours], "ssh HOST cat LOG (warm)", warm_s,
                            unit="s", goal=f"throughput >= {THROUGHPUT_BAR}x ssh cat (time ratio <= 2x)",
                            met=speed >= THROUGHPUT_BAR,
                            note=f"{mb / got[ours].median:.0f} MB/s vs {mb / warm_s.median:.0f} MB/s"))
    sec.rows.append(Row(f"read a {mb:.0f} MB ssh log", "launch logs JOB", got["launch logs JOB"],
                        "ssh HOST cat LOG (cold)", got["ssh HOST cat LOG (cold)"], unit="s",
                        note="baseline opens a new connection each run"))
    for ours in ("launch logs", "launch logs -f"):
        sec.rows.append(memory_row(ours, f"{mb:.0f} MB", got[ours + " JOB"], f"{mb / 4:.0f} MB", got[ours + " SMALL"]))
    status = got["launch status RUNNING_JOB"]
    sec.rows.append(Row("status of a running ssh job (one ssh call)", "launch status RUNNING_JOB", status,
                        "ssh HOST true (warm)", got["ssh HOST true (warm)"], unit="ms", goal=f"< {STATUS_BAR_S} s",
                        met=status.median < STATUS_BAR_S))
    sec.notes.append(f"log: {mb:.1f} MB, {log_lines:,} lines; 1 untimed round, then {runs} interleaved runs; "
                     "every stdout is a pipe the benchmark drains; RSS from one more run of each")
    return sec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 20 MB log, fewer runs")
    parser.add_argument("--profile", action="store_true", help="also cProfile one `launch logs` (top 20 cumtime)")
    args = parser.parse_args()
    print(report.section(measure(args.quick, args.profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
