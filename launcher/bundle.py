"""Deterministic code bundles.

A job's `code:` directory is packed into a tar.gz named by the sha256 of its
bytes. The same tree must always give byte-identical bytes, so that an
unchanged re-submit finds the bundle already uploaded and sends nothing; that
is why every piece of metadata that varies between checkouts (mtimes, owners,
umask, gzip timestamps, directory order) is pinned or dropped here.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from launcher.errors import BundleError

DEFAULT_WARN_BYTES = 100 * 1024 * 1024
LAUNCHIGNORE = ".launchignore"

# `tar czf` uses gzip's default level; higher levels cost far more time than
# they save in upload for source trees.
_COMPRESSLEVEL = 6
_COPY_CHUNK = 1024 * 1024
# Variables that would point git at some other repository than code_dir's.
_GIT_ENV_OVERRIDES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")


@dataclass(frozen=True)
class Bundle:
    """A packed code directory, stored in the cache under its own digest."""

    path: Path
    digest: str
    size: int
    file_count: int


def list_files(code_dir: Path) -> list[str]:
    """Relative posix paths (files and symlinks) that `pack` would store, sorted.

    Inside a git work tree git decides, so the bundle matches what the user
    sees as "the project" (.gitignore honoured, new untracked files included);
    elsewhere the tree is walked. `.launchignore` then trims either list, and
    is itself kept so the remote side can see what was left out.
    """
    root = _check_code_dir(code_dir)
    spec = _load_launchignore(root)
    paths = _git_files(root)
    if paths is None:
        paths = _walk(root, spec)
    return sorted(
        p
        for p in set(paths)
        if not _in_dot_git(p) and not (spec is not None and spec.match_file(p))
    )


def pack(
    code_dir: Path, cache_dir: Path, *, warn_bytes: int = DEFAULT_WARN_BYTES
) -> tuple[Bundle, list[str]]:
    """Pack code_dir into `cache_dir/<digest>.tar.gz`; return it and warnings.

    The tar is streamed through gzip and the hash in one pass, so memory stays
    flat however large the tree is. Everything unsafe to ship (symlinks out of
    the tree, unreadable or special files) is refused before any bytes are
    written, so a failure never leaves half a bundle behind.
    """
    root = _check_code_dir(code_dir)
    cache = Path(cache_dir)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths = _without_cache(list_files(root), root, cache)
    entries = [_entry(root, rel) for rel in paths]

    fd, tmp_name = tempfile.mkstemp(prefix=".bundle-", suffix=".partial", dir=cache)
    tmp = Path(tmp_name)
    try:
        with open(fd, "wb", buffering=_COPY_CHUNK) as raw:
            sink = _HashingWriter(raw)
            with (
                gzip.GzipFile(
                    fileobj=sink,
                    mode="wb",
                    mtime=0,
                    filename="",
                    compresslevel=_COMPRESSLEVEL,
                ) as gz,
                tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
            ):
                for info, full in entries:
                    _add(tar, info, full)
        digest = sink.hash.hexdigest()
        final = cache / f"{digest}.tar.gz"
        if final.exists():
            tmp.unlink()
        else:
            os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

    bundle = Bundle(path=final, digest=digest, size=sink.size, file_count=len(entries))
    return bundle, _warnings(root, bundle, entries, warn_bytes)


class _HashingWriter:
    """File-like sink that hashes and counts what gzip writes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self._raw.write(data)
        self.hash.update(data)
        n = len(data)
        self.size += n
        return n

    def flush(self) -> None:
        self._raw.flush()


def _check_code_dir(code_dir: Path) -> Path:
    """Resolve once, so symlink checks compare against the real location."""
    path = Path(code_dir)
    if not path.exists():
        raise BundleError(
            f"code directory {path} does not exist",
            hint="set `code:` in the job spec to the directory holding the training code",
        )
    if not path.is_dir():
        raise BundleError(
            f"code path {path} is not a directory",
            hint="`code:` must name a directory; it is unpacked as the job's working dir",
        )
    return Path(os.path.realpath(path))


def _load_launchignore(root: Path) -> Any:
    """The .launchignore spec, or None; pathspec is imported only when packing."""
    ignore_file = root / LAUNCHIGNORE
    if not ignore_file.is_file():
        return None
    from pathspec import GitIgnoreSpec

    try:
        lines = ignore_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"cannot read {ignore_file}: {exc}",
            hint="make it a readable UTF-8 file in gitignore syntax",
        ) from exc
    return GitIgnoreSpec.from_lines(lines)


def _git_files(root: Path) -> list[str] | None:
    """Files git considers part of the tree under root, or None outside git.

    One subprocess for the whole tree, never one per file. A missing git or
    an unusable repository falls back to walking rather than failing.
    """
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_OVERRIDES}
    if not any((parent / ".git").exists() for parent in (root, *root.parents)):
        return None  # not a work tree: no subprocess at all (a sweep packs once per job)
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root,
            capture_output=True,
            env=env,
            check=False,
        )
    except OSError:
        return None
    if listed.returncode != 0:
        return None
    paths: list[str] = []
    for raw in listed.stdout.split(b"\0"):
        if not raw:
            continue
        rel = os.fsdecode(raw).rstrip("/")
        full = root / rel
        if full.is_dir() and not full.is_symlink():
            # A submodule or nested repository: git lists only its root, but
            # the job needs its files.
            paths.extend(f"{rel}/{p}" for p in _walk(full, None))
        elif os.path.lexists(full):  # tracked but deleted files are skipped
            paths.append(rel)
    return paths


