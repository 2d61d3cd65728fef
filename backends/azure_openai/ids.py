"""Which launch job a fine-tuning job is, as the job carries it: OpenAI's `metadata`, or (Azure's
2024-10-21 API has none) the model `suffix`, 40 characters of a-z, A-Z, 0-9, - and _, which Azure
returns with the job. The suffix holds the job id in a reversible short form (its time in base 36)
and a hash of the idempotency key. Pure: no clock is read (time converts the id's own timestamp).
"""

from __future__ import annotations

import calendar
import datetime
import hashlib
import re
import time
from collections.abc import Mapping
from typing import Any

# OpenAI's metadata keys: which launch job, and the idempotency key it was submitted with
JOB_ID_KEY = "launch-job-id"
IDEMPOTENCY_KEY = "launch-idempotency-key"
NEW_JOB_ID = re.compile(r"(?P<slug>[a-z0-9-]+)-(?P<day>\d{8})-(?P<time>\d{6})-(?P<hex>[0-9a-f]{6})")
PACKED = re.compile(r"(?P<slug>[a-z0-9-]+)-(?P<stamp>[0-9a-z]{7})(?P<hex>[0-9a-f]{6})")
KEY_MARK = re.compile(r"k[0-9a-f]{8}")
B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def key_mark(idempotency_key: str) -> str:
    return "k" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:8]


def pack_job_id(job_id: str) -> str | None:
    """`name-20261201-071500-a1b2c3` as `name-<time in base 36><hex>`: 8 characters shorter, same id."""
    match = NEW_JOB_ID.fullmatch(job_id)
    if match is None:
        return None
    digits = match["day"] + match["time"]
    try:  # datetime reads the digits in a microsecond; time.strptime takes tens (its regex machinery)
        parts = (int(digits[at:at + 2]) for at in range(4, 14, 2))
        seconds = calendar.timegm(datetime.datetime(int(digits[:4]), *parts).timetuple())
    except ValueError:  # what only strptime reads (a leap second)
        seconds = calendar.timegm(time.strptime(digits, "%Y%m%d%H%M%S"))
    stamp = ""
    for _ in range(7):
        seconds, digit = divmod(seconds, 36)
        stamp = B36[digit] + stamp
    return f"{match['slug']}-{stamp}{match['hex']}"


def unpack_job_id(packed: str) -> str | None:
    match = PACKED.fullmatch(packed)
    if match is None:
        return None
    seconds = 0
    for char in match["stamp"]:
        seconds = seconds * 36 + B36.index(char)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(seconds))
    return f"{match['slug']}-{stamp}-{match['hex']}"


def suffix_for(user_suffix: str | None, job_id: str, idempotency_key: str | None) -> str | None:
    packed = pack_job_id(job_id)
    if packed is None:
        return None
    return "_".join(p for p in (user_suffix, packed, key_mark(idempotency_key) if idempotency_key else None) if p)


def marks(job: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(launch job id, idempotency key, key mark) a listed job carries: OpenAI's metadata, or the
    suffix Azure keeps. Values are the provider's: the caller checks the id (is_job_id)."""
    metadata = job.get("metadata") or {}
    if isinstance(metadata, Mapping) and metadata.get(JOB_ID_KEY):
        key = metadata.get(IDEMPOTENCY_KEY)
        return str(metadata[JOB_ID_KEY]), str(key) if key else None, key_mark(str(key)) if key else None
    parts = str(job.get("suffix") or "").split("_")
    mark = parts.pop() if len(parts) > 1 and KEY_MARK.fullmatch(parts[-1]) else None
    return (unpack_job_id(parts[-1]) if parts else None), None, mark
