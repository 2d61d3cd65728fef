"""`launch run --sweep lr=1e-3,3e-4 --sweep batch=32,64`: one job per grid point, as a group.

A sweep is many ordinary submissions that share a group id, so `list --group` and
`cancel --group` reach them all and every other command works on each job as usual.
`--max-parallel` bounds how many of the group are unfinished at once: the launcher
submits that many, then submits the next as earlier ones end, which keeps a large grid
from taking every GPU of a quota at once.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from launcher.errors import LaunchError, UsageError
from launcher.store import point_label

if TYPE_CHECKING:
    from launcher.spec import JobSpec, SpecFile

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_POINTS = 1000
SUBMIT_THREADS = 16
# how often unfinished jobs are checked while feeding --max-parallel or waiting: soon at first
# (short jobs free their slot at once), backing off so long jobs cost few provider calls
POLL_FIRST_S = 0.1
POLL_MAX_S = 5.0


@dataclass
class PointResult:
    """One grid point: the job it became, or the error that kept it from being submitted."""

    params: dict[str, str]
    record: object | None = None
    error: LaunchError | None = None


def parse_axes(items: tuple[str, ...] | list[str]) -> list[tuple[str, list[str]]]:
    """`KEY=V1,V2` flags into (key, values); keys are env-var names so `$KEY` works in `run:`."""
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not NAME.fullmatch(key):
            raise UsageError(f"--sweep {item!r}: expected NAME=V1,V2,... with NAME a valid env var name",
                             "e.g. --sweep lr=1e-3,3e-4")
        if key.startswith("LAUNCH_"):
            raise UsageError(f"--sweep {item!r}: names starting with LAUNCH_ are set by the launcher")
        values = [v.strip() for v in raw.split(",")]
        if not all(values):
            raise UsageError(f"--sweep {item!r}: an empty value", "separate values with commas: lr=1e-3,3e-4")
        if any(key == seen for seen, _ in axes):
            raise UsageError(f"--sweep {key} is given twice", "list all its values in one flag")
        if len(set(values)) != len(values):
            raise UsageError(f"--sweep {item!r} repeats a value", "each value once")
        axes.append((key, values))
    return axes


def grid(axes: list[tuple[str, list[str]]]) -> list[dict[str, str]]:
    """Every combination, first axis slowest, so the order matches the command line."""
    size = 1
    for _, values in axes:
        size *= len(values)
    if size > MAX_POINTS:
        raise UsageError(f"the sweep has {size} points; at most {MAX_POINTS}", "sweep fewer values")
    keys = [key for key, _ in axes]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(values for _, values in axes))]


def point_specs(spec_file: SpecFile, points: list[dict[str, str]]) -> list[JobSpec]:
    """Each point's job spec, `${name}` filled in, built from the file parsed once. All are built
    (and checked) before the first is submitted: a bad value fails the whole sweep, nothing launched."""
    return [spec_file.job(params) for params in points]


def point_key(idempotency_key: str | None, params: dict[str, str]) -> str | None:
    """Each point needs its own key, or the second point would return the first one's job."""
    if not idempotency_key:
        return None
    import hashlib

    digest = hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:10]
    return f"{idempotency_key}-{digest}"


def run(points: list[dict[str, str]], submit_one: Callable[[dict[str, str]], object],
        is_done: Callable[[PointResult], bool], *, max_parallel: int, wait: bool,
        on_event: Callable[[str], None] = lambda _: None) -> list[PointResult]:
    """Submit every point with at most `max_parallel` unfinished at once; with `wait`, also
    until all have ended. `submit_one` returns a job record; `is_done` refreshes a result's record and says
    whether it has ended.
    A point that cannot be submitted is reported, and the rest still run."""
    results = [PointResult(params) for params in points]
    queue = list(range(len(points)))
    active: list[int] = []
    delay = POLL_FIRST_S
    with ThreadPoolExecutor(max_workers=max(1, min(SUBMIT_THREADS, max_parallel))) as pool:
        while queue or (wait and active):
            free = max_parallel - len(active)
            batch, queue = queue[:max(free, 0)], queue[max(free, 0):]
            for index, outcome in zip(batch, pool.map(lambda i: _try(submit_one, points[i]), batch), strict=True):
                record, error = outcome
                results[index].record, results[index].error = record, error
                if error is not None:
                    on_event(f"{point_label(points[index])}: not submitted: {error.message}")
                else:
                    active.append(index)
                    on_event(f"{point_label(points[index])}: submitted {getattr(record, 'id', '?')}")
            if not queue and not wait:
                break
            time.sleep(delay if active else 0)
            still = []
            for index, done in zip(active, pool.map(lambda i: _judge(is_done, results[i]), active), strict=True):
                if not done:
                    still.append(index)
            delay = POLL_FIRST_S if len(still) < len(active) else min(delay * 1.5, POLL_MAX_S)
            active = still
    return results


def _try(submit_one: Callable[[dict[str, str]], object], params: dict[str, str]
         ) -> tuple[object | None, LaunchError | None]:
    try:
        return submit_one(params), None
    except LaunchError as exc:
        return None, exc


def _judge(is_done: Callable[[PointResult], bool], result: PointResult) -> bool:
    """Refreshes result.record in place; a job whose state cannot be read counts as unfinished."""
    try:
        return is_done(result)
    except LaunchError:
        return False
