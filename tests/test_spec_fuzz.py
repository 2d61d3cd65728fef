"""Whatever a spec file holds, loading it ends in a spec or in one clear LaunchError, never a
traceback (property-based: random YAML documents, values and --set overrides)."""

from __future__ import annotations

import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.errors import LaunchError, SpecError, UsageError
from launcher.spec import parse_spec

# LAUNCH_RELIABILITY_FULL=1 (the reliability harness's full run) tries ten times as many cases
SCALE = 10 if os.environ.get("LAUNCH_RELIABILITY_FULL") == "1" else 1
FIELDS = ["name", "image", "code", "setup", "run", "env", "secrets", "resources", "distributed", "spot",
          "max_runtime", "retries", "checkpoint_dir", "outputs", "backends", "accelerators", "nodes", "local",
          "cancel_grace", "sagemaker", "vertex", "ssh", "hosts"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**30, max_value=10**30),
                    st.floats(allow_nan=True), st.text(max_size=40), st.sampled_from(["H100:8", "24h", "cpu", "-1"]))
documents = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=10)), children,
                                               max_size=6)),
    max_leaves=30,
)


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.dictionaries(st.sampled_from(FIELDS), documents, max_size=8))
def test_random_documents_end_in_a_spec_or_a_clear_error(document):
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except yaml.YAMLError:
        return
    try:
        parse_spec(text, "fuzz.yaml")
    except LaunchError as exc:
        assert str(exc)


@settings(max_examples=300 * SCALE, deadline=None)
@given(text=st.text(max_size=300))
def test_random_text_ends_in_a_spec_or_a_clear_error(text):
    try:
        parse_spec(text, "fuzz.yaml")
    except LaunchError as exc:
        assert str(exc)


@settings(max_examples=200 * SCALE, deadline=None)
@given(overrides=st.lists(st.text(max_size=30), max_size=4))
def test_random_set_overrides_end_in_a_spec_or_a_clear_error(overrides):
    try:
        parse_spec("name: fuzz\nrun: echo\n", "fuzz.yaml", overrides=overrides)
    except LaunchError as exc:
        assert str(exc)


# -- the shapes attackers and accidents produce: huge numbers, deep nesting, 10 MB text, odd unicode ----------

def _assert_names_where(exc: LaunchError) -> None:
    """A spec error names the field (or the line, for what is not a field) and stays short."""
    text = str(exc)
    assert text and len(text) < 5000, text[:300]
    for problem in getattr(exc, "problems", []):
        assert problem.path or problem.line or "YAML" in problem.message or "larger than" in problem.message, problem


FIELD_PATHS = ["name", "run", "setup", "image", "retries", "spot", "max_runtime", "resources.nodes",
               "resources.accelerators", "resources.memory_gb", "env.A", "backends.local.cancel_grace"]


def _nested(path: str, value: str) -> str:
    lines = []
    for depth, part in enumerate(path.split(".")):
        lines.append("  " * depth + part + ":")
    lines[-1] += " " + value
    return "\n".join(lines) + "\n"


# the fewest digits at which a number stops being a valid value of the field: a string field takes any
# number as text up to Python's int-from-text limit (4300 digits); counts, sizes and durations take no
# 20-digit number; name, run, setup, image, spot and accelerators take no number at all
PYTHON_DIGIT_LIMIT = 4300
TOO_MANY_DIGITS = {"env.A": PYTHON_DIGIT_LIMIT + 1, "retries": 20, "max_runtime": 20, "resources.nodes": 20,
                   "resources.memory_gb": 20, "backends.local.cancel_grace": 20}


@settings(max_examples=60 * SCALE, deadline=None)
@given(field=st.sampled_from(FIELD_PATHS), data=st.data(), sign=st.sampled_from(["", "-", "0x", "+"]))
def test_huge_numbers_in_any_field_are_a_field_error(field, data, sign):
    # duration fields included: float() of a 309+ digit integer overflows, which must read as "too long"
    digits = data.draw(st.integers(min_value=TOO_MANY_DIGITS.get(field, 1), max_value=6000), label="digits")
    text = {"name": "run: echo\n", "run": "name: fuzz\n"}.get(field, "name: fuzz\nrun: echo\n")
    text += _nested(field, sign + "9" * digits)
    with pytest.raises(LaunchError) as raised:
        parse_spec(text, "fuzz.yaml")
    _assert_names_where(raised.value)


@pytest.mark.parametrize("field", ["backends.local.cancel_grace", "env.A", "retries"])
def test_a_hex_number_too_long_for_text_is_a_field_error(field):
    """0x and 3,572 nines is under the loader's digit limit as written, but over 4,300 decimal digits: Python
    cannot turn it into text, which checking a backend section did (found by the fuzz test above, exit 70)."""
    with pytest.raises(LaunchError) as raised:
        parse_spec("name: fuzz\nrun: echo\n" + _nested(field, "0x" + "9" * 3572), "fuzz.yaml")
    _assert_names_where(raised.value)
    assert f"{field}: a number with 4302 digits" in str(raised.value)


@settings(max_examples=25 * SCALE, deadline=None)
@given(depth=st.integers(min_value=1, max_value=1500), opener=st.sampled_from(["[", "{a: "]),
       field=st.sampled_from(["env", "backends", "resources", "secrets", "run"]))
def test_deep_nesting_is_a_clear_error(depth, opener, field):
    closer = "]" if opener == "[" else "}"
    text = f"name: fuzz\nrun: echo\n{field}: {opener * depth}1{closer * depth}\n"
    if (field, opener, depth) == ("env", "{a: ", 1):  # `env: {a: 1}` is no nesting but a valid env
        assert parse_spec(text, "fuzz.yaml").env == {"a": "1"}
        return
    with pytest.raises(LaunchError) as raised:
        parse_spec(text, "fuzz.yaml")
    _assert_names_where(raised.value)


