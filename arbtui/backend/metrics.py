"""Latency samples and rates, sampled by the UI and the status line.

Hot paths only append to bounded deques; percentiles are computed when someone
asks (a few times a second at most), with numpy over the retained window.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import deque

import numpy as np

from arbtui.backend.clock import LIVE, Clock

#: Prometheus histogram bucket upper bounds, seconds: detection takes microseconds,
#: a venue's feed milliseconds to seconds.
DETECT_BUCKETS_S: tuple[float, ...] = (
    0.000005, 0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
FEED_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Histogram:
    """Cumulative counts per bucket since start (a Prometheus histogram's raw data).

    ``counts[i]`` holds observations <= ``bounds[i]`` and > ``bounds[i-1]``; the last
    slot is everything above the top bound (+Inf).
    """

    __slots__ = ("bounds", "counts", "n", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.n = 0
        self.sum = 0.0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.n += 1
        self.sum += v

    def add_many(self, values: np.ndarray) -> None:
        if len(values):
            idx = np.searchsorted(np.asarray(self.bounds), values, side="left")
            for i, c in enumerate(np.bincount(idx, minlength=len(self.counts))):
                self.counts[i] += int(c)
            self.n += len(values)
            self.sum += float(values.sum())

    def copy(self) -> Histogram:
        """A frozen copy: the exporter reads it on its own thread while this one grows."""
        h = Histogram(self.bounds)
        h.counts = list(self.counts)
        h.n = self.n
        h.sum = self.sum
        return h

    def buckets(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs ending with ``+Inf``, as Prometheus wants."""
        out, acc = [], 0
        for b, c in zip((*self.bounds, math.inf), self.counts, strict=True):
            acc += c
            out.append(("+Inf" if b == math.inf else repr(b), acc))
        return out


class Latency:
    """Rolling window of latency samples in nanoseconds, plus a histogram of them all.

    ``add`` only appends (the hot path); the samples are binned into the cumulative
    histogram in batches with numpy, before the window could overwrite unbinned ones.
    """

    def __init__(self, maxlen: int = 20_000,
                 buckets_s: tuple[float, ...] = DETECT_BUCKETS_S) -> None:
        self.samples: deque[int] = deque(maxlen=maxlen)
        self.count = 0
        self.hist = Histogram(buckets_s)
        self._binned = 0
        self._fold_at = max(1, maxlen // 2)

    def add(self, ns: int) -> None:
        self.samples.append(ns)
        self.count += 1
        if self.count - self._binned >= self._fold_at:
            self._fold()

    def _fold(self) -> None:
        new = self.count - self._binned
        if new <= 0:
            return
        n = len(self.samples)
        arr = np.fromiter(itertools.islice(self.samples, n - min(new, n), n), dtype=np.int64)
        self.hist.add_many(arr / 1e9)
        self._binned = self.count

    def histogram(self) -> Histogram:
        """Every sample so far, binned in seconds."""
        self._fold()
        return self.hist

    def percentiles_ms(self, *ps: float) -> list[float | None]:
        if not self.samples:
            return [None for _ in ps]
        arr = np.fromiter(self.samples, dtype=np.int64, count=len(self.samples))
        return [float(v) / 1e6 for v in np.percentile(arr, ps)]


#: Bounded labels for ``arbtui_book_resyncs_total{reason}``: the adapters' resync
#: reasons are free text with sequence numbers in them (unbounded label values).
RESYNC_KINDS = ("gap", "checksum", "crossed", "bad_frame", "no_snapshot", "silent",
                "bbo_mismatch", "other")


def resync_kind(reason: str) -> str:
    r = reason.lower()
    if "checksum" in r:
        return "checksum"
    if "crossed" in r:
        return "crossed"
    if r.startswith("bad frame"):
        return "bad_frame"
    if "no snapshot" in r:
        return "no_snapshot"
    if "silent" in r or "stale" in r:
        return "silent"
    if "bookticker" in r or "bbo" in r:
        return "bbo_mismatch"
    if any(w in r for w in ("gap", "went back", "not bridged", "no events after", "seq")):
        return "gap"
    return "other"


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
