"""Shared test fixtures: a private LAUNCH_HOME per test and a way to run the real CLI.

The CLI is run as a subprocess (`python -m launcher`), the way users and CI run
it, so exit codes, stdout/stderr separation and detached jobs are tested for real.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import leftovers
import pytest
from fakes import bugs

REPO = Path(__file__).resolve().parent.parent


def _worker_id(config: pytest.Config) -> str | None:
    """The pytest-xdist worker this process is (gw0, gw1, ...), or None for a plain session or the controller."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput["workerid"] if workerinput else None


def pytest_configure(config: pytest.Config) -> None:
    """Mark this session's processes (see tests/leftovers.py): every subprocess inherits the token.
    An xdist worker extends its controller's token, so the controller's end check finds what any worker left."""
    worker = _worker_id(config)
    inherited = os.environ.get(leftovers.MARKER)
    if worker is not None and inherited:
        os.environ[leftovers.MARKER] = f"{inherited}{leftovers.WORKER_SEP}{worker}"
    else:
        os.environ[leftovers.MARKER] = f"{os.getpid()}-{secrets.token_hex(6)}"


def _leftovers(session: pytest.Session, *, workers: bool) -> list[str]:
    """Lines naming what this session left running, which is then killed; [] when nothing is left."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)  # set once a test (or xdist, for its workers) asked for one
    roots = [f"{basetemp}{os.sep}"] if basetemp else []
    grace_s = float(os.environ.get("LAUNCH_TEST_LEFTOVER_GRACE_S", "10"))  # tests of this check shorten it
    left = leftovers.settle(os.environ.get(leftovers.MARKER, "-"), roots, grace_s, workers=workers)
    if not left:
        return []
    leftovers.kill(list(left))
    worker = _worker_id(session.config)
    return [f"{len(left)} process(es) the suite{f' (worker {worker})' if worker else ''} started were still "
            "running at its end (now killed):", *(f"  pid {pid}: {command}" for pid, command in sorted(left.items()))]


def _fail_with(session: pytest.Session, lines: list[str]) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("=", "processes left running", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)  # an xdist hook: the minimal-install leg runs without xdist
def pytest_testnodedown(node: Any, error: object) -> None:
    """Controller: keep what a worker reported left running (a worker's own exit status fails nothing)."""
    lines = getattr(node, "workeroutput", {}).get("leftovers")
    if lines:
        node.config.stash.setdefault(_REPORTED, []).extend(lines)


_REPORTED = pytest.StashKey[list[str]]()


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Iterator[None]:
    """Nothing the suite started may outlive it: what is left is listed, killed, and fails the run.
    An xdist worker checks its own processes before it reports to the controller (another worker's are
    not its own: other token, other temp dir) and hands its lines over; the controller checks after its
    workers have exited (xdist ends them in its sessionfinish, inside this wrapper) for whatever any
    worker left, and fails the run on its own finding or on a worker's."""
    if _worker_id(session.config) is not None:
        lines = _leftovers(session, workers=False)
        if lines:
            session.config.workeroutput["leftovers"] = lines
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return (yield)
    result = yield
    lines = [*session.config.stash.get(_REPORTED, []), *_leftovers(session, workers=True)]
    if lines:
        _fail_with(session, lines)
    return result


# suites that run each check once per backend, the backend first in every parametrized test's id
# (`test_x[azureml]`, `test_y[azureml-after-upload]`): see pytest_xdist_make_scheduler
PER_BACKEND_SUITES = ("tests/conformance/", "tests/reliability/")


@pytest.hookimpl(optionalhook=True)  # an xdist hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope`, with the per-backend suites split by backend: one scope per module and backend
    instead of per module, so each worker starts only the fakes (module fixtures) of the backends it runs,
    and a suite that grows with every backend (conformance, crash points) spreads over the workers instead
    of running on one after all the others are done."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class PerBackendScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)
            params = nodeid.partition("[")[2]
            if params and nodeid.startswith(PER_BACKEND_SUITES):
                return f"{scope}[{params.split('-')[0].rstrip(']')}]"
            return scope

    return PerBackendScopes(config, log)


@pytest.fixture(autouse=True)
def fakes_raised_nothing() -> Iterator[None]:
    """Fail the test at teardown when a fake raised while serving it: the client saw a 500 or a dropped
    connection and may have retried past it, so the test would otherwise pass on the fake's bug."""
    yield
    bugs.assert_none_raised()


@pytest.fixture
def launch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty state dir, also set for in-process calls (config/store read LAUNCH_HOME)."""
    home = tmp_path / "launch-home"
    monkeypatch.setenv("LAUNCH_HOME", str(home))
    from launcher import config

    config.load.cache_clear()
    yield home
    config.load.cache_clear()


CliResult = subprocess.CompletedProcess
# what makes `launch` behave as a CI step (default idempotency keys, step summaries); a test
# that wants it passes them in `env`
CI_VARIABLES = ("GITHUB_ACTIONS", "GITLAB_CI", "GITHUB_STEP_SUMMARY")


@pytest.fixture
def cli(launch_home: Path) -> Callable[..., CliResult]:
    """Run `launch ARGS...` in a subprocess with this test's LAUNCH_HOME; returns the result."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            cwd: Path | None = None, check_rc: int | None = None) -> CliResult:
        full_env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}  # tests may run under CI
        full_env.update({"LAUNCH_HOME": str(launch_home), **(env or {})})
        result = subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True,
                                env=full_env, timeout=timeout, cwd=cwd or REPO)
        if check_rc is not None:
            assert result.returncode == check_rc, (
                f"launch {' '.join(args)} exited {result.returncode}, expected {check_rc}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a spec file (and return its path) in this test's tmp dir."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A real PostgreSQL server for this session (or this xdist worker): tests/fakes/postgres.py."""
    from fakes.postgres import PostgresServer, postgres_available

    if not postgres_available():
        pytest.skip("needs PostgreSQL's server binaries (ci/test installs Debian's postgresql)")
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """An empty PostgreSQL store of this test's own (a fresh schema) as a store URL."""
    return str(pg_server.new_schema(f"t_{secrets.token_hex(6)}"))
