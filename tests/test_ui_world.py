"""The job history the dashboard's tests look at (no tests here): jobs on every installed backend in
every state, a two-axis sweep, estimates and runtimes for the usage chart, and the hostile-HTML corpus
in every text a page shows. Written through launcher.store, as `launch` writes it."""

from __future__ import annotations

import random
from pathlib import Path

from launcher import registry
from launcher.backend import Handle, JobState
from launcher.store import JobRecord, JobStore, Store

# HTML/JS injection: each must reach a page as text, never as markup or script
HOSTILE_HTML = [
    "<script>alert('x')</script>", "\"><img src=x onerror=alert(1)>", "'><svg onload=alert(1)>",
    "</textarea><script>alert(2)</script>", "</script><script>alert(3)</script>", "javascript:alert(4)",
    "{{ 7*7 }}{% raw %}", "&lt;b&gt;already escaped&lt;/b&gt;", "<iframe src=//example.invalid>",
    "\u2028\u2029<!--", "a\nb<style>*{display:none}</style>",
]
T0 = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC, a fixed clock: the usage chart's days are known
DAY = 86400.0
STATES = [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.RUNNING, JobState.PENDING,
          JobState.UNKNOWN]
SWEEP = "sweep-demo-20260920-000000-abc123"
SWEEP_AXES = {"lr": ["1e-4", "3e-4"], "batch": ["16", "32", "64"]}


def job_id(index: int, name: str = "job") -> str:
    return f"{name}-20260920-{index:06d}-{index % 0xffffff:06x}"


def record(index: int, backend: str, state: JobState, *, name: str = "train", created: float | None = None,
           **fields: object) -> JobRecord:
    """A job as `launch run` stores it: 2 x H100:8 for 4 h at most, $100 estimated for the 4 h."""
    created = T0 + index * 60.0 if created is None else created
    started = None if state in (JobState.PENDING,) else created + 30
    ended = started + 3600 if started is not None and state.is_terminal else None
    spec = {"name": name, "run": "python train.py", "env": {"MODE": "fast"}, "secrets": ["UI_TEST_SECRET"],
            "resources": {"accelerators": "H100:8", "nodes": 2}, "max_runtime": 4 * 3600}
    values: dict = dict(id=job_id(index, name.lower()[:20] if name.isascii() and name.isalnum() else "job"),
                        name=name, backend=backend, handle=Handle(backend, "x", {"n": index}), spec=spec,
                        state=state, raw_state=state.value.title(), created_at=created, updated_at=created,
                        started_at=started, ended_at=ended, finished_at=ended, est_cost_usd=100.0,
                        url=f"https://console.example/{backend}/{index}", submitted_by="ana",
                        submitted_host="laptop")
    values.update(fields)
    return JobRecord(**values)  # type: ignore[arg-type]


def fill(store: JobStore, count: int = 1000, seed: int = 3) -> list[JobRecord]:
    """`count` jobs spread over every installed backend and every state (none needs a refresh: a local
    job is recorded finished or with a non-local handle), then the sweep, then the hostile jobs."""
    rng = random.Random(seed)
    names = registry.names()
    written = []
    for i in range(count):
        backend = names[i % len(names)]
        state = STATES[rng.randrange(len(STATES))]
        if backend == "local" and not state.is_terminal:
            state = JobState.SUCCEEDED
        written.append(record(i, backend, state, name=rng.choice(["bert", "llama", "resnet", "whisper"])))
    index = count
    for lr in SWEEP_AXES["lr"]:
        for batch in SWEEP_AXES["batch"]:
            state = JobState.RUNNING if batch == "64" else JobState.SUCCEEDED
            written.append(record(index, "sagemaker", state, name="sweepdemo", group_id=SWEEP,
                                  params={"lr": lr, "batch": batch}))
            index += 1
    for value in HOSTILE_HTML:
        written.append(record(index, "vertex", JobState.FAILED, name=value, message=value, raw_state=value,
                              group_id=f"g{index}{value}", params={"p": value}, submitted_by=value, url=value,
                              spec={"name": value, "run": value, "env": {"V": value}, "secrets": []}))
        index += 1
    for item in written:
        assert store.import_record(item, {"payload": {"env": {"UI_TEST_SECRET": "****"}}}, [])
    return written


def filled_store(path: Path, count: int = 1000) -> tuple[Path, list[JobRecord]]:
    store = Store(path)
    try:
        return path, fill(store, count)
    finally:
        store.close()
