"""Spec errors in the author's words: every field of the spec and of every installed backend's
settings, given wrong values, answers with what a valid value looks like, never pydantic's own
phrasing ("String should match pattern '^[a-z]...'", "Input should be 'torchrun'")."""

from __future__ import annotations

import re

import pytest
import yaml

from launcher import registry
from launcher.errors import SpecError
from launcher.spec import JobSpec, parse_spec

BASE = {"name": "demo", "run": "python train.py"}
# what pydantic says when nobody translated it
RAW = re.compile(r"Input should|String should|List should|Dictionary should|should have at (least|most)|"
                 r"Value error,|Assertion failed|valid (integer|boolean|dictionary|list|string|number)|"
                 r"unable to (parse|interpret)|match pattern|\[type=")
BAD_VALUES = ["!! not valid !!", "US-EAST-1", -5, 0, 10 ** 9, 1.5, True, "", [1, 2], {"a": 1}, "x" * 5000]


def _models() -> list[tuple[str, type]]:
    return [("", JobSpec), *((f"backends.{name}", registry.settings_model(name)) for name in registry.names())]


def _problems(data: dict) -> list:
    try:
        parse_spec(yaml.safe_dump(data), "spec.yaml")
    except SpecError as exc:
        return exc.problems
    return []


def _nest(where: str, field: str, value: object) -> dict:
    if not where:
        return {**BASE, field: value}
    _, backend = where.split(".")
    return {**BASE, "backends": {backend: {field: value}}}


@pytest.mark.parametrize(("where", "model"), _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_field_answers_in_pydantic_words(where, model):
    seen = 0
    for field in model.model_fields:
        for value in BAD_VALUES:
            for problem in _problems(_nest(where, field, value)):
                seen += 1
                assert not RAW.search(problem.message), f"{where}.{field}={value!r:.40}: {problem}"
                assert len(problem.message) < 500, problem
    assert seen, "no bad value was refused: the test checks nothing"


@pytest.mark.parametrize(("where", "model"), _models(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_field_with_a_pattern_shows_a_valid_example(where, model):
    """A pattern error quotes the field's examples, so each such field must carry one that passes."""
    for name, info in model.model_fields.items():
        patterns = [m.pattern for m in info.metadata if getattr(m, "pattern", None)]
        if not patterns or (name == "name" and not where):  # its own message, tested in test_bad_specs
            continue
        assert info.examples, f"{where or 'spec'}.{name} has a pattern but no examples"
        for example in info.examples:
            assert re.search(patterns[0], str(example)), f"{where}.{name}: example {example!r} fails its own pattern"
        problems = _problems(_nest(where, name, "!! not valid !!"))
        assert any(str(info.examples[0]) in p.message for p in problems), problems


@pytest.mark.parametrize(("text", "fragment"), [
    ("distributed: mpi", "expected 'torchrun', 'jax', 'tensorflow', 'paddle' or 'none'; got 'mpi'"),
    ("resources: {memory_gb: 99999999}", "below 1,000,000"),
    ("resources: {cpus: 0}", "above 0 and below 1,000,000"),
    ("resources: {nodes: two}", "expected a whole number, e.g. 2; got 'two'"),
    ("resources: {nodes: 600}", "must be at most 512; got 600"),
    ("spot: maybe", "expected true or false; got 'maybe'"),
    ("secrets: [1BAD]", "letters, digits and _, not starting with a digit"),
    ("backends: {sagemaker: {region: US-EAST-1}}",
     "'US-EAST-1' is not valid here; expected an AWS region, e.g. us-east-1"),
    ("backends: {vertex: {project: X}}", "e.g. my-project"),
    ("backends: {ssh: {host_key_checking: no}}", "quote the value"),
])
def test_messages_say_what_a_valid_value_looks_like(text, fragment):
    problems = _problems({**BASE, **yaml.safe_load(text)})
    assert len(problems) == 1 and fragment in problems[0].message, problems


@pytest.mark.parametrize("text", ["none", "None", "NONE"])
def test_distributed_none_means_no_wrapper(text):
    spec = parse_spec(f"name: demo\nrun: x\ndistributed: {text}\n", "spec.yaml")
    assert spec.distributed is None


def test_distributed_none_is_in_the_schema():
    from launcher.spec import json_schema

    assert "none" in str(json_schema()["properties"]["distributed"])
