"""Whatever a spec file holds, loading it ends in a spec or in one clear LaunchError, never a
traceback (property-based: random YAML documents, values and --set overrides)."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.errors import LaunchError
from launcher.spec import parse_spec

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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_random_text_ends_in_a_spec_or_a_clear_error(text):
    try:
        parse_spec(text, "fuzz.yaml")
    except LaunchError as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(overrides=st.lists(st.text(max_size=30), max_size=4))
def test_random_set_overrides_end_in_a_spec_or_a_clear_error(overrides):
    try:
        parse_spec("name: fuzz\nrun: echo\n", "fuzz.yaml", overrides=overrides)
    except LaunchError as exc:
        assert str(exc)
