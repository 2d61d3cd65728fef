"""How much does `launch` add to a Hugging Face Jobs submit? The launcher against a plain HfApi script, on the fake.

Run by hand (not in CI): .venv/bin/python bench/hf_jobs_submit.py [--quick]

One in-process Hugging Face Jobs fake (tests/fakes/hf_jobs_fake.py: the Jobs API and the Hub's upload
endpoints, every run_job body checked against huggingface_hub's own job spec) serves both sides; LAUNCH_HOME's
config.toml points the backend at it. Its jobs stay SCHEDULING (no process is started while measuring). The
same spec (A10G, a small code dir) is submitted two ways, one submit of each per round, the order rotating
(bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "hf_jobs")` in-process, one Store: load and validate
            the spec, pack the bundle, render, write the store, build the backend (HfApi), look for a job with our
            label (a retried create must adopt, not duplicate), file_exists for the bundle (there after
            the first submit: no create_repo, no upload), run_job. The code is not packed again: the bundle
            cache's index finds the tree unchanged (lstat of its files) and reuses the bundle.
  baseline: a plain script with one HfApi made once, making the same calls per job: list_jobs by the job's
            label, file_exists for the bundle (it is there),
            run_job with the launcher's own rendered body, its own job id, built before the clock starts:
            rendering is the launcher's cost alone.

Goal (issue 18): launcher median per submit <= 1.3x the plain script.

A second row, without a goal, is what a user compares at the terminal: `launch run job.yaml -b hf_jobs` against
`python submit.py` (the same three calls with one HfApi), each a fresh process, interleaved, against the same
fake: Python's start and huggingface_hub's import (~0.3 s, both sides) included.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import report
from launch_home import launch_home
from timing import REPO, Case, Row, Section, clean_env, interleaved, interleaved_calls, launch_script

sys.path[:0] = [str(REPO), str(REPO / "tests")]

GOAL = 1.3
TOKEN = "hf_bench_token"
SPEC = """\
name: bench-hf
image: python:3.12
code: ./src
run: python train.py
resources:
  accelerators: A10G
backends:
  hf_jobs: {namespace: alice}
"""
OURS, PLAIN = "launcher runner.submit", "plain HfApi, made once"
CLI_OURS, CLI_PLAIN = "launch run (a fresh process)", "python submit.py (a fresh process, one HfApi)"
# the plain script of the end-to-end row: argv = the launcher's rendered body (JSON file), endpoint, bundle path
SCRIPT = """\
import json, os, sys
from huggingface_hub import HfApi
body = json.load(open(sys.argv[1]))
api = HfApi(endpoint=sys.argv[2], token=os.environ["HF_TOKEN"])
job_id = "plain-" + os.urandom(6).hex()
assert not list(api.list_jobs(labels={"launch-job-id": job_id}, namespace="alice"))
assert api.file_exists("alice/launch-bundles", sys.argv[3])
labels = dict(body["labels"], **{"launch-job-id": job_id})
name = labels.pop("name")
api.run_job(image=body["dockerImage"], command=body["command"], env=body["environment"],
            secrets=dict(body["secrets"], LAUNCH_HF_BUNDLE_TOKEN=os.environ["HF_TOKEN"]), flavor=body["flavor"],
            timeout=body["timeoutSeconds"], name=name, labels=labels, namespace="alice")
