"""The catalog data is consistent with itself and with our accelerator names."""

from __future__ import annotations

import json
import re
from datetime import date

import pytest

from launcher import accelerators, catalog

BACKENDS = {"sagemaker", "vertex", "azureml", "lambda_cloud", "hf_jobs", "pai_dlc", "coreweave", "tione", "aihc"}


def test_every_row_is_well_formed():
    rows = catalog.offers()
    assert len(rows) > 50
    for row in rows:
        assert row.backend in BACKENDS, row
        assert accelerators.canonical_name(row.accelerator) == row.accelerator, row
        accelerators.parse(f"{row.accelerator}:{row.count}")  # GPUs 1-16 per node; TPUs a slice size they come in
        assert row.source.startswith("https://"), row
        date.fromisoformat(row.as_of)
        for price in (row.ondemand_usd_hr, row.spot_usd_hr):
            assert price is None or 0 < price < 500, row
        if row.spot_usd_hr and row.ondemand_usd_hr:
            assert row.spot_usd_hr < row.ondemand_usd_hr, row


def test_instance_names_agree_with_gpu_counts():
    """Provider names encode the GPU count; a row that disagrees is a data-entry error."""
    for row in catalog.offers():
        if match := re.fullmatch(r"(a3-highgpu|a2-ultragpu|a2-highgpu|a2-megagpu)-(\d+)g", row.instance_type):
            assert int(match.group(2)) == row.count, row
        if match := re.fullmatch(r"gpu_(\d+)x_.*", row.instance_type):
            assert int(match.group(1)) == row.count, row
        if row.backend == "sagemaker":
            assert row.instance_type.startswith("ml."), row
        if row.backend == "vertex":  # a TPU row names Cloud TPU's slice (v5litepod-8), unique per machine type
            tpu = accelerators.parse(f"{row.accelerator}:{row.count}")
            assert row.provider_accelerator == (tpu.cloud_name if tpu.is_tpu else row.provider_accelerator), row
            assert tpu.is_tpu or row.provider_accelerator.startswith("NVIDIA_"), row
        if row.backend == "hf_jobs" and (match := re.fullmatch(r"[a-z0-9]+?(?:-large)?x(\d+)", row.instance_type)):
            assert int(match.group(1)) == row.count, row


@pytest.mark.parametrize(("backend", "request_text", "instance_type"), [
    ("vertex", "H100:8", "a3-highgpu-8g"),
    ("vertex", "A100-80GB:8", "a2-ultragpu-8g"),
    ("vertex", "a100:1", "a2-highgpu-1g"),
    ("vertex", "L4", "g2-standard-4"),
    ("sagemaker", "H100:8", "ml.p5.48xlarge"),
    ("sagemaker", "A100-80GB:8", "ml.p4de.24xlarge"),
    ("azureml", "H100:8", "Standard_ND96isr_H100_v5"),
    ("azureml", "A100-80GB:8", "Standard_ND96amsr_A100_v4"),
    ("lambda_cloud", "H100:8", "gpu_8x_h100_sxm5"),
])
def test_default_lookup(backend, request_text, instance_type):
    assert catalog.lookup(backend, accelerators.parse(request_text)).instance_type == instance_type


def test_missing_count_lists_the_counts_that_exist():
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.lookup("sagemaker", accelerators.parse("H100:3"))
    assert "H100:8" in caught.value.message and "H100:3" in caught.value.message


def test_missing_type_lists_the_types_that_exist():
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.lookup("lambda_cloud", accelerators.parse("T4:1"))
    assert "no T4" in caught.value.message and "H100:8" in caught.value.message


def test_the_catalog_is_every_installed_backend_rows_merged():
    """No core price list: each backend's own rows (its catalog_rows), in its own order, under its registry name."""
    from launcher import registry

    merged = catalog.offers()
    for name in registry.names():
        own = registry.backend_class(name).catalog_rows()
        assert [o.instance_type for o in merged if o.backend == name] == [row["instance_type"] for row in own], name
    assert {o.backend for o in merged} == BACKENDS  # local and ssh run on machines you provide: no rows


