"""SageMaker training prices from the AWS Price List bulk API (no account needed): the
AmazonSageMaker region index names each region's current offer file; an offer file maps
SKUs to products (attributes name the ML instance and the SageMaker component) and its
OnDemand terms to prices per unit ("Hrs"). Only training prices are kept: hosting, notebooks
and processing bill the same instance names at other rates. Managed spot training has no
list price (it follows the spot market), so the shipped spot column stays as it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from launcher.prices import Fetcher, Price, PriceListError, endpoint, hours_per, usd

DEFAULT_URL = "https://pricing.us-east-1.amazonaws.com"
URL_ENV = "LAUNCH_AWS_PRICE_LIST_URL"
INDEX = "/offers/v1.0/aws/AmazonSageMaker/current/region_index.json"


def price_list(settings: Mapping[str, Any], fetch: Fetcher, instance_types: Sequence[str],
               regions: Sequence[str]) -> list[Price]:
    base = endpoint(URL_ENV, DEFAULT_URL)
    wanted = sorted(set(regions) | ({settings["region"]} if settings.get("region") else set()))
    index = fetch.json(base + INDEX, what="AmazonSageMaker region index")
    listed = index.get("regions") if isinstance(index, dict) else None
    if not isinstance(listed, dict):
        raise PriceListError(f"{base + INDEX}: no 'regions' in the region index")
    found: list[Price] = []
    for region in wanted:
        entry = listed.get(region)
        if not isinstance(entry, dict) or not isinstance(entry.get("currentVersionUrl"), str):
            fetch.say(f"  {region}: not in the AmazonSageMaker price list")
            continue
        url = base + entry["currentVersionUrl"]
        offer = fetch.json(url, what=f"AmazonSageMaker offer file for {region}")
        found.extend(training_prices(offer, region, set(instance_types), DEFAULT_URL + entry["currentVersionUrl"]))
    return found


def training_prices(offer: Any, region: str, instance_types: set[str], source: str) -> list[Price]:
    """The on-demand training price per hour of each known instance type in one offer file."""
    if not isinstance(offer, dict) or offer.get("offerCode") != "AmazonSageMaker":
        raise PriceListError(f"{source}: not an AmazonSageMaker offer file")
    products, terms = offer.get("products"), (offer.get("terms") or {}).get("OnDemand")
    if not isinstance(products, dict) or not isinstance(terms, dict):
        raise PriceListError(f"{source}: the offer file lacks products or OnDemand terms; it may be cut off")
    as_of = str(offer.get("publicationDate") or date.today().isoformat())[:10]
    out = []
    for sku, product in products.items():
        attributes = (product.get("attributes") or {}) if isinstance(product, dict) else {}
        name = _training_instance(attributes)
        if name not in instance_types or attributes.get("regionCode", region) != region:
            continue
        hourly = _hourly(terms.get(sku), f"{source} sku {sku}")
        if hourly is not None:
            out.append(Price(name, region, hourly, None, source, as_of))
    return out


def _training_instance(attributes: Mapping[str, Any]) -> str | None:
    """The ML instance a product bills for training, or None for any other product. SageMaker names
    training usage '<REGION>-Train:<instance>'; spot training ('Train-Spot') has no list price."""
    usage = str(attributes.get("usagetype") or "")
    kind, _, instance = usage.partition(":")
    if not kind.endswith("-Train") and attributes.get("component") != "Training":
        return None
    if "spot" in usage.lower():
        return None
    name = str(attributes.get("instanceName") or instance)
    return name if name.startswith("ml.") else None


def _hourly(sku_terms: Any, where: str) -> float | None:
    if not isinstance(sku_terms, dict):
        return None
    for term in sku_terms.values():
        for dimension in (term.get("priceDimensions") or {}).values():
            per_unit = dimension.get("pricePerUnit") or {}
            if not per_unit:
                continue
            currency, amount = next(iter(per_unit.items()))
            usd(currency, where)
            try:
                value = float(amount)
            except (TypeError, ValueError):
                raise PriceListError(f"{where}: price {amount!r} is not a number") from None
            if value > 0:
                return value / hours_per(str(dimension.get("unit") or ""))
    return None
