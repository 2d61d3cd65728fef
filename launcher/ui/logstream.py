"""A job's logs as server-sent events, through the runner's own follow (the one log-following loop).

Each event carries one block of lines and, as its id, the backend's cursor after that block. A
browser that reconnects sends the last id it saw (Last-Event-ID) and the follow resumes right after
it: nothing is repeated, nothing skipped. The follow runs in a thread (backends read with blocking
calls) and stops at its next poll once the page is gone.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from launcher.backend import LogLine
from launcher.errors import LaunchError, UsageError
from launcher.store import JobRecord, JobStore

HEARTBEAT_S = 15.0  # a comment line this often: proxies keep the stream open, and a closed page is noticed


def encode_cursor(cursor: Any) -> str | None:
    """The cursor as an event id (URL-safe base64 of its JSON); None when it is not JSON (no resume)."""
    if cursor is None:
        return None
    try:
        text = json.dumps(cursor, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(event_id: str | None) -> Any:
    """The cursor a Last-Event-ID names (None: from the start). One that does not decode to a JSON
    object is refused rather than read as "from the start", which would repeat every line."""
    if not event_id:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(event_id + "=" * (-len(event_id) % 4)))
    except ValueError:
        raise UsageError("Last-Event-ID is not a cursor this dashboard gave") from None
    if not isinstance(value, dict):
        raise UsageError("Last-Event-ID is not a cursor this dashboard gave")
    return value


def event(kind: str, data: Any, event_id: str | None = None) -> str:
    """One SSE message; the data is JSON, so a line break in a log line cannot end the event early."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def stream(open_store: Callable[[], JobStore], record: JobRecord, cursor: Any,
                 redact: Callable[[str], str]) -> AsyncIterator[str]:
    """`lines` events ({node, text}) as the job prints, then one `end` ({state}) when it has ended
    and its logs are drained, or one `problem` ({message}) when they cannot be read from here."""
    from launcher import runner

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def follow() -> None:
        store = open_store()
        try:
            final = runner.follow(store, record, lambda line: put(("lines", line)), cursor=cursor, stop=stop.is_set)
            put(("end", final))
        except LaunchError as exc:
            put(("problem", exc.message + (f" ({exc.hint})" if exc.hint else "")))
        except Exception as exc:  # the page says what broke; the server goes on
            put(("problem", f"reading the logs failed: {exc!r}"))
        finally:
            store.close()

    threading.Thread(target=follow, name=f"logs-{record.id}", daemon=True).start()
    try:
        yield "retry: 1000\n\n"
        while True:
            try:
                kind, value = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                yield ": still here\n\n"
                continue
            if kind == "lines":
                line: LogLine = value
                yield event("lines", {"node": line.node, "text": redact(line.text)}, encode_cursor(line.cursor))
                continue
            if kind == "end":
                yield event("end", {"state": value.state.value})
            else:
                yield event("problem", {"message": redact(value)})
            return
    finally:
        stop.set()
