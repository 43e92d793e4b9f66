"""History of the catch model (``backend/catch.py``): what past windows did, kept as
counts per venue pair and excess-edge bucket on a latency grid, and read back from the journal.

Split from the live watcher so each module is one concept: this one is the statistics (what
the estimate conditions on is stated in ``catch.py``'s docstring and ``docs/catch.md``); the
watcher follows open windows' books and feeds its closed windows in here."""

from __future__ import annotations

import bisect
import functools
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Upper edges (bps) of the excess-edge buckets (opening net minus the execution
#: threshold). Bucket 0 is "below the threshold".
EXCESS_EDGES_BPS: tuple[float, ...] = (0.0, 2.5, 10.0, 25.0, 50.0)
#: The longest a window's books are watched after its opening (the latency budget's
#: right end). A window is watched ``WATCH_ROUND_TRIPS`` of its own slower round trip
#: (+ jitter) plus ``WATCH_MIN_MS``, up to this: long enough for every estimate made
#: about it, short enough to learn from it quickly.
HORIZON_MS = 1000.0
WATCH_ROUND_TRIPS = 2.0
WATCH_MIN_MS = 50.0
#: The latencies (ms) the counts are kept at (between them: linear). Fine where round
#: trips live: whether a leg still fills changes fastest in the first ~100 ms, where a
#: coarse grid would interpolate over the changes (a model too sure of catching).
L_GRID_MS: tuple[float, ...] = (*range(0, 100, 5), *range(100, 200, 10), *range(200, 500, 25),
                                *range(500, 1001, 100))
#: The round trips (ms) the latency-budget curves are drawn at, and how often (s) the
#: dashboard's copy is recomputed.
BUDGET_GRID_MS: tuple[float, ...] = (0, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150,
                                     200, 250, 300, 400, 500, 750, 1000)
CURVES_EVERY_S = 1.0
#: Pseudo-windows the stated prior is worth (the pooled level's prior), and what the
#: level above is worth as the prior of a pair and of a pair's bucket.
STATED_PRIOR_WEIGHT = 2.0
PRIOR_WEIGHT = 8.0
#: Half-life (ms) of the stated prior: P(hold L) = 0.5 ** (L / PRIOR_HALF_LIFE_MS).
PRIOR_HALF_LIFE_MS = 25.0
#: A level's counts are halved once they hold this many windows.
MAX_WINDOWS = 2000
#: Trigger-quote delays per venue whose median is its feed latency.
FEED_SAMPLES = 31
#: Windows read from the journal at start (newest first).
HISTORY_LIMIT = 5_000
_NG = len(L_GRID_MS)



def excess_bucket(excess_bps: float) -> int:
    return bisect.bisect_left(EXCESS_EDGES_BPS, excess_bps)


LegPath = tuple[tuple[float, bool], ...]


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One past window, as history: pair, excess edge at opening, how long it was open,
    and for each leg when IOC orders sized at the opening would have filled: the leg's
    path, ``((0.0, fillable), (ms, fillable), ...)``, one entry per change, over the
    first ``watched_ms`` after the opening (later latencies: unknown for this window).
    The model samples it on ``L_GRID_MS`` (all the counts read); any finer path, such
    as one from a test, reads the same way."""

    buy_venue: str
    sell_venue: str
    symbol: str
    excess_bps: float
    lifetime_ms: float
    buy_path: LegPath
    sell_path: LegPath
    watched_ms: float = HORIZON_MS
    ts_ns: int = 0


def held_path(held_ms: float) -> LegPath:
    """The path of a leg that filled from the opening until ``held_ms`` and not after."""
    return ((0.0, True),) if held_ms >= HORIZON_MS else ((0.0, True), (held_ms, False))


def grid_flags(path: LegPath, k: int) -> list[float]:
    """Fillable (1.0) or not at the first ``k`` grid latencies: the state of the last
    change at or before each."""
    out = []
    n = len(path)
    i = 0
    state = 1.0 if path[0][1] else 0.0
    for L in L_GRID_MS[:k]:
        while i + 1 < n and path[i + 1][0] <= L:
            i += 1
            state = 1.0 if path[i][1] else 0.0
        out.append(state)
    return out


def _flag_array(path: LegPath, k: int) -> np.ndarray:
    """``grid_flags(path, k)`` as an array: one slice per change instead of a loop over the
    grid (a path has one to a few entries). Same values: each change holds from the first
    grid latency at or after its time, a later change overriding an earlier one."""
    f = np.empty(k)
    f.fill(1.0 if path[0][1] else 0.0)
    g = L_GRID_MS
    last = path[0][0]
    for t, ok in path[1:]:
        if t < last:  # not in time order (no path the model makes): the reference loop
            return np.array(grid_flags(path, k))
        last = t
        i = bisect.bisect_left(g, t)
        if i < k:
            f[i:] = 1.0 if ok else 0.0
    return f


#: A window's counts, computed once (``CatchStats.prepare``): its cell and pair keys,
#: fillable-on-both-legs flags, grid latencies watched, grid latencies outlived.
Prepared = tuple[tuple[str, str, int], tuple[str, str], "np.ndarray | None", int, int]


class _Table:
    """Past windows of one level as counts on ``L_GRID_MS``: ``num[i, j]`` = windows whose
    buy leg was fillable at ``L[i]`` and sell leg at ``L[j]``, among ``den[max(i, j)]``
    windows watched that long; ``alive[i]`` = windows open beyond ``L[i]`` among
    ``closed``. Adding a window is a few numpy slice operations; an estimate reads a few
    cells with ``item``. Once ``n`` reaches ``MAX_WINDOWS`` every count is halved (old
    market fades)."""

    __slots__ = ("alive", "closed", "den", "n", "num")

    def __init__(self) -> None:
        self.num = np.zeros((_NG, _NG))
        self.den = np.zeros(_NG)
        self.alive = np.zeros(_NG)
        self.closed = 0.0
        self.n = 0.0

    def add(self, both: np.ndarray | None, k: int, alive_k: int) -> None:
        """One window: ``both`` its fillable-on-both-legs flags on the first ``k`` grid
        latencies (it was watched that long), ``alive_k`` grid latencies it outlived
        (-1: lifetime unknown)."""
        if k:
            self.num[:k, :k] += both
            self.den[:k] += 1.0
        if alive_k >= 0:
            self.alive[:alive_k] += 1.0
            self.closed += 1.0
        self.n += 1.0
        if self.n >= MAX_WINDOWS:
            for a in (self.num, self.den, self.alive):
                a *= 0.5
            self.closed *= 0.5
            self.n *= 0.5

    def avg(self, wx: _W, wy: _W) -> tuple[float, float]:
        """(fillable on both legs, watched), averaged with the weights of ``_weights``
        (a point: bilinear; an interval: the mean over it). Scalar reads: for the few
        cells involved they cost less than numpy products would."""
        num, den = self.num.item, self.den.item
        k = n = 0.0
        for i, a in wx:
            for j, b in wy:
                ab = a * b
                k += ab * num(i, j)
                n += ab * den(max(i, j))
        return k, n

    def survival(self, L: float) -> float:
        if not self.closed:
            return 0.0
        i, f = _cell(L)
        get = self.alive.item
        v = get(i) if f == 0.0 else get(i) + (get(i + 1) - get(i)) * f
        return v / self.closed


_W = list[tuple[int, float]]


def _weights(x: float, width: float = 0.0) -> _W:
    """Grid weights that give a grid function, interpolated linearly, at ``x`` (``width``
    0) or averaged over ``[x, x + width]``: how a uniform jitter is integrated exactly.
    Cached at 0.5 ms resolution (the grid steps 5 ms; the same latencies come back at
    every opening)."""
    return _weights_q(round(x * 2), round(width * 2))


@functools.lru_cache(maxsize=8192)
def _weights_q(x2: int, width2: int) -> _W:
    return _weight_pairs(x2 / 2, width2 / 2)


def _weight_pairs(x: float, width: float) -> list[tuple[int, float]]:
    g = L_GRID_MS
    if width <= 0:
        i, f = _cell(x)
        return [(i, 1.0)] if not f else [(i, 1.0 - f), (i + 1, f)]
    lo, hi = max(0.0, x), max(0.0, x + width)
    acc: dict[int, float] = {}
    if hi > g[-1]:  # beyond the last grid point the function stays at its last value
        acc[_NG - 1] = hi - max(lo, g[-1])
        hi = min(hi, g[-1])
    k = bisect.bisect_right(g, lo) - 1
    while k < _NG - 1 and lo < hi:
        x0, x1 = g[k], g[k + 1]
        u, v = max(lo, x0), min(hi, x1)
        if v > u:
            h = x1 - x0
            # integrals over [u, v] of the two hat functions of this segment
            tu, tv = (u - x0) / h, (v - x0) / h
            right = h * (tv * tv - tu * tu) / 2
            acc[k] = acc.get(k, 0.0) + (v - u) - right
            acc[k + 1] = acc.get(k + 1, 0.0) + right
        k += 1
    total = sum(acc.values())
    return [(i, w / total) for i, w in acc.items()] if total > 0 else _weight_pairs(x, 0.0)


def _cell(x: float) -> tuple[int, float]:
    """Grid index at or below ``x`` and the fraction towards the next point."""
    g = L_GRID_MS
    if x <= 0:
        return 0, 0.0
    if x >= g[-1]:
        return _NG - 1, 0.0
    i = bisect.bisect_right(g, x) - 1
    return i, (x - g[i]) / (g[i + 1] - g[i])


def prior_hold(lb: float, ls: float, jitter: float) -> float:
    """The stated prior: the slower leg's mean arrival, halving every PRIOR_HALF_LIFE_MS
    (memoryless, so the window's age does not enter)."""
    return 0.5 ** ((max(lb, ls) + jitter / 2) / PRIOR_HALF_LIFE_MS)


class CatchStats:
    """Past windows per (pair, bucket), per pair and pooled, and the estimate."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, int], _Table] = {}
        self.pairs: dict[tuple[str, str], _Table] = {}
        self.all = _Table()
        self.windows = 0
        self.version = 0

    def add(self, r: WindowRecord) -> None:
        self.apply(self.prepare(r))

    @staticmethod
    def prepare(r: WindowRecord) -> Prepared:
        """The window's counts, once (the costly half of ``add``; reads no counts, so the
        watcher computes it when the loop is idle, ``CatchModel.idle``)."""
        pk = (r.buy_venue, r.sell_venue)
        ck = (*pk, excess_bucket(r.excess_bps))
        k = bisect.bisect_right(L_GRID_MS, r.watched_ms)  # grid latencies it was watched to
        both = np.outer(_flag_array(r.buy_path, k), _flag_array(r.sell_path, k)) if k else None
        ak = bisect.bisect_left(L_GRID_MS, r.lifetime_ms) if r.lifetime_ms >= 0 else -1
        return ck, pk, both, k, ak

    def apply(self, w: Prepared) -> None:
        """Add a prepared window to its three levels. The counts are sums of 1.0 and halvings
        (exact in floating point), so a window prepared earlier adds the same bits."""
        ck, pk, both, k, ak = w
        t = self.cells.get(ck)
        if t is None:
            t = self.cells[ck] = _Table()
        t.add(both, k, ak)
        t = self.pairs.get(pk)
        if t is None:
            t = self.pairs[pk] = _Table()
        t.add(both, k, ak)
        self.all.add(both, k, ak)
        self.windows += 1
        self.version += 1

    def estimate(self, buy: str, sell: str, bucket: int | None, lb: float, ls: float,
                 jitter: float = 0.0, age: float = 0.0) -> float:
        """P(both legs fillable at their arrival | both fillable at ``age``): the Beta
        posterior mean of the cell (``bucket`` None: the pair) on the pair's, on the
        pooled, on the prior; at an age, the ratio of the two such estimates (capped at 1).
        A leg arrives at ``age + L + U(0, jitter)``: the counts are averaged over that
        interval exactly (piecewise linear between grid points), per leg."""
        levels = (self.all, self.pairs.get((buy, sell)),
                  None if bucket is None else self.cells.get((buy, sell, bucket)))
        p = self._posterior(levels, _weights(age + lb, jitter), _weights(age + ls, jitter),
                            prior_hold(lb, ls, jitter))
        if age > 0:
            w = _weights(age)
            base = self._posterior(levels, w, w, prior_hold(age, age, 0.0))
            p = p / base if base > 1e-12 else 0.0
        return min(1.0, max(0.0, p))

    @staticmethod
    def _posterior(levels: tuple, wx: _W, wy: _W, m: float) -> float:
        # _Table.avg inlined (per OPENED/UPDATED event, on the quote path): the same
        # products and sums in the same order, so the same bits.
        w = STATED_PRIOR_WEIGHT
        for t in levels:
            if t is None or not t.n:
                break
            num, den = t.num.item, t.den.item
            k = n = 0.0
            for i, a in wx:
                for j, b in wy:
                    ab = a * b
                    k += ab * num(i, j)
                    n += ab * den(i if i > j else j)  # noqa: FURB136 (per cell: no call)
            m = (k + w * m) / (n + w)
            w = PRIOR_WEIGHT
        return m

    def count(self, buy: str, sell: str) -> int:
        r = self.pairs.get((buy, sell))
        return 0 if r is None else round(r.n)



def latency_budget(st: CatchStats, grid: Iterable[float] = BUDGET_GRID_MS) -> dict[str, Any]:
    """P(catch) vs a round trip ``L`` on both legs, per pair (pooled over buckets, with
    the pooled prior), and the survival of the windows' lifetimes."""
    grid = list(grid)
    out = {}
    for (b, s), ring in sorted(st.pairs.items(), key=lambda kv: (-kv[1].n, kv[0])):
        out[f"{b}>{s}"] = {"p_catch": [round(st.estimate(b, s, None, L, L), 4) for L in grid],
                           "survival": [round(ring.survival(L), 4) for L in grid],
                           "windows": round(ring.n)}
    return {"grid_ms": grid, "pairs": out, "windows": st.windows}


# ------------------------------------------------------------------ history


def load_windows(path: str | Path, mode: str, limit: int = HISTORY_LIMIT) -> list[WindowRecord]:
    """The newest ``limit`` closed windows of earlier sessions of ``mode`` in the journal
    at ``path`` (oldest first); [] when there is no journal or no such table yet."""
    p = Path(path)
    if not p.is_file():
        return []
    try:
        con = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute(
                "SELECT buy_venue, sell_venue, symbol, excess_bps, lifetime_ms, buy_path, "
                "sell_path, watched_ms, ts_ns "
                "FROM catch_windows WHERE mode = ? ORDER BY seq DESC LIMIT ?",
                (mode, limit)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []  # an older journal without the table: cold start
    return [record_of_row(r) for r in reversed(rows)]


def encode_path(path: LegPath) -> str:
    """A leg path as the journal stores it (JSON)."""
    return json.dumps([[t, int(ok)] for t, ok in path], separators=(",", ":"))


def record_of_row(r: tuple) -> WindowRecord:
    """A ``catch_windows`` row (buy, sell, symbol, excess, lifetime, buy path, sell path,
    watched ms, ts) as a record."""
    b, s, sym, ex, life, bp, sp, watched, ts = r
    return WindowRecord(b, s, sym, ex, life, tuple((t, bool(ok)) for t, ok in json.loads(bp)),
                        tuple((t, bool(ok)) for t, ok in json.loads(sp)), watched, ts)
