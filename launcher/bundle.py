"""Deterministic code bundles.

A job's `code:` directory is packed into a tar.gz named by the sha256 of its
bytes. The same tree must always give byte-identical bytes, so that an
unchanged re-submit finds the bundle already uploaded and sends nothing; that
is why every piece of metadata that varies between checkouts (mtimes, owners,
umask, gzip timestamps, directory order) is pinned or dropped here.

Edit and re-submit, all day, is the common case, so the cache also keeps an index
per code directory (launcher/bundle_index.py): an unchanged tree gets back the
pieces it got last time without a byte being read, and a tree that changed a
little since its last full ("base") bundle is sent as that base, already uploaded,
plus a small overlay: the changed files and the base's paths to remove, which
bootstrap.sh applies after unpacking the base. Both pieces are content-addressed
files in the cache like any bundle.

The local cache only has to hold a bundle until its job is submitted, so it is
pruned by age and total size. A process keeps a shared lock (flock) on every
bundle it packed until it exits; pruning takes an exclusive lock first, so it
never removes a bundle that another `launch` is still uploading.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import math
import os
import re
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from launcher import bundle_index
from launcher.errors import BundleError

DEFAULT_WARN_BYTES = 100 * 1024 * 1024
LAUNCHIGNORE = ".launchignore"
GITIGNORE = ".gitignore"
# [bundles] in config.toml: how long an unused bundle stays cached, and the cache's size cap.
DEFAULT_MAX_AGE = "7d"
DEFAULT_MAX_SIZE_MB = 1024
CONFIG_KEYS = ("max_age", "max_size_mb")

# `tar czf` uses gzip's default level; higher levels cost far more time than
# they save in upload for source trees.
_COMPRESSLEVEL = 6
_COPY_CHUNK = 1024 * 1024
# Variables that would point git at some other repository than code_dir's.
_GIT_ENV_OVERRIDES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PREFIX")
_BUNDLE_NAME = re.compile(r"[0-9a-f]{64}\.tar\.gz")
_PARTIAL_PREFIX, _PARTIAL_SUFFIX = ".bundle-", ".partial"
# A partial file is locked right after it is created; this covers that instant (and nothing
# legitimate stays unlocked this long), so only the leftovers of killed packs are removed.
_PARTIAL_GRACE_S = 3600.0
# Shared locks this process holds on the bundles it packed, by path: released at exit.
_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Piece:
    """One file of a bundle in the cache, named by the sha256 of its bytes."""

    path: Path
    digest: str
    size: int

    @property
    def name(self) -> str:
        return f"{self.digest}.tar.gz"


@dataclass(frozen=True)
class Bundle:
    """A packed code directory: a base bundle in the cache under its own digest (path, digest, size),
    and, when the tree changed a little since that base was packed, an overlay holding only the
    changes. A node unpacks the base, then applies the overlay (bootstrap.sh); the result is the
    tree as a fresh pack would give it. Backends send `pieces`, each under its own name."""

    path: Path
    digest: str
    size: int
    file_count: int
    overlay: Piece | None = None

    @property
    def pieces(self) -> tuple[Piece, ...]:
        base = Piece(self.path, self.digest, self.size)
        return (base,) if self.overlay is None else (base, self.overlay)

    @property
    def total_size(self) -> int:
        return sum(piece.size for piece in self.pieces)

    @property
    def key(self) -> str:
        """One name for the whole set of pieces (the base's digest when it is alone): whatever holds the
        pieces together (an Azure ML code asset, say) must be named by this, never by `digest` alone,
        which stays the same while the overlay changes."""
        if self.overlay is None:
            return self.digest
        return hashlib.sha256(f"{self.digest}+{self.overlay.digest}".encode()).hexdigest()


def list_files(code_dir: Path) -> list[str]:
    """Relative posix paths (files and symlinks) that `pack` would store, sorted.

    Inside a git work tree git decides, so the bundle matches what the user
    sees as "the project" (.gitignore honoured, new untracked files included);
    elsewhere the tree is walked with the same .gitignore rules (a copied or
    downloaded project still has a `.venv/` nobody wants shipped).
    `.launchignore` then trims either list, and is itself kept so the remote
    side can see what was left out.
    """
    return _listing(_check_code_dir(code_dir))


def _listing(root: Path) -> list[str]:
    """list_files of a root already checked and resolved."""
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
    code_dir: Path, cache_dir: Path, *, warn_bytes: int = DEFAULT_WARN_BYTES, store: bool = True
) -> tuple[Bundle, list[str]]:
    """Pack code_dir into `cache_dir/<digest>.tar.gz` (and maybe an overlay); return it and warnings.

    The cache's index of code_dir (launcher/bundle_index.py) spares the work a re-submit would repeat:
    an unchanged tree gets the pieces it got last time without reading a file, and a tree that changed
    a little since its base bundle was packed gets that base plus an overlay of the changes, so the
    large files do not travel again because a small one changed. Otherwise the whole tree is packed
    into a new base. Each tar is streamed through gzip and the hash in one pass, so memory stays
    flat however large the tree is. Everything unsafe to ship (symlinks out of the tree, unreadable or
    special files) is refused before any bytes are written, so a failure never leaves half a bundle.

    With `store=False` (a dry run) the same decisions are made and the same bytes hashed and counted,
    but nothing is written, the index included: the Bundle names the paths it would have. A stored
    piece stays locked against `prune` until this process exits.
    """
    started_ns = time.time_ns()
    root = _check_code_dir(code_dir)
    cache = Path(cache_dir)
    paths = _without_cache(_listing(root), root, cache)
    scanned = [_scan(root, rel) for rel in paths]
    entries = [(info, full) for info, full, _ in scanned]
    index = bundle_index.load(cache, root)
    tree: dict[str, str] = {}
    unknown: list[tuple[tarfile.TarInfo, Path, os.stat_result]] = []
    for info, full, st in scanned:
        if full is None:
            tree[info.name] = bundle_index.link_entry(info.linkname)
            continue
        digest = index.known(info.name, st)
        if digest is None:
            unknown.append((info, full, st))
        else:
            tree[info.name] = bundle_index.file_entry(info.mode, digest)
    bundle, new_base = None, None
    if index.base is not None or index.result is not None:  # worth reading what changed: it may be reused
        for info, full, st in unknown:
            digest = _read_digest(info, full)
            tree[info.name] = bundle_index.file_entry(info.mode, digest)
            index.record(info.name, st, digest, started_ns)
        bundle = _reused(index, cache, tree, store) or _overlaid(index, cache, tree, entries, store)
    if bundle is None:
        bundle, digests = _pack_base(cache, entries, store)
        for info, full, st in scanned:
            if full is not None:
                tree[info.name] = bundle_index.file_entry(info.mode, digests[info.name])
                index.record(info.name, st, digests[info.name], started_ns)
        new_base = {"digest": bundle.digest, "size": bundle.size, "files": dict(tree),
                    "raw": sum(info.size for info, _ in entries)}
    if store:
        index.keep_only(tree)
        index.set(base=new_base, result={
            "tree": bundle_index.tree_id(tree), "base": bundle.digest, "size": bundle.size,
            "files": bundle.file_count, "overlay": bundle.overlay.digest if bundle.overlay else None,
            "overlay_size": bundle.overlay.size if bundle.overlay else None})
        bundle_index.save(index)
    return bundle, _warnings(root, bundle, entries, warn_bytes)


# An overlay is worth it only for a base this big (compressed): below, re-sending the whole tree
# costs little, and one piece keeps small jobs simple (a Kubernetes ConfigMap holds one 750 KiB bundle).
MIN_OVERLAY_BASE = 1024 * 1024
# Once the changed files add up to this share of the base's bytes, a fresh base is packed instead:
# every later re-submit would send the overlay again, and each node unpacks both.
REBASE_FRACTION = 0.25


def _reused(index: bundle_index.Index, cache: Path, tree: dict[str, str], store: bool) -> Bundle | None:
    """The pieces the last pack gave, when the tree is the one it described and they are still cached."""
    last = index.result
    if last is None or last.get("tree") != bundle_index.tree_id(tree):
        return None
    base = Piece(cache / f"{last['base']}.tar.gz", str(last["base"]), int(last["size"]))
    overlay = None
    if last.get("overlay"):
        overlay = Piece(cache / f"{last['overlay']}.tar.gz", str(last["overlay"]), int(last["overlay_size"]))
    if not _hold(base.path, store) or (overlay is not None and not _hold(overlay.path, store)):
        return None
    return Bundle(base.path, base.digest, base.size, int(last["files"]), overlay)


def _overlaid(index: bundle_index.Index, cache: Path, tree: dict[str, str],
              entries: list[tuple[tarfile.TarInfo, Path | None]], store: bool) -> Bundle | None:
    """The base bundle plus an overlay of what changed since it was packed; None when there is no
    usable base or the changes are too large a share of it (then a fresh base is better)."""
    base = index.base
    if base is None or int(base["size"]) < MIN_OVERLAY_BASE:
        return None
    files: dict[str, str] = base["files"]
    changed = [(info, full) for info, full in entries if files.get(info.name) != tree[info.name]]
    if sum(info.size for info, _ in changed) > REBASE_FRACTION * int(base["raw"]):
        return None
    path = cache / f"{base['digest']}.tar.gz"
    if not _hold(path, store):
        return None
    # Removed first on the node: what is gone, and what changed (so it is written afresh, whatever
    # the node's tar does over an existing file, link or directory).
    remove = sorted((set(files) - set(tree)) | {info.name for info, _ in changed if info.name in files})
    overlay = None
    if changed or remove:
        overlay = _store_piece(cache, lambda sink: _write_overlay(sink, changed, remove), store)
    return Bundle(path, str(base["digest"]), int(base["size"]), len(entries), overlay)


def _hold(path: Path, store: bool) -> bool:
    """Whether a cached piece is there to reuse; when storing, it is locked against prune from now
    until this process exits, and its age counts from now."""
    if not store:
        return path.is_file()
    if _still_held(path):
        return True
    fd = _lock_existing(path)
    if fd is None:
        return False
    with contextlib.suppress(OSError):
        os.utime(path)
    _keep_held(path, fd)
    return True


def _still_held(path: Path) -> bool:
    """Whether this process already holds its lock on the file now at path (a re-submit of the same
    tree): then it is neither opened nor locked again. Its age is renewed unless that was done in
    the last second (prune counts ages in days)."""
    with _HELD_LOCK:
        fd = _HELD.get(str(path))
    if fd is None:
        return False
    try:
        named, opened = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):  # removed by hand, or replaced
        return False
    if time.time() - named.st_mtime >= 1.0:
        with contextlib.suppress(OSError):
            os.utime(path)
    return True


def _keep_held(path: Path, fd: int) -> None:
    with _HELD_LOCK:  # a sweep packs from several threads
        previous = _HELD.pop(str(path), None)
        _HELD[str(path)] = fd
    if previous is not None:
        os.close(previous)


def _pack_base(cache: Path, entries: list[tuple[tarfile.TarInfo, Path | None]],
               store: bool) -> tuple[Bundle, dict[str, str]]:
    """The whole tree as one bundle, and each file's content digest, taken as it was packed."""
    digests: dict[str, str] = {}
    piece = _store_piece(cache, lambda sink: _write_tar(sink, entries, digests), store)
    return Bundle(piece.path, piece.digest, piece.size, len(entries)), digests


def _store_piece(cache: Path, write: Callable[[_HashingWriter], None], store: bool) -> Piece:
    """Run `write` into a gzip stream that is hashed as it goes, and (storing) into the cache under
    the digest: a temp file, locked, linked to its content name (`_publish`)."""
    if not store:
        sink = _HashingWriter(None)
        write(sink)
        digest = sink.hash.hexdigest()
        return Piece(cache / f"{digest}.tar.gz", digest, sink.size)
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_PARTIAL_PREFIX, suffix=_PARTIAL_SUFFIX, dir=cache)
    tmp = Path(tmp_name)
    held = -1
    try:
        held = os.dup(fd)  # the lock lives on while `held` is open, after the writer closes fd
        _lock(held, exclusive=False)
        with open(fd, "wb", buffering=_COPY_CHUNK) as raw:
            sink = _HashingWriter(raw)
            write(sink)
        final = cache / f"{sink.hash.hexdigest()}.tar.gz"
        held = _publish(tmp, final, held)
    except BaseException:
        tmp.unlink(missing_ok=True)
        if held >= 0:
            os.close(held)
        raise
    _keep_held(final, held)
    return Piece(final, sink.hash.hexdigest(), sink.size)


