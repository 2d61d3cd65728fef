"""The reliability harness's fixtures: one entry per cloud backend in CLOUDS, each a real fake
behind a FaultProxy, pointed at through the backend's ordinary endpoint settings.

A backend joins the harness by adding a `Cloud` builder to CLOUDS (Azure ML and Lambda Cloud will:
their fakes are HTTP servers too, so the same proxy sits in front of them): it says how to start
the fake, which error shape the proxy answers with, how the CLI is pointed at the proxy (env and
config.toml), the spec to submit, and how to count the jobs the provider holds. Every test that
takes the `cloud` fixture then runs against every backend in the table.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fakes.fault_proxy import FaultProxy, aws_error, google_error

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("LAUNCH_RELIABILITY_FULL") == "1"
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Cloud:
    """One cloud backend in the harness: its fake, the proxy in front of it, and how to talk to both."""

    name: str
    fake: Any
    proxy: FaultProxy
    env: dict[str, str]
    config: str  # config.toml text for LAUNCH_HOME
    spec_text: str  # a spec whose `./src` code dir the harness writes
    provider_jobs: Callable[[], list[str]]  # launch job ids the provider holds, one entry per provider job
    reset: Callable[[], None]
    create_request: str  # FaultProxy pattern of the create request, for holds and scripted faults
    extra: dict[str, Any] = field(default_factory=dict)

    def duplicates(self) -> dict[str, int]:
        return {job: n for job, n in Counter(self.provider_jobs()).items() if n > 1}


@contextlib.contextmanager
def _sagemaker() -> Iterator[Cloud]:
    from fakes.moto_sagemaker import MotoSageMaker
    from moto.sagemaker.models import sagemaker_backends

    from backends.sagemaker import JOB_ID_TAG

    with MotoSageMaker() as aws, FaultProxy(aws.endpoint_url, error_body=aws_error) as proxy:
        env = {**aws.env()}
        for key in [k for k in env if k.startswith("AWS_ENDPOINT_URL")]:
            env[key] = proxy.endpoint

        def jobs() -> list[str]:
            found = sagemaker_backends[aws.account_id][aws.region].training_jobs.values()
            return [tag["Value"] for job in found for tag in job.tags if tag["Key"] == JOB_ID_TAG]

        def reset() -> None:
            aws.reset()
            proxy.reset(rate=0.0)
            aws.client("s3").create_bucket(Bucket="team-bucket")
            aws.hold_new_jobs_in_progress()

        spec = ("name: rel-sm\nimage: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3\n"
                "code: ./src\nrun: python train.py\nresources:\n  accelerators: T4:1\n"
                "backends:\n  sagemaker:\n    region: us-east-1\n"
                "    role_arn: arn:aws:iam::123456789012:role/Train\n    bucket: team-bucket\n")
        yield Cloud("sagemaker", aws, proxy, env, "", spec, jobs, reset,
                    create_request="CreateTrainingJob$")


@contextlib.contextmanager
def _vertex() -> Iterator[Cloud]:
    from fakes.vertex_fake import VertexFake

    with VertexFake(project="my-project", location="us-central1", buckets=("team-bucket",)) as gcp, \
            FaultProxy(gcp.endpoint, error_body=google_error) as proxy:
        config = ("[backends.vertex]\nproject = \"my-project\"\nregion = \"us-central1\"\n"
                  f'api_endpoint = "{proxy.endpoint}"\nstorage_endpoint = "{proxy.endpoint}"\n'
                  f'logging_endpoint = "{proxy.endpoint}"\n')

        def jobs() -> list[str]:
            with gcp.lock:
                return [job.display_name for job in gcp.jobs.values()]

        def reset() -> None:
            gcp.reset()
            proxy.reset(rate=0.0)

        spec = ("name: rel-vx\nimage: us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3:latest\n"
                "code: ./src\nrun: python train.py\nresources:\n  accelerators: L4\n"
                "backends:\n  vertex:\n    project: my-project\n    region: us-central1\n"
                "    staging_bucket: gs://team-bucket\n")
        yield Cloud("vertex", gcp, proxy, {}, config, spec, jobs, reset,
                    create_request=r"^POST \S*/customJobs(\?\S*)? ")


CLOUDS: dict[str, Callable[[], contextlib.AbstractContextManager[Cloud]]] = {
    "sagemaker": _sagemaker,
    "vertex": _vertex,
}


@pytest.fixture(scope="session")
def clouds() -> Iterator[dict[str, Cloud]]:
    """Every cloud fake and its proxy, started once for the session (starting moto costs seconds)."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(start()) for name, start in CLOUDS.items()}


@pytest.fixture(params=sorted(CLOUDS))
def cloud(request: pytest.FixtureRequest, clouds: dict[str, Cloud], launch_home: Path) -> Cloud:
    """One cloud backend, fresh (no jobs, no faults) with this test's LAUNCH_HOME configured for it."""
    target = clouds[request.param]
    target.reset()
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text(target.config)
    return target


@pytest.fixture
def cloud_spec(cloud: Cloud, tmp_path: Path) -> Path:
    code = tmp_path / "src"
    code.mkdir(exist_ok=True)
    (code / "train.py").write_text("print('hi')\n")
    path = tmp_path / f"{cloud.name}.yaml"
    path.write_text(cloud.spec_text)
    return path


def launch_env(launch_home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "LAUNCH_HOME": str(launch_home), **(extra or {})}


def start_launch(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "launcher", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO, **kw)


def run_launch(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=timeout)


SUBMITTED = re.compile(r"^submitted (\S+) to (\S+)$", re.M)


def assert_clear_error(result: subprocess.CompletedProcess[str]) -> str:
    """A failed CLI call said one clear thing: `error: ...` on stderr, no traceback, nothing half-printed."""
    assert TRACEBACK not in result.stderr + result.stdout, result.stderr
    assert result.stderr.lstrip().startswith(("error:", "warning:")) and "error: " in result.stderr, result.stderr
    assert not SUBMITTED.search(result.stdout), result.stdout
    return result.stderr
