"""hf_jobs render: golden run_job bodies, each equal to what huggingface_hub's own `_create_job_spec` builds from
the arguments submit passes, the flavor catalog, and the problems found before anything is sent.

Regenerate goldens with UPDATE_GOLDEN=1 after an intended change and review the diff. bootstrap.sh travels in
each body; the goldens hold it as a placeholder (it is checked to be the packaged file) so a change to the
shared bootstrap does not touch them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import check_golden

from backends.hf_jobs import HfJobsBackend
from backends.hf_jobs import render as rendering
from backends.hf_jobs.states import STATES
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "hf_jobs"
JOB_ID = "golden-20260101-000000-abcdef"
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
BOOTSTRAP = (Path(__file__).parents[1] / "launcher" / "bootstrap.sh").read_text()

CASES = {
    "a10g_single": ("name: golden\nimage: python:3.12\nrun: python train.py\nretries: 2\nresources:\n"
                    "  accelerators: A10G\n",
                    None, {"namespace": "alice"}),
    "h200x8_2nodes_code_secrets": (
        "name: golden\nimage: pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime\ncode: .\nsetup: pip install -r req.txt\n"
        "run: python train.py\nenv: {WANDB_PROJECT: demo}\nsecrets: [WANDB_API_KEY]\nresources:\n"
        "  accelerators: H200:8\n  nodes: 2\ndistributed: torchrun\nmax_runtime: 12h\n", "CI run #42", {}),
    "cpu_pinned_flavor": ("name: golden\nimage: python:3.12\nrun: echo hi\nresources:\n  accelerators: cpu\n"
                          "backends:\n  hf_jobs:\n    flavor: cpu-upgrade\n    bundle_repo: team/bundles\n",
                          None, {"namespace": "team"}),
}


def render(text: str, key: str | None = None, settings: dict | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    merged = {**(settings or {}), **spec.backends.get("hf_jobs", {})}
    secrets = {name: "****" for name in spec.secrets}
    return HfJobsBackend(merged).render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


def run_job_arguments(body: dict) -> dict:
    """The HfApi.run_job arguments submit passes for a body (backend._create)."""
    labels = dict(body["labels"])
    network = body.get("network") or {}
    return {"image": body["dockerImage"], "command": body["command"], "env": body["environment"],
            "secrets": body.get("secrets"), "flavor": body["flavor"], "timeout": body["timeoutSeconds"],
            "attempts": body.get("attempts"),
            "name": labels.pop("name"), "labels": labels, "network_group": network.get("group"),
            "network_aliases": network.get("aliases")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_bodies_are_what_huggingface_hub_builds(case):
    from huggingface_hub._jobs_api import _create_job_spec

    request = render(*CASES[case])
    for body in request.payload["jobs"]:
        assert _create_job_spec(**run_job_arguments(body)) == body
        assert body["command"][body["command"].index("launch/job/bootstrap.sh") + 1] == BOOTSTRAP
    shown = json.loads(json.dumps({"operation": request.operation, "payload": request.payload,
                                   "uploads": [u.destination for u in request.uploads]}).replace(
        json.dumps(BOOTSTRAP)[1:-1], "<launcher/bootstrap.sh>"))
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


@pytest.mark.parametrize(("accelerators", "flavor"), [("T4:1", "t4-small"), ("A10G:1", "a10g-small"),
                                                      ("L4:1", "l4x1"), ("A100-80GB:8", "a100x8"),
                                                      ("H200:1", "h200"), ("L40S:4", "l40sx4"), ("cpu", "cpu-basic")])
def test_accelerators_map_to_flavors_through_the_catalog(accelerators, flavor):
    text = f"name: f\nimage: i\nrun: x\nresources:\n  accelerators: {accelerators}\n"
    assert {b["flavor"] for b in render(text).payload["jobs"]} == {flavor}


def test_the_catalog_and_states_match_huggingface_hubs_enums():
    from huggingface_hub._jobs_api import JobHardware, JobStage

    assert set(rendering.known_flavors()) <= {h.value for h in JobHardware}
    assert set(STATES) == {s.value for s in JobStage}
    assert STATES["ERROR"] is JobState.FAILED and STATES["CANCELED"] is JobState.CANCELLED


def problems(text: str, settings: dict | None = None) -> str:
    with pytest.raises(SpecError) as info:
        render(text, None, settings)
    return "\n".join(str(p) for p in info.value.problems)


def test_h100_has_no_flavor_and_the_refusal_names_the_nearest():
    said = problems("name: f\nimage: i\nrun: x\nresources:\n  accelerators: H100:8\n")
    assert "no H100 flavor" in said and "H200:8 (h200x8)" in said and "backends.hf_jobs.flavor" in said


def test_an_unknown_flavor_a_missing_image_and_a_spec_token_are_one_error_each():
    said = problems("name: f\nrun: x\nbackends:\n  hf_jobs:\n    flavor: a99-huge\n    token: hf_secret\n")
    assert "unknown flavor 'a99-huge'" in said and "a10g-small" in said
    assert "image" in said and "a token never goes in a spec" in said
    assert "hf_secret" not in said


def test_retries_are_attempts_on_one_node_and_refused_on_several():
    (body,) = render("name: r\nimage: i\nrun: x\nretries: 2\n").payload["jobs"]
    assert body["attempts"] == 3
    assert "set retries: 0 with nodes > 1" in problems("name: r\nimage: i\nrun: x\nretries: 1\nresources:\n"
                                                       "  nodes: 2\n")


def test_secrets_go_in_secrets_never_in_the_environment():
    text = "name: s\nimage: i\ncode: .\nrun: x\nsecrets: [API_KEY]\nresources:\n  accelerators: T4\n"
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    (body,) = HfJobsBackend({}).render(spec, JOB_ID, BUNDLE, {"API_KEY": "v4lue"}).payload["jobs"]
    assert body["secrets"] == {"API_KEY": "v4lue", rendering.BUNDLE_TOKEN: rendering.TOKEN_SHOWN}
    assert "v4lue" not in json.dumps(body["environment"]) and "API_KEY" not in body["environment"]


def test_a_long_job_id_still_makes_a_valid_network_group_and_label():
    group = rendering.network_group("A" * 40 + "-20260101-000000-abcdef")
    assert len(group) <= 46 and group == group.lower() and rendering.network_group("x-1") == "x-1"
    assert rendering.label_value("CI run #42") != rendering.label_value("CI run #43")
    assert len(rendering.label_value("k" * 200)) <= 63


@pytest.mark.parametrize("data", [{}, {"namespace": "alice", "ids": []}, {"namespace": "alice", "ids": ["../x"]}])
def test_a_record_without_usable_job_ids_is_one_clear_error(data):
    from launcher.backend import Handle
    from launcher.errors import BackendError

    with pytest.raises(BackendError, match="list --sync"):
        HfJobsBackend({}, client=object()).status(Handle("hf_jobs", JOB_ID, data))
