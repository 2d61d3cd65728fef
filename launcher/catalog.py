"""Accelerator requests -> each backend's instance type and price, from catalog.csv.

The data sits in a CSV with a source and a date per row, so a price can be checked
and refreshed without reading code. The first row for a (backend, accelerator,
count) is the default a user asking for that accelerator gets.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

from launcher.accelerators import Accelerator
from launcher.errors import LaunchError

CATALOG_CSV = Path(__file__).with_name("catalog.csv")


class CatalogError(LaunchError):
    """No instance type fits the request on that backend; the message lists what does."""


@dataclass(frozen=True)
class Offer:
    backend: str
    accelerator: str
    count: int
    instance_type: str
    provider_accelerator: str
    vcpus: float | None
    memory_gb: float | None
    ondemand_usd_hr: float | None
    spot_usd_hr: float | None
    region: str
    source: str
    as_of: str


def _number(text: str) -> float | None:
    return float(text) if text.strip() else None


@functools.cache
def offers() -> tuple[Offer, ...]:
    with CATALOG_CSV.open(newline="", encoding="utf-8") as handle:
        return tuple(
            Offer(
                backend=row["backend"], accelerator=row["accelerator"], count=int(row["count"]),
                instance_type=row["instance_type"], provider_accelerator=row["provider_accelerator"],
                vcpus=_number(row["vcpus"]), memory_gb=_number(row["memory_gb"]),
                ondemand_usd_hr=_number(row["ondemand_usd_hr"]), spot_usd_hr=_number(row["spot_usd_hr"]),
                region=row["region"], source=row["source"], as_of=row["as_of"],
            )
            for row in csv.DictReader(handle)
        )


def find(backend: str, accelerator: Accelerator) -> list[Offer]:
    """Every offer for exactly this accelerator and per-node count, default first."""
    return [o for o in offers() if o.backend == backend and o.accelerator == accelerator.type
            and o.count == accelerator.count]


# settings keys by which a backend lets the user pin the machine instead of the catalog
PINNED_TYPE_KEYS = ("instance_type", "machine_type")


def pinned_setting(backend: str) -> str:
    """`backends.<backend>.<this>` pins the machine: hints must name the setting the backend has
    (Vertex calls it machine_type). The settings model imports no SDK."""
    from launcher import registry

    try:
        fields = registry.settings_model(backend).model_fields
    except LaunchError:  # not installed here, or a name only tests use
        return PINNED_TYPE_KEYS[0]
    return next((key for key in PINNED_TYPE_KEYS if key in fields), PINNED_TYPE_KEYS[0])


def lookup(backend: str, accelerator: Accelerator) -> Offer:
    """The default offer, or a CatalogError that lists what this backend does have."""
    found = find(backend, accelerator)
    if found:
        return found[0]
    on_backend = [o for o in offers() if o.backend == backend]
    if not on_backend:
        raise CatalogError(f"the catalog has no instance types for backend {backend!r}")
    same_type = sorted({o.count for o in on_backend if o.accelerator == accelerator.type})
    if same_type:
        counts = ", ".join(f"{accelerator.type}:{c}" for c in same_type)
        raise CatalogError(f"{backend} has no instance type with {accelerator}; it offers {counts}",
                           "set resources.accelerators to one of those, or "
                           f"backends.{backend}.{pinned_setting(backend)}")
    kinds = sorted({f"{o.accelerator}:{o.count}" for o in on_backend})
    raise CatalogError(f"{backend} has no {accelerator.type} instance types; it offers {', '.join(kinds)}",
                       f"pick one of those, or set backends.{backend}.{pinned_setting(backend)}")


def choose(backend: str, accelerator: Accelerator, *, cpus: float | None = None,
           memory_gb: float | None = None) -> Offer:
    """The offer a spec gets on `backend`: the first for its accelerator (the default first) that
    meets the spec's cpus/memory minimums. Renders and `launch plan` both ask here, so the price
    plan shows is the machine run starts."""
    found = find(backend, accelerator)
    if not found:
        return lookup(backend, accelerator)  # raises, listing what the backend does offer
    fitting = [o for o in found if (cpus is None or o.vcpus is None or o.vcpus >= cpus)
               and (memory_gb is None or o.memory_gb is None or o.memory_gb >= memory_gb)]
    if not fitting:
        raise CatalogError(f"{backend} has no {accelerator} instance type with {cpus or 0:g}+ vCPUs and "
                           f"{memory_gb or 0:g}+ GB memory",
                           "lower resources.cpus / resources.memory_gb, or set "
                           f"backends.{backend}.{pinned_setting(backend)}")
    return fitting[0]
