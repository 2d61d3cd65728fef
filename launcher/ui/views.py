"""What the pages show, worked out from job records: no HTTP and no HTML here (the templates escape
everything they print), so each piece is testable on its own and the routes stay thin."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from launcher import accelerators
from launcher.backend import JobState
from launcher.display import money
from launcher.durations import format_seconds
from launcher.store import JobRecord

MASK = "****"
MIN_SECRET_LEN = 4  # shorter values ("1", "on") would mask ordinary text everywhere


@dataclass(frozen=True)
class Filters:
    """The jobs table's filters, as the query string gives them ("" = any)."""

    state: str = ""
    backend: str = ""
    group: str = ""
    text: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        state = query.get("state", "").strip().upper()
        return cls(state=state if state in JobState.__members__ else "", backend=query.get("backend", "").strip(),
                   group=query.get("group", "").strip(), text=query.get("q", "").strip())

    def matches(self, record: JobRecord) -> bool:
        """The text filter: any of id, name, group, sweep point or message holds it (case-insensitive)."""
        if self.state and record.state.value != self.state:
            return False
        if not self.text:
            return True
        wanted = self.text.lower()
        return any(wanted in (value or "").lower()
                   for value in (record.id, record.name, record.group_id, record.label, record.message))


def nodes(record: JobRecord) -> int:
    try:
        return max(1, int((record.spec.get("resources") or {}).get("nodes", 1)))
    except (TypeError, ValueError, AttributeError):
        return 1


def shape(record: JobRecord) -> str:
    """`2 x H100:8`; `hosted` for a fine-tuning job (no machines of the user's)."""
    if record.spec.get("finetune"):
        return "hosted"
    wanted = (record.spec.get("resources") or {}).get("accelerators", "cpu") if record.spec else None
    if wanted is None:
        return "-"
    return f"{nodes(record)} x {wanted}"


def gpus(record: JobRecord) -> int:
    """GPUs over all nodes, from the stored spec (0 for cpu, a hosted job or a spec that does not parse)."""
    if record.spec.get("finetune"):
        return 0
    try:
        return nodes(record) * accelerators.parse(str((record.spec.get("resources") or {})
                                                      .get("accelerators", "cpu"))).count
    except (ValueError, AttributeError):
        return 0


def ran_seconds(record: JobRecord, now: float | None = None) -> float | None:
    """How long it ran: start to end, or to now while it runs; None before it started."""
    if not record.started_at:
        return None
    end = record.ended_at or (None if record.state.is_terminal else (now or time.time()))
    return max(0.0, end - record.started_at) if end else None


def spent_usd(record: JobRecord, now: float | None = None) -> float | None:
    """The estimate stored at submit (catalog price x nodes x max_runtime) scaled to the time it ran:
    what the run cost at catalog prices. None without an estimate or a max_runtime to scale by."""
    ran = ran_seconds(record, now)
    limit = record.spec.get("max_runtime")
    if record.est_cost_usd is None or ran is None or not isinstance(limit, (int, float)) or limit <= 0:
        return None
    return record.est_cost_usd * min(1.0, ran / limit)


def when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


def row(record: JobRecord, now: float | None = None) -> dict[str, Any]:
    """One jobs-table row (also what the live refresh sends)."""
    ran = ran_seconds(record, now)
    return {"id": record.id, "name": record.name, "backend": record.backend, "state": record.state.value,
            "shape": shape(record), "started": when(record.started_at),
            "duration": format_seconds(ran) if ran is not None else "-", "cost": money(record.est_cost_usd),
            "group": record.group_id or "", "point": record.label, "terminal": record.state.is_terminal}


@dataclass
class Block:
    """The jobs table's unit: one job, or a sweep's jobs together under their group (newest member first)."""

    group: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    axes: tuple[str, ...] = ()


def blocks(records: Iterable[JobRecord], now: float | None = None) -> list[Block]:
    """Newest first; a sweep's jobs sit together where its newest job would be."""
    out: list[Block] = []
    by_group: dict[str, Block] = {}
    for record in records:
        if record.group_id is None:
            out.append(Block(None, [row(record, now)]))
            continue
        block = by_group.get(record.group_id)
        if block is None:
            block = by_group[record.group_id] = Block(record.group_id, axes=tuple(record.params or {}))
            out.append(block)
        block.rows.append(row(record, now))
    return out


@dataclass(frozen=True)
class Grid:
    """A sweep as a grid: with two axes, rows by the first and columns by the second; otherwise one
    row of cells. A cell is a job row, or None where the sweep has no job for that pair."""

    axes: tuple[str, ...]
    columns: list[str]
    rows: list[tuple[str, list[dict[str, Any] | None]]]


def sweep_grid(records: list[JobRecord], now: float | None = None) -> Grid:
    ordered = sorted(records, key=lambda r: r.created_at)
    axes = tuple((ordered[0].params or {}) if ordered else ())
    if len(axes) != 2:
        return Grid(axes, [], [("", [row(r, now) for r in ordered])])
    first, second = axes
    row_values = list(dict.fromkeys((r.params or {}).get(first, "") for r in ordered))
    column_values = list(dict.fromkeys((r.params or {}).get(second, "") for r in ordered))
    cells = {((r.params or {}).get(first, ""), (r.params or {}).get(second, "")): row(r, now) for r in ordered}
    return Grid(axes, column_values, [(value, [cells.get((value, c)) for c in column_values])
                                      for value in row_values])


def usage(records: Iterable[JobRecord], now: float | None = None) -> dict[str, Any]:
    """GPU-hours and catalog cost per backend per UTC day (a job counts on the day it started),
    shaped for a stacked bar chart: {"days": [...], "backends": {name: {"gpu_hours": [...], "cost": [...]}}}."""
    table: dict[str, dict[str, list[float]]] = {}
    for record in records:
        ran = ran_seconds(record, now)
        if ran is None or record.started_at is None:
            continue
        day = datetime.fromtimestamp(record.started_at, tz=UTC).strftime("%Y-%m-%d")
        cell = table.setdefault(record.backend, {}).setdefault(day, [0.0, 0.0])
        cell[0] += gpus(record) * ran / 3600
        cell[1] += spent_usd(record, now) or 0.0
    days = sorted({day for by_day in table.values() for day in by_day})
    return {"days": days, "backends": {
        name: {"gpu_hours": [round(by_day.get(d, [0.0, 0.0])[0], 3) for d in days],
               "cost": [round(by_day.get(d, [0.0, 0.0])[1], 2) for d in days]}
        for name, by_day in sorted(table.items())}}


def console_url(record: JobRecord) -> str | None:
    """The provider's page for the job, when it is an http(s) URL: a stored `javascript:` or `data:`
    value (read back from a provider) never becomes a link."""
    url = (record.url or "").strip()
    try:
        scheme = urlparse(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in ("http", "https") else None


class Redactor:
    """Replaces the values of the job's `secrets:` (as this server's environment holds them) in any
    text bound for a page. The store and the rendered request hold names and masks only; this is for
    what the job itself printed, or a value that reached a message."""

    def __init__(self, record: JobRecord, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        names = record.spec.get("secrets") or []
        values = {environ.get(name, "") for name in names if isinstance(name, str)}
        values = {v for v in values if len(v) >= MIN_SECRET_LEN}
        values |= {json.dumps(v, ensure_ascii=False)[1:-1] for v in values}  # as it reads inside JSON text
        self.values = sorted(values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self.values:
            text = text.replace(value, MASK)
        return text

    def json(self, value: Any) -> str:
        """Pretty JSON of `value`, redacted."""
        return self(json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False))
