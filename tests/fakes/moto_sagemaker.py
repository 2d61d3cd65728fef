"""An in-process moto server for SageMaker + CloudWatch Logs + S3 + STS tests, with what moto lacks added.

Import it from tests as ``from fakes.moto_sagemaker import MotoSageMaker`` (pytest puts ``tests/`` on
``sys.path``; ``tests.fakes.moto_sagemaker`` also works from the repo root). Typical use::

    with MotoSageMaker() as aws:                    # ThreadedMotoServer on 127.0.0.1:<free port>, in this process
        aws.hold_new_jobs_in_progress()             # new jobs start InProgress/Starting (moto: Completed)
        subprocess.run([...], env={**os.environ, **aws.env()})   # a CLI talks to it through AWS_ENDPOINT_URL
        aws.set_job_state("job", "InProgress", "Training")
        aws.put_logs("job", 1, ["hello", "world"])  # -> "job/algo-1-<epoch s>"
        aws.set_job_state("job", "Completed", "Completed")
        aws.created_requests[0]                     # the CreateTrainingJob JSON exactly as it came over HTTP
        aws.empty_log_pages()                       # GetLogEvents answers empty pages with a moving token first
        assert aws.take_model_violations() == []    # every fixture, after every test
        aws.reset()                                 # between tests

What this module patches into moto (at import, once per process, whatever name the module is imported under;
the state lives on moto's ``SageMakerModelBackend`` class):

- Every SageMaker and CloudWatch Logs request (both AWS JSON protocols: the body is the parameters) is checked
  against botocore's model of its operation (tests/fakes/botocore_model.py): types, required and unknown members
  and minimums as botocore's ParamValidator, plus the maximums, patterns and enums AWS enforces and moto ignores
  (moto alone creates a job with a 110-character name, a user ARN as role, ``ml.bogus.huge`` or 301 environment
  entries of 5,000 characters). A request that breaks the model is answered ``ValidationException`` (HTTP 400, as
  AWS) and kept as a ``ModelViolation``; ``take_model_violations()`` hands them over (fixtures assert none after
  each test) and leaving ``with MotoSageMaker()`` with some not taken raises AssertionError. S3 and STS requests
  (REST-XML and query protocols) are not checked.
- GetLogEvents records (stream, nextToken) in ``log_reads``; with ``empty_log_pages()`` it answers as CloudWatch
  may: a page without events whose ``nextForwardToken`` moves on before each page of events (see that method).

- StopTrainingJob (moto 5.2.5 has none: HTTP 500, which botocore even retries). AWS semantics: an InProgress
  job becomes TrainingJobStatus/SecondaryStatus ``Stopping``/``Stopping`` (move it on with
  ``set_job_state(name, "Stopped", "Stopped")``); a job in any other status -> ``ValidationException`` "The
  request was rejected because the training job is in status Completed." (text seen from real AWS; that a
  ``Stopping`` job is refused the same way is an assumption); a missing job -> ``ValidationException``
  "Requested resource not found." (what AWS answers for missing training jobs, although the API reference lists
  ``ResourceNotFound``).
- CreateTrainingJob with an existing name: moto silently replaced the job. Now ``ResourceInUse`` "Training job
  names must be unique within an AWS account and region, and a training job with this name already exists
  (<arn>)", as AWS. Every CreateTrainingJob body (json.loads of the raw HTTP body, recorded before any check, so a
  rejected duplicate is recorded too) is appended to ``created_requests``.
- moto drops request members it does not model (``Environment``, ``RetryStrategy``, ...) from DescribeTrainingJob;
  the harness copies any top-level request member that DescribeTrainingJob's output shape has and moto did not
  keep. moto also adds a fake ``MetricDefinitions`` (``test:dcg``) to the described ``AlgorithmSpecification``.
- DescribeTrainingJob of a missing job: moto said ``ValidationException`` "Could not find training job '<arn>'.";
  now "Requested resource not found." (the code was already AWS's).
- ListTags/AddTags/DeleteTags work for training-job ARNs, but a missing ARN made moto crash (HTTP 500, retried by
  botocore); now ``ValidationException`` "Requested resource not found." (AWS's own answer unverified).

moto facts left as they are (moto 5.2.5, botocore 1.44.8), for the backend author:

- boto3/botocore honour ``AWS_ENDPOINT_URL`` (and ``AWS_ENDPOINT_URL_<SERVICE>``) for every client: ``env()``
  relies on it and test_moto_harness checks it from a subprocess.
- Jobs never move by themselves: drive them with ``set_job_state``. ListTrainingJobs validates ``StatusEquals``,
  ``SortBy``, ``SortOrder`` and ``MaxResults`` (1..100) with ``ValidationException``, but ignores the sort (creation
  order), applies NameContains/StatusEquals/time filters AFTER cutting the MaxResults page (so a page can be short or
  empty while ``NextToken`` says more), and its summaries have no ``SecondaryStatus``. AWS has no tag filter on
  ListTrainingJobs; to find our jobs use ``Search(Resource="TrainingJob", SearchExpression={"Filters": [{"Name":
  "Tags.launch:job-id", "Operator": "Equals", "Value": ...}]})`` (moto supports that, returns ``Tags`` in each
  record, but a ``Tags.*`` filter short-circuits the other filters and any operator but Equals matches everything)
  or ListTags per job.
- CloudWatch ``get_log_events`` tokens are index-based: ``nextForwardToken`` is ``"f/" + 56-digit index`` of the
  last event returned, in the stream's events sorted by timestamp (after the startTime/endTime filter, so pass the
  same startTime/endTime on every call of one walk). With no new events it returns ``events == []`` and the SAME
  token you passed (as AWS). Only "token unchanged" means "drained for now" (botocore's documentation); moto never
  gives an empty page with a new token, but CloudWatch does: ``empty_log_pages()`` makes it. An empty stream gives
  ``"f/-000...001"``, which is a valid token to resume from. Once ``nextToken`` is given, ``startFromHead`` is
  ignored. ``limit`` pages (default and max 10000). A bad token -> ``InvalidParameterException`` "The specified
  nextToken is invalid.". An event inserted with a timestamp earlier than already-read ones shifts the indexes
  (one event read twice, the early one never): ``put_logs`` therefore only appends in time order per stream.
- A stream that does not exist yet: ``get_log_events`` -> ``ResourceNotFoundException`` (HTTP 400) with the message
  "The specified log group does not exist." even when only the stream is missing (AWS says "...log stream does not
  exist."): match on the code. A missing log group (a fresh account, or after ``reset()``) gives the same code and
  message from get_log_events and describe_log_streams; an existing group with no matching stream gives
  ``logStreams == []``.
- ``describe_log_streams(logStreamNamePrefix=...)`` works (``limit`` <= 50, token paging; ``orderBy=LastEventTime``
  with a prefix -> ``InvalidParameterException``, as AWS). Mind that prefix ``job/algo-1`` also matches
  ``job/algo-10-...``: use ``job/algo-1-``. ``put_log_events`` silently rejects events older than 14 days or more than
  2 h ahead (``rejectedLogEventsInfo``), refuses a batch out of time order (``InvalidParameterException``) and
  ignores sequence tokens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.exceptions import JsonRESTError
from moto.core.responses import EmptyResult
from moto.core.utils import camelcase_to_underscores, utcnow
from moto.logs.responses import LogsResponse
from moto.sagemaker.exceptions import ResourceInUseException, ValidationError
from moto.sagemaker.models import FakeTrainingJob, SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.server import ThreadedMotoServer

from . import bugs
from .botocore_model import violations

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
# SecondaryStatus values during which the instances are not yet running the job: no TrainingStartTime yet.
_NOT_STARTED = frozenset({"Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack"})
_STATUS_MESSAGES = {
    "Starting": "Launching requested ML instances",
    "Downloading": "Downloading input data",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "Completed": "Training job completed",
    "Failed": "Training job failed",
    "MaxRuntimeExceeded": "Training job stopped: MaxRuntimeInSeconds exceeded",
    "MaxWaitTimeExceeded": "Training job stopped: MaxWaitTimeInSeconds exceeded",
}
_NOT_FOUND = "Requested resource not found."
_STATE_ATTR = "_launch_test_harness_state"
_MAX_LOG_BATCH = 10_000
# nextForwardToken of a page without events that the harness puts before a real read (empty_log_pages)
_EMPTY_PAGE_TOKEN = "e/"


@dataclasses.dataclass(frozen=True)
class ModelViolation:
    """A request that breaks botocore's service model: AWS would have refused it with ValidationException."""

    service: str
    operation: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.service} {self.operation}: " + "; ".join(self.problems)


