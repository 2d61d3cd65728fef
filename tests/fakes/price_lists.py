"""A local stand-in for two public price lists, serving pages in each one's own format:

- the AWS Price List bulk API for AmazonSageMaker: the region index
  (/offers/v1.0/aws/AmazonSageMaker/current/region_index.json) naming each region's current
  offer file, and offer files (formatVersion, offerCode, publicationDate, products keyed by SKU
  with their attributes, terms.OnDemand keyed by SKU -> offer term -> priceDimensions with
  unit "Hrs" and pricePerUnit {"USD": "..."}). Each instance type has a Training and a Hosting
  product at different rates, as the real file does, so a reader taking the wrong one is caught.
- the Google Cloud Billing Catalog API for Compute Engine (/v1/services/6F81-5844-456A/skus?key=):
  SKUs with category {resourceFamily, resourceGroup, usageType}, serviceRegions and
  pricingInfo[].pricingExpression {usageUnit "h" or "GiBy.h", tieredRates[].unitPrice
  {currencyCode, units, nanos}}, paged by pageSize/pageToken -> nextPageToken; an API key is
  required (403 without, as the API answers).
- the Azure Retail Prices API (/api/retail/prices): api-version and an OData $filter (the
  subset of the grammar the API documents: `field eq 'value'` joined by and/or, in brackets),
  answered with {BillingCurrency, CustomerEntityId, CustomerEntityType, Items, NextPageLink,
  Count} pages linked by NextPageLink ($skip). The real API pages by 100; this one pages by
  `page_size` items so that two or three pages exercise the same paging with a handful of items.

No schema file is published for either API, so the fake checks what it is asked against the
documented request shapes and refuses anything else (400, and a recorded violation), and its
answers are built only from the fields the documentation lists. `cut_off` makes one page end
in the middle of its JSON, as a dropped connection would.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fakes import bugs

PUBLICATION = "2026-11-20T18:58:05Z"
VERSION = "20261120185805"
INDEX_PATH = "/offers/v1.0/aws/AmazonSageMaker/current/region_index.json"
API_VERSION = "2023-01-01-preview"
# region -> instance -> (training $/h, hosting $/h)
SAGEMAKER = {
    "us-east-1": {"ml.p5.48xlarge": (98.32, 113.068), "ml.p4d.24xlarge": (37.688, 37.688),
                  "ml.g5.xlarge": (1.408, 1.4084), "ml.m5.large": (0.115, 0.115)},
    "us-west-2": {"ml.p5.48xlarge": (98.32, 113.068), "ml.p5en.48xlarge": (121.5, 130.0)},
}
REGION_NAMES = {"us-east-1": ("USE1", "US East (N. Virginia)"), "us-west-2": ("USW2", "US West (Oregon)")}
# (armSkuName, region, skuName meter, productName suffix, type, $/h)
AZURE = [
    ("Standard_ND96isr_H100_v5", "eastus", "ND96isr H100 v5", "", "Consumption", 98.32),
    ("Standard_ND96isr_H100_v5", "eastus", "ND96isr H100 v5 Spot", "", "Consumption", 39.33),
    ("Standard_ND96isr_H100_v5", "eastus", "ND96isr H100 v5 Low Priority", "", "Consumption", 19.66),
    ("Standard_ND96isr_H100_v5", "eastus", "ND96isr H100 v5", " Windows", "Consumption", 102.0),
    ("Standard_ND96isr_H100_v5", "eastus", "ND96isr H100 v5", "", "DevTestConsumption", 90.0),
    ("Standard_ND96isr_H100_v5", "westus3", "ND96isr H100 v5", "", "Consumption", 99.0),
    ("Standard_NC24ads_A100_v4", "eastus", "NC24ads A100 v4", "", "Consumption", 3.673),
    ("Standard_NC24ads_A100_v4", "eastus", "NC24ads A100 v4 Spot", "", "Consumption", 0.9),
    ("Standard_D4s_v5", "eastus", "D4s v5", "", "Consumption", 0.192),
]
GCP_KEY = "gcp-billing-test-key"
# (description, resourceGroup, usageType, usageUnit, $ per unit); all in us-central1 unless said
GCP_SKUS = [
    ("N1 Predefined Instance Core running in Americas", "N1Standard", "OnDemand", "h", 0.031611),
    ("N1 Predefined Instance Ram running in Americas", "N1Standard", "OnDemand", "GiBy.h", 0.004237),
    ("Spot Preemptible N1 Predefined Instance Core running in Americas", "N1Standard", "Preemptible", "h", 0.00698),
    ("Spot Preemptible N1 Predefined Instance Ram running in Americas", "N1Standard", "Preemptible", "GiBy.h",
     0.00094),
    ("Nvidia Tesla T4 GPU running in Americas", "GPU", "OnDemand", "h", 0.35),
    ("Spot Preemptible Nvidia Tesla T4 GPU running in Americas", "GPU", "Preemptible", "h", 0.14),
    ("A3 Instance Core running in Americas", "CPU", "OnDemand", "h", 0.0295),
    ("A3 Instance Ram running in Americas", "RAM", "OnDemand", "GiBy.h", 0.0025),
    ("Nvidia H100 80GB GPU running in Americas", "GPU", "OnDemand", "h", 9.7966),
    ("Commitment v1: A3 Cpu in Americas for 1 Year", "CPU", "Commit1Yr", "h", 0.02),
    ("Custom Instance Core running in Americas", "CPU", "OnDemand", "h", 0.99),
    ("Network Inter Zone Egress", "InterzoneEgress", "OnDemand", "GiBy", 0.01),
]
_CLAUSE = re.compile(r"(\w+) eq '([^']*)'")
_FILTER_FIELDS = {"serviceName", "priceType", "armRegionName", "armSkuName", "skuName", "productName", "type",
                  "serviceFamily", "location", "meterName", "currencyCode"}


class PriceListFake:
    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.cut_off: str | None = None  # a path prefix ("/api/retail/prices" or "/offers") whose next page breaks
        self.cut_off_page = 2            # for Azure: which page (1-based) is cut off
        self.currency = "USD"            # the Azure API answers in the currencyCode asked for; this one may not
        self.requests: list[str] = []
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._server: bugs.RecordingHTTPServer | None = None

    def __enter__(self) -> PriceListFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = fake._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = bugs.RecordingHTTPServer("PriceListFake", ("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- serving -------------------------------------------------------------

    def _answer(self, raw: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests.append(raw)
        parts = urlsplit(raw)
        if parts.path == INDEX_PATH:
            return 200, _json(self._region_index())
        if match := re.fullmatch(rf"/offers/v1\.0/aws/AmazonSageMaker/{VERSION}/([a-z0-9-]+)/index\.json", parts.path):
            region = match.group(1)
            if region not in SAGEMAKER:
                return 404, b'{"message": "Not Found"}'
            return 200, self._maybe_cut("/offers", 1, _json(self._offer_file(region)))
        if parts.path == "/v1/services/6F81-5844-456A/skus":
            return self._skus(parse_qs(parts.query, keep_blank_values=True))
        if parts.path == "/api/retail/prices":
            return self._retail(parse_qs(parts.query, keep_blank_values=True))
        self._violation(f"GET {raw}: no such price list path")
        return 404, b'{"message": "Not Found"}'

    def _maybe_cut(self, prefix: str, page: int, body: bytes) -> bytes:
        if self.cut_off == prefix and page == (self.cut_off_page if prefix != "/offers" else 1):
            return body[: len(body) // 2]
        return body

    def _violation(self, text: str) -> None:
        with self._lock:
            self.violations.append(text)

    def _region_index(self) -> dict[str, Any]:
        return {"formatVersion": "v1.0", "disclaimer": "This pricing list is for informational purposes only.",
                "publicationDate": PUBLICATION,
                "regions": {region: {"regionCode": region, "currentVersionUrl":
                                     f"/offers/v1.0/aws/AmazonSageMaker/{VERSION}/{region}/index.json"}
                            for region in SAGEMAKER}}

    def _offer_file(self, region: str) -> dict[str, Any]:
        prefix, location = REGION_NAMES[region]
        products: dict[str, Any] = {}
        terms: dict[str, Any] = {}
        for number, (instance, (training, hosting)) in enumerate(SAGEMAKER[region].items()):
            for component, usage, rate in (("Training", "Train", training), ("Hosting", "Host", hosting)):
                sku = f"{prefix}{number:03d}{usage.upper()}"
                products[sku] = {"sku": sku, "productFamily": "ML Instance", "attributes": {
                    "servicecode": "AmazonSageMaker", "location": location, "locationType": "AWS Region",
                    "instanceName": instance, "component": component, "usagetype": f"{prefix}-{usage}:{instance}",
                    "operation": "RunInstance", "regionCode": region, "servicename": "Amazon SageMaker"}}
                term, dimension = f"{sku}.JRTCKXETXF", f"{sku}.JRTCKXETXF.6YS6EN2CT7"
                terms[sku] = {term: {"offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": PUBLICATION,
                                     "termAttributes": {}, "priceDimensions": {dimension: {
                                         "rateCode": dimension, "beginRange": "0", "endRange": "Inf", "unit": "Hrs",
                                         "description": f"${rate} per Hour for {usage}:{instance} in {location}",
                                         "pricePerUnit": {"USD": f"{rate:.10f}"}, "appliesTo": []}}}}
        products["STORAGE"] = {"sku": "STORAGE", "productFamily": "ML Storage", "attributes": {
            "servicecode": "AmazonSageMaker", "usagetype": f"{prefix}-Train:VolumeUsage.gp2", "regionCode": region}}
        terms["STORAGE"] = {"STORAGE.JRTCKXETXF": {"offerTermCode": "JRTCKXETXF", "sku": "STORAGE",
                                                   "effectiveDate": PUBLICATION, "termAttributes": {},
                                                   "priceDimensions": {"STORAGE.JRTCKXETXF.1": {
                                                       "rateCode": "STORAGE.JRTCKXETXF.1", "unit": "GB-Mo",
                                                       "beginRange": "0", "endRange": "Inf", "description": "gp2",
                                                       "pricePerUnit": {"USD": "0.14"}, "appliesTo": []}}}}
        return {"formatVersion": "v1.0", "disclaimer": "This pricing list is for informational purposes only.",
                "offerCode": "AmazonSageMaker", "version": VERSION, "publicationDate": PUBLICATION,
                "products": products, "terms": {"OnDemand": terms}}

    def _skus(self, query: dict[str, list[str]]) -> tuple[int, bytes]:
        if query.get("key") != [GCP_KEY]:
            return 403, _json({"error": {"code": 403, "message": "The request is missing a valid API key.",
                                         "status": "PERMISSION_DENIED"}})
        unknown = set(query) - {"key", "currencyCode", "pageSize", "pageToken", "startTime", "endTime"}
        if unknown:
            self._violation(f"skus: unknown parameters {unknown}")
            return 400, _json({"error": {"code": 400, "message": "Invalid JSON payload", "status": "INVALID_ARGUMENT"}})
        start = int(query.get("pageToken", ["0"])[0] or 0)
        size = min(int(query.get("pageSize", ["5000"])[0]), self.page_size)  # the fake's pages are small
        skus = [_gcp_sku(number, *row) for number, row in enumerate(GCP_SKUS)]
        following = start + size
        return 200, _json({"skus": skus[start:following],
                           "nextPageToken": str(following) if following < len(skus) else ""})

    def _retail(self, query: dict[str, list[str]]) -> tuple[int, bytes]:
        unknown = set(query) - {"api-version", "$filter", "currencyCode", "$skip", "meterRegion"}
        currency = self.currency if self.currency != "USD" else query.get("currencyCode", ["USD"])[0]
        if query.get("api-version") != [API_VERSION] or unknown:
            self._violation(f"retail prices: api-version {query.get('api-version')} or unknown parameters {unknown}")
            return 400, _json({"Error": {"Code": "BadRequest", "Message": "Invalid query"}})
        try:
            wanted = _parse_filter(query.get("$filter", [""])[0])
        except ValueError as exc:
            self._violation(f"retail prices: {exc}")
            return 400, _json({"Error": {"Code": "BadRequest", "Message": str(exc)}})
        items = [{**item, "currencyCode": currency} for item in _azure_items() if wanted(item)]
        skip = int(query.get("$skip", ["0"])[0])
        page = items[skip: skip + self.page_size]
        following = skip + self.page_size
        link = None
        if following < len(items):
            link = f"{self.url}/api/retail/prices?" + urlencode(
                {"api-version": API_VERSION, "$filter": query.get("$filter", [""])[0], "$skip": str(following)})
        body = _json({"BillingCurrency": currency, "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
                      "Items": page, "NextPageLink": link, "Count": len(page)})
        return 200, self._maybe_cut("/api/retail/prices", skip // self.page_size + 1, body)


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _gcp_sku(number: int, description: str, group: str, usage: str, unit: str, price: float) -> dict[str, Any]:
    sku_id = f"{number:04X}-{number * 7:04X}-{number * 13:04X}"
    units, nanos = int(price), round((price - int(price)) * 1e9)
    family = "Network" if group == "InterzoneEgress" else "Compute"
    return {"name": f"services/6F81-5844-456A/skus/{sku_id}", "skuId": sku_id, "description": description,
            "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family, "resourceGroup": group,
                         "usageType": usage},
            "serviceRegions": ["us-central1", "us-east4"],
            "pricingInfo": [{"summary": "", "effectiveTime": PUBLICATION, "currencyConversionRate": 1,
                             "pricingExpression": {
                                 "usageUnit": unit, "displayQuantity": 1, "baseUnitConversionFactor": 3600,
                                 "usageUnitDescription": {"h": "hour", "GiBy.h": "gibibyte hour",
                                                          "GiBy": "gibibyte"}[unit],
                                 "baseUnit": {"h": "s", "GiBy.h": "By.s", "GiBy": "By"}[unit],
                                 "baseUnitDescription": "second",
                                 "tieredRates": [{"startUsageAmount": 0, "unitPrice": {
                                     "currencyCode": "USD", "units": str(units), "nanos": nanos}}]},
                             "aggregationInfo": {"aggregationLevel": "ACCOUNT", "aggregationInterval": "DAILY",
                                                 "aggregationCount": 1}}],
            "serviceProviderName": "Google", "geoTaxonomy": {"type": "REGIONAL", "regions": ["us-central1"]}}


def _azure_items() -> Iterator[dict[str, Any]]:
    for number, (size, region, meter, os_suffix, kind, rate) in enumerate(AZURE):
        series = size.removeprefix("Standard_").split("_", 1)[-1].replace("_", "")
        yield {"currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": rate, "unitPrice": rate,
               "armRegionName": region, "location": {"eastus": "US East", "westus3": "US West 3"}[region],
               "effectiveStartDate": "2026-10-01T00:00:00Z", "meterId": f"meter-{number}", "meterName": meter,
               "productId": f"DZH318Z0{number:04d}", "skuId": f"DZH318Z0{number:04d}/00{number}",
               "productName": f"Virtual Machines {series} Series{os_suffix}", "skuName": meter,
               "serviceName": "Virtual Machines", "serviceId": "DZH313Z7MMC8", "serviceFamily": "Compute",
               "unitOfMeasure": "1 Hour", "type": kind, "isPrimaryMeterRegion": True, "armSkuName": size}


def _parse_filter(text: str) -> Any:
    """The documented subset: clauses `field eq 'value'`, joined by `and`, with one bracketed
    group of `or` clauses; anything else is refused as the API would (400)."""
    groups: list[list[tuple[str, str]]] = []
    rest = text.strip()
    for part in re.split(r"\s+and\s+", rest):
        part = part.strip()
        bracketed = part.startswith("(") and part.endswith(")")
        clauses = re.split(r"\s+or\s+", part[1:-1] if bracketed else part)
        parsed = []
        for clause in clauses:
            match = _CLAUSE.fullmatch(clause.strip())
            if not match or match.group(1) not in _FILTER_FIELDS:
                raise ValueError(f"$filter clause {clause!r} is not `field eq 'value'` on a known field")
            parsed.append((match.group(1), match.group(2)))
        if len(parsed) > 1 and not bracketed:
            raise ValueError(f"$filter {part!r}: or-clauses must be in brackets when joined with and")
        groups.append(parsed)
    if not text.strip():
        raise ValueError("no $filter (the fake, like a sane client, always filters)")

    def field_of(item: dict[str, Any], name: str) -> str:
        return str(item.get("type") if name == "priceType" else item.get(name))

    return lambda item: all(any(field_of(item, f) == v for f, v in group) for group in groups)
