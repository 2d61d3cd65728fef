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
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from timing import REPO, Row, Section, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
SPEC = """\
name: bench-tione
image: ccr.ccs.tencentyun.com/bench/pytorch:2.3
code: ./src
run: python train.py
resources:
  accelerators: T4
"""
OURS, PLAIN = "launcher runner.submit", "plain TioneClient + boto3 S3, clients made once"


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
    runs, warmups = (15, 3) if quick else (100, 5)
    from fakes.tione_fake import TioneStack

    with tempfile.TemporaryDirectory(prefix="launch-bench-tione-") as tmp_name, TioneStack(Path(tmp_name)) as stack:
        stack.tione.hold = True  # nothing runs: the bench measures submits
        tmp = Path(tmp_name)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('hi')\n")
        spec = tmp / "job.yaml"
        spec.write_text(SPEC)
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(stack.config())
        saved = dict(os.environ)
        os.environ.update({"LAUNCH_HOME": str(home), **stack.SECRET})
        os.environ.pop("LAUNCH_BACKEND", None)
        try:
            from launcher import config, runner
            from launcher.spec import load_spec
            from launcher.store import Store

            config.load.cache_clear()
            store = Store.open(config.ensure_home())
            _, _, request, _ = runner.prepare(load_spec(spec), "tione", dry_run=False)
            plain = Plain(request, stack.tione.endpoint, stack.s3_endpoint, stack.SECRET)
            runner.submit(store, load_spec(str(spec)), "tione")  # the bundle is there for both sides from the start

            def ours() -> Callable[[], None]:
                return lambda: runner.submit(store, load_spec(str(spec)), "tione")

            got = interleaved_calls({OURS: ours, PLAIN: plain.job}, runs, warmups)
            created, violations = len(stack.tione.created_bodies), list(stack.tione.violations)
            store.close()
        finally:
            os.environ.clear()
            os.environ.update(saved)
            config.load.cache_clear()
    if created != 2 * (runs + warmups) + 1 or violations:
        raise RuntimeError(f"the fake got {created} creates ({violations=}), expected {2 * (runs + warmups) + 1}")
    sec = Section("Submit overhead")
    sec.rows.append(Row("TI-ONE submit (local API fake, moto S3 as COS)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.notes.append(f"TI-ONE: in-process fake over http; {warmups} warm-up rounds, then {runs} interleaved rounds; "
                     "both sides make the same calls (job files, bundle head, CreateTrainingTask); every request "
                     "checked against tccli's api.json.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
