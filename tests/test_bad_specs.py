"""Broken specs through the real CLI: each one is refused with exit 2, located, explained, and
leaves no trace in the store.

Each case says where the problem must be reported (`spec.yaml:LINE: field.path:`; any one of
the listed spellings), a fragment the message must hold, and how many problems the spec has.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

B = "name: demo\nrun: python train.py\n"  # two valid lines; whatever is appended starts on line 3


def case(id: str, text: str, where: str | tuple[str, ...], fragment: str, count: int = 1):
    return pytest.param(text, (where,) if isinstance(where, str) else where, fragment, count, id=id)


CASES = [
    # --- YAML syntax -----------------------------------------------------------------------
    case("yaml-unclosed-bracket", B + "env: [a, b\nspot: true\n",
         # the bracket opens on line 3; the parser notices on line 4: either is fine if line 3 is named
         ("spec.yaml:3:", "line 3"), "YAML syntax error"),
    case("yaml-unclosed-quote", B + "setup: 'pip install torch\nspot: true\n",
         ("spec.yaml:3:", "line 3"), "YAML syntax error"),
    case("yaml-bad-indentation", B + "resources:\n    nodes: 2\n  cpus: 4\n", "spec.yaml:5:", "YAML syntax error"),
    case("yaml-key-indented-under-scalar", "name: demo\n  run: echo hi\n", "spec.yaml:2:", "YAML syntax error"),
    case("yaml-tab-indentation", B + "resources:\n\tnodes: 2\n", "spec.yaml:4:", "YAML syntax error"),
    case("yaml-duplicate-key", B + "spot: true\nname: other\n", "spec.yaml:4: name:", "duplicate key"),
    case("yaml-duplicate-nested-key", B + "resources:\n  nodes: 2\n  nodes: 3\n",
         "spec.yaml:5: resources.nodes:", "duplicate key"),
    case("yaml-boolean-key", B + "yes: 1\n", "spec.yaml:3:", "key"),
    # --- not a mapping ------------------------------------------------------------------------
    case("top-level-list", "- name: demo\n- run: echo\n", "spec.yaml:1:", "YAML mapping"),
    case("top-level-scalar", "python train.py\n", "spec.yaml:1:", "YAML mapping"),
    case("empty-file", "", ("spec.yaml: name:", "spec.yaml:1: name:"), "required field is missing", count=2),
    # --- wrong types ----------------------------------------------------------------------------
    case("nodes-string", B + "resources:\n  nodes: two\n", "spec.yaml:4: resources.nodes:",
         "expected a whole number, e.g. 2; got 'two'"),
    case("spot-maybe", B + "spot: maybe\n", "spec.yaml:3: spot:", "expected true or false; got 'maybe'"),
    case("env-is-list", B + "env:\n  - A=1\n", "spec.yaml:3: env:",
         "expected a mapping (key: value lines); got a list"),
    case("env-value-mapping", B + "env:\n  A:\n    b: 1\n", "spec.yaml:4: env.A:", "strings or numbers"),
    case("secrets-is-string", B + "secrets: WANDB_API_KEY\n", "spec.yaml:3: secrets:", "expected a list ([a, b]"),
    case("retries-negative", B + "retries: -1\n", "spec.yaml:3: retries:", "must be at least 0; got -1"),
    case("resources-not-mapping", B + "resources: H100:8\n", "spec.yaml:3: resources:", "expected a mapping"),
    case("cpus-not-number", B + "resources:\n  cpus: lots\n", "spec.yaml:4: resources.cpus:", "not a number"),
    # --- unknown keys ---------------------------------------------------------------------------
    case("unknown-top-nmae", "nmae: demo\nrun: echo\n", "spec.yaml:1: nmae:", "did you mean 'name'?", count=2),
    case("unknown-nested-acelerators", B + "resources:\n  acelerators: H100:8\n",
         "spec.yaml:4: resources.acelerators:", "did you mean 'accelerators'?"),
    case("unknown-top-distrbuted", B + "distrbuted: torchrun\n", "spec.yaml:3: distrbuted:",
         "did you mean 'distributed'?"),
    # --- accelerators ---------------------------------------------------------------------------
    case("accelerator-H300", B + "resources:\n  accelerators: H300:8\n", "spec.yaml:4: resources.accelerators:",
         "unknown accelerator 'H300'"),
    case("accelerator-Z100", B + "resources:\n  accelerators: Z100\n", "spec.yaml:4: resources.accelerators:",
         "unknown accelerator 'Z100'"),
    case("accelerator-count-0", B + "resources:\n  accelerators: H100:0\n",
         "spec.yaml:4: resources.accelerators:", "between 1 and 16"),
    case("accelerator-count-17", B + "resources:\n  accelerators: A100-80GB:17\n",
         "spec.yaml:4: resources.accelerators:", "between 1 and 16"),
    case("accelerator-count-x", B + "resources:\n  accelerators: L4:x\n",
         "spec.yaml:4: resources.accelerators:", "not a whole number"),
    case("accelerator-count-alone", B + "resources:\n  accelerators: 8\n",
         "spec.yaml:4: resources.accelerators:", "write the type too"),
    case("accelerator-cpu-with-count", B + "resources:\n  accelerators: cpu:2\n",
         "spec.yaml:4: resources.accelerators:", "takes no count"),
    # --- nodes ------------------------------------------------------------------------------------
    case("nodes-negative", B + "resources:\n  nodes: -2\n", "spec.yaml:4: resources.nodes:",
         "must be at least 1; got -2"),
    case("nodes-zero", B + "resources:\n  nodes: 0\n", "spec.yaml:4: resources.nodes:", "must be at least 1; got 0"),
    # --- durations --------------------------------------------------------------------------------
    case("duration-10-years", B + "max_runtime: 10 years\n", "spec.yaml:3: max_runtime:", "not a duration"),
    case("duration-negative", B + "max_runtime: -5m\n", "spec.yaml:3: max_runtime:", "not a duration"),
    case("duration-zero", B + "max_runtime: 0\n", "spec.yaml:3: max_runtime:", "more than 0s"),
    # --- run / name -------------------------------------------------------------------------------
    case("run-empty-string", "name: demo\nrun: ''\n", "spec.yaml:2: run:", "run is empty"),
    case("run-no-value", "name: demo\nrun:\n", "spec.yaml:2: run:", "run is empty"),
    case("run-whitespace-only", "name: demo\nrun: '   '\n", "spec.yaml:2: run:", "run is empty"),
    case("run-missing", "name: demo\nimage: python:3.11\n", "spec.yaml:1: run:", "add the command to run"),
    case("name-missing", "run: python train.py\n", "spec.yaml:1: name:", "add a name"),
    case("name-bad-characters", "name: my job!\nrun: echo\n", "spec.yaml:1: name:", "letters, digits"),
    case("name-too-long", "name: " + "a" * 64 + "\nrun: echo\n", "spec.yaml:1: name:", "at most 63 characters"),
    # --- code ---------------------------------------------------------------------------------------
    # ./launcher exists in the CLI's working directory (the repo) but not next to the spec file
    case("code-dir-missing", B + "code: ./launcher\n", "spec.yaml:3: code:", "does not exist"),
    # --- env / secrets --------------------------------------------------------------------------
    case("env-key-with-dash", B + "env:\n  MY-VAR: 1\n", "spec.yaml:4: env.MY-VAR:", "MY-VAR"),
    case("env-key-reserved-prefix", B + "env:\n  OK: 1\n  LAUNCH_FOO: 1\n",
         ("spec.yaml:3: env:", "spec.yaml:5: env.LAUNCH_FOO:"), "LAUNCH_FOO"),
    case("secret-name-invalid", B + "secrets: [OK, 1BAD]\n", "spec.yaml:3: secrets[1]:",
         "not starting with a digit (e.g. WANDB_API_KEY)"),
    case("secret-also-in-env", B + "env:\n  TOKEN: x\nsecrets:\n  - A\n  - TOKEN\n",
         ("spec.yaml:7: secrets[1]:", "spec.yaml:4: env.TOKEN:", "spec.yaml:5: secrets:", "spec.yaml:3: env:"),
         "both in env and in secrets"),
    # --- backends -------------------------------------------------------------------------------
    case("backend-unknown", B + "backends:\n  sagmaker: {}\n", "spec.yaml:4: backends.sagmaker:", "unknown backend"),
    case("backend-local-unknown-setting", B + "backends:\n  local:\n    cancel_grce: 5\n",
         "spec.yaml:5: backends.local.cancel_grce:", "did you mean 'cancel_grace'?"),
    case("backend-local-bad-duration", B + "backends:\n  local:\n    cancel_grace: soon\n",
         "spec.yaml:5: backends.local.cancel_grace:", "not a duration"),
    case("backend-local-not-mapping", B + "backends:\n  local: fast\n", "spec.yaml:4: backends.local:", "mapping"),
    # --- other fields ---------------------------------------------------------------------------
    case("distributed-mpi", B + "distributed: mpi\n", "spec.yaml:3: distributed:",
         "expected 'torchrun', 'jax', 'tensorflow', 'paddle' or 'none'"),
    case("memory-beyond-any-machine", B + "resources:\n  memory_gb: 99999999\n", "spec.yaml:4: resources.memory_gb:",
         "below 1,000,000"),
    case("backend-setting-pattern", B + "backends:\n  sagemaker:\n    region: US-EAST-1\n",
         "spec.yaml:5: backends.sagemaker.region:",
         "'US-EAST-1' is not valid here; expected an AWS region, e.g. us-east-1"),
    case("checkpoint-dir-relative", B + "checkpoint_dir: checkpoints\n", "spec.yaml:3: checkpoint_dir:", "absolute"),
]


def _problem_count(stderr: str) -> int | None:
    match = re.search(r"(\d+) problems? in the job spec", stderr)
    return int(match.group(1)) if match else None


def assert_nothing_stored(home: Path) -> None:
    db = home / "jobs.db"
    if db.exists():
        with sqlite3.connect(db) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "jobs" in tables:
                assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 0, "a job row was written"
    local = home / "local"
    assert not local.exists() or not any(local.iterdir()), f"job dirs written: {list(local.iterdir())}"


def assert_refused(result, where: tuple[str, ...], fragment: str) -> None:
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 2, report
    assert "Traceback" not in result.stderr, report
    assert any(w in result.stderr for w in where), f"expected one of {where!r}\n{report}"
    assert fragment in result.stderr, f"expected {fragment!r}\n{report}"


@pytest.mark.parametrize(("text", "where", "fragment", "count"), CASES)
def test_bad_spec_is_refused(cli, write_spec, launch_home, text, where, fragment, count):
    spec = write_spec(text)
    result = cli("run", str(spec))
    assert_refused(result, where, fragment)
    assert _problem_count(result.stderr) == count, result.stderr
    assert_nothing_stored(launch_home)


def test_there_are_enough_cases():
    assert len(CASES) >= 30


def test_validate_reports_every_problem_at_once(cli, write_spec, launch_home):
    spec = write_spec(
        "name: demo\n"
        "run: python train.py\n"
        "resources:\n"
        "  nodes: 0\n"                   # 4
        "  accelerators: Z100\n"         # 5
        "spot: maybe\n"                  # 6
        "max_runtime: 10 years\n"        # 7
    )
    result = cli("validate", str(spec))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    located = re.findall(r"spec\.yaml:(\d+): ([\w.\[\]]+):", result.stderr)
    assert located == [("4", "resources.nodes"), ("5", "resources.accelerators"), ("6", "spot"),
                       ("7", "max_runtime")], result.stderr
    assert _problem_count(result.stderr) == 4
    assert result.stdout == ""
    assert_nothing_stored(launch_home)


@pytest.mark.parametrize(("override", "where", "fragment"), [
    pytest.param("resources.nodes=zero", "--set resources.nodes=zero: resources.nodes:", "expected a whole number",
                 id="set-wrong-type"),
    pytest.param("resources.acelerators=H100:8", "--set resources.acelerators=H100:8: resources.acelerators:",
                 "did you mean 'accelerators'?", id="set-unknown-key"),
    pytest.param("resources.nodes", "--set", "expected KEY.PATH=VALUE", id="set-no-equals"),
    pytest.param("=3", "--set", "expected KEY.PATH=VALUE", id="set-empty-key"),
    pytest.param("name.first=x", "--set", "not a mapping", id="set-into-scalar"),
])
def test_bad_override_is_refused(cli, write_spec, launch_home, override, where, fragment):
    spec = write_spec(B)
    result = cli("run", str(spec), "--set", override)
    assert_refused(result, (where,), fragment)
    assert_nothing_stored(launch_home)


def test_missing_spec_file_is_refused(cli, tmp_path, launch_home):
    result = cli("run", str(tmp_path / "nope.yaml"))
    assert_refused(result, ("nope.yaml",), "no such spec file")
    assert_nothing_stored(launch_home)
