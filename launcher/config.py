"""Where launch keeps its state, and the user's defaults per backend.

Precedence for backend settings is `--set` > spec > this config > built-in
default; the spec loader applies the first two, `backend_settings` the third.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Any

from launcher.errors import Problem, SpecError, UsageError


def home() -> Path:
    """State dir: $LAUNCH_HOME, else $XDG_STATE_HOME/launch, else ~/.local/state/launch."""
    explicit = os.environ.get("LAUNCH_HOME")
    if explicit:  # absolute: jobs run with their own working directory
        return _resolved_home(explicit, os.getcwd(), os.environ.get("HOME"))
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "launch"


@functools.lru_cache(maxsize=16)
def _resolved_home(explicit: str, cwd: str, user_home: str | None) -> Path:
    """LAUNCH_HOME made absolute: resolved once per value (and the working directory and $HOME it is
    relative to) within a process, since every command and every submit of a sweep asks for it."""
    return Path(explicit).expanduser().resolve()


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


# Every top-level key config.toml may hold; a key not here is a typo, refused with "did you mean".
TOP_LEVEL_KEYS = ("backends", "bundles", "default_backend", "store_url")
_KEY = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_DOTTED_KEY = rf"{_KEY}(?:\s*\.\s*{_KEY})*"


@functools.cache
def load() -> dict[str, Any]:
    """The parsed config file; a missing file is an empty config. Unknown keys are refused, as
    in a spec: a typo'd `default_backnd` silently ignored would run jobs somewhere unintended."""
    import tomllib

    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}", "fix or remove the config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read config: {exc}") from None
    problems = _unknown_keys(data, source_lines(text))
    if problems:
        raise SpecError(problems, where=str(path))
    return data


def _unknown_keys(data: dict[str, Any], lines: dict[tuple[str, ...], int]) -> list[Problem]:
    """Unknown top-level keys and backend tables; each backend's own settings are checked by its
    settings model when it is used (`backend_for`), with these same lines."""
    from launcher import registry

    problems = []
    file = str(config_path())
    known_backends = sorted(set(registry.names()) | set(registry.PROJECT_BACKENDS))
    checks = [((), key, TOP_LEVEL_KEYS) for key in data]
    if isinstance(data.get("backends"), dict):
        checks += [(("backends",), key, known_backends) for key in data["backends"]]
    for parent, key, allowed in checks:
        if key in allowed:
            continue
        import difflib  # only for a key that is wrong: `launch list` never pays for it

        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        what = "unknown backend" if parent else "unknown key"
        hint = f"did you mean {close[0]!r}? " if close else ""
        path = (*parent, key)
        problems.append(Problem(file, _line(lines, path), ".".join(path), f"{what}; {hint}known: {', '.join(allowed)}"))
    return problems


def source_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line each table and key of a TOML text starts on (tomllib keeps no positions). Plain
    `[table]`, `[[array]]` and `key = value` lines; inside inline tables and multi-line values
    the nearest key above stands in."""
    lines: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(rf"\[\[?\s*({_DOTTED_KEY})\s*\]\]?\s*(#.*)?", line)
        if header:
            table = _key_parts(header.group(1))
            for end in range(1, len(table) + 1):
                lines.setdefault(table[:end], number)
            continue
        key = re.match(rf"({_DOTTED_KEY})\s*=", line)
        if key:
            path = (*table, *_key_parts(key.group(1)))
            for end in range(len(table) + 1, len(path) + 1):
                lines.setdefault(path[:end], number)
    return lines


def _key_parts(dotted: str) -> tuple[str, ...]:
    parts = re.findall(_KEY, dotted)
    return tuple(part[1:-1] if part[:1] in "\"'" else part for part in parts)


def _line(lines: dict[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _lines() -> dict[tuple[str, ...], int]:
    """Read again on each call (errors only): tests and long runs may change the file."""
    try:
        return source_lines(config_path().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}


def locate(path: tuple[str, ...]) -> tuple[str, int | None] | None:
    """config.toml's file and line for a setting it holds (`backends.sagemaker.role_arn`); None
    when it does not set it."""
    node: Any = load()
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return str(config_path()), _line(_lines(), path)


def source_map() -> Any:
    """config.toml as a spec-style SourceMap, so settings errors found in it name its lines."""
    from launcher.yaml_source import SourceMap

    return SourceMap(str(config_path()), lines=dict(_lines()))


def backend_settings(name: str) -> dict[str, Any]:
    sections = load().get("backends", {})
    if not isinstance(sections, dict):
        raise UsageError(f"{config_path()}: `backends` must be a table: [backends.<name>]")
    section = sections.get(name, {})
    if not isinstance(section, dict):
        raise UsageError(f"{config_path()}: [backends.{name}] must be a table")
    return dict(section)


def default_backend() -> str:
    from launcher import registry

    return str(os.environ.get("LAUNCH_BACKEND") or load().get("default_backend") or registry.DEFAULT_BACKEND)