def _gzip(sink: _HashingWriter) -> gzip.GzipFile:
    return gzip.GzipFile(fileobj=sink, mode="wb", mtime=0, filename="", compresslevel=_COMPRESSLEVEL)


def _write_tar(sink: BinaryIO | _HashingWriter, entries: list[tuple[tarfile.TarInfo, Path | None]],
               digests: dict[str, str], *, compress: bool = True) -> None:
    """The entries as a tar (gzip-compressed unless `compress` is False), each file's content digest
    into `digests`."""
    with contextlib.ExitStack() as stack:
        out: Any = stack.enter_context(_gzip(sink)) if compress else sink  # type: ignore[arg-type]
        tar = stack.enter_context(tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT))
        for info, full in entries:
            digest = _add(tar, info, full)
            if digest is not None:
                digests[info.name] = digest


# The overlay's two members: the paths to remove first, then a plain tar of the changed files.
OVERLAY_REMOVE, OVERLAY_FILES = "remove", "files.tar"
# Bytes a removal list keeps as they are; every other byte is written \0ooo (octal), which
# bootstrap.sh's `printf %b` turns back: a path with newlines, quotes or backslashes stays one line.
_PLAIN_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._/-")


def shell_line(rel: str) -> str:
    """rel as one line of an overlay's removal list."""
    return "".join(chr(b) if b in _PLAIN_BYTES else f"\\0{b:03o}" for b in os.fsencode(rel))


