"""The hf_jobs backend end to end: the real CLI (subprocess) against the local Hugging Face Jobs fake
(tests/fakes/hf_jobs_fake.py), driven by huggingface_hub's real HfApi, whose jobs run as local processes.

What the conformance suite and the reliability harness already check through this backend's fake is not
repeated here: dry run = submit, status without side effects, log cursors, exactly-once under faults, a re-run
with the same idempotency key and `list --sync` on a fresh machine (test_crash_recovery), a rejected token
(401/403) and an unreachable Hub exiting 4 with the fix (test_credentials), the canary secret in every output
(test_secrets). These are the paths particular to this backend. After every test the fake must have
received nothing huggingface_hub's own schema would not build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import pytest
from fakes.hf_jobs_fake import HfJobsFake

from backends.hf_jobs.render import BUNDLE_TOKEN, JOB_ID_LABEL, RANK_LABEL

TOKEN = "hf_e2e_token_0123456789"
SUBMITTED = re.compile(r"(?:submitted (\S+) to hf_jobs|job (\S+) already exists)")
CANARY = "canary-hf-7f3a91c2"


@pytest.fixture(scope="module")
def module_fake():
    with HfJobsFake(token=TOKEN, user="alice", stream_idle_s=0.3) as fake:
        yield fake


@pytest.fixture
def fake(module_fake):
    module_fake.reset()
    yield module_fake
    module_fake.kill_all()
    assert module_fake.violations == []


@pytest.fixture
def hf(fake, cli, write_spec, launch_home, tmp_path):
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(f'[backends.hf_jobs]\nendpoint = "{fake.endpoint}"\n')
    code = tmp_path / "src"
    code.mkdir()
    (code / "train.py").write_text("print('trained on the hub')\n")
    env = {"HF_TOKEN": TOKEN, "HF_HOME": str(tmp_path / "hf-home"), CANARY_NAME: CANARY}

    class Helper:
        endpoint = fake.endpoint

        @staticmethod
        def spec(run: str, extra: str = "", settings: str = "") -> Path:
            return write_spec(f"name: hfe2e\nimage: python:3.12\ncode: {code}\nrun: {json.dumps(run)}\n{extra}"
                              f"resources:\n  accelerators: A10G\n{settings}")

        @staticmethod
        def run(*args: str, check_rc: int | None = None, env_extra: dict | None = None, **kw):
            return cli(*args, check_rc=check_rc, env={**env, **(env_extra or {})}, **kw)

        @staticmethod
        def job_id(result) -> str:
            match = SUBMITTED.search(result.stdout + result.stderr)
            assert match, result.stdout + result.stderr
            return match.group(1) or match.group(2)

    return Helper


CANARY_NAME = "HF_E2E_CANARY"


def test_run_follow_ships_the_code_privately_and_keeps_the_secret_secret(hf, fake, launch_home):
    """The bundle goes to a private repo once and the node fetches it; the secret travels in `secrets` only
    and is in no environment, store, output or log; the bundle token never reaches the user's command."""
    spec = hf.spec(f'python3 train.py; echo "secret length ${{#{CANARY_NAME}}}"; '
                   f'echo "bundle token ${{{BUNDLE_TOKEN}:-gone}}"', extra=f"secrets: [{CANARY_NAME}]\n")
    result = hf.run("run", str(spec), "--backend", "hf_jobs", "--follow", check_rc=0)
    assert "trained on the hub" in result.stdout
    assert f"secret length {len(CANARY)}" in result.stdout and "bundle token gone" in result.stdout
    (body,) = fake.created_bodies
    assert body["secrets"][CANARY_NAME] == CANARY and body["secrets"][BUNDLE_TOKEN] == TOKEN
    assert CANARY not in json.dumps(body["environment"]) and TOKEN not in json.dumps(body["environment"])
    assert fake.repos == {"alice/launch-bundles": True}, "the bundle repo must be private"
    assert [c["paths"] for c in fake.commits] == [[p for _, p in fake.files]]
    job_id = hf.job_id(result)
    logs = hf.run("logs", job_id, check_rc=0)
    for text in (result.stdout, result.stderr, logs.stdout, logs.stderr):
        assert CANARY not in text and TOKEN not in text
    for path in launch_home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert CANARY.encode() not in data and TOKEN.encode() not in data, path
    again = hf.run("run", str(spec), "--backend", "hf_jobs", check_rc=0)  # same code: no second upload
    assert len(fake.commits) == 1 and len(fake.created_bodies) == 2, again.stderr


def test_a_failing_job_exits_1_with_the_providers_message(hf, fake):
    result = hf.run("run", str(hf.spec("echo about to fail; exit 3")), "--backend", "hf_jobs", "--follow")
    assert result.returncode == 1, result.stderr
    assert "about to fail" in result.stdout
    status = hf.run("status", hf.job_id(result), "-o", "json", check_rc=0)
    record = json.loads(status.stdout)
    assert record["state"] == "FAILED" and record["raw_state"] == "ERROR" and "exit code 3" in record["message"]


