"""How much does `launch` add to an Azure OpenAI fine-tuning submit? The launcher against a plain SDK script.

Run by hand (not in CI): .venv/bin/python bench/azure_openai_submit.py [--quick]

One in-process fake (tests/fakes/azure_openai_fake.py: every request and response checked against Azure's
published 2024-10-21 definition) serves both sides; jobs are held at running (nothing trains). The same spec
(gpt-4o-mini, a 10-example JSONL file) is submitted two ways, one submit of each per round, the order
rotating (bench/timing.py):

  ours:     `launcher.runner.submit(store, load_spec(spec), "azure_openai")` in-process, one Store: load and
            validate the spec, check every JSONL line, hash the file, render, write the store, build the
            client, find the file by its content (list), create the job.
  baseline: a plain script with one AzureOpenAI client (max_retries=0, as ours), making the same calls per
            job: list the files and take the one already uploaded, create the job with the launcher's own
            rendered body (its own suffix), built before the clock starts: rendering is the launcher's cost.

Goal (issue 20): launcher median per submit <= 1.3x the plain script.
"""

from __future__ import annotations

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
KEY = "bench-key"
EXAMPLE = '{"messages": [{"role": "user", "content": "question %d"}, {"role": "assistant", "content": "answer %d"}]}\n'
OURS, PLAIN = "launcher runner.submit", "plain AzureOpenAI client, made once"


class Plain:
    """The script-equivalent: the launcher's rendered request, replayed with one AzureOpenAI client."""

    def __init__(self, request: Any, endpoint: str) -> None:
        import openai

        self.client = openai.AzureOpenAI(azure_endpoint=endpoint, api_key=KEY, api_version="2024-10-21", max_retries=0)
        self.body = dict(request.payload)
        self.name = request.uploads[0].destination

    def job(self) -> Callable[[], None]:
        def go() -> None:
            file = next(f for f in self.client.files.list(purpose="fine-tune").data if f.filename == self.name)
            self.client.fine_tuning.jobs.create(**{**self.body, "training_file": file.id})
        return go


def measure(quick: bool) -> Section:
    runs, warmups = (15, 3) if quick else (100, 5)
    from fakes.azure_openai_fake import AzureOpenAIFake

    with tempfile.TemporaryDirectory(prefix="launch-bench-aoai-") as tmp_name, \
            AzureOpenAIFake(api_key=KEY, step_s=0.01) as fake:
        fake.hold = True  # nothing trains: the bench measures submits
        tmp = Path(tmp_name)
        (tmp / "train.jsonl").write_text("".join(EXAMPLE % (i, i) for i in range(10)))
        spec = tmp / "job.yaml"
        spec.write_text("name: bench-ft\nfinetune:\n  base_model: gpt-4o-mini-2024-07-18\n"
                        "  training_file: train.jsonl\n")
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(f'[backends.azure_openai]\nendpoint = "{fake.endpoint}"\n'
                                          "file_poll_s = 0.01\n")
        with launch_home(home, AZURE_OPENAI_API_KEY=KEY) as store:
            from launcher import runner
            from launcher.spec import load_spec

            runner.submit(store, load_spec(str(spec)), "azure_openai")  # the file is uploaded for both sides
            _, _, request, _ = runner.prepare(load_spec(spec), "azure_openai", dry_run=False)
            plain = Plain(request, fake.endpoint)

            def ours() -> Callable[[], None]:
                return lambda: runner.submit(store, load_spec(str(spec)), "azure_openai")

            got = interleaved_calls({OURS: ours, PLAIN: plain.job}, runs, warmups)
            created, uploads, violations = len(fake.creates()), len(fake.uploads()), list(fake.violations)
    expected = 2 * (runs + warmups) + 1
    if created != expected or uploads != 1 or violations:
        raise RuntimeError(f"the fake got {created} creates and {uploads} uploads ({violations=}), "
                           f"expected {expected} and 1")
    sec = Section("Submit overhead")
    sec.rows.append(Row("Azure OpenAI fine-tuning submit (local fake)", OURS, got[OURS], PLAIN, got[PLAIN],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[PLAIN].median))
    sec.notes.append(f"Azure OpenAI: in-process fake over http, every exchange checked against the published "
                     f"2024-10-21 definition; {warmups} warm-up rounds, then {runs} interleaved rounds; both sides "
                     "list the files (the JSONL is uploaded once, found by its content) and create the job.")
    return sec


def main() -> int:
    return report.script(__doc__ or "", measure, "fewer submits, for checking the harness")


if __name__ == "__main__":
    sys.exit(main())
