"""An answer that never comes: the proxy carries out the create and then holds its answer. The
backend must give up after its own timeout (the Vertex SDK has none by default: it waited forever)
and find the job it created instead of creating a second one. Run in process with the timeout
shortened; the client, the fake and the proxy are the real ones."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from launcher import registry
from launcher.spec import load_spec

from .conftest import Cloud


def test_vertex_create_whose_answer_never_comes_times_out_and_adopts_the_job(
        clouds: dict[str, Cloud], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, launch_home: Path):
    from backends.vertex import clients

    cloud = clouds["vertex"]
    cloud.reset()
    monkeypatch.setattr(clients, "API_TIMEOUT_S", 1.0)
    spec_file = tmp_path / "vx.yaml"
    spec_file.write_text(cloud.spec_text.replace("code: ./src\n", ""))
    settings = {"project": "my-project", "region": "us-central1", "staging_bucket": "gs://team-bucket",
                "api_endpoint": cloud.proxy.endpoint, "storage_endpoint": cloud.proxy.endpoint,
                "logging_endpoint": cloud.proxy.endpoint}
    spec = load_spec(spec_file)
    spec = spec.with_backend_settings("vertex", settings)
    backend = registry.create("vertex", settings)
    request = backend.render(spec, "rel-vx-20260101-000000-abcdef", None, {})
    hold = cloud.proxy.hold_next(cloud.create_request, after=True)  # created at the fake, answer held
    started = time.monotonic()
    try:
        handle = backend.submit(request)
    finally:
        hold.drop()
    assert time.monotonic() - started < 20
    assert hold.arrived.is_set()
    assert cloud.provider_jobs() == ["rel-vx-20260101-000000-abcdef"]
    assert handle.job_id == "rel-vx-20260101-000000-abcdef" and handle.data["name"].startswith("projects/my-project/")
