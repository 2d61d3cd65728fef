"""How much does `launch` add to a SageMaker submit? The launcher against a plain boto3 script, on moto.

Run by hand (not in CI), with the project's virtualenv:

    .venv/bin/python bench/sagemaker_submit.py [--quick] [--profile]

One in-process moto server (tests/fakes/moto_sagemaker.py) plays S3 and SageMaker; its AWS_* variables are
laid over os.environ, so every boto3 client in this process talks to it. The same spec (T4:1, an image, a
small code dir, bucket `bench-bucket`) is submitted two ways, interleaved in rounds (the order rotates
every round, bench/timing.py) so a burst of noise on the machine spreads over all of them:

  (a)  launcher: `launcher.runner.submit(store, load_spec(spec), "sagemaker")` in-process, one Store opened once.
       Each submit loads and validates the spec, finds the unchanged code tree in the bundle cache's index
       (no re-pack), renders, writes the store, builds a backend (whose boto3 clients are made once per
       process: backends/sagemaker/clients.py), uploads and creates the job.
  (b)  plain boto3, what a user's script submitting N jobs does: one s3 and one sagemaker client made once;
       per job: head_object on the content-addressed bundle (put it only when absent, as the launcher
       does), put_object bootstrap.sh and run.sh, create_training_job.
Both make the same HTTP requests (counted and printed in the notes). An earlier (b2) row made a new boto3
Session and clients per job; the launcher caches its clients, so that baseline did more work than launch and
was dropped (issue 27: no baseline doing more or less work than launch).

(b) sends the launcher's own rendered request: one `runner.prepare` before timing gives the
payload and uploads, and each plain job gets it with its own job id swapped in. Building those payloads
is done before the clock starts: render cost is the launcher's alone. All clients use the launcher's
botocore Config. moto runs in this process, so its request handling (the same for both) shares the GIL.

Goal (issue 10): launcher median per submit <= 1.3x the plain script (b).
--profile runs cProfile over a few more launcher submits and prints the top 15 cumulative entries plus
a per-phase breakdown (cProfile inflates Python-heavy phases relative to waiting on the socket).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from launch_home import launch_home
from timing import REPO, Row, Section, interleaved_calls

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
BUCKET = "bench-bucket"
ROLE = "arn:aws:iam::123456789012:role/Train"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3"
CODE_FILES = {
    "train.py": "import model\n\nif __name__ == '__main__':\n    model.train(epochs=3)\n",
    "model.py": "def train(epochs):\n    for epoch in range(epochs):\n        print('epoch', epoch)\n",
    "requirements.txt": "torch\nnumpy\n",
    "configs/base.yaml": "lr: 0.001\nbatch_size: 32\n",
}
SPEC = f"""\
name: bench-sm
image: {IMAGE}
code: ./src
run: python train.py
resources:
  accelerators: T4:1
backends:
  sagemaker:
    region: us-east-1
    role_arn: {ROLE}
    bucket: {BUCKET}
