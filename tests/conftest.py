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


def pytest_configure(config: pytest.Config) -> None:
    """Mark this session's processes (see tests/leftovers.py): every subprocess inherits the token."""
    os.environ[leftovers.MARKER] = f"{os.getpid()}-{secrets.token_hex(6)}"


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Nothing the suite started may outlive it: what is left is listed, killed, and fails the run."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)  # set once a test has asked for a temp dir
    roots = [f"{basetemp}{os.sep}"] if basetemp else []
    left = leftovers.settle(os.environ.get(leftovers.MARKER, "-"), roots)
    if not left:
        return
    leftovers.kill(list(left))
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) the suite started were still running at its end (now killed):",
             *(f"  pid {pid}: {command}" for pid, command in sorted(left.items()))]
    if reporter is not None:
        reporter.write_sep("=", "processes left running", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


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
