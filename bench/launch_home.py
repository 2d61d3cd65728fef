"""The state an in-process submit benchmark runs the launcher in, and gives back after."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def launch_home(home: Path, **env: str) -> Iterator[Any]:
    """The launcher's store, opened under LAUNCH_HOME=`home` with `env` set and LAUNCH_BACKEND unset; the
    environment and config are restored after, so that rows measured one after another in run_all's
    process do not see each other's settings."""
    saved = dict(os.environ)
    os.environ.update({"LAUNCH_HOME": str(home), **env})
    os.environ.pop("LAUNCH_BACKEND", None)
    from launcher import config
    from launcher.store import Store

    config.load.cache_clear()
    try:
        store = Store.open(config.ensure_home())
        try:
            yield store
        finally:
            store.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        config.load.cache_clear()
