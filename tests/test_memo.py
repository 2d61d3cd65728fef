"""launcher.memo.Bounded: the in-memory caches (spec texts, bundle indexes, fine-tuning verdicts) keep at most
their limit, dropping the entry stored longest ago."""

from __future__ import annotations

from launcher.memo import Bounded


def test_storing_past_the_limit_drops_the_oldest_and_a_stored_again_key_counts_as_new():
    kept: Bounded[str, int] = Bounded(2)
    kept["a"], kept["b"] = 1, 2
    kept["a"] = 3  # stored again: now newer than b
    kept["c"] = 4
    assert (kept.get("a"), kept.get("b"), kept.get("c"), len(kept)) == (3, None, 4, 2)
