"""The slurm backend against a real Slurm (slurmctld + slurmd n1, n2 on loopback, tests/fakes/slurm_cluster.py),
through the real CLI: sbatch on this machine (SLURM_CONF), and through a login node (the tests' sshd).

Jobs' files go to a throwaway `work_dir` every "node" sees (one machine). The cluster is started once for the
module and stopped at its end, with every job process it started."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import pytest
from fakes.slurm_cluster import SlurmCluster, slurm_available
from helpers import job_script

SUBMITTED = re.compile(r"submitted (\S+) to slurm")
VENV_BIN = str(Path(sys.executable).parent)
CANARY = "canary-secret-5b1d9e"

pytestmark = pytest.mark.skipif(not slurm_available(), reason="needs root and slurm-wlm (ci/test installs it)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SlurmCluster(tmp_path_factory.mktemp("slurm")) as running:
        yield running


@pytest.fixture
def slurm(cluster, cli, write_spec, tmp_path):
    work = tmp_path / "work"

    class Helper:
        work_dir = work
        env: ClassVar[dict[str, str]] = {**cluster.env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}

        @staticmethod
        def spec(body: str, extra: str = "") -> Path:
            return write_spec(f"{body}backends:\n  slurm:\n    work_dir: {work}\n    cancel_grace: 2s\n{extra}")

        @staticmethod
        def run(*args: str, check_rc: int | None = None, env: dict[str, str] | None = None, **kw):
            return cli(*args, check_rc=check_rc, env={**Helper.env, **(env or {})}, **kw)

        @staticmethod
        def submit(spec: Path, *extra: str, env: dict[str, str] | None = None) -> str:
            out = Helper.run("run", str(spec), "--backend", "slurm", *extra, check_rc=0, env=env).stdout
            return SUBMITTED.search(out).group(1)

        @staticmethod
        def status(job: str) -> dict:
            return json.loads(Helper.run("status", job, "-o", "json", check_rc=0).stdout)

        @staticmethod
        def until(job: str, check, timeout: float = 60) -> dict:
            deadline = time.monotonic() + timeout
            while True:
                record = Helper.status(job)
                if check(record):
                    return record
                assert time.monotonic() < deadline, f"gave up waiting on {job}: {record}"
                time.sleep(0.2)

        @staticmethod
        def ended(job: str, timeout: float = 60) -> dict:
            return Helper.until(job, lambda r: r["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"), timeout)

    return Helper


def test_dry_run_prints_the_batch_script_and_submits_nothing(slurm, cluster):
    spec = slurm.spec("name: dry\nrun: echo hi\nresources:\n  nodes: 2\n  accelerators: A100:4\n  cpus: 8\n"
                      "max_runtime: 90s\nretries: 1\nsecrets: [TOKEN]\n",
                      "    partition: gpu\n    qos: high\n    sbatch_args: [--exclusive]\n")
    out = slurm.run("run", str(spec), "--backend", "slurm", "--dry-run", check_rc=0,
                    env={"TOKEN": CANARY}).stdout
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=3", "#SBATCH --requeue", "#SBATCH --partition=gpu",
                 "#SBATCH --qos=high", "srun --nodes=2 --ntasks-per-node=1 --kill-on-bad-exit=1", "--exclusive"):
        assert line in out, line
    assert CANARY not in out
    assert out.splitlines()[3] == "#!/bin/sh"  # the script as sbatch reads it, under the three-line header
    assert "sbatch --parsable" in out.splitlines()[1]
    assert cluster.run("squeue", "-h").stdout.strip() == ""
    assert not slurm.work_dir.exists()


def test_two_node_torchrun_allreduce_and_secret_never_leaks(slurm, cluster, tmp_path):
    code = tmp_path / "src"
    code.mkdir()
    job_script("allreduce.py", code)
    spec = slurm.spec("name: allreduce\ncode: ./src\nresources:\n  nodes: 2\ndistributed: torchrun\n"
                      "secrets: [TOKEN]\nenv:\n  GLOO_SOCKET_IFNAME: lo\n"
                      "run: 'echo token-$(printf %s \"$TOKEN\" | md5sum | cut -c1-12); python allreduce.py'\n")
    watcher = subprocess.Popen(["sh", "-c", "while :; do ps -eo args; sleep 0.05; done"], stdout=subprocess.PIPE)
    try:
        job = slurm.submit(spec, "--follow", env={"TOKEN": CANARY})
        record = slurm.ended(job)
    finally:
        watcher.kill()
        seen = watcher.communicate()[0].decode(errors="replace")
    assert record["state"] == "SUCCEEDED", record
    job_dir = slurm.work_dir / "jobs" / job
    logs = [(job_dir / f"node-{r}.log").read_text() for r in (0, 1)]
    for rank, log in enumerate(logs):
        assert f"allreduce ok sum=3 rank={rank} node={rank}" in log, log
        assert f"token-{hashlib.md5(CANARY.encode()).hexdigest()[:12]}" in log  # the node got the secret
    assert "master=127.0.0.1" in logs[1]  # the first node's NodeAddr, not its unresolvable name
    merged = slurm.run("logs", job, check_rc=0).stdout
    assert "allreduce ok sum=3 rank=0" in merged and "allreduce ok sum=3 rank=1" in merged
    second = slurm.run("logs", job, "--node", "1", check_rc=0).stdout
    assert "allreduce ok sum=3 rank=1" in second and "rank=0" not in second
    # the secret: in no process's arguments, no file the job left, not the store, not the batch script
    assert CANARY not in seen
    assert not (job_dir / "secrets.env").exists()
    # ...nor Slurm's own state, spool and logs (sbatch would hand its whole environment to slurmctld)
    for path in [*job_dir.rglob("*"), *Path(os.environ["LAUNCH_HOME"]).rglob("*"), *cluster.root.rglob("*")]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    shown = cluster.run("scontrol", "show", "job", record["handle"]["data"]["slurm_id"], check=False).stdout
    assert CANARY not in shown


def test_failing_node_fails_the_job_with_its_code(slurm):
    spec = slurm.spec("name: fails\nresources:\n  nodes: 2\n"
                      "run: 'echo about to fail; [ \"$LAUNCH_NODE_RANK\" = 1 ] && exit 7; sleep 30'\n")
    job = slurm.submit(spec)
    record = slurm.ended(job)
    assert record["state"] == "FAILED" and record["exit_code"] == 7, record
    assert "node 1 exited with code 7" in record["message"]


def test_a_batch_script_that_fails_before_the_nodes_says_why(slurm):
    """container: pyxis on a cluster without pyxis: srun refuses --container-image, no node runs, and the
    status carries srun's own words from the batch log."""
    spec = slurm.spec("name: nopyxis\nimage: ubuntu:24.04\nrun: echo never\n", "    container: pyxis\n")
    record = slurm.ended(slurm.submit(spec))
    assert record["state"] == "FAILED" and "container-image" in record["message"], record


