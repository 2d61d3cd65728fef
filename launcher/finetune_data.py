"""Checks a fine-tuning JSONL file here, before anything is uploaded.

A bad line otherwise fails the job minutes later at the service (after the upload and the
service's own file validation), with a message that rarely names the line. Each line must be
one training example in the shape the method takes; the first bad one is named by its line.
The token count is an estimate (about 4 characters a token, as OpenAI's guidance has it), for
`launch plan`'s price and `validate`'s summary: no tokenizer is imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from launcher.errors import Problem
from launcher.memo import Bounded

ROLES = ("system", "developer", "user", "assistant", "tool")
CHARS_PER_TOKEN = 4
AUTO_EPOCHS = 3  # what `launch plan` counts for n_epochs: auto (the services pick by the file's size)
MAX_LINE_BYTES = 4 * 1024 * 1024  # one example; a longer line is a broken file, not a prompt


@dataclass(frozen=True)
class DataReport:
    """What a file holds: examples and an estimate of their tokens (one epoch), and the sha256 of the
    content checked (what it is uploaded under)."""

    file: str
    examples: int
    tokens: int
    digest: str = ""


class BadData(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


# What checking a content found, by (its sha256, method): only passes, as (examples, tokens). A file read
# again with the same bytes (a re-submit, a sweep's points) is hashed, not parsed line by line again.
_PASSED: Bounded[tuple[str, str], tuple[int, int]] = Bounded(64)
# The identity (inode, size, mtime, ctime) each path had when it passed: only a hint of which way to read
# it next (hash first, or check and hash in one pass); what is reused is keyed by the content's digest.
_SEEN: Bounded[str, tuple[int, int, int, int]] = Bounded(64)


def check(path: Path, method: str, field: str) -> DataReport:
    """The file's examples and tokens; BadData names the first bad line (file, line, field, fix)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise BadData(Problem(str(path), None, field, f"cannot read it: {exc.strerror}")) from None
    with handle:
        st = os.fstat(handle.fileno())
        identity = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if _SEEN.get(str(path)) == identity:  # likely checked before: its bytes decide
            digest = hashlib.sha256()
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            known = _PASSED.get((digest.hexdigest(), method))
            if known is not None:
                return DataReport(str(path), *known, digest.hexdigest())
            handle.seek(0)
        examples, tokens, content = _checked(handle, path, method, field)
    _PASSED[(content, method)] = (examples, tokens)
    _SEEN[str(path)] = identity
    return DataReport(str(path), examples, tokens, content)


def _checked(handle: Any, path: Path, method: str, field: str) -> tuple[int, int, str]:
    """Every line checked, and the sha256 of exactly the bytes checked."""
    examples = tokens = 0
    digest = hashlib.sha256()
    for number, raw in enumerate(handle, start=1):
        digest.update(raw)
        if len(raw) > MAX_LINE_BYTES:
            raise BadData(Problem(str(path), number, field, f"line longer than {MAX_LINE_BYTES // 1024 // 1024} "
                                  "MiB; one example per line"))
        if not raw.strip():
            continue
        why = _line_problem(raw, method)
        if why:
            raise BadData(Problem(str(path), number, field, why))
        examples += 1
        tokens += math.ceil(len(raw.strip()) / CHARS_PER_TOKEN)
    if examples == 0:
        raise BadData(Problem(str(path), None, field, "the file holds no examples; one JSON object per line"))
    return examples, tokens, digest.hexdigest()


def _line_problem(raw: bytes, method: str) -> str | None:
    try:
        example = json.loads(raw)
    except UnicodeDecodeError:
        return "not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at column {exc.colno}); one JSON object per line"
    if not isinstance(example, dict):
        return "expected a JSON object per line"
    if method == "dpo":
        return _preference_problem(example)
    return _chat_problem(example.get("messages"), "messages", need_assistant=True) or _unknown_keys(
        example, ("messages", "tools", "parallel_tool_calls", "functions"))


def _preference_problem(example: dict[str, Any]) -> str | None:
    """dpo: {"input": {"messages": [...]}, "preferred_output": [...], "non_preferred_output": [...]}."""
    unknown = _unknown_keys(example, ("input", "preferred_output", "non_preferred_output"))
    if unknown:
        return unknown
    given = example.get("input")
    if not isinstance(given, dict):
        return 'expected "input": {"messages": [...]} (dpo examples are a prompt and two answers)'
    why = _chat_problem(given.get("messages"), "input.messages", need_assistant=False)
    if why:
        return why
    for key in ("preferred_output", "non_preferred_output"):
        output = example.get(key)
        why = _chat_problem(output, key, need_assistant=True)
        if why:
            return why
        if any(m.get("role") != "assistant" for m in output):
            return f"{key}: the answers are assistant messages"
    return None


def _chat_problem(messages: Any, where: str, *, need_assistant: bool) -> str | None:
    if not isinstance(messages, list) or not messages:
        return f'expected "{where}": a non-empty list of {{"role": ..., "content": ...}} messages'
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"{where}[{index}]: expected a message object"
        role = message.get("role")
        if role not in ROLES:
            return f"{where}[{index}].role: expected one of {', '.join(ROLES)}; got {json.dumps(role)[:40]}"
        content = message.get("content")
        if content is None and not (role == "assistant" and message.get("tool_calls")):
            return f"{where}[{index}].content: missing (text, or a list of parts)"
        if content is not None and not isinstance(content, (str, list)):
            return f"{where}[{index}].content: expected text or a list of parts"
        weight = message.get("weight")
        if weight is not None and weight not in (0, 1):
            return f"{where}[{index}].weight: 0 or 1"
    if need_assistant and not any(m.get("role") == "assistant" for m in messages):
        return f"{where}: no assistant message; an example needs at least one answer to learn"
    return None


def _unknown_keys(example: dict[str, Any], allowed: tuple[str, ...]) -> str | None:
    unknown = sorted(set(example) - set(allowed))
    return f"unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}" if unknown else None


def reports(finetune: Any) -> list[DataReport]:
    """Each local file of a spec's finetune: section checked (file ids are the service's to check)."""
    found = []
    for key in ("training_file", "validation_file"):
        value = getattr(finetune, key)
        if value is not None and Path(value).is_absolute():
            found.append(check(Path(value), finetune.method, f"finetune.{key}"))
    return found
