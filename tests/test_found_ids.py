"""Job ids read back from a provider (tags, names, files on a node) are checked before they reach
the store or a path: anyone who can tag resources in the account can write one. The Lambda
backend's own uses are tested end to end in test_lambda_e2e.py
(test_hostile_job_ids_in_instance_tags_touch_neither_files_nor_the_store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes.sshd import SSHServer, sshd_available

from launcher import runner
from launcher.backend import Capabilities, Handle, JobState, Status, Summary, is_job_id
from launcher.errors import BackendError
from launcher.store import Store

HOSTILE = ["../../escaped", "/etc/passwd", "ok/../../../etc", "a\nb-20260101-000000-abcdef",
           "nul\x00-20260101-000000-abcdef", "j" * 200, "..", ".", "", ".hidden", "-rf", "with space",
           "tab\there", "ünïcode-20260101-000000-abcdef"]


@pytest.mark.parametrize("name", ["a", "bert-finetune", "A" * 63, "x.y_z-1", "9lives"])
def test_every_id_launch_gives_is_accepted(name: str):
    assert is_job_id(runner.new_job_id(name))
    assert is_job_id(runner.new_job_id(f"{name}-sweep"))  # sweep group ids


@pytest.mark.parametrize("job_id", [*HOSTILE, None, 7, b"bytes-20260101-000000-abcdef"])
def test_hostile_ids_are_refused(job_id):
    assert not is_job_id(job_id)


class _Provider:
    """A backend answering as the contract says, with whatever job id a stranger tagged."""

    name = "local"
    capabilities = Capabilities()

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    def find(self, idempotency_key: str) -> Summary:
        return Summary(Handle(self.name, self.job_id, {}), "x", Status(JobState.RUNNING, "running"),
                       idempotency_key=idempotency_key)


@pytest.mark.parametrize("job_id", HOSTILE)
def test_a_found_job_with_a_hostile_id_is_one_clear_error_and_not_recorded(job_id: str, launch_home: Path):
    store = Store.open()
    provider = _Provider(job_id)
    with pytest.raises(BackendError) as refused:
        runner.find_at_provider(provider, "ci-key")
    assert "launch never gives" in refused.value.message and "\n" not in refused.value.message
    assert "\x00" not in refused.value.message and len(refused.value.message) < 300
    with pytest.raises(BackendError):
        runner._record_found(store, provider.find("ci-key"), "local", spec={}, idempotency_key="ci-key",
                             fast_status=False)
    assert store.list(limit=None) == []


def test_sync_skips_hostile_ids_and_keeps_the_real_jobs(cli, write_spec, launch_home: Path, tmp_path: Path):
    spec = write_spec("name: realjob\nrun: echo hi\n")
    real = json.loads(cli("run", str(spec), "--wait", "-o", "json", check_rc=0).stdout)["id"]
    for number, job_id in enumerate(HOSTILE):  # what a stranger's handle files could say
        planted = launch_home / "local" / f"planted-{number}"
        planted.mkdir(parents=True)
        (planted / "handle.json").write_text(json.dumps(Handle("local", job_id, {
            "job_dir": str(planted), "nodes": [], "submitted_at": 1.0}).to_json()))
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    before = set(tmp_path.rglob("*"))
    synced = cli("list", "--sync", "--backend", "local", "-o", "json", check_rc=0)
    assert [r["id"] for r in json.loads(synced.stdout)] == [real]
    assert synced.stderr.count("launch never gives") == len(HOSTILE) and "Traceback" not in synced.stderr
    assert "\x00" not in synced.stderr
    created = set(tmp_path.rglob("*")) - before
    assert all(launch_home in p.parents for p in created), sorted(created)


# -- a real provider API: SageMaker (moto over HTTP), where the id is a tag on the training job --

AWS_VALID_HOSTILE = ["../../escaped", "/etc/passwd", "j" * 200]  # tag values AWS itself accepts


@pytest.fixture(scope="module")
def aws():
    from fakes.moto_sagemaker import MotoSageMaker

    with MotoSageMaker() as server:
        yield server


def test_sagemaker_jobs_tagged_with_hostile_ids_are_neither_synced_nor_adopted(aws, cli, write_spec,
                                                                            launch_home: Path, tmp_path: Path):
    from backends.sagemaker.render import IDEMPOTENCY_TAG, JOB_ID_TAG

    aws.reset()
    aws.hold_new_jobs_in_progress()
    aws.client("s3").create_bucket(Bucket="team-bucket")
    spec = write_spec("name: sm-ids\nimage: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3\n"
                      "run: python train.py\nresources:\n  accelerators: T4:1\nbackends:\n  sagemaker:\n"
                      "    region: us-east-1\n    role_arn: arn:aws:iam::123456789012:role/Train\n"
                      "    bucket: team-bucket\n")

    def run(*args: str, check_rc: int | None = None):
        return cli(*args, env=aws.env(), check_rc=check_rc)

    submitted = [json.loads(run("run", str(spec), "--backend", "sagemaker", "--idempotency-key", f"key-{n}",
                                "-o", "json", check_rc=0).stdout)["id"] for n in range(len(AWS_VALID_HOSTILE) + 1)]
    sagemaker = aws.client("sagemaker")
    jobs = {t["TrainingJobName"]: t["TrainingJobArn"] for t in sagemaker.list_training_jobs()["TrainingJobSummaries"]}
    arns = [arn for name, arn in jobs.items()
            if {"Key": JOB_ID_TAG, "Value": submitted[0]} not in sagemaker.list_tags(ResourceArn=arn)["Tags"]]
    for arn, hostile in zip(arns, AWS_VALID_HOSTILE, strict=True):  # a stranger re-tags the other jobs
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": JOB_ID_TAG, "Value": hostile},
                                                  {"Key": IDEMPOTENCY_TAG, "Value": "stranger-key"}])
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    before = set(tmp_path.rglob("*"))
    synced = run("list", "--sync", "--backend", "sagemaker", "-o", "json", check_rc=0)
    assert [r["id"] for r in json.loads(synced.stdout)] == [submitted[0]]
    assert synced.stderr.count("launch never gives") == len(AWS_VALID_HOSTILE)
    adopted = run("run", str(spec), "--backend", "sagemaker", "--idempotency-key", "stranger-key")
    assert adopted.returncode == 1 and "launch never gives" in adopted.stderr and "Traceback" not in adopted.stderr
    assert [r["id"] for r in json.loads(run("list", "-o", "json", check_rc=0).stdout)] == [submitted[0]]
    assert all(launch_home in p.parents for p in set(tmp_path.rglob("*")) - before)


# -- Vertex AI (its REST fake), where the id is the custom job's display name --------------------


@pytest.fixture(scope="module")
def gcp():
    from fakes.vertex_fake import VertexFake

    with VertexFake(project="my-project", location="us-central1", buckets=("team-bucket",)) as fake:
        yield fake


def test_vertex_jobs_with_hostile_display_names_are_neither_synced_nor_adopted(gcp, cli, write_spec,
                                                                             launch_home: Path, tmp_path: Path):
    gcp.reset()
    gcp.add_bucket("team-bucket")
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        "[backends.vertex]\n"
        f'api_endpoint = "{gcp.endpoint}"\nstorage_endpoint = "{gcp.endpoint}"\nlogging_endpoint = "{gcp.endpoint}"\n'
        'project = "my-project"\nregion = "us-central1"\n')
    spec = write_spec("name: vx-ids\nimage: us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3:latest\n"
                      "run: python train.py\nresources:\n  accelerators: L4\nbackends:\n  vertex:\n"
                      "    project: my-project\n    region: us-central1\n    staging_bucket: gs://team-bucket\n")
    submitted = [json.loads(cli("run", str(spec), "--backend", "vertex", "--idempotency-key", f"key-{n}", "-o", "json",
                                check_rc=0).stdout)["id"] for n in range(len(AWS_VALID_HOSTILE) + 1)]
    strangers = [job for job in gcp.jobs.values() if job.display_name != submitted[0]]
    for job, hostile in zip(strangers, AWS_VALID_HOSTILE, strict=True):  # jobs a stranger made with our labels
        job.display_name = hostile
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    before = set(tmp_path.rglob("*"))
    synced = cli("list", "--sync", "--backend", "vertex", "-o", "json", check_rc=0)
    assert [r["id"] for r in json.loads(synced.stdout)] == [submitted[0]]
    assert synced.stderr.count("launch never gives") == len(AWS_VALID_HOSTILE)
    adopted = cli("run", str(spec), "--backend", "vertex", "--idempotency-key", "key-1")
    assert adopted.returncode == 1 and "launch never gives" in adopted.stderr and "Traceback" not in adopted.stderr
    assert [r["id"] for r in json.loads(cli("list", "-o", "json", check_rc=0).stdout)] == [submitted[0]]
    assert all(launch_home in p.parents for p in set(tmp_path.rglob("*")) - before)


# -- ssh (a real sshd), where the id is read from the start records on the hosts -----------------


@pytest.mark.skipif(not sshd_available(), reason="needs OpenSSH's sshd and ssh")
def test_ssh_start_records_with_hostile_ids_are_neither_synced_nor_adopted(cli, write_spec, launch_home: Path,
                                                                          tmp_path: Path):
    with SSHServer("127.0.0.1") as server:
        launch_home.mkdir(parents=True, exist_ok=True)
        (launch_home / "config.toml").write_text(
            f'[backends.ssh]\nhosts = ["{server.host_spec}"]\nssh_config = "{server.ssh_config}"\n'
            f'remote_root = "{server.remote_root}"\n')
        spec = write_spec("name: ssh-ids\nrun: echo hi\n")
        real = json.loads(cli("run", str(spec), "--backend", "ssh", "--idempotency-key", "key-0", "--wait",
                              "-o", "json", check_rc=0).stdout)["id"]
        record = json.loads((server.remote_root / "jobs" / real / "handle.json").read_text())
        for number, hostile in enumerate(HOSTILE[:6]):  # start records someone else wrote on the host
            planted = server.remote_root / "jobs" / f"planted-{number}"
            planted.mkdir(parents=True)
            data = {**record["data"], "idempotency_key": "stranger-key"}
            (planted / "handle.json").write_text(json.dumps({**record, "job_id": hostile, "data": data}))
        for path in launch_home.glob("jobs.db*"):
            path.unlink()
        before = set(tmp_path.rglob("*"))
        synced = cli("list", "--sync", "--backend", "ssh", "-o", "json", check_rc=0)
        assert [r["id"] for r in json.loads(synced.stdout)] == [real]
        assert synced.stderr.count("launch never gives") == 6 and "\x00" not in synced.stderr
        adopted = cli("run", str(spec), "--backend", "ssh", "--idempotency-key", "stranger-key")
        assert adopted.returncode == 1 and "launch never gives" in adopted.stderr, adopted.stderr
        assert [r["id"] for r in json.loads(cli("list", "-o", "json", check_rc=0).stdout)] == [real]
        assert all(launch_home in p.parents for p in set(tmp_path.rglob("*")) - before)


# -- Azure ML (its HTTPS fake, driven by the SDK), where the id is a job tag -----------------------


@pytest.fixture(scope="module")
def azure():
    from fakes.azureml_fake import AzureMLFake

    with AzureMLFake() as fake:
        yield fake


def test_azureml_jobs_tagged_with_hostile_ids_are_neither_synced_nor_adopted(azure, cli, write_spec,
                                                                           launch_home: Path, tmp_path: Path):
    import copy

    from backends.azureml.render import IDEMPOTENCY_TAG, JOB_ID_TAG

    azure.reset()
    azure.add_compute("gpu-cluster")
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(
        f'[backends.azureml]\nendpoint = "{azure.url}"\nsubscription_id = "{azure.subscription}"\n'
        f'resource_group = "{azure.resource_group}"\nworkspace_name = "{azure.workspace}"\n')
    env = azure.client_env("cli-token")
    spec = write_spec("name: az-ids\nimage: mcr.microsoft.com/azureml/curated/acpt-pytorch-2.2-cuda12.1:1\n"
                      "run: python train.py\nresources:\n  accelerators: H100:8\n")
    real = json.loads(cli("run", str(spec), "--backend", "azureml", "--idempotency-key", "key-0", "-o", "json",
                          env=env, check_rc=0).stdout)["id"]
    for number, hostile in enumerate(AWS_VALID_HOSTILE):  # jobs a stranger made with our tags
        stranger = copy.deepcopy(azure.jobs[real])
        stranger["name"] = f"stranger-{number}"
        stranger["properties"]["tags"].update({JOB_ID_TAG: hostile, IDEMPOTENCY_TAG: "stranger-key"})
        azure.jobs[stranger["name"]] = stranger
    for path in launch_home.glob("jobs.db*"):
        path.unlink()
    before = set(tmp_path.rglob("*"))
    synced = cli("list", "--sync", "--backend", "azureml", "-o", "json", env=env, check_rc=0)
    assert [r["id"] for r in json.loads(synced.stdout)] == [real]
    assert synced.stderr.count("launch never gives") == len(AWS_VALID_HOSTILE)
    adopted = cli("run", str(spec), "--backend", "azureml", "--idempotency-key", "stranger-key", env=env)
    assert adopted.returncode == 1 and "launch never gives" in adopted.stderr, adopted.stderr
    assert [r["id"] for r in json.loads(cli("list", "-o", "json", check_rc=0).stdout)] == [real]
    assert all(launch_home in p.parents for p in set(tmp_path.rglob("*")) - before)
