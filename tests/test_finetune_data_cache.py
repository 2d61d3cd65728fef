"""A fine-tuning file whose content was checked before is hashed, not parsed line by line again
(launcher/finetune_data.py `check`); the content decides, never the file's mtime: a file rewritten
within the same mtime tick and size is checked afresh, and a bad line in it is still named."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from launcher import finetune_data

GOOD = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n"
BAD = GOOD.replace('"assistant"', '"assistent"')  # the same length


@pytest.fixture()
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Each line parsed by the check."""
    seen: list[bytes] = []
    real = finetune_data._line_problem

    def counting(raw: bytes, method: str) -> str | None:
        seen.append(raw)
        return real(raw, method)

    monkeypatch.setattr(finetune_data, "_line_problem", counting)
    return seen


def test_the_same_content_is_checked_once_and_named_by_its_digest(tmp_path: Path, parsed: list[bytes]) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(GOOD * 3)
    first = finetune_data.check(data, "supervised", "finetune.training_file")
    again = finetune_data.check(data, "supervised", "finetune.training_file")
    assert first == again and (first.examples, first.digest) == (3, hashlib.sha256(data.read_bytes()).hexdigest())
    assert len(parsed) == 3


def test_a_rewrite_within_the_same_mtime_and_size_is_checked_again(tmp_path: Path, parsed: list[bytes]) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(GOOD * 2)
    before = data.stat()
    finetune_data.check(data, "supervised", "finetune.training_file")
    data.write_text(GOOD + BAD)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = data.stat()
    assert after.st_size == before.st_size
    # within one tick even the ctime stays: the path's identity then matches what passed
    finetune_data._SEEN[str(data)] = (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns)
    with pytest.raises(finetune_data.BadData) as err:
        finetune_data.check(data, "supervised", "finetune.training_file")
    assert err.value.problem.line == 2 and "role" in err.value.problem.message


def test_the_method_is_part_of_what_was_checked(tmp_path: Path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(GOOD)
    finetune_data.check(data, "supervised", "finetune.training_file")
    with pytest.raises(finetune_data.BadData):  # a chat example is no preference pair
        finetune_data.check(data, "dpo", "finetune.training_file")
