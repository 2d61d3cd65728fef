"""The Vertex/Logging/GCS fake answered through the real clients (aiplatform_v1 REST, google-cloud-storage, requests).

These pin the wire facts listed in ``fakes/vertex_fake.py``'s docstring, so a client upgrade that changes them fails
here rather than in the backend's tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fakes.vertex_fake import VertexFake, eval_filter, parse_filter
from google.api_core import exceptions as gexc
from google.cloud import aiplatform_v1

PARENT = "projects/test-project/locations/us-central1"
H100 = aiplatform_v1.AcceleratorType.NVIDIA_H100_80GB


@pytest.fixture(scope="module")
def server() -> Iterator[VertexFake]:
    with VertexFake() as fake:
        yield fake


@pytest.fixture
def gcp(server: VertexFake) -> Iterator[VertexFake]:
    server.reset()
    yield server


def custom_job(name: str = "train-1", **labels: str) -> aiplatform_v1.CustomJob:
    return aiplatform_v1.CustomJob(
        display_name=name,
        labels={"launch_job_id": name, **labels},
        job_spec=aiplatform_v1.CustomJobSpec(
            worker_pool_specs=[aiplatform_v1.WorkerPoolSpec(
                machine_spec=aiplatform_v1.MachineSpec(machine_type="a3-highgpu-8g", accelerator_type=H100,
                                                       accelerator_count=8),
                replica_count=1,
                disk_spec=aiplatform_v1.DiskSpec(boot_disk_type="pd-ssd", boot_disk_size_gb=200),
                container_spec=aiplatform_v1.ContainerSpec(
                    image_uri="us-docker.pkg.dev/p/r/train:1", command=["bash", "-c", "python train.py"],
                    env=[aiplatform_v1.EnvVar(name="LAUNCH_JOB_ID", value=name)]),
            )],
            scheduling=aiplatform_v1.Scheduling(timeout={"seconds": 3600},
                                                strategy=aiplatform_v1.Scheduling.Strategy.SPOT),
        ),
    )


def listed(client: aiplatform_v1.JobServiceClient, flt: str) -> list[str]:
    return [j.name for j in client.list_custom_jobs(request={"parent": PARENT, "filter": flt})]


def status_of(exc: gexc.GoogleAPICallError) -> str:
    return exc.response.json()["error"]["status"]


def post(gcp: VertexFake, path: str, body: Any) -> requests.Response:
    return requests.post(gcp.endpoint + path, json=body, timeout=10)


def test_custom_job_lifecycle_through_the_rest_client(gcp: VertexFake) -> None:
    client = gcp.job_client()
    created = client.create_custom_job(parent=PARENT, custom_job=custom_job())
    assert created.name.startswith(PARENT + "/customJobs/") and created.name.rsplit("/", 1)[1].isdigit()
    assert created.state == aiplatform_v1.JobState.JOB_STATE_PENDING and created.create_time
    assert created.job_spec.worker_pool_specs[0].machine_spec.accelerator_type == H100

    # what went over the wire: camelCase, enums as ints, int64 as strings, Duration as "3600s"
    body = gcp.created_bodies[0]
    pool = body["jobSpec"]["workerPoolSpecs"][0]
    assert pool["machineSpec"] == {"machineType": "a3-highgpu-8g", "acceleratorType": int(H100),
                                   "acceleratorCount": 8}
    assert pool["replicaCount"] == "1"
    assert body["jobSpec"]["scheduling"] == {"timeout": "3600s",
                                             "strategy": int(aiplatform_v1.Scheduling.Strategy.SPOT)}
    assert gcp.requests[0] == ("POST", f"/v1/{PARENT}/customJobs", {"$alt": "json;enum-encoding=int"})

    gcp.set_state(created.name, "JOB_STATE_RUNNING")
    got = client.get_custom_job(name=created.name)
    assert got.state == aiplatform_v1.JobState.JOB_STATE_RUNNING and got.start_time and not got.end_time

    other = client.create_custom_job(parent=PARENT, custom_job=custom_job("train-2", team="x"))
    found = list(client.list_custom_jobs(request={"parent": PARENT, "filter": 'labels.launch_job_id="train-1"'}))
    assert [j.name for j in found] == [created.name]
    assert listed(client, "labels.team:*") == [other.name]
    assert listed(client, "labels.launch_job_id=train-2") == [other.name]
    pager = client.list_custom_jobs(request={"parent": PARENT, "page_size": 1})
    assert [j.name for j in pager] == [other.name, created.name]  # newest first, across two pages
    assert sum(1 for m, p, _ in gcp.requests if m == "GET" and p.endswith("/customJobs")) == 5
    running = 'state="JOB_STATE_RUNNING" AND display_name:"train-*"'
    assert listed(client, running) == [created.name]

    client.cancel_custom_job(name=created.name)
    assert gcp.job(created.name).state == aiplatform_v1.JobState.JOB_STATE_CANCELLING
    client.cancel_custom_job(name=created.name)  # still cancelling: accepted again
    gcp.set_state(created.name.rsplit("/", 1)[1], "CANCELLED")
    with pytest.raises(gexc.BadRequest) as refused:  # REST: any HTTP 400 is BadRequest, the status is in the body
        client.cancel_custom_job(name=created.name)
    assert status_of(refused.value) == "FAILED_PRECONDITION"
    assert gcp.cancel_requests == [created.name] * 3
    done = client.get_custom_job(name=created.name)
    assert done.state == aiplatform_v1.JobState.JOB_STATE_CANCELLED and done.error.code == 1 and done.end_time

    gcp.set_state(other.name, "JOB_STATE_FAILED", error_message="exit 3")
    assert client.get_custom_job(name=other.name).error.message == "exit 3"
    with pytest.raises(gexc.NotFound):
        client.get_custom_job(name=f"{PARENT}/customJobs/123")
    with pytest.raises(gexc.NotFound):
        client.cancel_custom_job(name=f"{PARENT}/customJobs/123")


def test_bad_bodies_are_rejected_like_google_would(gcp: VertexFake) -> None:
    good = aiplatform_v1.CustomJob.to_dict(custom_job())
    unknown = {**good, "workerPoolSpec": []}
    r = post(gcp, f"/v1/{PARENT}/customJobs", unknown)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "workerPoolSpec" in r.json()["error"]["message"]
    bad_enum = {"displayName": "x", "jobSpec": {"workerPoolSpecs": [{"machineSpec": {
        "machineType": "a3-highgpu-8g", "acceleratorType": "NVIDIA_H100", "acceleratorCount": 8}}]}}
    assert post(gcp, f"/v1/{PARENT}/customJobs", bad_enum).status_code == 400
    assert post(gcp, f"/v1/{PARENT}/customJobs", {**good, "displayName": ""}).status_code == 400
    assert post(gcp, f"/v1/{PARENT}/customJobs", {"displayName": "x"}).status_code == 400
    assert post(gcp, f"/v1/{PARENT}/customJobs", {**good, "labels": {"Launch": "x"}}).status_code == 400
    assert gcp.jobs == {} and len(gcp.created_bodies) == 5  # every body recorded, none stored
    # names for enums and snake_case keys are valid proto3 JSON too
    snake = {"display_name": "ok", "job_spec": {"worker_pool_specs": [{
        "machine_spec": {"machine_type": "g2-standard-24", "accelerator_type": "NVIDIA_L4", "accelerator_count": 2},
        "replica_count": "1", "container_spec": {"image_uri": "img"}}]}}
    r = post(gcp, f"/v1/{PARENT}/customJobs", snake)
    assert r.status_code == 200 and r.json()["state"] == "JOB_STATE_PENDING"  # no $alt: enums as names

    client = gcp.job_client()
    for machine, accel, count in [("a3-highgpu-8g", H100, 3), ("a3-highgpu-3g", H100, 3),
                                  ("a2-highgpu-8g", aiplatform_v1.AcceleratorType.NVIDIA_A100_80GB, 8),
                                  ("n1-standard-8", aiplatform_v1.AcceleratorType.NVIDIA_TESLA_T4, 3),
                                  ("e2-standard-8", aiplatform_v1.AcceleratorType.NVIDIA_TESLA_T4, 1)]:
        job = custom_job()
        job.job_spec.worker_pool_specs[0].machine_spec = aiplatform_v1.MachineSpec(
            machine_type=machine, accelerator_type=accel, accelerator_count=count)
        with pytest.raises(gexc.BadRequest) as refused:
            client.create_custom_job(parent=PARENT, custom_job=job)
        assert status_of(refused.value) == "INVALID_ARGUMENT"
    two = custom_job()
    two.job_spec.worker_pool_specs[0].replica_count = 2
    with pytest.raises(gexc.BadRequest):
        client.create_custom_job(parent=PARENT, custom_job=two)
    two.job_spec.worker_pool_specs[0].replica_count = 1
    two.job_spec.worker_pool_specs.append(two.job_spec.worker_pool_specs[0])
    two.job_spec.worker_pool_specs[1].replica_count = 1
    assert client.create_custom_job(parent=PARENT, custom_job=two).job_spec.worker_pool_specs[1].replica_count == 1
    with pytest.raises(gexc.BadRequest):
        list(client.list_custom_jobs(request={"parent": PARENT, "filter": 'owner="me"'}))


def test_create_that_fails_after_storing(gcp: VertexFake) -> None:
    client = gcp.job_client()
    gcp.fail_next_create_after_storing()
    with pytest.raises(gexc.ServiceUnavailable):
        client.create_custom_job(parent=PARENT, custom_job=custom_job("retry-me"))
    found = list(client.list_custom_jobs(request={"parent": PARENT, "filter": 'labels.launch_job_id="retry-me"'}))
    assert len(found) == 1 and len(gcp.jobs) == 1
    gcp.fail_next(r"/customJobs/", 503, method="GET")
    with pytest.raises(gexc.ServiceUnavailable):
        client.get_custom_job(name=found[0].name)
    assert client.get_custom_job(name=found[0].name).display_name == "retry-me"


def test_logging_entries_list(gcp: VertexFake) -> None:
    job = f"{PARENT}/customJobs/555"
    gcp.add_log(job, "workerpool0-0", "chief 1", "2024-05-01T10:00:00.000000100Z")
    gcp.add_log(job, "workerpool1-0", "worker 1", "2024-05-01T10:00:00.5Z")
    gcp.add_log(job, "workerpool0-0", "chief 2", "2024-05-01T10:00:01Z", as_json=True)
    gcp.add_log(job, "workerpool0-0", "chief 3", "2024-05-01T10:00:02Z")
    gcp.add_log("999", "workerpool0-0", "another job", "2024-05-01T10:00:00Z")
    entry = gcp.log_entries[0]
    assert entry["logName"] == "projects/test-project/logs/workerpool0-0"
    assert entry["resource"] == {"type": "ml_job", "labels": {"job_id": "555", "task_name": "workerpool0-0",
                                                              "project_id": "test-project"}}
    assert entry["timestamp"] == "2024-05-01T10:00:00.000000100Z"

    def lines(resp: dict[str, Any]) -> list[str]:
        return [e.get("textPayload") or e["jsonPayload"]["message"] for e in resp.get("entries", [])]

    flt = 'resource.type="ml_job" resource.labels.job_id="555"'
    body = {"resourceNames": ["projects/test-project"], "filter": flt, "orderBy": "timestamp asc", "pageSize": 2}
    first = post(gcp, "/v2/entries:list", body).json()
    assert lines(first) == ["chief 1", "worker 1"] and first["nextPageToken"]
    second = post(gcp, "/v2/entries:list", {**body, "pageToken": first["nextPageToken"]}).json()
    assert lines(second) == ["chief 2", "chief 3"] and "nextPageToken" not in second

    chief = flt + ' AND resource.labels.task_name="workerpool0-0" AND timestamp>="2024-05-01T10:00:01Z"'
    assert lines(post(gcp, "/v2/entries:list", {**body, "filter": chief}).json()) == ["chief 2", "chief 3"]
    later = flt + ' timestamp>"2024-05-01T10:00:01Z"'
    assert lines(post(gcp, "/v2/entries:list", {**body, "filter": later}).json()) == ["chief 3"]
    desc = post(gcp, "/v2/entries:list", {**body, "orderBy": "timestamp desc", "pageSize": 1}).json()
    assert lines(desc) == ["chief 3"]
    assert post(gcp, "/v2/entries:list", {**body, "filter": 'resource.labels.job_id="0"'}).json() == {}

    for bad in ({**body, "orderBy": "severity"}, {**body, "pageSize": 1001}, {**body, "resourceNames": []},
                {**body, "pageToken": "nope"}, {**body, "filters": flt}, {**body, "filter": "timestamp>="},
                {**body, "pageToken": first["nextPageToken"], "filter": chief}):
        r = post(gcp, "/v2/entries:list", bad)
        assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", bad


def test_gcs_upload_exists_download(gcp: VertexFake, tmp_path: Any) -> None:
    client = gcp.storage_client()
    gcp.add_bucket("staging")
    bucket = client.bucket("staging")
    assert bucket.exists() and not client.bucket("missing").exists()
    blob = bucket.blob("launch/job-1/bundle.tar.gz")
    blob.upload_from_string(b"bundle bytes", content_type="application/gzip")
    assert gcp.objects[("staging", "launch/job-1/bundle.tar.gz")] == b"bundle bytes"
    assert ("POST", "/upload/storage/v1/b/staging/o", {"uploadType": "multipart"}) in gcp.requests
    again = bucket.blob("launch/job-1/bundle.tar.gz")
    assert again.exists()
    again.reload()
    assert again.size == 12 and again.content_type == "application/gzip"
    assert again.download_as_bytes() == b"bundle bytes"
    assert not bucket.blob("launch/job-1/other").exists()

    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(9 * 1024 * 1024))  # > 8 MiB: a resumable upload
    bucket.blob("big.bin").upload_from_filename(str(big))
    assert gcp.objects[("staging", "big.bin")] == big.read_bytes()
    assert [b.name for b in client.list_blobs("staging", prefix="launch/")] == ["launch/job-1/bundle.tar.gz"]
    with pytest.raises(gexc.PreconditionFailed):
        bucket.blob("big.bin").upload_from_string(b"x", if_generation_match=0)
    with pytest.raises(gexc.NotFound):
        client.bucket("missing").blob("x").upload_from_string(b"x")


def test_filter_precedence_and_reset(gcp: VertexFake) -> None:
    def run(text: str, **values: str) -> bool:
        return eval_filter(parse_filter(text), lambda f, op, v, q: values.get(f) == v)

    assert run("a=1 AND b=2 OR c=3", a="1", c="3")  # a AND (b OR c)
    assert not run("a=1 AND b=2 OR c=3", b="2", c="3")
    assert run("NOT a=1 (b=2)", b="2")
    gcp.add_bucket("b")
    gcp.add_log("1", "workerpool0-0", "x")
    gcp.job_client().create_custom_job(parent=PARENT, custom_job=custom_job())
    gcp.reset()
    assert not (gcp.jobs or gcp.log_entries or gcp.buckets or gcp.created_bodies or gcp.objects)
    assert not [r for r in gcp.requests if not r[1].startswith("/storage/")]  # storage.Client's background GET


def test_tpu_machines_through_the_rest_client(gcp: VertexFake) -> None:
    """A TPU VM machine with its topology and a reservation, and cloud-tpu with TPU_V2: the enums and
    fields the backend renders, through the real client; a topology on a GPU machine and a GPU on
    cloud-tpu are refused."""
    client = gcp.job_client()
    specs = {
        "v5p": aiplatform_v1.MachineSpec(machine_type="ct5p-hightpu-4t", tpu_topology="2x2x2",
                                         reservation_affinity=aiplatform_v1.ReservationAffinity(
                                             reservation_affinity_type="ANY_RESERVATION")),
        "v2": aiplatform_v1.MachineSpec(machine_type="cloud-tpu", accelerator_type="TPU_V2", accelerator_count=8),
    }
    for name, machine in specs.items():
        job = custom_job(name)
        job.job_spec.worker_pool_specs[0].machine_spec = machine
        assert client.create_custom_job(parent=PARENT, custom_job=job).job_spec.worker_pool_specs[0].machine_spec == \
            machine
    for machine in (aiplatform_v1.MachineSpec(machine_type="n1-standard-8", tpu_topology="2x2"),
                    aiplatform_v1.MachineSpec(machine_type="cloud-tpu", accelerator_type=H100, accelerator_count=8)):
        job = custom_job("bad")
        job.job_spec.worker_pool_specs[0].machine_spec = machine
        with pytest.raises(gexc.BadRequest):
            client.create_custom_job(parent=PARENT, custom_job=job)
