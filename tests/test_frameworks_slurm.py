"""`distributed: jax` on a real Slurm (the cluster of tests/test_slurm_e2e.py: slurmctld
and slurmd n1, n2 on loopback): each node's place and address come from Slurm (SLURM_NODEID, the NodeAddr of
each node in the job's node list), bootstrap.sh derives the framework's contract from them.

JAX: a bare `jax.distributed.initialize()` works here, as the README says: JAX's own Slurm detection gives the
process count and id (SLURM_NTASKS, SLURM_PROCID: one task per node, so the node's rank), and the coordinator is
the JAX_COORDINATOR_ADDRESS bootstrap.sh set."""

from __future__ import annotations

import pytest
from fakes.slurm_cluster import slurm_available
from helpers import job_script
from test_slurm_e2e import cluster, slurm  # noqa: F401  (the module's own cluster, started once)

pytestmark = pytest.mark.skipif(not slurm_available(), reason="needs root and slurm-wlm (ci/test installs it)")


def run_job(slurm, tmp_path, distributed: str, script: str, run: str) -> list[str]:  # noqa: F811
    job_script(script, tmp_path / "src")
    spec = slurm.spec(f"name: fw\ncode: ./src\nresources:\n  nodes: 2\ndistributed: {distributed}\n"
                      f"env:\n  JAX_PLATFORMS: cpu\nrun: {run}\n")
    job = slurm.submit(spec, "--follow")
    record = slurm.ended(job, timeout=120)
    logs = [(slurm.work_dir / "jobs" / job / f"node-{rank}.log").read_text() for rank in (0, 1)]
    assert record["state"] == "SUCCEEDED", (record, logs)
    return logs


def test_a_bare_jax_initialize_on_slurm(slurm, tmp_path):  # noqa: F811
    logs = run_job(slurm, tmp_path, "jax", "jax_sum.py", "python jax_sum.py --bare")
    for rank, log in enumerate(logs):
        # the first node's NodeAddr (127.0.0.1 here), not its unresolvable name n1
        assert f"jax sum ok=True rank={rank} world=2 node={rank} coordinator=127.0.0.1:" in log, log

