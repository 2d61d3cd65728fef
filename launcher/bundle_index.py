"""What the bundle cache remembers about each code directory, so that a re-submit need not pack again.

One JSON file per code directory (`<cache>/index/<hash of its real path>.json`) holds:

- `stats`: for each regular file of the tree as last seen, its stat key (size, mtime_ns, ctime_ns, inode,
  device, st_mode) and the sha256 of its content. A file whose stat key is unchanged is taken to hold
  the content recorded; any other file is read and hashed again.
- `base`: the last full bundle packed from this directory: its digest and size, and each path's entry
  (mode and content digest, or symlink target), so a changed tree can be sent as an overlay of it.
- `result`: the tree (a digest over every path's entry) the last pack described, and the pieces it
  gave (the base, and the overlay if any), so an unchanged tree gets the same pieces back.

What the stat key detects: any write (it moves mtime and ctime), a write whose mtime was put back (ctime
cannot be put back without changing the system clock), chmod, a file replaced by another (inode, ctime),
a file moved in from elsewhere (inode). Symlinks are never taken from the index: their targets are read
each time. What it cannot see: a change within the file system's timestamp granularity of the moment
its stat was taken. Those files ("racy", as git calls them: modified less than RACY_NS before the pack
began) are recorded without trust and hashed again next time. Nor can it see a change that keeps
size, mtime, ctime and inode, which takes a clock set back or a file system that keeps no ctime
(some FUSE mounts), and a file server whose clock runs more than RACY_NS behind this machine's can defeat
the racy check; for those, `launch` must be told to pack afresh by removing the index file.

The index is only ever a hint: every use is checked against the files' current stat, a missing or
unreadable index means a full pack, and it is replaced whole (a temp file, then rename), so two
`launch` processes writing it at once leave one of their two complete versions. A process keeps the
index it last read or wrote of each directory, with the file's identity then (inode, size, mtime and
ctime): while the file is still that one, a re-submit from the same process (a sweep, an in-process
caller) takes it from memory rather than parsing it again; another process's rewrite is a new file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.memo import Bounded

INDEX_DIR = "index"
_VERSION = 1
# A file modified this close to the start of a pack may change again within the same timestamp tick
# (2 s covers FAT's granularity and the kernel's coarse clock); its digest is checked again next time.
RACY_NS = 2_000_000_000
_READ_CHUNK = 1024 * 1024


def stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode]


def file_digest(path: Path) -> str:
    """sha256 of a file's content, read in chunks (memory stays flat)."""
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while chunk := src.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tree_id(entries: dict[str, str]) -> str:
    """One digest for a whole tree: every path with its entry (see `entry`), in order."""
    digest = hashlib.sha256()
    for rel in sorted(entries):
        digest.update(os.fsencode(rel) + b"\0" + entries[rel].encode() + b"\n")
    return digest.hexdigest()


def file_entry(tar_mode: int, digest: str) -> str:
    return f"f{tar_mode:o}:{digest}"


def link_entry(target: str) -> str:
    return "l:" + target


@dataclass
class Index:
    root: str
    path: Path  # where it is saved
    stats: dict[str, list[Any]] = field(default_factory=dict)  # rel -> [*stat_key, digest, trusted]
    base: dict[str, Any] | None = None    # {"digest", "size", "raw", "files": {rel: entry}}
    result: dict[str, Any] | None = None  # {"tree", "base", "size", "files", "overlay", "overlay_size"}
    changed: bool = False  # something to save

    def known(self, rel: str, st: os.stat_result) -> str | None:
        """The content digest recorded for rel, if its stat key is the one recorded and was trusted."""
        seen = self.stats.get(rel)
        if seen is None or not seen[7] or seen[:6] != stat_key(st):
            return None
        return str(seen[6])

    def record(self, rel: str, st: os.stat_result, digest: str, started_ns: int) -> None:
        racy = max(st.st_mtime_ns, st.st_ctime_ns) >= started_ns - RACY_NS
        self.stats[rel] = [*stat_key(st), digest, not racy]
        self.changed = True

    def keep_only(self, rels: dict[str, Any]) -> None:
        """Forget the files no longer in the tree."""
        if any(rel not in rels for rel in self.stats):
            self.stats = {rel: seen for rel, seen in self.stats.items() if rel in rels}
            self.changed = True

    def copy(self) -> Index:
        """A copy a pack may change (`record` and `keep_only` replace entries; nothing changes one in place)."""
        return Index(self.root, self.path, dict(self.stats), self.base, self.result)

    def set(self, *, base: dict[str, Any] | None = None, result: dict[str, Any]) -> None:
        if base is not None:
            self.base = base
            self.changed = True
        if result != self.result:
            self.result = result
            self.changed = True


