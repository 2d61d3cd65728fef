"""How much does `launch` add to a TI-ONE submit? The launcher against a plain SDK script, on the fake.

Run by hand (not in CI): .venv/bin/python bench/tione_submit.py [--quick]

One in-process TI-ONE fake (tests/fakes/tione_fake.py: every request checked against tccli's api.json, the TC3
signature's presence too) and moto's S3 standing in for COS serve both sides; the fake holds every task in
PENDING (nothing runs). The same spec (T4, a small code dir) is submitted two ways, one submit of each per
round, the order rotating (bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "tione")` in-process, one Store: load and validate
            the spec, pack the bundle, render, write the store, build the backend (clients), upload,
            CreateTrainingTask.
  baseline: a plain script with the TioneClient and a boto3 S3 client made once, making the same calls per job:
            put the job's own files, head the bundle (skip it when there), CreateTrainingTask with the launcher's
            own rendered request (its own job id), built before the clock starts: rendering is the launcher's
            cost alone.

Goal (issue 22): launcher median per submit <= 1.3x the plain script.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import bucket_submit
import report
from bucket_submit import BucketBench
from timing import REPO, Section

sys.path[:0] = [str(REPO), str(REPO / "tests")]

SPEC = """\
name: bench-tione
image: ccr.ccs.tencentyun.com/bench/pytorch:2.3
code: ./src
run: python train.py
resources:
  accelerators: T4
"""
PLAIN = "plain TioneClient + boto3 S3, clients made once"


class Plain:
    """The script-equivalent: the launcher's rendered request, replayed with the SDK's own clients."""

    def __init__(self, request: Any, endpoint: str, s3_endpoint: str, keys: dict[str, str]) -> None:
        import boto3
        from tencentcloud.common.credential import Credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.tione.v20211111.tione_client import TioneClient

        self.tione = TioneClient(Credential(keys["TENCENTCLOUD_SECRET_ID"], keys["TENCENTCLOUD_SECRET_KEY"]),
                                 "ap-guangzhou",
                                 ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol="http")))
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="ap-guangzhou")
        self.template_id = request.job_id
        self.template = json.dumps(request.payload)
        self.uploads = [(u.destination.removeprefix("cos://").partition("/"), u) for u in request.uploads]
        self.count = 0

    def job(self) -> Callable[[], None]:
        from tencentcloud.tione.v20211111 import models

        self.count += 1
        job_id = f"plain-{self.count:05d}-{os.urandom(3).hex()}"
        body = models.CreateTrainingTaskRequest()
        body.from_json_string(self.template.replace(self.template_id, job_id))
        files = [(bucket, key.replace(self.template_id, job_id), u) for (bucket, _, key), u in self.uploads]

        def go() -> None:
            for bucket, key, upload in files:
                if upload.content is not None:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=upload.content.encode())
                elif "/bundles/" not in key:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=upload.source.read_bytes())
                else:  # content-addressed: there already after the first round
                    self.s3.head_object(Bucket=bucket, Key=key)
            self.tione.CreateTrainingTask(body)
        return go


def measure(quick: bool) -> Section:
    from fakes.tione_fake import TioneStack

    return bucket_submit.measure(BucketBench(
        backend="tione", spec=SPEC, stack=TioneStack, fake=lambda stack: stack.tione,
        credentials=lambda stack: stack.SECRET, created=lambda fake: len(fake.created_bodies),
        plain=lambda request, stack: Plain(request, stack.tione.endpoint, stack.s3_endpoint, stack.SECRET),
        plain_label=PLAIN, row="TI-ONE submit (local API fake, moto S3 as COS)",
        note="both sides make the same calls (job files, bundle head, CreateTrainingTask); "
             "every request checked against tccli's api.json."), quick)


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
