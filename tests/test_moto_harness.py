"""Tests of the moto test server (tests/fakes/moto_sagemaker.py) that the SageMaker backend tests stand on.

moto never moves a training job's status (it creates jobs already Completed) and has no StopTrainingJob, so the
harness extends it: a StopTrainingJob handler, AWS's ResourceInUse on duplicate names, jobs held InProgress and
driven through InProgress/Training/Completed/Failed/Stopped by changing moto's backend objects, and CloudWatch
events written into moto. These tests talk to the server over real HTTP with plain boto3 clients, so they check
what the backend will see.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from fakes import moto_sagemaker
from fakes.moto_sagemaker import LOG_GROUP, MotoSageMaker

ROLE = "arn:aws:iam::123456789012:role/launch-test"


@pytest.fixture(scope="module")
def server() -> MotoSageMaker:
    with MotoSageMaker() as aws, pytest.MonkeyPatch.context() as mp:
        for key, value in aws.env().items():  # so a developer's own AWS settings cannot leak into these tests
            mp.setenv(key, value)
        yield aws


@pytest.fixture
def aws(server: MotoSageMaker) -> MotoSageMaker:
    server.reset()
    yield server
    assert server.take_model_violations() == [], "a request broke botocore's model"


def plain(aws: MotoSageMaker, service: str) -> Any:
    """A plain boto3 client pointed at the server with endpoint_url (not the harness's own client)."""
    return _plain(aws.endpoint_url, aws.region, service)


@functools.cache
def _plain(endpoint_url: str, region: str, service: str) -> Any:
    return _session(endpoint_url).client(service, endpoint_url=endpoint_url, region_name=region,
                                         aws_access_key_id="testing", aws_secret_access_key="testing")


@functools.cache
def _session(endpoint_url: str) -> boto3.session.Session:
    return boto3.session.Session()  # made after `server` set the environment; one per server (loading is slow)


def job_request(name: str = "job-1", **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/img:1",
                                   "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "OutputDataConfig": {"S3OutputPath": "s3://launch-bucket/out"},
        "ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        **extra,
    }


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = excinfo.value.response["Error"]
    return err["Code"], err["Message"]


# -- training job states ---------------------------------------------------------------------------------------

def test_moto_alone_creates_jobs_completed(aws: MotoSageMaker) -> None:
    plain(aws, "sagemaker").create_training_job(**job_request())
    desc = aws.describe("job-1")
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Completed", "Completed")


def test_held_job_is_driven_through_training_to_completed(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    aws.hold_new_jobs_in_progress()
    arn = sm.create_training_job(**job_request())["TrainingJobArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:{aws.account_id}:training-job/job-1"
    desc = sm.describe_training_job(TrainingJobName="job-1")
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("InProgress", "Starting")
    for absent in ("TrainingStartTime", "TrainingEndTime", "ModelArtifacts", "FailureReason"):
        assert absent not in desc

    aws.set_job_state("job-1", "InProgress", "Training")
    desc = sm.describe_training_job(TrainingJobName="job-1")
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("InProgress", "Training")
    assert "TrainingStartTime" in desc and "TrainingEndTime" not in desc

    aws.set_job_state("job-1", "Completed", "Completed")
    desc = sm.describe_training_job(TrainingJobName="job-1")
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Completed", "Completed")
    assert desc["TrainingEndTime"] >= desc["TrainingStartTime"]
    assert desc["ModelArtifacts"]["S3ModelArtifacts"] == "s3://launch-bucket/out/job-1/output/model.tar.gz"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == ["Starting", "Training", "Completed"]
    assert all("EndTime" in t for t in desc["SecondaryStatusTransitions"])
    summaries = sm.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in summaries] == ["job-1"]


def test_failed_and_timed_out_jobs(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    aws.hold_new_jobs_in_progress()
    sm.create_training_job(**job_request("bad"))
    sm.create_training_job(**job_request("slow"))
    aws.set_job_state("bad", "Failed", "Failed", failure_reason="AlgorithmError: exit code 3")
    aws.set_job_state("slow", "Stopped", "MaxRuntimeExceeded")
    bad, slow = aws.describe("bad"), aws.describe("slow")
    assert (bad["TrainingJobStatus"], bad["FailureReason"]) == ("Failed", "AlgorithmError: exit code 3")
    assert (slow["TrainingJobStatus"], slow["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "FailureReason" not in slow and "TrainingEndTime" in slow


def test_set_job_state_refuses_unknown_values(aws: MotoSageMaker) -> None:
    plain(aws, "sagemaker").create_training_job(**job_request())
    with pytest.raises(ValueError, match="TrainingJobStatus"):
        aws.set_job_state("job-1", "Running", "Training")
    with pytest.raises(ValueError, match="SecondaryStatus"):
        aws.set_job_state("job-1", "InProgress", "Warming")
    with pytest.raises(KeyError, match="nope"):
        aws.set_job_state("nope", "InProgress", "Training")


# -- StopTrainingJob (added to moto by the harness) ------------------------------------------------------------

def test_stop_in_progress_job_goes_stopping_then_stopped(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    aws.hold_new_jobs_in_progress()
    sm.create_training_job(**job_request())
    aws.set_job_state("job-1", "InProgress", "Training")
    response = sm.stop_training_job(TrainingJobName="job-1")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    desc = aws.describe("job-1")
    assert (desc["TrainingJobStatus"], desc["SecondaryStatus"]) == ("Stopping", "Stopping")
    with pytest.raises(ClientError) as excinfo:  # a second stop while Stopping is refused too
        sm.stop_training_job(TrainingJobName="job-1")
    assert error_of(excinfo)[0] == "ValidationException"
    aws.set_job_state("job-1", "Stopped", "Stopped")
    assert aws.describe("job-1")["TrainingJobStatus"] == "Stopped"


@pytest.mark.parametrize("status", ["Completed", "Failed", "Stopped"])
def test_stop_finished_job_is_a_validation_error(aws: MotoSageMaker, status: str) -> None:
    sm = plain(aws, "sagemaker")
    sm.create_training_job(**job_request())
    aws.set_job_state("job-1", status, status)
    with pytest.raises(ClientError) as excinfo:
        sm.stop_training_job(TrainingJobName="job-1")
    assert error_of(excinfo) == (
        "ValidationException", f"The request was rejected because the training job is in status {status}.")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_missing_job_errors(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    for call in (sm.stop_training_job, sm.describe_training_job):
        with pytest.raises(ClientError) as excinfo:
            call(TrainingJobName="nope")
        assert error_of(excinfo) == ("ValidationException", "Requested resource not found.")


# -- create: duplicates, wire payload, tags ----------------------------------------------------------------

def test_duplicate_name_is_resource_in_use_and_keeps_the_first_job(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    aws.hold_new_jobs_in_progress()
    sm.create_training_job(**job_request(Tags=[{"Key": "launch:job-id", "Value": "first"}]))
    aws.set_job_state("job-1", "InProgress", "Training")
    with pytest.raises(ClientError) as excinfo:
        sm.create_training_job(**job_request(Tags=[{"Key": "launch:job-id", "Value": "second"}]))
    code, message = error_of(excinfo)
    assert code == "ResourceInUse"
    assert message.startswith("Training job names must be unique within an AWS account and region")
    assert "training-job/job-1" in message
    assert aws.describe("job-1")["SecondaryStatus"] == "Training"
    arn = aws.describe("job-1")["TrainingJobArn"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "launch:job-id", "Value": "first"}]
    assert [r["Tags"][0]["Value"] for r in aws.created_requests] == ["first", "second"]


def test_created_requests_hold_the_exact_wire_payload(aws: MotoSageMaker) -> None:
    request = job_request(Environment={"LAUNCH_JOB_ID": "abc", "A": "1"}, RetryStrategy={"MaximumRetryAttempts": 2},
                          EnableManagedSpotTraining=True,
                          StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
                          Tags=[{"Key": "launch:job-id", "Value": "abc"}])
    plain(aws, "sagemaker").create_training_job(**request)
    assert aws.created_requests == [request]
    desc = aws.describe("job-1")  # moto alone drops Environment and RetryStrategy; the harness keeps them
    assert desc["Environment"] == {"LAUNCH_JOB_ID": "abc", "A": "1"}
    assert desc["RetryStrategy"] == {"MaximumRetryAttempts": 2}
    assert desc["StoppingCondition"]["MaxWaitTimeInSeconds"] == 7200


def test_tags_list_add_and_search(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    ours = job_request("ours", Tags=[{"Key": "launch:job-id", "Value": "j1"}])
    arn = sm.create_training_job(**ours)["TrainingJobArn"]
    sm.create_training_job(**job_request("theirs"))
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "launch:idempotency-key", "Value": "k"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "launch:job-id", "Value": "j1"},
                                                     {"Key": "launch:idempotency-key", "Value": "k"}]
    found = sm.search(Resource="TrainingJob", SearchExpression={
        "Filters": [{"Name": "Tags.launch:job-id", "Operator": "Equals", "Value": "j1"}]})["Results"]
    assert [r["TrainingJob"]["TrainingJobName"] for r in found] == ["ours"]
    with pytest.raises(ClientError) as excinfo:
        sm.list_tags(ResourceArn=arn.replace("/ours", "/gone"))
    assert error_of(excinfo) == ("ValidationException", "Requested resource not found.")


def test_list_training_jobs_validates_status_filter(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    with pytest.raises(ClientError) as excinfo:
        sm.list_training_jobs(StatusEquals="Running")
    assert error_of(excinfo)[0] == "ValidationException"
    (violation,) = aws.take_model_violations()  # refused by the model check before moto's own
    assert violation.operation == "ListTrainingJobs" and "StatusEquals" in str(violation)


# -- every request checked against botocore's model ----------------------------------------------------------

BAD_CREATES = {
    "name of 110 characters": ({"TrainingJobName": "j" * 110}, "TrainingJobName: 110 characters"),
    "role that is not an IAM role ARN": ({"RoleArn": "arn:aws:iam::123456789012:user/someone"},
                                         "RoleArn: 'arn:aws:iam::123456789012:user/someone' does not match"),
    "instance type outside the enum": ({"ResourceConfig": {"InstanceType": "ml.bogus.huge", "InstanceCount": 1,
                                                           "VolumeSizeInGB": 50}},
                                       "ResourceConfig.InstanceType: 'ml.bogus.huge' is not one of"),
    "301 environment entries of 5,000 characters": (
        {"Environment": {f"V{i}": "x" * 5000 for i in range(301)}}, "Environment: 301 entries"),
    "tag value with a tab": ({"Tags": [{"Key": "launch:job-id", "Value": "a\tb"}]},
                             "Tags[0].Value: 'a\\tb' does not match"),
    "count over the maximum": ({"ResourceConfig": {"InstanceType": "ml.g4dn.xlarge", "InstanceCount": 1,
                                                   "VolumeSizeInGB": 50, "KeepAlivePeriodInSeconds": 21601}},
                               "ResourceConfig.KeepAlivePeriodInSeconds: 21601 is more than"),
}


@pytest.mark.parametrize("case", sorted(BAD_CREATES))
def test_a_create_that_breaks_the_model_is_refused_and_reported(aws: MotoSageMaker, case: str) -> None:
    """moto alone creates any of these; AWS refuses them with ValidationException, and so does the harness."""
    change, expected = BAD_CREATES[case]
    request = {**job_request(), **change}
    with pytest.raises(ClientError) as excinfo:
        plain(aws, "sagemaker").create_training_job(**request)
    code, message = error_of(excinfo)
    assert code == "ValidationException" and expected in message
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert plain(aws, "sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    (violation,) = aws.take_model_violations()
    assert (violation.service, violation.operation) == ("sagemaker", "CreateTrainingJob")
    assert any(expected in problem for problem in violation.problems)


def test_logs_requests_are_checked_too(aws: MotoSageMaker) -> None:
    with pytest.raises(ClientError) as excinfo:
        plain(aws, "logs").get_log_events(logGroupName=LOG_GROUP, logStreamName="job-1/*")
    assert error_of(excinfo)[0] == "ValidationException"
    (violation,) = aws.take_model_violations()
    assert violation.operation == "GetLogEvents" and "logStreamName: 'job-1/*' does not match" in str(violation)


def test_a_request_within_the_model_passes(aws: MotoSageMaker) -> None:
    request = job_request(Environment={f"V{i}": "x" * 512 for i in range(100)},
                          Tags=[{"Key": "launch:idempotency-key", "Value": "ci run 42 \u00e9\u4e2d\u0663 @/:=+-_."}])
    plain(aws, "sagemaker").create_training_job(**request)
    assert aws.take_model_violations() == []


def test_leaving_the_server_with_unseen_violations_fails() -> None:
    other = MotoSageMaker().start()
    with pytest.raises(ClientError):
        other.client("sagemaker").create_training_job(**job_request("j" * 110))
    with pytest.raises(AssertionError, match="TrainingJobName: 110 characters"):
        other.__exit__(None, None, None)
    assert other.take_model_violations() == []  # taken by the exit that failed


def test_patches_install_once(aws: MotoSageMaker) -> None:
    assert moto_sagemaker._install_patches() is moto_sagemaker._STATE
    plain(aws, "sagemaker").create_training_job(**job_request())
    assert len(aws.created_requests) == 1


def test_reset_forgets_jobs_requests_and_hold(aws: MotoSageMaker) -> None:
    sm = plain(aws, "sagemaker")
    aws.hold_new_jobs_in_progress()
    sm.create_training_job(**job_request())
    aws.put_logs("job-1", 1, ["x"])
    aws.reset()
    assert sm.list_training_jobs()["TrainingJobSummaries"] == []
    assert aws.created_requests == []
    assert plain(aws, "logs").describe_log_groups()["logGroups"] == []
    sm.create_training_job(**job_request())
    assert aws.describe("job-1")["TrainingJobStatus"] == "Completed"


# -- CloudWatch Logs -------------------------------------------------------------------------------------------

def read_all(logs: Any, stream: str, token: str | None = None, limit: int = 2) -> tuple[list[str], str]:
    """Follow a stream with forward tokens until the token comes back as sent (botocore's GetLogEvents
    documentation: that is the end; an empty page is not); return messages and the last token."""
    messages: list[str] = []
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True, limit=limit,
                                   **kwargs)
        messages += [e["message"] for e in page["events"]]
        if page["nextForwardToken"] == token:
            return messages, token
        token = page["nextForwardToken"]


def test_put_logs_and_forward_tokens(aws: MotoSageMaker) -> None:
    logs = plain(aws, "logs")
    lines = [f"line {i}" for i in range(5)]
    stream = aws.put_logs("job-1", 1, lines)
    assert re.fullmatch(r"job-1/algo-1-\d{10}", stream)
    got, token = read_all(logs, stream)
    assert got == lines
    again = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True, nextToken=token)
    assert again["events"] == [] and again["nextForwardToken"] == token  # drained: same token, no events
    assert aws.put_logs("job-1", 1, ["line 5", "line 6"]) == stream      # same node -> same stream
    assert read_all(logs, stream, token)[0] == ["line 5", "line 6"]


def test_empty_stream_token_resumes(aws: MotoSageMaker) -> None:
    logs = plain(aws, "logs")
    stream = aws.put_logs("job-1", 1, [])
    first = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)
    assert first["events"] == []
    aws.put_logs("job-1", 1, ["a", "b"])
    assert read_all(logs, stream, first["nextForwardToken"])[0] == ["a", "b"]


def test_streams_not_there_yet(aws: MotoSageMaker) -> None:
    logs = plain(aws, "logs")
    for call in (lambda: logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="job-1/"),
                 lambda: logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="job-1/algo-1-1")):
        with pytest.raises(ClientError) as excinfo:  # no log group at all yet
            call()
        assert error_of(excinfo)[0] == "ResourceNotFoundException"
    aws.put_logs("other-job", 1, ["x"])  # the group exists now, job-1's streams still do not
    assert logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="job-1/")["logStreams"] == []
    with pytest.raises(ClientError) as excinfo:
        logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="job-1/algo-1-1", startFromHead=True)
    assert error_of(excinfo)[0] == "ResourceNotFoundException"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_multi_node_streams_merge_by_time(aws: MotoSageMaker) -> None:
    logs = plain(aws, "logs")
    start = int(time.time() * 1000) - 60_000
    s1 = aws.put_logs("job-1", 1, ["n1 a", "n1 b", "n1 c"], start_ms=start, step_ms=10)
    s2 = aws.put_logs("job-1", 2, ["n2 a", "n2 b"], start_ms=start + 5, step_ms=10)
    aws.put_logs("job-10", 1, ["other job"], start_ms=start)
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="job-1/")["logStreams"]
    assert sorted(s["logStreamName"] for s in streams) == sorted([s1, s2])
    assert [s["logStreamName"] for s in logs.describe_log_streams(
        logGroupName=LOG_GROUP, logStreamNamePrefix="job-1/algo-2-")["logStreams"]] == [s2]
    events = [e for s in (s1, s2) for e in logs.get_log_events(
        logGroupName=LOG_GROUP, logStreamName=s, startFromHead=True)["events"]]
    assert [e["message"] for e in sorted(events, key=lambda e: e["timestamp"])] == [
        "n1 a", "n2 a", "n1 b", "n2 b", "n1 c"]