def index_path(cache: Path, root: Path) -> Path:
    name = hashlib.sha256(os.fsencode(str(root))).hexdigest()[:32]
    return cache / INDEX_DIR / f"{name}.json"


Identity = tuple[int, int, int, int]
# The index this process last read or wrote, by file, with that file's identity then.
_KNOWN: Bounded[Path, tuple[Identity, Index]] = Bounded(16)


def _identity(st: os.stat_result) -> Identity:
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _remember(path: Path, identity: Identity, index: Index) -> None:
    _KNOWN[path] = (identity, index.copy())


def load(cache: Path, root: Path) -> Index:
    """The index of root in cache; an empty one when there is none, or it is unreadable, from another
    version, or about another directory (it only ever saves work)."""
    path = index_path(cache, root)
    empty = Index(str(root), path)
    try:
        st = os.stat(path)
    except OSError:
        return empty
    known = _KNOWN.get(path)
    if known is not None and known[0] == _identity(st):
        return known[1].copy()
    try:
        with open(path, "rb") as src:
            st = os.fstat(src.fileno())  # the identity of the bytes read
            data = json.loads(src.read())
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict) or data.get("version") != _VERSION or data.get("root") != str(root):
        return empty
    stats, base, result = data.get("stats"), data.get("base"), data.get("result")
    if not (isinstance(stats, dict) and all(_stat_ok(seen) for seen in stats.values())
            and (base is None or _base_ok(base)) and (result is None or _result_ok(result))):
        return empty  # digests name cache paths: nothing unchecked gets that far
    index = Index(str(root), path, stats, base, result)
    _remember(path, _identity(st), index)
    return index.copy()


_DIGEST = re.compile(r"[0-9a-f]{64}")


def _digest_ok(value: Any) -> bool:
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def _int_ok(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _stat_ok(seen: Any) -> bool:
    return (isinstance(seen, list) and len(seen) == 8 and all(isinstance(v, int) for v in seen[:6])
            and _digest_ok(seen[6]) and isinstance(seen[7], bool))


def _base_ok(base: Any) -> bool:
    return (isinstance(base, dict) and _digest_ok(base.get("digest")) and _int_ok(base.get("size"))
            and _int_ok(base.get("raw")) and isinstance(base.get("files"), dict)
            and all(isinstance(v, str) for v in base["files"].values()))


def _result_ok(result: Any) -> bool:
    overlay = result.get("overlay") if isinstance(result, dict) else None
    return (isinstance(result, dict) and _digest_ok(result.get("tree")) and _digest_ok(result.get("base"))
            and _int_ok(result.get("size")) and _int_ok(result.get("files"))
            and ((overlay is None and result.get("overlay_size") is None)
                 or (_digest_ok(overlay) and _int_ok(result.get("overlay_size")))))


def save(index: Index) -> None:
    """Replace root's index whole (only renew its age when nothing in it changed); a failure to write
    it only costs the next submit a pack."""
    path = index.path
    if not index.changed:
        known = _KNOWN.get(path)
        if known is not None and time.time_ns() - known[0][2] < 1_000_000_000:
            return  # renewed in the last second (prune counts ages in days): the file stays the one known
        with contextlib.suppress(OSError):
            os.utime(path)
            _remember(path, _identity(os.stat(path)), index)
            return
    body = {"version": _VERSION, "root": index.root, "stats": index.stats, "base": index.base,
            "result": index.result}
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".partial", dir=path.parent)
        try:
            with open(fd, "w", encoding="utf-8") as out:
                json.dump(body, out, separators=(",", ":"))
            os.replace(tmp, path)
            _remember(path, _identity(os.stat(path)), index)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def prune(cache: Path, max_age_s: float, now: float, *, due: list[float] | None = None) -> list[Path]:
    """Remove the indexes of code directories not packed for max_age_s, and leftovers of killed saves.
    An index whose bundles were pruned is harmless: the next pack finds them gone and packs afresh.
    `due` gets when each one kept reaches max_age_s (`now` for one that could not be removed)."""
    due = [] if due is None else due
    removed: list[Path] = []
    try:
        with os.scandir(cache / INDEX_DIR) as it:
            found = list(it)
    except OSError:
        return removed
    for entry in found:
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if not (entry.name.endswith(".json") or entry.name.endswith(".partial")):
            continue
        if age <= max_age_s:
            due.append(now - age + max_age_s)
            continue
        try:
            os.unlink(entry.path)
        except OSError:
            due.append(now)
        else:
            removed.append(Path(entry.path))
    return removed