def test_a_backend_added_later_brings_its_rows(monkeypatch):
    from launcher import registry

    class Priced:
        name = "priced"

        @classmethod
        def catalog_rows(cls):
            return [{"accelerator": "H100", "count": "2", "instance_type": "p-2x", "provider_accelerator": "",
                     "vcpus": "", "memory_gb": "", "ondemand_usd_hr": "9.5", "spot_usd_hr": "", "region": "r",
                     "source": "https://example.invalid", "as_of": "2026-11-30"}]

    real = registry.backend_class
    monkeypatch.setattr(registry, "names", lambda: ["priced", "vertex"])
    monkeypatch.setattr(registry, "backend_class", lambda name: Priced if name == "priced" else real(name))
    catalog.backend_offers.cache_clear()
    try:
        offer = catalog.lookup("priced", accelerators.parse("H100:2"))
        assert (offer.instance_type, offer.ondemand_usd_hr, offer.vcpus) == ("p-2x", 9.5, None)
        assert catalog.lookup("vertex", accelerators.parse("H100:8")).instance_type == "a3-highgpu-8g"
    finally:
        catalog.backend_offers.cache_clear()


def test_a_bad_value_in_a_backend_csv_names_file_line_and_field(tmp_path):
    path = tmp_path / "mine_catalog.csv"
    path.write_text(",".join(catalog.COLUMNS) + "\n"
                    "T4,1,t4-box,NVIDIA T4,4,16,0.5,,r,https://example.invalid,2026-11-30\n"
                    "T4,2,t4-two,NVIDIA T4,8,32,one dollar,,r,https://example.invalid,2026-11-30\n")
    good, bad = catalog.rows_from_csv(path)
    assert catalog._offer("mine", good, good.where).ondemand_usd_hr == 0.5
    with pytest.raises(catalog.CatalogError) as caught:
        catalog._offer("mine", bad, bad.where)
    assert caught.value.message == f"{path}:3: ondemand_usd_hr 'one dollar' is not a number"


def test_a_row_with_more_fields_than_the_header_names_its_line(tmp_path):
    """An unquoted comma in a note splits the row: refused at its line, not read with the note cut short."""
    path = tmp_path / "mine_catalog.csv"
    path.write_text(",".join(catalog.COLUMNS) + ",note\n"
                    "T4,1,t4-box,NVIDIA T4,4,16,0.5,,r,https://example.invalid,2026-11-30,a note, cut here\n")
    (row,) = catalog.rows_from_csv(path)
    with pytest.raises(catalog.CatalogError) as caught:
        catalog._offer("mine", row, row.where)
    assert caught.value.message.startswith(f"{path}:2: the row has 1 field(s) more than the header")
    assert "double quotes" in caught.value.hint


def test_a_csv_without_the_catalog_columns_is_refused_at_its_header(tmp_path):
    path = tmp_path / "mine_catalog.csv"
    path.write_text("accelerator,count,instance\nT4,1,x\n")
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.rows_from_csv(path)
    assert caught.value.message.startswith(f"{path}:1: the catalog header lacks instance_type, ")


def test_the_pinning_setting_is_the_one_the_backend_declares():
    assert catalog.pinned_setting("vertex") == "machine_type"
    assert catalog.pinned_setting("sagemaker") == "instance_type"
    assert catalog.pinned_setting("not-installed") == "instance_type"
    with pytest.raises(catalog.CatalogError) as caught:
        catalog.lookup("vertex", accelerators.parse("H100:3"))
    assert "backends.vertex.machine_type" in caught.value.hint