"""


class Plain:
    """The script-equivalent: the launcher's rendered body, replayed with huggingface_hub's own HfApi."""

    def __init__(self, request: Any, endpoint: str) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi(endpoint=endpoint, token=TOKEN)
        self.template_id = request.job_id
        self.template = json.dumps(request.payload["jobs"][0])
        self.bundle = request.uploads[0].destination.removeprefix("hf://alice/launch-bundles/")
        self.count = 0

    def job(self) -> Callable[[], None]:
        """One submit with a fresh job id; its arguments built here, before the clock starts."""
        self.count += 1
        job_id = f"plain-{self.count:05d}-{os.urandom(3).hex()}"
        body = json.loads(self.template.replace(self.template_id, job_id))
        body["secrets"]["LAUNCH_HF_BUNDLE_TOKEN"] = TOKEN
        labels = dict(body["labels"])
        name = labels.pop("name")

        def go() -> None:
            found = list(self.api.list_jobs(labels={"launch-job-id": job_id}, namespace="alice"))
            assert not found
            assert self.api.file_exists("alice/launch-bundles", self.bundle)  # there: no create_repo, no upload
            self.api.run_job(image=body["dockerImage"], command=body["command"], env=body["environment"],
                             secrets=body["secrets"], flavor=body["flavor"], timeout=body["timeoutSeconds"],
                             name=name, labels=labels, namespace="alice")
        return go


def settle(path: Path) -> None:
    """Until the code's file is older than the bundle index's racy window (a file written just before a pack
    is hashed again by the next one, launcher/bundle_index.py): the rounds measure a re-submit of settled
    code, as a user's is, not one of a file written a second ago."""
    from launcher import bundle_index

    while time.time_ns() < path.stat().st_ctime_ns + bundle_index.RACY_NS:
        time.sleep(0.05)


def measure(quick: bool) -> Section:
    runs, warmups = (15, 3) if quick else (100, 5)
    from fakes.hf_jobs_fake import HfJobsFake

    with tempfile.TemporaryDirectory(prefix="launch-bench-hf-") as tmp_name, \
            HfJobsFake(token=TOKEN, user="alice", schedule_s=3600) as fake:
        tmp = Path(tmp_name)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('hi')\n")
        spec = tmp / "job.yaml"
        spec.write_text(SPEC)
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(f'[backends.hf_jobs]\nendpoint = "{fake.endpoint}"\n')
        with launch_home(home, HF_TOKEN=TOKEN, HF_HOME=str(tmp / "hf-home")) as store:
            from launcher import runner
            from launcher.spec import load_spec

            _, _, request, _ = runner.prepare(load_spec(spec), "hf_jobs", dry_run=False)
            runner.submit(store, load_spec(str(spec)), "hf_jobs")  # the bundle is in the repo from here on
            settle(tmp / "src" / "train.py")
            plain = Plain(request, fake.endpoint)

            def ours() -> Callable[[], None]:
                return lambda: runner.submit(store, load_spec(str(spec)), "hf_jobs")

            got = interleaved_calls({OURS: ours, PLAIN: plain.job}, runs, warmups)
            (tmp / "body.json").write_text(json.dumps(request.payload["jobs"][0]))
            (tmp / "submit.py").write_text(SCRIPT)
            env = clean_env(**{k: os.environ[k] for k in ("LAUNCH_HOME", "HF_TOKEN", "HF_HOME")})
            cases = [Case(CLI_OURS, [launch_script(), "run", str(spec), "-b", "hf_jobs"], env=env, cwd=tmp_name),
                     Case(CLI_PLAIN, [sys.executable, str(tmp / "submit.py"), str(tmp / "body.json"), fake.endpoint,
                                      plain.bundle], env=env, cwd=tmp_name)]
            cli_runs = 3 if quick else 15
            got.update(interleaved(cases, cli_runs, warmups=1, rss_runs=0))
            bodies = len(fake.created_bodies)
            violations = list(fake.violations)
    expected = 2 * (runs + warmups) + 1 + 2 * (cli_runs + 1)
    if bodies != expected or violations:
        raise RuntimeError(f"the fake stored {bodies} jobs, expected {expected}; {violations}")
    sec = Section("Submit overhead")
    sec.rows.append(Row("Hugging Face Jobs submit (local fake)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.rows.append(Row("Hugging Face Jobs submit, end to end (local fake)", CLI_OURS, got[CLI_OURS], CLI_PLAIN,
                        got[CLI_PLAIN], unit="s"))
    sec.notes.append(f"Hugging Face Jobs: in-process fake over http; {warmups} warm-up rounds, then {runs} "
                     "interleaved rounds; both sides make the same calls (label lookup, file_exists for the "
                     f"bundle, run_job); the fake stored {bodies} jobs, every body checked "
                     f"against huggingface_hub's job spec. End to end: 1 warm-up round, then {cli_runs} interleaved "
                     "runs of each command as a fresh process; both import huggingface_hub (~0.3 s here), "
                     "`launch run` also its own modules, pydantic and click, and opens the store.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