def _walk(root: Path, spec: Any) -> list[str]:
    """Every non-directory under root, never descending into symlinked dirs.

    Ignored directories are pruned unseen (a stray virtualenv can hold tens of
    thousands of files), but only when the spec has no `!` patterns: pathspec
    lets those re-include files under an ignored directory, and pruning would
    then disagree with the git path, which filters file by file.
    """
    prune = spec is not None and all(p.include is not False for p in spec.patterns)
    found: list[str] = []
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                children = list(it)
        except OSError as exc:
            raise BundleError(
                f"cannot read directory {root / rel_dir}: {exc.strerror or exc}",
                hint=f"fix its permissions or list it in {LAUNCHIGNORE}",
            ) from exc
        for child in children:
            if child.name == ".git":
                continue
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            if child.is_dir(follow_symlinks=False):
                if not (prune and spec.match_file(rel + "/")):
                    pending.append(rel)
            else:
                found.append(rel)
    return found


def _in_dot_git(rel: str) -> bool:
    return ".git" in rel.split("/")


def _without_cache(paths: list[str], root: Path, cache: Path) -> list[str]:
    """Drop the cache itself when it lives inside the code tree.

    Otherwise each pack would bundle the previous bundles and no two digests
    would ever match.
    """
    try:
        rel = Path(os.path.realpath(cache)).relative_to(root).as_posix()
    except ValueError:
        return paths
    if rel == ".":
        return paths
    return [p for p in paths if p != rel and not p.startswith(rel + "/")]


def _entry(root: Path, rel: str) -> tuple[tarfile.TarInfo, Path | None]:
    """A normalised tar header for rel, and the file to copy (None for links).

    Only the content and the executable bit survive: owner, times and the
    rest of the mode differ between machines without changing the job.
    """
    full = root / rel
    try:
        st = os.lstat(full)
    except OSError as exc:
        raise BundleError(
            f"cannot read {rel} in {root}: {exc.strerror or exc}",
            hint=f"fix its permissions or list it in {LAUNCHIGNORE}",
        ) from exc
    info = tarfile.TarInfo(rel)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.mode = 0o777
        info.linkname = _link_target(root, rel)
        return info, None
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(
            f"{rel} in {root} is not a regular file (socket, pipe or device)",
            hint=f"list it in {LAUNCHIGNORE}",
        )
    info.type = tarfile.REGTYPE
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    info.size = st.st_size
    return info, full


def _link_target(root: Path, rel: str) -> str:
    """The target to store for an in-tree symlink; refuse ones leaving the tree.

    A link out of the tree would point at nothing (or something else) on the
    remote node, so it is an error rather than a silent copy. Relative targets
    are kept as written; absolute ones, and relative ones that only get back
    in by way of the tree's own name, are rewritten relative to the link so
    the bundle works wherever it is unpacked.
    """
    full = root / rel
    target = os.readlink(full)
    resolved = os.path.realpath(full)
    if resolved != str(root) and not resolved.startswith(str(root) + os.sep):
        raise BundleError(
            f"symlink {rel} in {root} points outside the code directory (to {target})",
            hint=f"copy the file into {root}, or list {rel} in {LAUNCHIGNORE}",
        )
    lexical = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if os.path.isabs(target) or lexical == ".." or lexical.startswith("../"):
        return Path(os.path.relpath(resolved, full.parent)).as_posix()
    return target


def _add(tar: tarfile.TarFile, info: tarfile.TarInfo, full: Path | None) -> None:
    """Stream one entry; a file that shrank or vanished meanwhile is an error."""
    if full is None:
        tar.addfile(info)
        return
    try:
        with open(full, "rb") as src:
            tar.addfile(info, src)
    except OSError as exc:
        raise BundleError(
            f"cannot read {info.name}: {exc.strerror or exc}",
            hint=f"fix its permissions, or list it in {LAUNCHIGNORE} if the job does not need it",
        ) from exc


def _warnings(
    root: Path,
    bundle: Bundle,
    entries: list[tuple[tarfile.TarInfo, Path | None]],
    warn_bytes: int,
) -> list[str]:
    """Tell the user what to trim, naming the biggest top-level files and dirs."""
    warnings: list[str] = []
    if not entries:
        warnings.append(
            f"code directory {root} has no files to bundle "
            f"(everything is ignored by .gitignore or {LAUNCHIGNORE})"
        )
    if bundle.size > warn_bytes:
        by_top: dict[str, int] = {}
        for info, _ in entries:
            head, sep, _rest = info.name.partition("/")
            key = head + "/" if sep else head
            by_top[key] = by_top.get(key, 0) + info.size
        largest = sorted(by_top.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        listing = ", ".join(f"{name} ({_human(size)})" for name, size in largest)
        warnings.append(
            f"code bundle is {_human(bundle.size)} compressed, above {_human(warn_bytes)}; "
            f"largest entries: {listing}. List what the job does not need in "
            f"{root / LAUNCHIGNORE} (gitignore syntax) to upload less"
        )
    return warnings


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