class _HarnessState:
    """Process-wide state of the patches (moto's backends are process-wide too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created_requests: list[dict[str, Any]] = []
        self.hold_new_jobs = False
        self.model_violations: list[ModelViolation] = []
        self.empty_log_pages = False
        self.log_reads: list[tuple[str, str | None]] = []


@functools.cache
def _sagemaker_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


@functools.cache
def _enum(shape: str) -> frozenset[str]:
    return frozenset(_sagemaker_model().shape_for(shape).enum)


@functools.cache
def _input_shape(service: str, operation: str) -> Any:
    return botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape


@functools.cache
def _describe_members() -> frozenset[str]:
    return frozenset(_sagemaker_model().operation_model("DescribeTrainingJob").output_shape.members)


def _transition(job: FakeTrainingJob, status: str, secondary: str, failure_reason: str | None = None) -> None:
    """Move a moto job to (status, secondary) with the timestamps and transitions AWS would show."""
    now = utcnow()
    transitions = job.secondary_status_transitions = list(job.secondary_status_transitions or [])
    if not transitions or transitions[-1]["Status"] != secondary:
        if transitions:
            transitions[-1].setdefault("EndTime", now)
        transitions.append({"Status": secondary, "StartTime": now,
                            "StatusMessage": _STATUS_MESSAGES.get(secondary, secondary)})
    job.training_job_status = status
    job.secondary_status = secondary
    job.failure_reason = failure_reason
    job.last_modified_time = now
    if secondary not in _NOT_STARTED and job.training_start_time is None:
        job.training_start_time = now
    if status in TERMINAL_STATUSES:
        transitions[-1].setdefault("EndTime", now)
        job.training_start_time = job.training_start_time or now
        job.training_end_time = now
        seconds = max(1, int((now - job.training_start_time).total_seconds()))
        job.training_time_in_seconds = job.billable_time_in_seconds = seconds
    else:
        job.training_end_time = job.training_time_in_seconds = job.billable_time_in_seconds = None
    job.model_artifacts = None
    if status == "Completed":
        output = job.output_data_config["S3OutputPath"].rstrip("/")
        job.model_artifacts = {"S3ModelArtifacts": f"{output}/{job.training_job_name}/output/model.tar.gz"}


def _hold(job: FakeTrainingJob) -> None:
    """Undo moto's instant completion: the job is InProgress/Starting, as right after a real create."""
    job.training_job_status, job.secondary_status = "InProgress", "Starting"
    job.training_start_time = job.training_end_time = None
    job.model_artifacts = job.final_metric_data_list = None
    job.secondary_status_transitions = [{"Status": "Starting", "StartTime": job.creation_time,
                                         "StatusMessage": _STATUS_MESSAGES["Starting"]}]