def test_max_runtime_fails_the_job_with_that_reason(slurm):
    spec = slurm.spec("name: slow\nmax_runtime: 2s\nrun: echo started; sleep 60\n")
    job = slurm.submit(spec)
    record = slurm.ended(job, timeout=30)
    assert record["state"] == "FAILED" and "max_runtime" in record["message"], record


def test_more_nodes_than_the_cluster_has_pends_with_slurms_reason(slurm):
    """Slurm takes the job and holds it (PartitionConfig): status says so in words, and cancel ends it."""
    spec = slurm.spec("name: toobig\nresources:\n  nodes: 3\nrun: echo never\n")
    job = slurm.submit(spec)
    record = slurm.until(job, lambda r: r["raw_state"] == "PENDING" and "PartitionConfig" in r["message"], 15)
    assert record["state"] == "PENDING" and "resources.nodes" in record["message"], record
    slurm.run("cancel", job, check_rc=0)
    assert slurm.status(job)["state"] == "CANCELLED"


def test_cancel_stops_every_task_on_both_nodes(slurm, cluster):
    spec = slurm.spec("name: longrun\nresources:\n  nodes: 2\nrun: echo up-$LAUNCH_NODE_RANK; sleep 300\n")
    job = slurm.submit(spec)
    logs = slurm.work_dir / "jobs" / job
    deadline = time.monotonic() + 30
    while not all((logs / f"node-{r}.log").exists() and "up-" in (logs / f"node-{r}.log").read_text()
                  for r in (0, 1)):
        assert time.monotonic() < deadline, "the job never started on both nodes"
        time.sleep(0.1)
    slurm.run("cancel", job, check_rc=0)
    assert slurm.status(job)["state"] == "CANCELLED"
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes() for pid in cluster.task_pids()}
    assert left == {}
    slurm.run("cancel", job, check_rc=0)  # again: still fine, still cancelled
    assert slurm.status(job)["state"] == "CANCELLED"


