"""Slurm render: golden batch scripts (the exact text sbatch gets), the settings' refusals, and the
state table and status judging on Slurm's own answers (the lines the real squeue/sacct/scontrol print;
tests/test_slurm_e2e.py runs the live path on a real cluster). Regenerate the goldens with
UPDATE_GOLDEN=1 after an intended change and review the diff."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from helpers import check_golden

from backends.slurm import SlurmBackend
from backends.slurm.backend import _judged
from backends.slurm.render import parse_comment
from backends.slurm.states import STATES
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "slurm"
JOB_ID = "golden-20260101-000000-abcdef"
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)
CASES = {
    "cpu_single": ("name: golden\nrun: python train.py\n", None),
    "h100x8_2nodes_every_setting": (
        "name: golden\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\nresources:\n  accelerators: H100:8\n  nodes: 2\n  cpus: 32\n"
        "  memory_gb: 200\ndistributed: torchrun\nmax_runtime: 12h\nretries: 2\n"
        "backends:\n  slurm:\n    login: me@login.cluster\n    partition: gpu\n    account: team-a\n    qos: high\n"
        "    reservation: maint\n    constraint: h100&ib\n    work_dir: /shared/launch\n"
        "    sbatch_args: [--exclusive, --signal=USR1@60]\n", "CI run #42"),
    "pyxis_gres": (
        "name: golden\nimage: nvcr.io/nvidia/pytorch:24.01-py3\nrun: python train.py\nresources:\n"
        "  accelerators: A100:4\nbackends:\n  slurm:\n    container: pyxis\n    gres_style: gres\n", None),
}


def render(text: str, key: str | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=Path(__file__).parent)
    secrets = {name: "****" for name in spec.secrets}
    backend = SlurmBackend(spec.backends.get("slurm", {}))
    return backend.render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_batch_script(case):
    request = render(*CASES[case])
    text = request.payload["script"] + "\n# sbatch command line:\n# " + shlex.join(request.payload["sbatch"]) + "\n"
    path = GOLDEN / f"{case}.sbatch"
    check_golden(path, text)
    assert "****" not in request.payload["script"]  # secrets never in the script, only in the env file
    files = {u.destination.rsplit("/", 1)[-1]: u.content for u in request.uploads}
    assert ("WANDB_API_KEY=" in files["secrets.env"]) == ("WANDB" in CASES[case][0])
    assert "WANDB_API_KEY" not in files["env.sh"] and "LAUNCH_RUN_FILE=" in files["env.sh"]
    assert any(u.destination.endswith("/job.sbatch") and u.content == request.payload["script"]
               for u in request.uploads)


def test_sbatch_args_travel_as_separate_quoted_words():
    request = render("name: q\nrun: x\nbackends:\n  slurm:\n    sbatch_args: [\"--mail-user=a b;$(x)\", --exclusive]\n")
    assert request.payload["sbatch"][2:4] == ["--mail-user=a b;$(x)", "--exclusive"]


@pytest.mark.parametrize(("settings", "needle"), [
    ("    sbatch_args: [--comment=mine]\n", "--comment is set by launch"),
    ("    sbatch_args: [--output=x]\n", "--output is set by launch"),
    ("    sbatch_args: [exclusive]\n", "is not a flag"),
    ("    partition: 'gpu\\n#SBATCH --uid=0'\n", "partition"),
    ("    login: 'a b'\n", "login"),
])
def test_settings_that_would_break_the_job_are_refused(settings, needle):
    with pytest.raises(Exception) as caught:
        render(f"name: bad\nrun: x\nbackends:\n  slurm:\n{settings}")
    assert needle in str(caught.value)


def test_pyxis_without_an_image_and_spot_are_spec_problems():
    with pytest.raises(SpecError) as caught:
        render("name: p\nrun: x\nspot: true\nbackends:\n  slurm:\n    container: pyxis\n")
    text = str(caught.value)
    assert "image" in text and "spot" in text


def test_the_comment_names_the_job_and_hides_the_key():
    request = render("name: c\nrun: x\n", "key with spaces; $(and) more")
    job_id, digest = parse_comment(request.payload["comment"])
    assert job_id == JOB_ID and digest and " " not in request.payload["comment"]
    assert parse_comment("someone else's comment") is None


ISSUE_STATES = ["PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "REQUEUED", "SUSPENDED", "BOOT_FAIL", "DEADLINE"]


def test_every_slurm_state_is_mapped():
    assert [s for s in ISSUE_STATES if s not in STATES] == []


DATA = {"slurm_id": "7", "job_dir": "/w/jobs/j", "nodes": 2, "submitted_at": 1.0}


@pytest.mark.parametrize(("output", "state", "needle"), [
    ("q|0|PENDING|Resources\n", JobState.PENDING, "waiting for nodes"),
    ("q|0|PENDING|QOSMaxGRESPerUser\n", JobState.PENDING, "QOS caps your GPUs"),
    ("q|0|RUNNING|None\n", JobState.RUNNING, ""),
    # accounting off: sacct says so, sacct -c (the job completion file) answers
    ("q|0|\na|sacct: error: Slurm accounting storage is disabled\nc|TIMEOUT|0:15\ns|\n", JobState.FAILED,
     "exceeded max_runtime"),
    # neither: scontrol still remembers it
    ("q|0|\na|Slurm accounting storage is disabled\nc|\ns|JobId=7 JobState=OUT_OF_MEMORY Reason=OutOfMemory "
     "ExitCode=0:125\n", JobState.FAILED, "ran out of memory"),
    ("q|0|\na|COMPLETED|0:0\nx|0|0|10.5\nx|1|0|10.6\n", JobState.SUCCEEDED, ""),
    ("q|0|\na|FAILED|7:0\nx|0|143|10.9\nx|1|7|10.5\n", JobState.FAILED, "node 1 exited with code 7"),
    ("q|0|\na|CANCELLED by 0|0:15\n", JobState.CANCELLED, "cancelled"),
    # the batch script failed before any node ran (an image pyxis could not pull): its last words say why
    ("q|0|\na|FAILED|1:0\nb|pyxis: failed to import docker image\n", JobState.FAILED,
     "exited with code 1: pyxis: failed to import docker image"),
    # Slurm forgot the job (MinJobAge, no accounting): the nodes' exit files decide
    ("q|1|slurm_load_jobs error: Invalid job id specified\na|\nc|\ns|\nx|0|0|5.0\nx|1|0|5.0\n",
     JobState.SUCCEEDED, ""),
    ("q|1|slurm_load_jobs error: Invalid job id specified\na|\nc|\ns|\n", JobState.UNKNOWN, "no longer knows"),
    ("q|1|slurm_load_jobs error: Unable to contact slurm controller\na|\nc|\ns|\n", JobState.UNKNOWN,
     "Unable to contact"),
    ("q|0|WEIRD_NEW_STATE|None\na|WEIRD_NEW_STATE|0:0\n", JobState.UNKNOWN, "WEIRD_NEW_STATE"),
])
def test_status_from_slurms_answers(output, state, needle):
    status = _judged(output, DATA)
    assert status.state == state, status
    assert needle in status.message


def test_no_sbatch_here_is_one_clear_error(tmp_path, monkeypatch):
    """No login and no Slurm client on this machine: exit 4 saying so, not a shell's "not found"."""
    import shutil

    from launcher.errors import BackendUnreachable

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "rmdir", "rm", "mv", "cat", "sleep"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    monkeypatch.setenv("PATH", str(bin_dir))
    spec = parse_spec("name: nosbatch\nrun: x\n", "spec.yaml", base_dir=tmp_path)
    backend = SlurmBackend({"work_dir": str(tmp_path / "work")})
    request = backend.render(spec, JOB_ID, None, {})
    with pytest.raises(BackendUnreachable) as caught:
        backend.submit(request)
    assert caught.value.message == "no sbatch on this machine" and "backends.slurm.login" in caught.value.hint
    assert caught.value.exit_code == 4
