"""Text views of job records for the terminal: a table for list, a block for status."""

from __future__ import annotations

import time
from typing import Any


def age(timestamp: float | None, now: float | None = None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0, int((now or time.time()) - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def table(records: list[Any]) -> str:
    if not records:
        return "no jobs yet; try: launch run job_specs/quickstart.yaml --follow"
    now = time.time()
    rows = [("JOB", "BACKEND", "STATE", "CREATED", "MESSAGE")]
    for r in records:
        message = (r.message or "").splitlines()[0][:60] if r.message else ""
        rows.append((r.id, r.backend, r.state.value, age(r.created_at, now), message))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    ).rstrip()


def describe(record: Any) -> str:
    from launcher.durations import format_seconds

    lines = [
        f"job:      {record.id}",
        f"name:     {record.name}",
        f"backend:  {record.backend}",
        f"state:    {record.state.value}" + (f" ({record.raw_state})" if record.raw_state else ""),
    ]
    if record.exit_code is not None:
        lines.append(f"exit:     {record.exit_code}")
    lines.append(f"created:  {age(record.created_at)}")
    if record.started_at and record.ended_at:
        lines.append(f"ran:      {format_seconds(record.ended_at - record.started_at)}")
    if record.url:
        lines.append(f"url:      {record.url}")
    if record.message:
        lines.append("message:  " + record.message.replace("\n", "\n          "))
    return "\n".join(lines)