def test_cancel_stops_the_job(hf, fake):
    result = hf.run("run", str(hf.spec("echo started; sleep 60")), "--backend", "hf_jobs", check_rc=0)
    job_id = hf.job_id(result)
    (job,) = fake.by_label(JOB_ID_LABEL, job_id)
    deadline = time.monotonic() + 20
    while not any("started" in text for _, text in job.lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    hf.run("cancel", job_id, check_rc=0)
    assert fake.wait_ended(job.id).stage == "CANCELED" and job.process.poll() is not None
    hf.run("cancel", job_id, check_rc=0)  # again, on an ended job
    assert json.loads(hf.run("status", job_id, "-o", "json", check_rc=0).stdout)["state"] == "CANCELLED"


def test_logs_follow_resumes_after_a_dropped_stream_without_repeats(hf, fake):
    lines = [f"line-{n}" for n in range(1, 7)]
    run = "; ".join(f"echo {line}; sleep 0.2" for line in lines)
    fake.drop_next_log_stream(after=3)  # the first read is cut after the start event and two lines
    job_id = hf.job_id(hf.run("run", str(hf.spec(run)), "--backend", "hf_jobs", check_rc=0))
    result = hf.run("logs", job_id, "-f", check_rc=0)
    shown = [line for line in result.stdout.splitlines() if line.startswith("line-")]
    assert shown == lines, result.stdout + result.stderr
    assert fake.dropped_streams == 1, "the stream was never cut: the test proved nothing"


def test_two_nodes_are_two_jobs_in_one_network_group(hf, fake):
    spec = hf.spec('echo "rank=$LAUNCH_NODE_RANK of $LAUNCH_NUM_NODES master=$LAUNCH_MASTER_ADDR"',
                   settings="  nodes: 2\n")
    result = hf.run("run", str(spec), "--backend", "hf_jobs", "--follow", check_rc=0)
    bodies = sorted(fake.created_bodies, key=lambda b: b["labels"][RANK_LABEL])
    assert [b["labels"][RANK_LABEL] for b in bodies] == ["0", "1"]
    group = bodies[0]["network"]["group"]
    assert bodies[0]["network"] == {"group": group, "aliases": ["master"]} and bodies[1]["network"] == {"group": group}
    for rank in (0, 1):
        assert f"rank={rank} of 2 master={group}-master" in result.stdout, result.stdout


def test_hostile_values_stay_text_on_the_node(hf, fake, tmp_path):
    """The reliability harness's hostile-string corpus in env:, a secret, --set and the idempotency key,
    through the real command the fake runs (the prelude writes the files from argv, bootstrap.sh runs them):
    no shell executes any of it and every value arrives byte for byte."""
    from reliability.test_injection import _expected, _printed, _spec_text, corpus

    marker = tmp_path / "pwned"
    values = corpus(marker)
    spec = tmp_path / "hostile.yaml"
    spec.write_text("image: python:3.12\n" + _spec_text(values, marker))
    secret, set_value = f"s3cr$(touch {marker})`id`'\"", f"x;touch {marker}"
    result = hf.run("run", str(spec), "--backend", "hf_jobs", "--follow", "--set", f"env.SET_VALUE={set_value}",
                    "--idempotency-key", f"k$(touch {marker})", env_extra={"HOSTILE_SECRET": secret}, check_rc=0)
    assert not marker.exists(), "a value was executed by a shell"
    assert _printed(result.stdout, values) == _expected(values, secret, set_value), result.stdout


def test_an_edited_resubmit_uploads_only_the_overlay_and_the_node_gets_the_new_tree(hf, fake, tmp_path):
    """A one-line change in a tree whose bundle is already on the Hub: the second job's upload is the small
    overlay alone, and its node (fetching base and overlay) runs the edited code beside the big file."""
    code = tmp_path / "src"
    weights = os.urandom(1_100_000)  # incompressible: a base large enough to be overlaid
    (code / "weights.bin").write_bytes(weights)
    spec = hf.spec("python3 train.py && sha256sum weights.bin && ls")
    first = hf.run("run", str(spec), "--backend", "hf_jobs", "--follow", check_rc=0)
    assert "trained on the hub" in first.stdout
    (code / "train.py").write_text("print('edited, then trained')\n")
    second = hf.run("run", str(spec), "--backend", "hf_jobs", "--follow", check_rc=0)
    assert "edited, then trained" in second.stdout and "trained on the hub" not in second.stdout
    assert hashlib.sha256(weights).hexdigest() in second.stdout
    assert "\ntrain.py\nweights.bin\n" in second.stdout  # and nothing else in the working directory
    base, overlay = (fake.files[("alice/launch-bundles", c["paths"][0])] for c in fake.commits)
    assert len(fake.commits) == 2 and len(overlay) < 0.05 * len(base)
    environment = fake.created_bodies[1]["environment"]
    assert environment["LAUNCH_HF_OVERLAY_URL"].endswith(fake.commits[1]["paths"][0])
