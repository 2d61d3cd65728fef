"""A real two-node `distributed: jax` job on the local and ssh backends: each node's script initializes
jax.distributed from what bootstrap.sh derived (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
JAX_PROCESS_ID) with the one-line call the README gives, and sums an array sharded over both processes'
CPU devices (a cross-process reduction over JAX's gloo collectives).

jax (CPU) is a hard requirement: the `test` extra installs it. The ssh hosts are two sshds on 127.0.0.2 and
127.0.0.3: JAX's CPU collectives take their address from the machine's host name (no interface option, unlike
torch's GLOO_SOCKET_IFNAME), which the network-namespace hosts of tests/test_ssh_torch.py do not share.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from fakes.sshd import SSHServer
from helpers import job_script

SUBMITTED = re.compile(r"submitted (\S+) to (?:local|ssh)")
VENV_BIN = Path(sys.executable).parent


def jax_spec(extra: str = "") -> str:
    return ("name: jaxsum\nresources:\n  nodes: 2\ndistributed: jax\ncode: ./src\nrun: python jax_sum.py\n"
            f"env:\n  PATH: {json.dumps(f'{VENV_BIN}:/usr/bin:/bin')}\n  JAX_PLATFORMS: cpu\n{extra}")


def check_job(cli, result, master: str) -> None:
    context = f"launch run exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, context
    for rank in (0, 1):
        assert re.search(rf"^\[node {rank}\] jax sum ok=True rank={rank} world=2 node={rank} "
                         rf"coordinator={re.escape(master)}:\d+$", result.stdout, re.M), context
    job = SUBMITTED.search(result.stdout).group(1)
    record = json.loads(cli("status", job, "-o", "json", check_rc=0).stdout)
    assert record["state"] == "SUCCEEDED" and record["exit_code"] == 0, record


def write_code(tmp_path: Path) -> None:
    job_script("jax_sum.py", tmp_path / "src")


def test_jax_sum_across_two_local_nodes(cli, write_spec, tmp_path):
    write_code(tmp_path)
    spec = write_spec(jax_spec())
    check_job(cli, cli("run", str(spec), "--backend", "local", "--follow", timeout=120), "127.0.0.1")


def test_jax_sum_across_two_ssh_hosts(cli, write_spec, tmp_path):
    write_code(tmp_path)
    with SSHServer("127.0.0.2") as first, SSHServer("127.0.0.3") as second:
        both = tmp_path / "both.config"
        both.write_text(f"Include {first.ssh_config}\nInclude {second.ssh_config}\n")
        spec = write_spec(jax_spec(f"backends:\n  ssh:\n    hosts: [{first.host_spec}, {second.host_spec}]\n"
                                   f"    ssh_config: {both}\n    remote_root: {first.remote_root}\n"
                                   "    cancel_grace: 2s\n"))
        check_job(cli, cli("run", str(spec), "--backend", "ssh", "--follow", timeout=120), "127.0.0.2")
