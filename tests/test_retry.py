"""The one retry layer (launcher/retry.py): what it retries, how long it waits, and that no backend
loops on its own or reaches into the runner for a loop."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from launcher.errors import BackendError, TransientBackendError
from launcher.retry import DEFAULT, RetryPolicy, policy_for

REPO = Path(__file__).resolve().parent.parent


class Flaky:
    """Raises each of `errors` in turn, then answers; counts the calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "answer"


FAST = RetryPolicy(attempts=4, first_wait_s=0.01, max_wait_s=0.02, total_s=5.0)


def test_transient_errors_are_retried_until_an_answer():
    action = Flaky(TransientBackendError("busy"), TransientBackendError("busy"))
    assert FAST.call(action, "test") == "answer" and action.calls == 3


def test_attempts_are_bounded_and_the_last_error_is_raised_as_it_was():
    errors = [TransientBackendError(f"busy {n}", "the hint") for n in range(10)]
    action = Flaky(*errors)
    with pytest.raises(TransientBackendError) as raised:
        FAST.call(action, "test")
    assert action.calls == 4 and raised.value is errors[3] and raised.value.hint == "the hint"


def test_other_errors_are_not_retried():
    action = Flaky(BackendError("refused"))
    with pytest.raises(BackendError):
        FAST.call(action, "test")
    assert action.calls == 1


def test_total_time_is_bounded_whatever_the_attempts():
    """Many attempts allowed, but no wait starts that would end past total_s: an outage is said in seconds."""
    policy = RetryPolicy(attempts=100, first_wait_s=0.4, max_wait_s=0.4, total_s=1.0)
    action = Flaky(*[TransientBackendError("down") for _ in range(100)])
    started = time.monotonic()
    with pytest.raises(TransientBackendError):
        policy.call(action, "test")
    assert time.monotonic() - started < 1.0 and action.calls >= 2


def test_the_total_time_counts_from_the_first_try():
    """A first try that was slow itself (a big upload) uses up the time: no retry starts past total_s."""
    errors = [TransientBackendError("throttled", retry_after=0.5), TransientBackendError("again")]

    def slow_then_flaky() -> str:
        if len(errors) == 2:
            time.sleep(0.6)
        if errors:
            raise errors.pop(0)
        return "answer"

    with pytest.raises(TransientBackendError, match="throttled"):
        RetryPolicy(total_s=1.0).call(slow_then_flaky, "test")
    assert len(errors) == 1  # tried once: 0.6 s spent and 0.5 s to wait end past 1 s


def test_a_retry_after_the_provider_sent_is_waited_out():
    action = Flaky(TransientBackendError("throttled", retry_after=0.5))
    started = time.monotonic()
    assert FAST.call(action, "test") == "answer"
    assert time.monotonic() - started >= 0.5 and action.calls == 2


def test_a_retry_after_past_the_total_time_is_reported_at_once():
    action = Flaky(TransientBackendError("throttled", retry_after=60))
    started = time.monotonic()
    with pytest.raises(TransientBackendError):
        RetryPolicy(total_s=2.0).call(action, "test")
    assert time.monotonic() - started < 1.0 and action.calls == 1


def test_a_backend_tunes_the_policy_with_a_class_variable():
    from backends.local import LocalBackend

    class Patient(LocalBackend):
        retry_policy = RetryPolicy(attempts=9)

    assert policy_for(Patient({})).attempts == 9 and policy_for(LocalBackend({})) is DEFAULT


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (a lazy import hides from a reader)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_backend_imports_the_runner():
    """Backends answer single questions; retrying them is the runner's, never reached from a backend."""
    offenders = {str(path.relative_to(REPO)): sorted(m for m in _imported_modules(path)
                                                      if m == "launcher.runner" or m.startswith("launcher.runner."))
                 for path in sorted((REPO / "backends").rglob("*.py"))}
    assert {path: names for path, names in offenders.items() if names} == {}
    assert len(offenders) >= 6  # the scan saw the backends
