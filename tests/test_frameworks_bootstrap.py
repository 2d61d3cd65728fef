"""`distributed: jax | tensorflow | paddle` on every backend: each backend's rendered node environment and
topology snippet, the provider's inputs added as its machines set them (CLUSTER_SPEC, resourceconfig.json,
JOB_COMPLETION_INDEX, Slurm's node list, PyTorchJob's RANK/MASTER_ADDR ...), run through the unchanged
bootstrap.sh under a real shell, for every node of a 3-node job. What the job then sees is the framework's
own contract: JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, a TF_CONFIG listing every
worker, or paddle.distributed.launch's command line (a stub `python3` records it). A backend whose
provider tells a node only the master's address refuses tensorflow on several nodes in render.

The hostile-string corpus (tests/reliability/test_injection.py) goes where a provider's or a backend's
value meets these contracts: it is refused, never executed, and the job's own command line reaches
paddle's launcher byte for byte."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from reliability.test_injection import corpus
from test_aihc_render import render as render_aihc
from test_azureml_render import render as render_azureml
from test_bootstrap_topology import BOOTSTRAP, resourceconfig
from test_hf_jobs_render import render as render_hf_jobs
from test_kubernetes_render import render as render_kubernetes
from test_pai_dlc_render import render as render_pai_dlc
from test_sagemaker_render import render as render_sagemaker
from test_slurm_render import render as render_slurm
from test_tione_render import render as render_tione
from test_vertex_render import render as render_vertex

from backends.local import LocalBackend
from backends.remote.transport import Host
from backends.ssh import SSHBackend, placed
from launcher import registry, runner
from launcher.node import MANAGED_MASTER_PORT, master_port
from launcher.spec import parse_spec

JOB = "golden-20260101-000000-abcdef"
# the job prints the framework's variables as one JSON line
SHOW = (f"{sys.executable} -c 'import json, os; print(\"SEEN \" + json.dumps({{k: v for k, v in os.environ.items() "
        "if k.startswith((\"JAX_\", \"TF_CONFIG\", \"LAUNCH_NODE_ADDRS\"))}))'")
# stands in for the node's python3: paddle is "installed", its launcher prints the arguments it got
PYTHON_STUB = f"""#!{sys.executable}
import json, sys
if sys.argv[1:3] == ["-m", "paddle.distributed.launch"]:
    print("PADDLE " + json.dumps(sys.argv[3:]))
