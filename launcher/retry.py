"""The one retry policy: how long a transient provider error is worth waiting out.

Retries happen in one layer, the runner, which wraps each backend call (submit, status,
logs, cancel, list, find) in its backend's policy. Backends and their API clients do not
retry on their own: nested loops multiply (5 runner tries of 5 client tries each held an
unreachable API for ~45 s before the user heard of it). A backend tunes the policy by
declaring `retry_policy: ClassVar[RetryPolicy]`; a provider's Retry-After reaches it as
`TransientBackendError.retry_after`. Pacing a client to a provider's documented rate
limit is no retry and stays in the client. tenacity is imported on first use only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from launcher.errors import TransientBackendError

if TYPE_CHECKING:
    from launcher.backend import Backend

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded both in attempts and in total time (so an
    outage is reported in seconds), retrying TransientBackendError and nothing else."""

    # the waits between 5 attempts add up to at most 0.5 + 1 + 2 + 2 = 5.5 s (2.75 s on average): an
    # outage (refused connections answer at once) is reported in seconds
    attempts: int = 5
    first_wait_s: float = 0.5  # the first wait is drawn from [0, first_wait_s], each next from twice that
    max_wait_s: float = 2.0
    # and against attempts that are slow themselves (a big upload, a read timeout): no wait starts that
    # would end past this, counted from the first try
    total_s: float = 60.0
    max_retry_after_s: float = 30.0  # a Retry-After that would end past total_s is not waited: the error is said

    def call(self, action: Callable[[], T], what: str) -> T:
        """`action()`, retried while it raises TransientBackendError and the bounds allow; the last
        error is raised as it was (its message and hint are what the user sees)."""
        import tenacity

        from launcher import logs

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logs.get().info("%s: %s; retrying in %.1fs", what, getattr(exc, "message", exc),
                            state.next_action.sleep if state.next_action else 0.0)

        retry, stop, wait = _conditions(self)
        return tenacity.Retrying(retry=retry, stop=stop, wait=wait, before_sleep=before_sleep, reraise=True)(action)

    def _wait(self) -> Any:
        import tenacity

        jittered = tenacity.wait_random_exponential(multiplier=self.first_wait_s, max=self.max_wait_s)

        def wait(state: tenacity.RetryCallState) -> float:
            """The provider's Retry-After when it gave one (it knows when it will answer), else backoff."""
            exc = state.outcome.exception() if state.outcome else None
            asked = getattr(exc, "retry_after", None)
            if asked is not None:
                return min(float(asked), self.max_retry_after_s)
            return jittered(state)

        return wait


@functools.cache
def _conditions(policy: RetryPolicy) -> tuple[Any, Any, Any]:
    """The policy's retry, stop and wait conditions, built once per policy: they hold no state of a call
    (that lives in tenacity's per-call state, whose clock starts at the first try)."""
    import tenacity

    stop = tenacity.stop_after_attempt(policy.attempts) | tenacity.stop_before_delay(policy.total_s)
    return tenacity.retry_if_exception_type(TransientBackendError), stop, policy._wait()


DEFAULT = RetryPolicy()


def policy_for(backend: Backend) -> RetryPolicy:
    """The policy the backend declares (the contract's `retry_policy` ClassVar, DEFAULT unless tuned)."""
    return type(backend).retry_policy
