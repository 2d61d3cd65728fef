"""Text views for the terminal: a table for list, plan and catalog, a block for status.

Each view is built once as plain cells; `write` prints it as aligned plain text when stdout
is a pipe or file (byte-stable for scripts, and `rich` is never imported), and with `rich`
when stdout is a terminal: states in colour, tables that fit the terminal's width.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

# the colour each state gets on a terminal
STATE_STYLES = {"SUCCEEDED": "green", "FAILED": "bold red", "CANCELLED": "yellow", "CANCELLING": "yellow",
                "RUNNING": "cyan", "STARTING": "cyan", "PENDING": "blue", "UNKNOWN": "magenta"}


@dataclass(frozen=True)
class Table:
    """Rows of cells (the first is the header) and an optional line under them."""

    rows: list[tuple[str, ...]]
    footer: str = ""
    state_column: int | None = None  # coloured by STATE_STYLES on a terminal
    wrap_column: int | None = None   # the one column that wraps on a narrow terminal; the others never do

    def plain(self) -> str:
        return columns(self.rows) + (f"\n{self.footer}" if self.footer else "")


def to_terminal() -> bool:
    return sys.stdout.isatty()


def write(view: Table | str) -> None:
    """Print a view to stdout: plain text for pipes and files, rich on a terminal."""
    if not to_terminal():
        print(view.plain() if isinstance(view, Table) else view, flush=True)
        return
    console = _console()
    if isinstance(view, str):
        console.print(view, markup=False, highlight=False)
        return
    from rich.table import Table as RichTable

    header, *body = view.rows
    table = RichTable(box=None, pad_edge=False, show_edge=False, header_style="bold", padding=(0, 2, 0, 0))
    for i, title in enumerate(header):
        table.add_column(title, no_wrap=i != view.wrap_column, overflow="fold" if i == view.wrap_column else "ellipsis",
                         ratio=1 if i == view.wrap_column else None)
    for row in body:
        table.add_row(*(_cell(text, STATE_STYLES.get(text.split(":")[0]) if i == view.state_column else None)
                        for i, text in enumerate(row)))
    console.print(table)
    if view.footer:
        console.print(view.footer, markup=False, highlight=False, style="dim")


def write_status(record: Any) -> None:
    """`launch status`: the block from `describe`, its state line in colour on a terminal."""
    text = describe(record)
    if not to_terminal():
        print(text, flush=True)
        return
    from rich.text import Text

    out = Text()
    for line in text.split("\n"):
        style = STATE_STYLES.get(record.state.value) if line.startswith("state:") else None
        out.append(line + "\n", style=style)
    out.rstrip()
    _console().print(out, highlight=False)


def say_state(line: str, state: str) -> None:
    """A line about a job's state on stderr (where progress goes), in the state's colour on a terminal."""
    if not sys.stderr.isatty():
        print(line, file=sys.stderr, flush=True)
        return
    from rich.text import Text

    _console(stderr=True).print(Text(line, style=STATE_STYLES.get(state, "")))


def _console(*, stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, stderr=stderr)


def _cell(text: str, style: str | None) -> Any:
    from rich.text import Text

    return Text(text, style=style or "")


def age(timestamp: float | None, now: float | None = None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0, int((now or time.time()) - timestamp))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def job_table(records: list[Any]) -> Table | str:
    """`launch list`; a POINT column (the sweep's values) only when some listed job has one, and a BY
    column (who submitted it, from where) when the history is a team's shared store."""
    if not records:
        return "no jobs yet; try: launch run job_specs/quickstart.yaml --follow"
    now = time.time()
    points = any(r.params for r in records)
    by = any(r.shared for r in records)
    rows = [("JOB", *(("POINT",) if points else ()), "BACKEND", "STATE", "CREATED", *(("BY",) if by else ()),
             "MESSAGE")]
    for r in records:
        message = (r.message or "").splitlines()[0][:60] if r.message else ""
        who = f"{r.submitted_by or '?'}@{r.submitted_host or '?'}" + (" (ci)" if r.ci_url else "")
        rows.append((r.id, *((r.label or "-",) if points else ()), r.backend, r.state.value,
                     age(r.created_at, now), *((who,) if by else ()), message))
    return Table(rows, state_column=3 if points else 2, wrap_column=len(rows[0]) - 1)


def describe(record: Any) -> str:
    from launcher.durations import format_seconds

    lines = [
        f"job:      {record.id}",
        f"name:     {record.name}",
        *([f"point:    {record.label}"] if record.params else []),
        f"backend:  {record.backend}",
        f"state:    {record.state.value}" + (f" ({record.raw_state})" if record.raw_state else ""),
    ]
    if record.exit_code is not None:
        lines.append(f"exit:     {record.exit_code}")
    lines.append(f"created:  {age(record.created_at)}")
    if record.submitted_by or record.submitted_host:
        lines.append(f"by:       {record.submitted_by or '?'}@{record.submitted_host or '?'}")
    if record.ci_url:
        lines.append(f"ci run:   {record.ci_url}")
    if record.est_cost_usd is not None:
        lines.append(f"estimate: {money(record.est_cost_usd)} (catalog price x nodes x max_runtime)")
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


def plan_table(rows: list[Any], spec: Any) -> Table:
    """`launch plan`: the rows that fit first; cost is for max_runtime when the spec has one. Each
    price shows its as-of date ("old" past catalog.STALE_AFTER_DAYS); the footer names the answer."""
    from launcher.durations import format_seconds
    from launcher.plan import THIS_MACHINE

    hours = f"EST {format_seconds(spec.max_runtime)}" if spec.max_runtime else "EST (no max_runtime)"
    price = "SPOT $/H" if spec.spot else "$/H"
    out = [("BACKEND", "INSTANCE", "GPUS", price, hours, "PRICE AS OF", "READY", "NOTE")]
    for row in rows:
        if not row.fits:
            out.append((row.backend, "-", "-", "-", "-", "-", "no", f"cannot run: {row.reason}"))
            continue
        instance = row.instance_type or "(your machines)"
        if row.nodes > 1 and instance != THIS_MACHINE:
            instance += f" x {row.nodes}"
        notes = [row.reason] if row.reason else []
        if not row.configured:
            notes.append(f"not configured: {row.config_detail}" if row.config_detail else "not configured")
        if row.capacity is not None:
            regions = [r for r, ok in row.capacity.items() if ok]
            notes.append("capacity now: " + (", ".join(regions) if regions else "none"))
        priced = row.instance_type not in (None, THIS_MACHINE) and row.price_as_of is not None
        hourly = money(row.hourly_usd) if row.hourly_usd is not None else ("no price" if priced else "-")
        estimate = "~" if row.price_estimate else ""
        out.append((row.backend, instance, str(row.gpus), estimate + hourly,
                    estimate + money(row.est_cost_usd) if row.est_cost_usd is not None else "-",
                    _as_of(row), "yes" if row.configured else "no", "; ".join(notes)))
    footer = [_answer(rows, spec)]
    if any(row.fits and row.price_estimate for row in rows):
        footer.append("~ an estimate, not the provider's list price (see the NOTE)")
    if any(row.fits and row.price_old for row in rows):
        footer.append("(old): the price is over 90 days old; `launch catalog --refresh` updates it")
    footer.append("prices: list prices for all nodes (launch catalog shows each source)")
    return Table(out, "\n".join(footer), wrap_column=len(out[0]) - 1)


def _as_of(row: Any) -> str:
    if not row.price_as_of:
        return "-"
    return row.price_as_of + (" (old)" if row.price_old else "") + (" refreshed" if row.price_refreshed else "")


def _answer(rows: list[Any], spec: Any) -> str:
    """The line that answers "which provider fits": the cheapest ready option, else the cheapest
    that fits once set up, else that nothing does."""
    from launcher.plan import cheapest_fitting, cheapest_ready

    best = cheapest_ready(rows)

    def total(row: Any) -> str:
        return f", {money(row.est_cost_usd)} for {_runtime(spec)}" if row.est_cost_usd is not None else ""

    if best is not None:
        return (f"cheapest ready: {best.backend} ({best.instance_type}"
                f"{f' x {best.nodes}' if best.nodes > 1 else ''}) at {money(best.hourly_usd)}/h{total(best)}")
    fitting = cheapest_fitting(rows)
    if fitting is not None:
        why = f"needs {fitting.needs}" if fitting.needs else "not configured here; its NOTE says what to set"
        return (f"no ready backend fits with a known price; cheapest that fits: {fitting.backend} at "
                f"{money(fitting.hourly_usd)}/h{total(fitting)} ({why})")
    return "no backend fits this spec with a known price"


def _runtime(spec: Any) -> str:
    from launcher.durations import format_seconds

    return format_seconds(spec.max_runtime) if spec.max_runtime else "max_runtime"


def catalog_table(offers: list[Any]) -> Table:
    out = [("BACKEND", "ACCELERATOR", "INSTANCE", "VCPUS", "MEM GB", "$/H", "SPOT $/H", "REGION", "AS OF")]
    for o in offers:
        mark = "~" if o.estimate else ""
        when = o.as_of + (" (old)" if o.stale() else "") + (" refreshed" if o.refreshed else "")
        out.append((o.backend, f"{o.accelerator}:{o.count}", o.instance_type, _number(o.vcpus),
                    _number(o.memory_gb), mark + money(o.ondemand_usd_hr) if o.ondemand_usd_hr else "no price",
                    mark + money(o.spot_usd_hr) if o.spot_usd_hr else "-", o.region, when))
    notes = []
    if any(o.estimate for o in offers):
        notes.append("~ an estimate, not the provider's list price (`-o json` shows each row's note and source)")
    if any(o.stale() for o in offers):
        notes.append("(old): over 90 days old; `launch catalog --refresh` updates what has a public price list")
    return Table(out, "\n".join(notes))


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
