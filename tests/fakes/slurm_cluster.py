"""A real Slurm for tests: one `slurmctld` and two `slurmd` (nodes n1, n2) on loopback, in a temp dir.

    with SlurmCluster(tmp_path) as cluster:      # nodes idle when the block starts
        cluster.env                              # {"SLURM_CONF": ...}: what sbatch/squeue need
        cluster.run("squeue")                    # a client command against this cluster
        cluster.task_pids()                      # the job processes still running on its nodes

Needs Debian 12's slurm-wlm 22.05 (`slurmctld`, `slurmd`, `slurm-client`) and root (the daemons run as
root; `SlurmUser=root`). Nothing outside the temp dir is touched and no system file is edited, so two
pytest-xdist workers may each run their own cluster: every port is picked free at start, every path
(state, spool, pids, logs) is under the cluster's own dir, and the daemons find their config through
`SLURM_CONF`, never /etc/slurm.

Facts the config encodes (checked on this kind of machine, no systemd or cgroups):

- `SlurmctldHost` must be this machine's `hostname -s`; its address is given as 127.0.0.1.
- Two slurmd on one host: each node has its own `Port=` and `%n` in the spool, pid and log paths;
  `SlurmdParameters=config_overrides` because both report the same cores.
- The node names n1/n2 resolve nowhere: `NodeAddr=127.0.0.1` is how the controller and srun reach them
  (no /etc/hosts entry); jobs that need a node's address ask `scontrol show node` for its NodeAddr.
- `auth/none` + `cred/none` instead of munge; `proctrack/linuxproc`, `task/none`, `job_container/none`.
- No slurmdbd: `sacct` answers "accounting storage is disabled"; `sacct -c` reads the job-completion
  text file (`JobCompType=jobcomp/filetxt`), and `scontrol show job` keeps an ended job `MinJobAge`.
- `sched_interval=1`/`SchedulerType=sched/builtin`: a job starts within about a second.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

NODES = ("n1", "n2")
DAEMONS = ("slurmctld", "slurmd")


def slurm_available() -> bool:
    """True when slurmctld, slurmd and the client commands are installed and we are root."""
    return os.geteuid() == 0 and all(shutil.which(c) for c in ("slurmctld", "slurmd", "sbatch", "squeue"))


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports, held open together so no two are the same."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class SlurmCluster:
    """slurmctld + slurmd n1, n2 with a slurm.conf written at start (free ports, this host's name)."""

    def __init__(self, root: Path, *, cpus: int = 1, min_job_age: int = 300) -> None:
        self.root = Path(root)
        self.cpus = cpus
        self.min_job_age = min_job_age
        self.conf = self.root / "slurm.conf"
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _write_conf(self) -> None:
        host = socket.gethostname().split(".")[0]
        ctld, *node_ports = _free_ports(1 + len(NODES))
        r = self.root
        lines = [
            f"ClusterName=launch{os.getpid() % 100000}", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ctld}",
            "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/none", "CredType=cred/none",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool-%n",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={r}/slurmctld.log", f"SlurmdLogFile={r}/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobContainerType=job_container/none",
            "SlurmdParameters=config_overrides", "JobCompType=jobcomp/filetxt", f"JobCompLoc={r}/jobcomp.txt",
            "SchedulerType=sched/builtin", "SchedulerParameters=sched_interval=1", "SelectType=select/linear",
            "ReturnToService=2", "MpiDefault=none", "MessageTimeout=5", "KillWait=2", "InactiveLimit=0",
            f"MinJobAge={self.min_job_age}", "SlurmctldTimeout=10", "SlurmdTimeout=30",
        ]
        for name, port in zip(NODES, node_ports, strict=True):
            lines.append(f"NodeName={name} NodeAddr=127.0.0.1 NodeHostname={host} Port={port} CPUs={self.cpus} "
                         "RealMemory=1000 State=UNKNOWN")
        lines.append(f"PartitionName=debug Nodes={','.join(NODES)} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        self._write_conf()
        env = {**os.environ, **self.env}
        # -D: stay in the foreground (we own the process); -i: ignore state from an earlier run
        commands = [["slurmctld", "-D", "-i"], *(["slurmd", "-D", "-N", n] for n in NODES)]
        for command in commands:
            log = open(self.root / f"{command[0]}-{command[-1]}.out", "wb")  # noqa: SIM115 - the daemon keeps it
            self.procs.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                               start_new_session=True))
            log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: see {self.root}")
            done = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False)
            states = dict(line.split() for line in done.stdout.splitlines() if len(line.split()) == 2)
            if done.returncode == 0 and all(states.get(n) == "idle" for n in NODES):
                return
            time.sleep(0.2)
        raise RuntimeError(f"slurm nodes not idle after 30s: see {self.root}")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A client command (squeue, scontrol...) against this cluster."""
        return subprocess.run(command, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=30,
                              check=check)

    def task_pids(self) -> list[int]:
        """Live processes started by this cluster's daemons for jobs (slurmstepd and what it runs):
        found by the SLURM_CONF they inherit, so another cluster's jobs are not counted, and by being a
        slurmstepd or carrying SLURM_JOB_ID, so a client holding SLURM_CONF (sbatch's caller, the ssh
        ControlMaster a `launch` command left behind) is not taken for a job."""
        if not self.procs:
            return []
        mark = f"SLURM_CONF={self.conf}".encode()
        daemons = {p.pid for p in self.procs}
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in daemons or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, parent = stat[stat.rfind(")") + 2:].split()[:2]
            # slurmctld's own helper (slurmscriptd) is the controller, not a job
            in_job = stat[stat.find("(") + 1:stat.rfind(")")] == "slurmstepd" or any(
                variable.startswith(b"SLURM_JOB_ID=") for variable in environ)
            if mark in environ and in_job and state not in ("Z", "X") and int(parent) != self.procs[0].pid:
                found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """Cancel every job, stop the daemons, and kill any job process left (slurmstepd outlives slurmd)."""
        if self.procs and self.procs[0].poll() is None:
            self.run("scancel", "--user=root", check=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self.run("squeue", "-h", check=False).stdout.strip():
                time.sleep(0.2)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pid in self.task_pids():
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        self.procs.clear()