"""


@dataclass
class Node:
    """One node as its provider starts it: the job's environment, the job's files by name, what the
    provider adds, and the command it runs (bootstrap.sh unless the backend wraps it)."""

    env: dict[str, str]
    files: dict[str, str]
    provider: dict[str, str] = field(default_factory=dict)
    command: list[str] | None = None


@dataclass
class Cluster:
    """What a backend's 3-node job should derive: the master, every node's address (None: not told), the port."""

    nodes: Callable[[Path], list[subprocess.CompletedProcess]]
    master: str
    addresses: list[str] | None
    port: int
    gpus: int


def spec_text(distributed: str, accelerators: str, run: str = SHOW, extra: str = "") -> str:
    return (f"name: golden\nimage: img:1\nrun: {json.dumps(run)}\ndistributed: {distributed}\n"
            f"resources:\n  accelerators: {accelerators}\n  nodes: 3\n{extra}")


def upload_files(request) -> dict[str, str]:
    files = {}
    for upload in request.uploads:
        name = upload.destination.rsplit("/", 1)[-1]
        if upload.content is not None:
            files[name] = upload.content
        elif name == "bootstrap.sh":
            files[name] = Path(upload.source).read_text()
    return files


def boot(tmp_path: Path, node: Node, rank: int) -> subprocess.CompletedProcess:
    """Run one node: its files land in its own directory, the variables naming them point there."""
    here = tmp_path / f"node-{rank}"
    (here / "job").mkdir(parents=True)
    for name, content in node.files.items():
        (here / "job" / name).write_text(content)
    # files that travel as uploads land in job/; a backend whose command writes them (azureml) keeps its paths
    env = {key: str(here / "job" / value.rsplit("/", 1)[-1])
           if key in ("LAUNCH_RUN_FILE", "LAUNCH_TOPOLOGY", "LAUNCH_SETUP_FILE")
           and value.rsplit("/", 1)[-1] in node.files else value
           for key, value in node.env.items()}
    stub = tmp_path / "bin"
    if not stub.exists():
        stub.mkdir()
        (stub / "python3").write_text(PYTHON_STUB)
        (stub / "python3").chmod(0o755)
    env.update({"PATH": f"{stub}:{os.environ['PATH']}", "LAUNCH_WORKDIR": str(here / "work"),
                "LAUNCH_OUTPUT_DIR": str(here / "out"), "LAUNCH_CHECKPOINT_DIR": str(here / "ckpt"),
                "LAUNCH_PCI_DEVICES": str(tmp_path / "no-pci"), **node.provider})
    command = node.command or ["sh", str(here / "job" / "bootstrap.sh")]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=here / "job", env=env)


def each(nodes: list[Node]) -> Callable[[Path], list[subprocess.CompletedProcess]]:
    return lambda tmp_path: [boot(tmp_path, node, rank) for rank, node in enumerate(nodes)]


# -- each backend's 3-node job, as its nodes see it -------------------------------------------------

def local(text: str) -> Cluster:
    spec = parse_spec(text.replace("H100:8", "cpu"), "spec.yaml", base_dir=Path.cwd())
    request = LocalBackend({}).render(spec, JOB, None, {})
    nodes = [Node(n["env"], upload_files(request)) for n in request.payload["nodes"]]
    return Cluster(each(nodes), "127.0.0.1", ["127.0.0.1"] * 3, master_port(JOB), 0)


def ssh(text: str) -> Cluster:
    spec = parse_spec(text, "spec.yaml", base_dir=Path.cwd())
    request = SSHBackend({"hosts": ["u@10.0.0.1", "u@10.0.0.2", "u@10.0.0.3"]}).render(spec, JOB, None, {})
    nodes = [Node(n["env"], upload_files(request)) for n in request.payload["nodes"]]
    return Cluster(each(nodes), "10.0.0.1", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], master_port(JOB), 8)


def lambda_cloud(text: str) -> Cluster:
    """lambda_cloud renders on stand-in hosts and places the request on the instances it rented."""
    spec = parse_spec(text, "spec.yaml", base_dir=Path.cwd())
    request = SSHBackend({"hosts": ["stand-in-0", "stand-in-1", "stand-in-2"]}).render(spec, JOB, None, {})
    rented = [Host.parse(f"ubuntu@192.0.2.{i}") for i in (7, 8, 9)]
    request = placed(request, rented)
    nodes = [Node(n["env"], upload_files(request)) for n in request.payload["nodes"]]
    return Cluster(each(nodes), "192.0.2.7", ["192.0.2.7", "192.0.2.8", "192.0.2.9"], master_port(JOB), 8)


SCONTROL = """#!/bin/sh
# Slurm's answers for a job on n[1-3]: node names that do not resolve, each with its NodeAddr
case "$1 $2" in
    "show hostnames") printf 'n1\\nn2\\nn3\\n' ;;
    "show node") echo "NodeName=$3 Arch=x86_64 NodeAddr=10.1.0.${3#n} NodeHostName=$3 Port=6818" ;;
