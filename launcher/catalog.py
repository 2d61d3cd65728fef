"""Accelerator requests -> each backend's instance type and price, from the rows each backend ships.

Prices belong to the backend that knows the provider, so a backend installed from
another package brings its own: every installed backend's `catalog_rows()` is merged
here, in registry order. A backend keeps its rows in a CSV next to its module (one
source and as-of date per row, so a price can be checked and refreshed without
reading code) and reads it with `rows_from_csv`. Within a backend, the first row for
an (accelerator, count) is the default a user asking for that accelerator gets.

Prices a user refreshed (`launch catalog --refresh`, launcher/prices.py) overlay the shipped
ones in `priced_offers` only: plan and `launch catalog` show them, while renders keep choosing
the machine from the shipped rows, so a price list never changes which machine a job gets.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

from launcher.accelerators import Accelerator
from launcher.errors import LaunchError

# the columns of a catalog row (a backend's CSV header); the backend is the one that ships it
COLUMNS = ("accelerator", "count", "instance_type", "provider_accelerator", "vcpus", "memory_gb",
           "ondemand_usd_hr", "spot_usd_hr", "region", "source", "as_of")
# an optional column: what a reader of the price should know (a note starting "estimate" marks a
# figure that is not the provider's own list price for this product; plan marks it so)
NOTE = "note"
# a price older than this is marked as old by `launch plan` and `launch catalog`
STALE_AFTER_DAYS = 90
# the setting that pins the machine on a backend that declares no `pinned_type_setting`
DEFAULT_PINNED_SETTING = "instance_type"


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
    note: str = ""
    refreshed: bool = False  # the price came from the user's refreshed cache, not the shipped row

    @property
    def estimate(self) -> bool:
        """The price is an estimate (the row's note says so), not the provider's list price."""
        return self.note.lower().startswith("estimate")

    def stale(self, today: date | None = None) -> bool:
        """Older than STALE_AFTER_DAYS, or without a readable date: worth a refresh before trusting."""
        try:
            when = date.fromisoformat(self.as_of[:10])
        except ValueError:
            return True
        return ((today or date.today()) - when).days > STALE_AFTER_DAYS


class SourcedRow(dict[str, str]):
    """A catalog row that remembers where it was read (file:line), so a bad value is reported there."""

    def __init__(self, values: Mapping[str, str], where: str) -> None:
        super().__init__(values)
        self.where = where


@functools.cache
def rows_from_csv(path: Path) -> tuple[SourcedRow, ...]:
    """A backend's catalog CSV (header: COLUMNS) as rows for its `catalog_rows()`: the one reader
    every backend uses, so the file format is defined here only."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise CatalogError(f"{path}:1: the catalog header lacks {', '.join(missing)}",
                               f"the header must name {','.join(COLUMNS)}")
        return tuple(SourcedRow(row, f"{path}:{reader.line_num}") for row in reader)


def _number(text: str | None, field: str, where: str) -> float | None:
    if text is None or not str(text).strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise CatalogError(f"{where}: {field} {text!r} is not a number",
                           "fix the row, or reinstall the backend's package") from None


def _offer(backend: str, row: Mapping[str, str], where: str) -> Offer:
    if extra := row.get(None):  # type: ignore[arg-type]  # csv.DictReader keeps fields past the header under None
        raise CatalogError(f"{where}: the row has {len(extra)} field(s) more than the header, so its note was cut "
                           "at a comma", 'put the note in double quotes ("...") when it holds a comma')
    missing = [c for c in ("accelerator", "count", "instance_type") if not str(row.get(c) or "").strip()]
    if missing:
        raise CatalogError(f"{where}: the row has no {', '.join(missing)}",
                           f"every catalog row names {', '.join(COLUMNS)}")
    count = _number(row["count"], "count", where)
    if count is None or count != int(count) or count < 1:
        raise CatalogError(f"{where}: count {row['count']!r} is not a whole number of GPUs", "fix the row")
    return Offer(
        backend=backend, accelerator=str(row["accelerator"]), count=int(count),
        instance_type=str(row["instance_type"]), provider_accelerator=str(row.get("provider_accelerator") or ""),
        vcpus=_number(row.get("vcpus"), "vcpus", where), memory_gb=_number(row.get("memory_gb"), "memory_gb", where),
        ondemand_usd_hr=_number(row.get("ondemand_usd_hr"), "ondemand_usd_hr", where),
        spot_usd_hr=_number(row.get("spot_usd_hr"), "spot_usd_hr", where),
        region=str(row.get("region") or ""), source=str(row.get("source") or ""), as_of=str(row.get("as_of") or ""),
        note=str(row.get(NOTE) or ""),
    )


