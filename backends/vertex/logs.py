"""A job's output, read from Cloud Logging's REST API (entries:list) and given back as LogLines.

Entries can arrive late, stamped earlier than ones already shown, so each poll looks back
LOG_LOOKBACK_S before the newest timestamp shown and skips the insertIds it showed in that
window: nothing twice, nothing lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from backends.vertex import clients
from backends.vertex.errors import google_errors, raise_for_status
from launcher.backend import Handle, LogLine

LOG_LOOKBACK_S = 60  # how late Cloud Logging entries may arrive and still be shown


def read(session: Callable[[], Any], endpoint: str, handle: Handle, *, since: Any = None,
         node: int | None = None) -> Iterator[LogLine]:
    """Cloud Logging entries for the job, in timestamp order; `session` gives the authorized session
    (made only when the first line is asked for).
    Cursor: {"ts": newest timestamp shown, "seen": [[timestamp, insertId], ...] in the window}."""
    cursor = dict(since or {})
    last_ts: str | None = cursor.get("ts")
    seen = {insert_id for _, insert_id in cursor.get("seen", [])}
    window = [tuple(pair) for pair in cursor.get("seen", [])]
    filters = ['resource.type="ml_job"', f'resource.labels.job_id="{handle.data["id"]}"']
    if node is not None:
        filters.append(f'resource.labels.task_name="{task_name(node)}"')
    if last_ts:
        filters.append(f'timestamp>="{seconds_before(last_ts, LOG_LOOKBACK_S)}"')
    body: dict[str, Any] = {"resourceNames": [f"projects/{handle.data['project']}"],
                            "filter": " AND ".join(filters), "orderBy": "timestamp asc", "pageSize": 1000}
    endpoint = endpoint.rstrip("/")
    entries: list[dict[str, Any]] = []
    with google_errors("Cloud Logging"):
        http = session()
        while True:
            response = http.post(f"{endpoint}/v2/entries:list", json=body, timeout=clients.API_TIMEOUT_S)
            raise_for_status(response, "Cloud Logging")
            page = response.json()
            entries.extend(page.get("entries", []))
            if not page.get("nextPageToken"):
                break
            body["pageToken"] = page["nextPageToken"]
    fresh = [e for e in entries if e.get("insertId", "") not in seen]
    for entry in fresh:
        ts, insert_id = entry.get("timestamp", ""), entry.get("insertId", "")
        last_ts = max(last_ts or ts, ts)
        window.append((ts, insert_id))
    if fresh:
        floor = seconds_before(last_ts or "", LOG_LOOKBACK_S + 5)  # keep a margin past the query's window
        position = {"ts": last_ts, "seen": [list(p) for p in window if p[0] >= floor]}
    for entry in fresh:
        task = entry.get("resource", {}).get("labels", {}).get("task_name", "workerpool0-0")
        text = entry.get("textPayload")
        if text is None:
            text = (entry.get("jsonPayload") or {}).get("message", "")
        yield LogLine(str(text).rstrip("\n"), rank(task), position)


def seconds_before(timestamp: str, seconds: int) -> str:
    """An RFC 3339 UTC timestamp `seconds` earlier, to whole seconds (enough for a filter)."""
    import datetime

    try:
        moment = datetime.datetime.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return timestamp
    return (moment - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def task_name(rank: int) -> str:
    """The Cloud Logging task_name of a node: rank 0 is pool 0's one replica, rank 1+i pool 1's replica i."""
    return "workerpool0-0" if rank == 0 else f"workerpool1-{rank - 1}"


def rank(task: str) -> int:
    match = re.fullmatch(r"workerpool(\d+)-(\d+)", task)
    if not match:
        return 0
    return 0 if match.group(1) == "0" else 1 + int(match.group(2))
