"""A status line with a spinner on stderr for steps that take seconds, on a terminal only.

Packing a large tree or waiting for an unreachable ssh host can take many seconds;
without a sign of life people press Ctrl-C. Scripts and CI logs read stderr too, so
when stderr is not a terminal nothing at all is written: what they capture stays the
same however slow a step was. rich is imported only when a line is actually shown,
which keeps `launch --help` and `launch list` light.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

# rich shows one live display at a time: nested steps (and a sweep's submit threads) share
# it, showing the newest step that is still running.
_lock = threading.Lock()
_running: list[tuple[object, str]] = []
_shown: Any = None  # the rich Status while any step runs


def on_terminal() -> bool:
    """Whether stderr is a terminal a person watches (not a pipe, file or dumb terminal)."""
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


@contextlib.contextmanager
def step(message: str) -> Iterator[None]:
    """Show `message` with a spinner while the block runs; the line is erased when it ends."""
    if not on_terminal() or not _have_rich():
        yield
        return
    token = object()
    _start(token, message)
    try:
        yield
    finally:
        _end(token)


def _start(token: object, message: str) -> None:
    global _shown
    with _lock:
        _running.append((token, message))
        if _shown is None:
            from rich.console import Console

            _shown = Console(stderr=True).status(_plain(message), spinner="dots")
            _shown.start()
        else:
            _shown.update(_plain(message))


def _end(token: object) -> None:
    global _shown
    with _lock:
        _running[:] = [entry for entry in _running if entry[0] is not token]
        if _running:
            _shown.update(_plain(_running[-1][1]))
        elif _shown is not None:
            _shown.stop()
            _shown = None


def _plain(message: str) -> Any:
    """The message as literal text: paths and hosts may hold `[...]`, which rich reads as markup."""
    from rich.text import Text

    return Text(message)


def _have_rich() -> bool:
    """rich is a dependency, but an environment missing it must still run jobs, just silently."""
    import importlib.util

    return importlib.util.find_spec("rich") is not None
