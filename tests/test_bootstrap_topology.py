"""How a node learns its rank, the node count, the master address and every node's address is each backend's own:
SageMaker's and Vertex's rendered requests ship a topology snippet (read from resourceconfig.json
and CLUSTER_SPEC, in the shapes those providers write them), Azure ML maps its distribution
variables in the job's command (tests/test_azureml_node.py), local and ssh set rank and master per
node from their host list. bootstrap.sh sources the snippet through one provider-neutral hook
(LAUNCH_TOPOLOGY) and names no provider itself.

Each test here runs the unchanged bootstrap.sh with the environment and files the backend really
rendered, the provider's inputs added as its machines set them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import metadata, resources
from pathlib import Path

import pytest
from test_pai_dlc_render import render as render_pai_dlc
from test_sagemaker_render import render as render_sagemaker
from test_tione_render import render as render_tione
from test_vertex_render import render as render_vertex

from backends.local import LocalBackend
from backends.ssh import SSHBackend
from launcher.backend import Request
from launcher.node import node_environment
from launcher.spec import parse_spec

BOOTSTRAP = Path(str(resources.files("launcher").joinpath("bootstrap.sh")))
PRINT = "echo rank=$LAUNCH_NODE_RANK nodes=$LAUNCH_NUM_NODES master=$LAUNCH_MASTER_ADDR addrs=$LAUNCH_NODE_ADDRS"
SPEC = f"name: golden\nimage: img:1\nrun: '{PRINT}'\nresources:\n  accelerators: H100:8\n  nodes: 3\n"


def run_node(tmp_path: Path, request: Request, environment: dict[str, str], provider: dict[str, str]) -> str:
    """Run bootstrap.sh as one node of `request`: its generated files (run.sh, topology.sh) land in
    tmp_path/job and the variables naming them point there; directories the provider would mount
    (/opt/ml, /gcs) become tmp_path's."""
    job = tmp_path / "job"
    job.mkdir(exist_ok=True)
    placed: dict[str, str] = {}
    for upload in request.uploads:
        if upload.content is not None:
            name = upload.destination.rsplit("/", 1)[-1]
            (job / name).write_text(upload.content)
            placed[name] = str(job / name)
    env = {key: placed.get(value.rsplit("/", 1)[-1], value) if key in ("LAUNCH_RUN_FILE", "LAUNCH_TOPOLOGY")
           else value for key, value in environment.items()}
    env.update(PATH=os.environ["PATH"], LAUNCH_WORKDIR=str(tmp_path / "work"),
               LAUNCH_OUTPUT_DIR=str(tmp_path / "out"), LAUNCH_CHECKPOINT_DIR=str(tmp_path / "ckpt"), **provider)
    result = subprocess.run(["sh", str(BOOTSTRAP)], capture_output=True, text=True, timeout=30, cwd=tmp_path,
                            env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def topology_of(request: Request, environment: dict[str, str]) -> str:
    """The snippet the request ships, checked to be what LAUNCH_TOPOLOGY names (the dry run shows it)."""
    [snippet] = [u for u in request.uploads if u.destination.endswith("/topology.sh")]
    assert environment["LAUNCH_TOPOLOGY"].endswith("/topology.sh")
    assert snippet.content
    assert {"destination": snippet.destination, "content": snippet.content} in request.to_display()["uploads"]
    return snippet.content


# -- SageMaker: /opt/ml/input/config/resourceconfig.json ------------------------------------------

def resourceconfig(current: str, hosts: list[str], group_hosts: list[str], indent: int | None) -> str:
    return json.dumps({
        "current_host": current, "current_instance_type": "ml.p4d.24xlarge",
        "current_group_name": "homogeneousCluster", "hosts": hosts,
        "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "ml.p4d.24xlarge",
                             "hosts": group_hosts}],
        "network_interface_name": "eth0"}, indent=indent)


def sagemaker_node(tmp_path: Path, provider: dict[str, str]) -> str:
    request = render_sagemaker(SPEC)
    environment = request.payload["Environment"]
    topology_of(request, environment)
    return run_node(tmp_path, request, environment, provider)


@pytest.mark.parametrize(("current", "rank"), [("algo-1", 0), ("algo-2", 1), ("algo-10", 2)])
@pytest.mark.parametrize("indent", [None, 4])
def test_sagemaker_rank_from_the_top_level_hosts_in_numeric_order(tmp_path, current, rank, indent):
    # the instance group lists the hosts in another order: it must not decide ranks
    config = tmp_path / "resourceconfig.json"
    config.write_text(resourceconfig(current, ["algo-2", "algo-1", "algo-10"], ["algo-10", "algo-2", "algo-1"],
                                     indent))
    out = sagemaker_node(tmp_path, {"LAUNCH_SAGEMAKER_RESOURCE_CONFIG": str(config)})
    assert out == f"rank={rank} nodes=3 master=algo-1 addrs=algo-1,algo-2,algo-10"


