"""The kubernetes backend end to end: the real CLI (subprocess) and the real `kubernetes` client against
the fake API server (tests/fakes/kube_fake.py), whose kubelet runs each pod's command here.

What the conformance suite already checks (dry run = sent, status without side effects, cancel on an
ended job, log cursors, find/list) is not repeated; these are the things particular to Kubernetes: a
2-node torchrun all-reduce over the headless Service's name, a failing index, activeDeadlineSeconds,
Kueue, pods that can never start, cancel's cascade, `list --sync` from another LAUNCH_HOME.
After every test the fake holds no object the schema refused and raised nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest
from fakes.kube_fake import KubeFake
from helpers import job_script

from backends.kubernetes import KubernetesBackend
from launcher.backend import Handle, JobState

SUBMITTED = re.compile(r"submitted (\S+) to kubernetes")
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(scope="module")
def module_fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("kube")
    # every "image" has the test's venv on its PATH (torchrun, python with torch)
    with KubeFake(root, nodes=2, gpus_per_node=8, image_path=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin") as fake:
        fake.kubeconfig(root / "kubeconfig")
        yield fake


@pytest.fixture
def kube(module_fake, cli, write_spec):
    module_fake.reset()

    class Helper:
        fake = module_fake

        @staticmethod
        def spec(body: str, **settings) -> Path:
            values = {"pending_timeout": "3s", **settings}
            lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in values.items())
            return write_spec(f"image: python:3.12\n{body}backends:\n  kubernetes:\n{lines}")

        @staticmethod
        def run(*args: str, check_rc: int | None = None, env: dict | None = None, **kw):
            kubeconfig = str(module_fake.root / "kubeconfig")
            return cli(*args, check_rc=check_rc, env={"KUBECONFIG": kubeconfig, **(env or {})}, **kw)

        @staticmethod
        def submit(spec: Path, *extra: str, env: dict | None = None) -> str:
            out = Helper.run("run", str(spec), "--backend", "kubernetes", *extra, check_rc=0, env=env).stdout
            return SUBMITTED.search(out).group(1)

        @staticmethod
        def job(job_id: str) -> dict:
            (found,) = [j for j in module_fake.objects("jobs")
                        if j["metadata"]["annotations"]["launch.dev/job-id"] == job_id]
            return found

        @staticmethod
        def status(job_id: str) -> dict:
            return json.loads(Helper.run("status", job_id, "-o", "json", check_rc=0).stdout)

        @staticmethod
        def await_state(job_id: str, *states: str, timeout: float = 30) -> dict:
            if set(states) <= {"SUCCEEDED", "FAILED", "CANCELLED"}:  # one process polling, not one per poll
                done = Helper.run("wait", job_id, "--timeout", str(timeout), "-o", "json", timeout=timeout + 30)
                record = json.loads(done.stdout)
                assert record["state"] in states, record
                return record
            # asked in-process (a CLI call per poll costs a second on a loaded machine), from the stored handle
            handle = Handle.from_json(Helper.status(job_id)["handle"])
            backend = KubernetesBackend({"kubeconfig": str(module_fake.root / "kubeconfig"), "pending_timeout": "3s"})
            deadline = time.monotonic() + timeout
            while (status := backend.status(handle)).state.value not in states:
                assert time.monotonic() < deadline, f"{job_id} stayed {status}"
                time.sleep(0.1)
            return {"state": status.state.value, "raw_state": status.raw_state, "message": status.message}

    yield Helper
    assert module_fake.rejected == [], module_fake.rejected




def test_two_node_torchrun_allreduce_over_the_service_name(kube, tmp_path):
    """Rank 0 is found at `<job>-0.<service>`: the fake's kubelet gives each pod the cluster's DNS answers
    in its own /etc/hosts (in the pod's mount namespace only), so torchrun resolves the name the
    backend rendered. `run -f` merges both nodes' logs with a node prefix."""
    code = tmp_path / "code"
    code.mkdir()
    job_script("allreduce.py", code)
    spec = kube.spec("name: k8s-torch\ncode: ./code\ndistributed: torchrun\nresources:\n  nodes: 2\n"
                     "env:\n  GLOO_SOCKET_IFNAME: lo\nrun: python allreduce.py\n")
    result = kube.run("run", str(spec), "--backend", "kubernetes", "-f", timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    job_id = SUBMITTED.search(result.stdout).group(1)
    name = kube.job(job_id)["metadata"]["name"]
    for node in (0, 1):
        assert re.search(rf"\[node {node}\] allreduce ok sum=3 rank={node} node={node} master={name}-0\.{name}\b",
                         result.stdout), result.stdout
    one = kube.run("logs", job_id, "--node", "1", check_rc=0).stdout
    assert "allreduce ok sum=3 rank=1" in one and "rank=0" not in one


def test_a_failing_index_fails_the_job_with_its_exit_code_and_last_lines(kube):
    spec = kube.spec("name: k8s-fail\nresources:\n  nodes: 2\nsecrets: [K8S_TOKEN]\n"
                     'run: \'if [ "$LAUNCH_NODE_RANK" = 1 ]; then echo "node one gives up"; exit 3; fi; sleep 30\'\n')
    job_id = kube.submit(spec, env={"K8S_TOKEN": "tok-canary-5150"})
    record = kube.await_state(job_id, "FAILED")
    assert "BackoffLimitExceeded" in record["raw_state"]
    assert "node 1 exited 3" in record["message"] and "node one gives up" in record["message"]
    # the secret reached the pods through the Secret only: no other object holds it
    objects = [o for plural in ("jobs", "pods", "services", "configmaps") for o in kube.fake.objects(plural)]
    assert objects and "tok-canary-5150" not in json.dumps(objects)
    others = [b for b in kube.fake.created if b["kind"] != "Secret"]
    assert "tok-canary-5150" not in json.dumps(others)
    assert "tok-canary-5150" not in kube.run("status", job_id, "-o", "json").stdout
    pods = kube.fake.pods_of(kube.job(job_id)["metadata"]["name"])
    assert [p["status"]["phase"] for p in pods] == ["Failed"]  # node 0's pod was deleted with the Job's failure


def test_max_runtime_is_the_jobs_active_deadline(kube):
    job_id = kube.submit(kube.spec("name: k8s-deadline\nmax_runtime: 1s\nrun: sleep 30\n"))
    record = kube.await_state(job_id, "FAILED")
    assert record["raw_state"] == "Failed:DeadlineExceeded"


def test_a_queued_job_waits_for_kueue_then_runs(kube):
    job_id = kube.submit(kube.spec("name: k8s-queue\nrun: echo admitted\n", queue="team-q"))
    job = kube.job(job_id)
    assert job["spec"]["suspend"] is True and job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-q"
    record = kube.await_state(job_id, "PENDING")
    assert record["raw_state"] == "Suspended" and "Kueue" in record["message"]
    time.sleep(0.3)
    assert kube.fake.pods_of(job["metadata"]["name"]) == []  # launch did not resume it itself
    kube.fake.admit(job["metadata"]["name"])
    kube.await_state(job_id, "SUCCEEDED")
    assert "admitted" in kube.run("logs", job_id, check_rc=0).stdout


@pytest.mark.parametrize(("body", "said"), [
    ("name: k8s-big\nresources:\n  accelerators: H100:16\nrun: 'true'\n", "0/2 nodes are available: 2 Insufficient "
     "nvidia.com/gpu"),
    ("name: k8s-pull\nimage: registry.invalid/team/train:1\nrun: 'true'\n", "cannot pull its image"),
])
def test_a_job_that_can_never_start_says_why_then_fails(kube, body, said):
    spec = kube.spec(body)
    if "registry.invalid" in body:
        spec.write_text(spec.read_text().replace("image: python:3.12\n", "", 1))
    job_id = kube.submit(spec)
    # what status says while the pod waits (asked in-process, with a patience the test does not run out of)
    handle = Handle.from_json(kube.status(job_id)["handle"])
    patient = KubernetesBackend({"kubeconfig": str(kube.fake.root / "kubeconfig"), "pending_timeout": 3600})
    deadline = time.monotonic() + 20
    while said not in (pending := patient.status(handle)).message:
        assert time.monotonic() < deadline, pending
        time.sleep(0.1)
    assert pending.state is JobState.PENDING
    failed = kube.await_state(job_id, "FAILED")  # past pending_timeout (3 s): it can never start
    assert failed["raw_state"] == "NeverStarted" and "pending_timeout" in failed["message"]


def test_cancel_deletes_the_job_and_everything_it_owns(kube):
    job_id = kube.submit(kube.spec("name: k8s-cancel\nresources:\n  nodes: 2\nsecrets: [K8S_TOKEN]\n"
                                   "run: echo started; sleep 60\n"), env={"K8S_TOKEN": "x"})
    kube.await_state(job_id, "RUNNING")
    name = kube.job(job_id)["metadata"]["name"]
    processes = list(kube.fake.processes.values())
    assert len(processes) == 2
    kube.run("cancel", job_id, check_rc=0)
    kube.run("cancel", job_id, check_rc=0)  # repeat-safe
    assert kube.status(job_id)["state"] == "CANCELLED"
    for plural in ("jobs", "pods", "services", "configmaps", "secrets"):
        assert not [o for o in kube.fake.objects(plural) if o["metadata"]["name"].startswith(name)], plural
    assert all(p.poll() is not None for p in processes)
    deletes = [p for m, p in kube.fake.requests if m == "DELETE"]
    assert deletes == [f"/apis/batch/v1/namespaces/default/jobs/{name}"]  # the garbage collector did the rest


def test_list_sync_finds_jobs_from_another_machine(kube, tmp_path):
    job_id = kube.submit(kube.spec("name: k8s-list\nrun: echo listed\n"), "--idempotency-key", "ci-7")
    kube.await_state(job_id, "SUCCEEDED")
    other = tmp_path / "elsewhere"
    listed = kube.run("list", "--sync", "-o", "json", env={"LAUNCH_HOME": str(other)}, check_rc=0).stdout
    assert job_id in listed
    again = kube.run("run", str(kube.spec("name: k8s-list\nrun: echo listed\n")), "--backend", "kubernetes",
                     "--idempotency-key", "ci-7", env={"LAUNCH_HOME": str(other)}, check_rc=0).stdout
    assert f"job {job_id} already exists" in again and len(kube.fake.objects("jobs")) == 1


def test_a_bundle_too_big_for_a_configmap_goes_through_the_bundle_store(kube, tmp_path):
    """Over 750 KiB, the code goes to an S3-compatible bucket (moto's S3 over HTTP here) and each pod
    fetches it by a presigned URL: the pod gets no storage credential, only that URL."""
    import hashlib

    import boto3
    from moto.server import ThreadedMotoServer

    keys = {"AWS_ACCESS_KEY_ID": "bundle-key-id", "AWS_SECRET_ACCESS_KEY": "bundle-secret-4711",
            "AWS_DEFAULT_REGION": "us-east-1"}
    code = tmp_path / "code"
    code.mkdir()
    payload = os.urandom(1100 * 1000)  # incompressible: over the ConfigMap's 750 KiB, and overlaid when edited
    (code / "weights.bin").write_bytes(payload)
    (code / "train.sh").write_text("echo first version\n")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in keys.items()
                                                     if k != "AWS_DEFAULT_REGION"},
                     region_name="us-east-1").create_bucket(Bucket="k8s-bundles")
        spec = kube.spec("name: k8s-big-code\ncode: ./code\nrun: sha256sum weights.bin && sh train.sh\n",
                         bundle_store="s3://k8s-bundles/launch", endpoint_url=endpoint)
        job_id = kube.submit(spec, env=keys)
        kube.await_state(job_id, "SUCCEEDED")
        assert hashlib.sha256(payload).hexdigest() in kube.run("logs", job_id, check_rc=0).stdout
        # an edit: the base is in the bucket already; the pod fetches it and the small overlay
        (code / "train.sh").write_text("echo second version\n")
        edited = kube.submit(spec, env=keys)
        kube.await_state(edited, "SUCCEEDED")
        logs = kube.run("logs", edited, check_rc=0).stdout
        assert hashlib.sha256(payload).hexdigest() in logs and "second version" in logs
        sizes = sorted(o["Size"] for o in boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
            k.lower(): v for k, v in keys.items() if k != "AWS_DEFAULT_REGION"}).list_objects_v2(
            Bucket="k8s-bundles")["Contents"])
        assert len(sizes) == 2 and sizes[0] < 0.05 * sizes[1]  # the base, and the overlay beside it
        second = kube.job(edited)["spec"]["template"]["spec"]["containers"][0]["env"]
        assert "Signature=" in {e["name"]: e["value"] for e in second}["LAUNCH_BUNDLE_OVERLAY_URL"]
    finally:
        server.stop()
    job = kube.job(job_id)
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LAUNCH_BUNDLE_URL"].startswith(f"{endpoint}/k8s-bundles/launch/bundles/")
    assert "Signature=" in env["LAUNCH_BUNDLE_URL"]
    (configmap,) = [c for c in kube.fake.objects("configmaps") if c["metadata"]["name"].startswith(
        job["metadata"]["name"])]
    assert "binaryData" not in configmap and "fetch.sh" in configmap["data"]
    assert "bundle-secret-4711" not in json.dumps([kube.fake.objects(p) for p in ("jobs", "pods", "configmaps")])


def test_logs_follow_a_retried_pod(kube, tmp_path):
    """retries is the Job's backoffLimit: the failed pod is replaced by a new one; `-f` shows the failed
    pod's lines, then the new pod's from its start (the cursor is per pod), and the job succeeds."""
    marker = tmp_path / "tried-once"
    spec = kube.spec(f"name: k8s-retry\nretries: 1\nrun: 'if [ -e {marker} ]; then echo second try; else "
                     f"touch {marker}; echo first try; exit 5; fi'\n")
    result = kube.run("run", str(spec), "--backend", "kubernetes", "-f", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout  # one node: no node prefix
    assert "\nfirst try\n" in out and "\nsecond try\n" in out and out.index("first try") < out.index("second try")
    job_id = SUBMITTED.search(result.stdout).group(1)
    pods = kube.fake.pods_of(kube.job(job_id)["metadata"]["name"])
    assert sorted(p["status"]["phase"] for p in pods) == ["Failed", "Succeeded"]
