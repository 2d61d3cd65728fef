"""The submit-overhead run the bucket-backed Chinese clouds share (PAI-DLC, TI-ONE, AIHC).

Each has a fake of its job API and moto's S3 standing in for its object store, started together as one
stack (tests/fakes/bucket_stack.py); the run around them is the same: a small code dir, config.toml pointing
at the stack, one launcher submit first (so the content-addressed bundle is there for both sides), then
launch's `runner.submit` interleaved with the plain script's job, and a check that the fake created exactly
the jobs both sides submitted. Each bench script keeps its own plain script and says what its calls are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launch_home import launch_home
from timing import Row, Section, interleaved_calls

GOAL = 1.3
OURS = "launcher runner.submit"


@dataclass(frozen=True)
class BucketBench:
    backend: str                                  # the backend name runner.submit is given
    spec: str                                     # the job spec's text (code: ./src)
    stack: Callable[[Path], Any]                  # the fake stack, started in a temp dir
    fake: Callable[[Any], Any]                    # the stack's job API fake (held: nothing runs)
    credentials: Callable[[Any], dict[str, str]]  # the environment both sides sign with
    created: Callable[[Any], int]                 # how many jobs the fake created
    plain: Callable[[Any, Any], Any]              # (rendered request, stack) -> the plain script; .job() per round
    plain_label: str
    row: str
    note: str                                     # what both sides call, and what checks the requests


def measure(bench: BucketBench, quick: bool) -> Section:
    runs, warmups = (15, 3) if quick else (100, 5)
    with tempfile.TemporaryDirectory(prefix=f"launch-bench-{bench.backend}-") as tmp_name, \
            bench.stack(Path(tmp_name)) as stack:
        fake = bench.fake(stack)
        fake.hold = True  # nothing runs: the bench measures submits
        tmp = Path(tmp_name)
        (tmp / "src").mkdir()
        (tmp / "src" / "train.py").write_text("print('hi')\n")
        spec = tmp / "job.yaml"
        spec.write_text(bench.spec)
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(stack.config())
        with launch_home(home, **bench.credentials(stack)) as store:
            from launcher import runner
            from launcher.spec import load_spec

            _, _, request, _ = runner.prepare(load_spec(spec), bench.backend, dry_run=False)
            plain = bench.plain(request, stack)
            runner.submit(store, load_spec(str(spec)), bench.backend)  # the bundle is there for both sides

            def ours() -> Callable[[], None]:
                return lambda: runner.submit(store, load_spec(str(spec)), bench.backend)

            got = interleaved_calls({OURS: ours, bench.plain_label: plain.job}, runs, warmups)
            created, violations = bench.created(fake), list(fake.violations)
    expected = 2 * (runs + warmups) + 1
    if created != expected or violations:
        raise RuntimeError(f"the fake got {created} creates ({violations=}), expected {expected}")
    sec = Section("Submit overhead")
    sec.rows.append(Row(bench.row, OURS, got[OURS], bench.plain_label, got[bench.plain_label],
                        goal=f"<= {GOAL}x", met=got[OURS].median <= GOAL * got[bench.plain_label].median))
    sec.notes.append(f"{bench.row.split(' submit')[0]}: in-process fake over http; {warmups} warm-up rounds, then "
                     f"{runs} interleaved rounds; {bench.note}")
    return sec
