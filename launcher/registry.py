"""Finds backends through the `launcher.backends` entry-point group.

Built-ins are registered the same way as third-party plugins (pyproject.toml), so
a package installed next to `launch` adds a backend without touching this repo.
Modules are imported only when a backend is used: listing jobs never pays for them.
"""

from __future__ import annotations

import difflib
import functools
from typing import TYPE_CHECKING, Any

from launcher.errors import UsageError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from pydantic import BaseModel

GROUP = "launcher.backends"
# Backends this project ships or is building; a spec may carry their sections
# before they are installed here (checked once they are).
PROJECT_BACKENDS = ("local", "ssh", "sagemaker", "vertex", "azureml", "lambda_cloud")


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def names() -> list[str]:
    return sorted(_entry_points())


def entry_point_value(name: str) -> str:
    return _entry_point(name).value


def _entry_point(name: str) -> EntryPoint:
    eps = _entry_points()
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`launch backends` lists them"
        raise UsageError(f"unknown backend {name!r}; known: {', '.join(sorted(eps)) or 'none'}", hint)
    return eps[name]


@functools.cache
def backend_class(name: str) -> Any:
    """The backend's class, imported on first use."""
    try:
        cls = _entry_point(name).load()
    except UsageError:
        raise
    except Exception as exc:  # a broken plugin must not take the whole CLI down
        raise UsageError(f"backend {name!r} failed to load: {exc!r}",
                         "reinstall the package that provides it, or run with --debug") from exc
    return cls


def settings_model(name: str) -> type[BaseModel]:
    return backend_class(name).settings_model


def create(name: str, settings: dict[str, Any] | None = None, client: Any = None) -> Any:
    """A ready backend instance for `name` with validated settings."""
    cls = backend_class(name)
    return cls(settings or {}, client=client)
