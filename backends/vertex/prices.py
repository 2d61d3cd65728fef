"""Vertex prices from the Google Cloud Billing Catalog API (an API key: LAUNCH_GCP_BILLING_API_KEY).

Vertex AI training bills the machine and GPUs it runs on; the catalog publishes those as
Compute Engine SKUs (service 6F81-5844-456A), priced per resource, not per machine type: a
machine series' vCPU ("<series> Instance Core") and memory ("... Ram", per GiB-hour) SKUs,
and one SKU per GPU model ("Nvidia ... <model> GPU"), each for the regions it lists, OnDemand
or Preemptible (spot). A machine type's price is vCPUs x core + GiB x ram + GPUs x gpu, with
the vCPUs, memory and GPUs the shipped catalog gives. These are Compute Engine rates, which
Vertex training bills with its own management rates on top: the rows say so (an estimate), as
the shipped Vertex rows do. A type whose series or GPU has no SKU in the list keeps its
shipped price. Pages are linked by nextPageToken."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from launcher.prices import Fetcher, Price, PriceListError, PriceListSkipped, endpoint, hours_per, usd

DEFAULT_URL = "https://cloudbilling.googleapis.com"
URL_ENV = "LAUNCH_GCP_BILLING_URL"
KEY_ENV = "LAUNCH_GCP_BILLING_API_KEY"
COMPUTE_ENGINE = "6F81-5844-456A"
PUBLIC_SOURCE = f"{DEFAULT_URL}/v1/services/{COMPUTE_ENGINE}/skus"
MAX_PAGES = 50
NOTE = ("estimate: Compute Engine rates (Cloud Billing Catalog) for the machine and its GPUs; Vertex AI training "
        "bills its own rates for them")
# machine series -> the words its core and ram SKUs carry
SERIES = {"a2": "A2 Instance", "a3": "A3 Instance", "a4": "A4 Instance", "g2": "G2 Instance",
          "n1": "N1 Predefined Instance"}
# Vertex's accelerator names -> the words their GPU SKU carries
GPUS = {"NVIDIA_TESLA_T4": "T4 GPU", "NVIDIA_TESLA_V100": "V100 GPU", "NVIDIA_TESLA_A100": "A100 GPU",
        "NVIDIA_A100_80GB": "A100 80GB GPU", "NVIDIA_L4": "L4 GPU", "NVIDIA_H100_80GB": "H100 80GB GPU",
        "NVIDIA_H200_141GB": "H200 141GB GPU", "NVIDIA_B200": "B200 (1 gpu slice)"}
SKIPPED_WORDS = ("custom", "premium", "reserved", "sole tenancy", "commitment", "dws", "calendar", "flex")


def price_list(settings: Mapping[str, Any], fetch: Fetcher, instance_types: Sequence[str],
               regions: Sequence[str]) -> list[Price]:
    key = os.environ.get(KEY_ENV)
    if not key:
        raise PriceListSkipped("the Cloud Billing Catalog API needs an API key",
                               f"export {KEY_ENV} (an API key of a project with the Cloud Billing API enabled)")
    from launcher import catalog

    skus = list(_skus(fetch, endpoint(URL_ENV, DEFAULT_URL), key))
    wanted = set(instance_types)
    machines = [o for o in catalog.backend_offers("vertex") if o.instance_type in wanted]
    return machine_prices(skus, machines, sorted(set(regions) | ({settings["region"]} if settings.get("region")
                                                                   else set())))


def _skus(fetch: Fetcher, base: str, key: str) -> Iterator[dict[str, Any]]:
    url = f"{base}/v1/services/{COMPUTE_ENGINE}/skus"
    token = ""
    for page in range(1, MAX_PAGES + 1):
        params = {"key": key, "currencyCode": "USD", "pageSize": "5000", **({"pageToken": token} if token else {})}
        data = fetch.json(url, params, what=f"Compute Engine SKUs, page {page}")
        if not isinstance(data, dict) or not isinstance(data.get("skus", []), list):
            raise PriceListError(f"{url}: page {page} has no skus list; it may be cut off")
        yield from (sku for sku in data.get("skus", []) if isinstance(sku, dict))
        token = data.get("nextPageToken") or ""
        if not token:
            return
    raise PriceListError(f"{url}: more than {MAX_PAGES} pages", "try again later")


def hourly(sku: Mapping[str, Any]) -> float:
    """A SKU's first tier as USD per hour (per GiB-hour for memory)."""
    try:
        expression = sku["pricingInfo"][0]["pricingExpression"]
        rate = expression["tieredRates"][0]["unitPrice"]
        usd(str(rate.get("currencyCode") or ""), f"SKU {sku.get('skuId')}")
        amount = int(rate.get("units") or 0) + int(rate.get("nanos") or 0) / 1e9
        unit = str(expression["usageUnit"]).removeprefix("GiBy.")
    except (KeyError, IndexError, TypeError, ValueError):
        raise PriceListError(f"SKU {sku.get('skuId')!r} has no readable price") from None
    return amount / hours_per(unit)


def _kept(sku: Mapping[str, Any]) -> bool:
    category = sku.get("category") or {}
    description = str(sku.get("description") or "").lower()
    return (category.get("resourceFamily") == "Compute" and category.get("usageType") in ("OnDemand", "Preemptible")
            and not any(word in description for word in SKIPPED_WORDS))


def machine_prices(skus: Sequence[Mapping[str, Any]], machines: Sequence[Any], regions: Sequence[str]) -> list[Price]:
    kept = [sku for sku in skus if _kept(sku)]
    today = date.today().isoformat()
    out = []
    for machine in machines:
        for region in regions:
            ondemand, spot = (_machine(kept, machine, region, usage) for usage in ("OnDemand", "Preemptible"))
            if ondemand is not None or spot is not None:
                out.append(Price(machine.instance_type, region, ondemand, spot, PUBLIC_SOURCE, today, NOTE,
                                 machine.provider_accelerator))
    return out


def _machine(skus: Sequence[Mapping[str, Any]], machine: Any, region: str, usage: str) -> float | None:
    series = SERIES.get(machine.instance_type.split("-")[0])
    gpu = GPUS.get(machine.provider_accelerator)
    if series is None or gpu is None or machine.vcpus is None or machine.memory_gb is None:
        return None
    here = [s for s in skus if s["category"].get("usageType") == usage and region in (s.get("serviceRegions") or [])]
    core = _one(here, lambda s: series.lower() in s["description"].lower() and "core" in s["description"].lower())
    ram = _one(here, lambda s: series.lower() in s["description"].lower() and "ram" in s["description"].lower())
    card = _one(here, lambda s: s["category"].get("resourceGroup") == "GPU" and gpu in s["description"]
                and not (gpu == "A100 GPU" and "80GB" in s["description"]))
    if core is None or ram is None or card is None:
        return None
    return round(core * machine.vcpus + ram * machine.memory_gb + card * machine.count, 6)


def _one(skus: Sequence[Mapping[str, Any]], match: Any) -> float | None:
    found = [s for s in skus if match(s)]
    return hourly(found[0]) if found else None
