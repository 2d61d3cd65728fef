"""Bounded: what a process remembers of what it read (a spec's text, a code directory's index, a fine-tuning
file's verdict), kept to a few entries and safe across the threads of a sweep.

The one way the launcher keeps such things in memory: each use stays correct without it (the key holds
whatever decides the answer, or the entry is only a hint checked again), so dropping the oldest entry
costs only a re-read.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """A mapping of at most `limit` entries; storing one more drops the oldest stored."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[K, V] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def __setitem__(self, key: K, value: V) -> None:
        with self._lock:
            self._items.pop(key, None)  # stored again: now the newest
            if len(self._items) >= self._limit:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value

    def __len__(self) -> int:
        return len(self._items)