def _write_overlay(sink: _HashingWriter, changed: list[tuple[tarfile.TarInfo, Path | None]],
                   remove: list[str]) -> None:
    """A tar.gz of two members: the removal list, and the changed files as a plain tar (spooled: its
    size goes in the outer header before its bytes)."""
    listing = "".join(shell_line(rel) + "\n" for rel in remove).encode()
    with tempfile.SpooledTemporaryFile(max_size=16 * _COPY_CHUNK) as inner:
        _write_tar(inner, changed, {}, compress=False)  # type: ignore[arg-type]
        size = inner.tell()
        inner.seek(0)
        with _gzip(sink) as gz, tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, length, data in ((OVERLAY_REMOVE, len(listing), io.BytesIO(listing)),
                                       (OVERLAY_FILES, size, inner)):
                info = _plain_info(name)
                info.size = length
                tar.addfile(info, data)


def _plain_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o644
    return info


def _read_digest(info: tarfile.TarInfo, full: Path) -> str:
    try:
        return bundle_index.file_digest(full)
    except OSError as exc:
        raise BundleError(
            f"cannot read {info.name}: {exc.strerror or exc}",
            hint=f"fix its permissions, or list it in {LAUNCHIGNORE} if the job does not need it",
        ) from exc


def _publish(tmp: Path, final: Path, held: int) -> int:
    """Give the locked temp file its content name and return the fd that holds the lock on
    whatever file now has that name.

    A hard link never replaces an existing bundle: when one is there (the same tree packed
    before, or by a concurrent `launch`), it is reused and locked instead, and if a prune
    removed it between the two steps, linking is tried again.
    """
    while True:
        try:
            os.link(tmp, final)
        except FileExistsError:
            existing = _lock_existing(final)
            if existing is None:
                continue  # pruned in between: link ours
            os.close(held)
            tmp.unlink()
            with contextlib.suppress(OSError):
                os.utime(final)  # its age counts from its last use
            return existing
        except OSError:  # a file system without hard links
            os.replace(tmp, final)
            return held
        tmp.unlink()
        return held


