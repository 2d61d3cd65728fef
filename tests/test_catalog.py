"""The catalog data is consistent with itself and with our accelerator names."""

from __future__ import annotations

import re
from datetime import date

import pytest

from launcher import accelerators, catalog

BACKENDS = {"sagemaker", "vertex", "azureml", "lambda_cloud"}


def test_every_row_is_well_formed():
    rows = catalog.offers()
    assert len(rows) > 50
    for row in rows:
        assert row.backend in BACKENDS, row
        assert accelerators.canonical_name(row.accelerator) == row.accelerator, row
        assert 1 <= row.count <= 16, row
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
        if row.backend == "vertex":
            assert row.provider_accelerator.startswith("NVIDIA_"), row


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
