"""Tests for launcher.bundle, on real files (and a real git repo) in tmp_path."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from launcher.bundle import Bundle, list_files, pack
from launcher.errors import BundleError, LaunchError

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def write(
    root: Path, rel: str, content: str | bytes = "x", mode: int | None = None
) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    if mode is not None:
        path.chmod(mode)
    return path


def git(repo: Path, *args: str) -> None:
    """Run git isolated from any global/system config the machine may have."""
    env = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo),
    }
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(var, None)
    subprocess.run(
        [
            "git",
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=t",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=repo,
        env=env,
        check=True,
        capture_output=True,
    )


def members(bundle: Bundle) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(bundle.path, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def extract(bundle: Bundle, out: Path) -> None:
    # The "data" filter (3.11.4+) also refuses links escaping `out`.
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(bundle.path, "r:gz") as tar:
        tar.extractall(out, **kwargs)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "code"
    write(root, "train.py", "print('train')\n")
    write(root, "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/model.py", "W = 1\n" * 1000)
    return root


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_unchanged_tree_packs_to_identical_bytes(tree: Path, cache: Path) -> None:
    first, warnings = pack(tree, cache)
    first_bytes = first.path.read_bytes()
    # Metadata that varies between checkouts must not leak into the bytes.
    for path in tree.rglob("*"):
        os.utime(path, (1_000_000_000, 1_000_000_000))
    (tree / "train.py").chmod(0o600)
    (tree / "run.sh").chmod(0o700)  # still executable
    second, _ = pack(tree, cache)
    assert warnings == []
    assert second == first
    assert second.path.read_bytes() == first_bytes
    assert [p for p in cache.iterdir() if p.name != "index"] == [first.path]  # temp file dropped, no duplicate


def test_bundle_fields_describe_the_file(tree: Path, cache: Path) -> None:
    import hashlib

    bundle, _ = pack(tree, cache)
    data = bundle.path.read_bytes()
    assert bundle.path == cache / f"{bundle.digest}.tar.gz"
    assert bundle.digest == hashlib.sha256(data).hexdigest()
    assert bundle.size == len(data)
    assert bundle.file_count == 4
    assert (cache.stat().st_mode & 0o777) == 0o700


def test_same_tree_elsewhere_gives_same_digest(tree: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "other-name"
    shutil.copytree(tree, copy)
    assert (
        pack(tree, tmp_path / "c1")[0].digest == pack(copy, tmp_path / "c2")[0].digest
    )


def test_content_change_changes_digest(tree: Path, cache: Path) -> None:
    before, _ = pack(tree, cache)
    write(tree, "pkg/model.py", "W = 2\n" * 1000)
    after, _ = pack(tree, cache)
    assert after.digest != before.digest
    assert before.path.exists() and after.path.exists()


def test_exec_bit_change_changes_digest(tree: Path, cache: Path) -> None:
    before, _ = pack(tree, cache)
    (tree / "train.py").chmod(0o755)
    assert pack(tree, cache)[0].digest != before.digest


def test_extracted_bundle_matches_tree(tree: Path, cache: Path, tmp_path: Path) -> None:
    bundle, _ = pack(tree, cache)
    out = tmp_path / "out"
    extract(bundle, out)
    extracted = sorted(
        p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()
    )
    assert (
        extracted
        == list_files(tree)
        == ["pkg/__init__.py", "pkg/model.py", "run.sh", "train.py"]
    )
    for rel in extracted:
        assert (out / rel).read_bytes() == (tree / rel).read_bytes()
    assert os.access(out / "run.sh", os.X_OK)
    assert (out / "train.py").stat().st_mode & 0o111 == 0


def test_tar_headers_are_normalised(tree: Path, cache: Path) -> None:
    (tree / "train.py").chmod(0o664)
    bundle, _ = pack(tree, cache)
    infos = members(bundle)
    assert list(infos) == sorted(infos)
    for info in infos.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (
            0,
            0,
            0,
            "",
            "",
        )
        assert info.isfile()
        assert info.pax_headers == {}
    assert infos["train.py"].mode == 0o644
    assert infos["run.sh"].mode == 0o755


def test_long_and_unicode_names_carry_no_times(tree: Path, cache: Path) -> None:
    long_name = "d" * 60 + "/" + "f" * 80 + ".py"
    write(tree, long_name)
    write(tree, "données.txt")
    infos = members(pack(tree, cache)[0])
    assert long_name in infos and "données.txt" in infos
    for info in infos.values():
        assert not {"mtime", "atime", "ctime"} & set(info.pax_headers)


def test_gzip_header_has_no_mtime_or_name(tree: Path, cache: Path) -> None:
    data = pack(tree, cache)[0].path.read_bytes()
    assert data[:2] == b"\x1f\x8b"
    assert data[4:8] == b"\0\0\0\0"  # MTIME
    assert data[3] & 0x08 == 0  # FNAME flag
    assert gzip.decompress(data)  # and it is a valid gzip stream


def test_empty_dirs_and_dirs_are_not_entries(tree: Path, cache: Path) -> None:
    (tree / "empty").mkdir()
    bundle, _ = pack(tree, cache)
    assert all(not info.isdir() for info in members(bundle).values())
    assert "empty" not in list_files(tree)


def test_launchignore_outside_git(tree: Path, cache: Path) -> None:
    write(tree, "data/big.bin", b"\0" * 100)
    write(tree, "logs/a.log")
    write(tree, "pkg/notes.log")
    write(tree, "keep.log")
    write(tree, ".launchignore", "data/\n*.log\n!keep.log\n")
    files = list_files(tree)
    assert files == [
        ".launchignore",
        "keep.log",
        "pkg/__init__.py",
        "pkg/model.py",
        "run.sh",
        "train.py",
    ]
    assert set(members(pack(tree, cache)[0])) == set(files)


def test_launchignore_negation_under_ignored_dir_is_consistent(tree: Path) -> None:
    """Pruning ignored dirs must not drop what a `!` pattern brings back."""
    write(tree, "data/big.bin")
    write(tree, "data/keep.txt")
    write(tree, ".launchignore", "data/\n!data/keep.txt\n")
    files = list_files(tree)
    assert "data/big.bin" not in files
    assert "data/keep.txt" in files


def test_dot_git_never_included_outside_git(tree: Path) -> None:
    write(tree, ".git/config", "[core]\n")  # not a real repo: git rejects it
    write(tree, "vendor/lib/.git/HEAD", "ref\n")
    files = list_files(tree)
    assert not any(".git" in f.split("/") for f in files)
    assert "train.py" in files


@needs_git
def test_git_repo_respects_gitignore_and_includes_untracked(
    tmp_path: Path, cache: Path
) -> None:
    repo = tmp_path / "repo"
    write(repo, ".gitignore", "*.ckpt\nbuild/\n")
    write(repo, "code/train.py", "v1\n")
    write(repo, "code/gone.py", "old\n")
    write(repo, "outside.py")  # in the repo but not under code_dir
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "code/gone.py").unlink()  # tracked but deleted: skipped, no error
    write(repo, "code/new_untracked.py", "new\n")
    write(repo, "code/model.ckpt", b"\0" * 10)
    write(repo, "code/build/out.o", b"\0")
    write(repo, "code/.launchignore", "scratch.txt\n")
    write(repo, "code/scratch.txt")

    code = repo / "code"
    files = list_files(code)
    assert files == [".launchignore", "new_untracked.py", "train.py"]
    bundle, _ = pack(code, cache)
    assert set(members(bundle)) == set(files)
    assert bundle.file_count == 3


@needs_git
def test_git_repo_root_never_ships_dot_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, "train.py")
    git(repo, "init", "-q")
    files = list_files(repo)
    assert files == ["train.py"]


def nested_ignores(root: Path) -> None:
    """A tree exercising the .gitignore rules git applies: nested files, deeper ones
    overriding shallower ones, anchored and directory-only patterns, negation, and a
    negation that cannot bring back a file under an ignored directory."""
    write(root, ".gitignore", ".venv/\n*.log\n/build\n!keep.log\nnotes/*\n!notes/todo.md\ncache\n")
    write(root, ".venv/bin/python", "#!")
    write(root, ".venv/lib/site.py")
    write(root, "train.py")
    write(root, "run.log")
    write(root, "keep.log")
    write(root, "build/out.o")
    write(root, "src/build/keep.py")  # `/build` is anchored to the root
    write(root, "src/debug.log")
    write(root, "src/.gitignore", "!debug.log\n*.tmp\nlocal/\n")
    write(root, "src/a.tmp")
    write(root, "src/local/x.py")
    write(root, "local/y.py")  # src's `local/` does not apply above src
    write(root, "notes/todo.md")
    write(root, "notes/draft.md")
    write(root, "pkg/cache/blob.bin")  # `cache` matches a directory at any depth
    write(root, "pkg/.gitignore", "!cache/blob.bin\n")  # cannot re-include under an ignored dir
    write(root, "pkg/mod.py")
    write(root, "rules", "mod.py\n")
    (root / "pkg/sub").mkdir()
    (root / "pkg/sub/.gitignore").symlink_to("../../rules")  # git does not follow a symlinked .gitignore
    write(root, "pkg/sub/mod.py")


NESTED_KEPT = [
    ".gitignore", "keep.log", "local/y.py", "notes/todo.md", "pkg/.gitignore", "pkg/mod.py",
    "pkg/sub/.gitignore", "pkg/sub/mod.py", "rules", "src/.gitignore", "src/build/keep.py", "src/debug.log",
    "train.py",
]


def test_gitignore_honoured_outside_git(tmp_path: Path, cache: Path) -> None:
    """A copied or downloaded project is not a git work tree: its .gitignore files still
    keep `.venv/` and the rest out of the bundle."""
    root = tmp_path / "plain"
    nested_ignores(root)
    assert list_files(root) == NESTED_KEPT
    assert set(members(pack(root, cache)[0])) == set(NESTED_KEPT)


@needs_git
def test_gitignore_outside_git_agrees_with_git(tmp_path: Path) -> None:
    """The walk and `git ls-files` choose the same files from the same tree."""
    plain, repo = tmp_path / "plain", tmp_path / "repo"
    nested_ignores(plain)
    nested_ignores(repo)
    git(repo, "init", "-q")
    assert list_files(repo) == list_files(plain) == NESTED_KEPT


def test_gitignore_and_launchignore_both_apply_outside_git(tree: Path) -> None:
    write(tree, ".gitignore", "*.ckpt\n")
    write(tree, ".launchignore", "data/\n")
    write(tree, "model.ckpt")
    write(tree, "data/a.csv")
    files = list_files(tree)
    assert "model.ckpt" not in files and "data/a.csv" not in files
    assert {".gitignore", ".launchignore", "train.py"} <= set(files)


def test_unreadable_gitignore_is_a_clear_error(tree: Path) -> None:
    write(tree, "pkg/.gitignore", b"\xff\xfe not utf-8")
    with pytest.raises(BundleError) as info:
        list_files(tree)
    assert "pkg/.gitignore" in info.value.message and "UTF-8" in info.value.hint


def test_in_tree_symlinks_are_stored_as_links(
    tree: Path, cache: Path, tmp_path: Path
) -> None:
    (tree / "latest.py").symlink_to("pkg/model.py")
    (tree / "lib").symlink_to("pkg")  # a directory link is not followed
    (tree / "abs.py").symlink_to(tree / "train.py")  # absolute but in tree
    bundle, _ = pack(tree, cache)
    infos = members(bundle)
    assert infos["latest.py"].issym() and infos["latest.py"].linkname == "pkg/model.py"
    assert infos["lib"].issym() and infos["lib"].linkname == "pkg"
    assert infos["abs.py"].issym() and infos["abs.py"].linkname == "train.py"
    assert "lib/model.py" not in infos
    out = tmp_path / "out"
    extract(bundle, out)
    assert (out / "latest.py").read_text() == (tree / "pkg/model.py").read_text()
    assert (out / "abs.py").read_text() == (tree / "train.py").read_text()


def test_out_of_tree_file_symlink_refused(
    tree: Path, cache: Path, tmp_path: Path
) -> None:
    secret = write(tmp_path, "secret.txt", "s")
    (tree / "leak.txt").symlink_to(secret)
    with pytest.raises(BundleError) as info:
        pack(tree, cache)
    assert "leak.txt" in info.value.message
    assert str(secret) in info.value.message
    assert ".launchignore" in info.value.hint
    assert not cache.exists() or list(cache.iterdir()) == []


def test_out_of_tree_relative_and_dir_symlinks_refused(
    tree: Path, cache: Path, tmp_path: Path
) -> None:
    (tmp_path / "datasets").mkdir()
    write(tmp_path, "datasets/a.csv")
    (tree / "data").symlink_to("../datasets")
    with pytest.raises(BundleError, match="data"):
        pack(tree, cache)
    (tree / "data").unlink()
    (tree / "pkg/dangling").symlink_to("../../nowhere/x")
    with pytest.raises(BundleError, match="pkg/dangling"):
        pack(tree, cache)


def test_refused_symlink_can_be_launchignored(
    tree: Path, cache: Path, tmp_path: Path
) -> None:
    (tree / "leak.txt").symlink_to(write(tmp_path, "secret.txt"))
    write(tree, ".launchignore", "leak.txt\n")
    bundle, _ = pack(tree, cache)
    assert "leak.txt" not in members(bundle)


def test_missing_code_dir(tmp_path: Path, cache: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(BundleError) as info:
        pack(missing, cache)
    assert str(missing) in info.value.message and info.value.hint
    assert isinstance(info.value, LaunchError)


def test_code_dir_that_is_a_file(tmp_path: Path, cache: Path) -> None:
    path = write(tmp_path, "train.py")
    with pytest.raises(BundleError, match="not a directory"):
        pack(path, cache)


def test_fifo_refused_not_hung(tree: Path, cache: Path) -> None:
    os.mkfifo(tree / "pipe")
    with pytest.raises(BundleError, match="pipe"):
        pack(tree, cache)
    assert not cache.exists() or list(cache.iterdir()) == []  # no temp file left behind


def test_size_warning_names_largest_entries(tree: Path, cache: Path) -> None:
    write(tree, "data/weights.bin", os.urandom(20_000))
    bundle, warnings = pack(tree, cache, warn_bytes=1000)
    assert bundle.size > 1000
    assert len(warnings) == 1
    assert "data/" in warnings[0] and ".launchignore" in warnings[0]
    assert warnings[0].index("data/") < warnings[0].index("pkg/")  # biggest first
    assert pack(tree, cache, warn_bytes=bundle.size)[1] == []


def test_cache_inside_code_dir_is_not_bundled(tree: Path) -> None:
    cache = tree / ".launch-cache"
    first, _ = pack(tree, cache)
    second, _ = pack(tree, cache)
    assert second.digest == first.digest
    assert not any(name.startswith(".launch-cache") for name in members(second))
