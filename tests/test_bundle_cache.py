"""The bundle cache: a dry run stores nothing, and the cache is pruned by age and size without
ever removing a bundle that a running `launch` (this process or another) still uses.

Other processes are real subprocesses packing into the same cache; locks are real flocks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from launcher import bundle as bundle_module
from launcher.bundle import Limits, configured_limits, pack, prune
from launcher.errors import UsageError

REPO = Path(__file__).resolve().parent.parent
DAY = 86400.0


def write(root: Path, rel: str, content: str | bytes = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    write(root, "train.py", "print('train')\n")
    write(root, "pkg/model.py", "W = 1\n" * 500)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "bundles"


def cached(cache: Path, seed: str, size: int, age_s: float) -> Path:
    """A bundle some earlier run left in the cache, last used age_s ago."""
    path = cache / f"{hashlib.sha256(seed.encode()).hexdigest()}.tar.gz"
    write(cache, path.name, os.urandom(size))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def release_all() -> None:
    """Let go of the locks this test process took by packing (as its exit would)."""
    while bundle_module._HELD:
        os.close(bundle_module._HELD.popitem()[1])


@pytest.fixture(autouse=True)
def _released():
    yield
    release_all()


# -- a dry run stores nothing ---------------------------------------------------------------


def test_unstored_pack_gives_the_same_digest_and_writes_nothing(tree: Path, cache: Path, tmp_path: Path) -> None:
    dry, dry_warnings = pack(tree, cache, store=False)
    assert not cache.exists()
    stored, warnings = pack(tree, tmp_path / "other")
    assert (dry.digest, dry.size, dry.file_count, dry_warnings) == (stored.digest, stored.size,
                                                                    stored.file_count, warnings)
    assert dry.path == cache / stored.path.name  # where it would be
    assert not dry.path.exists()


def test_cli_dry_run_stores_no_bundle(cli, write_spec, tree: Path, launch_home: Path) -> None:
    spec = write_spec(f"name: dry\ncode: {tree}\nrun: python train.py\n")
    result = cli("run", str(spec), "--dry-run", check_rc=0)
    assert pack(tree, launch_home / "x", store=False)[0].digest in result.stdout  # it names what it would send
    bundles = launch_home / "bundles"
    assert not bundles.exists() or list(bundles.iterdir()) == []


# -- pruning ----------------------------------------------------------------------------------


def test_prune_removes_bundles_unused_for_longer_than_max_age(cache: Path) -> None:
    fresh = cached(cache, "fresh", 100, age_s=60)
    stale = cached(cache, "stale", 100, age_s=8 * DAY)
    removed = prune(cache, Limits(max_age_s=7 * DAY, max_bytes=10**9))
    assert removed == [stale]
    assert fresh.exists() and not stale.exists()


def test_prune_removes_oldest_until_the_rest_fit(cache: Path) -> None:
    newest = cached(cache, "a", 400, age_s=10)
    middle = cached(cache, "b", 400, age_s=20)
    oldest = cached(cache, "c", 400, age_s=30)
    other = write(cache, "notes.txt", "not a bundle")  # only launch's own files are touched
    removed = prune(cache, Limits(max_age_s=DAY, max_bytes=1000))
    assert removed == [oldest]
    assert newest.exists() and middle.exists() and other.exists()
    assert prune(cache, Limits(max_age_s=DAY, max_bytes=0)) == [newest, middle]


def test_reusing_a_bundle_renews_its_age(tree: Path, cache: Path) -> None:
    first, _ = pack(tree, cache)
    old = time.time() - 30 * DAY
    os.utime(first.path, (old, old))
    release_all()
    again, _ = pack(tree, cache)
    release_all()
    assert again.path == first.path
    assert prune(cache, Limits(max_age_s=DAY, max_bytes=10**9)) == []
    assert first.path.exists()


def test_prune_keeps_what_this_process_packed(tree: Path, cache: Path) -> None:
    mine, _ = pack(tree, cache)
    stale = cached(cache, "stale", 100, age_s=30 * DAY)
    assert prune(cache, Limits(max_age_s=1, max_bytes=0)) == [stale]
    assert mine.path.exists()


def test_prune_removes_leftovers_of_killed_packs_only(cache: Path) -> None:
    left = write(cache, ".bundle-abc.partial", b"half")
    old = time.time() - 2 * 3600
    os.utime(left, (old, old))
    writing = write(cache, ".bundle-def.partial", b"being written")
    assert prune(cache, Limits(max_age_s=DAY, max_bytes=10**9)) == [left]
    assert writing.exists()


def test_prune_of_a_missing_cache_is_a_no_op(tmp_path: Path) -> None:
    assert prune(tmp_path / "none", Limits(max_age_s=1, max_bytes=0)) == []


HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from launcher.bundle import pack
    bundle, _ = pack(Path(sys.argv[1]), Path(sys.argv[2]))
    print(bundle.path, flush=True)
    sys.stdin.read()  # hold it, like a launch still uploading, until the test closes stdin
""")


