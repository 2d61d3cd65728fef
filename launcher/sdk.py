"""A backend's provider SDK: whether it is installed, and what to say when it is not.

`pip install -e .` installs no provider SDK (each comes with its extra), so a backend
must answer `launch backends`/`plan` without its SDK, render a dry run without it, and
refuse a real call with the one pip line that installs it (exit 2), never a traceback.
Each backend declares its SDK once (`SDK = Sdk(...)`), asks `readiness()` in its own
readiness and calls `require()` where it first imports the SDK for a real call.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from launcher.backend import Readiness
from launcher.errors import UsageError


@dataclass(frozen=True)
class Sdk:
    """The modules a backend imports lazily, and the launch-jobs extra that installs them."""

    extra: str  # launch-jobs[<extra>]
    package: str  # what users know it by ("boto3", "google-cloud-aiplatform")
    modules: tuple[str, ...]  # dotted names, each importable when the extra is installed

    def missing(self) -> str | None:
        """The first of `modules` that cannot be imported here, without importing it."""
        return next((m for m in self.modules if not _findable(m)), None)

    def install_line(self) -> str:
        from launcher import registry

        return registry.install_line(self.extra)

    def readiness(self) -> Readiness | None:
        """`launch backends`' answer when the SDK is missing (None: it is installed)."""
        if self.missing() is None:
            return None
        return Readiness(False, False, f"{self.package} is not installed", self.install_line())

    def require(self) -> None:
        """Call before importing the SDK for a real provider call: a missing SDK is a usage
        error naming the install line (exit 2), not a ModuleNotFoundError (exit 70)."""
        missing = self.missing()
        if missing is not None:
            raise UsageError(f"the {self.extra} backend needs {self.package}, which is not installed "
                             f"(no module {missing!r})", self.install_line())


def _findable(module: str) -> bool:
    """importlib.util.find_spec without its surprises: for "google.cloud.x" it imports the
    parents and raises ModuleNotFoundError when "google" is absent (rather than answering None),
    and ValueError for a module that is present in sys.modules with no spec."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
