"""Reading a training job's CloudWatch streams: one stream per node, resumed from forward tokens.

Takes a boto3 `logs` client from the backend and imports nothing of boto3 itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

LOG_GROUP = "/aws/sagemaker/TrainingJobs"
# reading one stream stops after this many pages in a row without events although the token moved
# (the next read goes on from there: the cursor keeps the token)
MAX_EMPTY_PAGES = 50


def new_events(client: Any, name: str, since: Mapping[str, str] | None,
               node: int | None) -> tuple[list[tuple[int, int, str]], dict[str, str]]:
    """(timestamp, rank, message) of every node's lines after `since`, in time order, and the cursor
    {stream: forward token} to go on from. Streams not created yet give nothing."""
    cursor: dict[str, str] = dict(since or {})
    events: list[tuple[int, int, str]] = []
    try:
        streams = log_streams(client, name)
    except client.exceptions.ResourceNotFoundException:
        return events, cursor
    for stream in streams:
        rank = stream_rank(name, stream)
        if rank is None or (node is not None and rank != node):
            continue
        found, token = read_stream(client, stream, cursor.get(stream))
        events.extend((timestamp, rank, message) for timestamp, message in found)
        if token:
            cursor[stream] = token
    events.sort(key=lambda event: (event[0], event[1]))
    return events, cursor


def log_streams(client: Any, name: str) -> list[str]:
    streams: list[str] = []
    kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamNamePrefix": f"{name}/"}
    while True:
        page = client.describe_log_streams(**kwargs)
        streams.extend(s["logStreamName"] for s in page.get("logStreams", []))
        if not page.get("nextToken"):
            return sorted(streams)
        kwargs["nextToken"] = page["nextToken"]


def read_stream(client: Any, stream: str, token: str | None) -> tuple[list[tuple[int, str]], str | None]:
    """(timestamp, message) of the events after `token`, and the token to go on from. botocore's
    GetLogEvents documentation: the end of the stream is reached when nextForwardToken comes back as
    sent; a page may be empty while the token moves on, so an empty page is read past. After
    MAX_EMPTY_PAGES such pages in a row the read stops where it is, to go on at the next call."""
    found: list[tuple[int, str]] = []
    empty_pages = 0
    while True:
        kwargs: dict[str, Any] = {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = client.get_log_events(**kwargs)
        events = page.get("events") or []
        found.extend((event["timestamp"], event["message"]) for event in events)
        next_token = page.get("nextForwardToken") or token
        if next_token == token:
            return found, token
        token = next_token
        empty_pages = 0 if events else empty_pages + 1
        if empty_pages >= MAX_EMPTY_PAGES:
            return found, token


def stream_rank(name: str, stream: str) -> int | None:
    """`<job>/algo-<n>-<epoch>` -> node rank n-1."""
    match = re.fullmatch(re.escape(name) + r"/algo-(\d+)-\d+", stream)
    return int(match.group(1)) - 1 if match else None
