"""`launch catalog --refresh`: current list prices from the providers' public price lists, kept in
the user's price cache ($LAUNCH_HOME/prices/<backend>.json) that `launch plan` and `launch catalog`
read over the shipped catalog.

The shipped catalog stays the offline default; a refresh only ever replaces a backend's cache
as a whole, and only after every page of its price list was read and understood: the new file
is written beside the old one and renamed over it, so a malformed or cut-off page leaves the
previous cache as it was. Each backend reads its own provider's format (its `price_list`
hook); this module does the HTTP (urllib: the base install needs nothing more), the checks
every price gets, and the cache.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from launcher import config, logs, progress
from launcher.errors import BackendError, LaunchError, UsageError

CACHE_VERSION = 1
MAX_PAGE_BYTES = 512 * 1024 * 1024  # an AWS offer file for one region is tens of MB; anything far past is not one
TIMEOUT_S = 60.0


class PriceListError(BackendError):
    """A price list could not be read or did not hold what its format promises; the cache is untouched."""


class PriceListSkipped(LaunchError):
    """The price list needs something not set here (an API key): skipped, not failed."""


@dataclass(frozen=True)
class Price:
    """One instance type's list price in one region, as a refresh found it."""

    instance_type: str
    region: str
    ondemand_usd_hr: float | None
    spot_usd_hr: float | None
    source: str
    as_of: str
    note: str = ""
    # where one machine type carries different GPUs (Vertex: n1-standard-8 with a T4 or a V100), which
    provider_accelerator: str = ""


def cache_dir() -> Path:
    return config.home() / "prices"


def cache_file(backend: str) -> Path:
    return cache_dir() / f"{backend}.json"


def cached(backend: str) -> tuple[Price, ...]:
    """The backend's refreshed prices, or none. A cache that cannot be read is reported and
    ignored (the shipped prices stand), never a reason for plan to fail."""
    path = cache_file(backend)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    except (OSError, ValueError) as exc:
        logs.get().warning("ignoring the price cache %s (%s); `launch catalog --refresh -b %s` rewrites it",
                           path, exc, backend)
        return ()
    try:
        if data.get("version") != CACHE_VERSION:
            return ()
        return tuple(_checked(Price(**row), f"{path}") for row in data["prices"])
    except (AttributeError, KeyError, TypeError, PriceListError) as exc:
        logs.get().warning("ignoring the price cache %s (%s)", path, exc)
        return ()


