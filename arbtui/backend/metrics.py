"""Latency samples and rates, sampled by the UI and the status line.

Hot paths only append to bounded deques; percentiles are computed when someone
asks (a few times a second at most), with numpy over the retained window.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from arbtui.backend.clock import LIVE, Clock


class Latency:
    """Rolling window of latency samples in nanoseconds."""

    def __init__(self, maxlen: int = 20_000) -> None:
        self.samples: deque[int] = deque(maxlen=maxlen)
        self.count = 0

    def add(self, ns: int) -> None:
        self.samples.append(ns)
        self.count += 1

    def percentiles_ms(self, *ps: float) -> list[float | None]:
        if not self.samples:
            return [None for _ in ps]
        arr = np.fromiter(self.samples, dtype=np.int64, count=len(self.samples))
        return [float(v) / 1e6 for v in np.percentile(arr, ps)]


class Rate:
    """Events per second over the last sampling interval (on the engine's clock: in a
    replay, quotes per second of recorded time)."""

    def __init__(self, clock: Clock = LIVE) -> None:
        self.clock = clock
        self.total = 0
        self._t = clock.monotonic()
        self._n = 0
        self.value = 0.0

    def add(self, n: int = 1) -> None:
        self.total += n

    def sample(self) -> float:
        now = self.clock.monotonic()
        dt = now - self._t
        if dt >= 0.5:
            self.value = (self.total - self._n) / dt
            self._n = self.total
            self._t = now
        return self.value
