"""`launch catalog --refresh`: prices read from local fakes of the providers' price lists
(tests/fakes/price_lists.py for AWS and Azure, the Lambda API fake for Lambda), kept in the
user's price cache, winning over the shipped catalog in `catalog` and `plan` only, and never
half-written: a cut-off page leaves the previous cache as it was."""

from __future__ import annotations

import json
from datetime import date

import pytest
from fakes.lambda_fake import LambdaFake
from fakes.price_lists import GCP_KEY, PUBLICATION, PriceListFake

from launcher import catalog, config, prices
from launcher.accelerators import parse

pytestmark = pytest.mark.usefixtures("launch_home")


@pytest.fixture(scope="module")
def fake():
    with PriceListFake(page_size=2) as served:
        yield served
    assert not served.violations, served.violations


@pytest.fixture
def lists(fake, monkeypatch):
    """The price lists' URLs pointed at the fake, and the fake reset for this test."""
    fake.cut_off, fake.currency, fake.requests[:] = None, "USD", []
    env = {"LAUNCH_AWS_PRICE_LIST_URL": fake.url, "LAUNCH_AZURE_RETAIL_PRICES_URL": f"{fake.url}/api/retail/prices",
           "LAUNCH_GCP_BILLING_URL": fake.url}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def refresh(*names: str) -> tuple[dict[str, str], set[str], list[str]]:
    said: list[str] = []
    outcomes, failed = prices.refresh(list(names), said.append)
    return dict(outcomes), failed, said


def test_sagemaker_prices_come_from_the_training_products_of_each_regions_offer_file(lists, fake):
    outcomes, failed, said = refresh("sagemaker")
    assert not failed, outcomes
    cached = {(p.instance_type, p.region): p for p in prices.cached("sagemaker")}
    # training, not hosting (113.068); only types the catalog ships (not ml.m5.large); the catalog's region only
    assert cached[("ml.p5.48xlarge", "us-east-1")].ondemand_usd_hr == pytest.approx(98.32)
    assert cached[("ml.p5.48xlarge", "us-east-1")].as_of == PUBLICATION[:10]
    assert ("ml.m5.large", "us-east-1") not in cached and ("ml.p5.48xlarge", "us-west-2") not in cached
    assert any("offer file for us-east-1" in line for line in said)  # progress for the long download
    h100 = catalog.priced(catalog.lookup("sagemaker", parse("H100:8")))
    assert h100.ondemand_usd_hr == pytest.approx(98.32) and h100.refreshed and h100.as_of == PUBLICATION[:10]
    shipped = catalog.lookup("sagemaker", parse("A10G:4"))  # not in the fake's list
    untouched = catalog.priced(shipped)
    assert not untouched.refreshed and untouched.ondemand_usd_hr == shipped.ondemand_usd_hr
    # the machine a render picks is the shipped catalog's, whatever the cache says
    assert catalog.lookup("sagemaker", parse("H100:8")).ondemand_usd_hr != pytest.approx(98.32)


def test_a_configured_region_is_refreshed_too_and_plan_can_ask_for_it(lists, launch_home):
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text('[backends.sagemaker]\nregion = "us-west-2"\n')
    config.load.cache_clear()
    _, failed, _ = refresh("sagemaker")
    assert not failed
    offer = catalog.lookup("sagemaker", parse("H200:8"))
    assert catalog.priced(offer) is offer  # us-east-1 (the catalog's) has no p5en in the list
    west = catalog.priced(offer, "us-west-2")
    assert west.region == "us-west-2" and west.ondemand_usd_hr == pytest.approx(121.5)
    assert catalog.priced(offer, "eu-west-1") is None


