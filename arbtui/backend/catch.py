"""Catchability: will a window still be there when our orders arrive?

``p_catch`` of an opportunity is the probability that BOTH legs, each arriving
after its venue's round trip, still fill in full at a net edge at or above the
execution threshold (``execution.min_net_bps``). The round trip of a leg is

    L_leg = execution.latency_ms[venue] (+ jitter) + feed latency of its trigger quote

where the feed latency is how late the quote that made us see the window was
(receive time minus venue time, less the smallest such delay seen from that
venue: the floor stands for clock offset plus the fastest path, as the feeds'
own ``feed_latency_ms`` does). Both effects add up: the window we see is
already ``feed`` ms old at the venue, and our order needs ``latency`` more ms to
get there. Both legs must fill, so the slower leg decides: ``L = max(L_buy,
L_sell)``; the uniform jitter (0..jitter_ms) is integrated with three points.

What it is estimated from, per (buy venue, sell venue) and per EXCESS edge
bucket (opening net minus the execution threshold, ``EXCESS_EDGES_BPS``):

- ``S(L)``, the survival of past windows: the share whose lifetime exceeded
  ``L`` (the latency budget view plots it);
- ``H(L)``, what the edge did after ``L`` ms in those windows: the share that
  were still open at ``L`` with the edge still at or above the execution
  threshold AND the size still at least the size they opened with (an IOC
  order of the opening size fills in full only if that depth is still there).
  A window "stops holding" at its first emitted event that breaks either
  condition; ``held_ms <= lifetime_ms``.

``p_catch`` at the opening is ``H(L)``. At an update ``t`` ms into the window it
conditions on the window having survived ``t``: ``H(t + L) / S(t)`` (capped at
1). Why these conditions: the pair fixes the venues' latencies and how fast
their makers refill (a dislocation on a slow venue lasts longer), the excess
edge says how far a price has to move back before the edge is gone (a big
dislocation decays for longer before it crosses the threshold), and the age
says the window already outlived the ones that die at once. What it does NOT
condition on: book depth beyond the size, volatility regime, time of day.

Cold start: every estimate is a Beta posterior mean with a stated prior, in
three levels. Per grid latency ``L``, a (pair, bucket) cell has the prior
``Beta(w·m, w·(1-m))`` (``w = PRIOR_WEIGHT`` pseudo-windows) whose mean ``m`` is
the pair's estimate over all buckets; the pair's has the same prior around the
estimate of all pairs pooled; and that one has the stated prior mean
``PRIOR_CURVE(L) = 0.5 ** (L / PRIOR_HALF_LIFE_MS)``: a window's chance to hold
halves every 50 ms (makers refill a swept venue within tens to hundreds of ms).
History replaces each prior as it accumulates: with ``n`` windows the prior
weighs ``w / (n + w)``, so a new pair borrows from the others at once. Counts fade by half once a cell holds
``MAX_WINDOWS`` windows, so the model follows a market that changes.

History comes from the journal (``catch_windows`` rows of earlier sessions of
the same mode, ``load_windows``) and from the running session (every window
the detector closes). The hot path is cheap: the detector calls ``opened`` once
per OPENED event and ``event`` per UPDATED/CLOSED event (never per quote); an
estimate is a bisect and three interpolations over a cached curve.

``CatchJournal`` turns the event stream into the journal's rows: one
``catch_windows`` row per closed window and one ``catch_outcomes`` row per
executed opportunity (the calibration's ground truth, ``CatchOutcomes``).
"""

from __future__ import annotations

import bisect
import math
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arbtui.config import ExecutionConfig
from arbtui.model import Fill, OppEvent, Opportunity, Quote

#: Upper edges (bps) of the excess-edge buckets (opening net minus the execution
#: threshold). Bucket 0 is "below the threshold".
EXCESS_EDGES_BPS: tuple[float, ...] = (0.0, 1.0, 2.5, 5.0, 10.0, 25.0)
#: The latencies (ms) the survival and hold curves are kept at; in between they are
#: interpolated linearly, beyond the last they stay at the last value.
L_GRID_MS: tuple[float, ...] = (0, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
                                1000, 1500, 2000, 3000, 5000, 10000)
