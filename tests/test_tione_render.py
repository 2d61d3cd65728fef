"""tione render: golden CreateTrainingTask requests, each held to tccli's api.json (members, types, required
ones; the fake's own checker) and read whole by the SDK's CreateTrainingTaskRequest (its "fields are useless"
warning is an error here); the spec problems TI-ONE would refuse, all at once; the PREPAID units; the
topology snippet; the state table. Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and
review the diff.
"""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import pytest
from fakes.tione_fake import ApiDefinition
from helpers import check_golden

from backends.tione import TioneBackend
from backends.tione.render import TOPOLOGY, task_name
from backends.tione.states import STATES, status_of
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "tione"
JOB_ID = "golden-20260101-000000-abcdef"
SETTINGS = {"region": "ap-guangzhou", "cos_bucket": "team-1250000000"}
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
IMAGE = "ccr.ccs.tencentyun.com/team/pytorch:2.3-cuda12.1"

CASES = {
    "t4_single": (f"name: golden\nimage: {IMAGE}\nrun: python train.py\nresources:\n  accelerators: T4\n", None),
    "cpu_only": (f"name: golden\nimage: {IMAGE}\nrun: python train.py\n", None),
    "v100x8_2nodes_prepaid": (
        f"name: golden\nimage: {IMAGE}\nrun: python train.py\nresources:\n  accelerators: V100:8\n  nodes: 2\n"
        "distributed: torchrun\nbackends:\n  tione:\n    charge_type: PREPAID\n    resource_group_id: trsg-abc\n",
        None),
    "every_optional_field": (
        f"name: golden\nimage: {IMAGE}\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: T4:2\n  nodes: 4\n"
        "distributed: torchrun\ncheckpoint_dir: /ckpt\n"
        "backends:\n  tione:\n    project_id: '42'\n    prefix: team/launch\n    mount_path: /mnt/team/\n"
        "    vpc: vpc-abc1\n    subnet: subnet-abc2\n    image_type: TCR\n    registry_id: tcr-abc3\n"
        "    image_secret: team-registry\n", "CI run 42"),
}


def render(text: str, key: str | None = None, settings: dict | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    merged = {**SETTINGS, **(settings or {}), **spec.backends.get("tione", {})}
    secrets = {name: "****" for name in spec.secrets}
    return TioneBackend(merged).render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_request_keeps_to_api_json_and_the_sdk_model(case):
    from tencentcloud.tione.v20211111 import models

    request = render(*CASES[case])
    assert ApiDefinition().problems("CreateTrainingTaskRequest", request.payload, "", inbound=True) == []
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*are useless")
        model = models.CreateTrainingTaskRequest()
        model.from_json_string(json.dumps(request.payload))
    assert json.loads(json.dumps(model._serialize())) == request.payload  # nothing dropped, nothing added
    shown = {"operation": request.operation, "body": request.payload,
             "uploads": [u.destination for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def test_prepaid_asks_for_amounts_in_the_apis_units_and_postpaid_for_an_instance_type():
    prepaid = render(*CASES["v100x8_2nodes_prepaid"]).payload
    assert prepaid["ResourceGroupId"] == "trsg-abc" and prepaid["ChargeType"] == "PREPAID"
    assert prepaid["ResourceConfigInfos"] == [{"Role": "WORKER", "InstanceNum": 2, "Cpu": 72000,
                                               "Memory": 320 * 1024, "Gpu": 800, "GpuType": "V100"}]
    assert prepaid["TrainingMode"] == "DDP"
    public = render(*CASES["t4_single"]).payload
    assert public["ResourceConfigInfos"] == [{"Role": "WORKER", "InstanceNum": 1,
                                              "InstanceType": "TI.GN7.8XLARGE128.POST"}]
    assert "ResourceGroupId" not in public and "TrainingMode" not in public


def test_every_problem_is_reported_at_once_naming_the_field():
    with pytest.raises(SpecError) as caught:
        render("name: x\nrun: y\nspot: true\nretries: 1\noutputs: cos://b/o/\nmax_runtime: 1h\n"
               "resources:\n  accelerators: H100:3\n",
               settings={"cos_bucket": "Bad_Bucket", "charge_type": "PREPAID", "image_type": "TCR"})
    text = str(caught.value)
    for field in ("cos_bucket", "resource_group_id", "registry_id", "image", "spot", "retries", "outputs",
                  "max_runtime", "resources.accelerators"):
        assert field in text, text
    assert "T4" in text  # the catalog's offers are named


def test_an_instance_type_setting_that_is_not_tis_is_refused_by_the_settings_model():
    with pytest.raises(Exception, match="instance_type"):
        TioneBackend({**SETTINGS, "instance_type": "TI.GN7; rm -rf /"})


def test_the_idempotency_key_and_job_id_travel_as_tags_and_a_long_id_fits_the_name():
    payload = render(*CASES["every_optional_field"]).payload
    assert payload["Tags"] == [{"TagKey": "launch-job-id", "TagValue": JOB_ID},
                               {"TagKey": "launch-idempotency-key", "TagValue": "CI run 42"}]
    assert payload["Name"] == JOB_ID
    with pytest.raises(SpecError, match="idempotency-key"):
        render(CASES["t4_single"][0], "bad\nkey")
    long_id = "a" * 40 + "-20260101-000000-abcdef"
    assert len(task_name(long_id)) == 60 and task_name(long_id).endswith("-abcdef")


def test_secrets_are_private_envs_only_as_render_was_given_them():
    envs = render(*CASES["every_optional_field"]).payload["Envs"]
    assert {"Name": "WANDB_API_KEY", "Value": "****", "IsPrivate": True} in envs
    assert {"Name": "WANDB_PROJECT", "Value": "demo"} in envs


@pytest.mark.parametrize("given, expected", [
    ({"RANK": "1", "WORLD_SIZE": "4", "MASTER_ADDR": "train-x-worker-0", "MASTER_PORT": "23456"},
     "1 4 train-x-worker-0 23456"),
    ({}, "9 9 before 1"),  # not a DDP worker: what the launcher set stays
])
def test_topology_maps_the_workers_variables_to_launch_ones(given, expected):
    script = TOPOLOGY + 'echo "$LAUNCH_NODE_RANK $LAUNCH_NUM_NODES $LAUNCH_MASTER_ADDR $LAUNCH_MASTER_PORT"\n'
    env = {"PATH": "/usr/bin:/bin", "LAUNCH_NODE_RANK": "9", "LAUNCH_NUM_NODES": "9", "LAUNCH_MASTER_ADDR": "before",
           "LAUNCH_MASTER_PORT": "1", **given}
    assert subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == expected


def test_every_documented_state_is_mapped_and_a_new_one_is_unknown():
    # api.json's TrainingTaskDetail.Status / TrainingTaskSetItem.Status enums
    assert set(STATES) == {"SUBMITTING", "PENDING", "STARTING", "RUNNING", "STOPPING", "STOPPED", "FAILED", "SUCCEED",
                           "SUBMIT_FAILED"}
    assert status_of({"Status": "SUCCEED"}, "ap-guangzhou").state is JobState.SUCCEEDED
    assert status_of({"Status": "SUBMIT_FAILED", "FailureReason": "no stock"}, "r").message == "no stock"
    assert status_of({"Status": "HIBERNATING"}, "r").state is JobState.UNKNOWN