def test_prune_never_removes_a_bundle_another_launch_is_using(tree: Path, cache: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tree), str(cache)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdin is not None
        used = Path(holder.stdout.readline().strip())
        assert used.exists()
        old = time.time() - 30 * DAY
        os.utime(used, (old, old))
        stale = cached(cache, "stale", 100, age_s=30 * DAY)
        assert prune(cache, Limits(max_age_s=1, max_bytes=0)) == [stale]
        assert used.exists()
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        assert prune(cache, Limits(max_age_s=1, max_bytes=0)) == [used]  # its launch is done
    finally:
        holder.kill()
        holder.wait()


RACER = textwrap.dedent("""
    import hashlib, os, sys
    from pathlib import Path
    from launcher import bundle as b
    for i in range(int(sys.argv[3])):
        packed, _ = b.pack(Path(sys.argv[1]), Path(sys.argv[2]))
        data = packed.path.read_bytes()  # raises if a prune removed it under us
        assert hashlib.sha256(data).hexdigest() == packed.digest, i
        os.close(b._HELD.pop(str(packed.path)))  # done with it: a prune may take it now
    print("ok", flush=True)
""")


def test_concurrent_packs_and_prunes_never_lose_a_bundle_in_use(tree: Path, cache: Path) -> None:
    """Two packers of the same tree and a pruner that removes everything it may, at once: each
    packer must always find the bundle it was handed, whichever of link, reuse or re-link won."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tree), str(cache), "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for _ in range(2)]
    removed = 0
    try:
        while any(r.poll() is None for r in racers):
            removed += len(prune(cache, Limits(max_age_s=DAY, max_bytes=0)))
        for racer in racers:
            out, err = racer.communicate(timeout=60)
            assert racer.returncode == 0 and out.strip() == "ok", err
    finally:
        for racer in racers:
            racer.kill()
            racer.wait()
    assert removed > 0  # the pruner did get in between the packs


# -- limits from config.toml --------------------------------------------------------------------


def test_limits_default_and_from_config(launch_home: Path) -> None:
    from launcher import config

    assert configured_limits() == Limits(max_age_s=7 * DAY, max_bytes=1024 * 1024 * 1024)
    launch_home.mkdir(parents=True)
    (launch_home / "config.toml").write_text('[bundles]\nmax_age = "12h"\nmax_size_mb = 50\n')
    config.load.cache_clear()
    assert configured_limits() == Limits(max_age_s=12 * 3600, max_bytes=50 * 1024 * 1024)


@pytest.mark.parametrize(("text", "named"), [
    ('[bundles]\nmax_age = "soon"\n', "max_age"),
    ('[bundles]\nmax_size_mb = "big"\n', "max_size_mb"),
    ('[bundles]\nmax_size_mb = -1\n', "max_size_mb"),
    ('[bundles]\nmax_sise_mb = 5\n', "max_sise_mb"),
    ('bundles = 3\n', "bundles"),
])
def test_bad_limits_are_one_clear_error(launch_home: Path, text: str, named: str) -> None:
    from launcher import config

    launch_home.mkdir(parents=True)
    (launch_home / "config.toml").write_text(text)
    config.load.cache_clear()
    with pytest.raises(UsageError) as info:
        configured_limits()
    assert str(launch_home / "config.toml") in info.value.message
    assert named in info.value.message


def test_cli_run_prunes_by_the_configured_limits(cli, write_spec, tree: Path, launch_home: Path) -> None:
    cache = launch_home / "bundles"
    stale = cached(cache, "stale", 100, age_s=3 * DAY)
    kept = cached(cache, "recent", 100, age_s=3600)
    (launch_home / "config.toml").write_text('[bundles]\nmax_age = "2d"\n')
    spec = write_spec(f"name: prune\ncode: {tree}\nrun: python train.py\n")
    cli("run", str(spec), "--wait", check_rc=0)
    assert not stale.exists() and kept.exists()
    assert (cache / f"{pack(tree, launch_home / 'x', store=False)[0].digest}.tar.gz").exists()