#: Pseudo-windows the prior is worth.
PRIOR_WEIGHT = 4.0
#: Half-life (ms) of the prior survival curve.
PRIOR_HALF_LIFE_MS = 50.0
PRIOR_CURVE: tuple[float, ...] = tuple(0.5 ** (L / PRIOR_HALF_LIFE_MS) for L in L_GRID_MS)
#: A cell's counts are halved once it holds this many windows (old market fades).
MAX_WINDOWS = 2000
#: Windows read from the journal at start (newest first).
HISTORY_LIMIT = 50_000
#: Predicted-probability buckets of the reliability table.
RELIABILITY_EDGES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
#: Jitter quadrature: the three points (fractions of jitter_ms) of a uniform.
_JITTER_Q = (1 / 6, 1 / 2, 5 / 6)
_NG = len(L_GRID_MS)


def excess_bucket(excess_bps: float) -> int:
    return bisect.bisect_left(EXCESS_EDGES_BPS, excess_bps)


def bucket_label(b: int) -> str:
    e = EXCESS_EDGES_BPS
    if b == 0:
        return f"<{e[0]:g}"
    if b >= len(e):
        return f">{e[-1]:g}"
    return f"{e[b - 1]:g}-{e[b]:g}"


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """One closed window, as history: pair, excess edge at opening, how long it lived
    and how long it held (edge >= execution threshold at the opening size)."""

    buy_venue: str
    sell_venue: str
    symbol: str
    excess_bps: float
    lifetime_ms: float
    held_ms: float
    ts_ns: int = 0


class _Counts:
    __slots__ = ("alive", "held", "n")

    def __init__(self) -> None:
        self.n = 0.0
        self.alive = [0.0] * _NG
        self.held = [0.0] * _NG

    def add(self, lifetime_ms: float, held_ms: float) -> None:
        self.n += 1
        alive, held = self.alive, self.held
        for i, L in enumerate(L_GRID_MS):
            if lifetime_ms <= L:
                break
            alive[i] += 1
            if held_ms > L:
                held[i] += 1
        if self.n >= MAX_WINDOWS:
            self.n *= 0.5
            self.alive = [x * 0.5 for x in alive]
            self.held = [x * 0.5 for x in held]


def _posterior(k: list[float], n: float, prior: Iterable[float], w: float = PRIOR_WEIGHT
               ) -> list[float]:
    return [(ki + w * m) / (n + w) for ki, m in zip(k, prior, strict=True)]


def interp(curve: list[float] | tuple[float, ...], L: float) -> float:
    """``curve`` (on ``L_GRID_MS``) at ``L`` ms."""
    if L <= 0:
        return curve[0]
    i = bisect.bisect_right(L_GRID_MS, L)
    if i >= _NG:
        return curve[-1]
    x0, x1 = L_GRID_MS[i - 1], L_GRID_MS[i]
    y0 = curve[i - 1]
    return y0 + (curve[i] - y0) * (L - x0) / (x1 - x0)