def _lock_existing(path: Path) -> int | None:
    """An fd holding a shared lock on the file at path, or None when path is gone (or was
    replaced) by the time the lock is held."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        _lock(fd, exclusive=False)
        if _same_file(fd, path):
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    return None


def _lock(fd: int, *, exclusive: bool) -> bool:
    """flock fd; an exclusive lock is only tried (False when someone holds one), a shared one
    waits (a prune holds its exclusive lock only while it unlinks). Where the file system has
    no locks, a shared lock is skipped and an exclusive one is refused, so nothing is pruned."""
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX | fcntl.LOCK_NB) if exclusive else fcntl.LOCK_SH)
    except BlockingIOError:
        return False
    except OSError:
        return not exclusive
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)


@dataclass(frozen=True)
class Limits:
    """How much the bundle cache keeps: bundles unused for longer than max_age_s go, then the
    oldest ones until the rest fit in max_bytes."""

    max_age_s: float
    max_bytes: int


# The limits read from the last config.toml seen (config.load caches what it read): every submit prunes.
_LIMITS_READ: tuple[object, Limits] | None = None


def configured_limits() -> Limits:
    """[bundles] max_age and max_size_mb from config.toml, else the defaults."""
    global _LIMITS_READ
    from launcher import config

    loaded = config.load()
    if _LIMITS_READ is None or _LIMITS_READ[0] is not loaded:
        _LIMITS_READ = (loaded, _read_limits(loaded))
    return _LIMITS_READ[1]


def _read_limits(loaded: dict[str, Any]) -> Limits:
    from launcher import config, durations
    from launcher.errors import UsageError

    section = loaded.get("bundles", {})
    where = config.config_path()
    if not isinstance(section, dict):
        raise UsageError(f"{where}: `bundles` must be a table: [bundles]")
    unknown = sorted(set(section) - set(CONFIG_KEYS))
    if unknown:
        raise UsageError(f"{where}: [bundles] has no setting {unknown[0]!r}",
                         f"the settings are {', '.join(CONFIG_KEYS)}")
    try:
        max_age = durations.parse_seconds(section.get("max_age", DEFAULT_MAX_AGE))
    except ValueError as exc:
        raise UsageError(f"{where}: [bundles] max_age: {exc}", 'write e.g. max_age = "7d"') from None
    size_mb = section.get("max_size_mb", DEFAULT_MAX_SIZE_MB)
    if isinstance(size_mb, bool) or not isinstance(size_mb, (int, float)) or not 0 <= size_mb < 2**40:
        raise UsageError(f"{where}: [bundles] max_size_mb must be a number of megabytes (0 or more), "
                         f"got {size_mb!r}", f"write e.g. max_size_mb = {DEFAULT_MAX_SIZE_MB}")
    return Limits(max_age_s=max_age, max_bytes=int(size_mb * 1024 * 1024))


def prune(cache_dir: Path, limits: Limits | None = None, *, now: float | None = None) -> list[Path]:
    """Remove cached bundles past the limits (default: config.toml's), oldest first, the
    leftovers of packs that were killed, and the indexes of code directories not packed for
    max_age; return what was removed.

    A bundle some process holds (being packed, or packed for a submit still running) is
    kept whatever its age: its size still counts, so older unused ones go in its place.

    A prune that left nothing over a limit is remembered (`_PRUNED`): until the cache or its index
    directory changes (a file added or removed anywhere changes the directory's mtime) or something
    it kept reaches an age limit, another prune would remove nothing, and is skipped.
    """
    limits = limits or configured_limits()
    memo = (str(cache_dir), limits) if now is None else None  # an explicit `now` (a test's) always scans
    marks = _dir_marks(Path(cache_dir))
    if memo is not None:
        known = _PRUNED.get(memo)
        if known is not None and known[0] == marks and time.time() < known[1]:
            return []
    now = time.time() if now is None else now
    due = [math.inf]  # when a prune could next remove something; `now` when it could at once
    bundles: list[tuple[float, int, Path]] = []
    removed: list[Path] = []
    try:
        with os.scandir(cache_dir) as it:
            found = list(it)
    except FileNotFoundError:
        return removed
    for entry in found:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        path = Path(entry.path)
        if _BUNDLE_NAME.fullmatch(entry.name):
            bundles.append((info.st_mtime, info.st_size, path))
        elif entry.name.startswith(_PARTIAL_PREFIX) and entry.name.endswith(_PARTIAL_SUFFIX):
            if now - info.st_mtime <= _PARTIAL_GRACE_S:
                due.append(info.st_mtime + _PARTIAL_GRACE_S)
            elif _remove_unused(path):
                removed.append(path)
            else:
                due.append(now)
    kept_bytes = 0
    for mtime, size, path in sorted(bundles, key=lambda b: (-b[0], b[2].name)):  # newest first
        if now - mtime <= limits.max_age_s and kept_bytes + size <= limits.max_bytes:
            kept_bytes += size
            due.append(mtime + limits.max_age_s)
        elif _remove_unused(path):
            removed.append(path)
        else:
            kept_bytes += size
            due.append(now)
    removed += bundle_index.prune(Path(cache_dir), limits.max_age_s, now, due=due)
    if memo is not None:
        # A file added within the tick of a directory's mtime as seen leaves it as it was, unseen: in the
        # cache, a bundle whose size could count at once; in the index directory, an index that only
        # an age limit removes, reached no sooner than max_age after that tick.
        racy_since = time.time_ns() - bundle_index.RACY_NS
        cache_mark, index_mark = marks
        if cache_mark is not None and cache_mark[1] >= racy_since:
            due.append(now)
        if index_mark is not None and index_mark[1] >= racy_since:
            due.append((index_mark[1] - bundle_index.RACY_NS) / 1e9 + limits.max_age_s)
        _PRUNED[memo] = (marks, min(due))
    return removed


# The last prune of each cache this process made that found nothing left over a limit: (cache, limits)
# -> (the marks of the cache and index directories before it scanned, when a prune could next remove something)
DirMark = tuple[int, int] | None
_PRUNED: dict[tuple[str, Limits], tuple[tuple[DirMark, DirMark], float]] = {}


def _dir_marks(cache: Path) -> tuple[DirMark, DirMark]:
    """Inode and mtime of the cache and of its index directory (None where absent): any file added,
    removed or renamed in either changes them."""
    marks: list[DirMark] = []
    for directory in (cache, cache / bundle_index.INDEX_DIR):
        try:
            st = os.stat(directory)
        except OSError:
            marks.append(None)
        else:
            marks.append((st.st_ino, st.st_mtime_ns))
    return marks[0], marks[1]


def _remove_unused(path: Path) -> bool:
    """Unlink path unless a process holds a lock on it; True when it was removed."""
    try:
        fd = os.open(path, os.O_RDWR)  # write access: NFS emulates flock with fcntl locks
    except OSError:
        return False
    try:
        if not _lock(fd, exclusive=True) or not _same_file(fd, path):
            return False
        path.unlink()
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)


class _HashingWriter:
    """File-like sink that hashes and counts what gzip writes through it."""

    def __init__(self, raw: BinaryIO | None) -> None:
        self._raw = raw  # None: only hash and count (a dry run stores nothing)
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        if self._raw is not None:
            self._raw.write(data)
        self.hash.update(data)
        n = len(data)
        self.size += n
        return n

    def flush(self) -> None:
        if self._raw is not None:
            self._raw.flush()


class _HashingReader:
    """File-like source that hashes what tarfile reads from it (exactly the bytes it stores)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hash.update(data)
        return data


def _check_code_dir(code_dir: Path) -> Path:
    """Resolve once, so symlink checks compare against the real location."""
    path = Path(code_dir)
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)  # one stat: this runs on every submit
    except (OSError, ValueError):
        raise BundleError(
            f"code directory {path} does not exist",
            hint="set `code:` in the job spec to the directory holding the training code",
        ) from None
    if not is_dir:
        raise BundleError(
            f"code path {path} is not a directory",
            hint="`code:` must name a directory; it is unpacked as the job's working dir",
        )
    return Path(os.path.realpath(path))


def _load_launchignore(root: Path) -> Any:
    """The .launchignore spec, or None."""
    return _ignore_spec(root / LAUNCHIGNORE)


def _ignore_spec(ignore_file: Path) -> Any:
    """A gitignore-syntax file as a spec, or None when there is no such file; pathspec is
    imported only when packing."""
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
    if not _in_work_tree(str(root)):
        return None  # not a work tree: no subprocess at all (a sweep packs once per job)
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_OVERRIDES}
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


