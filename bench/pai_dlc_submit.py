"""How much does `launch` add to a PAI-DLC submit? The launcher against a plain SDK script, on the fake.

Run by hand (not in CI): .venv/bin/python bench/pai_dlc_submit.py [--quick]

One in-process DLC fake (tests/fakes/pai_dlc_fake.py: every body's keys checked against the SDK's models, the
ACS3 signature's presence too) and moto's S3 standing in for OSS serve both sides; the fake holds every job in
Queuing (nothing runs). The same spec (A10, a small code dir) is submitted two ways, one submit of each per
round, the order rotating (bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "pai_dlc")` in-process, one Store: load and validate
            the spec, pack the bundle, render, write the store, build the backend (clients), upload, CreateJob.
  baseline: a plain script with the DLC Client and a boto3 S3 client made once, making the same calls per job:
            put the job's own files, head the bundle (skip it when there), CreateJob with the launcher's own
            rendered body (its own job id), built before the clock starts: rendering is the launcher's cost alone.

Goal (issue 19): launcher median per submit <= 1.3x the plain script.
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
name: bench-dlc
image: dsw-registry.cn-hangzhou.cr.aliyuncs.com/pai/pytorch:2.3
code: ./src
run: python train.py
resources:
  accelerators: A10
"""
PLAIN = "plain DLC Client + boto3 S3, clients made once"


class Plain:
    """The script-equivalent: the launcher's rendered request, replayed with the SDK's own clients."""

    def __init__(self, request: Any, endpoint: str, s3_endpoint: str, keys: dict[str, str]) -> None:
        import boto3
        from alibabacloud_pai_dlc20201203.client import Client
        from alibabacloud_tea_openapi.models import Config

        self.dlc = Client(Config(access_key_id=keys["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                                 access_key_secret=keys["ALIBABA_CLOUD_ACCESS_KEY_SECRET"], region_id="cn-hangzhou",
                                 endpoint=endpoint, protocol="http"))
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="cn-hangzhou")
        self.template_id = request.job_id
        self.template = json.dumps(request.payload)
        self.uploads = [(u.destination.removeprefix("oss://").partition("/"), u) for u in request.uploads]
        self.count = 0

    def job(self) -> Callable[[], None]:
        from alibabacloud_pai_dlc20201203 import models

        self.count += 1
        job_id = f"plain-{self.count:05d}-{os.urandom(3).hex()}"
        body = models.CreateJobRequest().from_map(json.loads(self.template.replace(self.template_id, job_id)))
        files = [(bucket, key.replace(self.template_id, job_id), u) for (bucket, _, key), u in self.uploads]

        def go() -> None:
            for bucket, key, upload in files:
                if upload.content is not None:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=upload.content.encode())
                elif "/bundles/" not in key:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=upload.source.read_bytes())
                else:  # content-addressed: there already after the first round
                    self.s3.head_object(Bucket=bucket, Key=key)
            self.dlc.create_job(body)
        return go


def measure(quick: bool) -> Section:
    from fakes.pai_dlc_fake import DlcStack

    return bucket_submit.measure(BucketBench(
        backend="pai_dlc", spec=SPEC, stack=DlcStack, fake=lambda stack: stack.dlc,
        credentials=lambda stack: stack.ACCESS_KEY, created=lambda fake: len(fake.created_bodies),
        plain=lambda request, stack: Plain(request, stack.dlc.endpoint, stack.s3_endpoint, stack.ACCESS_KEY),
        plain_label=PLAIN, row="PAI-DLC submit (local REST fake, moto S3 as OSS)",
        note="both sides make the same calls (job files, bundle head, CreateJob); "
             "every body's keys checked against the SDK's models."), quick)


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