def test_logs_follow_prints_every_line_until_the_end(slurm):
    spec = slurm.spec("name: follow\nresources:\n  nodes: 2\n"
                      "run: 'for i in 1 2 3; do echo line-$i-of-$LAUNCH_NODE_RANK; sleep 0.3; done'\n")
    job = slurm.submit(spec)
    out = slurm.run("logs", job, "-f", check_rc=0, timeout=60).stdout
    for rank in (0, 1):
        for i in (1, 2, 3):
            assert out.count(f"line-{i}-of-{rank}") == 1, out


def test_list_sync_finds_the_jobs_after_the_local_history_is_gone(slurm, launch_home):
    job = slurm.submit(slurm.spec("name: synced\nrun: echo synced\n"), "--idempotency-key", "k-slurm-1")
    slurm.ended(job)
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    # files planted in the shared work_dir: a hostile id is skipped, a claimed job_dir or login is not believed
    for name, data in (("bad", {"job_id": "../../escaped", "data": {"slurm_id": "1", "nodes": 1}}),
                       ("planted", {"job_id": "planted-20260101-000000-abcdef",
                                    "data": {"slurm_id": "999999", "nodes": 1, "job_dir": "/etc",
                                             "login": "evil@elsewhere"}})):
        (slurm.work_dir / "jobs" / name).mkdir()
        (slurm.work_dir / "jobs" / name / "handle.json").write_text(json.dumps({"backend": "slurm", **data}))
    # the history is gone; the user's config still says where the cluster keeps launch's files
    (launch_home / "config.toml").write_text(f'[backends.slurm]\nwork_dir = "{slurm.work_dir}"\n')
    out = slurm.run("list", "--sync", "--backend", "slurm", "-o", "json", check_rc=0).stdout
    found = {r["id"]: r for r in json.loads(out)}
    assert found[job]["state"] == "SUCCEEDED" and found[job]["idempotency_key"] == "k-slurm-1", out
    assert "../../escaped" not in found
    planted = found["planted-20260101-000000-abcdef"]["handle"]["data"]
    assert planted["job_dir"] == f"{slurm.work_dir}/jobs/planted-20260101-000000-abcdef" and planted["login"] is None


def test_hostile_strings_stay_text_in_env_secrets_run_key_and_sbatch_args(slurm, cluster, tmp_path):
    """The reliability harness's corpus (tests/reliability/test_injection.py) in env:, a secret, the
    idempotency key and run:, and a hostile sbatch flag: every value arrives byte for byte, no shell ran any."""
    from reliability.test_injection import corpus

    marker = tmp_path / "PWNED"
    values = corpus(marker)
    env_lines = "".join(f"  V{i}: {json.dumps(value, ensure_ascii=False)}\n" for i, value in enumerate(values))
    checks = "; ".join(f'printf "<%s>\\n" "$V{i}"' for i in range(len(values)))
    checks += '; printf "<%s>\\n" "$HOSTILE_SECRET"'
    mail = f"x'$(touch {marker})`touch {marker}`;\"y"
    spec = slurm.spec(f"name: hostile\nenv:\n{env_lines}run: {json.dumps(checks)}\nsecrets: [HOSTILE_SECRET]\n",
                      f"    sbatch_args: [--mail-type=FAIL, {json.dumps('--mail-user=' + mail)}]\n")
    secret = f"s3cr'et $(touch {marker}) \"q\""
    job = slurm.submit(spec, "--idempotency-key", f"key $(touch {marker}) 'q'", env={"HOSTILE_SECRET": secret})
    record = slurm.ended(job)
    assert record["state"] == "SUCCEEDED", record
    log = (slurm.work_dir / "jobs" / job / "node-0.log").read_text()
    for value in [*values, secret]:
        assert f"<{value}>" in log, (value, log)
    assert not marker.exists()
    shown = cluster.run("scontrol", "show", "job", record["handle"]["data"]["slurm_id"]).stdout
    assert f"MailUser={mail}" in shown  # sbatch got the flag as one argument, as written




