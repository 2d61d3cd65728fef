"""The byte-level log helpers shared by the local and ssh backends."""

from __future__ import annotations

from backends.remote.nodes import log_blocks, tail_block


def texts(blocks) -> list[str]:
    return [text for block in blocks for text in block.lines()]


def test_blocks_hold_a_partial_line_until_the_node_finishes():
    offsets: dict[int, int] = {}
    running = list(log_blocks([b"a\nb", b"c\nd"], 0, offsets, finished=False))
    assert texts(running) == ["a", "bc"] and offsets == {0: 5}
    resumed = list(log_blocks([b"d\n", b"e"], 0, offsets, finished=True))  # re-read from offset 5
    assert texts(resumed) == ["d", "e"] and offsets == {0: 8}


def test_chunk_boundaries_never_split_or_repeat_a_line():
    data = b"".join(f"line-{i}\n".encode() for i in range(1000))
    for size in (1, 7, 64, 4096):
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert texts(log_blocks(chunks, 0, {}, finished=True)) == [f"line-{i}" for i in range(1000)]


def test_tail_of_a_running_node_stops_before_its_partial_line():
    offsets: dict[int, int] = {}
    block = tail_block(b"x\ny\nz\npart", 100, 2, 2, finished=False, offsets=offsets)
    assert block.lines() == ["y", "z"] and block.node == 2 and offsets == {2: 96}


def test_tail_of_a_finished_node_includes_its_last_unterminated_line():
    offsets: dict[int, int] = {}
    block = tail_block(b"x\ny\nlast", 50, 0, 2, finished=True, offsets=offsets)
    assert block.lines() == ["y", "last"] and offsets == {0: 50}
    assert tail_block(b"x\n", 2, 0, 0, finished=True, offsets=offsets) is None and offsets == {0: 2}


def test_tail_keeps_blank_lines():
    offsets: dict[int, int] = {}
    block = tail_block(b"one\n\n", 5, 0, 5, finished=False, offsets=offsets)
    assert block.lines() == ["one", ""] and offsets == {0: 5}
