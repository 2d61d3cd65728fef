"""Which `backends.<name>` sections of a spec have passed their backend's settings model, remembered
across commands: a spec with settings for many backends would otherwise import every one of them on
every run, only to learn again that their unchanged sections are fine (importing the backends and
building their models is most of such a dry run). Commands on an existing job (`launch status`, `logs`,
`cancel`) ask it too, about the job's config.toml and spec sections together (runner.checked_settings), so
they need not import pydantic to learn those passed.

A verdict is a pure function of the section and of the code that checks it, so the key holds both: the
section, and a fingerprint of the code (size and mtime of every .py file of the backend's top-level
package and of launcher/, and of pydantic's installed files). An edit or an upgrade checks again. Only passes are
kept (a refusal is checked every time, for its message), and only as digests: a section's values (an
API key in settings, say) are never written. Best effort: a file that cannot be read or written caches
nothing and changes no answer.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from launcher.errors import LaunchError

FILE = "settings-checks.json"
MAX_ENTRIES = 512  # newest kept: a few specs' worth of sections
# job fields a `backends.<name>` section may set for that backend alone (JobSpec.for_backend)
PORTABLE_FIELDS = ("outputs",)


def backend_settings(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """A `backends.<name>` section without its PORTABLE_FIELDS: what the backend's settings model checks."""
    return {key: value for key, value in (section or {}).items() if key not in PORTABLE_FIELDS}


def key(name: str, section: Any, entry_point: str) -> str | None:
    """The digest naming this section as checked by this code; None when the code cannot be located."""
    code = _fingerprint(entry_point.split(":")[0].split(".")[0].strip())
    if code is None:
        return None
    text = json.dumps([name, section, code, _launcher_fingerprint()], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def passed(digest: str) -> bool:
    from launcher import config

    return digest in _load(config.home())


def remember(digest: str) -> None:
    from launcher import config

    known = _load(config.home())
    if digest in known:
        return
    known[digest] = None
    kept = list(known)[-MAX_ENTRIES:]
    try:
        path = config.ensure_home() / FILE
        temporary = path.with_name(f".{FILE}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(kept, out)
        os.replace(temporary, path)
    except (OSError, LaunchError):  # a cache: failing to write it changes nothing else
        return


@functools.cache
def _load(home: Path) -> dict[str, None]:
    try:
        entries = json.loads((home / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return dict.fromkeys(e for e in entries if isinstance(e, str)) if isinstance(entries, list) else {}


@functools.cache
def _fingerprint(package: str) -> list[Any] | None:
    """Size and mtime of the package's .py files (one file for a single-module plugin), found
    without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    roots = list(spec.submodule_search_locations or [])
    return _stats(roots) if roots else _stats([], [spec.origin])


@functools.cache
def _launcher_fingerprint() -> list[Any]:
    """launcher/ itself (the spec's field types the settings models use) and the installed pydantic, found
    without importing it (`launch status` and `logs` ask this cache so as not to import pydantic): an upgrade
    rewrites its version module and pydantic-core's package."""
    installed = []
    for package, module in (("pydantic", "version.py"), ("pydantic_core", "__init__.py")):
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            spec = None
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        installed.append(_stats([], [str(Path(roots[0]) / module)]) if roots else None)
    return [installed, _stats([str(Path(__file__).parent)])]


def _stats(directories: list[str], files: list[str] | None = None) -> list[Any]:
    found = list(files or [])
    pending = list(directories)
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                    pending.append(entry.path)
                elif entry.name.endswith(".py"):
                    found.append(entry.path)
    out = []
    for path in sorted(found):
        try:
            stat = os.stat(path)
        except OSError:
            continue
        out.append([path, stat.st_size, stat.st_mtime_ns])
    return out
