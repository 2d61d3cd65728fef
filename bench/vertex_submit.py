"""How much does `launch` add to a Vertex AI submit? The launcher against a plain google-cloud script, on the fake.

Run by hand (not in CI): .venv/bin/python bench/vertex_submit.py [--quick]

One in-process Vertex fake (tests/fakes/vertex_fake.py: CustomJobs REST, GCS JSON API; every create body
parsed with the official protos) serves both sides; LAUNCH_HOME's config.toml points the backend at it.
The same spec (L4, a small code dir) is submitted two ways, one submit of each per round, the order
rotating (bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "vertex")` in-process, one Store: load and validate the
            spec, pack the bundle, render, write the store, build the backend (clients), upload, look for a
            job with our label (a retried create must adopt, not duplicate), create.
  baseline: a plain script with a JobServiceClient (REST) and a storage.Client made once, making the same
            calls per job: bundle `exists()` (skip it when there), upload the job's own files, list jobs with
            the job's label, create_custom_job. It sends the launcher's own rendered CustomJob with its own
            job id, built before the clock starts: rendering is the launcher's cost alone.

Goal (issue 10): launcher median per submit <= 1.3x the plain script.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from launch_home import launch_home
from timing import REPO, Row, Section, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
PROJECT, REGION, BUCKET = "my-project", "us-central1", "bench-bucket"
SPEC = f"""\
name: bench-vx
image: us-docker.pkg.dev/vertex-ai/training/pytorch-gpu.2-3:latest
code: ./src
run: python train.py
resources:
  accelerators: L4
backends:
  vertex: {{project: {PROJECT}, region: {REGION}, staging_bucket: gs://{BUCKET}}}
"""
OURS, PLAIN = "launcher runner.submit", "plain aiplatform_v1 + storage, clients made once"


class Plain:
    """The script-equivalent: the launcher's rendered request, replayed with the SDK's own clients."""

    def __init__(self, request: Any, endpoint: str) -> None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import aiplatform_v1, storage

        self.jobs = aiplatform_v1.JobServiceClient(transport="rest", credentials=AnonymousCredentials(),
                                                   client_options={"api_endpoint": endpoint})
        self.gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                                  client_options={"api_endpoint": endpoint})
        self.parent = request.operation.removesuffix("/customJobs")
        self.template_id = request.job_id
        self.template = json.dumps(request.payload)
        self.uploads = [(u.destination.removeprefix("gs://").partition("/"), u) for u in request.uploads]
        self.count = 0

    def job(self) -> Callable[[], None]:
        """One submit with a fresh job id; payload and proto built here, before the clock starts."""
        from google.cloud import aiplatform_v1
        from google.protobuf import json_format

        self.count += 1
        job_id = f"plain-{self.count:05d}-{os.urandom(3).hex()}"
        job = aiplatform_v1.CustomJob()
        json_format.ParseDict(json.loads(self.template.replace(self.template_id, job_id)), job._pb)
        files = []
        for (bucket, _, key), upload in self.uploads:
            body = upload.content.encode() if upload.content is not None else None
            files.append((bucket, key.replace(self.template_id, job_id), body, upload.source))
        label = job.labels["launch_job_id"]

        def go() -> None:
            for bucket, key, body, source in files:
                blob = self.gcs.bucket(bucket).blob(key)
                if body is not None:
                    blob.upload_from_string(body)
                elif "/bundles/" not in key or not blob.exists():  # bundles are content-addressed
                    blob.upload_from_filename(str(source))
            found = list(self.jobs.list_custom_jobs(request={"parent": self.parent,
                                                             "filter": f'labels.launch_job_id="{label}"'}))
            assert not found
            self.jobs.create_custom_job(parent=self.parent, custom_job=job)
        return go


def measure(quick: bool) -> Section:
    runs, warmups = (15, 3) if quick else (100, 5)
    from fakes.vertex_fake import VertexFake

    with tempfile.TemporaryDirectory(prefix="launch-bench-vx-") as tmp_name, \
            VertexFake(project=PROJECT, location=REGION, buckets=(BUCKET,)) as fake:
        tmp = Path(tmp_name)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('hi')\n")
        spec = tmp / "job.yaml"
        spec.write_text(SPEC)
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(f'[backends.vertex]\napi_endpoint = "{fake.endpoint}"\n'
                                          f'storage_endpoint = "{fake.endpoint}"\n')
        with launch_home(home) as store:
            from launcher import runner
            from launcher.spec import load_spec

            _, _, request, _ = runner.prepare(load_spec(spec), "vertex", dry_run=False)
            plain = Plain(request, fake.endpoint)

            def ours() -> Callable[[], None]:
                return lambda: runner.submit(store, load_spec(str(spec)), "vertex")

            got = interleaved_calls({OURS: ours, PLAIN: plain.job}, runs, warmups)
            bodies = [b for b in fake.created_bodies if isinstance(b, dict)]
    if len(bodies) != 2 * (runs + warmups):
        raise RuntimeError(f"the fake stored {len(bodies)} creates, expected {2 * (runs + warmups)}")
    sec = Section("Submit overhead")
    sec.rows.append(Row("Vertex AI submit (local REST fake)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.notes.append(f"Vertex: in-process fake over http; {warmups} warm-up rounds, then {runs} interleaved rounds; "
                     "both sides make the same calls (bundle exists, per-job file uploads, label lookup, create); "
                     f"the fake stored {len(bodies)} CustomJobs, every body parsed by the official protos.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
