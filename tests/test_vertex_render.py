"""Vertex render: golden CustomJob bodies, each parsed strictly into the official proto,
the machine/accelerator pairs Vertex accepts, and the problems found before submitting.

Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and review the diff.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import check_golden

from backends.vertex import VertexBackend
from backends.vertex.render import label_value, pair_problem
from backends.vertex.states import map_state
from launcher import catalog
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "vertex"
JOB_ID = "golden-20260101-000000-abcdef"
SETTINGS = {"project": "my-project", "region": "us-central1", "staging_bucket": "gs://team-bucket"}
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)

CASES = {
    "l4_single": ("name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: L4\n", None),
    "h100x8_2nodes_spot": (
        "name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: H100:8\n  nodes: 2\n"
        "spot: true\nmax_runtime: 24h\ndistributed: torchrun\n", None),
    "t4": ("name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: T4:1\n", None),
    "every_optional_field": (
        "name: golden\nimage: img:1\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: A100-80GB:8\n  nodes: 4\n  disk_gb: 500\n"
        "distributed: torchrun\nspot: true\nmax_runtime: 12h\nretries: 2\ncheckpoint_dir: /ckpt\n"
        "outputs: gs://team-bucket/runs/\n"
        "backends:\n  vertex:\n    service_account: trainer@my-project.iam.gserviceaccount.com\n"
        "    network: projects/123/global/networks/default\n    boot_disk_type: pd-balanced\n", "CI run #42"),
}


def render(text: str, key: str | None = None, settings: dict | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    merged = {**SETTINGS, **(settings or {}), **spec.backends.get("vertex", {})}
    secrets = {name: "****" for name in spec.secrets}
    return VertexBackend(merged).render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_body_parses_into_the_official_proto(case):
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    request = render(*CASES[case])
    job = aiplatform_v1.CustomJob()
    json_format.ParseDict(request.payload, job._pb)  # strict: unknown fields or enum names raise
    assert job.display_name == JOB_ID
    shown = {"parent": request.operation, "body": request.payload,
             "uploads": [u.destination for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


def test_a_wrong_field_name_fails_loudly():
    from google.cloud import aiplatform_v1
    from google.protobuf import json_format

    body = render(*CASES["t4"]).payload
    body["job_spec"]["worker_pool_specs"][0]["machine_spec"]["acelerator_count"] = 1
    with pytest.raises(json_format.ParseError):
        json_format.ParseDict(body, aiplatform_v1.CustomJob()._pb)


def test_two_pools_chief_and_workers():
    pools = render(*CASES["h100x8_2nodes_spot"]).payload["job_spec"]["worker_pool_specs"]
    assert [p["replica_count"] for p in pools] == [1, 1]
    assert pools[0]["machine_spec"] == {"machine_type": "a3-highgpu-8g", "accelerator_type": "NVIDIA_H100_80GB",
                                        "accelerator_count": 8}


def test_every_vertex_catalog_row_is_a_pair_vertex_accepts():
    rows = [o for o in catalog.offers() if o.backend == "vertex" and not o.accelerator.startswith("TPU-")]
    assert rows  # TPU rows: test_vertex_tpu.py
    for row in rows:
        assert pair_problem(row.instance_type, row.provider_accelerator, row.count) is None, row


@pytest.mark.parametrize(("machine", "accelerator", "count", "fragment"), [
    ("a3-highgpu-3g", "NVIDIA_H100_80GB", 3, "comes only as"),
    ("a2-highgpu-8g", "NVIDIA_A100_80GB", 8, "NVIDIA_TESLA_A100"),
    ("a2-ultragpu-8g", "NVIDIA_TESLA_A100", 8, "NVIDIA_A100_80GB"),
    ("g2-standard-24", "NVIDIA_L4", 1, "exactly 2"),
    ("a3-highgpu-8g", "NVIDIA_H100_80GB", 4, "exactly 8"),
])
def test_pairs_vertex_refuses(machine, accelerator, count, fragment):
    assert fragment in (pair_problem(machine, accelerator, count) or "")


def problems(text: str, settings: dict | None = None) -> str:
    with pytest.raises(SpecError) as caught:
        render(text, settings=settings)
    return str(caught.value)


def test_h100_3_names_the_sizes_that_exist():
    text = problems("name: x\nimage: i\nrun: r\nresources:\n  accelerators: H100:3\n")
    assert "spec.yaml:5" in text and "H100:8" in text and "H100:1" in text


def test_a100_80gb_on_an_a2_highgpu_machine_is_refused():
    text = problems("name: x\nimage: i\nrun: r\nresources:\n  accelerators: A100-80GB:8\n"
                    "backends:\n  vertex:\n    machine_type: a2-highgpu-8g\n")
    assert "backends.vertex.machine_type" in text and "NVIDIA_TESLA_A100" in text


def test_missing_project_and_bucket_are_named():
    text = problems("name: x\nimage: i\nrun: r\n", settings={"project": None, "staging_bucket": None})
    if not os.environ.get("GOOGLE_CLOUD_PROJECT"):
        assert "backends.vertex.project" in text
    assert "backends.vertex.staging_bucket" in text


def test_labels_stay_valid_for_any_name_and_key():
    request = render("name: My.Job_Name\nimage: i\nrun: r\n", key="GitHub Run #99 / attempt 2")
    for key, value in request.payload["labels"].items():
        assert len(key) <= 63 and len(value) <= 63
        assert all(c.islower() or c.isdigit() or c in "_-" for c in key + value), (key, value)
    assert label_value("a" * 100) != label_value("a" * 99)  # trimmed, still distinct


@pytest.mark.parametrize(("raw", "state"), [
    ("JOB_STATE_QUEUED", JobState.PENDING), ("JOB_STATE_PENDING", JobState.PENDING),
    ("JOB_STATE_RUNNING", JobState.RUNNING), ("JOB_STATE_SUCCEEDED", JobState.SUCCEEDED),
    ("JOB_STATE_FAILED", JobState.FAILED), ("JOB_STATE_CANCELLING", JobState.CANCELLING),
    ("JOB_STATE_CANCELLED", JobState.CANCELLED), ("JOB_STATE_PAUSED", JobState.PENDING),
    ("JOB_STATE_EXPIRED", JobState.FAILED), ("JOB_STATE_UPDATING", JobState.RUNNING),
    ("JOB_STATE_PARTIALLY_SUCCEEDED", JobState.FAILED), ("JOB_STATE_NEW_THING", JobState.UNKNOWN),
])
def test_state_table(raw, state):
    assert map_state(raw) is state


def test_every_vertex_job_state_is_mapped():
    from google.cloud import aiplatform_v1

    for state in aiplatform_v1.JobState:
        if state.name != "JOB_STATE_UNSPECIFIED":
            assert map_state(state.name) is not JobState.UNKNOWN, state.name


def test_dry_run_does_not_import_aiplatform_and_is_fast(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nimage: i\nrun: r\nresources:\n  accelerators: L4\nbackends:\n  vertex:\n"
                    "    project: my-project\n    region: us-central1\n    staging_bucket: gs://b-bucket\n")
    probe = (
        "import sys, runpy, time\n"
        "start = time.perf_counter()\n"
        f"sys.argv = ['launch', 'run', {str(spec)!r}, '--backend', 'vertex', '--dry-run']\n"
        "try:\n    runpy.run_module('launcher', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        # (the bare google.cloud namespace comes from google-cloud-*'s .pth files at interpreter start)
        "heavy = ('google.cloud.aiplatform', 'google.cloud.storage', 'google.api_core', 'google.auth', 'grpc')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "LAUNCH_HOME": str(tmp_path / "home")}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert time.perf_counter() - started < 5  # generous here; bench/ measures the 0.5 s bar
