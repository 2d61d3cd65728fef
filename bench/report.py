"""Markdown for benchmark sections: one table layout for every benchmark, so rows read alike."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from timing import Row, Section, Stats

SCALE = {"ms": 1000.0, "s": 1.0, "B": 1.0, "KiB": 1.0}


def value(stats: Stats | None, unit: str) -> str:
    if stats is None:
        return "n/a"
    return f"{_number(stats.median * SCALE.get(unit, 1.0), unit)} {unit}"


def _number(v: float, unit: str) -> str:
    return f"{v:,.0f}" if unit in ("B", "KiB") or v >= 100 else f"{v:.3g}"


def _spread(stats: Stats | None, unit: str) -> str:
    if stats is None:
        return "n/a"
    scale = SCALE.get(unit, 1.0)
    return f"{_number(stats.low * scale, unit)}–{_number(stats.high * scale, unit)}"


def _rss(stats: Stats | None) -> str:
    return f"{stats.peak_rss_kib / 1024:.0f}" if stats and stats.peak_rss_kib else "–"


def _ratio(row: Row) -> str:
    ratio = row.ratio
    return "n/a" if ratio is None else f"{ratio:.2f}x"


def _met(row: Row) -> str:
    return {True: "met", False: "**missed**", None: ""}[row.met]


def table(rows: list[Row]) -> str:
    lines = ["| what | ours | ours median | baseline | baseline median | ratio | spread ours / baseline "
             "(min–max) | runs | peak RSS MiB ours / baseline | goal | |",
             "|---|---|---:|---|---:|---:|---|---:|---:|---|---|"]
    for r in rows:
        runs = "/".join(str(s.runs) for s in (r.ours_stats, r.baseline_stats) if s) or "0"
        cells = [r.what + (f" ({r.note})" if r.note else ""), f"`{r.ours}`" if r.ours else "",
                 value(r.ours_stats, r.unit), f"`{r.baseline}`" if r.baseline else "",
                 value(r.baseline_stats, r.unit), _ratio(r),
                 f"{_spread(r.ours_stats, r.unit)} / {_spread(r.baseline_stats, r.unit)}", runs,
                 f"{_rss(r.ours_stats)} / {_rss(r.baseline_stats)}", r.goal, _met(r)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def section(sec: Section, level: int = 2) -> str:
    parts = [f"{'#' * level} {sec.title}", "", table(sec.rows)]
    if sec.notes:
        parts += ["", *[f"- {n}" for n in sec.notes]]
    return "\n".join(parts) + "\n"


def failed(title: str, error: BaseException) -> Section:
    """A benchmark that could not run still gets its heading, and says why."""
    return Section(title, [], [f"not measured: {type(error).__name__}: {error}"])


def script(doc: str, measure: Callable[[bool], Section], quick_help: str) -> int:
    """The `main` of a benchmark that takes only --quick: measure, print its section."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    print(section(measure(parser.parse_args().quick)))
    return 0