def test_sagemaker_node_count_comes_from_the_hosts_it_was_given(tmp_path):
    # the request asked for 3; SageMaker's own list of hosts is what the node believes
    config = tmp_path / "resourceconfig.json"
    config.write_text(resourceconfig("algo-2", ["algo-1", "algo-2"], ["algo-1", "algo-2"], None))
    assert sagemaker_node(tmp_path, {"LAUNCH_SAGEMAKER_RESOURCE_CONFIG": str(config)}) == \
        "rank=1 nodes=2 master=algo-1 addrs=algo-1,algo-2"


def test_sagemaker_without_a_resource_config_keeps_the_defaults(tmp_path):
    out = sagemaker_node(tmp_path, {"LAUNCH_SAGEMAKER_RESOURCE_CONFIG": str(tmp_path / "absent.json")})
    assert out == "rank=0 nodes=3 master=127.0.0.1 addrs="


# -- Vertex: CLUSTER_SPEC --------------------------------------------------------------------------

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
    cluster_spec = SPEC_VARIANTS[variant] % ((pool, index) if variant == 0 else (index, pool))
    json.loads(cluster_spec)  # a real JSON document, as Vertex sets it
    request = render_vertex(SPEC)
    pools = request.payload["job_spec"]["worker_pool_specs"]
    # the pool this node belongs to: the chief's environment and the workers' are the same contract
    environment = {e["name"]: e["value"] for e in pools[0 if pool == "workerpool0" else 1]["container_spec"]["env"]}
    topology_of(request, environment)
    out = run_node(tmp_path, request, environment, {"CLUSTER_SPEC": cluster_spec})
    master = "cmle-training-workerpool0-1a-0"
    assert out == f"rank={rank} nodes=3 master={master} addrs={master},w1-0,w1-1"


# -- PAI-DLC: a PyTorchJob's pods get MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK ------------------

@pytest.mark.parametrize("rank", [0, 2])
def test_pai_dlc_rank_and_master_from_the_pytorchjob_variables(tmp_path, rank):
    request = render_pai_dlc(SPEC.replace("H100:8", "A100-80GB:8"))  # no H-series in its catalog yet
    environment = request.payload["Envs"]
    topology_of(request, environment)
    out = run_node(tmp_path, request, environment, {"RANK": str(rank), "WORLD_SIZE": "3", "MASTER_PORT": "23456",
                                                    "MASTER_ADDR": "dlc1a2b3c4d5e6f7-worker-0"})
    assert out == f"rank={rank} nodes=3 master=dlc1a2b3c4d5e6f7-worker-0 addrs="


# -- TI-ONE: a DDP task's workers get MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK ---------------------

@pytest.mark.parametrize("rank", [0, 2])
def test_tione_rank_and_master_from_the_ddp_workers_variables(tmp_path, rank):
    request = render_tione(SPEC.replace("H100:8", "V100:8"))  # no H-series in its catalog
    environment = {item["Name"]: item["Value"] for item in request.payload["Envs"]}
    topology_of(request, environment)
    out = run_node(tmp_path, request, environment, {"RANK": str(rank), "WORLD_SIZE": "3", "MASTER_PORT": "23456",
                                                    "MASTER_ADDR": "train-123-worker-0"})
    assert out == f"rank={rank} nodes=3 master=train-123-worker-0 addrs="


# -- local and ssh: the backend knows each node's place and says it in the node's environment -------

def node_dir(tmp_path: Path, rank: int) -> Path:
    path = tmp_path / f"node-{rank}"
    path.mkdir()
    return path


def test_local_nodes_get_rank_and_master_from_the_backend(tmp_path, monkeypatch):
    monkeypatch.setenv("LAUNCH_HOME", str(tmp_path / "home"))
    spec = parse_spec(SPEC.replace("H100:8", "cpu"), "spec.yaml", base_dir=tmp_path)
    request = LocalBackend().render(spec, "golden-20260101-000000-abcdef", None, {})
    outs = [run_node(node_dir(tmp_path, n["rank"]), request, n["env"], {}) for n in request.payload["nodes"]]
    assert outs == [f"rank={r} nodes=3 master=127.0.0.1 addrs=127.0.0.1,127.0.0.1,127.0.0.1" for r in range(3)]