def _keep_dropped_members(job: FakeTrainingJob, body: dict[str, Any]) -> None:
    """Store request members moto ignores (Environment, RetryStrategy, ...) so DescribeTrainingJob returns them."""
    present = job.response_object
    for key, value in body.items():
        if key in _describe_members() and key not in present:
            attr = camelcase_to_underscores(key)
            if job.camelCase(attr) == key:  # gen_response_object turns the attribute back into this key
                setattr(job, attr, value)


def _install_patches() -> _HarnessState:
    existing = getattr(SageMakerModelBackend, _STATE_ATTR, None)
    if existing is not None:
        return existing
    state = _HarnessState()
    orig_response_create = SageMakerResponse.create_training_job
    orig_backend_create = SageMakerModelBackend.create_training_job
    orig_describe = SageMakerModelBackend.describe_training_job
    orig_resource_from_arn = SageMakerModelBackend._get_resource_from_arn
    orig_sagemaker_call = SageMakerResponse.call_action
    orig_logs_call = LogsResponse.call_action

    def model_checked(service: str, orig_call: Any) -> Any:
        def call_action(self: Any) -> Any:
            """Refuse a request that breaks botocore's model (as AWS would) and remember it for the test's check."""
            operation = self._get_action()
            raw = self.body.decode() if isinstance(self.body, bytes) else self.body
            try:
                params = json.loads(raw) if raw else {}
            except ValueError as exc:
                problems = [f"the body is not JSON: {exc}"]
            else:
                problems = violations(params, _input_shape(service, operation))
            if not problems:
                return orig_call(self)
            with state.lock:
                state.model_violations.append(ModelViolation(service, operation, tuple(problems)))
            error = JsonRESTError("ValidationException",
                                  f"{len(problems)} validation error(s) detected: " + "; ".join(problems))
            return 400, {**dict(error.get_headers()), "status": "400"}, error.get_body()
        return call_action

    def response_get_log_events(self: LogsResponse) -> str:
        """moto's GetLogEvents, recording what was asked; with `empty_log_pages`, a read from a token the harness
        did not make gets a page without events whose token moves on, and only that token reads the events."""
        sent = self._get_param("nextToken")
        with state.lock:
            state.log_reads.append((self._get_param("logStreamName"), sent))
            empty_first = state.empty_log_pages
        ahead = sent is not None and sent.startswith(_EMPTY_PAGE_TOKEN)
        token = (sent[len(_EMPTY_PAGE_TOKEN):] or None) if ahead else sent
        events, backward, forward = self.logs_backend.get_log_events(  # raises for a missing group or stream
            log_group_name=self._get_param("logGroupName"), log_group_id=self._get_param("logGroupIdentifier"),
            log_stream_name=self._get_param("logStreamName"), start_time=self._get_param("startTime"),
            end_time=self._get_param("endTime"), limit=self._get_param("limit"), next_token=token,
            start_from_head=self._get_param("startFromHead", False))
        if empty_first and not ahead:
            events, forward = [], _EMPTY_PAGE_TOKEN + (sent or "")
        elif ahead and not events and forward == token:
            forward = sent  # drained: the token comes back as sent, as AWS says the end looks
        return json.dumps({"events": events, "nextBackwardToken": backward, "nextForwardToken": forward})

    def response_create_training_job(self: SageMakerResponse) -> Any:
        raw = self.body.decode() if isinstance(self.body, bytes) else self.body
        body = json.loads(raw) if raw else {}
        with state.lock:
            state.created_requests.append(body)
        result = orig_response_create(self)
        job = self.sagemaker_backend.training_jobs.get(body.get("TrainingJobName", ""))
        if job is not None:
            _keep_dropped_members(job, body)
        return result

    def response_stop_training_job(self: SageMakerResponse) -> Any:
        self.sagemaker_backend.stop_training_job(self._get_param("TrainingJobName"))
        return EmptyResult()

    def backend_create_training_job(self: SageMakerModelBackend, **kwargs: Any) -> FakeTrainingJob:
        name = kwargs["training_job_name"]
        if name in self.training_jobs:
            raise ResourceInUseException(
                "Training job names must be unique within an AWS account and region, and a training job with this "
                f"name already exists ({FakeTrainingJob.arn_formatter(name, self.account_id, self.region_name)})")
        job = orig_backend_create(self, **kwargs)
        if state.hold_new_jobs:
            _hold(job)
        return job

    def backend_stop_training_job(self: SageMakerModelBackend, training_job_name: str) -> None:
        job = self.training_jobs.get(training_job_name)
        if job is None:
            raise ValidationError(_NOT_FOUND)
        if job.training_job_status != "InProgress":
            raise ValidationError(
                f"The request was rejected because the training job is in status {job.training_job_status}.")
        _transition(job, "Stopping", "Stopping", getattr(job, "failure_reason", None))

    def backend_describe_training_job(self: SageMakerModelBackend, training_job_name: str) -> dict[str, Any]:
        if training_job_name not in self.training_jobs:
            raise ValidationError(_NOT_FOUND)
        return orig_describe(self, training_job_name)

    def backend_resource_from_arn(self: SageMakerModelBackend, arn: str) -> Any:
        resource = orig_resource_from_arn(self, arn)
        if resource is None:
            raise ValidationError(_NOT_FOUND)
        return resource

    SageMakerResponse.create_training_job = response_create_training_job
    SageMakerResponse.stop_training_job = response_stop_training_job
    SageMakerModelBackend.create_training_job = backend_create_training_job
    SageMakerModelBackend.stop_training_job = backend_stop_training_job
    SageMakerModelBackend.describe_training_job = backend_describe_training_job
    SageMakerModelBackend._get_resource_from_arn = backend_resource_from_arn
    SageMakerResponse.call_action = model_checked("sagemaker", orig_sagemaker_call)
    LogsResponse.call_action = model_checked("logs", orig_logs_call)
    LogsResponse.get_log_events = response_get_log_events
    setattr(SageMakerModelBackend, _STATE_ATTR, state)
    return state


