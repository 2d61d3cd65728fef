"""The slurm backend through a login node: `launch status` of a running job and `launch run` (submit), next to
the plain ssh commands a user would type (`ssh HOST squeue -j ID`, `ssh HOST sbatch ...`) over the same warm
connection.

Run by hand (not in CI), as root on a machine with Slurm and OpenSSH's sshd (Debian 12: slurmctld slurmd
slurm-client openssh-server):

    .venv/bin/python bench/slurm_submit.py [--quick]

A real Slurm on loopback (tests/fakes/slurm_cluster.py) and a throwaway sshd on 127.0.0.1 (tests/fakes/sshd.py,
its sessions pointed at the cluster by SLURM_CONF) play the cluster and its login node. One untimed round starts
the backend's ControlMaster; the baselines use the same ControlPath (ControlMaster=no), so both sides pay one
round trip on an open connection and the difference is launch's own work (Python start, the store, parsing).

Goal (issue 17): `launch status` of a running job through a warm login connection under 0.3 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import report
from timing import REPO, Case, Row, Section, clean_env, interleaved, launch_script

STATUS_BAR_S = 0.3
SUBMITTED = re.compile(r"submitted (\S+) to slurm")


def spec_text(name: str, run: str, login: str, ssh_config: Path, work_dir: Path) -> str:
    return (f"name: {name}\nrun: {run}\nbackends:\n  slurm:\n    login: {login}\n    ssh_config: {ssh_config}\n"
            f"    work_dir: {work_dir}\n    cancel_grace: 1s\n")


def measure(quick: bool) -> Section:
    sys.path.insert(0, str(REPO / "tests"))
    from fakes.slurm_cluster import SlurmCluster, slurm_available
    from fakes.sshd import SSHServer, sshd_available

    from backends.remote.transport import Host, SSHTransport

    sec = Section("Slurm through a login node (a real slurmctld + 2 slurmd and an sshd on 127.0.0.1)")
    if not (slurm_available() and sshd_available()):
        sec.notes.append("not measured: needs root, slurm-wlm (slurmctld slurmd slurm-client) and openssh-server")
        return sec
    runs = 3 if quick else 10
    launch = launch_script()
    with tempfile.TemporaryDirectory(prefix="launch-bench-slurm-") as tmp, \
            SlurmCluster(Path(tmp) / "cluster") as cluster, SSHServer(env=cluster.env) as srv:
        env = clean_env(LAUNCH_HOME=str(Path(tmp) / "home"))
        work = Path(srv.remote_root) / "launch"
        transport = SSHTransport(ssh_config=str(srv.ssh_config))  # as the backend builds it from the spec
        host = Host.parse(srv.host_spec)
        sleeper = Path(tmp) / "sleep.yaml"
        sleeper.write_text(spec_text("bench-status", "sleep 3600", srv.host_spec, srv.ssh_config, work))
        quick_job = Path(tmp) / "true.yaml"
        quick_job.write_text(spec_text("bench-submit", "echo ok", srv.host_spec, srv.ssh_config, work))
        try:
            done = subprocess.run([launch, "run", str(sleeper), "--backend", "slurm"], env=env, capture_output=True,
                                  text=True, timeout=120)
            found = SUBMITTED.search(done.stdout)
            if done.returncode != 0 or not found:
                raise RuntimeError(f"launch run exited {done.returncode}: {done.stderr}")
            job = found.group(1)
            slurm_id = (work / "jobs" / job / "slurm_id").read_text().split(";")[0].strip()
            control = ["-o", f"ControlPath={transport.control_path(host)}", "-o", "ControlMaster=no"]
            ssh = ["ssh", "-F", str(srv.ssh_config), *control, srv.alias]
            cases = [
                Case("launch status RUNNING_JOB", [launch, "status", job], env, drain=True),
                Case("ssh HOST squeue -j ID (warm)", [*ssh, "squeue", "-h", "-j", slurm_id], env, drain=True),
                Case("launch run --backend slurm", [launch, "run", str(quick_job), "--backend", "slurm"], env,
                     drain=True),
                Case("ssh HOST sbatch --wrap true (warm)",
                     [*ssh, "sbatch", "--parsable", "--output=/dev/null", "--wrap", "true"], env, drain=True),
            ]
            got = interleaved(cases, runs, warmups=1, rss_runs=0)
        finally:
            subprocess.run(["ssh", "-F", str(srv.ssh_config), "-o", f"ControlPath={transport.control_path(host)}",
                            "-O", "exit", srv.alias], capture_output=True, timeout=30)
    status = got["launch status RUNNING_JOB"]
    sec.rows.append(Row("status of a running slurm job (one ssh call)", "launch status RUNNING_JOB", status,
                        "ssh HOST squeue -j ID (warm)", got["ssh HOST squeue -j ID (warm)"], unit="ms",
                        goal=f"< {STATUS_BAR_S} s", met=status.median < STATUS_BAR_S))
    sec.rows.append(Row("submit a slurm job through the login node", "launch run --backend slurm",
                        got["launch run --backend slurm"], "ssh HOST sbatch --wrap true (warm)",
                        got["ssh HOST sbatch --wrap true (warm)"], unit="ms",
                        note="ours also copies bootstrap.sh, the commands and the env files, and records the job"))
    sec.notes.append(f"1 untimed round (starts the ControlMaster), then {runs} interleaved runs; status asks squeue, "
                     "and sacct/scontrol only once the job has ended, in one shell command on the login node")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer runs, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