def test_choosing_on_one_backend_loads_no_other_backend():
    """Renders ask the catalog: one backend's rows load only that backend's module, so a dry run on
    SageMaker does not pay for importing Vertex, Azure ML, Lambda Cloud or ssh."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\nfrom launcher import accelerators, catalog\n"
            "offer = catalog.choose('sagemaker', accelerators.parse('H100:8'))\n"
            "print(json.dumps([offer.instance_type, sorted(m for m in sys.modules if m.startswith('backends.'))]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    instance_type, loaded = json.loads(result.stdout)
    assert instance_type == "ml.p5.48xlarge"
    assert "backends.sagemaker" in loaded
    assert not [m for m in loaded if m.split(".")[1] in {"vertex", "azureml", "lambda_cloud", "ssh", "remote"}]


# the settings each backend's render needs before it gets to the machine (no network is used)
RENDER_SETTINGS = {
    "sagemaker": {"region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/R", "bucket": "team-bucket"},
    "vertex": {"project": "my-project", "region": "us-central1", "staging_bucket": "gs://team-bucket"},
    "azureml": {"subscription_id": "11111111-2222-3333-4444-555555555555", "resource_group": "rg",
                "workspace_name": "my-workspace"},
    "lambda_cloud": {"ssh_key_name": "k"},
    "pai_dlc": {"region": "cn-hangzhou", "workspace_id": "ws-123", "bucket": "team-bucket"},
    "tione": {"region": "ap-guangzhou", "cos_bucket": "team-1250000000"},
    "aihc": {"resource_pool_id": "cce-1uji3ib5", "queue": "default", "bos_bucket": "team-bucket"},
}


def _accelerators(offer: catalog.Offer) -> accelerators.Accelerator:
    return accelerators.parse(f"{offer.accelerator}:{offer.count}")


def _rendered(offer: catalog.Offer, pin: bool):
    """The request `launch run --dry-run` makes for a spec asking for the row's accelerators (with the
    row's machine pinned where the backend pins by instance type), or the SpecError it refuses with."""
    from launcher import runner
    from launcher.errors import SpecError
    from launcher.spec import parse_spec

    settings = dict(RENDER_SETTINGS.get(offer.backend, {}))
    if pin:
        settings[catalog.pinned_setting(offer.backend)] = offer.instance_type
    text = (f"name: p\nimage: 763104351884.dkr.ecr.us-east-1.amazonaws.com/pt:2\nrun: python train.py\n"
            f"resources: {{accelerators: '{offer.accelerator}:{offer.count}'}}\n"
            f"backends:\n  {offer.backend}: {json.dumps(settings)}\n")
    try:
        backend, spec = runner.backend_and_spec(offer.backend, parse_spec(text, "spec.yaml"))
        return json.dumps(backend.render(spec, "catalog-check", None, {}).payload, default=str), None
    except SpecError as exc:
        return None, exc


def test_every_row_renders_on_its_backend():
    """A catalog row a backend's render refuses would be priced by plan and listed by `catalog`, then
    fail at `launch run`. Every row renders with its machine (pinned where the backend pins by instance
    type, else as the default for its accelerators); a CoreWeave row whose node label is unknown says
    so in its note, and render names the setting to give instead."""
    checked = 0
    for offer in catalog.offers():
        pin = catalog.pinned_setting(offer.backend) != "gpu_class"  # CoreWeave pins a node label, not a type
        if not pin and catalog.find(offer.backend, _accelerators(offer))[0] != offer:
            continue  # a second CoreWeave row for the same accelerators is reached only by its label
        payload, refused = _rendered(offer, pin)
        if refused is not None:
            fix = f"backends.{offer.backend}.gpu_class"
            assert not pin and fix in str(refused) and f"set {fix}" in offer.note, (offer, refused.problems)
            continue
        assert offer.instance_type in payload or offer.provider_accelerator in payload, offer
        checked += 1
    assert checked > 50


def test_a_row_without_a_price_says_why():
    """No price is invented: a row without one keeps it empty and its note says why (and what would
    give one), so plan and catalog can show "no price" with the reason instead of hiding the row."""
    unpriced = [o for o in catalog.offers() if o.ondemand_usd_hr is None and o.spot_usd_hr is None]
    assert unpriced
    for offer in unpriced:
        assert offer.note.startswith(("no ", "your pool:")), offer
        assert "price" in offer.note, offer


CURRENT = {  # the current GPU generations and which backends' catalogs offer them
    "H200:8": {"sagemaker", "vertex", "azureml", "hf_jobs", "coreweave"},
    "B200:8": {"sagemaker", "vertex", "lambda_cloud", "coreweave"},
    "GH200:1": {"lambda_cloud", "coreweave"},
    "MI300X:8": {"azureml"},
}


@pytest.mark.parametrize("request_text", sorted(CURRENT))
def test_catalog_lists_every_backend_offering_a_current_generation(cli, request_text):
    rows = json.loads(cli("catalog", "-a", request_text, "-o", "json", check_rc=0).stdout)
    assert {row["backend"] for row in rows} == CURRENT[request_text]
    for row in rows:
        assert row["source"].startswith("https://") and row["as_of"], row
        assert row["ondemand_usd_hr"] or row["spot_usd_hr"] or row["note"].startswith("no "), row
    text = cli("catalog", "-a", request_text, check_rc=0).stdout
    assert all(re.search(rf"^{name}\s", text, re.M) for name in CURRENT[request_text]), text
