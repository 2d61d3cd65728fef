"""Every example in job_specs/ is valid for the backend it is written for, settings included:
the README tells users to copy them."""

from __future__ import annotations

from pathlib import Path

import pytest

from launcher import runner
from launcher.spec import load_spec

SPECS = sorted((Path(__file__).resolve().parent.parent / "job_specs").glob("*.yaml"))


def test_there_is_an_example_per_backend():
    assert {p.stem for p in SPECS} >= {"quickstart", "ssh", "sagemaker", "vertex", "azureml", "lambda_cloud",
                                       "hf_jobs", "pai_dlc", "slurm", "tione", "aihc", "azure_openai"}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_example_spec_is_valid_for_its_backend(path, launch_home):
    spec = load_spec(path)
    backend = "local" if path.stem == "quickstart" else path.stem.removesuffix("_tpu")  # vertex_tpu: vertex
    assert set(spec.backends) <= {backend}, f"{path.name} has settings for other backends"
    runner.backend_for(backend, spec.backends.get(backend, {}), origin=str(path))