def test_ssh_nodes_get_rank_and_the_first_host_as_master(tmp_path):
    spec = parse_spec(SPEC, "spec.yaml", base_dir=tmp_path)
    backend = SSHBackend({"hosts": ["u@10.0.0.1", "u@10.0.0.2", "u@10.0.0.3"]})
    request = backend.render(spec, "golden-20260101-000000-abcdef", None, {})
    outs = [run_node(node_dir(tmp_path, n["rank"]), request, n["env"], {}) for n in request.payload["nodes"]]
    assert outs == [f"rank={r} nodes=3 master=10.0.0.1 addrs=10.0.0.1,10.0.0.2,10.0.0.3" for r in range(3)]


@pytest.mark.parametrize("backend", ["local", "ssh"])
def test_every_node_gets_the_shared_node_environment(tmp_path, monkeypatch, backend):
    """local and ssh build their nodes' environment from launcher.node, as the clouds do."""
    monkeypatch.setenv("LAUNCH_HOME", str(tmp_path / "home"))
    spec = parse_spec("name: e\nrun: echo hi\nenv: {EPOCHS: 3}\nsecrets: [TOKEN]\ndistributed: torchrun\n"
                      "resources: {nodes: 2}\n", "spec.yaml", base_dir=tmp_path)
    if backend == "local":
        request = LocalBackend().render(spec, "e-20260101-000000-abcdef", None, {"TOKEN": "****"})
    else:
        request = SSHBackend({"hosts": ["h1", "h2"]}).render(spec, "e-20260101-000000-abcdef", None, {"TOKEN": "****"})
    shared = node_environment(spec, "e-20260101-000000-abcdef", {"TOKEN": "****"}, output_dir="", checkpoint_dir="",
                              workdir="")
    for node in request.payload["nodes"]:
        same = {k: v for k, v in shared.items() if k not in ("LAUNCH_OUTPUT_DIR", "LAUNCH_CHECKPOINT_DIR",
                                                             "LAUNCH_WORKDIR", "LAUNCH_MASTER_PORT")}
        assert same.items() <= node["env"].items()
        assert node["env"]["LAUNCH_RUN_FILE"].endswith("/run.sh")  # the commands travel as job files


# -- the hook itself ------------------------------------------------------------------------------

def test_bootstrap_names_no_provider():
    text = BOOTSTRAP.read_text().lower()
    providers = {ep.name.lower() for ep in metadata.entry_points(group="launcher.backends")} - {"local"}
    providers |= {"sagemaker", "vertex", "azure", "aws", "gcp", "google", "lambda", "ssh", "kubernetes", "slurm",
                  "resourceconfig", "cluster_spec", "/opt/ml", "/gcs/"}
    assert "sagemaker" in providers and "vertex" in providers
    named = sorted(p for p in providers if re.search(rf"(?<![a-z_]){re.escape(p)}(?![a-z])", text))
    assert named == [], f"bootstrap.sh names {named}: a provider's topology belongs in its backend"


def test_a_missing_topology_file_is_one_clear_error(tmp_path):
    env = {"PATH": os.environ["PATH"], "LAUNCH_JOB_ID": "t", "LAUNCH_RUN": PRINT, "LAUNCH_WORKDIR": str(tmp_path),
           "LAUNCH_TOPOLOGY": str(tmp_path / "nope.sh"), "LAUNCH_EXIT_FILE": str(tmp_path / "exit_code")}
    result = subprocess.run(["sh", str(BOOTSTRAP)], capture_output=True, text=True, timeout=30, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert f"no node topology at {tmp_path}/nope.sh" in result.stderr
    assert (tmp_path / "exit_code").read_text() == "2\n"
    assert "rank=" not in result.stdout


def test_bootstrap_is_package_data_wherever_the_package_lives(tmp_path, monkeypatch):
    """On disk it travels as its path (the dry run names the file); from a zipped install, as its text."""
    import zipfile

    from launcher import node

    assert node.bootstrap_upload("d/bootstrap.sh").source == BOOTSTRAP
    archive = tmp_path / "launcher.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("launcher/bootstrap.sh", "#!/bin/sh\necho zipped\n")
    monkeypatch.setattr(node.resources, "files", lambda package: zipfile.Path(archive, f"{package}/"))
    node._bootstrap_script.cache_clear()  # where it is is found once per process: this test moves it
    try:
        upload = node.bootstrap_upload("d/bootstrap.sh")
    finally:
        node._bootstrap_script.cache_clear()
    assert (upload.source, upload.destination, upload.content) == (None, "d/bootstrap.sh", "#!/bin/sh\necho zipped\n")