# -- through a login node: the tests' sshd on this machine, its sessions pointed at the cluster ---------------


@pytest.fixture(scope="module")
def login(cluster):
    from fakes.sshd import SSHServer

    with SSHServer("127.0.0.1", env=cluster.env) as server:
        yield server


@pytest.fixture
def remote(slurm, login, write_spec):
    class Remote:
        work_dir = Path(login.remote_root) / "launch"

        @staticmethod
        def spec(body: str) -> Path:
            return write_spec(f"{body}backends:\n  slurm:\n    login: {login.host_spec}\n    ssh_config: "
                              f"{login.ssh_config}\n    work_dir: {Remote.work_dir}\n    cancel_grace: 2s\n")

    return Remote


def test_through_the_login_node_submit_status_logs(slurm, remote, cluster):
    spec = remote.spec("name: viaLogin\nresources:\n  nodes: 2\nrun: echo hello-from-$LAUNCH_NODE_RANK; exit 0\n")
    # no SLURM_CONF here: only the login node knows the cluster
    job = slurm.submit(spec, env={"SLURM_CONF": "/nonexistent/slurm.conf"})
    record = slurm.ended(job)
    assert record["state"] == "SUCCEEDED", record
    assert record["handle"]["data"]["login"]
    out = slurm.run("logs", job, check_rc=0).stdout
    assert "hello-from-0" in out and "hello-from-1" in out
    assert (remote.work_dir / "jobs" / job / "node-1.log").exists()


def test_through_the_login_node_cancel_and_failure(slurm, remote, cluster):
    failing = slurm.submit(remote.spec("name: remotefail\nrun: exit 3\n"))
    spec = remote.spec("name: remotecancel\nresources:\n  nodes: 2\nrun: echo up; sleep 300\n")
    job = slurm.submit(spec)
    slurm.until(job, lambda r: r["state"] == "RUNNING", 30)
    slurm.run("cancel", job, check_rc=0)
    assert slurm.status(job)["state"] == "CANCELLED"
    # RUNNING is the allocation: a cancel can meet a step still being launched on a node, whose slurmstepd
    # ends on its own once it finds the job gone (a sleep 300 left behind would stay and fail this)
    deadline = time.monotonic() + 15
    while (left := {pid: _cmdline(pid) for pid in cluster.task_pids()}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == {}
    record = slurm.ended(failing)
    assert record["state"] == "FAILED" and record["exit_code"] == 3 and "node 0 exited with code 3" in record["message"]


def test_a_retried_submit_finds_its_job_instead_of_submitting_twice(cluster, tmp_path, monkeypatch):
    """The same request submitted again (its first answer lost) is the same Slurm job; and a job whose
    handle was never written is found by its key in squeue's comment."""
    from backends.slurm import SlurmBackend
    from launcher.spec import parse_spec

    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    spec = parse_spec("name: retried\nrun: sleep 30\n", "spec.yaml", base_dir=tmp_path)
    backend = SlurmBackend({"work_dir": str(tmp_path / "work")})
    request = backend.render(spec, "retried-20260101-000000-abcdef", None, {}, idempotency_key="key 1")
    first, again = backend.submit(request), backend.submit(request)
    assert first.data["slurm_id"] == again.data["slurm_id"]
    assert len(cluster.run("squeue", "-h", "-n", "retried").stdout.splitlines()) == 1
    (tmp_path / "work" / "jobs" / first.job_id / "handle.json").unlink()
    found = backend.find("key 1")
    assert found is not None and found.handle.data["slurm_id"] == first.data["slurm_id"]
    assert found.handle.job_id == first.job_id and found.status.state.value in ("PENDING", "STARTING", "RUNNING")
    assert backend.find("another key") is None
    backend.cancel(first)


def test_plan_shows_the_cluster_and_its_idle_partition(slurm, cluster, tmp_path):
    spec = slurm.spec("name: planned\nrun: echo hi\nresources:\n  nodes: 2\n")
    out = slurm.run("plan", str(spec), check_rc=0).stdout
    row = next(line for line in out.splitlines() if line.startswith("slurm "))
    assert "(your cluster) x 2" in row and "capacity now: debug" in row, out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b"(ended)"
