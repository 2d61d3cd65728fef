"""TPU slices in the core: the forms `resources.accelerators` takes (TPU-v5e:8, Cloud TPU's own
v5litepod-8), the sizes each generation comes in, a TPU spec refused on a backend without TPUs
(one spec error naming those that have them, exit 2), and `launch plan` / `launch catalog`
showing the Vertex TPU option next to GPU backends that say plainly they have none.

The plan golden covers the backends this project ships prices for (-b), as the H100 one does;
regenerate it with UPDATE_GOLDEN=1 pytest tests/test_tpu.py -k golden and review the diff."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from helpers import check_golden

from launcher import catalog, plan, runner
from launcher.accelerators import parse
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "plan" / "tpu_v5e_8_4h.json"
PRICED = ("sagemaker", "vertex", "azureml", "lambda_cloud")
TPU_SPEC = """name: tpu
image: us-docker.pkg.dev/vertex-ai/training/tf-tpu.2-17.py310:latest
run: python train.py
resources:
  accelerators: TPU-v5e:8
max_runtime: 4h
"""
KEPT = ("backend", "fits", "instance_type", "nodes", "gpus", "ondemand_usd_hr", "spot_usd_hr", "hourly_usd",
        "est_cost_usd", "region", "price_as_of", "price_estimate", "reason")


@pytest.mark.parametrize(("text", "shown", "chips", "hosts", "topology"), [
    ("TPU-v5e:8", "TPU-v5e:8", 8, 1, "2x4"),
    ("v5litepod-8", "TPU-v5e:8", 8, 1, "2x4"),
    ("tpu_v5e:16", "TPU-v5e:16", 16, 4, "4x4"),
    ("TPU-v5p:8", "TPU-v5p:8", 4, 1, "2x2x1"),        # v5p counts TensorCores: 2 per chip
    ("v5p-16", "TPU-v5p:16", 8, 2, "2x2x2"),
    ("TPU-v6e:8", "TPU-v6e:8", 8, 1, "2x4"),
    ("trillium:4", "TPU-v6e:4", 4, 1, "2x2"),
    ("TPU-v4:8", "TPU-v4:8", 4, 1, "2x2x1"),
    ("v4-32", "TPU-v4:32", 16, 4, "2x2x4"),
    ("TPU-v3:8", "TPU-v3:8", 4, 1, "2x2"),
    ("v2-32", "TPU-v2:32", 16, 4, "4x4"),
])
def test_accepted_tpu_forms(text, shown, chips, hosts, topology):
    accel = parse(text)
    assert (str(accel), accel.is_tpu, accel.chips, accel.hosts, accel.topology) == (shown, True, chips, hosts,
                                                                                      topology)


@pytest.mark.parametrize(("text", "fragment"), [
    ("TPU-v5e", "needs its slice size"),
    ("TPU-v5e:12", "slices of 1, 4, 8, 16"),
    ("v5p-12", "TPU-v5p comes in slices of 8, 16"),
    ("TPU-v6e:x", "not a whole number"),
    ("TPU-v9:8", "unknown accelerator"),
])
def test_sizes_a_generation_does_not_come_in_are_refused(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(text)


def test_gpu_spellings_still_mean_gpus():
    assert [str(parse(t)) for t in ("V100", "v100:2", "a100-80gb:8", "H100:8")] == \
        ["V100:1", "V100:2", "A100-80GB:8", "H100:8"]
    assert not parse("H100:8").is_tpu and parse("H100:8").chips == 8 and parse("H100:8").topology is None


def test_a_bad_slice_in_a_spec_points_at_its_line():
    with pytest.raises(SpecError) as caught:
        parse_spec(TPU_SPEC.replace("TPU-v5e:8", "TPU-v5e:12"), "spec.yaml")
    assert "spec.yaml:5" in str(caught.value) and "resources.accelerators" in str(caught.value)


@pytest.mark.parametrize("backend", ["sagemaker", "kubernetes"])
def test_a_gpu_backend_refuses_a_tpu_spec_naming_the_backends_with_tpus(backend, launch_home):
    spec = parse_spec(TPU_SPEC, "spec.yaml")
    with pytest.raises(SpecError) as caught:
        runner.prepare(spec, backend, dry_run=True)
    text = str(caught.value)
    assert f"spec.yaml:5: resources.accelerators: the {backend} backend has no TPUs" in text
    assert "(vertex)" in text  # the backends that have them


def test_local_refuses_a_tpu_spec_with_exit_2(cli, write_spec):
    result = cli("run", str(write_spec(TPU_SPEC)), "--backend", "local", "--dry-run", check_rc=2)
    assert "resources.accelerators: the local backend has no TPUs" in result.stderr
    assert "Traceback" not in result.stderr


def test_golden_plan_shows_the_vertex_tpu_next_to_gpu_backends_without_tpus(cli, write_spec):
    names = [arg for name in PRICED for arg in ("-b", name)]
    rows = json.loads(cli("plan", str(write_spec(TPU_SPEC)), *names, "--no-live", "-o", "json", check_rc=0).stdout)
    got = sorted(({key: row[key] for key in KEPT} for row in rows), key=lambda row: row["backend"])
    check_golden(GOLDEN, got)
    by_name = {row["backend"]: row for row in got}
    vertex = by_name.pop("vertex")
    assert vertex["fits"] and vertex["instance_type"] == "ct5lp-hightpu-8t" and vertex["hourly_usd"] == 9.6
    assert vertex["est_cost_usd"] == pytest.approx(38.4) and "v5litepod-8" in vertex["reason"]
    for row in by_name.values():
        assert not row["fits"] and "no TPUs here" in row["reason"] and "vertex" in row["reason"], row


def test_plan_prices_a_multi_host_slice_as_the_whole_slice():
    spec = parse_spec(TPU_SPEC.replace("TPU-v5e:8", "TPU-v5p:16"), "spec.yaml")
    (row,) = plan.plan(spec, ["vertex"], live=False)
    assert row.fits and row.instance_type == "ct5p-hightpu-4t" and row.nodes == 1 and row.gpus == 8
    assert row.hourly_usd == 33.6 and "2 host(s)" in row.reason


def test_every_shipped_slice_is_priced_with_its_source():
    """Each Vertex TPU row carries a whole-slice price (an estimate: Cloud TPU rates) and where it came from."""
    slices = [offer for offer in catalog.backend_offers("vertex") if parse(f"{offer.accelerator}:{offer.count}").is_tpu]
    assert slices and all(o.ondemand_usd_hr and o.spot_usd_hr and o.estimate for o in slices), slices
    assert all(o.source.startswith("https://github.com/skypilot-org/skypilot-catalog/blob/") for o in slices)


def test_plan_says_so_when_a_slice_has_no_price(monkeypatch):
    """A slice whose row lost its price (a plugin's, or a price list that lacks it) is listed as fitting
    with the reason, not left out."""
    real = catalog.priced
    monkeypatch.setattr(catalog, "priced", lambda offer, region=None: dataclasses.replace(
        real(offer, region), ondemand_usd_hr=None, spot_usd_hr=None))
    (row,) = plan.plan(parse_spec(TPU_SPEC.replace("TPU-v5e:8", "TPU-v6e:16"), "spec.yaml"), ["vertex"], live=False)
    assert row.fits and row.instance_type == "ct6e-standard-4t" and row.hourly_usd is None
    assert "no on-demand price" in row.reason and row.est_cost_usd is None


def test_catalog_lists_a_tpu_slice(cli):
    rows = json.loads(cli("catalog", "-a", "TPU-v5e:8", "-o", "json", check_rc=0).stdout)
    assert [(r["backend"], r["instance_type"], r["provider_accelerator"]) for r in rows] == \
        [("vertex", "ct5lp-hightpu-8t", "v5litepod-8")]
    assert rows[0]["ondemand_usd_hr"] == 9.6 and rows[0]["estimate"] and rows[0]["source"].startswith("https://")


def test_a_pinned_tpu_machine_keeps_the_slice_price():
    text = TPU_SPEC.replace("TPU-v5e:8", "TPU-v5e:16") + "backends:\n  vertex:\n    machine_type: ct5lp-hightpu-4t\n"
    (row,) = plan.plan(parse_spec(text, "spec.yaml"), ["vertex"], live=False)
    assert row.instance_type == "ct5lp-hightpu-4t" and row.hourly_usd == 19.2  # v5litepod-16, not v5litepod-4


def test_a_tpu_spec_round_trips_through_the_record():
    spec = parse_spec(TPU_SPEC.replace("TPU-v5e:8", "v5p-16"), "spec.yaml")
    record = spec.to_record()
    assert record["resources"]["accelerators"] == "TPU-v5p:16"
    assert type(spec).model_validate(record).resources.accelerators == parse("TPU-v5p:16")