def test_azure_prices_follow_next_page_links_and_keep_linux_pay_as_you_go_meters(lists, fake):
    outcomes, failed, said = refresh("azureml")
    assert not failed, outcomes
    pages = [r for r in fake.requests if r.startswith("/api/retail/prices")]
    assert len(pages) >= 2 and "%24skip=" in pages[-1]  # the fake pages by 2: the reader followed NextPageLink
    assert sum("page" in line for line in said) == len(pages)
    cached = {p.instance_type: p for p in prices.cached("azureml")}
    h100 = cached["Standard_ND96isr_H100_v5"]
    # not Windows (102), not DevTest (90), not Low Priority, not another region (99)
    assert (h100.ondemand_usd_hr, h100.spot_usd_hr, h100.region) == (98.32, 39.33, "eastus")
    assert cached["Standard_NC24ads_A100_v4"].spot_usd_hr == pytest.approx(0.9)
    assert "Standard_D4s_v5" not in cached  # not in the catalog (nor asked for)


def test_a_cut_off_page_leaves_the_previous_cache_as_it_was(lists, fake, launch_home):
    _, failed, _ = refresh("azureml", "sagemaker")
    assert not failed
    before = {name: prices.cache_file(name).read_bytes() for name in ("azureml", "sagemaker")}
    fake.cut_off, fake.cut_off_page = "/api/retail/prices", 2
    outcomes, failed, _ = refresh("azureml", "sagemaker")
    assert failed == {"azureml"} and "cut off" in outcomes["azureml"], outcomes
    assert prices.cache_file("azureml").read_bytes() == before["azureml"]
    fake.cut_off = "/offers"
    outcomes, failed, _ = refresh("sagemaker")
    assert failed == {"sagemaker"} and prices.cache_file("sagemaker").read_bytes() == before["sagemaker"]
    assert sorted(p.name for p in prices.cache_dir().iterdir()) == ["azureml.json", "sagemaker.json"]  # no temp file


def test_vertex_prices_add_up_compute_engine_skus_with_the_users_key(lists, fake, monkeypatch):
    monkeypatch.delenv("LAUNCH_GCP_BILLING_API_KEY", raising=False)
    outcomes, failed, _ = refresh("vertex")
    said = outcomes["vertex"]
    assert not failed and said.startswith("skipped") and "LAUNCH_GCP_BILLING_API_KEY" in said
    monkeypatch.setenv("LAUNCH_GCP_BILLING_API_KEY", "wrong")
    outcomes, failed, _ = refresh("vertex")
    assert failed == {"vertex"} and "HTTP 403" in outcomes["vertex"] and "wrong" not in outcomes["vertex"]
    monkeypatch.setenv("LAUNCH_GCP_BILLING_API_KEY", GCP_KEY)
    outcomes, failed, said = refresh("vertex")
    assert not failed, outcomes
    assert sum("Compute Engine SKUs, page" in line for line in said) >= 2  # followed nextPageToken
    cached = {p.instance_type: p for p in prices.cached("vertex") if p.region == "us-central1"}
    assert len(cached) == len([p for p in prices.cached("vertex") if p.region == "us-central1"])
    h100 = catalog.lookup("vertex", parse("H100:8"))  # a3-highgpu-8g: 208 vCPUs, 1872 GiB, 8 GPUs
    expected = 208 * 0.0295 + 1872 * 0.0025 + 8 * 9.7966
    assert cached[h100.instance_type].ondemand_usd_hr == pytest.approx(expected)
    assert cached[h100.instance_type].spot_usd_hr is None  # no Preemptible A3 SKUs in the list: the shipped spot stays
    assert catalog.priced(h100).spot_usd_hr == h100.spot_usd_hr and catalog.priced(h100).estimate
    t4 = catalog.lookup("vertex", parse("T4:1"))  # n1-standard-8 + 1 T4
    assert cached[t4.instance_type].spot_usd_hr == pytest.approx(8 * 0.00698 + 30 * 0.00094 + 0.14)
    assert "a2-highgpu-1g" not in cached  # no A2 SKUs listed: not priced rather than guessed
    v100 = catalog.lookup("vertex", parse("V100:1"))  # the same n1-standard-8, with a V100: no V100 SKU listed
    assert v100.instance_type == t4.instance_type and not catalog.priced(v100).refreshed
    assert GCP_KEY not in prices.cache_file("vertex").read_text() + " ".join(said)


