"""Training prices per 1M tokens (prices.csv, each row with its source and date), for `launch status`
(trained tokens x price) and `launch plan` (the JSONL files' token estimate x epochs x price)."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

PRICES_CSV = Path(__file__).with_name("prices.csv")


@functools.cache
def rows() -> tuple[dict[str, str], ...]:
    with PRICES_CSV.open(newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


def training_price(backend: str, model: str) -> dict[str, str] | None:
    """The row for a base model (the longest matching model prefix: gpt-4o-mini-2024-07-18 is gpt-4o-mini's)."""
    found = [r for r in rows() if r["backend"] == backend and model.startswith(r["model"]) and r["usd_per_1m"]]
    return max(found, key=lambda r: len(r["model"])) if found else None


def usd_per_1m(backend: str, model: str) -> float | None:
    row = training_price(backend, model)
    return float(row["usd_per_1m"]) if row else None
