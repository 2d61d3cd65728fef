"""The Lambda Cloud fake itself: it reads Lambda's OpenAPI document from the repository (no file
outside the checkout), lists only running instances for long, answers for any instance by id,
can make an instance unhealthy while it boots, and records its own exceptions."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
from fakes import bugs, lambda_fake
from fakes.lambda_fake import LambdaFake

REPO = Path(__file__).resolve().parent.parent
KEY = "fake-test-key"
# spelled in pieces, so this file does not match itself
OUTSIDE = [re.compile(p) for p in ("/" + "work/", "shared" + "/reference", r"parents\[[3-9]\]")]


def test_the_openapi_document_is_vendored_with_its_provenance():
    assert REPO in lambda_fake.SPEC_PATH.parents and lambda_fake.SPEC_PATH.is_file()
    provenance = (lambda_fake.SPEC_PATH.parent / "PROVENANCE.md").read_text()
    assert lambda_fake.SPEC_PATH.name in provenance
    assert hashlib.sha256(lambda_fake.SPEC_PATH.read_bytes()).hexdigest() in provenance


def test_the_repository_names_no_path_outside_itself():
    """Code, docs and recorded results alike: a clone anywhere else must work and read the same."""
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True)
    if tracked.returncode == 0 and tracked.stdout.strip():
        files = [REPO / line for line in tracked.stdout.splitlines()]
    else:  # not a git checkout (an unpacked archive): every file there
        files = [p for p in REPO.rglob("*") if p.is_file() and ".git" not in p.parts and ".venv" not in p.parts]
    texts = [p for p in files if p.exists() and b"\0" not in p.read_bytes()[:4096]]
    assert len(texts) > 100
    found = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in texts
             for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
             if any(pattern.search(line) for pattern in OUTSIDE)]
    assert found == []


@pytest.fixture
def fake():
    with LambdaFake(api_key=KEY, boot_s=0.1) as running:
        running.request_interval_s = 0.0
        yield running
        assert running.violations == []


def _call(fake: LambdaFake, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, fake.base_url + path, json=body, timeout=10,
                            headers={"Authorization": f"Bearer {KEY}"})


def _launch(fake: LambdaFake) -> str:
    answer = _call(fake, "POST", "/instance-operations/launch",
                   {"region_name": "us-east-1", "instance_type_name": "gpu_1x_a10", "ssh_key_names": ["k"]})
    return answer.json()["data"]["instance_ids"][0]


def test_terminated_instances_leave_the_listing_but_answer_by_id(fake):
    fake.forget_terminated_s = 0.5
    instance_id = _launch(fake)
    assert _call(fake, "POST", "/instance-operations/terminate", {"instance_ids": [instance_id]}).ok
    time.sleep(0.3)  # terminating -> terminated after 0.2 s; still listed for a moment
    assert [i["status"] for i in _call(fake, "GET", "/instances").json()["data"]] == ["terminated"]
    time.sleep(0.6)
    assert _call(fake, "GET", "/instances").json()["data"] == []
    assert _call(fake, "GET", f"/instances/{instance_id}").json()["data"]["status"] == "terminated"
    assert fake.listed() == [] and instance_id in fake.instances


def test_an_instance_can_turn_unhealthy_while_booting(fake):
    fake.unhealthy_on_boot(rank=1)
    healthy, sick = _launch(fake), _launch(fake)
    time.sleep(0.2)
    states = {i["id"]: i["status"] for i in _call(fake, "GET", "/instances").json()["data"]}
    assert states == {healthy: "active", sick: "unhealthy"}
    assert {i["id"] for i in fake.live()} == {healthy, sick}  # unhealthy still bills


def test_an_exception_in_the_fake_is_recorded_not_passed_off_as_the_api(fake, monkeypatch):
    def broken(body):
        raise KeyError("a bug in the fake")

    monkeypatch.setattr(fake, "_get_instance_types", broken)
    answer = _call(fake, "GET", "/instance-types")
    assert answer.status_code == 500
    assert len(fake.errors) == 1 and "a bug in the fake" in fake.errors[0]
    fake.errors.clear()
    raised = bugs.take()  # also recorded for the suite-wide teardown check, which this test expects
    assert len(raised) == 1 and "a bug in the fake" in raised[0]
