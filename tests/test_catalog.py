"""The catalog data is consistent with itself and with our accelerator names."""

from __future__ import annotations

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