@settings(max_examples=8 * SCALE, deadline=None)
@given(field=st.sampled_from(["run", "name", "setup", "env.BIG", "image", "backends.local.x"]),
       char=st.sampled_from(["a", "é", "😀", "\u202e", "'"]))
def test_ten_megabyte_strings_in_the_file_or_set_are_a_short_clear_error(field, char):
    big = char * (10 * 1024 * 1024 // len(char.encode()))
    with pytest.raises(LaunchError) as raised:
        parse_spec(f"name: fuzz\nrun: echo\n{_nested(field, big)}", "fuzz.yaml")
    _assert_names_where(raised.value)
    with pytest.raises(LaunchError) as raised:
        parse_spec("name: fuzz\nrun: echo\n", "fuzz.yaml", overrides=[f"{field}={big}"])
    _assert_names_where(raised.value)


@settings(max_examples=150 * SCALE, deadline=None)
@given(value=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60),
       field=st.sampled_from(FIELD_PATHS))
def test_unicode_set_values_end_in_a_spec_or_a_field_error(value, field):
    try:
        parse_spec("name: fuzz\nrun: echo\n", "fuzz.yaml", overrides=[f"{field}={value}"])
    except LaunchError as exc:
        _assert_names_where(exc)


def test_a_number_past_pythons_digit_limit_names_its_field():
    with pytest.raises(SpecError) as raised:
        parse_spec("name: x\nrun: echo\nresources:\n  nodes: " + "9" * 5000 + "\n", "big.yaml")
    (problem,) = raised.value.problems
    assert (problem.line, problem.path) == (4, "resources.nodes") and "5000 digits" in problem.message


def test_a_nul_character_is_refused_where_it_stands():
    with pytest.raises(SpecError) as raised:
        parse_spec('name: x\nrun: "echo a\\0b"\nenv:\n  A: "x\\0y"\n', "nul.yaml")
    assert [(p.line, p.path) for p in raised.value.problems] == [(2, "run"), (4, "env.A")]
    assert all("NUL" in p.message for p in raised.value.problems)


def test_set_with_a_very_deep_path_or_huge_value_is_refused_at_once_and_briefly():
    with pytest.raises(UsageError) as raised:  # 100 000 parts once took every byte of memory
        parse_spec("name: x\nrun: echo\n", "x.yaml", overrides=[".".join(["a"] * 100_000) + "=1"])
    assert len(str(raised.value)) < 500
    with pytest.raises(UsageError) as raised:
        parse_spec("name: x\nrun: echo\n", "x.yaml", overrides=["run=" + "a" * 2_000_000])
    assert "2000004 characters" in str(raised.value) and len(str(raised.value)) < 500


def test_set_values_go_through_the_file_loaders_limits():
    bomb = "{a: &a [1,1,1,1,1,1,1,1,1], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], " \
           "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}"
    with pytest.raises(SpecError) as raised:  # aliases: kept as text, then refused as the field's type
        parse_spec("name: x\nrun: echo\n", "x.yaml", overrides=[f"resources={bomb}"])
    assert "resources" in str(raised.value)
    with pytest.raises(SpecError) as raised:
        parse_spec("name: x\nrun: echo\n", "x.yaml", overrides=["resources.nodes=" + "9" * 5000])
    assert "resources.nodes" in str(raised.value)


def test_a_lone_surrogate_escape_is_refused_where_it_stands():
    # JSON-style "\\ud83d\\ude00" in a quoted YAML string is two lone surrogates to PyYAML, which no encoder takes
    with pytest.raises(SpecError) as raised:
        parse_spec('name: x\nrun: echo\nenv:\n  A: "\\ud83d\\ude00"\n', "s.yaml")
    (problem,) = raised.value.problems
    assert (problem.line, problem.path) == (4, "env.A") and "surrogate" in problem.message
    assert parse_spec('name: x\nrun: echo\nenv:\n  A: "\\U0001F600"\n', "s.yaml").env == {"A": "\U0001f600"}


def test_a_huge_value_quoted_by_a_validator_gives_a_short_message():
    with pytest.raises(SpecError) as raised:  # the duration validator quotes what it could not read
        parse_spec("name: x\nrun: echo\n", "x.yaml", overrides=["max_runtime=" + "x" * 100_000])
    (problem,) = raised.value.problems
    assert problem.path == "max_runtime" and "not a duration" in problem.message and len(str(raised.value)) < 1000


def test_libyaml_and_the_pure_python_loader_read_every_shipped_spec_alike():
    """load() parses with libyaml when PyYAML has it and falls back to the pure-Python loader for what libyaml
    refuses: both must give the same document and the same line for every field (lines are in every error)."""
    from pathlib import Path

    from launcher import yaml_source
    from launcher.yaml_source import SourceMap

    assert yaml.__with_libyaml__, "the fast path is untested without libyaml (PyYAML's wheels ship it)"
    specs = sorted((Path(__file__).resolve().parent.parent / "job_specs").glob("*.yaml"))
    assert len(specs) > 10
    for path in specs:
        text = path.read_text()
        data, source = yaml_source.load(text, path.name)
        slow = SourceMap(path.name)
        assert yaml_source._parsed(yaml.SafeLoader, text, slow) == data, path.name
        assert slow.lines == source.lines, path.name


def test_a_lone_surrogate_in_the_text_itself_is_one_clear_error():
    # a file decoded with surrogateescape can hold one; libyaml cannot even encode it, the fallback reads it
    with pytest.raises(SpecError) as raised:
        parse_spec("name: x\nrun: echo \udc80\n", "s.yaml")
    assert raised.value.problems[0].file == "s.yaml"
