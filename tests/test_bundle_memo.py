"""What a process remembers between its own packs (launcher/bundle.py, launcher/bundle_index.py), and that
none of it hides a change: a changed tree is packed again, a bundle removed by hand is packed again, an
index another process rewrote is read, and a prune is skipped only while the cache's directories are
unchanged and nothing in them has reached an age limit."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from launcher import bundle as bundle_module
from launcher import bundle_index
from launcher.bundle import Limits, pack, prune

DAY = 86400.0
ROOMY = Limits(max_age_s=DAY, max_bytes=10**9)


@pytest.fixture(autouse=True)
def _released():
    yield
    while bundle_module._HELD:  # the locks this test took by packing, let go as an exit would
        os.close(bundle_module._HELD.popitem()[1])


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files and directories written a moment ago count as settled (no racy re-check)."""
    monkeypatch.setattr(bundle_index, "RACY_NS", -(10**18))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    (root / "pkg").mkdir(parents=True)
    (root / "train.py").write_text("print('train')\n")
    (root / "pkg" / "model.py").write_text("W = 1\n" * 500)
    return root


def _age(path: Path, seconds: float) -> None:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def test_a_changed_tree_is_packed_again_in_the_same_process(tree: Path, tmp_path: Path, trusting) -> None:
    cache = tmp_path / "cache"
    first, _ = pack(tree, cache)
    assert pack(tree, cache)[0] == first  # the index, from memory, finds it unchanged
    before = (tree / "train.py").stat()
    (tree / "train.py").write_text("print('TRAIN')\n")  # same size
    os.utime(tree / "train.py", ns=(before.st_atime_ns, before.st_mtime_ns))  # and the old mtime
    second, _ = pack(tree, cache)
    assert second.digest != first.digest
    assert second.digest == pack(tree, tmp_path / "elsewhere", store=False)[0].digest


def test_reusing_a_bundle_this_process_holds_renews_its_age(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = pack(tree, cache)
    _age(first.path, 30 * DAY)
    again, _ = pack(tree, cache)  # held since the first pack: not locked again, but its age renewed
    assert again.path == first.path and time.time() - first.path.stat().st_mtime < 60


def test_a_held_bundle_removed_by_hand_is_packed_again(tree: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = pack(tree, cache)
    first.path.unlink()
    again, _ = pack(tree, cache)
    assert again.digest == first.digest and again.path.is_file()


def test_an_index_another_process_rewrote_is_read(tree: Path, tmp_path: Path, trusting) -> None:
    cache = tmp_path / "cache"
    pack(tree, cache)
    root = Path(os.path.realpath(tree))
    known = bundle_index.load(cache, root)
    assert known.result is not None
    known.stats.clear()  # a copy: what a pack changes is not what the next load gets
    assert bundle_index.load(cache, root).stats
    path = bundle_index.index_path(cache, root)
    data = json.loads(path.read_text())
    data["result"] = None
    fd, tmp = tempfile.mkstemp(dir=path.parent)  # as save() writes: a new file renamed over it
    with open(fd, "w") as out:
        json.dump(data, out)
    os.replace(tmp, path)
    assert bundle_index.load(cache, root).result is None


def test_a_prune_sees_a_file_added_since_the_last(tmp_path: Path, trusting) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    fresh = cache / f"{'a' * 64}.tar.gz"
    fresh.write_bytes(b"x")
    assert prune(cache, ROOMY) == []
    assert prune(cache, ROOMY) == []  # nothing changed: skipped
    stale = cache / f"{'b' * 64}.tar.gz"
    stale.write_bytes(b"y")
    _age(stale, 2 * DAY)
    assert prune(cache, ROOMY) == [stale]
    assert fresh.exists()


def test_a_prune_is_not_skipped_past_the_time_something_reaches_its_age(tmp_path: Path, trusting) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    soon = cache / f"{'a' * 64}.tar.gz"
    soon.write_bytes(b"x")
    limits = Limits(max_age_s=60.0, max_bytes=10**9)
    _age(soon, 59.7)
    assert prune(cache, limits) == []
    while time.time() - soon.stat().st_mtime <= 60.0:
        time.sleep(0.05)
    assert prune(cache, limits) == [soon]  # no directory changed; the age did


def test_a_prune_right_after_a_change_is_not_trusted_to_have_seen_it(tmp_path: Path) -> None:
    """A file added within the same mtime tick as the prune's look at its directory leaves the mtime as
    it was: while the directory's mtime is that recent, the next prune scans again."""
    cache = tmp_path / "cache"
    cache.mkdir()
    assert prune(cache, ROOMY) == []
    seen = cache.stat()
    stale = cache / f"{'b' * 64}.tar.gz"
    stale.write_bytes(b"y")
    _age(stale, 2 * DAY)
    os.utime(cache, ns=(seen.st_atime_ns, seen.st_mtime_ns))  # as if added within the same tick
    assert prune(cache, ROOMY) == [stale]


def test_an_index_saved_a_moment_ago_does_not_make_every_prune_scan(tmp_path: Path, monkeypatch) -> None:
    """An index that appeared unseen within its directory's mtime tick is removed by age only, no sooner
    than max_age after that tick: a prune is still skipped (a re-submit saves its index just before)."""
    cache = tmp_path / "cache"
    (cache / bundle_index.INDEX_DIR).mkdir(parents=True)
    (cache / bundle_index.INDEX_DIR / "a.json").write_text("{}")
    _age(cache, 60)  # the bundle directory settled; the index directory just changed
    scans: list[Path] = []
    real = bundle_index.prune
    monkeypatch.setattr(bundle_index, "prune", lambda *a, **k: scans.append(a[0]) or real(*a, **k))
    assert prune(cache, ROOMY) == [] and prune(cache, ROOMY) == []
    assert scans == [cache]
