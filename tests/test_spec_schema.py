"""`launch schema` describes `backends.<name>` with each installed backend's own settings, so an
editor completes and checks `backends.sagemaker:` the way the loader does, without importing
any provider SDK to build it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from launcher import registry

REPO = Path(__file__).resolve().parent.parent
FULL = """
name: full
run: python train.py
env: {EPOCHS: 3, DEBUG: true}
resources: {accelerators: H100:8, nodes: 2}
distributed: none
backends:
  local: {cancel_grace: 10s}
  ssh:
    hosts: [ubuntu@gpu-node-0, {address: ubuntu@gpu-node-1, internal_address: 10.0.0.2}]
    cancel_grace: 30s
    host_key_checking: accept-new
  sagemaker:
    region: us-east-1
    role_arn: arn:aws:iam::123456789012:role/Train
    max_wait: 48h
    vpc: {subnets: [subnet-1], security_group_ids: [sg-1]}
  vertex: {project: my-project, region: us-central1, staging_bucket: gs://my-bucket, machine_type: a2-highgpu-8g,
           outputs: "gs://my-bucket/runs/"}
  azureml: {subscription_id: 00000000-1111-2222-3333-444444444444, resource_group: rg, workspace_name: my-ws}
  lambda_cloud: {ssh_key_name: me, regions: [us-east-1], boot_timeout: 20m}
"""


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    from launcher.spec import json_schema

    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _errors(validator, data) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]


def test_every_installed_backend_has_its_settings_in_the_schema(validator):
    sections = validator.schema["properties"]["backends"]["properties"]
    for name in registry.names():
        (model_schema, _null) = sections[name]["anyOf"]
        assert set(model_schema["properties"]) == set(registry.settings_model(name).model_fields) | {"outputs"}, name


def test_a_spec_the_loader_takes_the_schema_takes(validator):
    from launcher.spec import parse_spec

    parse_spec(FULL, "full.yaml")  # the loader accepts it ...
    assert _errors(validator, yaml.safe_load(FULL)) == []  # ... and so does the schema


@pytest.mark.parametrize("path", sorted(REPO.glob("job_specs/*.yaml")), ids=lambda p: p.name)
def test_the_shipped_specs_match_the_schema(validator, path):
    assert _errors(validator, yaml.safe_load(path.read_text())) == []


@pytest.mark.parametrize(("section", "fragment"), [
    ("sagemaker: {regoin: us-east-1}", "regoin"),
    ("sagemaker: {region: US-EAST-1}", "US-EAST-1"),
    ("ssh: {host_key_checking: 'no'}", "'no'"),
    ("vertex: {instance_type: a2-highgpu-8g}", "instance_type"),
    ("sagmaker: {}", "sagmaker"),
])
def test_the_schema_refuses_what_the_loader_refuses(validator, section, fragment):
    data = {"name": "x", "run": "y", "backends": yaml.safe_load(section)}
    errors = _errors(validator, data)
    assert errors and fragment in " ".join(errors), errors


def test_the_schema_imports_no_provider_sdk():
    # namespace packages a .pth file loads at start-up (google, google.cloud) are not the SDK: count what is new
    probe = ("import sys, json; sdk = lambda: {m for m in sys.modules if m.split('.')[0] in "
             "('boto3', 'botocore', 'google', 'azure', 'requests', 'kubernetes')}; before = sdk(); "
             "from launcher.spec import json_schema; json_schema(); print(json.dumps(sorted(sdk() - before)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(result.stdout) == []
