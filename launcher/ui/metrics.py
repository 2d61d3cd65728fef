"""Training metrics read out of log lines, for the job page's chart.

Two shapes are common enough to find without configuration: `key=value` pairs (`step=10 loss=0.31
lr=3e-4`, and the lines the azure_openai backend writes from a fine-tune's result file, `metrics step
3: train_loss=0.5`) and JSON objects, one per line (`{"step": 10, "loss": 0.31}`). A line's step is
its `step`/`epoch`/`iter`/`iteration` value; without one, the count of lines that carried the metric.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable

_PAIR = re.compile(r"(?<![\w.-])([A-Za-z_][\w./-]{0,63})\s*[=:]\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?![\w.])")
_STEP_WORD = re.compile(r"\b(?:step|iter|iteration)\s+(\d+)\b", re.IGNORECASE)
STEP_KEYS = ("step", "global_step", "iter", "iteration", "epoch")
MAX_SERIES = 12  # a line full of numbers (a config dump) must not turn into a hundred lines on one chart
MAX_POINTS = 5000  # per series: the chart stays readable and the page small; later points win


def parse_line(text: str) -> tuple[float | None, dict[str, float]]:
    """(the line's step or None, {metric: value}); ({} when the line carries none)."""
    text = text.strip()
    values: dict[str, float] = {}
    if text.startswith("{") and text.endswith("}"):
        try:
            found = json.loads(text)
        except ValueError:
            found = None
        if isinstance(found, dict):
            values = {str(k): float(v) for k, v in found.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)}
    else:
        values = {k: float(v) for k, v in _PAIR.findall(text)}
        if "step" not in values and (word := _STEP_WORD.search(text)):
            values["step"] = float(word.group(1))
    values = {k: v for k, v in values.items() if math.isfinite(v)}
    step = next((values.pop(k) for k in STEP_KEYS if k in values), None)
    for key in STEP_KEYS:
        values.pop(key, None)
    return step, values


def series(lines: Iterable[str]) -> dict[str, list[tuple[float, float]]]:
    """{metric: [(step, value), ...]} over all lines, in log order; at most MAX_SERIES metrics (the
    first seen) and the last MAX_POINTS points of each."""
    out: dict[str, list[tuple[float, float]]] = {}
    counts: dict[str, int] = {}
    for line in lines:
        step, values = parse_line(line)
        for name, value in values.items():
            if name not in out and len(out) >= MAX_SERIES:
                continue
            counts[name] = counts.get(name, 0) + 1
            points = out.setdefault(name, [])
            points.append((step if step is not None else float(counts[name]), value))
            if len(points) > 2 * MAX_POINTS:
                del points[:-MAX_POINTS]
    return {name: points[-MAX_POINTS:] for name, points in out.items()}
