"""The real CLI under random `--set` flags and spec files (tests/test_spec_fuzz.py covers the loader in
process, with thousands of cases): every call ends in exit 0 or exit 2, never a traceback or an
internal error, and a refusal is one `error:` naming the field or the flag."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import FULL, TRACEBACK, launch_env, run_launch

FIELDS = ["name", "run", "setup", "image", "retries", "spot", "max_runtime", "resources.nodes", "resources.cpus",
          "resources.accelerators", "resources.memory_gb", "env.A", "secrets", "distributed", "backends.local.x",
          "backends.local.cancel_grace", "checkpoint_dir", "outputs", "nme", "resources.gpus"]
ARG_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
                   max_size=40)
VALUES = st.one_of(ARG_TEXT, st.integers(min_value=-10**50, max_value=10**50).map(str),
                   st.sampled_from(["9" * 5000, "[" * 3000 + "]" * 3000, "{a: [1, {b: 2}]}", "H100:8", "1e999",
                                    ".nan", "-1", "yes", "null", "~", "'", '"', "- a\n- b", "x" * 100_000]))
EXAMPLES = 150 if FULL else 12


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(flags=st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=3))
def test_random_set_flags_exit_0_or_2_with_one_clear_error(flags, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    spec = home / "spec.yaml"
    spec.write_text("name: fuzz\nrun: echo hi\n")
    args = ["validate", str(spec)]
    for field, value in flags:
        args += ["--set", f"{field}={value}"]
    result = run_launch(args, launch_env(Path(home)), timeout=60)
    assert result.returncode in (0, 2), (result.returncode, result.stderr[:2000])
    assert TRACEBACK not in result.stderr and "internal error" not in result.stderr, result.stderr[:2000]
    if result.returncode == 2:
        assert result.stderr.startswith("error: ") and result.stderr.count("error: ") == 1, result.stderr[:2000]
        assert any(field.split(".")[0] in result.stderr for field, _ in flags), result.stderr[:2000]
        assert len(result.stderr) < 20_000, "the error echoed a huge value"
