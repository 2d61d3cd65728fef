"""`launch ui`: a local web dashboard of the job history, served from the store the CLI uses.

This module stays import-light (no web framework): `launch ui` asks `require()` first, so a plain
install says which extra to install (exit 2), as a backend with a missing SDK does; the server
(launcher.ui.server) and the app (launcher.ui.app) load only after that.
"""

from __future__ import annotations

from launcher.errors import UsageError
from launcher.sdk import Sdk

EXTRA = Sdk(extra="ui", package="starlette, uvicorn and jinja2", modules=("starlette", "uvicorn", "jinja2"))
LOCAL_HOST = "127.0.0.1"


def require() -> None:
    """The `ui` extra's modules, or a usage error with the pip line that installs them."""
    missing = EXTRA.missing()
    if missing is not None:
        raise UsageError(f"launch ui needs {EXTRA.package}, which are not installed (no module {missing!r})",
                         EXTRA.install_line())


def main(*, host: str | None, port: int, open_browser: bool) -> None:
    """What `launch ui` runs: checks the extra, then serves until interrupted."""
    require()
    from launcher.ui.server import serve

    serve(host=host, port=port, open_browser=open_browser)
