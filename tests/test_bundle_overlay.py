"""Edit and re-submit: the cache's index of a code dir reuses what an unchanged tree packed, and a tree
changed a little since its base bundle travels as that base plus a small overlay.

Every overlay is checked the way a node sees it: the real bootstrap.sh under a real shell unpacks the
base and applies the overlay, and the result must be exactly what a fresh bundle of the same tree
unpacks to (paths, bytes, exec bits, symlink targets, no leftover directories)."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from launcher import bundle as bundle_module
from launcher import bundle_index
from launcher.bundle import Bundle, pack, prune

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = REPO / "launcher" / "bootstrap.sh"
BIG = 1_100_000  # random bytes: a compressed base above MIN_OVERLAY_BASE, so overlays are used
# names a shell, a tar or a removal list could get wrong
HOSTILE = ["-rf", "a b", "tab\there", "new\nline", "quote'\"", "back\\slash", "$(touch pwned)", "*", "ünï",
           "trailing\n", "%s%b", " lead"]


@pytest.fixture(autouse=True)
def _released():
    yield
    while bundle_module._HELD:
        os.close(bundle_module._HELD.popitem()[1])


@pytest.fixture
def trusting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written a moment ago count as settled (no racy re-check), so a test sees what the stat key
    alone detects."""
    monkeypatch.setattr(bundle_index, "RACY_NS", -(10**18))