esac
"""
# srun starts the step on each node of the allocation: SLURM_NODEID and SLURM_JOB_NUM_NODES set by Slurm
SRUN = """#!/bin/sh
while [ $# -gt 0 ]; do case $1 in -*) shift ;; *) break ;; esac; done
for node in 0 1 2; do SLURM_NODEID=$node SLURM_JOB_NUM_NODES=3 "$@"; echo "exit $node $?"; done
"""


def slurm(text: str) -> Cluster:
    """The batch script as sbatch runs it on the first node, with Slurm's own commands answering."""
    def nodes(tmp_path: Path) -> list[subprocess.CompletedProcess]:
        request = render_slurm(text + f"backends:\n  slurm:\n    work_dir: {tmp_path / 'slurm'}\n")
        for upload in request.uploads:
            target = Path(upload.destination)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(upload.content if upload.content is not None else Path(upload.source).read_text())
        stub = tmp_path / "bin"
        stub.mkdir()
        for name, body in (("scontrol", SCONTROL), ("srun", SRUN), ("python3", PYTHON_STUB)):
            (stub / name).write_text(body)
            (stub / name).chmod(0o755)
        env = {"PATH": f"{stub}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "n[1-3]",
               "LAUNCH_PCI_DEVICES": str(tmp_path / "no-pci")}
        done = subprocess.run(["sh", request.payload["job_dir"] + "/job.sbatch"], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, env=env)
        # one process ran every node: split its output at each node's `exit N` line
        results, lines = [], []
        for line in done.stdout.splitlines():
            if line.startswith("exit "):
                results.append(subprocess.CompletedProcess([], int(line.split()[2]), "\n".join(lines), done.stderr))
                lines = []
            else:
                lines.append(line)
        return results or [done]
    return Cluster(nodes, "10.1.0.1", ["10.1.0.1", "10.1.0.2", "10.1.0.3"], master_port(JOB), 8)


def kubernetes(text: str) -> Cluster:
    request = render_kubernetes("kubernetes", text)
    job, _service, config_map = request.payload["manifests"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    nodes = [Node(env, config_map["data"], {"JOB_COMPLETION_INDEX": str(rank)}) for rank in range(3)]
    pods = [f"{JOB}-{rank}.{JOB}" for rank in range(3)]
    return Cluster(each(nodes), pods[0], pods, int(env["LAUNCH_MASTER_PORT"]), 8)


VERTEX_CLUSTER = {"workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
                  "workerpool1": ["cmle-training-workerpool1-ab-0:2222", "cmle-training-workerpool1-ab-1:2222"]}


def vertex(text: str) -> Cluster:
    request = render_vertex(text)
    pools = request.payload["job_spec"]["worker_pool_specs"]
    nodes = []
    for pool, index in (("workerpool0", 0), ("workerpool1", 0), ("workerpool1", 1)):
        env = {e["name"]: e["value"] for e in pools[0 if pool == "workerpool0" else 1]["container_spec"]["env"]}
        cluster_spec = json.dumps({"cluster": VERTEX_CLUSTER, "environment": "cloud",
                                   "task": {"type": pool, "index": index}}, indent=1)
        nodes.append(Node(env, upload_files(request), {"CLUSTER_SPEC": cluster_spec}))
    hosts = [h.split(":")[0] for h in VERTEX_CLUSTER["workerpool0"] + VERTEX_CLUSTER["workerpool1"]]
    return Cluster(each(nodes), hosts[0], hosts, MANAGED_MASTER_PORT, 8)


def sagemaker(text: str) -> Cluster:
    request = render_sagemaker(text)
    hosts = ["algo-1", "algo-2", "algo-3"]

    def nodes(tmp_path: Path) -> list[subprocess.CompletedProcess]:
        runs = []
        for rank, host in enumerate(hosts):
            config = tmp_path / f"resourceconfig-{rank}.json"
            config.write_text(resourceconfig(host, ["algo-3", "algo-1", "algo-2"], hosts, 4))
            node = Node(dict(request.payload["Environment"]), upload_files(request),
                        {"LAUNCH_SAGEMAKER_RESOURCE_CONFIG": str(config)})
            runs.append(boot(tmp_path, node, rank))
        return runs
    return Cluster(nodes, "algo-1", hosts, MANAGED_MASTER_PORT, 8)


def pytorchjob(env: dict[str, str], files: dict[str, str], master: str) -> list[Node]:
    """PAI-DLC, TI-ONE and AIHC run a PyTorchJob: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT on each pod."""
    return [Node(env, files, {"RANK": str(rank), "WORLD_SIZE": "3", "MASTER_ADDR": master, "MASTER_PORT": "23456"})
            for rank in range(3)]


def pai_dlc(text: str) -> Cluster:
    request = render_pai_dlc(text.replace("H100:8", "A100-80GB:8"))
    nodes = pytorchjob(dict(request.payload["Envs"]), upload_files(request), "dlc1a2b3c-master-0")
    return Cluster(each(nodes), "dlc1a2b3c-master-0", None, 23456, 8)


def tione(text: str) -> Cluster:
    request = render_tione(text.replace("H100:8", "V100:8"))
    env = {item["Name"]: item["Value"] for item in request.payload["Envs"]}
    nodes = pytorchjob(env, upload_files(request), "train-123-worker-0")
    return Cluster(each(nodes), "train-123-worker-0", None, 23456, 8)


def aihc(text: str) -> Cluster:
    request = render_aihc(text.replace("H100:8", "A100-80GB:8"))
    env = {item["name"]: item["value"] for item in request.payload["body"]["jobSpec"]["envs"]}
    nodes = pytorchjob(env, upload_files(request), "job-abc-master-0")
    return Cluster(each(nodes), "job-abc-master-0", None, 23456, 8)


def azureml(text: str) -> Cluster:
    """The job's command writes bootstrap.sh and run.sh into the working directory, maps Azure's
    PyTorch-distribution variables and execs bootstrap.sh."""
    request = render_azureml(text)
    props = request.payload["properties"]
    nodes = [Node(dict(props["environmentVariables"]), upload_files(request),
                  {"NODE_RANK": str(rank), "MASTER_ADDR": "10.2.0.4", "MASTER_PORT": "6105"},
                  ["sh", "-c", props["command"]]) for rank in range(3)]
    return Cluster(each(nodes), "10.2.0.4", None, 6105, 8)


def hf_jobs(text: str) -> Cluster:
    request = render_hf_jobs(text.replace("H100:8", "H200:8"))
    nodes = []
    for body in request.payload["jobs"]:
        files = body["command"][4:]  # /bin/sh -c PRELUDE launch-node, then path, content pairs
        named = {files[i].rsplit("/", 1)[-1]: files[i + 1] for i in range(0, len(files), 2)}
        nodes.append(Node(dict(body["environment"]), named, {"HF_NETWORK_GROUP_PREFIX": "grp-"}))
    return Cluster(each(nodes), "grp-master", None, MANAGED_MASTER_PORT, 8)


BACKENDS = {"local": local, "ssh": ssh, "lambda_cloud": lambda_cloud, "slurm": slurm, "kubernetes": kubernetes,
            "vertex": vertex, "sagemaker": sagemaker, "pai_dlc": pai_dlc, "tione": tione, "aihc": aihc,
            "azureml": azureml, "hf_jobs": hf_jobs}
# the backends whose nodes learn every node's address (Capabilities.node_addresses)
TELLING = [name for name in BACKENDS if registry.backend_class(name).capabilities.node_addresses]


def run_cluster(tmp_path: Path, backend: str, distributed: str, run: str = SHOW) -> tuple[Cluster, list[str]]:
    cluster = BACKENDS[backend](spec_text(distributed, "H100:8", run))
    results = cluster.nodes(tmp_path)
    assert len(results) == 3
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    return cluster, [r.stdout for r in results]


def seen(stdout: str) -> dict[str, str]:
    [line] = [line for line in stdout.splitlines() if line.startswith("SEEN ")]
    return json.loads(line[5:])


def endpoint(host: str, port: int) -> str:
    return f"{host}:{port}"


# -- the tests --------------------------------------------------------------------------------------

def test_every_backend_is_covered():
    """A backend added to the registry needs its row here (coreweave is kubernetes; azure_openai and openai
    fine-tune hosted models and run no command)."""
    from importlib import metadata

    names = {ep.name for ep in metadata.entry_points(group="launcher.backends")}
    assert names - {"coreweave", "azure_openai", "openai"} == set(BACKENDS)
    assert set(TELLING) == {name for name in BACKENDS if BACKENDS[name] not in (pai_dlc, tione, aihc, azureml, hf_jobs)}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_jax_gets_its_coordinator_process_count_and_id(tmp_path, backend):
    cluster, outputs = run_cluster(tmp_path, backend, "jax")
    for rank, out in enumerate(outputs):
        env = seen(out)
        devices = ",".join(str(d) for d in range(cluster.gpus)) if cluster.gpus else None
        assert {k: v for k, v in env.items() if k.startswith("JAX_")} == {
            "JAX_COORDINATOR_ADDRESS": endpoint(cluster.master, cluster.port), "JAX_NUM_PROCESSES": "3",
            "JAX_PROCESS_ID": str(rank), **({"JAX_LOCAL_DEVICE_IDS": devices} if devices else {})}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_tensorflow_gets_every_worker_in_tf_config_or_is_refused_in_render(tmp_path, backend):
    if backend not in TELLING:  # refused by the core from the backend's capabilities, as a dry run does
        spec = parse_spec(spec_text("tensorflow", "H100:8"), "spec.yaml", base_dir=Path.cwd())
        problems = [p for exc in runner.preflight(spec, [backend]) for p in exc.problems if p.path == "distributed"]
        [problem] = problems
        assert problem.line == 4 and f"{backend} tells a node only the master's" in problem.message
        assert "nodes: 1" in problem.message and all(name in problem.message for name in TELLING)
        # one node lists only itself: fine everywhere
        one = parse_spec(spec_text("tensorflow", "H100:8").replace("nodes: 3", "nodes: 1"), "spec.yaml",
                         base_dir=Path.cwd())
        assert not [p for exc in runner.preflight(one, [backend]) for p in exc.problems if p.path == "distributed"]
        return
    cluster, outputs = run_cluster(tmp_path, backend, "tensorflow")
    workers = [endpoint(host, cluster.port + i) for i, host in enumerate(cluster.addresses)]
    for rank, out in enumerate(outputs):
        env = seen(out)
        assert json.loads(env["TF_CONFIG"]) == {"cluster": {"worker": workers}, "task": {"type": "worker",
                                                                                          "index": rank}}
        assert env["LAUNCH_NODE_ADDRS"] == ",".join(cluster.addresses)
        assert not any(k.startswith("JAX_") for k in env)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_paddle_launch_command_line(tmp_path, backend):
    cluster, outputs = run_cluster(tmp_path, backend, "paddle", run="python train.py --lr 0.1")
    devices = [f"--devices={','.join(str(d) for d in range(cluster.gpus))}"] if cluster.gpus else [
        "--nproc_per_node=1"]
    for rank, out in enumerate(outputs):
        [line] = [line for line in out.splitlines() if line.startswith("PADDLE ")]
        argv = json.loads(line[7:])
        log_dir = next(a for a in argv if a.startswith("--log_dir="))
        assert log_dir.startswith(f"--log_dir={tmp_path}") and log_dir.endswith(f"{os.sep}work{os.sep}.paddle-log")
        own = cluster.master if rank == 0 else (cluster.addresses[rank] if cluster.addresses else None)
        assert argv == [
            "--nnodes=3", f"--rank={rank}", f"--master={endpoint(cluster.master, cluster.port)}", "--job_id=launch",
            log_dir, *([f"--host={own}"] if own else []), *devices, "sh", "-c", "python train.py --lr 0.1"]


def test_a_missing_paddle_is_one_clear_error(tmp_path):
    node = Node({"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": "true", "LAUNCH_DISTRIBUTED": "paddle",
                 "LAUNCH_EXIT_FILE": str(tmp_path / "exit_code")}, {"bootstrap.sh": BOOTSTRAP.read_text()})
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").write_text("#!/bin/sh\nexit 1\n")  # this python3 has no paddle
    (tmp_path / "bin" / "python3").chmod(0o755)
    result = boot(tmp_path, node, 0)
    assert result.returncode == 127
    assert "distributed: paddle, but python3 on this node cannot import paddle" in result.stderr
    assert "pip install paddlepaddle" in result.stderr


def test_tensorflow_without_every_address_stops_before_the_job(tmp_path):
    """A node told fewer addresses than nodes (a provider that changed its format) fails with the reason."""
    node = Node({"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": "echo RAN", "LAUNCH_DISTRIBUTED": "tensorflow",
                 "LAUNCH_NUM_NODES": "3", "LAUNCH_NODE_RANK": "1", "LAUNCH_MASTER_ADDR": "h0",
                 "LAUNCH_NODE_ADDRS": "h0,h1", "LAUNCH_EXIT_FILE": str(tmp_path / "exit_code")},
                {"bootstrap.sh": BOOTSTRAP.read_text()})
    result = boot(tmp_path, node, 0)
    assert result.returncode == 2 and "RAN" not in result.stdout
    assert "TF_CONFIG lists every worker, but this node was told 2 address(es) for 3" in result.stderr
    assert (tmp_path / "exit_code").read_text() == "2\n"


@pytest.mark.parametrize("pci", [("0x1ae0", "0x0063"), ("0x1ae0", "0x006f"), ("0x10de", "0x2330"),
                                 ("0x1ae0", "0x0042")])
def test_jax_on_a_tpu_vm_keeps_its_own_discovery(tmp_path, pci):
    """On a TPU VM (the PCI ids JAX itself looks for) no JAX_* variable is set: JAX asks the TPU metadata."""
    device = tmp_path / "pci" / "0000:00:04.0"
    device.mkdir(parents=True)
    (device / "vendor").write_text(pci[0] + "\n")
    (device / "device").write_text(pci[1] + "\n")
    node = Node({"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": SHOW, "LAUNCH_DISTRIBUTED": "jax", "LAUNCH_NUM_NODES": "2",
                 "LAUNCH_NODE_RANK": "1", "LAUNCH_MASTER_ADDR": "h0", "LAUNCH_NODE_ADDRS": "h0,h1"},
                {"bootstrap.sh": BOOTSTRAP.read_text()}, {"LAUNCH_PCI_DEVICES": str(tmp_path / "pci")})
    result = boot(tmp_path, node, 0)
    assert result.returncode == 0, result.stderr
    tpu = pci in (("0x1ae0", "0x0063"), ("0x1ae0", "0x006f"))
    assert ("JAX_COORDINATOR_ADDRESS" in seen(result.stdout)) is not tpu
    assert ("JAX's own discovery" in result.stderr) is tpu


def test_an_ipv6_master_is_bracketed(tmp_path):
    node = Node({"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": SHOW, "LAUNCH_DISTRIBUTED": "tensorflow",
                 "LAUNCH_NUM_NODES": "2", "LAUNCH_NODE_RANK": "0", "LAUNCH_MASTER_ADDR": "fd00::1",
                 "LAUNCH_MASTER_PORT": "3000", "LAUNCH_NODE_ADDRS": "fd00::1,fd00::2"},
                {"bootstrap.sh": BOOTSTRAP.read_text()})
    result = boot(tmp_path, node, 0)
    assert result.returncode == 0, result.stderr
    assert json.loads(seen(result.stdout)["TF_CONFIG"])["cluster"]["worker"] == ["[fd00::1]:3000", "[fd00::2]:3001"]


# -- hostile values ---------------------------------------------------------------------------------

WHERE = ["LAUNCH_MASTER_ADDR", "LAUNCH_NODE_ADDRS", "LAUNCH_NODE_RANK", "LAUNCH_NUM_NODES", "LAUNCH_MASTER_PORT",
         "LAUNCH_GPUS_PER_NODE"]


@pytest.mark.parametrize("distributed", ["jax", "tensorflow", "paddle"])
@pytest.mark.parametrize("where", WHERE)
def test_a_hostile_provider_value_is_refused_never_run(tmp_path, distributed, where):
    """Every value of the corpus, where a topology snippet or a backend puts a node's place: bootstrap.sh
    stops with one clear error naming it; no shell ran it, the job did not start."""
    marker = tmp_path / "pwned"
    refused = 0
    for number, value in enumerate(corpus(marker)):
        env = {"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": "echo JOB-RAN", "LAUNCH_DISTRIBUTED": distributed,
               "LAUNCH_NUM_NODES": "2", "LAUNCH_NODE_RANK": "1", "LAUNCH_MASTER_ADDR": "h0",
               "LAUNCH_MASTER_PORT": "29500", "LAUNCH_GPUS_PER_NODE": "0", "LAUNCH_NODE_ADDRS": "h0,h1"}
        env[where] = f"h0,{value}" if where == "LAUNCH_NODE_ADDRS" else value
        result = boot(tmp_path / str(number), Node(env, {"bootstrap.sh": BOOTSTRAP.read_text()}), 0)
        assert not marker.exists(), f"{value!r} in {where} was executed by a shell"
        assert result.returncode == 2, (value, result.stdout, result.stderr)
        assert "JOB-RAN" not in result.stdout and "PADDLE" not in result.stdout
        assert f"[launch] distributed: {distributed}: " in result.stderr
        refused += 1
    assert refused == len(corpus(marker))


@pytest.mark.parametrize("value", ["08", "0012", "1234567890", "99999999999999999999999", "3.0", "+1", " 1"])
def test_a_number_shell_arithmetic_would_misread_is_refused(tmp_path, value):
    env = {"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": "echo JOB-RAN", "LAUNCH_DISTRIBUTED": "tensorflow",
           "LAUNCH_NUM_NODES": "2", "LAUNCH_NODE_RANK": "1", "LAUNCH_MASTER_ADDR": "h0",
           "LAUNCH_MASTER_PORT": value, "LAUNCH_NODE_ADDRS": "h0,h1"}
    result = boot(tmp_path, Node(env, {"bootstrap.sh": BOOTSTRAP.read_text()}), 0)
    assert result.returncode == 2 and "JOB-RAN" not in result.stdout
    assert "node rank, node count, master port and GPU count must be numbers" in result.stderr


def test_hostile_run_and_setup_text_reaches_paddle_byte_for_byte(tmp_path):
    marker = tmp_path / "pwned"
    values = corpus(marker)
    run = "; ".join(f"printf '%s\\n' {json.dumps(v)}" for v in values[:3]) + "; echo " + "'" + values[3] + "'"
    for number, command in enumerate([run, *values]):
        env = {"LAUNCH_JOB_ID": JOB, "LAUNCH_RUN": command, "LAUNCH_DISTRIBUTED": "paddle",
               "LAUNCH_NUM_NODES": "2", "LAUNCH_NODE_RANK": "0", "LAUNCH_MASTER_ADDR": "127.0.0.1",
               "LAUNCH_MASTER_PORT": "29500", "LAUNCH_NODE_ADDRS": "127.0.0.1,127.0.0.1"}
        result = boot(tmp_path / str(number), Node(env, {"bootstrap.sh": BOOTSTRAP.read_text()}), 0)
        assert result.returncode == 0, result.stderr
        [line] = [line for line in result.stdout.splitlines() if line.startswith("PADDLE ")]
        assert json.loads(line[7:])[-3:] == ["sh", "-c", command]
    assert not marker.exists()


@pytest.mark.parametrize("distributed", ["jax", "tensorflow"])
@pytest.mark.parametrize("backend", ["vertex", "sagemaker"])
def test_a_hostile_host_in_the_providers_cluster_document_is_refused(tmp_path, backend, distributed):
    """A worker's name in CLUSTER_SPEC / resourceconfig.json is the corpus: the topology snippet reads it as
    text (no pattern, no command), bootstrap.sh refuses it before the job starts."""
    marker = tmp_path / "pwned"
    text = spec_text(distributed, "H100:8", run="echo JOB-RAN")
    request = (render_vertex if backend == "vertex" else render_sagemaker)(text)
    for number, value in enumerate(corpus(marker)):
        if backend == "vertex":
            env = {e["name"]: e["value"]
                   for e in request.payload["job_spec"]["worker_pool_specs"][0]["container_spec"]["env"]}
            cluster = {"workerpool0": ["chief-0:2222"], "workerpool1": ["w-0:2222", f"{value}:2222"]}
            provider = {"CLUSTER_SPEC": json.dumps({"cluster": cluster, "task": {"type": "workerpool0", "index": 0}})}
        else:
            env = dict(request.payload["Environment"])
            config = tmp_path / f"resourceconfig-{number}.json"
            config.write_text(resourceconfig("algo-1", ["algo-1", "algo-2", value], ["algo-1"], None))
            provider = {"LAUNCH_SAGEMAKER_RESOURCE_CONFIG": str(config)}
        result = boot(tmp_path / str(number), Node(env, upload_files(request), provider), 0)
        assert not marker.exists(), f"{value!r} was executed by a shell"
        assert result.returncode == 2, (value, result.stdout, result.stderr)
        assert "JOB-RAN" not in result.stdout
        # sorted first (SageMaker's numeric order), it is the master
        assert re.search(r"\[launch\] distributed: \w+: the (node addresses are not host names or IP addresses|"
                         r"master address is not a host name or IP address): ", result.stderr), result.stderr