_STATE = _install_patches()


class MotoSageMaker:
    """moto in server mode on 127.0.0.1 in this process (so its backends can be changed directly), plus helpers.

    The patches are process-wide: two instances share the jobs' hold flag and ``created_requests``.
    """

    log_group = LOG_GROUP

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self.endpoint_url = ""
        self._server: ThreadedMotoServer | None = None
        self._tmpdir: str | None = None
        self._clients: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> MotoSageMaker:
        if self._server is not None:
            return self
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request; 500 tracebacks still show
        self._tmpdir = tempfile.mkdtemp(prefix="moto-sagemaker-")
        for name in ("config", "credentials"):  # an empty [default] so AWS_PROFILE=default resolves to nothing
            with open(os.path.join(self._tmpdir, name), "w") as f:
                f.write("[default]\n")
        _record_moto_bugs()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the OS picks a free one
        server.start()
        self._server = server
        host, port = server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._clients.clear()

    def __enter__(self) -> MotoSageMaker:
        return self.start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        left = self.take_model_violations()
        self.stop()
        if left and exc_type is None:
            raise AssertionError("requests that break botocore's model reached moto (AWS would refuse them): "
                                 + "\n".join(map(str, left)))

    def reset(self) -> None:
        """Forget every AWS resource (POST /moto-api/reset), the recorded requests and log reads, the hold flag and
        the empty-pages switch. Model violations are kept until take_model_violations() (or the end of the server)
        so that none goes unseen."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        opener.open(urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST"),
                    timeout=10).read()
        with _STATE.lock:
            _STATE.created_requests.clear()
            _STATE.hold_new_jobs = False
            _STATE.empty_log_pages = False
            _STATE.log_reads.clear()

    # -- talking to it -----------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables to lay over os.environ so a subprocess's boto3 reaches this server and nothing else.

        Credentials are the fake "testing" pair; AWS_PROFILE/AWS_DEFAULT_PROFILE are forced to "default" in
        config/credentials files that hold only an empty [default]; session tokens are blanked; service-specific
        endpoint variables are pinned too (they win over AWS_ENDPOINT_URL); 127.0.0.1 bypasses any proxy.
        """
        assert self._tmpdir is not None, "start() first"
        ep = self.endpoint_url
        no_proxy = ",".join(x for x in (os.environ.get("NO_PROXY") or os.environ.get("no_proxy"),
                                        "127.0.0.1", "localhost") if x)
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "",
            "AWS_SECURITY_TOKEN": "",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_PROFILE": "default",
            "AWS_DEFAULT_PROFILE": "default",
            "AWS_CONFIG_FILE": os.path.join(self._tmpdir, "config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self._tmpdir, "credentials"),
            "AWS_ENDPOINT_URL": ep,
            "AWS_ENDPOINT_URL_SAGEMAKER": ep,
            "AWS_ENDPOINT_URL_S3": ep,
            "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS": ep,
            "AWS_ENDPOINT_URL_STS": ep,
            "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "false",
            "AWS_USE_FIPS_ENDPOINT": "false",
            "AWS_USE_DUALSTACK_ENDPOINT": "false",
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": no_proxy,
            "no_proxy": no_proxy,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for this server (fake credentials, no retries), independent of the process environment."""
        if service not in self._clients:
            assert self._tmpdir is not None, "start() first"
            core = botocore.session.Session()
            core.set_config_variable("config_file", os.path.join(self._tmpdir, "config"))
            core.set_config_variable("credentials_file", os.path.join(self._tmpdir, "credentials"))
            core.set_config_variable("profile", "default")
            session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                            aws_session_token=None, region_name=self.region, botocore_session=core)
            self._clients[service] = session.client(
                service, endpoint_url=self.endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 1}, proxies={}))
        return self._clients[service]

    # -- SageMaker ---------------------------------------------------------------------------------------------
    @property
    def created_requests(self) -> list[dict[str, Any]]:
        """Every CreateTrainingJob request body received since the last reset(), parsed from the raw HTTP JSON."""
        return _STATE.created_requests

    def take_model_violations(self) -> list[ModelViolation]:
        """The SageMaker and CloudWatch Logs requests refused for breaking botocore's model since the last call
        (each was answered with ValidationException, as AWS would); forgets them. A fixture asserts this is []
        after every test; leaving the `with` block with some untaken raises AssertionError."""
        with _STATE.lock:
            taken = list(_STATE.model_violations)
            _STATE.model_violations.clear()
        return taken

    def hold_new_jobs_in_progress(self, enabled: bool = True) -> None:
        """From now on (until reset()), new jobs start InProgress/Starting instead of moto's instant Completed."""
        _STATE.hold_new_jobs = enabled

    def job(self, name: str) -> FakeTrainingJob:
        """moto's own object for a training job (KeyError if there is none)."""
        jobs = sagemaker_backends[self.account_id][self.region].training_jobs
        if name not in jobs:
            raise KeyError(f"no training job {name!r} in moto (jobs: {sorted(jobs)})")
        return jobs[name]

    def set_job_state(self, name: str, status: str, secondary_status: str, failure_reason: str | None = None) -> None:
        """Move a job as SageMaker would: status, secondary status, transitions, start/end times, FailureReason.

        ``status``/``secondary_status`` must be values of botocore's TrainingJobStatus/SecondaryStatus enums,
        e.g. ("InProgress", "Training"), ("Failed", "Failed", "AlgorithmError: ..."), ("Stopped",
        "MaxRuntimeExceeded"). A None ``failure_reason`` removes FailureReason.
        """
        if status not in _enum("TrainingJobStatus"):
            raise ValueError(f"TrainingJobStatus {status!r} is not one of {sorted(_enum('TrainingJobStatus'))}")
        if secondary_status not in _enum("SecondaryStatus"):
            raise ValueError(f"SecondaryStatus {secondary_status!r} is not one of {sorted(_enum('SecondaryStatus'))}")
        _transition(self.job(name), status, secondary_status, failure_reason)

    def describe(self, name: str) -> dict[str, Any]:
        """DescribeTrainingJob through boto3 (over HTTP), without ResponseMetadata."""
        response = self.client("sagemaker").describe_training_job(TrainingJobName=name)
        response.pop("ResponseMetadata", None)
        return response

    # -- CloudWatch Logs ---------------------------------------------------------------------------------------
    def empty_log_pages(self, enabled: bool = True) -> None:
        """From now on (until reset()), GetLogEvents behaves as CloudWatch may: a read from any token but one it
        just gave (or from the head) answers a page WITHOUT events whose nextForwardToken moves on; reading on
        from that token gives the events. Drained, the token comes back as sent. A reader that stops at the first
        empty page, or keeps the token only when it got a line, never sees a line."""
        _STATE.empty_log_pages = enabled

    @property
    def log_reads(self) -> list[tuple[str, str | None]]:
        """(logStreamName, nextToken as sent or None) of every GetLogEvents since the last reset()."""
        return _STATE.log_reads

    def put_logs(self, job_name: str, host_index: int, lines: Sequence[str], start_ms: int | None = None,
                 *, step_ms: int = 1) -> str:
        """Append ``lines`` to the stream of node ``host_index`` (1-based, as algo-1) of ``job_name``; return its name.

        Creates the log group and the stream ``<job>/algo-<n>-<epoch s>`` when missing (``lines`` may be empty to
        create a stream without events). Event i gets timestamp ``start_ms + i * step_ms``; ``start_ms`` defaults to
        now, or 1 ms after the stream's last event if that is later. Events must stay in time order per stream
        (moto's tokens are indexes) and within [now - 14 days, now + 2 h] (moto drops others): ValueError otherwise.
        """
        if step_ms < 0:
            raise ValueError("step_ms must be >= 0: events of one stream go in time order")
        logs = self.client("logs")
        now_ms = int(time.time() * 1000)
        with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
            logs.create_log_group(logGroupName=LOG_GROUP)
        prefix = f"{job_name}/algo-{host_index}-"
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=prefix)["logStreams"]
        if streams:
            stream, last_ms = streams[0]["logStreamName"], streams[0].get("lastEventTimestamp")
        else:
            stream, last_ms = f"{prefix}{(start_ms if start_ms is not None else now_ms) // 1000}", None
            logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        if start_ms is None:
            start_ms = now_ms if last_ms is None else max(now_ms, last_ms + 1)
        if last_ms is not None and start_ms < last_ms:
            raise ValueError(f"start_ms {start_ms} is before the last event of {stream} ({last_ms}): moto's "
                             "index-based tokens would skip or repeat events")
        stamps = [start_ms + i * step_ms for i in range(len(lines))]
        if stamps and (stamps[0] < now_ms - 14 * 86_400_000 + 60_000 or stamps[-1] > now_ms + 7_200_000 - 60_000):
            raise ValueError("CloudWatch (and moto) drop events older than 14 days or more than 2 h ahead")
        events = [{"timestamp": ts, "message": line} for ts, line in zip(stamps, lines, strict=True)]
        for i in range(0, len(events), _MAX_LOG_BATCH):
            response = logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream,
                                           logEvents=events[i:i + _MAX_LOG_BATCH])
            if response.get("rejectedLogEventsInfo"):
                raise ValueError(f"moto rejected log events: {response['rejectedLogEventsInfo']}")
        return stream


@functools.cache
def _record_moto_bugs() -> None:
    """moto's Flask apps answer an exception of their own with a 500 that boto3 retries past: record
    it (tests/fakes/bugs.py) so the test it happened in fails at teardown. Connected once, strongly:
    the signal is process-wide, like the record."""
    import flask

    flask.got_request_exception.connect(lambda _sender, exception, **_: bugs.record("MotoSageMaker", exception),
                                        weak=False)