def write(root: Path, rel: str, content: str | bytes = "x\n", mode: int | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    if mode is not None:
        path.chmod(mode)
    return path


def make_tree(root: Path) -> Path:
    write(root, "big.bin", os.urandom(BIG))
    write(root, "train.py", "".join(f"line {i}\n" for i in range(200)))
    write(root, "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/model.py", "W = 1\n" * 100)
    write(root, "pkg/deep/leaf.py", "leaf\n")
    write(root, "data/keep.txt", "keep\n")
    os.symlink("train.py", root / "link.py")
    os.symlink("pkg", root / "pkglink")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: ("l", target), ("f", exec bit, bytes) or ("d",)."""
    found: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("l", os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("d",)
            else:
                found[rel] = ("f", bool(st.st_mode & 0o100), full.read_bytes())
    return found


def on_node(bundle: Bundle, out: Path, shell: str = "sh") -> dict[str, tuple]:
    """What a node's working directory holds once the real bootstrap.sh has unpacked bundle."""
    env = {"PATH": os.environ["PATH"], "LAUNCH_BUNDLE": str(bundle.path), "LAUNCH_WORKDIR": str(out),
           "LAUNCH_RUN": "true", "LAUNCH_JOB_ID": "t", "LAUNCH_OUTPUT_DIR": str(out.parent / "outputs"),
           "LAUNCH_CHECKPOINT_DIR": str(out.parent / "checkpoints")}
    if bundle.overlay is not None:
        env["LAUNCH_BUNDLE_OVERLAY"] = str(bundle.overlay.path)
    out.parent.mkdir(parents=True)
    done = subprocess.run([shell, str(BOOTSTRAP)], env=env, cwd=out.parent, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert not Path(f"{out}.overlay").exists()  # the staging directory is gone
    return snapshot(out)


def overlay_parts(bundle: Bundle) -> tuple[list[str], list[str]]:
    """The overlay's removal list (decoded as the shell would) and the names in its file tar."""
    assert bundle.overlay is not None
    with tarfile.open(bundle.overlay.path, "r:gz") as outer:
        listing = outer.extractfile("remove").read()  # type: ignore[union-attr]
        inner = io.BytesIO(outer.extractfile("files.tar").read())  # type: ignore[union-attr]
    removed = [os.fsdecode(re.sub(rb"\\0([0-7]{3})", lambda m: bytes([int(m[1], 8)]), line))
               for line in listing.split(b"\n")[:-1]]
    with tarfile.open(fileobj=inner) as files:
        return removed, files.getnames()


def check_exact(tree: Path, bundle: Bundle, tmp_path: Path, shell: str = "sh") -> None:
    """base + overlay on a node == a fresh single bundle on a node == the tree itself (symlinked dirs
    are links, not copies)."""
    fresh, _ = pack(tree, tmp_path / "fresh-cache")
    assert fresh.overlay is None
    fresh_tree = on_node(fresh, tmp_path / "node-fresh" / "work", shell)
    assert on_node(bundle, tmp_path / "node-overlay" / "work", shell) == fresh_tree
    assert fresh_tree == snapshot(tree)


# -- the stat index: an unchanged tree is not packed again ------------------------------------------------


def test_unchanged_resubmit_reads_no_file_and_packs_nothing(tmp_path: Path, trusting, monkeypatch) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    first, _ = pack(tree, cache)

    def refuse(*_a, **_k):
        raise AssertionError("read or packed again")

    monkeypatch.setattr(bundle_index, "file_digest", refuse)
    monkeypatch.setattr(bundle_module, "_write_tar", refuse)
    again, _ = pack(tree, cache)
    assert again == first and again.path.is_file()


def test_files_written_just_before_a_pack_are_hashed_again_but_not_repacked(tmp_path: Path, monkeypatch) -> None:
    """Racy entries: a write in the same timestamp tick would keep every stat field, so they are
    re-read (not trusted) until they have settled; unchanged content still reuses the bundle."""
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    first, _ = pack(tree, cache)
    hashed: list[Path] = []
    real = bundle_index.file_digest
    monkeypatch.setattr(bundle_index, "file_digest", lambda p: hashed.append(p) or real(p))
    again, _ = pack(tree, cache)
    assert again == first and len(hashed) == 7  # every regular file was written just now


def test_same_size_change_with_mtime_put_back_is_seen_through_ctime(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    first, _ = pack(tree, cache)
    path = tree / "pkg" / "model.py"
    before = os.stat(path)
    path.write_bytes(b"W = 2\n" * 100)  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    while os.stat(path).st_ctime_ns == before.st_ctime_ns:  # a coarse clock: until its tick moves on
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    second, _ = pack(tree, cache)
    assert second != first and second.overlay is not None
    assert overlay_parts(second)[1] == ["pkg/model.py"]
    check_exact(tree, second, tmp_path)


def test_same_size_change_in_the_same_tick_is_seen_by_the_racy_check(tmp_path: Path) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    first, _ = pack(tree, cache)
    path = tree / "pkg" / "model.py"
    before = os.stat(path)
    path.write_bytes(b"W = 3\n" * 100)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    second, _ = pack(tree, cache)
    assert second.digest == first.digest and second.overlay is not None
    assert overlay_parts(second)[1] == ["pkg/model.py"]


def test_a_small_tree_is_always_one_fresh_bundle(tmp_path: Path, trusting) -> None:
    tree, cache = tmp_path / "code", tmp_path / "cache"
    write(tree, "train.py", "a\n")
    write(tree, "other.py", "b\n")
    first, _ = pack(tree, cache)
    write(tree, "train.py", "c\n")
    second, _ = pack(tree, cache)
    assert second.overlay is None and second.digest != first.digest
    assert second.digest == pack(tree, tmp_path / "elsewhere")[0].digest


# -- base + overlay: exactly the tree, with only what changed in it --------------------------------------


def _edit_one_line(t: Path) -> None:
    write(t, "train.py", (t / "train.py").read_text().replace("line 100\n", "line 100 changed\n"))


def _chmod(t: Path) -> None:
    (t / "pkg" / "model.py").chmod(0o755)


def _retarget(t: Path) -> None:
    (t / "link.py").unlink()
    os.symlink("pkg/model.py", t / "link.py")


def _file_to_dir(t: Path) -> None:
    (t / "data" / "keep.txt").unlink()
    write(t, "data/keep.txt/inner.py", "now a directory\n")


def _dir_to_file(t: Path) -> None:
    (t / "pkg" / "deep" / "leaf.py").unlink()
    (t / "pkg" / "deep").rmdir()
    write(t, "pkg/deep", "now a file\n")


def _file_to_link(t: Path) -> None:
    (t / "pkg" / "model.py").unlink()
    os.symlink("../train.py", t / "pkg" / "model.py")


def _link_to_dir(t: Path) -> None:
    (t / "pkglink").unlink()
    write(t, "pkglink/real.py", "a real directory now\n")


def _delete_and_add(t: Path) -> None:
    (t / "pkg" / "deep" / "leaf.py").unlink()
    (t / "pkg" / "deep").rmdir()
    write(t, "new/added.py", "added\n")


def _touch_only(t: Path) -> None:
    os.utime(t / "train.py", ns=(1, 1))
    os.utime(t / "big.bin")


CHANGES: dict[str, tuple[Callable[[Path], None], list[str], list[str]]] = {
    # the change, the paths the overlay removes first, the files it carries
    "one-line edit": (_edit_one_line, ["train.py"], ["train.py"]),
    "chmod +x": (_chmod, ["pkg/model.py"], ["pkg/model.py"]),
    "symlink retarget": (_retarget, ["link.py"], ["link.py"]),
    "file becomes a directory": (_file_to_dir, ["data/keep.txt"], ["data/keep.txt/inner.py"]),
    "directory becomes a file": (_dir_to_file, ["pkg/deep/leaf.py"], ["pkg/deep"]),
    "file becomes a symlink": (_file_to_link, ["pkg/model.py"], ["pkg/model.py"]),
    "dir symlink becomes a directory": (_link_to_dir, ["pkglink"], ["pkglink/real.py"]),
    "delete and add": (_delete_and_add, ["pkg/deep/leaf.py"], ["new/added.py"]),
    "touched, not changed": (_touch_only, [], []),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_overlay_unpacks_to_exactly_the_tree_and_holds_only_the_change(tmp_path: Path, trusting,
                                                                       change: str) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    edit, removed, carried = CHANGES[change]
    edit(tree)
    after, _ = pack(tree, cache)
    assert (after.path, after.digest) == (base.path, base.digest)  # the base is what was sent before
    if not removed and not carried:
        assert after == base
        return
    assert overlay_parts(after) == (removed, carried)
    assert after.overlay is not None and after.overlay.size < 4096
    check_exact(tree, after, tmp_path)


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_hostile_names_added_and_removed_through_an_overlay(tmp_path: Path, trusting, shell: str) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    for number, name in enumerate(HOSTILE):
        write(tree, f"old/{name}", f"old {number}\n")
    base, _ = pack(tree, cache)
    for name in HOSTILE:
        (tree / "old" / name).unlink()
        write(tree, f"new/{name}/{name}", "new\n")
    (tree / "old").rmdir()  # (a bundle has no empty directories)
    after, _ = pack(tree, cache)
    assert after.digest == base.digest
    removed, carried = overlay_parts(after)
    assert sorted(removed) == sorted(f"old/{name}" for name in HOSTILE)
    assert sorted(carried) == sorted(f"new/{name}/{name}" for name in HOSTILE)
    check_exact(tree, after, tmp_path, shell)
    assert not (tmp_path / "node-overlay" / "work" / "old").exists()
    assert not any(p.name == "pwned" for p in tmp_path.rglob("pwned"))


def test_later_edits_overlay_the_same_base_and_an_edit_back_needs_no_overlay(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    original = (tree / "train.py").read_bytes()
    _edit_one_line(tree)
    first, _ = pack(tree, cache)
    write(tree, "pkg/model.py", "W = 5\n")
    second, _ = pack(tree, cache)
    assert second.digest == base.digest and overlay_parts(second)[1] == ["pkg/model.py", "train.py"]
    check_exact(tree, second, tmp_path)
    assert pack(tree, cache)[0] == second  # unchanged since: the same two pieces, nothing packed
    write(tree, "train.py", original)
    write(tree, "pkg/model.py", "W = 1\n" * 100)
    assert pack(tree, cache)[0] == base
    assert first.overlay is not None and second.overlay is not None


def test_a_change_too_large_for_an_overlay_packs_a_new_base(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    write(tree, "big.bin", os.urandom(BIG))  # all of the base's bytes changed
    after, _ = pack(tree, cache)
    assert after.overlay is None and after.digest != base.digest
    _edit_one_line(tree)
    again, _ = pack(tree, cache)
    assert again.digest == after.digest and overlay_parts(again)[1] == ["train.py"]  # on the new base


def test_a_pruned_base_means_a_full_pack_not_an_error(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    base.path.unlink()
    _edit_one_line(tree)
    after, _ = pack(tree, cache)
    assert after.overlay is None and after.path.is_file()
    assert after.digest == pack(tree, tmp_path / "elsewhere")[0].digest


def test_dry_run_names_the_same_pieces_and_writes_nothing(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    pack(tree, cache)
    _edit_one_line(tree)
    index = bundle_index.index_path(cache, tree.resolve())
    before = (sorted(cache.iterdir()), index.read_bytes())
    dry, _ = pack(tree, cache, store=False)
    assert (sorted(cache.iterdir()), index.read_bytes()) == before
    assert dry.overlay is not None and not dry.overlay.path.exists()
    stored, _ = pack(tree, cache)
    assert stored == dry


def test_prune_drops_old_indexes_and_keeps_fresh_ones(tmp_path: Path) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    pack(tree, cache)
    index = bundle_index.index_path(cache, tree.resolve())
    day = 86400.0
    assert index not in prune(cache, bundle_module.Limits(max_age_s=day, max_bytes=10**9))
    assert index in prune(cache, bundle_module.Limits(max_age_s=day, max_bytes=10**9), now=index.stat().st_mtime
                          + 2 * day)
    assert not index.exists()


def test_a_corrupt_or_foreign_index_is_ignored(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    index = bundle_index.index_path(cache, tree.resolve())
    index.write_text("{not json")
    assert pack(tree, cache)[0] == base
    index.write_text(index.read_text().replace(str(tree.resolve()), "/somewhere/else"))
    assert pack(tree, cache)[0] == base


# -- through real backends ---------------------------------------------------------------------------------


def test_sagemaker_resubmit_after_a_one_line_edit_uploads_only_the_overlay(tmp_path: Path, launch_home: Path,
                                                                          monkeypatch, trusting) -> None:
    """SageMaker on moto, in-process, counting the bytes of every S3 PUT botocore sends: the base is in the
    bucket from the first job (HEAD finds it); the second job sends the overlay and its own small files,
    and its CreateTrainingJob names both pieces as channels that bootstrap.sh finds."""
    from botocore.httpsession import URLLib3Session
    from fakes.moto_sagemaker import MotoSageMaker

    from launcher import config, runner
    from launcher.spec import load_spec
    from launcher.store import Store

    tree = make_tree(tmp_path / "code")
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: overlay\nimage: img:1\ncode: {tree}\nrun: python train.py\nresources:\n"
                    "  accelerators: T4:1\nbackends:\n  sagemaker:\n    region: us-east-1\n"
                    "    role_arn: arn:aws:iam::123456789012:role/Train\n    bucket: overlay-bucket\n")
    sent: list[int] = []
    original = URLLib3Session.send

    def counting(self, request):
        if request.method == "PUT":  # S3 (SageMaker's calls are POSTs)
            sent.append(int(request.headers.get("Content-Length") or 0))
        return original(self, request)

    with MotoSageMaker() as server:
        server.reset()  # moto's state and the recorded requests are per process: none from another test
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.client("s3").create_bucket(Bucket="overlay-bucket")
        config.load.cache_clear()
        store = Store.open(config.ensure_home())
        monkeypatch.setattr(URLLib3Session, "send", counting)
        try:
            runner.submit(store, load_spec(str(spec)), "sagemaker")
            first = sum(sent)
            sent.clear()
            _edit_one_line(tree)
            runner.submit(store, load_spec(str(spec)), "sagemaker")
        finally:
            store.close()
        requests = list(server.created_requests)
        assert server.take_model_violations() == []
    bundle, _ = pack(tree, launch_home / "bundles")
    assert bundle.overlay is not None and first > bundle.size
    assert sum(sent) < 0.05 * bundle.size  # the overlay and the job's scripts; not the base again
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in requests[1]["InputDataConfig"]}
    assert channels["code"].endswith(f"/bundles/{bundle.digest}.tar.gz")
    assert channels["overlay"].endswith(f"/bundles/{bundle.overlay.name}")
    environment = requests[1]["Environment"]
    assert environment["LAUNCH_BUNDLE_OVERLAY"] == f"/opt/ml/input/data/overlay/{bundle.overlay.name}"
    assert environment["LAUNCH_BUNDLE"] == f"/opt/ml/input/data/code/{bundle.digest}.tar.gz"


def test_local_job_after_an_edit_runs_in_exactly_the_edited_tree(cli, write_spec, tmp_path: Path,
                                                                 launch_home: Path) -> None:
    """The local backend end to end (CLI, bootstrap.sh, the job's own working directory): the second run's
    node gets base + overlay and works in exactly the edited tree."""
    tree = make_tree(tmp_path / "code")
    spec = write_spec(f"name: edit\ncode: {tree}\nrun: echo edited lines $(grep -c changed train.py)\n")
    cli("run", str(spec), "--backend", "local", "--follow", check_rc=0)
    _edit_one_line(tree)
    _delete_and_add(tree)
    second = cli("run", str(spec), "--backend", "local", "--follow", check_rc=0)
    assert "edited lines 1" in second.stdout
    (job_dir,) = [d for d in (launch_home / "local").iterdir() if len(list(d.glob("*.tar.gz"))) == 2]
    assert snapshot(job_dir / "node-0" / "work") == snapshot(tree)


def test_the_key_names_the_set_of_pieces(tmp_path: Path, trusting) -> None:
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    assert base.key == base.digest
    _edit_one_line(tree)
    first, _ = pack(tree, cache)
    write(tree, "pkg/model.py", "W = 9\n")
    second, _ = pack(tree, cache)
    assert first.digest == second.digest == base.digest  # the base alone cannot tell them apart
    assert len({base.key, first.key, second.key}) == 3


@pytest.mark.parametrize("field", ["base", "overlay", "stat"])
def test_an_index_naming_paths_outside_the_cache_is_ignored(tmp_path: Path, trusting, field: str) -> None:
    """Digests in the index become cache paths: one that is not a digest never reaches a path."""
    tree, cache = make_tree(tmp_path / "code"), tmp_path / "cache"
    base, _ = pack(tree, cache)
    _edit_one_line(tree)
    pack(tree, cache)
    secret = write(tmp_path, "secret.tar.gz", "not yours\n")
    index = bundle_index.index_path(cache, tree.resolve())
    data = json.loads(index.read_text())
    escape = "../secret"
    if field == "base":
        data["result"]["base"] = data["base"]["digest"] = escape
    elif field == "overlay":
        data["result"]["overlay"] = escape
    else:
        data["stats"]["train.py"][6] = escape
    index.write_text(json.dumps(data))
    after, _ = pack(tree, cache)
    assert all(piece.path.parent == cache for piece in after.pieces)
    assert secret.read_text() == "not yours\n" and after.path != base.path  # the index ignored: a fresh pack
    assert after.overlay is None and after.digest == pack(tree, tmp_path / "elsewhere")[0].digest