def _in_work_tree(root: str) -> bool:
    """Whether root or a directory above it has a .git (plain string paths: this runs on every submit)."""
    path = root
    while True:
        if os.path.lexists(os.path.join(path, ".git")):
            return True
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent


# The .gitignore files that apply in a directory: (the directory they sit in, their spec),
# outermost first.
_GitRules = tuple[tuple[str, Any], ...]


def _walk(root: Path, spec: Any) -> list[str]:
    """Every non-directory under root that git would not ignore, never descending into
    symlinked dirs.

    Each directory's .gitignore applies below it, a deeper one overriding a shallower one,
    and a directory git ignores is not entered (as in git, nothing under it can be brought
    back). Directories the .launchignore spec ignores are pruned unseen too (a stray
    virtualenv can hold tens of thousands of files), but only when that spec has no `!`
    patterns: pathspec lets those re-include files under an ignored directory, and pruning
    would then disagree with the git path, which filters file by file.
    """
    skip_launchignored = spec is not None and all(p.include is not False for p in spec.patterns)
    found: list[str] = []
    pending: list[tuple[str, _GitRules]] = [("", ())]
    while pending:
        rel_dir, rules = pending.pop()
        here = root / rel_dir if rel_dir else root
        try:
            with os.scandir(here) as it:
                children = list(it)
        except OSError as exc:
            raise BundleError(
                f"cannot read directory {here}: {exc.strerror or exc}",
                hint=f"fix its permissions or list it in {LAUNCHIGNORE}",
            ) from exc
        ignore = next((child for child in children if child.name == GITIGNORE), None)  # no stat when absent
        own = None if ignore is None or ignore.is_symlink() else _ignore_spec(here / GITIGNORE)  # git skips links
        if own is not None:
            rules = (*rules, (rel_dir, own))
        for child in children:
            if child.name == ".git":
                continue
            rel = f"{rel_dir}/{child.name}" if rel_dir else child.name
            is_dir = child.is_dir(follow_symlinks=False)
            if _git_ignored(rules, rel, is_dir):
                continue
            if is_dir:
                if not (skip_launchignored and spec.match_file(rel + "/")):
                    pending.append((rel, rules))
            else:
                found.append(rel)
    return found