def test_empty_log_pages_move_the_token_before_the_events(aws: MotoSageMaker) -> None:
    logs = plain(aws, "logs")
    stream = aws.put_logs("job-1", 1, ["a", "b", "c"])
    aws.empty_log_pages()
    first = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)
    assert first["events"] == [] and first["nextForwardToken"]  # no lines, but not the end: the token moved
    got, token = read_all(logs, stream)
    assert got == ["a", "b", "c"]
    again = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True, nextToken=token)
    assert again["events"] == [] and again["nextForwardToken"] == token  # drained: the token comes back as sent
    aws.put_logs("job-1", 1, ["d"])
    assert read_all(logs, stream, token)[0] == ["d"]
    assert aws.log_reads[:3] == [(stream, None), (stream, None), (stream, first["nextForwardToken"])]
    with pytest.raises(ClientError) as excinfo:  # a stream that is not there is still not there
        logs.get_log_events(logGroupName=LOG_GROUP, logStreamName="job-1/algo-2-1", startFromHead=True)
    assert error_of(excinfo)[0] == "ResourceNotFoundException"
    aws.reset()
    assert aws.log_reads == []
    stream = aws.put_logs("job-1", 1, ["a"])
    assert logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True)["events"]


def test_put_logs_refuses_what_would_break_tokens(aws: MotoSageMaker) -> None:
    now = int(time.time() * 1000)
    aws.put_logs("job-1", 1, ["late"], start_ms=now)
    with pytest.raises(ValueError, match="before the last event"):
        aws.put_logs("job-1", 1, ["early"], start_ms=now - 1000)
    with pytest.raises(ValueError, match="14 days"):
        aws.put_logs("job-2", 1, ["ancient"], start_ms=now - 30 * 86_400_000)


