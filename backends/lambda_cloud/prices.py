"""Lambda Cloud prices from its own API: `GET /instance-types` (the user's API key) lists each
instance type with `price_cents_per_hour`, the same price in every region."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from backends.lambda_cloud.render import DEFAULT_BASE_URL
from launcher.prices import Fetcher, Price, PriceListError, PriceListSkipped

PUBLIC_URL = "https://cloud.lambda.ai/api/v1/instance-types"


def price_list(settings: Mapping[str, Any], fetch: Fetcher, instance_types: Sequence[str],
               regions: Sequence[str]) -> list[Price]:
    key = os.environ.get("LAMBDA_API_KEY") or settings.get("api_key")
    if not key:
        raise PriceListSkipped("Lambda Cloud lists prices to API keys only",
                               "export LAMBDA_API_KEY (or api_key in [backends.lambda_cloud]) to refresh them")
    url = str(settings.get("api_url") or DEFAULT_BASE_URL).rstrip("/") + "/instance-types"
    data = fetch.json(url, headers={"Authorization": f"Bearer {key}"}, what="Lambda Cloud instance types")
    listed = data.get("data") if isinstance(data, dict) else None
    if not isinstance(listed, dict):
        raise PriceListError(f"{url}: no 'data' mapping of instance types")
    today = date.today().isoformat()
    out = []
    for name, entry in listed.items():
        kind = entry.get("instance_type") if isinstance(entry, dict) else None
        cents = kind.get("price_cents_per_hour") if isinstance(kind, dict) else None
        if name not in instance_types or cents is None:
            continue
        if not isinstance(cents, (int, float)) or isinstance(cents, bool):
            raise PriceListError(f"{url}: {name} price_cents_per_hour {cents!r} is not a number")
        out.append(Price(name, "all", cents / 100, None, PUBLIC_URL, today))
    return out
