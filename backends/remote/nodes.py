"""One job state from the states of its nodes, for backends that run bootstrap.sh on
machines they watch themselves (local processes, ssh hosts).

The rules are the providers' rules, so a job means the same everywhere: it succeeds
only if every node exited 0; the first node to fail explains the failure and the
others are stopped rather than left hanging at a rendezvous; a cancel wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from launcher.backend import JobState, LogLine, Status

TIMED_OUT = 124  # bootstrap.sh's exit code when max_runtime stopped the job


@dataclass(frozen=True)
class NodeReport:
    rank: int
    exit_code: int | None      # None: no exit code recorded (yet)
    alive: bool
    exited_at: float | None = None  # when the exit code was written, to find the first failure


def judge(reports: Sequence[NodeReport], *, cancelled: bool, cancel_overdue: bool = False,
          started_at: float | None = None) -> Status:
    """The job's state from its nodes'. A job has ended once a node failed or a cancel is overdue,
    even while other nodes still run: those are the backend's `finish` to stop (a query stops nothing)."""
    running = [r for r in reports if r.exit_code is None and r.alive]
    failed = [r for r in reports if r.exit_code not in (None, 0)]
    vanished = [r for r in reports if r.exit_code is None and not r.alive]
    if running and cancelled and not cancel_overdue:  # overdue: the cancelling CLI died before its SIGKILL
        return Status(JobState.CANCELLING, _raw(running, reports), "cancel requested", started_at=started_at)
    if running and not cancelled and not failed and not vanished:
        return Status(JobState.RUNNING, _raw(running, reports), started_at=started_at)
    times = [r.exited_at for r in reports if r.exited_at is not None]
    ended_at = max(times) if times else None
    raw = _raw([], reports)
    if cancelled:
        return Status(JobState.CANCELLED, raw, "cancelled", started_at=started_at, ended_at=ended_at)
    if failed:  # the first node to fail is the cause; later failures are usually its echo
        first = min(failed, key=lambda r: (r.exited_at if r.exited_at is not None else float("inf"), r.rank))
        why = "exceeded max_runtime" if first.exit_code == TIMED_OUT else f"exited with code {first.exit_code}"
        return Status(JobState.FAILED, raw, f"node {first.rank} {why}", exit_code=first.exit_code,
                      started_at=started_at, ended_at=ended_at)
    if vanished:
        return Status(JobState.FAILED, raw, f"node {vanished[0].rank} ended without recording an exit "
                      "code (killed?)", started_at=started_at, ended_at=ended_at)
    return Status(JobState.SUCCEEDED, raw, exit_code=0, started_at=started_at, ended_at=ended_at)


def _raw(running: Sequence[NodeReport], reports: Sequence[NodeReport]) -> str:
    """`running 2/3` while the job runs; once it has ended, each node's exit code (`?`: none recorded,
    for a node that vanished or is still being stopped)."""
    if running:
        return f"running {len(running)}/{len(reports)}"
    return "exited " + ",".join("?" if r.exit_code is None else str(r.exit_code) for r in reports)


def tail_block(data: bytes, end: int, rank: int, lines: int, *, finished: bool, offsets: dict[int, int]
               ) -> LogLine | None:
    """The last `lines` complete lines of `data`, the bytes that end at byte `end` of a node's log.
    A running node's partial last line is left for the follow that comes after (the cursor
    stops before it)."""
    if not finished and data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        end -= len(data) - cut
        data = data[:cut]
    offsets[rank] = end
    body = data[:-1] if data.endswith(b"\n") else data  # one terminator; blank lines are lines too
    kept = body.split(b"\n")[-lines:] if lines and data else []
    return LogLine(data=b"\n".join(kept), node=rank, cursor=dict(offsets)) if kept else None


def tail_nodes(nodes: Sequence[dict[str, Any]], lines: int, node: int | None,
               read_tail: Callable[[dict[str, Any]], tuple[bytes, int, bool]]) -> tuple[list[LogLine], Any]:
    """The last `lines` lines of each chosen node and one cursor at their ends; `read_tail(info)`
    answers (bytes ending the log, the byte offset they end at, whether the node has finished)."""
    offsets: dict[int, int] = {}
    out = []
    for info in nodes:
        if node is not None and info["rank"] != node:
            continue
        data, end, finished = read_tail(info)
        block = tail_block(data, end, info["rank"], lines, finished=finished, offsets=offsets)
        if block is not None:
            out.append(block)
    return out, dict(offsets)


def log_blocks(chunks: Iterable[bytes], rank: int, offsets: dict[int, int], *, finished: bool) -> Iterator[LogLine]:
    """Turn a node's log bytes (read from `offsets[rank]` on) into blocks of complete lines.

    A trailing partial line is held back until the node has finished, so a follow never
    splits a line; `offsets` advances as blocks are yielded, so resuming from a block's
    cursor neither repeats nor loses a line.

    The bytes are never decoded here and the body of a chunk is never copied: each block is a
    view into the chunk it was read in. Only a line that spans chunks is joined (it is yielded
    on its own, before the rest of the chunk that ends it). A block always ends at a newline,
    so a UTF-8 character is never cut in two.
    """
    offset = offsets.get(rank, 0)
    pending: list[bytes] = []  # the start of a line not yet ended (one line may outgrow many chunks)
    for chunk in chunks:
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if chunk:
                pending.append(chunk)
            continue
        start = 0
        if pending:
            start = chunk.index(b"\n") + 1
            pending.append(chunk[:start - 1])
            line = b"".join(pending)
            pending.clear()
            offset += len(line) + 1
            offsets[rank] = offset
            yield LogLine(data=line, node=rank, cursor=dict(offsets))
        if cut >= start:
            offset += cut + 1 - start
            offsets[rank] = offset
            yield LogLine(data=memoryview(chunk)[start:cut], node=rank, cursor=dict(offsets))
        if cut + 1 < len(chunk):
            pending.append(chunk[cut + 1:])
    if pending and finished:
        line = b"".join(pending)
        offsets[rank] = offset + len(line)
        yield LogLine(data=line, node=rank, cursor=dict(offsets))


def unreadable_node_fields(data: Mapping[str, Any], node_fields: Mapping[str, type]) -> list[str]:
    """Which of a stored handle's `job_dir` and `nodes` are not what this launch writes (a path; a non-empty
    list of mappings, each with `node_fields` of those types, a bool being no number). The backends that
    run nodes themselves check it before any call reads a path, host or pid from the record."""
    def fits(value: Any, kind: type) -> bool:
        return isinstance(value, kind) and not (kind is int and isinstance(value, bool))

    nodes = data.get("nodes")
    shapes = {"job_dir": isinstance(data.get("job_dir"), str),
              "nodes": isinstance(nodes, list) and bool(nodes) and all(
                  isinstance(node, dict) and all(fits(node.get(name), kind) for name, kind in node_fields.items())
                  for node in nodes)}
    return [name for name, fit in shapes.items() if not fit]
