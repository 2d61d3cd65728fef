"""A spec file read again with the same text is not parsed or validated again within a process
(launcher/spec.py `read_spec`, `SpecFile.job`), and nothing that decides what runs is taken from memory:
the file is read every time and its whole text is the key, so an edit is seen however soon after the
last read it was made (mtime unchanged, same size); the code directory and fine-tuning files are looked
up on disk every time; the warnings a spec gives are given every time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from launcher import registry, spec, yaml_source
from launcher.errors import SpecError

SPEC = "name: {name}\nimage: python:3.12\ncode: ./src\nrun: python train.py\n"


@pytest.fixture()
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The file names yaml_source.load parsed, in order."""
    seen: list[str] = []
    real = yaml_source.load

    def counting(text: str, file: str):  # type: ignore[no-untyped-def]
        seen.append(file)
        return real(text, file)

    monkeypatch.setattr(yaml_source, "load", counting)
    return seen


def _write(path: Path, text: str, like: os.stat_result | None = None) -> None:
    """Write text; with `like`, put the old mtime back (an edit within one timestamp tick looks so)."""
    path.write_text(text)
    if like is not None:
        os.utime(path, ns=(like.st_atime_ns, like.st_mtime_ns))


def test_the_same_text_is_parsed_once(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "src").mkdir()
    file = tmp_path / "job.yaml"
    _write(file, SPEC.format(name="first"))
    one, two = spec.load_spec(file), spec.load_spec(file)
    assert one.name == two.name == "first"
    assert one.code == two.code == str((tmp_path / "src").resolve())
    assert parses == [str(file)]


def test_an_edit_within_the_same_mtime_and_size_is_read(tmp_path: Path, parses: list[str]) -> None:
    (tmp_path / "src").mkdir()
    file = tmp_path / "job.yaml"
    _write(file, SPEC.format(name="first"))
    before = file.stat()
    assert spec.load_spec(file).name == "first"
    _write(file, SPEC.format(name="other"), like=before)  # same length, same mtime
    after = file.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert spec.load_spec(file).name == "other"
    assert len(parses) == 2


def test_an_edit_that_breaks_the_spec_is_refused_though_the_old_text_passed(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    file = tmp_path / "job.yaml"
    _write(file, SPEC.format(name="first"))
    before = file.stat()
    spec.load_spec(file)
    _write(file, SPEC.format(name="first").replace("first", "fir$t"), like=before)
    with pytest.raises(SpecError) as err:
        spec.load_spec(file)
    assert err.value.problems[0].path == "name"
    _write(file, SPEC.format(name="first"), like=before)  # and back: the remembered verdict serves again
    assert spec.load_spec(file).name == "first"


def test_the_code_directory_is_looked_up_every_time(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    file = tmp_path / "job.yaml"
    _write(file, SPEC.format(name="first"))
    assert spec.load_spec(file).code == str((tmp_path / "src").resolve())
    (tmp_path / "src").rmdir()
    with pytest.raises(SpecError) as err:
        spec.load_spec(file)
    assert err.value.problems[0].path == "code"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "src").symlink_to(tmp_path / "elsewhere")  # the same name, now another directory
    assert spec.load_spec(file).code == str((tmp_path / "elsewhere").resolve())


def test_a_finetune_file_is_looked_up_every_time(tmp_path: Path) -> None:
    file = tmp_path / "job.yaml"
    _write(file, "name: ft\nfinetune:\n  base_model: gpt-4o-mini\n  training_file: train.jsonl\n")
    (tmp_path / "train.jsonl").write_text("{}\n")
    loaded = spec.load_spec(file)
    assert loaded.finetune is not None and loaded.finetune.training_file == str((tmp_path / "train.jsonl").resolve())
    (tmp_path / "train.jsonl").unlink()
    with pytest.raises(SpecError) as err:
        spec.load_spec(file)
    assert err.value.problems[0].path == "finetune.training_file"


def test_overrides_and_sweep_points_are_part_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    file = tmp_path / "job.yaml"
    _write(file, SPEC.format(name="first") + "env:\n  LR: '${lr}'\n")
    assert spec.load_spec(file).env == {"LR": "${lr}"}
    assert spec.load_spec(file, ["name=second"]).name == "second"
    assert spec.load_spec(file).name == "first"
    assert spec.load_spec(file, params={"lr": "0.1"}).env == {"LR": "0.1", "lr": "0.1"}
    assert spec.load_spec(file, params={"lr": "0.2"}).env == {"LR": "0.2", "lr": "0.2"}


def test_warnings_are_given_on_every_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []

    class Recorder:
        def warning(self, message: str, *args: object) -> None:
            said.append(message % args)

    monkeypatch.setattr(spec.logs, "get", lambda: Recorder())
    monkeypatch.setattr(registry, "names", lambda: [n for n in registry.PROJECT_BACKENDS if n != "hf_jobs"])
    (tmp_path / "src").mkdir()
    file = tmp_path / "job.yaml"
    _write(file, SPEC.format(name="first") + "backends:\n  hf_jobs: {namespace: alice}\n")
    spec.load_spec(file)
    spec.load_spec(file)
    assert said == ["backends.hf_jobs is not checked: the hf_jobs backend is not installed here"] * 2
