"""`--backend vertex,sagemaker`: move on only when the first backend refuses for capacity
or quota (nothing created), never after a job was created, never on other errors.
Vertex is the local REST fake (its refusals injected there), SageMaker is moto over HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.moto_sagemaker import MotoSageMaker
from fakes.vertex_fake import VertexFake

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"
QUOTA = ("Quota exceeded for aiplatform.googleapis.com/custom_model_training_nvidia_l4_gpus "
         "with base model: L4. The following quota limits were exceeded: 0 in region us-central1.")
CREATE = r"/customJobs$"


@pytest.fixture(scope="module")
def servers():
    with VertexFake(project="my-project", location="us-central1") as gcp, MotoSageMaker() as aws:
        yield gcp, aws


@pytest.fixture
def both(servers, cli, write_spec, launch_home, tmp_path):
    gcp, aws = servers
    gcp.reset()
    gcp.add_bucket("team-bucket")
    aws.reset()
    aws.client("s3").create_bucket(Bucket="team-bucket")
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        f'[backends.vertex]\napi_endpoint = "{gcp.endpoint}"\nstorage_endpoint = "{gcp.endpoint}"\n'
        f'logging_endpoint = "{gcp.endpoint}"\n')
    spec = write_spec(
        "name: fo\nimage: us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3:latest\nrun: python train.py\n"
        "resources: {accelerators: L4}\n"
        "backends:\n  vertex: {project: my-project, region: us-central1, staging_bucket: gs://team-bucket}\n"
        f"  sagemaker: {{region: us-east-1, role_arn: '{ROLE}', bucket: team-bucket}}\n")

    def run(*args: str, check_rc: int | None = None):
        return cli(*args, env=aws.env(), check_rc=check_rc)

    return gcp, aws, spec, run


def _sagemaker_jobs(aws: MotoSageMaker) -> list[str]:
    return [j["TrainingJobName"] for j in aws.client("sagemaker").list_training_jobs()["TrainingJobSummaries"]]


def test_quota_refusal_moves_to_the_next_backend(both):
    gcp, aws, spec, run = both
    gcp.fail_next(CREATE, 429, method="POST", message=QUOTA)
    result = run("run", str(spec), "--backend", "vertex,sagemaker", "-o", "json", check_rc=0)
    record = json.loads(result.stdout)
    assert record["backend"] == "sagemaker"
    assert "vertex: no capacity" in result.stderr and "trying the next backend" in result.stderr
    assert not gcp.jobs  # nothing was created at Vertex
    assert len(_sagemaker_jobs(aws)) == 1
    listed = json.loads(run("list", "-o", "json", check_rc=0).stdout)
    assert [r["id"] for r in listed] == [record["id"]]  # no record left behind for the refused try


def test_first_backend_with_capacity_is_used_and_the_rest_untouched(both):
    gcp, aws, spec, run = both
    record = json.loads(run("run", str(spec), "--backend", "vertex,sagemaker", "-o", "json", check_rc=0).stdout)
    assert record["backend"] == "vertex" and len(gcp.jobs) == 1
    assert _sagemaker_jobs(aws) == []


def test_a_lost_create_answer_is_recovered_at_the_same_backend(both):
    gcp, aws, spec, run = both
    gcp.fail_next_create_after_storing()  # stored at Vertex, the answer lost
    record = json.loads(run("run", str(spec), "--backend", "vertex,sagemaker", "-o", "json", check_rc=0).stdout)
    assert record["backend"] == "vertex" and len(gcp.jobs) == 1
    assert _sagemaker_jobs(aws) == []


def test_no_failover_when_the_create_may_have_landed(both):
    """A 5xx or a timeout on create does not say the job was not created: moving on could run
    it twice, so the run stops (exit 4) with an UNKNOWN record that `list --sync` settles."""
    gcp, aws, spec, run = both
    gcp.fail_next(CREATE, 503, method="POST", times=1000)
    result = run("run", str(spec), "--backend", "vertex,sagemaker")
    assert result.returncode == 4, result.stderr
    assert _sagemaker_jobs(aws) == []
    assert "trying the next backend" not in result.stderr
    (unconfirmed,) = json.loads(run("list", "-o", "json", check_rc=0).stdout)
    assert unconfirmed["backend"] == "vertex" and unconfirmed["state"] == "UNKNOWN"


def test_a_create_that_stays_down_is_retried_by_the_runner_alone(both):
    """One retry layer: each of the runner's attempts sends one create (and looks for a lost one after
    it), never a loop of creates of its own; 5 attempts, not 5 x 3 creates."""
    from launcher.retry import DEFAULT

    gcp, _, spec, run = both
    gcp.fail_next(CREATE, 503, method="POST", times=1000)
    result = run("run", str(spec), "--backend", "vertex")
    assert result.returncode == 4, result.stderr
    creates = [r for r in gcp.requests if r[0] == "POST" and r[1].endswith("/customJobs")]
    assert 1 <= len(creates) <= DEFAULT.attempts, creates


@pytest.mark.parametrize("code, message, exit_code", [
    (400, "Invalid value at 'custom_job.job_spec.worker_pool_specs[0]'", 1),  # refused
    (403, "Permission 'aiplatform.customJobs.create' denied", 4),            # credentials
])
def test_other_errors_stop_at_once(both, code, message, exit_code):
    gcp, aws, spec, run = both
    gcp.fail_next(CREATE, code, method="POST", message=message)
    result = run("run", str(spec), "--backend", "vertex,sagemaker", check_rc=exit_code)
    assert message.split("'")[0] in result.stderr and "Traceback" not in result.stderr
    assert "trying the next backend" not in result.stderr
    assert _sagemaker_jobs(aws) == [] and not gcp.jobs


def test_no_capacity_on_the_only_backend_fails_cleanly(both):
    gcp, _aws, spec, run = both
    gcp.fail_next(CREATE, 429, method="POST", message=QUOTA)
    result = run("run", str(spec), "--backend", "vertex", check_rc=1)
    assert "no quota or capacity" in result.stderr
    assert json.loads(run("list", "-o", "json", check_rc=0).stdout) == []


def test_a_key_finds_the_job_on_a_later_backend_before_creating_on_an_earlier_one(both, launch_home: Path):
    gcp, aws, spec, run = both
    gcp.fail_next(CREATE, 429, method="POST", message=QUOTA)
    first = json.loads(run("run", str(spec), "--backend", "vertex,sagemaker", "--idempotency-key", "ci-7",
                           "-o", "json", check_rc=0).stdout)
    assert first["backend"] == "sagemaker"
    (launch_home / "jobs.db").unlink()  # a CI re-run on a fresh machine; Vertex has capacity now
    again = json.loads(run("run", str(spec), "--backend", "vertex,sagemaker", "--idempotency-key", "ci-7",
                           "-o", "json", check_rc=0).stdout)
    assert again["existing"] and again["id"] == first["id"] and again["backend"] == "sagemaker"
    assert not gcp.jobs and len(_sagemaker_jobs(aws)) == 1