@functools.cache
def backend_offers(name: str) -> tuple[Offer, ...]:
    """One backend's rows (from its `catalog_rows()`), loading that backend's class only: a render
    asks here, so a dry run on one backend imports no other. Loading a class imports no SDK; a backend
    that fails to load has no rows (`launch plan` and `launch backends` say why)."""
    from launcher import registry

    try:
        backend_class = registry.backend_class(name)
    except LaunchError:
        return ()
    return tuple(_offer(name, row, getattr(row, "where", f"backend {name!r}'s catalog row {number}"))
                 for number, row in enumerate(backend_class.catalog_rows(), 1))


def offers() -> tuple[Offer, ...]:
    """Every installed backend's rows, merged in registry order."""
    from launcher import registry

    return tuple(offer for name in registry.names() for offer in backend_offers(name))


def priced_offers(name: str) -> tuple[Offer, ...]:
    """One backend's rows with the user's refreshed prices laid over them: a refreshed price for an
    instance type in the row's region replaces the shipped one (a field the price list does not
    give, such as SageMaker's spot price, stays shipped); prices for other regions follow as rows
    of their own, so `--region` can pick them. Types the shipped catalog lacks are left out:
    only the backend knows their GPUs."""
    from launcher import prices

    shipped = backend_offers(name)
    refreshed = prices.cached(name)
    if not refreshed:
        return shipped
    by_type: dict[str, list[prices.Price]] = {}
    for price in refreshed:
        by_type.setdefault(price.instance_type, []).append(price)
    out: list[Offer] = []
    seen: set[tuple[str, str, str]] = set()
    for offer in shipped:
        found = [p for p in by_type.get(offer.instance_type, [])
                 if p.provider_accelerator in ("", offer.provider_accelerator)]
        here = [p for p in found if p.region == offer.region]
        out.append(_overlaid(offer, here[0]) if here else offer)
        seen.add((offer.instance_type, offer.provider_accelerator, offer.region))
        for price in found:
            if (price.instance_type, offer.provider_accelerator, price.region) not in seen:
                seen.add((price.instance_type, offer.provider_accelerator, price.region))
                out.append(_overlaid(replace(offer, ondemand_usd_hr=None, spot_usd_hr=None), price))
    return tuple(out)


def _overlaid(offer: Offer, price: Any) -> Offer:
    ondemand = price.ondemand_usd_hr if price.ondemand_usd_hr is not None else offer.ondemand_usd_hr
    spot = price.spot_usd_hr if price.spot_usd_hr is not None else offer.spot_usd_hr
    return replace(offer, region=price.region, source=price.source, as_of=price.as_of, note=price.note,
                   refreshed=True, ondemand_usd_hr=ondemand, spot_usd_hr=spot)


def all_priced_offers() -> tuple[Offer, ...]:
    """Every installed backend's rows with refreshed prices (`launch catalog`)."""
    from launcher import registry

    return tuple(offer for name in registry.names() for offer in priced_offers(name))


def priced(offer: Offer, region: str | None = None) -> Offer | None:
    """The priced row for `offer`'s instance type: in `region` when given (None when the catalog
    has no row there; a row for "all" regions serves any), else in the offer's own region."""
    rows = [o for o in priced_offers(offer.backend)
            if (o.instance_type, o.provider_accelerator) == (offer.instance_type, offer.provider_accelerator)]
    if region is None:
        return next((o for o in rows if o.region == offer.region), offer)
    return next((o for o in rows if o.region == region), next((o for o in rows if o.region == "all"), None))


def find(backend: str, accelerator: Accelerator) -> list[Offer]:
    """Every offer for exactly this accelerator and per-node count, default first."""
    return [o for o in backend_offers(backend) if o.accelerator == accelerator.type and o.count == accelerator.count]


def pinned_setting(backend: str) -> str:
    """`backends.<backend>.<this>` pins the machine instead of the catalog: the backend declares it
    (`pinned_type_setting`), so hints name the setting that backend has. Loading the class imports no SDK."""
    from launcher import registry

    try:
        backend_class = registry.backend_class(backend)
    except LaunchError:  # not installed here, or a name only tests use
        return DEFAULT_PINNED_SETTING
    return backend_class.pinned_type_setting


def lookup(backend: str, accelerator: Accelerator) -> Offer:
    """The default offer, or a CatalogError that lists what this backend does have."""
    found = find(backend, accelerator)
    if found:
        return found[0]
    on_backend = backend_offers(backend)
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
