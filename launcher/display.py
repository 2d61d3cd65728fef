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
    return columns(rows)


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


def columns(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    if not rows:
        return ""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join([*(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])), row[-1]]).rstrip()
                     for row in rows)


def money(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"${value:,.2f}{suffix}"


def plan_table(rows: list[Any], spec: Any) -> str:
    """`launch plan`: the rows that fit first; cost is for max_runtime when the spec has one."""
    from launcher.durations import format_seconds

    hours = f"EST {format_seconds(spec.max_runtime)}" if spec.max_runtime else "EST (no max_runtime)"
    price = "SPOT $/H" if spec.spot else "$/H"
    out = [("BACKEND", "INSTANCE", "GPUS", price, hours, "READY", "NOTE")]
    for row in rows:
        if not row.fits:
            out.append((row.backend, "-", "-", "-", "-", "yes" if row.configured else "no",
                        f"cannot run: {row.reason}"))
            continue
        instance = row.instance_type or "(your machines)"
        if row.nodes > 1:
            instance += f" x {row.nodes}"
        notes = [row.reason] if row.reason else []
        if not row.configured:
            notes.append(f"not configured: {row.config_detail}" if row.config_detail else "not configured")
        if row.capacity is not None:
            regions = [r for r, ok in row.capacity.items() if ok]
            notes.append("capacity now: " + (", ".join(regions) if regions else "none"))
        out.append((row.backend, instance, str(row.gpus), money(row.hourly_usd), money(row.est_cost_usd),
                    "yes" if row.configured else "no", "; ".join(notes)))
    dates = sorted({row.price_as_of for row in rows if row.price_as_of})
    if not dates:
        return columns(out)
    span = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}"
    return columns(out) + f"\nprices: catalog list prices for all nodes, as of {span} (launch catalog)"


def catalog_table(offers: list[Any]) -> str:
    out = [("BACKEND", "ACCELERATOR", "INSTANCE", "VCPUS", "MEM GB", "$/H", "SPOT $/H", "REGION", "AS OF")]
    for o in offers:
        out.append((o.backend, f"{o.accelerator}:{o.count}", o.instance_type, _number(o.vcpus),
                    _number(o.memory_gb), money(o.ondemand_usd_hr), money(o.spot_usd_hr), o.region, o.as_of))
    return columns(out)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
