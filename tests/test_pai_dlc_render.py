"""pai_dlc render: golden CreateJob bodies, each read strictly by the SDK's own CreateJobRequest model
(its from_map drops unknown keys silently, so the key sets are compared) with main.tea's required fields;
the spec problems DLC would refuse, all at once; the topology snippet that maps DLC's variables to LAUNCH_*;
the state table. Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and review the diff.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fakes.pai_dlc_fake import TEA_PATH, _difference, required_fields
from helpers import check_golden

from backends.pai_dlc import PaiDlcBackend
from backends.pai_dlc.render import TOPOLOGY
from backends.pai_dlc.states import STATES, status_of
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "pai_dlc"
JOB_ID = "golden-20260101-000000-abcdef"
SETTINGS = {"region": "cn-hangzhou", "workspace_id": "ws-123", "bucket": "team-bucket"}
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
IMAGE = "dsw-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai/pytorch-training:2.3-gpu"

CASES = {
    "a10_single": (f"name: golden\nimage: {IMAGE}\nrun: python train.py\nresources:\n  accelerators: A10\n", None),
    "cpu_only": (f"name: golden\nimage: {IMAGE}\nrun: python train.py\n", None),
    "a100x8_2nodes_quota": (
        f"name: golden\nimage: {IMAGE}\nrun: python train.py\nresources:\n  accelerators: A100-80GB:8\n  nodes: 2\n"
        "distributed: torchrun\nbackends:\n  pai_dlc:\n    resource_id: quota-abc\n", None),
    "every_optional_field": (
        f"name: golden\nimage: {IMAGE}\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: V100:8\n  nodes: 4\n"
        "distributed: torchrun\nmax_runtime: 12h\ncheckpoint_dir: /ckpt\n"
        "backends:\n  pai_dlc:\n    priority: 7\n    data_sources: [d-abc123]\n    prefix: team/launch\n"
        "    mount_path: /mnt/team/\n", "CI run #42"),
}


def render(text: str, key: str | None = None, settings: dict | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    merged = {**SETTINGS, **(settings or {}), **spec.backends.get("pai_dlc", {})}
    secrets = {name: "****" for name in spec.secrets}
    return PaiDlcBackend(merged).render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_body_is_read_whole_by_the_sdk_model(case):
    from alibabacloud_pai_dlc20201203 import models

    request = render(*CASES[case])
    kept = models.CreateJobRequest().from_map(request.payload).to_map()
    assert _difference(request.payload, kept) == []  # the model keeps every key, at every depth
    assert required_fields("CreateJobRequest", TEA_PATH.read_text()) <= set(request.payload)
    shown = {"operation": request.operation, "body": request.payload,
             "uploads": [u.destination for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def test_quota_jobs_ask_for_amounts_and_pay_as_you_go_jobs_for_an_instance_type():
    quota = render(*CASES["a100x8_2nodes_quota"]).payload
    assert quota["ResourceId"] == "quota-abc"
    assert quota["JobSpecs"] == [{"Type": "Worker", "Image": IMAGE, "PodCount": 2, "ResourceConfig": {
        "CPU": "128", "Memory": "1000Gi", "GPU": "8", "GPUType": "NVIDIA A100 80GB"}}]
    public = render(*CASES["a10_single"]).payload
    assert "ResourceId" not in public and public["JobSpecs"][0]["EcsSpec"] == "ecs.gn7i-c8g1.2xlarge"


def test_every_problem_is_reported_at_once_naming_the_field():
    with pytest.raises(SpecError) as caught:
        render("name: x\nrun: y\nspot: true\nretries: 1\noutputs: oss://b/o/\nresources:\n  accelerators: H100:3\n",
               settings={"workspace_id": None, "bucket": "Bad_Bucket"})
    text = str(caught.value)
    for field in ("workspace_id", "bucket", "image", "spot", "retries", "outputs", "resources.accelerators"):
        assert field in text, text
    assert "A10" in text  # the catalog's offers are named


def test_an_unknown_ecs_spec_setting_is_refused_by_the_settings_model():
    with pytest.raises(Exception, match="ecs_spec"):
        PaiDlcBackend({**SETTINGS, "ecs_spec": "gn7i; rm -rf /"})


def test_the_idempotency_key_and_job_id_travel_as_tags():
    payload = render(*CASES["every_optional_field"]).payload
    assert payload["Settings"] == {"Tags": {"launch-job-id": JOB_ID, "launch-idempotency-key": "CI run #42"}}
    assert payload["DisplayName"] == JOB_ID
    with pytest.raises(SpecError, match="idempotency-key"):
        render(CASES["a10_single"][0], "bad\nkey")


def test_secrets_are_in_envs_only_as_render_was_given_them():
    payload = render(*CASES["every_optional_field"]).payload
    assert payload["Envs"]["WANDB_API_KEY"] == "****"


@pytest.mark.parametrize("given, expected", [
    ({"RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "dlc-x-worker-0", "MASTER_PORT": "23456"},
     "1 4 dlc-x-worker-0 23456"),
    ({}, "9 9 before 1"),  # not a DLC pod: what the launcher set stays
])
def test_topology_maps_dlc_variables_to_launch_ones(given, expected):
    script = TOPOLOGY + 'echo "$LAUNCH_NODE_RANK $LAUNCH_NUM_NODES $LAUNCH_MASTER_ADDR $LAUNCH_MASTER_PORT"\n'
    env = {"PATH": "/usr/bin:/bin", "LAUNCH_NODE_RANK": "9", "LAUNCH_NUM_NODES": "9", "LAUNCH_MASTER_ADDR": "before",
           "LAUNCH_MASTER_PORT": "1", **given}
    assert subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == expected


def test_every_documented_state_is_mapped_and_a_new_one_is_unknown():
    assert status_of({"Status": "Running"}, "cn-hangzhou").state is JobState.RUNNING
    assert status_of({"Status": "SucceededReserving"}, "r").state is JobState.SUCCEEDED
    assert status_of({"Status": "Stopped", "ReasonCode": "JobStoppedByUser"}, "r").message == "JobStoppedByUser"
    assert status_of({"Status": "Hibernating"}, "r").state is JobState.UNKNOWN
    assert {"Creating", "Queuing", "Bidding", "EnvPreparing", "SanityChecking", "Running", "Restarting", "Stopping",
            "SucceededReserving", "FailedReserving", "Succeeded", "Failed", "Stopped"} <= set(STATES)
