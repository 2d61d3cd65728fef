"""How much does `launch` add to an AIHC submit? The launcher against a plain SDK script, on the fake.

Run by hand (not in CI): .venv/bin/python bench/aihc_submit.py [--quick]

One in-process AIHC fake (tests/fakes/aihc_fake.py: every query and body checked against the published
definition, the bce-auth-v1 signature's presence too) and moto's S3 standing in for BOS serve both sides; the
fake holds every job before it is scheduled (nothing runs). The same spec (A100-80GB, a small code dir) is
submitted two ways, one submit of each per round, the order rotating (bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "aihc")` in-process, one Store: load and validate
            the spec, pack the bundle, render, write the store, build the backend (clients), upload, CreateJob.
  baseline: a plain script with bce-python-sdk's AihcClient and a boto3 S3 client made once, making the same
            calls per job: put the job's own files, head the bundle (skip it when there), CreateJob through the
            SDK's JobClient transport (`_send_job_request`: its CreateJob method sends a body the definition
            refuses) with the launcher's own rendered body (its own job id), built before the clock starts:
            rendering is the launcher's cost alone.

Goal (issue 23): launcher median per submit <= 1.3x the plain script.
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
name: bench-aihc
image: registry.baidubce.com/aihcp-public/pytorch:2.3.0
code: ./src
run: python train.py
resources:
  accelerators: A100-80GB
"""
PLAIN = "plain AihcClient + boto3 S3, clients made once"


class Plain:
    """The script-equivalent: the launcher's rendered request, replayed with the SDK's own clients."""

    def __init__(self, request: Any, endpoint: str, s3_endpoint: str, keys: dict[str, str]) -> None:
        import baidubce.protocol
        import boto3
        from baidubce.auth.bce_credentials import BceCredentials
        from baidubce.bce_client_configuration import BceClientConfiguration
        from baidubce.services.aihc.aihc_client import AihcClient

        self.aihc = AihcClient(BceClientConfiguration(
            credentials=BceCredentials(keys["BCE_ACCESS_KEY_ID"], keys["BCE_SECRET_ACCESS_KEY"]),
            endpoint=endpoint, protocol=baidubce.protocol.HTTP))
        self.s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id="x", aws_secret_access_key="x",
                               region_name="bj")
        self.template_id = request.job_id
        self.template = json.dumps(request.payload)
        self.uploads = [(u.destination.removeprefix("bos://").partition("/"), u) for u in request.uploads]
        self.count = 0

    def job(self) -> Callable[[], None]:
        from baidubce.http import http_methods

        self.count += 1
        job_id = f"plain-{self.count:05d}-{os.urandom(3).hex()}"
        payload = json.loads(self.template.replace(self.template_id, job_id))
        body = json.dumps(payload["body"])
        files = [(bucket, key.replace(self.template_id, job_id), u) for (bucket, _, key), u in self.uploads]

        def go() -> None:
            for bucket, key, upload in files:
                if upload.content is not None:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=upload.content.encode())
                elif "/bundles/" not in key:
                    self.s3.put_object(Bucket=bucket, Key=key, Body=upload.source.read_bytes())
                else:  # content-addressed: there already after the first round
                    self.s3.head_object(Bucket=bucket, Key=key)
            self.aihc.job._send_job_request(http_methods.POST, b"/", body=body, params=dict(payload["query"]))
        return go


def measure(quick: bool) -> Section:
    from fakes.aihc_fake import AihcStack

    return bucket_submit.measure(BucketBench(
        backend="aihc", spec=SPEC, stack=AihcStack, fake=lambda stack: stack.aihc,
        credentials=lambda stack: stack.ACCESS_KEY, created=lambda fake: len(fake.created),
        plain=lambda request, stack: Plain(request, stack.aihc.endpoint, stack.s3_endpoint, stack.ACCESS_KEY),
        plain_label=PLAIN, row="AIHC submit (local v2 API fake, moto S3 as BOS)",
        note="both sides make the same calls (job files, bundle head, CreateJob); "
             "every request checked against the published definition."), quick)


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