# -- S3 and the environment for subprocesses ------------------------------------------------------------------

def test_s3_put_and_head(aws: MotoSageMaker) -> None:
    s3 = plain(aws, "s3")
    s3.create_bucket(Bucket="launch-123456789012-us-east-1")
    s3.put_object(Bucket="launch-123456789012-us-east-1", Key="bundles/abc.tar.gz", Body=b"bundle")
    head = s3.head_object(Bucket="launch-123456789012-us-east-1", Key="bundles/abc.tar.gz")
    assert head["ContentLength"] == 6


SUBPROCESS = """
import boto3
s = boto3.session.Session()
creds = s.get_credentials()
print(creds.access_key, creds.token, s.region_name)
for svc in ("sagemaker", "logs", "s3", "sts"):
    print(s.client(svc).meta.endpoint_url)
print(s.client("sts").get_caller_identity()["Account"])
s.client("s3").create_bucket(Bucket="made-by-subprocess")
"""


def test_env_points_a_subprocess_at_the_server_and_hides_real_credentials(aws: MotoSageMaker) -> None:
    developer = {"AWS_PROFILE": "someones-real-profile", "AWS_SESSION_TOKEN": "real-token",
                 "AWS_ACCESS_KEY_ID": "AKIAREALKEY", "AWS_SECRET_ACCESS_KEY": "real-secret",
                 "AWS_ENDPOINT_URL_S3": "https://s3.amazonaws.com"}
    result = subprocess.run([sys.executable, "-c", SUBPROCESS], env={**os.environ, **developer, **aws.env()},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[:3] == ["testing", "None", "us-east-1"]
    assert lines[3:7] == [aws.endpoint_url] * 4
    assert lines[7] == aws.account_id
    assert "made-by-subprocess" in [b["Name"] for b in plain(aws, "s3").list_buckets()["Buckets"]]


def test_an_exception_inside_moto_is_recorded_for_the_teardown_check(aws: MotoSageMaker, monkeypatch):
    """moto answers its own bug with a 500 that boto3 retries past; the harness records it so the
    test it happened in fails (tests/fakes/bugs.py), instead of passing on a retry."""
    from fakes import bugs
    from moto.sagemaker import models

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug inside moto")

    monkeypatch.setattr(models.SageMakerModelBackend, "list_training_jobs", broken)
    with pytest.raises(ClientError):
        plain(aws, "sagemaker").list_training_jobs()
    raised = bugs.take()
    assert raised and all("MotoSageMaker" in text and "a bug inside moto" in text for text in raised)
