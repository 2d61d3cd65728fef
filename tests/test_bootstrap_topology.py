"""bootstrap.sh derives rank, node count and master from what each provider tells a node:
SageMaker's resourceconfig.json and Vertex's CLUSTER_SPEC, in the shapes they are written in."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

BOOTSTRAP = Path(__file__).resolve().parent.parent / "launcher" / "bootstrap.sh"
PRINT = "echo rank=$LAUNCH_NODE_RANK nodes=$LAUNCH_NUM_NODES master=$LAUNCH_MASTER_ADDR"


def run_bootstrap(tmp_path: Path, env: dict[str, str]) -> str:
    result = subprocess.run(["sh", str(BOOTSTRAP)], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                            env={"PATH": os.environ["PATH"], "LAUNCH_JOB_ID": "t", "LAUNCH_RUN": PRINT,
                                 "LAUNCH_WORKDIR": str(tmp_path / "work"), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def resourceconfig(current: str, hosts: list[str], group_hosts: list[str], indent: int | None) -> str:
    return json.dumps({
        "current_host": current, "current_instance_type": "ml.p4d.24xlarge",
        "current_group_name": "homogeneousCluster", "hosts": hosts,
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.p4d.24xlarge",
                             "hosts": group_hosts}],
        "network_interface_name": "eth0"}, indent=indent)


@pytest.mark.parametrize(("current", "rank"), [("algo-1", 0), ("algo-2", 1), ("algo-10", 2)])
@pytest.mark.parametrize("indent", [None, 4])
def test_sagemaker_rank_from_the_top_level_hosts_in_numeric_order(tmp_path, current, rank, indent):
    # the instance group lists the hosts in another order: it must not decide ranks
    config = tmp_path / "resourceconfig.json"
    config.write_text(resourceconfig(current, ["algo-2", "algo-1", "algo-10"], ["algo-10", "algo-2", "algo-1"],
                                     indent))
    out = run_bootstrap(tmp_path, {"LAUNCH_PLATFORM": "sagemaker", "LAUNCH_SAGEMAKER_RESOURCE_CONFIG": str(config)})
    assert out == f"rank={rank} nodes=3 master=algo-1"


SPEC_VARIANTS = [
    '{"cluster":{"workerpool0":["cmle-training-workerpool0-1a-0:2222"],"workerpool1":["w1-0:2222","w1-1:2222"]},'
    '"environment":"cloud","task":{"type":"%s","index":%d,"trial":""},"job":"{\\"a\\": 1}"}',
    '{"task": {"index": %d, "type": "%s"}, "environment": "cloud", "cluster": {"workerpool1": ["w1-0:2222", '
    '"w1-1:2222"], "workerpool0": ["cmle-training-workerpool0-1a-0:2222"]}}',
]


@pytest.mark.parametrize(("pool", "index", "rank"), [("workerpool0", 0, 0), ("workerpool1", 0, 1),
                                                     ("workerpool1", 1, 2)])
@pytest.mark.parametrize("variant", [0, 1])
def test_vertex_rank_from_cluster_spec(tmp_path, pool, index, rank, variant):
    spec = SPEC_VARIANTS[variant] % ((pool, index) if variant == 0 else (index, pool))
    json.loads(spec)  # a real JSON document, as Vertex sets it
    out = run_bootstrap(tmp_path, {"LAUNCH_PLATFORM": "vertex", "CLUSTER_SPEC": spec, "LAUNCH_NUM_NODES": "3"})
    assert out == f"rank={rank} nodes=3 master=cmle-training-workerpool0-1a-0"
