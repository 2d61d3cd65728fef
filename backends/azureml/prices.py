"""Azure ML compute prices from the Azure Retail Prices API (no account needed). Azure ML bills
its compute clusters at the virtual machine's own rate, so the prices are those of the
'Virtual Machines' service: Linux (a product whose name ends in 'Windows' is not), pay as you
go ('Consumption'), the plain meter for dedicated nodes and the 'Spot' meter for spot. Results
come in pages of 100 linked by NextPageLink."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from launcher.prices import Fetcher, Price, PriceListError, endpoint, hours_per, usd

DEFAULT_URL = "https://prices.azure.com/api/retail/prices"
URL_ENV = "LAUNCH_AZURE_RETAIL_PRICES_URL"
API_VERSION = "2023-01-01-preview"
MAX_PAGES = 100  # a filter naming our sizes in one region returns a few pages; more means a loop


def price_list(settings: Mapping[str, Any], fetch: Fetcher, instance_types: Sequence[str],
               regions: Sequence[str]) -> list[Price]:
    base = endpoint(URL_ENV, DEFAULT_URL)
    found: list[Price] = []
    for region in regions:
        items = _items(fetch, base, region, instance_types)
        found.extend(vm_prices(items, region, set(instance_types), DEFAULT_URL))
    return found


def retail_filter(region: str, sizes: Sequence[str]) -> str:
    names = " or ".join(f"armSkuName eq '{size}'" for size in sizes)
    return (f"serviceName eq 'Virtual Machines' and priceType eq 'Consumption' and armRegionName eq '{region}'"
            f" and ({names})")


def _items(fetch: Fetcher, base: str, region: str, sizes: Sequence[str]) -> list[dict[str, Any]]:
    """Every item of every page; a page that is not the API's shape fails the whole refresh."""
    url: str | None = base
    params: dict[str, str] | None = {"api-version": API_VERSION, "currencyCode": "USD",
                                     "$filter": retail_filter(region, sizes)}
    items: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        data = fetch.json(url or base, params, what=f"Azure retail prices, {region}, page {page}")
        if not isinstance(data, dict) or not isinstance(data.get("Items"), list):
            raise PriceListError(f"{base}: page {page} for {region} has no Items list; it may be cut off")
        usd(str(data.get("BillingCurrency") or "USD"), f"{base} page {page}")
        items.extend(item for item in data["Items"] if isinstance(item, dict))
        url, params = data.get("NextPageLink"), None
        if not url:
            return items
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PriceListError(f"{base}: page {page} links to {url!r}, not a page")
    raise PriceListError(f"{base}: more than {MAX_PAGES} pages for {region}", "narrow the query, or try later")


def vm_prices(items: Sequence[Mapping[str, Any]], region: str, sizes: set[str], source: str) -> list[Price]:
    ondemand: dict[str, float] = {}
    spot: dict[str, float] = {}
    for item in items:
        size = str(item.get("armSkuName") or "")
        if (size not in sizes or item.get("armRegionName") != region or item.get("type") != "Consumption"
                or str(item.get("productName") or "").endswith("Windows")):
            continue
        usd(str(item.get("currencyCode") or ""), f"{source} {size}")
        try:
            hourly = float(item["retailPrice"]) / hours_per(str(item.get("unitOfMeasure") or ""))
        except (KeyError, TypeError, ValueError):
            raise PriceListError(f"{source}: {size} has no retailPrice number") from None
        meter = str(item.get("skuName") or "")
        if meter.endswith(" Spot"):
            spot[size] = hourly
        elif not meter.endswith(" Low Priority") and hourly > 0:
            ondemand[size] = hourly
    today = date.today().isoformat()
    return [Price(size, region, ondemand.get(size), spot.get(size), source, today)
            for size in sorted(set(ondemand) | set(spot))]
