"""Kubernetes render: golden manifests, each validated in strict mode against Kubernetes' own schema
(kubernetes-validate) and parsed by the client's models; the held-out style specs through
`kubectl apply --dry-run=client`; names, labels and the problems found before submitting.

Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and review the diff.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC
from pathlib import Path

import pytest
import yaml
from helpers import check_golden

from backends.kubernetes import CoreWeaveBackend, KubernetesBackend
from backends.kubernetes.render import kube_name, label_value
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "kubernetes"
JOB_ID = "golden-20260101-000000-abcdef"
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
KUBE_VERSION = "1.33"

CASES = {  # name: (backend, spec, idempotency key)
    "h100x8_2nodes_spot_coreweave": ("coreweave", (
        "name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: H100:8\n  nodes: 2\n"
        "spot: true\nmax_runtime: 24h\ndistributed: torchrun\n"), None),
    "t4_nvidia": ("kubernetes", (
        "name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: T4:1\n"
        "backends:\n  kubernetes:\n    gpu_label: nvidia\n"), None),
    "every_optional_field": ("kubernetes", (
        "name: golden\nimage: img:1\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: A100-80GB:8\n  nodes: 4\n  cpus: 64\n  memory_gb: 512.5\n  disk_gb: 500\n"
        "distributed: torchrun\nmax_runtime: 12h\nretries: 2\ncheckpoint_dir: /ckpt\n"
        "backends:\n  kubernetes:\n    namespace: team-a\n    service_account: trainer\n"
        "    node_selector: {pool: training}\n"
        "    tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n"
        "    priority_class: high\n    queue: team-a-queue\n    image_pull_secrets: [regcred]\n"
        "    gpu_label: coreweave\n    gpu_class: A100_NVLINK_A100_SXM4_80GB\n    shm_size: 64Gi\n    rdma: true\n"),
        "CI run #42"),
}


def render(backend: str, text: str, key: str | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    cls = CoreWeaveBackend if backend == "coreweave" else KubernetesBackend
    secrets = {name: "****" for name in spec.secrets}
    return cls(spec.backends.get(backend, {"namespace": "default"})).render(
        spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


def strict(manifest: dict) -> None:
    """Kubernetes' schema in strict mode (unknown fields fail) and the client's own model."""
    import kubernetes_validate
    from kubernetes import client

    kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
    getattr(client, f"V1{manifest['kind']}").from_dict(manifest)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_manifests_pass_kubernetes_strict_schema(case):
    request = render(*CASES[case])
    for manifest in request.payload["manifests"]:
        strict(manifest)
    shown = {"operation": request.operation, "payload": request.payload,
             "uploads": [u.destination for u in request.uploads]}
    shown["payload"]["manifests"][2]["data"]["bootstrap.sh"] = "<launcher/bootstrap.sh>"  # its own file
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def test_a_misspelled_field_fails_the_strict_check():
    import kubernetes_validate

    job = render(*CASES["t4_nvidia"]).payload["manifests"][0]
    job["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="volumeMount"):
        strict(job)


def test_the_job_is_indexed_and_its_secrets_never_literal():
    payload = render(*CASES["every_optional_field"]).payload
    job, service, configmap, secret = payload["manifests"]
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["suspend"]) == (2, 43200, True)
    assert "ttlSecondsAfterFinished" not in spec
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == service["metadata"]["name"] == job["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    container = pod["containers"][0]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "8", "rdma/ib": "1"},
                                      "requests": {"cpu": "64", "memory": "524800Mi", "ephemeral-storage": "500Gi"}}
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    assert "WANDB_API_KEY" not in {e["name"] for e in container["env"]}
    assert secret["stringData"] == {"WANDB_API_KEY": "****"}
    assert pod["nodeSelector"] == {"pool": "training", "gpu.nvidia.com/class": "A100_NVLINK_A100_SXM4_80GB"}
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-queue" and payload["resume"] is False
    assert job["metadata"]["annotations"]["launch.dev/idempotency-key"] == "CI run #42"
    assert all(m["metadata"]["namespace"] == "team-a" for m in payload["manifests"])
    topology = configmap["data"]["topology.sh"]
    name = job["metadata"]["name"]
    assert f"LAUNCH_MASTER_ADDR={name}-0.{name}" in topology and "JOB_COMPLETION_INDEX" in topology


def test_coreweave_presets_its_gpu_label():
    pod = render(*CASES["h100x8_2nodes_spot_coreweave"]).payload["manifests"][0]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"gpu.nvidia.com/class": "H100_NVLINK_80GB"}


@pytest.mark.parametrize("job_id", ["golden-20260101-000000-abcdef", "9lives-20260101-000000-abcdef",
                                    "a" * 40 + "-20260101-000000-abcdef", "Odd_Name.x-20260101-000000-abcdef"])
def test_names_are_dns_labels_with_room_for_the_pod_index(job_id):
    for nodes in (1, 2, 512):
        name = kube_name(job_id, nodes)
        assert re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
        assert len(f"{name}-{nodes - 1}") <= 63
    assert kube_name(job_id, 2) != kube_name(job_id + "x", 2)


def test_idempotency_keys_become_label_values():
    assert label_value("ci-42") == "ci-42"
    hashed = label_value("CI run #42")
    assert re.fullmatch(r"h-[0-9a-f]{40}", hashed) and hashed != label_value("CI run #43")


@pytest.mark.parametrize(("text", "fragment"), [
    ("name: x\nrun: r\n", "image"),
    ("name: x\nimage: i\nrun: r\nresources:\n  accelerators: T4\nbackends:\n  kubernetes:\n    gpu_label: coreweave\n",
     "gpu_class"),
])
def test_problems_are_said_before_submitting(text, fragment):
    with pytest.raises(SpecError) as caught:
        render("kubernetes", text)
    assert fragment in str(caught.value)


def test_held_out_specs_dry_runs_pass_kubectl_client_dry_run(tmp_path, cli, write_spec):
    """What `launch run --dry-run` prints (multi-document YAML) goes as it is through `kubectl apply
    --dry-run=client --validate=false -f -` (kubectl asks the server for its API groups and reads each
    object, so it talks to the fake; nothing is created); `-o json` holds the same manifests."""
    from fakes.kube_fake import KubeFake

    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not installed: ci/test installs it (Debian's kubernetes-client); install it to run this"
    printed, documents = [], []
    for backend, case in (("coreweave", "h100x8_2nodes_spot_coreweave"), ("kubernetes", "t4_nvidia")):
        spec = write_spec(CASES[case][1] + "secrets: [HF_TOKEN]\n", f"{case}.yaml")
        done = cli("run", str(spec), "--backend", backend, "--dry-run", env={"HF_TOKEN": "x"}, check_rc=0)
        printed.append(done.stdout)
        as_json = cli("run", str(spec), "--backend", backend, "--dry-run", "-o", "json", env={"HF_TOKEN": "x"},
                      check_rc=0)
        manifests = json.loads(as_json.stdout)["payload"]["manifests"]
        shown = list(yaml.safe_load_all(done.stdout))
        assert [m["kind"] for m in shown] == [m["kind"] for m in manifests]
        assert shown[0]["spec"]["completions"] == manifests[0]["spec"]["completions"]
        assert "x" not in [v for m in shown if m["kind"] == "Secret" for v in m["stringData"].values()]
        documents += manifests
    with KubeFake(tmp_path, mode="phases") as fake:
        fake.anonymous_reads = True  # kubectl sends no bearer token over http: its reads go unauthenticated
        config = fake.kubeconfig(tmp_path / "kubeconfig")
        done = subprocess.run([kubectl, "--kubeconfig", str(config), "apply", "--dry-run=client", "--validate=false",
                               "-f", "-"], input="".join(printed),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("(dry run)") == len(documents) == 8
        assert fake.objects("jobs") == [] and not [m for m, _ in fake.requests if m != "GET"]


def test_a_bundle_too_big_for_a_configmap_needs_the_bundle_store():
    spec = parse_spec("name: x\nimage: i\ncode: .\nrun: r\n", "spec.yaml", base_dir=Path(__file__).parent)
    big = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=800 * 1024, file_count=1)
    with pytest.raises(SpecError, match=r"800 KiB.*bundle_store"):
        KubernetesBackend({"namespace": "default"}).render(spec, JOB_ID, big, {})
    request = KubernetesBackend({"namespace": "default", "bundle_store": "s3://team-bucket/launch"}).render(
        spec, JOB_ID, big, {})
    job, _, configmap = request.payload["manifests"]
    for manifest in request.payload["manifests"]:
        strict(manifest)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["/bin/sh", "/launch/files/fetch.sh"] and "fetch.sh" in configmap["data"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LAUNCH_BUNDLE"] == "/launch/job/bundle.tar.gz" and env["LAUNCH_BUNDLE_URL"].startswith("<")
    assert [u.destination for u in request.uploads] == [f"s3://team-bucket/launch/bundles/{'d' * 64}.tar.gz"]


def test_pods_of_one_index_are_read_in_the_order_they_ran_even_within_one_second():
    """Kubernetes' timestamps have one-second resolution: a fast retry can be created and end in the same
    second as the pod it replaced. The log reader must still read the failed pod first, whatever order the
    API lists them in (it lists by name, and a retry's name is random)."""
    from datetime import datetime

    from kubernetes.client import (
        V1ContainerState,
        V1ContainerStateTerminated,
        V1ContainerStatus,
        V1ObjectMeta,
        V1Pod,
        V1PodStatus,
    )

    from backends.kubernetes.backend import _ran_order
    from backends.kubernetes.render import INDEX_ANNOTATION

    second = datetime(2026, 12, 1, 11, 59, 30, tzinfo=UTC)

    def pod(name: str, phase: str, code: int) -> V1Pod:
        ended = V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=code, finished_at=second))
        status = V1ContainerStatus(name="main", image="img:1", image_id="", ready=False, restart_count=0,
                                   state=ended)
        meta = V1ObjectMeta(name=name, creation_timestamp=second, annotations={INDEX_ANNOTATION: "0"})
        return V1Pod(metadata=meta, status=V1PodStatus(phase=phase, container_statuses=[status]))

    retry, failed = pod("job-0-aaaaa", "Succeeded", 0), pod("job-0-zzzzz", "Failed", 5)
    assert [p.metadata.name for p in sorted([retry, failed], key=_ran_order)] == ["job-0-zzzzz", "job-0-aaaaa"]
