"""SageMaker render: golden requests, botocore's own shape check, and the rules botocore skips.

Golden files hold the exact CreateTrainingJob payload; regenerate them with
UPDATE_GOLDEN=1 after an intended change and review the diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.botocore_model import violations
from helpers import check_golden

from backends.sagemaker import SageMakerBackend
from backends.sagemaker.instance_types import TRAINING_INSTANCE_TYPES
from backends.sagemaker.render import TOPOLOGY, tag_text_ok, training_job_name
from backends.sagemaker.states import map_state
from launcher.backend import JobState
from launcher.bundle import Bundle
from launcher.errors import SpecError
from launcher.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "sagemaker"
JOB_ID = "golden-20260101-000000-abcdef"
ROLE = "arn:aws:iam::123456789012:role/Train"
SETTINGS = {"region": "us-east-1", "role_arn": ROLE, "bucket": "team-bucket"}
BUNDLE = Bundle(path=Path("/tmp/bundle.tar.gz"), digest="d" * 64, size=10, file_count=1)

CASES = {
    "t4_on_demand": ("name: golden\nimage: img:1\nrun: python train.py\n"
                     "resources:\n  accelerators: T4:1\n", None),
    "h100x8_2nodes_spot_checkpoints": (
        "name: golden\nimage: img:1\nrun: python train.py\nresources:\n  accelerators: H100:8\n  nodes: 2\n"
        "spot: true\nmax_runtime: 24h\ncheckpoint_dir: /opt/ml/checkpoints\ndistributed: torchrun\n"
        "backends:\n  sagemaker:\n    max_wait: 36h\n", None),
    "cpu_only": ("name: golden\nimage: img:1\nrun: echo hi\n", None),
    "every_optional_field": (
        "name: golden\nimage: img:1\ncode: .\nsetup: pip install -r requirements.txt\nrun: python train.py\n"
        "env: {WANDB_PROJECT: demo, EPOCHS: 3}\nsecrets: [WANDB_API_KEY]\n"
        "resources:\n  accelerators: A100-80GB:8\n  nodes: 4\n  disk_gb: 500\n"
        "distributed: torchrun\nspot: true\nmax_runtime: 12h\nretries: 2\ncheckpoint_dir: /ckpt\n"
        "outputs: s3://team-bucket/runs/\n"
        "backends:\n  sagemaker:\n    volume_size_gb: 800\n    max_wait: 48h\n"
        "    vpc: {subnets: [subnet-1], security_group_ids: [sg-1]}\n", "ci-run-42"),
}


def render(text: str, key: str | None = None, settings: dict | None = None, tmp_dir: Path | None = None):
    spec = parse_spec(text, "spec.yaml", base_dir=tmp_dir or Path(__file__).parent)
    merged = {**SETTINGS, **(settings or {}), **spec.backends.get("sagemaker", {})}
    backend = SageMakerBackend(merged)
    secrets = {name: "****" for name in spec.secrets}
    return backend.render(spec, JOB_ID, BUNDLE if spec.code else None, secrets, idempotency_key=key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_request(case):
    text, key = CASES[case]
    request = render(text, key)
    shown = {"payload": request.payload, "uploads": [u.destination for u in request.uploads]}
    path = GOLDEN / f"{case}.json"
    check_golden(path, shown)


@pytest.mark.parametrize("case", sorted(CASES))
def test_payload_matches_botocore_model(case):
    """Every golden payload keeps to botocore's model: types and required members (botocore's own validator)
    and the maximums, patterns and enums AWS enforces."""
    from botocore.session import get_session

    shape = get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob").input_shape
    text, key = CASES[case]
    assert violations(render(text, key).payload, shape) == []


def test_vendored_instance_types_are_botocores_enum():
    from botocore.session import get_session

    enum = get_session().get_service_model("sagemaker").shape_for("TrainingInstanceType").enum
    assert list(TRAINING_INSTANCE_TYPES) == enum, (
        "botocore's TrainingInstanceType changed: refresh backends/sagemaker/instance_types.py "
        f"(added {sorted(set(enum) - set(TRAINING_INSTANCE_TYPES))}, "
        f"gone {sorted(set(TRAINING_INSTANCE_TYPES) - set(enum))})")


def test_catalog_instance_types_are_in_the_enum():
    """What render picks without an explicit instance_type must pass the same check."""
    from launcher import catalog

    chosen = {offer.instance_type for offer in catalog.offers() if offer.backend == "sagemaker"}
    assert chosen and chosen <= set(TRAINING_INSTANCE_TYPES), chosen - set(TRAINING_INSTANCE_TYPES)


def test_explicit_instance_type_outside_the_enum_is_a_spec_error():
    spec = "name: x\nimage: i\nrun: r\nbackends:\n  sagemaker:\n    instance_type: {}\n"
    text = problems(spec.format("ml.bogus.huge"))  # of the ml.<family>.<size> form, but no such machine
    assert "spec.yaml:6: backends.sagemaker.instance_type" in text
    assert "'ml.bogus.huge' is not a SageMaker training instance type" in text
    assert "did you mean 'ml.g5.2xlarge'?" in problems(spec.format("ml.g5.2xlarg"))
    assert render(spec.format("ml.g5.2xlarge")).payload["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"


# letters, separators and numbers of any script, and _ . : / = + - @ (AWS's tag pattern)
TAG_ACCEPTED = ["ci run 42", "gh-123_4.5:6/7=8+9@x", "caf\u00e9", "\u4e2d\u6587", "\u0663\u2167\u00bd",
                "no\u00a0break", "ideographic\u3000space", "line\u2028separator"]
# what Python's [\w\s] took and AWS refuses: tabs, newlines and other control characters; other punctuation
TAG_REFUSED = ["a\tb", "a\nb", "trailing newline\n", "a\rb", "a\x0bb", "a\x0cb", "a\x1cb", "a\x85b",
               "a#b", "a!b", "a,b", "zero\u200bwidth", "combining\u0301"]


@pytest.mark.parametrize("key", TAG_ACCEPTED)
def test_idempotency_keys_aws_accepts_are_accepted(key):
    tags = render(CASES["cpu_only"][0], key).payload["Tags"]
    assert {"Key": "launch:idempotency-key", "Value": key} in tags


@pytest.mark.parametrize("key", TAG_REFUSED)
def test_idempotency_keys_aws_refuses_are_a_clear_error(key):
    with pytest.raises(SpecError) as caught:
        render(CASES["cpu_only"][0], key)
    assert "--idempotency-key" in str(caught.value) and "tag values allow" in str(caught.value)


def test_tag_check_is_botocores_pattern_for_every_character():
    """AWS's pattern is Java's [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*; compared (with the regex module, which reads
    \\p{..}) on every code point Python's Unicode database assigns."""
    import unicodedata

    import regex
    from botocore.session import get_session

    pattern = regex.compile(get_session().get_service_model("sagemaker").shape_for("TagValue").metadata["pattern"])
    differ = [hex(point) for point in range(0x110000)
              if unicodedata.category(chr(point)) not in ("Cn", "Cs")
              and tag_text_ok(chr(point)) != bool(pattern.fullmatch(chr(point)))]
    assert differ == []


def test_instance_types_in_goldens_are_known_to_botocore():
    from botocore.session import get_session

    enum = (get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
            .input_shape.members["ResourceConfig"].members["InstanceType"].enum)
    for case in CASES.values():
        assert render(*case).payload["ResourceConfig"]["InstanceType"] in enum


def problems(text: str, settings: dict | None = None) -> str:
    with pytest.raises(SpecError) as caught:
        render(text, settings=settings)
    return str(caught.value)


def test_missing_size_names_the_sizes_that_exist():
    text = problems("name: x\nimage: i\nrun: r\nresources:\n  accelerators: H100:3\n")
    assert "spec.yaml:5" in text and "resources.accelerators" in text and "H100:8" in text


def test_env_key_with_dash_is_refused_at_its_line():
    text = problems("name: x\nimage: i\nrun: r\nenv:\n  MY-VAR: a\n")
    assert "spec.yaml:5: env.MY-VAR" in text


def test_env_value_over_sagemakers_limit():
    text = problems("name: x\nimage: i\nrun: r\nenv:\n  OK: a\n  BIG: " + "x" * 600 + "\n")
    assert "spec.yaml:6: env.BIG" in text and "512" in text


def test_spot_wait_shorter_than_runtime():
    text = problems("name: x\nimage: i\nrun: r\nspot: true\nmax_runtime: 10h\n"
                    "backends:\n  sagemaker:\n    max_wait: 2h\n")
    assert "backends.sagemaker.max_wait" in text and "spec.yaml:8" in text and "at least max_runtime" in text


def test_missing_and_malformed_role():
    assert "role_arn" in problems("name: x\nimage: i\nrun: r\n", settings={"role_arn": None})
    text = problems("name: x\nimage: i\nrun: r\n", settings={"role_arn": "Train"})
    assert "is not an IAM role ARN" in text


def test_image_required():
    assert "container image" in problems("name: x\nrun: r\n")


def test_seventy_char_name_trimmed_but_unique():
    long_id = "a" * 70 + "-20260101-000000-abcdef"
    name = training_job_name(long_id)
    assert len(name) <= 63 and name.endswith("-20260101-000000-abcdef")
    other = training_job_name("a" * 70 + "-20260101-000000-123456")
    assert name != other
    spec = "name: " + "n" * 63 + "\nimage: i\nrun: r\n"
    assert len(render(spec).payload["TrainingJobName"]) <= 63


def test_commands_travel_as_files_not_environment():
    long_run = "python train.py " + "--flag " * 200
    request = render(f"name: x\nimage: i\nrun: {long_run}\nsetup: echo s\n")
    contents = {u.destination.rsplit("/", 1)[1]: u.content for u in request.uploads if u.content is not None}
    assert contents == {"run.sh": long_run.strip(), "setup.sh": "echo s", "topology.sh": TOPOLOGY}
    assert all(len(v) <= 512 for v in request.payload["Environment"].values())


@pytest.mark.parametrize(("status", "secondary", "state"), [
    ("InProgress", "Starting", JobState.STARTING),
    ("InProgress", "Training", JobState.RUNNING),
    ("InProgress", "Pending", JobState.PENDING),
    ("InProgress", "SomethingNew", JobState.RUNNING),
    ("Completed", "Completed", JobState.SUCCEEDED),
    ("Failed", "Failed", JobState.FAILED),
    ("Stopping", "Stopping", JobState.CANCELLING),
    ("Stopped", "Stopped", JobState.CANCELLED),
    ("Stopped", "MaxRuntimeExceeded", JobState.FAILED),
    ("Stopped", "MaxWaitTimeExceeded", JobState.FAILED),
    ("Deleting", None, JobState.UNKNOWN),
    ("BrandNew", None, JobState.UNKNOWN),
])
def test_state_table(status, secondary, state):
    assert map_state(status, secondary) is state


def test_dry_run_never_imports_boto3(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: x\nimage: i\nrun: r\nbackends:\n  sagemaker:\n"
                    f"    region: us-east-1\n    role_arn: {ROLE}\n    bucket: b-bucket\n"
                    "    instance_type: ml.g5.2xlarge\n")  # checked against the enum, without botocore
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['launch', 'run', {str(spec)!r}, '--backend', 'sagemaker', '--dry-run']\n"
        "try:\n    runpy.run_module('launcher', run_name='__main__')\nexcept SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "LAUNCH_HOME": str(tmp_path / "home")}, timeout=60)
    assert result.returncode == 0, result.stderr
    *dry_run, imported = result.stdout.strip().splitlines()
    assert imported == "[]"  # no boto3 or botocore module was loaded
    shown = json.loads("\n".join(dry_run))  # and the dry run did print the request
    assert shown["operation"] == "CreateTrainingJob"
    assert shown["payload"]["TrainingJobName"].startswith("x-")
    assert shown["payload"]["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"


def test_module_imports_and_renders_without_boto3(tmp_path):
    """The backend module must load (for --help, list, dry runs) on a machine without boto3."""
    probe = (
        "import sys\n"
        "sys.modules['boto3'] = None\nsys.modules['botocore'] = None\n"  # import of either now fails
        "from backends.sagemaker import SageMakerBackend\n"
        "from launcher.spec import parse_spec\n"
        "spec = parse_spec('name: x\\nimage: i\\nrun: r\\n', 'spec.yaml')\n"
        f"backend = SageMakerBackend({{'region': 'us-east-1', 'role_arn': {ROLE!r}, 'bucket': 'bb-b'}})\n"
        "print(backend.render(spec, 'x-1', None, {}).operation)\n"
        "print(SageMakerBackend.readiness({}).sdk_installed)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LAUNCH_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["CreateTrainingJob", "False"]  # and `launch backends` says boto3 is missing