"""
LABELS = {
    "a": "(a) launcher `runner.submit`",
    "b": "(b) plain boto3, clients made once",
}


def write_inputs(tmp: Path) -> Path:
    code = tmp / "src"
    for rel, text in CODE_FILES.items():
        (code / rel).parent.mkdir(parents=True, exist_ok=True)
        (code / rel).write_text(text)
    spec = tmp / "job.yaml"
    spec.write_text(SPEC)
    return spec


class Plain:
    """The script-equivalent: the launcher's rendered request, replayed with plain boto3 calls."""

    def __init__(self, request: Any, region: str) -> None:
        from botocore.config import Config

        self.region = region
        # the launcher's own client settings (backends/sagemaker/clients.py, aws_client)
        self.config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)
        self.template_id = request.job_id
        self.template = json.dumps(request.payload)
        self.bundle: tuple[str, str, bytes] | None = None
        self.files: list[tuple[str, str, bytes]] = []  # per-job objects: (bucket, key with the job id, bytes)
        for upload in request.uploads:
            bucket, _, key = upload.destination.removeprefix("s3://").partition("/")
            body = upload.content.encode() if upload.content is not None else upload.source.read_bytes()
            if "/bundles/" in key:
                self.bundle = (bucket, key, body)
            else:
                self.files.append((bucket, key, body))
        assert self.bundle is not None, "the spec has code: the request must upload a bundle"
        self.count = 0

    def job(self, tag: str) -> tuple[dict[str, Any], list[tuple[str, str, bytes]]]:
        """Payload and per-job uploads for a fresh job id (built before the clock starts)."""
        self.count += 1
        job_id = f"plain-{tag}-{self.count:05d}-{os.urandom(3).hex()}"
        payload = json.loads(self.template.replace(self.template_id, job_id))
        files = [(b, k.replace(self.template_id, job_id), body) for b, k, body in self.files]
        return payload, files

    def clients(self) -> tuple[Any, Any]:
        import boto3

        session = boto3.session.Session(region_name=self.region)
        return session.client("s3", config=self.config), session.client("sagemaker", config=self.config)

    def submit(self, s3: Any, sm: Any, payload: dict[str, Any], files: list[tuple[str, str, bytes]]) -> str:
        from botocore.exceptions import ClientError

        assert self.bundle is not None
        bucket, key, body = self.bundle
        try:
            present = s3.head_object(Bucket=bucket, Key=key).get("ContentLength") == len(body)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            present = False
        if not present:
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        for file_bucket, file_key, file_body in files:
            s3.put_object(Bucket=file_bucket, Key=file_key, Body=file_body)
        return str(sm.create_training_job(**payload)["TrainingJobArn"])


class Bench:
    def __init__(self, spec_path: Path, store: Any, plain: Plain) -> None:
        from launcher import runner
        from launcher.spec import load_spec

        self.runner = runner
        self.load_spec = load_spec
        self.spec = str(spec_path)
        self.store = store
        self.plain = plain
        self.s3, self.sm = plain.clients()  # (b): made once, before any timing
        self.launcher_ids: list[str] = []

    def launcher(self) -> Callable[[], None]:
        def go() -> None:
            sub = self.runner.submit(self.store, self.load_spec(self.spec), "sagemaker")
            assert sub.record.handle is not None, sub.record
            self.launcher_ids.append(sub.record.id)
        return go

    def plain_once(self) -> Callable[[], None]:
        payload, files = self.plain.job("b")

        def go() -> None:
            self.plain.submit(self.s3, self.sm, payload, files)
        return go

    def make(self, mode: str) -> Callable[[], None]:
        return {"a": self.launcher, "b": self.plain_once}[mode]()


def count_http(fn: Callable[[], None]) -> Counter[str]:
    """HTTP requests boto3 sends during fn(), by method and service host/path shape."""
    from botocore.httpsession import URLLib3Session

    seen: Counter[str] = Counter()
    original = URLLib3Session.send

    def send(self: Any, request: Any) -> Any:
        target = request.headers.get("X-Amz-Target")
        what = target.decode() if isinstance(target, bytes) else target
        seen[f"{request.method} {what or 's3'}"] += 1
        return original(self, request)

    URLLib3Session.send = send  # type: ignore[method-assign]
    try:
        fn()
    finally:
        URLLib3Session.send = original  # type: ignore[method-assign]
    return seen


PHASES: list[tuple[str, str, str]] = [  # (label, file suffix, function); "a > b": b is part of a
    ("runner.submit", "launcher/runner.py", "submit"),
    ("submit > prepare", "launcher/runner.py", "prepare"),
    ("submit > prepare > load_spec (YAML + pydantic)", "launcher/spec.py", "load_spec"),
    ("submit > prepare > backend_for (settings, backend init)", "launcher/runner.py", "backend_for"),
    ("submit > prepare > bundle.pack (tar+gzip+sha256)", "launcher/bundle.py", "pack"),
    ("submit > prepare > bundle.pack > git rev-parse subprocess", "subprocess.py", "run"),
    ("submit > prepare > SageMakerBackend.render", "backends/sagemaker/backend.py", "render"),
    ("submit > Store.reserve", "launcher/store.py", "reserve"),
    ("submit > Store.set_handle + set_status", "launcher/store.py", "_update"),
    ("submit > Store.get", "launcher/store.py", "get"),
    ("submit > SageMakerBackend.submit", "backends/sagemaker/backend.py", "submit"),
    ("submit > backend.submit > _client (2 per submit)", "backends/sagemaker/backend.py", "_client"),
    ("submit > backend.submit > _client > boto3.Session()", "boto3/session.py", "__init__"),
    ("submit > backend.submit > _client > create_client", "botocore/session.py", "create_client"),
    ("submit > backend.submit > storage.put (x3: head + put)", "backends/sagemaker/storage.py", "put"),
    ("submit > backend.submit > storage.put > S3Transfer.upload_file", "boto3/s3/transfer.py", "upload_file"),
    ("every botocore API call (_make_api_call)", "botocore/client.py", "_make_api_call"),
]


