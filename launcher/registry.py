"""Finds backends through the `launcher.backends` entry-point group.

Built-ins are registered the same way as third-party plugins (pyproject.toml), so
a package installed next to `launch` adds a backend without touching this repo.
Modules are imported only when a backend is used: listing jobs never pays for them.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import os
import re
import shlex
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from launcher.errors import UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from launcher.backend import Backend

GROUP = "launcher.backends"
DISTRIBUTION = "launch-jobs"
# Backends this project ships or is building; a spec may carry their sections
# before they are installed here (checked once they are).
PROJECT_BACKENDS = ("local", "ssh", "sagemaker", "vertex", "azureml", "lambda_cloud", "hf_jobs", "pai_dlc", "slurm",
                    "kubernetes", "coreweave", "tione", "aihc", "azure_openai", "openai")
# where a job runs when neither --backend, LAUNCH_BACKEND nor config.toml's default_backend says
DEFAULT_BACKEND = "local"


def _metadata_dirs() -> Iterator[str]:
    """The *.dist-info / *.egg-info directories on sys.path, in path order (first wins, as for imports)."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in sorted(names):
            if name.endswith((".dist-info", ".egg-info")):
                yield os.path.join(entry or ".", name)


@functools.cache
def _entry_points() -> dict[str, str]:
    """name -> "module:attr" for our group, read straight from the installed metadata.

    importlib.metadata costs ~30 ms to import (it pulls in the email package) and
    `launch list` must answer in well under 100 ms; reading the entry_points.txt
    files on sys.path is ~2 ms and gives the same answer (first on the path wins).
    """
    found: dict[str, str] = {}
    for directory in _metadata_dirs():
        _read_group(os.path.join(directory, "entry_points.txt"), found)
    return found


def _read_group(path: str, found: dict[str, str]) -> None:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return
    section = ""
    for raw in lines:
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == GROUP and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), value.strip())


def names() -> list[str]:
    return sorted(_entry_points())


def _entry_point(name: str) -> str:
    eps = _entry_points()
    if name not in eps:
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "`launch backends` lists them"
        if name in PROJECT_BACKENDS:
            hint = f"{install_line(name)} (or the release that adds it)"
        raise UsageError(f"unknown backend {name!r}; known: {', '.join(sorted(eps)) or 'none'}", hint)
    return eps[name]


def entry_point(name: str) -> str:
    """The "module:attribute" backend `name` loads from, without loading it (launcher/settings_cache.py
    keys what it remembers on that code)."""
    return _entry_point(name)


@functools.cache
def backend_class(name: str) -> type[Backend]:
    """The backend's class, imported on first use. It must subclass the contract's `Backend`: the
    core calls its optional hooks without asking whether they exist."""
    from launcher.backend import Backend

    target = _entry_point(name).split("[")[0]  # drop any "[extra]" marker
    module_name, _, attribute = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
        cls = obj
    except Exception as exc:  # a broken plugin must not take the whole CLI down
        raise UsageError(f"backend {name!r} failed to load: {exc!r}",
                         "reinstall the package that provides it, or run with --debug") from exc
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UsageError(f"backend {name!r} ({target.strip()}) is not a launcher.backend.Backend subclass",
                         "its package must subclass launcher.backend.Backend; upgrade or reinstall it")
    return cls


def settings_model(name: str) -> type[BaseModel]:
    return backend_class(name).settings_model


def create(name: str, settings: dict[str, Any] | None = None, client: Any = None) -> Backend:
    """A ready backend instance for `name` with validated settings."""
    cls = backend_class(name)
    return cls(settings or {}, client=client)


# -- how launch itself was installed ---------------------------------------------


def install_line(extra: str) -> str:
    """The pip command that adds `extra` to this installation of launch: from a checkout the
    package index knows nothing of launch-jobs, so the line must name the checkout."""
    try:
        cwd: Path | None = Path.cwd()
    except OSError:  # the working directory was deleted
        cwd = None
    return install_line_for(_direct_url(), extra, cwd)


@functools.cache
def _direct_url() -> dict[str, Any] | None:
    """PEP 610's direct_url.json of the first launch-jobs dist-info on sys.path (None: installed from
    an index, or no record). Only pip's .dist-info counts: an .egg-info in a checkout is build debris."""
    own = re.sub(r"[-_.]+", "_", DISTRIBUTION).lower()
    for directory in _metadata_dirs():
        name = os.path.basename(directory)
        if name.endswith(".dist-info") and re.sub(r"[-_.]+", "_", name.split("-")[0]).lower() == own:
            try:
                with open(os.path.join(directory, "direct_url.json"), encoding="utf-8") as handle:
                    found = json.load(handle)
            except (OSError, ValueError):
                return None
            return found if isinstance(found, dict) else None
    return None


def install_line_for(direct_url: Mapping[str, Any] | None, extra: str, cwd: Path | None) -> str:
    """`pip install` for `extra`, given how launch was installed (PEP 610 direct_url.json):
    a checkout (editable or not) by its path ("." when it is the working directory), a VCS
    or archive URL by that URL, else the package index."""
    requirement = f"{DISTRIBUTION}[{extra}]"
    record = dict(direct_url or {})
    url = str(record.get("url") or "")
    if not url:
        target = requirement
    elif isinstance(record.get("dir_info"), Mapping) and url.startswith("file:"):
        path = Path(unquote(urlparse(url).path))
        target = f"{'.' if path == cwd else path}[{extra}]"
        if record["dir_info"].get("editable"):
            return f"pip install -e {shlex.quote(target)}"
    elif isinstance(record.get("vcs_info"), Mapping):
        vcs = record["vcs_info"]
        commit = f"@{vcs['commit_id']}" if vcs.get("commit_id") else ""
        target = f"{requirement} @ {vcs.get('vcs', 'git')}+{url}{commit}"
        if record.get("subdirectory"):
            target += f"#subdirectory={record['subdirectory']}"
    else:  # an archive (wheel or sdist), local or remote
        target = f"{requirement} @ {url}"
    return f"pip install {shlex.quote(target)}"
