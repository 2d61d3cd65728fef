"""Exceptions the fakes raised while serving, kept until a test's teardown fails on them.

A fake that raises must not pass for a flaky provider. The HTTP fakes answer their own bugs with a
500 (or the server drops the connection), and the backends retry both as transient, so without
this a test would pass on the retry and the fake's bug would go unseen.

How a fake takes part (one way for all of them):

- it serves with ``RecordingHTTPServer(name, address, handler)`` instead of ``ThreadingHTTPServer``:
  whatever escapes a handler is recorded (a client hanging up is not a bug and is not recorded);
- where it catches an exception itself to answer it (a 500 that keeps the client from hanging), it
  calls ``record(name)`` inside the ``except`` block;
- a fake that is no HTTP server of ours (moto's werkzeug app) calls ``record(name, exc)`` from its
  error hook.

``tests/conftest.py`` calls ``assert_none_raised()`` after every test (an autouse fixture), so
every fixture and every ``with Fake():`` in a test body is covered without each fixture repeating
it. The record is process-wide rather than per fake object because a fake started inside a test
is gone by teardown, and a module-scoped one outlives the test whose request made it raise.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import traceback
from http.server import ThreadingHTTPServer
from typing import Any

_lock = threading.Lock()
_raised: list[str] = []

# what a handler meets when the client went away (a proxy's reset, a client's timeout): not the fake's fault
CLIENT_GONE = (ConnectionError, TimeoutError, ssl.SSLError)


def record(fake: str, exc: BaseException | None = None) -> None:
    """Keep the exception being handled (or `exc`) as a bug of `fake`, for the test's teardown."""
    error = exc if exc is not None else sys.exc_info()[1]
    if error is None:
        raise RuntimeError("record() outside an except block needs the exception")
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    with _lock:
        _raised.append(f"{fake}: {text}")


def take() -> list[str]:
    """The recorded tracebacks, forgotten once taken (each is reported once)."""
    with _lock:
        taken = list(_raised)
        _raised.clear()
    return taken


def assert_none_raised() -> None:
    """Fail (an AssertionError naming each traceback) when any fake raised since the last check."""
    raised = take()
    if raised:
        raise AssertionError(f"{len(raised)} exception(s) raised inside a fake (answered as 500s or dropped "
                             "connections, which the client may have retried past):\n\n" + "\n".join(raised))


class RecordingHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer whose handler exceptions are recorded as the fake's bugs instead of
    only being printed to stderr (socketserver's default), where no test would see them."""

    daemon_threads = True

    def __init__(self, fake: str, address: tuple[str, int], handler: Any) -> None:
        self.fake = fake
        super().__init__(address, handler)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], CLIENT_GONE):
            record(self.fake)