def test_prices_in_another_currency_are_refused(lists, fake):
    fake.currency = "EUR"
    outcomes, failed, _ = refresh("azureml")
    assert failed == {"azureml"} and "EUR" in outcomes["azureml"] and not prices.cache_file("azureml").exists()


@pytest.mark.parametrize(("unit", "hours"), [("Hrs", 1), ("1 Hour", 1), ("h", 1), ("1/Hour", 1),
                                             ("s", 1 / 3600), ("1 Second", 1 / 3600), ("minute", 1 / 60)])
def test_price_units_are_converted_to_hours(unit, hours):
    assert prices.hours_per(unit) == pytest.approx(hours)


def test_a_price_per_token_or_gigabyte_is_not_an_hourly_price():
    for unit in ("1M tokens", "GB-Mo", "1K"):
        with pytest.raises(prices.PriceListError):
            prices.hours_per(unit)


def test_an_unreadable_cache_is_ignored_not_fatal(lists):
    prices.cache_dir().mkdir(parents=True)
    prices.cache_file("sagemaker").write_text('{"version": 1, "prices": [{"instance_type": "ml.p5.48xl')
    assert prices.cached("sagemaker") == ()
    assert catalog.priced_offers("sagemaker") == catalog.backend_offers("sagemaker")


def test_lambda_prices_need_the_users_key(monkeypatch, launch_home):
    monkeypatch.delenv("LAMBDA_API_KEY", raising=False)
    outcomes, failed, _ = refresh("lambda_cloud")
    said = outcomes["lambda_cloud"]
    assert not failed and said.startswith("skipped") and "LAMBDA_API_KEY" in said
    with LambdaFake(api_key="price-key") as api:
        launch_home.mkdir(parents=True, exist_ok=True)
        (launch_home / "config.toml").write_text(f'[backends.lambda_cloud]\napi_url = "{api.base_url}"\n')
        config.load.cache_clear()
        monkeypatch.setenv("LAMBDA_API_KEY", "price-key")
        outcomes, failed, said = refresh("lambda_cloud")
        assert not failed, outcomes
        assert not api.violations
    assert "price-key" not in json.dumps([outcomes, said]) + prices.cache_file("lambda_cloud").read_text()
    h100 = {p.instance_type: p for p in prices.cached("lambda_cloud")}["gpu_8x_h100_sxm5"]
    assert (h100.ondemand_usd_hr, h100.region, h100.as_of) == (31.92, "all", date.today().isoformat())


def test_refresh_from_the_cli_then_plan_shows_the_refreshed_price_and_its_date(cli, write_spec, lists):
    done = cli("catalog", "--refresh", "-b", "sagemaker", "-a", "H100:8", "-o", "json", env=lists, check_rc=0)
    (row,) = json.loads(done.stdout)
    assert row["ondemand_usd_hr"] == pytest.approx(98.32) and row["refreshed"] and not row["estimate"]
    assert "sagemaker: " in done.stderr and "offer file" in done.stderr
    spec = write_spec("name: p\nrun: x\nimage: i:1\nresources: {accelerators: H100:8, nodes: 2}\nmax_runtime: 12h\n")
    text = cli("plan", str(spec), "-b", "sagemaker", "--no-live", check_rc=0).stdout
    assert "$196.64" in text and f"{PUBLICATION[:10]} refreshed" in text, text
    failed = cli("catalog", "--refresh", "-b", "sagemaker", env={**lists, "LAUNCH_AWS_PRICE_LIST_URL": "ftp://x"},
                 check_rc=2)
    assert "LAUNCH_AWS_PRICE_LIST_URL" in failed.stderr and "Traceback" not in failed.stderr


def test_prices_are_marked_old_after_ninety_days():
    offer = catalog.lookup("vertex", parse("A100-40GB:8"))
    assert offer.stale(today=date.fromisoformat(offer.as_of).replace(year=date.fromisoformat(offer.as_of).year + 1))
    assert not offer.stale(today=date.fromisoformat(offer.as_of))
