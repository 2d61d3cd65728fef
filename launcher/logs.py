"""The "launch" logger for warnings and progress on stderr, set up on first use.

Importing `logging` costs ~7 ms; `launch list` and `launch --help` never warn, so
they should not pay for it. The CLI records the verbosity; the first message
configures the handler.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

_settings = {"verbose": False}


def set_verbose(verbose: bool) -> None:
    _settings["verbose"] = verbose
    get.cache_clear()


@functools.cache
def get() -> logging.Logger:
    import logging
    import sys

    class _Formatter(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            prefix = "warning: " if record.levelno >= logging.WARNING else ""
            return prefix + record.getMessage()

    logger = logging.getLogger("launch")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if _settings["verbose"] else logging.WARNING)
    logger.propagate = False
    return logger