def write_cache(backend: str, rows: Iterable[Price], fetched_from: Iterable[str]) -> Path:
    """Replace the backend's cache at once: a temporary file in the same directory, renamed over."""
    directory = cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"version": CACHE_VERSION, "backend": backend, "refreshed": date.today().isoformat(),
               "fetched_from": sorted(set(fetched_from)), "prices": [asdict(row) for row in rows]}
    handle, temporary = tempfile.mkstemp(prefix=f".{backend}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, cache_file(backend))
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return cache_file(backend)


def _checked(price: Price, where: str) -> Price:
    """A price a refresh may keep: positive, finite, in USD per hour (the reader converted units)."""
    for field, value in (("ondemand_usd_hr", price.ondemand_usd_hr), ("spot_usd_hr", price.spot_usd_hr)):
        if value is not None and (not isinstance(value, (int, float)) or not 0 < value < 100_000):
            raise PriceListError(f"{where}: {price.instance_type} {field} {value!r} is not a price per hour")
    if price.ondemand_usd_hr is None and price.spot_usd_hr is None:
        raise PriceListError(f"{where}: {price.instance_type} has no price")
    if not price.instance_type or not price.region:
        raise PriceListError(f"{where}: a price without an instance type or region")
    return price


class Fetcher:
    """GETs JSON pages for a backend's `price_list`, saying what it fetches (stderr), with a
    timeout and a size limit; every failure is a PriceListError naming the URL."""

    def __init__(self, say: Callable[[str], None] | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.say = say or (lambda line: print(line, file=sys.stderr))
        self.timeout_s = timeout_s
        self.fetched: list[str] = []

    def json(self, url: str, params: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None, what: str = "") -> Any:
        full = url + ("&" if "?" in url else "?") + urllib.parse.urlencode(params) if params else url
        shown = _without_query(full)
        with progress.step(f"downloading {what or shown}"):
            try:
                request = urllib.request.Request(full, headers={"Accept": "application/json", **(headers or {})})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    body = response.read(MAX_PAGE_BYTES + 1)
            except urllib.error.HTTPError as exc:
                raise PriceListError(f"{shown} answered HTTP {exc.code}", _hint(exc.code)) from None
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise PriceListError(f"cannot fetch {shown}: {reason}",
                                     "check the network, or the URL override") from None
        if len(body) > MAX_PAGE_BYTES:
            raise PriceListError(f"{shown} sent more than {MAX_PAGE_BYTES // 2**20} MiB; not a price list page")
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise PriceListError(f"{shown} did not send JSON ({exc}); the page may be cut off") from None
        self.fetched.append(shown)
        size = f"{len(body) / 2**20:.1f} MB" if len(body) >= 2**20 else f"{len(body) / 1024:.0f} kB"
        self.say(f"  {what or shown}: {size}")
        return data


def _without_query(url: str) -> str:
    """The URL as shown and recorded: no query string, which may hold an API key."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _hint(status: int) -> str:
    if status in (401, 403):
        return "the price list refused the key: check it (the shipped prices stay in use)"
    if status == 429:
        return "the price list is throttling: try again in a minute"
    return "try again later; the shipped or previously refreshed prices stay in use"


def endpoint(env_name: str, default: str) -> str:
    """A price list's base URL: the default, or the override in `env_name` (tests point it at a
    local fake; a mirror or proxy works the same way). Only http(s) URLs are taken."""
    value = os.environ.get(env_name, "").strip() or default
    if urllib.parse.urlsplit(value).scheme not in ("http", "https"):
        raise UsageError(f"{env_name}={value!r} is not an http(s) URL", f"unset it, or give a URL like {default}")
    return value.rstrip("/")


def refresh(names: list[str], say: Callable[[str], None]) -> tuple[list[tuple[str, str]], set[str]]:
    """Refresh each named backend's cache: (backend, what happened) per backend, and the backends
    that failed. A backend whose price list fails keeps its previous cache and is reported; the
    others still refresh."""
    from launcher import catalog, registry
    from launcher.runner import merged_settings

    outcomes = []
    failed: set[str] = set()
    for name in names:
        backend_class = registry.backend_class(name)
        shipped = catalog.backend_offers(name)
        known = sorted({o.instance_type for o in shipped})
        regions = sorted({o.region for o in shipped if o.region and o.region != "all"})
        fetcher = Fetcher(say)
        say(f"{name}: reading its price list")
        try:
            found = backend_class.price_list(merged_settings(name, None), fetcher, known, regions)
        except UsageError:  # the user's own setting (an override URL) is wrong: one clear error, exit 2
            raise
        except PriceListSkipped as exc:
            outcomes.append((name, f"skipped: {exc.message}" + (f"; {exc.hint}" if exc.hint else "")))
            continue
        except LaunchError as exc:
            failed.add(name)
            outcomes.append((name, f"not refreshed: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")))
            continue
        if found is None:
            outcomes.append((name, "has no public price list; the shipped prices stay in use"))
            continue
        try:
            rows = [_checked(price, name) for price in found if price.instance_type in known]
        except PriceListError as exc:
            failed.add(name)
            outcomes.append((name, f"not refreshed: {exc.message}"))
            continue
        if not rows:
            failed.add(name)
            outcomes.append((name, "not refreshed: the price list named none of its catalog's instance types"))
            continue
        path = write_cache(name, rows, fetcher.fetched)
        outcomes.append((name, f"{len(rows)} prices for {len({r.instance_type for r in rows})} instance types "
                               f"-> {path}"))
    return outcomes, failed


def hours_per(unit: str) -> float:
    """How many hours one `unit` is, for a price list that prices per hour, minute or second."""
    key = unit.strip().lower().removeprefix("1 ").removeprefix("1/").strip()
    table = {"hour": 1.0, "hours": 1.0, "hrs": 1.0, "hr": 1.0, "h": 1.0,
             "minute": 1 / 60, "minutes": 1 / 60, "min": 1 / 60,
             "second": 1 / 3600, "seconds": 1 / 3600, "s": 1 / 3600, "sec": 1 / 3600}
    if key not in table:
        raise PriceListError(f"price unit {unit!r} is not a unit of time", "this price list format is not understood")
    return table[key]


def usd(currency: str, where: str) -> None:
    if currency.upper() != "USD":
        raise PriceListError(f"{where}: prices in {currency!r}, not USD", "ask the price list for USD prices")