class CatchStats:
    """Counts per (pair, bucket) and per pair, and their posterior curves (cached)."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, int], _Counts] = {}
        self.pairs: dict[tuple[str, str], _Counts] = {}
        self.all = _Counts()  # every pair pooled
        self._cache: dict[tuple, tuple[list[float], list[float]]] = {}
        self.windows = 0
        self.version = 0

    def add(self, r: WindowRecord) -> None:
        pk = (r.buy_venue, r.sell_venue)
        ck = (*pk, excess_bucket(r.excess_bps))
        for table, k in ((self.cells, ck), (self.pairs, pk)):
            c = table.get(k)  # type: ignore[call-overload]
            if c is None:
                c = table[k] = _Counts()  # type: ignore[index]
            c.add(r.lifetime_ms, r.held_ms)
        self.all.add(r.lifetime_ms, r.held_ms)
        # The pooled curve moved: every pair's and cell's prior with it.
        self._cache.clear()
        self.windows += 1
        self.version += 1

    def pooled_curves(self) -> tuple[list[float], list[float]]:
        """(H, S) of every pair pooled: data plus the stated prior ``PRIOR_CURVE``."""
        got = self._cache.get(())
        if got is None:
            c = self.all
            got = self._cache[()] = (_posterior(c.held, c.n, PRIOR_CURVE),
                                     _posterior(c.alive, c.n, PRIOR_CURVE))
        return got

    def pair_curves(self, buy: str, sell: str) -> tuple[list[float], list[float]]:
        """(H, S) of the pair pooled over buckets, with the pooled curves as prior mean."""
        k = (buy, sell)
        got = self._cache.get(k)
        if got is None:
            gh, gs = self.pooled_curves()
            c = self.pairs.get(k)
            got = (gh, gs) if c is None else (_posterior(c.held, c.n, gh), _posterior(c.alive, c.n, gs))
            self._cache[k] = got
        return got

    def curves(self, buy: str, sell: str, bucket: int) -> tuple[list[float], list[float]]:
        """(H, S) of one cell: its data with the pair's curves as the prior mean."""
        k = (buy, sell, bucket)
        got = self._cache.get(k)
        if got is None:
            ph, ps = self.pair_curves(buy, sell)
            c = self.cells.get(k)
            got = (ph, ps) if c is None else (_posterior(c.held, c.n, ph), _posterior(c.alive, c.n, ps))
            self._cache[k] = got
        return got

    def count(self, buy: str, sell: str) -> float:
        c = self.pairs.get((buy, sell))
        return 0.0 if c is None else c.n


def fillable(p: Opportunity, size: float, buy_limit: float, sell_limit: float) -> bool:
    """Would IOC orders of ``size`` at these limits both fill in full against the books
    of ``p``'s evaluation? (What the simulated executor will check at arrival.)"""
    need = size * (1 - 1e-9)
    got = 0.0
    for px, sz in p.buy_book:
        if px > buy_limit:
            break
        got += sz
        if got >= need:
            break
    else:
        return False
    got = 0.0
    for px, sz in p.sell_book:
        if px < sell_limit:
            break
        got += sz
        if got >= need:
            return True
    return False


class _Window:
    """An open window as the model follows it: fixed at the opening, plus when it
    stopped holding (-1 while it holds)."""

    __slots__ = ("L", "bucket", "buy_limit", "excess", "held_ms", "opened_ns", "sell_limit",
                 "size")

    def __init__(self, p: Opportunity, thr: float, L: float = 0.0) -> None:
        self.L = L
        self.excess = p.net_bps - thr
        self.bucket = excess_bucket(self.excess)
        self.opened_ns = p.opened_ts_ns
        self.size = p.size
        self.buy_limit = p.buy_limit
        self.sell_limit = p.sell_limit
        self.held_ms = -1.0 if self.excess >= 0 else 0.0

    def check(self, p: Opportunity, now_ns: int, thr: float) -> None:
        """One evaluation of the window: does it still hold?"""
        if self.held_ms < 0 and (p.net_bps < thr or not (
                p.buy_book and p.sell_book
                and fillable(p, self.size, self.buy_limit, self.sell_limit))):
            self.held_ms = max(0.0, (now_ns - self.opened_ns) / 1e6)

    def record(self, p: Opportunity, now_ns: int) -> WindowRecord:
        life = max(0.0, (now_ns - self.opened_ns) / 1e6)
        held = life if self.held_ms < 0 else min(self.held_ms, life)
        return WindowRecord(p.buy_venue, p.sell_venue, p.symbol, self.excess, life, held, now_ns)


