from __future__ import annotations

import random

from arbtui.backend.feeds.base import Backoff, RateLimiter


def test_backoff_grows_with_jitter_and_resets_only_when_healthy():
    b = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    ceilings = [min(60.0, 2 ** i) for i in range(8)]
    for d, c in zip(delays, ceilings):
        assert c / 2 <= d <= c
    assert delays[-1] >= 30.0  # keeps growing under repeated failure, capped
    b.healthy()
    assert b.next_delay() <= 1.0


def test_rate_limiter_bounds_bursts():
    r = RateLimiter(rate=1.0, burst=3)
    took = sum(r.try_take() for _ in range(10))
    assert took == 3
