"""The job spec in-process: accelerators, durations, --set overrides, env coercion, code paths,
stored records and the JSON Schema (the last two through the CLI where the user meets them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from launcher import accelerators, durations
from launcher.accelerators import Accelerator
from launcher.errors import Problem, SpecError, UsageError
from launcher.spec import JobSpec, load_spec, parse_overrides, parse_spec

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "job_specs" / "quickstart.yaml"
BASE = "name: demo\nrun: python train.py\n"


def spec_of(extra: str = "", overrides: tuple[str, ...] = ()) -> JobSpec:
    return parse_spec(BASE + extra, "spec.yaml", overrides)


def problems_of(text: str, overrides: tuple[str, ...] = ()) -> list[Problem]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml", overrides)
    return info.value.problems


# --- accelerators ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("h100", Accelerator("H100", 1)),
    ("H100", Accelerator("H100", 1)),
    ("H100:8", Accelerator("H100", 8)),
    ("H100-80GB", Accelerator("H100", 1)),
    ("h100-80gb:4", Accelerator("H100", 4)),
    ("a100", Accelerator("A100-40GB", 1)),
    ("A100:2", Accelerator("A100-40GB", 2)),
    ("A100-80GB", Accelerator("A100-80GB", 1)),
    ("A100-80GB:8", Accelerator("A100-80GB", 8)),
    ("a100_80gb:8", Accelerator("A100-80GB", 8)),
    ("l4", Accelerator("L4", 1)),
    ("L4", Accelerator("L4", 1)),
    ("t4:4", Accelerator("T4", 4)),
    ("T4:1", Accelerator("T4", 1)),
    ("a10g", Accelerator("A10G", 1)),
    ("L40S:4", Accelerator("L40S", 4)),
    ("v100:16", Accelerator("V100", 16)),
    ("cpu", Accelerator("cpu", 0)),
    ("CPU", Accelerator("cpu", 0)),
    ("  H100:8  ", Accelerator("H100", 8)),
], ids=lambda v: v if isinstance(v, str) else None)
def test_accelerator_aliases_are_canonical(text, expected):
    assert accelerators.parse(text) == expected


def test_accelerator_str_round_trips():
    assert str(Accelerator("H100", 8)) == "H100:8"
    assert str(Accelerator("cpu", 0)) == "cpu"
    for text in ("H100:8", "A100-80GB:8", "L4:1", "cpu"):
        assert str(accelerators.parse(str(accelerators.parse(text)))) == text


@pytest.mark.parametrize(("text", "fragment"), [
    ("H10:8", "did you mean 'H100'?"),
    ("H300:8", "did you mean 'H200'?"),
    ("Z100", "unknown accelerator"),
    ("H100:0", "between 1 and 16"),
    ("H100:17", "between 1 and 16"),
    ("H100:x", "not a whole number"),
    ("H100:-1", "between 1 and 16"),
    ("cpu:4", "takes no count"),
    ("", "TYPE[:COUNT]"),
])
def test_accelerator_errors(text, fragment):
    with pytest.raises(ValueError) as info:
        accelerators.parse(text)
    assert fragment in str(info.value)


def test_spec_accelerators_default_to_cpu_and_parse_aliases():
    assert spec_of().accelerator == Accelerator("cpu", 0)
    assert spec_of("resources:\n  accelerators: H100\n").accelerator == Accelerator("H100", 1)
    assert spec_of("resources:\n  accelerators: a100\n").accelerator == Accelerator("A100-40GB", 1)
    assert spec_of("resources:\n  accelerators: cpu\n").accelerator.count == 0
    assert spec_of("resources:\n  accelerators: H100-80GB:8\n").to_record()["resources"]["accelerators"] == "H100:8"


# --- durations ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds"), [
    ("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), (3600, 3600), ("3600", 3600),
    ("45s", 45), ("1h 30m", 5400), ("1.5h", 5400), ("365d", 365 * 86400), (" 10M ", 600),
])
def test_durations(value, seconds):
    assert durations.parse_seconds(value) == seconds


@pytest.mark.parametrize("value", ["10 years", "-5m", 0, "0", "0s", True, "366d", "", "h", None, [1]])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        durations.parse_seconds(value)


def test_spec_max_runtime_is_seconds():
    assert spec_of("max_runtime: 24h\n").max_runtime == 86400
    assert spec_of("max_runtime: 1h30m\n").max_runtime == 5400
    assert spec_of("max_runtime: 3600\n").max_runtime == 3600
    assert spec_of().max_runtime is None


def test_format_seconds():
    assert durations.format_seconds(5400) == "1h30m"
    assert durations.format_seconds(90061) == "1d1h1m1s"
    assert durations.format_seconds(0) == "0s"


# --- --set overrides ---------------------------------------------------------------------------

def test_override_values_are_yaml_typed():
    parsed = {path: value for path, value, _ in parse_overrides(
        ["resources.nodes=2", "spot=true", "name=other", "retries=0", "setup="])}
    assert parsed[("resources", "nodes")] == 2 and type(parsed[("resources", "nodes")]) is int
    assert parsed[("spot",)] is True
    assert parsed[("name",)] == "other"
    assert parsed[("retries",)] == 0
    assert parsed[("setup",)] == ""


def test_overrides_apply_to_the_spec():
    spec = spec_of("resources:\n  nodes: 1\nenv:\n  A: x\n",
                   ("resources.nodes=2", "spot=true", "env.EPOCHS=3", "name=renamed"))
    assert spec.resources.nodes == 2
    assert spec.spot is True
    assert spec.env == {"A": "x", "EPOCHS": "3"}
    assert spec.name == "renamed"


def test_override_creates_missing_nested_keys():
    spec = spec_of("", ("resources.accelerators=H100:8", "backends.local.cancel_grace=30s", "env.NEW=v"))
    assert spec.accelerator == Accelerator("H100", 8)
    assert spec.backends == {"local": {"cancel_grace": "30s"}}
    assert spec.env == {"NEW": "v"}


def test_override_into_null_section_creates_it():
    spec = spec_of("resources:\n", ("resources.nodes=4",))
    assert spec.resources.nodes == 4


def test_env_override_keeps_the_text_as_typed():
    # YAML typing would turn 0123 into 83 (octal), 1.10 into 1.1 and yes into true: env values are text
    spec = spec_of("", ("env.RUN_ID=0123", "env.VERSION=1.10", "env.ANSWER=yes"))
    assert spec.env == {"RUN_ID": "0123", "VERSION": "1.10", "ANSWER": "yes"}


def test_override_errors_point_at_the_flag():
    problems = problems_of(BASE + "resources:\n  nodes: 1\n", ("resources.nodes=zero",))
    assert problems == [Problem("--set resources.nodes=zero", None, "resources.nodes", problems[0].message)]
    assert "expected a whole number" in problems[0].message
    assert str(problems[0]).startswith("--set resources.nodes=zero: resources.nodes:")


def test_override_unknown_key_points_at_the_flag_with_hint():
    (problem,) = problems_of(BASE, ("resources.acelerators=H100:8",))
    assert problem.file == "--set resources.acelerators=H100:8"
    assert problem.line is None
    assert problem.path == "resources.acelerators"
    assert "did you mean 'accelerators'?" in problem.message


def test_file_problems_and_override_problems_together():
    problems = problems_of(BASE + "spot: maybe\n", ("resources.nodes=0",))
    located = {(p.file, p.line, p.path) for p in problems}
    assert located == {("spec.yaml", 3, "spot"), ("--set resources.nodes=0", None, "resources.nodes")}


@pytest.mark.parametrize("item", ["resources.nodes", "=2", ".nodes=2", "resources..nodes=2", "a b=1", "env.A$=1"])
def test_bad_override_syntax_is_a_usage_error(item):
    with pytest.raises(UsageError) as info:
        parse_overrides([item])
    assert "KEY.PATH=VALUE" in str(info.value)


def test_override_through_a_scalar_is_a_usage_error():
    with pytest.raises(UsageError, match="not a mapping"):
        spec_of("", ("name.first=x",))


# --- env ---------------------------------------------------------------------------------------

def test_env_values_are_strings():
    spec = spec_of("env:\n  EPOCHS: 3\n  FLAG: true\n  NOPE: false\n  RATE: 0.5\n  TEXT: hello\n  QUOTED: '007'\n")
    assert spec.env == {"EPOCHS": "3", "FLAG": "true", "NOPE": "false", "RATE": "0.5", "TEXT": "hello",
                        "QUOTED": "007"}
    assert all(type(v) is str for v in spec.env.values())


def test_env_null_value_is_a_problem():
    (problem,) = problems_of(BASE + "env:\n  A:\n")
    assert (problem.line, problem.path) == (4, "env.A")


def test_secret_also_in_env_is_located():
    (problem,) = problems_of(BASE + "env:\n  TOKEN: x\nsecrets:\n  - TOKEN\n")
    assert "both in env and in secrets" in problem.message
    assert (problem.line, problem.path) in {(6, "secrets[0]"), (4, "env.TOKEN"), (5, "secrets"), (3, "env")}


# --- code: ---------------------------------------------------------------------------------------

def test_code_is_relative_to_the_spec_file(tmp_path, monkeypatch):
    spec_dir = tmp_path / "project" / "specs"
    (spec_dir / "src").mkdir(parents=True)
    (tmp_path / "project" / "shared").mkdir()
    (spec_dir / "job.yaml").write_text(BASE + "code: ./src\n")
    (spec_dir / "up.yaml").write_text(BASE + "code: ../shared\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_spec(spec_dir / "job.yaml").code == str((spec_dir / "src").resolve())
    assert load_spec(spec_dir / "up.yaml").code == str((tmp_path / "project" / "shared").resolve())
    # a relative path to the spec file works the same
    assert load_spec(Path("..") / "project" / "specs" / "job.yaml").code == str((spec_dir / "src").resolve())


def test_code_dir_missing_next_to_the_spec_even_if_it_exists_in_cwd(tmp_path, monkeypatch):
    (tmp_path / "cwd" / "src").mkdir(parents=True)
    (tmp_path / "specs").mkdir()
    spec_file = tmp_path / "specs" / "job.yaml"
    spec_file.write_text(BASE + "code: ./src\n")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.path) == (str(spec_file), 3, "code")
    assert "does not exist" in problem.message


def test_code_pointing_at_a_file_is_a_problem(tmp_path):
    (tmp_path / "train.py").write_text("print(1)\n")
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(BASE + "code: train.py\n")
    with pytest.raises(SpecError) as info:
        load_spec(spec_file)
    assert [(p.line, p.path) for p in info.value.problems] == [(3, "code")]


def test_missing_spec_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such spec file"):
        load_spec(tmp_path / "missing.yaml")


# --- records -----------------------------------------------------------------------------------

def test_record_holds_secret_names_only(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "s3cr3t-value-123")
    spec = spec_of("env:\n  EPOCHS: 3\nsecrets: [WANDB_API_KEY]\nresources:\n  accelerators: H100:8\n"
                   "max_runtime: 24h\n")
    record = spec.to_record()
    text = json.dumps(record)
    assert record["secrets"] == ["WANDB_API_KEY"]
    assert "s3cr3t-value-123" not in text
    assert record["env"] == {"EPOCHS": "3"}
    assert record["resources"]["accelerators"] == "H100:8"
    assert record["max_runtime"] == 86400
    assert json.loads(text) == record


def test_record_round_trips_through_the_model():
    spec = spec_of("resources:\n  accelerators: A100-80GB:8\n  nodes: 2\n  cpus: 16+\nspot: true\n")
    again = JobSpec.model_validate(spec.to_record())
    # same data (the copy has no source file behind it, so compare the fields)
    assert again.model_dump() == spec.model_dump()
    assert again.to_record() == spec.to_record()


def test_problems_are_sorted_by_line():
    problems = problems_of("name: demo\nrun: x\nspot: maybe\nretries: -1\nresources:\n  nodes: 0\n")
    assert [p.line for p in problems] == [3, 4, 6]


# --- schema and the CLI ------------------------------------------------------------------------

def test_schema_is_json_and_validates_the_quickstart(cli):
    result = cli("schema", check_rc=0)
    schema = json.loads(result.stdout)
    assert "resources" in schema["properties"]
    assert set(schema["required"]) == {"name"}  # and run: or finetune:, one of them
    assert schema["oneOf"] == [{"required": ["run"]}, {"required": ["finetune"]}]
    quickstart = yaml.safe_load(QUICKSTART.read_text())
    jsonschema = pytest.importorskip("jsonschema")
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    assert list(validator.iter_errors(quickstart)) == []
    # the schema refuses what the loader refuses: unknown keys and a missing run
    assert list(validator.iter_errors({**quickstart, "nmae": "x"}))
    assert list(validator.iter_errors({k: v for k, v in quickstart.items() if k != "run"}))


def test_validate_quickstart_exits_0(cli):
    result = cli("validate", "job_specs/quickstart.yaml", check_rc=0)
    assert "ok" in result.stdout
    assert "quickstart" in result.stdout


def test_validate_with_override(cli, write_spec):
    spec = write_spec(BASE)
    result = cli("validate", str(spec), "--set", "resources.nodes=2", "--set", "resources.accelerators=h100:8",
                 check_rc=0)
    assert "2 node(s) x H100:8" in result.stdout
