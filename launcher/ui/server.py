"""Bind, print where the dashboard is, and serve it with uvicorn until interrupted.

The socket is bound here, before uvicorn starts, so `--port 0` prints the port it got and a port in
use is one clear error (exit 2) rather than a log line from inside the server.
"""

from __future__ import annotations

import socket
import sys
import threading
import webbrowser

from launcher.errors import UsageError
from launcher.ui import LOCAL_HOST
from launcher.ui.security import Access


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise UsageError(f"--host {host!r}: not an address this machine can listen on ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                         "pick another with --port (0: any free port)") from None
    return sock


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def serve(*, host: str | None, port: int, open_browser: bool) -> None:
    """Serve on 127.0.0.1 (no token for pages) or, with `host`, there with a token for everything."""
    import uvicorn

    from launcher.store import open_store
    from launcher.ui.app import create_app

    open_store().close()  # a bad store_url or an unreadable history is said now, before any URL
    where = host or LOCAL_HOST
    sock = bind(where, port)
    bound = sock.getsockname()[1]
    shown = url_host(where)
    access = Access(token_required=host is not None, cookie=f"launch_ui_{bound}",
                    hosts=None if host is not None else frozenset({f"{shown}:{bound}", f"localhost:{bound}"}))
    url = f"http://{shown}:{bound}/" + (f"?token={access.token}" if host is not None else "")
    print(f"launch ui: serving the job history at {url}", flush=True)
    if host is not None:
        print("  every request needs the token in that URL; anyone who has it can cancel jobs", flush=True)
    print("  Ctrl-C stops it", flush=True)
    config = uvicorn.Config(create_app(open_store, access), log_level="warning", lifespan="on",
                            timeout_graceful_shutdown=2, access_log=False)
    server = uvicorn.Server(config)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, (url,)).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.flush()