class WindowTracker:
    """Follows windows through their EMITTED events and yields a ``WindowRecord`` at each
    close: the journal's history when the detector runs in another process (Kafka). It
    sees the books of emitted events only, so ``held_ms`` is coarser than the model's own
    (which checks every evaluation); in one process the journal takes the model's.

    ``threshold()`` is the execution threshold, read at each event (the operator may
    move it). Suspect windows are data problems, not market behaviour: not recorded."""

    def __init__(self, threshold: Callable[[], float], max_open: int = 50_000) -> None:
        self.threshold = threshold
        self.max_open = max_open
        self.open: OrderedDict[str, _Window] = OrderedDict()

    def add(self, e: Opportunity) -> WindowRecord | None:
        ev = e.event
        if ev is OppEvent.OPENED:
            self.open[e.id] = _Window(e, self.threshold())
            if len(self.open) > self.max_open:
                self.open.popitem(last=False)  # a killed detector's windows never close
            return None
        w = self.open.get(e.id)
        if w is None:
            return None
        if ev is not OppEvent.CLOSED:
            w.check(e, e.ts_ns, self.threshold())
            return None
        del self.open[e.id]
        return None if e.suspect else w.record(e, e.ts_ns)


class CatchModel:
    """The detector's estimator (see the module docstring). ``cfg`` is the live
    ``[execution]`` table: latencies, jitter and the threshold are read at each call.
    ``closed`` holds the windows closed since the journal last took them (one process:
    the journal writes the model's own records as history)."""

    def __init__(self, cfg: ExecutionConfig, history: Iterable[WindowRecord] = ()) -> None:
        self.cfg = cfg
        self.stats = CatchStats()
        self._open: dict[str, _Window] = {}
        #: venue -> smallest (receive - venue time) seen, ms: clock offset + fastest path
        self._floor: dict[str, float] = {}
        self._curves_version = -1
        self._curves: dict[str, Any] = {}
        self.closed: deque[WindowRecord] = deque(maxlen=100_000)
        self.keep_closed = False  # a CatchJournal takes them
        for r in history:
            self.stats.add(r)
        self.history_windows = self.stats.windows

    # ----------------------------------------------------------- inputs (detector hook)

    def feed_ms(self, q: Quote | None) -> float:
        """How late ``q`` was, skew-corrected (0 when the venue sends no timestamp)."""
        if q is None or not q.venue_ts_ns:
            return 0.0
        d = (q.recv_ts_ns - q.venue_ts_ns) / 1e6
        f = self._floor.get(q.venue)
        if f is None or d < f:
            self._floor[q.venue] = f = d
        return d - f

    def round_trip_ms(self, buy_venue: str, sell_venue: str, feed_buy: float = 0.0,
                      feed_sell: float = 0.0) -> float:
        """The slower leg's latency plus its trigger's feed latency (no jitter)."""
        lat = self.cfg.latency_ms
        d = self.cfg.default_latency_ms
        return max(lat.get(buy_venue, d) + feed_buy, lat.get(sell_venue, d) + feed_sell)

    def opened(self, opp: Opportunity, buy_q: Quote | None, sell_q: Quote | None) -> None:
        """An OPENED event: estimate and set ``p_catch``/``ev``/``ev_bps`` on it."""
        L = self.round_trip_ms(opp.buy_venue, opp.sell_venue, self.feed_ms(buy_q),
                               self.feed_ms(sell_q))
        w = self._open[opp.id] = _Window(opp, self.cfg.min_net_bps, L)
        self._set(opp, self.estimate(opp.buy_venue, opp.sell_venue, w.bucket, L))

    def evaluated(self, p: Opportunity, now_ns: int) -> None:
        """The open window ``p`` was re-evaluated (emitted or not): does it still hold?"""
        w = self._open.get(p.id)
        if w is not None and w.held_ms < 0:
            w.check(p, now_ns, self.cfg.min_net_bps)

    def event(self, p: Opportunity, ev: OppEvent, now_ns: int) -> None:
        """Before an UPDATED or CLOSED event of ``p`` (the open window's record) is
        emitted: re-estimate at its age; at the close, learn from the window."""
        w = self._open.get(p.id)
        if w is None:
            return
        if ev is OppEvent.CLOSED:
            del self._open[p.id]
            if not p.suspect:
                r = w.record(p, now_ns)
                self.stats.add(r)
                if self.keep_closed:
                    self.closed.append(r)
            self._set(p, p.p_catch if p.p_catch is not None else 0.0)
            return
        t = (now_ns - w.opened_ns) / 1e6
        self._set(p, self.estimate(p.buy_venue, p.sell_venue, w.bucket, w.L, age_ms=t))

    @staticmethod
    def _set(opp: Opportunity, pc: float) -> None:
        opp.p_catch = pc
        opp.ev = opp.profit * pc
        opp.ev_bps = opp.net_bps * pc

    # ----------------------------------------------------------- estimates

    def estimate(self, buy: str, sell: str, bucket: int, L: float, age_ms: float = 0.0) -> float:
        H, S = self.stats.curves(buy, sell, bucket)
        j = self.cfg.jitter_ms
        t = age_ms + L
        if j > 0:
            h = sum(interp(H, t + j * q) for q in _JITTER_Q) / 3
        else:
            h = interp(H, t)
        if age_ms > 0:
            s = interp(S, age_ms)
            return min(1.0, h / s) if s > 1e-12 else 0.0
        return min(1.0, h)

    def curves(self) -> dict[str, Any]:
        """Per pair (``buy>sell``): P(catch) and survival on ``L_GRID_MS`` (pooled over
        buckets), the windows behind them and the pair's configured round trip.
        Cached until a window closes (the dashboard samples this 10x a second)."""
        st = self.stats
        if st.version != self._curves_version:
            out = {}
            for (b, s) in sorted(st.pairs):
                H, S = st.pair_curves(b, s)
                out[f"{b}>{s}"] = {"p_catch": [round(x, 4) for x in H],
                                   "survival": [round(x, 4) for x in S],
                                   "windows": round(st.count(b, s)),
                                   "round_trip_ms": self.round_trip_ms(b, s)}
            self._curves = {"grid_ms": list(L_GRID_MS), "pairs": out, "windows": st.windows,
                            "history_windows": self.history_windows}
            self._curves_version = st.version
        return self._curves


