"""The bytes path of `launch logs`: a log file's bytes reach stdout as the job wrote them, never
decoded and encoded again, in blocks that never split a line, with cursors that resume exactly.

Unit tests drive `log_blocks` (shared by the local, ssh and slurm backends) with every chunking of
the same bytes; the end-to-end tests read a real local job's log through the CLI.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.remote.nodes import log_blocks
from launcher.backend import LogLine
from launcher.cli import _printer

REPO = Path(__file__).resolve().parent.parent
# multi-byte UTF-8 (2, 3 and 4 bytes), an invalid byte, a blank line, and a last line without "\n"
LOG = ("héllo wörld ✓ 🚀\n" * 5).encode() + b"bad \xff byte\n\n" + "tail ✓ no newline".encode()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def shown(blocks: list[LogLine]) -> bytes:
    """What the printer writes for these blocks (one node): each block's bytes and a newline."""
    return b"".join(bytes(block.data) + b"\n" for block in blocks)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16, len(LOG)])
def test_bytes_pass_through_whatever_the_chunking(size):
    """A character cut between two reads comes out whole; bytes that are not UTF-8 come out as they
    were (as `cat` shows them), and `text` still decodes every block."""
    blocks = list(log_blocks(chunked(LOG, size), 0, {}, finished=True))
    assert shown(blocks) == LOG + b"\n"  # the last line had none: the printer ends it
    assert "\n".join(block.text for block in blocks) == LOG.decode("utf-8", "replace")


@pytest.mark.parametrize("size", [1, 4, 9, 64])
def test_resuming_from_any_cursor_repeats_and_loses_nothing(size):
    """A follow that reconnects after any block reads on from that block's cursor: what it shows
    then, after what was already shown, is the whole log once."""
    blocks = list(log_blocks(chunked(LOG, size), 3, {}, finished=True))
    for index, block in enumerate(blocks):
        offset = block.cursor[3]
        rest = list(log_blocks(chunked(LOG[offset:], size), 3, {3: offset}, finished=True))
        assert shown(blocks[:index + 1]) + shown(rest) == LOG + b"\n", (size, index)
        assert all(later.node == 3 for later in rest)


def test_a_running_node_holds_its_partial_line_and_gives_it_once_finished():
    offsets: dict[int, int] = {}
    running = list(log_blocks([b"one\ntw", "o ✓"[:2].encode()], 0, offsets, finished=False))
    assert shown(running) == b"one\n" and offsets == {0: 4}
    # the writer finished the line (and the character cut in two) later; the next read starts at the cursor
    rest = ("two ✓\nlast").encode()
    finished = list(log_blocks(chunked(rest, 3), 0, offsets, finished=True))
    assert shown(finished) == "two ✓\nlast\n".encode() and offsets == {0: 4 + len(rest)}
    assert [block.text for block in finished] == ["two ✓", "last"]


def test_a_line_longer_than_many_chunks_comes_out_whole():
    long = b"x" * 1000 + "é".encode()
    data = b"a\n" + long + b"\nb\n"
    blocks = list(log_blocks(chunked(data, 7), 0, {}, finished=False))
    assert shown(blocks) == data and blocks[-1].cursor == {0: len(data)}


def test_the_body_of_a_chunk_is_not_copied():
    """A 1 MiB read yields a view into the bytes read, not a copy of them (the log's speed)."""
    chunk = b"line\n" * 1000
    (block,) = log_blocks([chunk], 0, {}, finished=False)
    assert isinstance(block.data, memoryview) and block.data.obj is chunk


def test_printer_writes_bytes_to_a_binary_stream_and_text_elsewhere():
    binary = io.BytesIO()
    stream = io.TextIOWrapper(binary, encoding="ascii")  # bytes bypass the text layer's encoding
    stream.write("before\n")
    show = _printer(False, stream)
    show(LogLine(data=memoryview(b"caf\xc3\xa9 \xff")))
    assert binary.getvalue() == b"before\ncaf\xc3\xa9 \xff\n"
    multi = _printer(True, stream)
    multi(LogLine(data=b"a\nb", node=2))
    assert binary.getvalue().endswith(b"[node 2] a\n[node 2] b\n")
    text = io.StringIO()
    _printer(True, text)(LogLine("x\ny", node=1))
    assert text.getvalue() == "[node 1] x\n[node 1] y\n"


def test_logline_from_text_and_from_bytes_agree():
    assert LogLine("é", 1, {1: 2}) == LogLine(data="é".encode(), node=1, cursor={1: 2})
    assert LogLine("é").data == "é".encode() and LogLine(data=b"a\nb").lines() == ["a", "b"]
    with pytest.raises(TypeError):
        LogLine()


def _launch(home: Path, *args: str) -> bytes:
    env = {**os.environ, "LAUNCH_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "launcher", *args], env=env, cwd=REPO, capture_output=True,
                          timeout=120, check=True).stdout


def test_logs_of_a_finished_job_are_the_log_file_byte_for_byte(tmp_path):
    """Past the 1 MiB read size, with a character across the boundary and bytes that are not UTF-8:
    `launch logs` and `launch logs -f` print exactly the job's log file."""
    script = tmp_path / "write.py"
    script.write_text("import sys\nout = sys.stdout.buffer\nout.write(b'a' * (1024 * 1024 - 5) + b'\\n')\n"
                      "out.write('\\u2713 \\U0001f680 split'.encode() + b' \\xff\\xfe\\n' * 3)\n"
                      "out.write(b'no newline at the end')\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"name: bytes\nrun: {sys.executable} {script}\n")
    home = tmp_path / "home"
    record = json.loads(_launch(home, "run", str(spec), "--wait", "-o", "json"))
    log = Path(record["handle"]["data"]["nodes"][0]["dir"]) / "log"
    data = log.read_bytes()
    assert "\u2713".encode() in data and b"\xff\xfe" in data
    expected = data if data.endswith(b"\n") else data + b"\n"
    assert _launch(home, "logs", record["id"]) == expected
    assert _launch(home, "logs", "-f", record["id"]) == expected


def test_the_printer_writes_a_block_and_its_newline_to_a_real_file_descriptor(tmp_path):
    """stdout's own descriptor gets each block and its newline in one writev (all of it, even where a
    pipe takes part of a write): what the file holds is what a BytesIO would."""
    target = tmp_path / "out"
    with open(target, "wb") as raw, io.TextIOWrapper(raw, encoding="utf-8") as stream:
        stream.write("text first\n")
        show = _printer(False, stream)
        big = b"x" * (3 << 20)
        show(LogLine(data=memoryview(big)[1:]))
        show(LogLine(data=b"second \xff"))
    assert target.read_bytes() == b"text first\n" + big[1:] + b"\nsecond \xff\n"