def _git_ignored(rules: _GitRules, rel: str, is_dir: bool) -> bool:
    """Whether git would ignore rel: the deepest .gitignore with a matching pattern decides,
    each matching against the path relative to its own directory."""
    for base, rule in reversed(rules):
        inside = rel[len(base) + 1:] if base else rel
        verdict = rule.check_file(inside + "/" if is_dir else inside).include
        if verdict is not None:
            return bool(verdict)
    return False


def _in_dot_git(rel: str) -> bool:
    return ".git" in rel.split("/")


def _without_cache(paths: list[str], root: Path, cache: Path) -> list[str]:
    """Drop the cache itself when it lives inside the code tree.

    Otherwise each pack would bundle the previous bundles and no two digests
    would ever match.
    """
    real, top = os.path.realpath(cache), str(root)
    if not real.startswith(top.rstrip(os.sep) + os.sep):  # not inside, or the tree itself
        return paths
    rel = Path(os.path.relpath(real, top)).as_posix()
    return [p for p in paths if p != rel and not p.startswith(rel + "/")]


def _scan(root: Path, rel: str) -> tuple[tarfile.TarInfo, Path | None, os.stat_result]:
    """A normalised tar header for rel, the file to copy (None for links), and its lstat (what the
    index keys its content by: taken before any read, so a write during the pack shows next time).

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
        return info, None, st
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(
            f"{rel} in {root} is not a regular file (socket, pipe or device)",
            hint=f"list it in {LAUNCHIGNORE}",
        )
    info.type = tarfile.REGTYPE
    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
    info.size = st.st_size
    return info, full, st


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


def _add(tar: tarfile.TarFile, info: tarfile.TarInfo, full: Path | None) -> str | None:
    """Stream one entry and return its content's sha256 (None for a link); a file that shrank or
    vanished meanwhile is an error."""
    if full is None:
        tar.addfile(info)
        return None
    try:
        with open(full, "rb") as src:
            reader = _HashingReader(src)
            tar.addfile(info, reader)  # type: ignore[arg-type]
            return reader.hash.hexdigest()
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
