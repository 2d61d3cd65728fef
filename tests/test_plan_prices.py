"""`launch plan` answering "which provider fits": the held-out style spec (2 x H100:8, spot,
12 h) priced on every managed cloud (a golden), the cheapest option named, --max-price and
--region, missing and estimated prices shown rather than hidden, and one spec carrying each
cloud's own outputs (`backends.<name>.outputs`) running dry on each.

The golden covers the four backends this project ships prices for, named with -b, so other
installed backends do not change it. After an intended catalog change regenerate it with
    UPDATE_GOLDEN=1 pytest tests/test_plan_prices.py -k golden
and review the diff (every price should trace to a catalog row's source)."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest
from helpers import check_golden

from launcher import catalog, plan
from launcher.accelerators import parse
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "plan" / "h100x8_2nodes_spot_12h.json"
PRICED = ("sagemaker", "vertex", "azureml", "lambda_cloud")
HELD_OUT = """name: pretrain
image: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.3.0-gpu-py311
run: torchrun train.py
resources: {accelerators: "H100:8", nodes: 2}
spot: true
max_runtime: 12h
outputs: s3://team-bucket/runs/pretrain/
backends:
  vertex: {outputs: "gs://team-bucket/runs/pretrain/"}
"""
# what the golden keeps: the answer's substance, not this machine's readiness (credentials vary)
KEPT = ("backend", "fits", "instance_type", "nodes", "gpus", "ondemand_usd_hr", "spot_usd_hr", "hourly_usd",
        "est_cost_usd", "region", "price_as_of", "price_estimate", "needs", "reason")


def test_golden_h100x8_times_two_spot_for_12h_on_every_priced_backend(cli, write_spec):
    names = [arg for name in PRICED for arg in ("-b", name)]
    rows = json.loads(cli("plan", str(write_spec(HELD_OUT)), *names, "--no-live", "-o", "json", check_rc=0).stdout)
    got = sorted(({key: row[key] for key in KEPT} for row in rows), key=lambda row: row["backend"])
    check_golden(GOLDEN, got)
    for row in rows:  # the old mark depends on today, so it is checked against the date, not kept in the golden
        age = (date.today() - date.fromisoformat(row["price_as_of"])).days
        assert row["price_old"] == (age > catalog.STALE_AFTER_DAYS), row
    for row in got:  # every managed cloud: an instance, an hourly price and the 12 h total
        assert row["fits"] and row["instance_type"] and row["gpus"] == 16, row
        assert row["hourly_usd"] and row["est_cost_usd"] == pytest.approx(row["hourly_usd"] * 12, abs=0.01), row
        assert row["needs"] is None, row  # SageMaker takes the s3:// outputs, Vertex its gs:// override
    by_name = {row["backend"]: row for row in got}
    assert "no spot price" in by_name["sagemaker"]["reason"]  # said, not hidden
    assert by_name["vertex"]["price_estimate"] and "estimate" in by_name["vertex"]["reason"]


def test_the_table_names_the_cheapest_option_and_each_prices_date(cli, write_spec):
    spec = write_spec(HELD_OUT)
    rows = plan.plan(parse_spec(HELD_OUT, str(spec)), list(PRICED), live=False)
    text = cli("plan", str(spec), *[a for n in PRICED for a in ("-b", n)], "--no-live", check_rc=0).stdout
    best = plan.cheapest_fitting(rows)
    assert f"cheapest that fits: {best.backend} at ${best.hourly_usd:,.2f}/h, ${best.est_cost_usd:,.2f} for 12h" in text
    assert all(row.price_as_of in text for row in rows)
    assert "~ an estimate" in text  # Vertex's Compute Engine figures are marked


def test_max_price_and_region_filter_without_hiding_why(write_spec):
    spec = parse_spec(HELD_OUT, "spec.yaml")
    rows = {r.backend: r for r in plan.plan(spec, list(PRICED), live=False)}
    cap = sorted(r.hourly_usd for r in rows.values())[1]  # the two cheapest stay
    capped = {r.backend: r for r in plan.plan(spec, list(PRICED), live=False, max_price=cap)}
    assert sum(r.fits for r in capped.values()) == 2
    assert all("over --max-price" in r.reason for r in capped.values() if not r.fits)
    east = {r.backend: r for r in plan.plan(spec, list(PRICED), live=False, region="eastus")}
    assert east["azureml"].fits and east["azureml"].region == "eastus"
    assert east["lambda_cloud"].fits and east["lambda_cloud"].region == "all"  # one price everywhere
    assert not east["sagemaker"].fits and "us-east-1" in east["sagemaker"].reason  # says where it has prices


def test_a_missing_price_is_said_not_hidden(cli, write_spec):
    text = "name: p\nrun: x\nimage: i:1\nresources: {accelerators: H200:8}\nmax_runtime: 12h\n"
    row = plan.row_for("sagemaker", parse_spec(text, "spec.yaml"), live=False)
    assert row.fits and row.instance_type == "ml.p5en.48xlarge" and row.hourly_usd is None
    assert "no on-demand price" in row.reason and "--refresh" in row.reason
    table = cli("plan", str(write_spec(text)), "-b", "sagemaker", "-b", "hf_jobs", "--no-live", check_rc=0).stdout
    (line,) = [line for line in table.splitlines() if line.startswith("sagemaker")]
    assert "ml.p5en.48xlarge" in line and "no price" in line and "no on-demand price in the catalog" in line
    assert re.search(r"cheapest (ready|that fits): hf_jobs", table)  # the priced one is named, the other listed


def test_prices_past_ninety_days_are_marked_old_in_plan_and_catalog(cli, write_spec):
    """The boundary: 90 days is not old, 91 is; plan's row and both tables say so, and a row without
    a readable date counts as old (nothing to trust it by)."""
    from dataclasses import replace
    from datetime import timedelta

    offer = catalog.lookup("lambda_cloud", parse("H100:8"))
    today = date(2027, 1, 1)
    assert not replace(offer, as_of=(today - timedelta(days=90)).isoformat()).stale(today)
    assert replace(offer, as_of=(today - timedelta(days=91)).isoformat()).stale(today)
    assert replace(offer, as_of="").stale(today)
    spec = parse_spec("name: p\nrun: x\nimage: i:1\nresources: {accelerators: H100:8}\n", "spec.yaml")
    old = replace(offer, as_of=(date.today() - timedelta(days=91)).isoformat())
    fresh = replace(offer, as_of=date.today().isoformat())
    base = plan.PlanRow(backend="lambda_cloud", fits=False, gpus=8)
    assert plan._priced_row(base, old, spec).price_old and not plan._priced_row(base, fresh, spec).price_old
    shown = cli("plan", str(write_spec("name: p\nrun: x\nimage: i:1\nresources: {accelerators: H100:8}\n")),
                "-b", "vertex", "--no-live", check_rc=0).stdout  # Vertex's H100:8 row is dated 2026-04-07
    vertex = catalog.lookup("vertex", parse("H100:8"))
    assert (f"{vertex.as_of} (old)" in shown) == vertex.stale()
    listed = cli("catalog", "-b", "vertex", "-a", "H100:8", check_rc=0).stdout
    assert (f"{vertex.as_of} (old)" in listed) == vertex.stale()


def test_one_spec_carries_each_clouds_own_outputs(cli, write_spec):
    """SageMaker writes to the spec's s3:// outputs, Vertex to its gs:// override; Azure ML ignores
    the foreign one with a note instead of refusing; a plan without the override says which it needs."""
    settings = ("  sagemaker: {role_arn: 'arn:aws:iam::123456789012:role/R', region: us-east-1}\n"
                "  vertex: {project: my-project, region: us-central1, staging_bucket: 'gs://stage', "
                "outputs: 'gs://team-bucket/runs/pretrain/'}\n"
                "  azureml: {subscription_id: 11111111-2222-3333-4444-555555555555, resource_group: rg, "
                "workspace_name: my-workspace}\n")
    spec = write_spec(HELD_OUT.split("backends:")[0] + "backends:\n" + settings)
    sagemaker = cli("run", str(spec), "-b", "sagemaker", "--dry-run", check_rc=0).stdout
    assert "s3://team-bucket/runs/pretrain/" in sagemaker and "gs://team-bucket" not in sagemaker
    vertex = cli("run", str(spec), "-b", "vertex", "--dry-run", check_rc=0).stdout
    assert "gs://team-bucket/runs/pretrain/" in vertex and "s3://" not in vertex
    azure = cli("run", str(spec), "-b", "azureml", "--dry-run", check_rc=0)
    assert "s3://team-bucket/runs/pretrain/ is not used on azureml" in azure.stderr
    without = parse_spec(HELD_OUT.split("backends:")[0], "spec.yaml")
    row = plan.row_for("vertex", without, live=False)
    assert row.fits and row.hourly_usd and row.needs == "backends.vertex.outputs", row
    assert "needs backends.vertex.outputs" in row.reason
    bad = cli("validate", str(write_spec(HELD_OUT.replace('{outputs: "gs', '{outputs: 3, x: "gs'), "bad.yaml")),
              check_rc=2)
    assert "backends.vertex.outputs" in bad.stderr and "Traceback" not in bad.stderr


def test_a_backend_that_runs_no_spot_is_priced_on_demand_for_a_spot_spec():
    """CoreWeave sells spot, but the coreweave backend asks for none (run warns that spot: true is
    ignored): plan prices what run starts, on-demand, and says why; a spot-capable cloud keeps spot."""
    spec = parse_spec(HELD_OUT, "spec.yaml")
    coreweave = plan.row_for("coreweave", spec, live=False)
    offer = catalog.lookup("coreweave", parse("H100:8"))
    assert offer.spot_usd_hr and coreweave.hourly_usd == pytest.approx(offer.ondemand_usd_hr * 2)
    assert "run ignores spot: true" in coreweave.reason
    assert plan.submit_estimate("coreweave", spec) == pytest.approx(offer.ondemand_usd_hr * 2 * 12, abs=0.01)
    vertex = plan.row_for("vertex", spec, live=False)
    assert vertex.hourly_usd == pytest.approx(catalog.lookup("vertex", parse("H100:8")).spot_usd_hr * 2)
