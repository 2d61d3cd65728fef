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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from timing import REPO, Row, Section, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
SPEC = """\
name: bench-dlc
image: dsw-registry.cn-hangzhou.cr.aliyuncs.com/pai/pytorch:2.3
code: ./src
run: python train.py
resources:
  accelerators: A10
"""
OURS, PLAIN = "launcher runner.submit", "plain DLC Client + boto3 S3, clients made once"


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
    runs, warmups = (15, 3) if quick else (100, 5)
    from fakes.pai_dlc_fake import DlcStack

    with tempfile.TemporaryDirectory(prefix="launch-bench-dlc-") as tmp_name, DlcStack(Path(tmp_name)) as stack:
        stack.dlc.hold = True  # nothing runs: the bench measures submits
        tmp = Path(tmp_name)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('hi')\n")
        spec = tmp / "job.yaml"
        spec.write_text(SPEC)
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(stack.config())
        saved = dict(os.environ)
        os.environ.update({"LAUNCH_HOME": str(home), **stack.ACCESS_KEY})
        os.environ.pop("LAUNCH_BACKEND", None)
        try:
            from launcher import config, runner
            from launcher.spec import load_spec
            from launcher.store import Store

            config.load.cache_clear()
            store = Store.open(config.ensure_home())
            _, _, request, _ = runner.prepare(load_spec(spec), "pai_dlc", dry_run=False)
            plain = Plain(request, stack.dlc.endpoint, stack.s3_endpoint, stack.ACCESS_KEY)
            runner.submit(store, load_spec(str(spec)), "pai_dlc")  # the bundle is there for both sides from the start

            def ours() -> Callable[[], None]:
                return lambda: runner.submit(store, load_spec(str(spec)), "pai_dlc")

            got = interleaved_calls({OURS: ours, PLAIN: plain.job}, runs, warmups)
            created, violations = len(stack.dlc.created_bodies), list(stack.dlc.violations)
            store.close()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            config.load.cache_clear()
    if created != 2 * (runs + warmups) + 1 or violations:
        raise RuntimeError(f"the fake got {created} creates ({violations=}), expected {2 * (runs + warmups) + 1}")
    sec = Section("Submit overhead")
    sec.rows.append(Row("PAI-DLC submit (local REST fake, moto S3 as OSS)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.notes.append(f"PAI-DLC: in-process fake over http; {warmups} warm-up rounds, then {runs} interleaved rounds; "
                     "both sides make the same calls (job files, bundle head, CreateJob); every body's keys "
                     "checked against the SDK's models.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