# ------------------------------------------------------------------ ground truth


@dataclass(frozen=True, slots=True)
class CatchOutcome:
    """One executed opportunity: what was predicted and what the fills said."""

    opp_id: str
    symbol: str
    buy_venue: str
    sell_venue: str
    p_catch: float
    caught: bool
    net_bps: float  # realized, at the fill VWAPs, after fees and flat cost (nan: no match)
    threshold_bps: float
    why: str
    ts_ns: int


CAUGHT_RULE = (
    "caught = both IOC legs filled their whole requested quantity (status 'filled') and "
    "the net edge realized at the two fill VWAPs, after both fees and flat_cost, is at "
    "least execution.min_net_bps")


class CatchOutcomes:
    """The simulated executor's verdict on each prediction (``CAUGHT_RULE``).

    Fed the event stream in order (OPENED opportunities with a ``p_catch``, then
    the leg fills); yields a ``CatchOutcome`` when both legs of an executed
    opportunity are in. Opportunities never traded are forgotten after
    ``max_pending``."""

    def __init__(self, threshold: Callable[[], float], max_pending: int = 20_000) -> None:
        self.threshold = threshold
        self.max_pending = max_pending
        self._opened: OrderedDict[str, Opportunity] = OrderedDict()
        self._legs: dict[str, Fill] = {}

    def add(self, e: Opportunity | Fill) -> CatchOutcome | None:
        if isinstance(e, Opportunity):
            if e.event is OppEvent.OPENED and e.p_catch is not None:
                self._opened[e.id] = e
                if len(self._opened) > self.max_pending:
                    old, _ = self._opened.popitem(last=False)
                    self._legs.pop(old, None)
            return None
        if e.kind != "leg" or e.opp_id not in self._opened:
            return None
        other = self._legs.pop(e.opp_id, None)
        if other is None:
            self._legs[e.opp_id] = e
            return None
        opp = self._opened.pop(e.opp_id)
        b, s = (e, other) if e.side == "buy" else (other, e)
        return judge(opp, b, s, self.threshold())


