"""User-facing errors and the exit codes they map to.

Every error a user can cause or meet derives from LaunchError, so the CLI can
print one clear message (no traceback unless --debug) and exit with the code
CI pipelines rely on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

EXIT_SUCCEEDED = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 3
EXIT_UNREACHABLE = 4
EXIT_INTERNAL = 70  # EX_SOFTWARE: launch itself broke, whatever the job did


class LaunchError(Exception):
    """An error with a message meant for the user and the exit code to use."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(LaunchError):
    """Bad command-line input (unknown job, ambiguous prefix, bad --set)."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a spec, located well enough to fix it without searching."""

    file: str
    line: int | None
    path: str
    message: str

    def to_json(self) -> dict[str, object]:
        """As `validate -o json` prints it."""
        return {"file": self.file, "line": self.line, "field": self.path, "message": self.message}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class SpecError(LaunchError):
    """A spec with one or more problems; all are reported at once."""

    def __init__(self, problems: list[Problem], where: str = "the job spec") -> None:
        self.problems = problems
        self.where = where
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in {where}:"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


class BundleError(LaunchError):
    """The code directory cannot be packed (missing, unsafe symlink, unreadable)."""


class BackendError(LaunchError):
    """The provider refused a request for a reason the user must fix (quota, permissions)."""

    exit_code = EXIT_FAILED


class CapacityError(BackendError):
    """The provider has no capacity or quota for this request right now (stockout, quota,
    no region with the instance type). Nothing was created, so trying another backend is
    safe: `--backend a,b` fails over on this error and on no other."""


class BackendUnreachable(LaunchError):
    """The provider could not be reached or had no usable credentials."""

    exit_code = EXIT_UNREACHABLE


class TransientBackendError(BackendUnreachable):
    """Throttling, 5xx, a reset connection: worth retrying with backoff before giving up.
    `retry_after` is the wait the provider asked for (a 429's Retry-After), which the runner's
    retry policy (launcher/retry.py) honours instead of its own backoff."""

    def __init__(self, message: str, hint: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


@contextlib.contextmanager
def translated(translate: Callable[[Exception], LaunchError | None]) -> Iterator[None]:
    """Re-raise a provider SDK's exception as the LaunchError `translate` maps it to (None: not
    ours, let it through), so each backend writes its mapping once as a plain function."""
    try:
        yield
    except LaunchError:
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
