"""Where launch keeps its state, and the user's defaults per backend.

Precedence for backend settings is `--set` > spec > this config > built-in
default; the spec loader applies the first two, `backend_settings` the third.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from launcher.errors import UsageError


def home() -> Path:
    """State dir: $LAUNCH_HOME, else $XDG_STATE_HOME/launch, else ~/.local/state/launch."""
    explicit = os.environ.get("LAUNCH_HOME")
    if explicit:  # absolute: jobs run with their own working directory
        return Path(explicit).expanduser().resolve()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "launch"


def ensure_home() -> Path:
    """The state dir, created private (0700): it holds job records and logs."""
    path = home()
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UsageError(f"cannot use {path} as launch's state directory: {exc}",
                         "point LAUNCH_HOME at a directory you can write") from None
    return path


def config_path() -> Path:
    """$LAUNCH_HOME/config.toml when LAUNCH_HOME is set, else the user config dir."""
    if os.environ.get("LAUNCH_HOME"):
        return home() / "config.toml"
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "launch" / "config.toml"


@functools.cache
def load() -> dict[str, Any]:
    """The parsed config file; a missing file is an empty config."""
    import tomllib

    path = config_path()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}", "fix or remove the config file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc}") from None


def backend_settings(name: str) -> dict[str, Any]:
    sections = load().get("backends", {})
    if not isinstance(sections, dict):
        raise UsageError(f"{config_path()}: `backends` must be a table: [backends.<name>]")
    section = sections.get(name, {})
    if not isinstance(section, dict):
        raise UsageError(f"{config_path()}: [backends.{name}] must be a table")
    return dict(section)


def default_backend() -> str:
    return str(os.environ.get("LAUNCH_BACKEND") or load().get("default_backend") or "local")
