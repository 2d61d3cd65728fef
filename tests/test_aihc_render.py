"""aihc render: golden v2 CreateJob requests, each checked against the published definition (the fake's
own checker over tests/vendor/bce-openapi-meta-aihc); the spec problems AIHC would refuse, all at once;
credentials refused in a spec; the idempotency key as a label-safe digest; the state table. Regenerate
goldens with UPDATE_GOLDEN=1 after an intended change and review the diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.aihc_fake import check_request
from helpers import check_golden

from backends.aihc import AihcBackend
from backends.aihc.render import idempotency_label
from backends.aihc.states import STATES, status_of
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "aihc"
JOB_ID = "golden-20260101-000000-abcdef"
SETTINGS = {"resource_pool_id": "cce-1uji3ib5", "queue": "default", "bos_bucket": "team-bucket"}
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
IMAGE = "registry.baidubce.com/aihcp-public/pytorch:2.3.0-cu121"

CASES = {
    "a100_single": (f"name: golden\nimage: {IMAGE}\nrun: python train.py\nresources:\n  accelerators: A100-80GB\n",
                    None),
    "cpu_only": (f"name: golden\nimage: {IMAGE}\nrun: python train.py\n", None),
    "a800x8_2nodes_rdma": (
        f"name: golden\nimage: {IMAGE}\nrun: python train.py\nresources:\n  accelerators: A100-80GB:8\n  nodes: 2\n"
        "distributed: torchrun\nbackends:\n  aihc:\n    resource_name: baidu.com/a800_80g_cgpu\n"
        "    enable_rdma: true\n", None),
    "every_optional_field": (
        f"name: golden\nimage: {IMAGE}\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: V100:8\n  nodes: 4\n  cpus: 32\n  memory_gb: 256\n"
        "distributed: torchrun\ncheckpoint_dir: /ckpt\n"
        "backends:\n  aihc:\n    priority: high\n    prefix: team/launch\n    mount_path: /mnt/team/\n"
        "    resource_pool_id: aihc-serverless\n    queue: q-abc123\n", "CI run #42"),
}


def render(text: str, key: str | None = None, settings: dict | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    merged = {**SETTINGS, **(settings or {}), **spec.backends.get("aihc", {})}
    secrets = {name: "****" for name in spec.secrets}
    return AihcBackend(merged).render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_request_is_what_the_published_definition_allows(case):
    request = render(*CASES[case])
    payload = request.payload
    assert (payload["method"], payload["path"], payload["headers"]) == ("POST", "/", {"X-API-Version": "v2"})
    assert payload["query"]["action"] == "CreateJob"
    assert check_request("CreateJob", payload["query"], payload["body"]) == []
    shown = {"operation": request.operation, "payload": payload, "uploads": [u.destination for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def test_the_body_carries_the_queue_and_no_nulls_the_sdk_would_send():
    body = render(*CASES["a100_single"]).payload["body"]
    assert body["queue"] == "default" and "enableBccl" not in body and "faultTolerance" not in body
    assert "null" not in json.dumps(body)
    assert body["jobSpec"]["resources"] == [{"name": "baidu.com/a100_80g_cgpu", "quantity": 1}]
    assert "resources" not in render(*CASES["cpu_only"]).payload["body"]["jobSpec"]


def test_every_problem_is_reported_at_once_naming_the_field():
    with pytest.raises(SpecError) as caught:
        render("name: x\nrun: y\nspot: true\nretries: 1\nmax_runtime: 1h\noutputs: bos://b/o/\n"
               "resources:\n  accelerators: H100:3\n", settings={"queue": None, "bos_bucket": "Bad_Bucket"})
    text = str(caught.value)
    for field in ("queue", "bos_bucket", "image", "spot", "retries", "outputs", "max_runtime",
                  "resources.accelerators"):
        assert field in text, text
    assert "A100-80GB" in text  # the catalog's offers are named


def test_credentials_in_a_spec_are_refused_naming_where_they_belong():
    with pytest.raises(SpecError) as caught:
        render(f"name: x\nimage: {IMAGE}\nrun: y\nbackends:\n  aihc:\n    secret_access_key: sk-abc\n")
    assert "backends.aihc.secret_access_key" in str(caught.value) and "BCE_SECRET_ACCESS_KEY" in str(caught.value)
    assert "sk-abc" not in str(caught.value)


def test_an_unsafe_resource_name_setting_is_refused_by_the_settings_model():
    with pytest.raises(Exception, match="resource_name"):
        AihcBackend({**SETTINGS, "resource_name": "baidu.com/a800; rm -rf /"})


def test_the_job_id_and_the_key_digest_travel_as_labels_and_secrets_only_as_given():
    body = render(*CASES["every_optional_field"]).payload["body"]
    assert body["labels"] == [{"key": "launch-job-id", "value": JOB_ID},
                              {"key": "launch-idempotency-key", "value": idempotency_label("CI run #42")}]
    assert {"name": "WANDB_API_KEY", "value": "****"} in body["jobSpec"]["envs"]
    assert idempotency_label("CI run #42") != idempotency_label("CI run #43")


def test_every_state_is_mapped_and_a_new_one_is_unknown():
    assert status_of({"status": "Running"}, "bj", "p").state is JobState.RUNNING
    assert status_of({"status": "Stopped"}, "bj", "p").state is JobState.CANCELLED
    assert status_of({"status": "Hibernating"}, "bj", "p").state is JobState.UNKNOWN
    failed = {"status": "Failed", "podList": {"pods": [{"objectMeta": {"name": "x-worker-0"}, "reason": "OOMKilled"}]}}
    assert status_of(failed, "bj", "p").message == "x-worker-0: OOMKilled"
    for raw, state in STATES.items():
        assert status_of({"status": raw}, "bj", "p").state is state