def judge(opp: Opportunity, b: Fill, s: Fill, thr: float) -> CatchOutcome:
    """``CAUGHT_RULE`` applied to one executed opportunity's two leg fills."""
    m = min(b.filled, s.filled)
    net = math.nan
    if m > 0 and b.vwap > 0:
        cost = m * b.vwap + b.fee * (m / b.filled)
        proceeds = (m * s.vwap - s.fee * (m / s.filled)) * (opp.rate or 1.0)
        net = (proceeds - cost - opp.flat_cost) / cost * 1e4
    why = ""
    for f in (b, s):
        if f.status != "filled":
            why = f"{f.side} {f.status}"
            break
    if not why and not net >= thr:
        why = f"net {net:.2f} < {thr:g} bps"
    return CatchOutcome(opp.id, opp.symbol, opp.buy_venue, opp.sell_venue,
                        float(opp.p_catch or 0.0), not why, net, thr, why or "caught",
                        max(b.ts_ns, s.ts_ns))


class CatchJournal:
    """The journal writer's part: rows for ``catch_windows`` and ``catch_outcomes``
    from one batch of events (called on the writer thread only)."""

    def __init__(self, mode: str, threshold: Callable[[], float],
                 model: CatchModel | None = None) -> None:
        """With ``model`` (the detector runs in this process) the windows are the model's
        own records; without, they are followed from the events (``WindowTracker``)."""
        self.mode = mode
        self.model = model
        if model is not None:
            model.keep_closed = True
        self.windows = WindowTracker(threshold)
        self.outcomes = CatchOutcomes(threshold)

    def rows(self, batch: Iterable[Any], session: int) -> tuple[list[tuple], list[tuple]]:
        outs: list[tuple] = []
        m = self.mode
        recs: list[WindowRecord] = []
        if self.model is not None:
            closed = self.model.closed
            while closed:
                recs.append(closed.popleft())  # deque: safe against the engine's thread
        for e in batch:
            if isinstance(e, Opportunity) and self.model is None:
                r = self.windows.add(e)
                if r is not None:
                    recs.append(r)
            if isinstance(e, (Opportunity, Fill)):
                o = self.outcomes.add(e)
                if o is not None:
                    outs.append((session, m, o.ts_ns, o.opp_id, o.symbol, o.buy_venue,
                                 o.sell_venue, o.p_catch, int(o.caught),
                                 None if math.isnan(o.net_bps) else o.net_bps,
                                 o.threshold_bps, o.why))
        wins = [(session, m, r.ts_ns, r.symbol, r.buy_venue, r.sell_venue, r.excess_bps,
                 r.lifetime_ms, r.held_ms) for r in recs]
        return wins, outs


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
                "SELECT buy_venue, sell_venue, symbol, excess_bps, lifetime_ms, held_ms, ts_ns "
                "FROM catch_windows WHERE mode = ? ORDER BY seq DESC LIMIT ?",
                (mode, limit)).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []  # an older journal without the table: cold start
    return [WindowRecord(*r) for r in reversed(rows)]


# ------------------------------------------------------------------ calibration summary


def reliability(preds: list[tuple[float, bool]]) -> list[dict[str, Any]]:
    """Predicted-probability buckets -> count, mean predicted, observed rate and its
    95 % Wilson interval (the counts' binomial noise)."""
    edges = RELIABILITY_EDGES
    acc: list[list] = [[0, 0.0, 0] for _ in range(len(edges) + 1)]
    for p, c in preds:
        a = acc[bisect.bisect_right(edges, p) if p < 1.0 else len(edges)]
        a[0] += 1
        a[1] += p
        a[2] += int(c)
    out = []
    lo_edges = (0.0, *edges)
    hi_edges = (*edges, 1.0)
    for (n, sp, k), lo, hi in zip(acc, lo_edges, hi_edges, strict=True):
        w_lo, w_hi = wilson(k, n)
        out.append({"bucket": f"{lo:.1f}-{hi:.1f}", "n": n,
                    "predicted": sp / n if n else None, "observed": k / n if n else None,
                    "caught": k, "ci95": [w_lo, w_hi] if n else None,
                    "within_noise": (w_lo <= sp / n <= w_hi) if n else None})
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    ph = k / n
    d = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / d
    h = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def brier(preds: list[tuple[float, bool]]) -> float | None:
    if not preds:
        return None
    return sum((p - c) ** 2 for p, c in preds) / len(preds)