def profile(bench: Bench, jobs: int) -> tuple[str, list[tuple[str, float]]]:
    fns = [bench.launcher() for _ in range(jobs)]
    prof = cProfile.Profile()
    prof.enable()
    for fn in fns:
        fn()
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(15)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    phases = []
    for label, suffix, func in PHASES:
        cum = sum(v[3] for (file, _, name), v in raw.items() if name == func and file.endswith(suffix))
        phases.append((label, cum * 1000 / jobs))
    return out.getvalue(), phases


def check_equivalent(server: Any, launcher_ids: list[str]) -> None:
    """The plain script sent the launcher's request: same CreateTrainingJob body but for the job id."""
    sent = server.created_requests
    ours = next(r for r in sent if r["TrainingJobName"] in launcher_ids)
    plain = next(r for r in sent if r["TrainingJobName"].startswith("plain-b-"))

    def normal(body: dict[str, Any]) -> str:
        return json.dumps(body, sort_keys=True).replace(body["TrainingJobName"], "ID")

    if normal(ours) != normal(plain):
        raise SystemExit(f"the plain script's request differs from the launcher's:\n{normal(ours)}\n{normal(plain)}")


def measure(quick: bool, profile_jobs: int = 0) -> tuple[Section, str]:
    """The row for (a) vs (b), and the cProfile text when profile_jobs > 0."""
    runs, warmups = (15, 3) if quick else (100, 5)
    from fakes.moto_sagemaker import MotoSageMaker

    modes = ["a", "b"]
    with (tempfile.TemporaryDirectory(prefix="launch-bench-sm-") as tmp, MotoSageMaker() as server,
          launch_home(Path(tmp) / "home", **server.env()) as store):
        server.client("s3").create_bucket(Bucket=BUCKET)
        spec_path = write_inputs(Path(tmp))

        from launcher import runner
        from launcher.spec import load_spec

        _, _, request, _ = runner.prepare(load_spec(spec_path), "sagemaker", dry_run=False)
        bench = Bench(spec_path, store, Plain(request, server.region))
        got = interleaved_calls({LABELS[m]: (lambda m=m: bench.make(m)) for m in modes}, runs, warmups)
        http = {mode: count_http(bench.make(mode)) for mode in modes}  # steady state: the bundle is there
        check_equivalent(server, bench.launcher_ids)
        text = ""
        if profile_jobs:
            text, phases = profile(bench, profile_jobs)
            text += "\n" + "\n".join(f"{label}: {ms:.2f} ms/submit" for label, ms in phases)
    a, b = (got[LABELS[m]] for m in modes)
    calls = {m: ", ".join(f"{n}x {k}" for k, n in sorted(http[m].items())) for m in modes}
    sec = Section("Submit overhead")
    sec.rows += [
        Row("SageMaker submit (moto)", "launcher runner.submit", a, "plain boto3, clients made once", b,
            goal=f"<= {GOAL}x", met=a.median <= GOAL * b.median),
    ]
    sec.notes.append(f"SageMaker: in-process moto; {warmups} warm-up rounds, then {runs} interleaved rounds of one "
                     f"submit each; HTTP per submit: launcher {calls['a']}; plain {calls['b']}. The plain script "
                     "replays the launcher's own rendered CreateTrainingJob (checked equal but for the job id).")
    return sec, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer submits, for checking the harness")
    parser.add_argument("--profile", action="store_true", help="cProfile 20 launcher submits; print top 15 cumulative")
    args = parser.parse_args()
    sec, text = measure(args.quick, 20 if args.profile else 0)
    print(report.section(sec))
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
