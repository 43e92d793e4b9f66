"""Catchability: will a window still be there when our orders arrive?

``p_catch`` of an opportunity is the probability that BOTH legs, each arriving
after its venue's round trip, still fill in full at a net edge at or above the
execution threshold (``execution.min_net_bps``; ``calibration.CAUGHT_RULE`` says what
"caught" means). The round trip of a leg is

    L_leg = execution.latency_ms[venue] + U(0, jitter_ms) + feed latency of its venue

where the feed latency is how late that venue's triggering quotes arrive (the
median of their receive time minus venue time, less the smallest such delay
seen from the venue: the floor stands for clock offset plus the fastest path,
as the feeds' own ``feed_latency_ms`` does). Both add up: the book we saw was
already ``feed`` ms old at the venue, and our order needs ``latency`` more ms.

What the estimate conditions on. At the opening the model sizes the trade as the
executor will (``edge.walk`` at the execution threshold over the levels the
event carries, within the detector's size): a size and two IOC limits. A leg is
FILLABLE at a moment when its book has that size inside its limit (asks at or
under the buy limit, bids at or over the sell limit): exactly what the simulated
executor checks when the order arrives. The model follows both books' quotes
from the opening on, through the window's close and beyond: the window
closing is not what matters (the executor fills against the books, and with
execution on our own orders close windows, because the detector sizes to the
balances they reserve), and a book that moved away can come back. Each window
is watched ``WATCH_ROUND_TRIPS`` of its own slower round trip plus
``WATCH_MIN_MS`` (at most ``HORIZON_MS``) and leaves, per leg, its path of
fillable / not fillable, so

    p_catch = P(buy leg fillable at L_buy and sell leg fillable at L_sell)

over past windows of the same (buy venue, sell venue) and EXCESS edge bucket
(opening net minus the execution threshold, ``EXCESS_EDGES_BPS``), counted on a
latency grid (``L_GRID_MS``) and averaged exactly over each leg's uniform
jitter. On an update ``t`` ms into the window it conditions on both legs being
fillable at ``t``: P(fillable at t + L) / P(fillable at t), capped at 1. Why these
conditions: the pair fixes the venues' latencies and how fast their makers
refill (a dislocation on a slow venue lasts longer), the excess edge says how
far a price must move back before the limits stop filling, and the age says the
window outlived those that die at once. Not conditioned on: volatility regime,
time of day, book depth beyond the size, our own wallets (a fill the balance
cuts short is a miss the model does not see), a book leaving LIVE.

Cold start: every estimate is a Beta posterior mean with a stated prior, in
three levels: a (pair, bucket) cell has the prior ``Beta(w·m, w·(1-m))`` (``w =
PRIOR_WEIGHT`` = 8 pseudo-windows) whose mean ``m`` is the pair's estimate over
all buckets; the pair's has the same prior around the estimate of all pairs
pooled; and that one has the stated prior ``Beta(2·m0, 2·(1-m0))``
(``STATED_PRIOR_WEIGHT`` = 2) with ``m0 = 0.5 ** (L / PRIOR_HALF_LIFE_MS)``
(``L`` the slower leg's round trip): a leg's chance to still fill halves every
25 ms. The stated prior is pessimistic and weak: an estimate that promises
catches before any evidence costs money, and the first windows (each watched two
of its round trips, so within ~0.1-0.4 s) should replace it at once, whatever
the market. With ``n`` windows a level's prior weighs ``w / (n + w)``, so a new
pair borrows from the others at once. Windows the executor would not send (no
size at the execution threshold, or under min_notional) get ``p_catch`` 0 and
are not history: the estimate is about windows that are traded. Each level's
counts are halved once they hold ``MAX_WINDOWS`` windows, so the model follows a
market that changes.

History comes from the journal (``catch_windows`` rows of earlier sessions of
the same mode, ``load_windows``) and from the running session. The per-quote
cost is one dict lookup (is this book watched?) plus, for a watched book, an
identity check (a liveness refresh repeats the same levels) and a look at the top
of its list of legs: the counts read a leg only on ``L_GRID_MS``, so a leg's state
is taken (the best level against its IOC limit, then a walk if that does not
decide) once per grid latency its book's quotes step over, not per quote, and a
leg past its horizon is never looked at again (``_Leg``); an estimate (once per OPENED/UPDATED event)
reads a few cells per level of counts kept on the grid (a window adds itself
once, with one numpy outer product).

``lifetime_ms`` (how long the window stayed open) is kept beside for the
survival curve the latency-budget view draws next to P(catch).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque
from collections.abc import Iterable
from typing import Any

from arbtui.backend.catch_history import (  # the history half (counts, journal rows)
    CURVES_EVERY_S,
    FEED_SAMPLES,
    HORIZON_MS,
    L_GRID_MS,
    WATCH_MIN_MS,
    WATCH_ROUND_TRIPS,
    CatchStats,
    Prepared,
    WindowRecord,
    excess_bucket,
    latency_budget,
)
from arbtui.backend.edge import walk
from arbtui.config import Config, ExecutionConfig
from arbtui.model import OppEvent, Opportunity, Quote

_NEVER = 1 << 62


class _Leg:
    """One leg of a watched window. Its path is needed only at the grid latencies
    (``catch_history.grid_flags`` reads it there), so it is sampled there: the state at ``L_GRID_MS[gi]``
    is that of the book's last quote at or before it, known once a later quote arrives
    (or the window retires). So a leg costs work per grid point it crosses, not per
    quote of its book: between crossings it waits in its book's list."""

    __slots__ = ("buy", "done", "due", "gi", "horizon", "k", "limit", "need", "ok", "opened_ns",
                 "path", "seq0")

    def __init__(self, w: _Watch, buy: bool, limit: float, need: float, k: int,
                 seq0: int) -> None:
        # No reference back to ``w``: the window holds its legs, and a cycle would leave
        # every finished window to the cyclic collector (~4-5 k objects/s at 5 k quotes/s
        # kept young collections, 10-60 ms each, coming every ~10 s for good).
        self.buy = buy
        self.opened_ns = self.due = w.opened_ns  # due: ns of its next grid latency
        self.horizon = w.horizon
        self.limit, self.need = limit, need
        # the walk at the opening just found the size inside both limits: fillable
        self.ok = True
        self.path: list[tuple[float, bool]] = [(0.0, True)]
        self.gi = 0  # the first grid latency whose state is not known yet
        self.k = k  # grid latencies within the horizon
        self.seq0 = seq0  # the book's quote count at the opening: later quotes are this leg's
        self.done = False


class _Book:
    """A watched book: its last distinct quote (``seq`` counts them), the legs waiting for
    their next grid latency and the earliest of those (``due``, ns). A plain list, not a
    heap: a book has a few legs, and heap upkeep cost more than the scan (measured)."""

    __slots__ = ("due", "ids", "legs", "q", "seq")

    def __init__(self) -> None:
        self.q: Quote | None = None
        self.seq = 0
        self.legs: list[_Leg] = []
        self.due = _NEVER
        self.ids: set[str] = set()


class _Watch:
    """One window followed by the model: sized at the opening like the executor, then
    each leg's book followed until ``HORIZON_MS``, whether the window is still open or
    not; each leg's path records each change of "fillable" on the latency grid."""

    __slots__ = ("bucket", "buy", "buy_key", "closed_ms", "excess", "horizon", "lb", "ls",
                 "opened_ns", "p", "retired", "sell", "sell_key", "size")

    def __init__(self, p: Opportunity, excess: float) -> None:
        self.p = p  # the OPENED event (names, for the record)
        self.excess = excess
        self.bucket = excess_bucket(excess)
        self.opened_ns = p.opened_ts_ns
        self.buy_key = (p.buy_venue, p.symbol)
        self.sell_key = (p.sell_venue, p.sell_symbol or p.symbol)
        self.size = 0.0
        self.lb = self.ls = 0.0
        # its legs: made at the opening, for a window the executor would send
        self.buy: _Leg
        self.sell: _Leg
        self.horizon = HORIZON_MS  # how long its books are watched (set at the opening)
        self.retired = False  # past the horizon (or never watched)
        self.closed_ms = -1.0  # lifetime, -1 while open

    @property
    def bp(self) -> list[tuple[float, bool]]:
        return self.buy.path

    @property
    def sp(self) -> list[tuple[float, bool]]:
        return self.sell.path

    def record(self) -> WindowRecord:
        p = self.p
        return WindowRecord(p.buy_venue, p.sell_venue, p.symbol, self.excess, self.closed_ms,
                            tuple(self.buy.path), tuple(self.sell.path), self.horizon,
                            self.opened_ns)


def _holds(leg: _Leg, q: Quote) -> bool:
    """Would ``leg``'s IOC order fill in full against ``q``'s book? The best level decides
    most checks: beyond the limit (no), or deep enough alone (yes)."""
    if leg.buy:
        lv = q.asks or [(q.ask, q.ask_size)]
        px, sz = lv[0]
        if px > leg.limit:
            return False
        return sz >= leg.need or _asks_hold(lv, leg.limit, leg.need)
    lv = q.bids or [(q.bid, q.bid_size)]
    px, sz = lv[0]
    if px < leg.limit:
        return False
    return sz >= leg.need or _bids_hold(lv, leg.limit, leg.need)


def _asks_hold(asks: list, limit: float, need: float) -> bool:
    got = 0.0
    for px, sz in asks:
        if px > limit:
            return False
        got += sz
        if got >= need:
            return True
    return False


def _bids_hold(bids: list, limit: float, need: float) -> bool:
    got = 0.0
    for px, sz in bids:
        if px < limit:
            return False
        got += sz
        if got >= need:
            return True
    return False


class CatchModel:
    """The detector's estimator (see the module docstring). ``cfg`` is the live
    ``[execution]`` table: latencies, jitter, threshold and max_notional are read at
    each call. ``closed`` holds the finished windows until the journal takes them
    (``keep_closed``: a ``CatchJournal`` in this process writes them as history)."""

    def __init__(self, cfg: ExecutionConfig, history: Iterable[WindowRecord] = (), *,
                 level_share: float = 1.0, min_notional: float = 0.0) -> None:
        self.cfg = cfg
        # detector.max_level_share and detector.min_notional, as the executor sizes
        self.level_share = level_share
        self.min_notional = min_notional
        self._stats = CatchStats()
        #: Finished windows not yet in the counts (a WindowRecord, or its counts prepared
        #: when the loop was idle), oldest first: applied, in order, before any read of
        #: the counts (``stats``, an estimate) or when the loop is idle (``idle``).
        self._adds: deque[WindowRecord | Prepared] = deque()
        #: Windows ``idle`` retired since the last ``_retire`` call, in retirement order:
        #: (window, its record and prepared counts if it had closed, else None). They
        #: enter the counts where ``_retire`` would have retired them (see ``idle``).
        self._staged: list[tuple[_Watch, WindowRecord | None, Prepared | None]] = []
        #: (venue, canonical symbol) -> the watched book (its windows, last quote, legs)
        self.watched: dict[tuple[str, str], _Book] = {}
        self._by_id: dict[str, _Watch] = {}
        #: (horizon time, seq, watch): retired when their horizon passes
        self._due: list[tuple[int, int, _Watch]] = []
        self._seq = itertools.count()
        #: venue -> smallest (receive - venue time) seen, ms: clock offset + fastest path
        self._floor: dict[str, float] = {}
        self._delays: dict[str, deque[float]] = {}
        self._curves_version = -1
        self._curves_at = -math.inf
        self._curves: dict[str, Any] = {}
        self.closed: deque[WindowRecord] = deque(maxlen=100_000)
        self.keep_closed = False
        for r in history:
            self._stats.add(r)
        self.history_windows = self._stats.windows

    @property
    def stats(self) -> CatchStats:
        """The counts, with every finished window in them."""
        if self._adds:
            self._flush()
        return self._stats

    def _flush(self) -> None:
        st, adds = self._stats, self._adds
        while adds:
            a = adds.popleft()
            if isinstance(a, WindowRecord):
                st.add(a)
            else:
                st.apply(a)

    # ----------------------------------------------------------- inputs (detector hook)

    def feed_ms(self, q: Quote | None) -> float:
        """The feed latency of ``q``'s venue, measured on the trigger quotes: the median
        of the last ``FEED_SAMPLES`` delays (receive - venue time) less the smallest seen
        (clock offset + fastest path). The median, not ``q``'s own delay: one frame held
        up by a GC pause or a busy loop says little about the venue's book at arrival.
        0 when the venue sends no timestamp."""
        if q is None or not q.venue_ts_ns:
            return 0.0
        d = (q.recv_ts_ns - q.venue_ts_ns) / 1e6
        v = q.venue
        f = self._floor.get(v)
        if f is None or d < f:
            self._floor[v] = f = d
        recent = self._delays.get(v)
        if recent is None:
            recent = self._delays[v] = deque(maxlen=FEED_SAMPLES)
        recent.append(d)
        return sorted(recent)[len(recent) // 2] - f

    def latency_ms(self, venue: str) -> float:
        return self.cfg.latency_ms.get(venue, self.cfg.default_latency_ms)

    def opened(self, opp: Opportunity, buy_q: Quote | None, sell_q: Quote | None) -> None:
        """An OPENED event: size it as the executor will, start watching its books,
        estimate and set ``p_catch``/``ev``/``ev_bps`` on it."""
        cfg = self.cfg
        thr = cfg.min_net_bps
        x = _Watch(opp, opp.net_bps - thr)
        x.lb = self.latency_ms(opp.buy_venue) + self.feed_ms(buy_q)
        x.ls = self.latency_ms(opp.sell_venue) + self.feed_ms(sell_q)
        if thr == opp.min_net_bps and opp.size * opp.buy_vwap <= cfg.max_notional:
            # the executor's walk would be the detector's own: same levels, threshold, caps
            size, bl, sl, net = opp.size, opp.buy_limit, opp.sell_limit, opp.net_bps
        else:
            w = walk(opp.buy_book or [(opp.buy_price, opp.size)],
                     opp.sell_book or [(opp.sell_price, opp.size)], opp.buy_fee_bps,
                     opp.sell_fee_bps, min_net_bps=thr, flat_cost=opp.flat_cost,
                     rate=opp.rate or 1.0, max_notional=cfg.max_notional, max_base=opp.size,
                     level_share=self.level_share)
            size, bl, sl, net = w.size, w.buy_worst, w.sell_worst, w.net_bps
        self._retire(opp.opened_ts_ns)
        if size <= 0 or net < thr or size * opp.buy_vwap < self.min_notional:
            # The executor will not send it: no order, nothing to catch. Not history
            # either: the estimate is for windows that are traded.
            self._set(opp, 0.0)
            return
        self._by_id[opp.id] = x
        x.size = size * (1 - 1e-9)
        # Watched for a few round trips of its own (the latencies an estimate asks
        # about), so it teaches the model within ~0.1-0.5 s instead of at the horizon.
        x.horizon = min(HORIZON_MS, WATCH_ROUND_TRIPS * (max(x.lb, x.ls) + cfg.jitter_ms)
                        + WATCH_MIN_MS)
        k = bisect.bisect_right(L_GRID_MS, x.horizon)  # the grid latencies it is watched to
        for buy, key, limit in ((True, x.buy_key, bl), (False, x.sell_key, sl)):
            bw = self.watched.get(key)
            if bw is None:
                bw = self.watched[key] = _Book()
            bw.ids.add(opp.id)
            leg = _Leg(x, buy, limit, x.size, k, bw.seq)
            if buy:
                x.buy = leg
            else:
                x.sell = leg
            bw.legs.append(leg)
            bw.due = min(bw.due, leg.due)
        heapq.heappush(self._due, (x.opened_ns + int(x.horizon * 1e6), next(self._seq), x))
        self._set(opp, self.stats.estimate(opp.buy_venue, opp.sell_venue, x.bucket, x.lb, x.ls,
                                           cfg.jitter_ms))  # (``stats`` flushes the adds)

    def book(self, key: tuple[str, str], q: Quote) -> None:
        """A quote for a book some window watches (``key`` = (venue, canonical symbol);
        the detector calls this only for a key in ``watched``). The book's previous quote
        held from its arrival until this one: the legs whose next grid latency it spans
        learn their state there (``_cross``). Quotes are taken in arrival order per book."""
        bw = self.watched.get(key)
        if bw is None:
            return
        cur = bw.q
        # A liveness refresh re-publishes the same level lists: nothing changed.
        if cur is not None and cur.asks is q.asks and cur.bids is q.bids:
            return
        t = q.recv_ts_ns
        if bw.due < t:
            self._cross(bw, t)
        bw.q = q
        bw.seq += 1

    def _cross(self, bw: _Book, t: int) -> None:
        """A quote at ``t`` replaces ``bw.q``: each leg due before ``t`` had ``bw.q``'s state
        (if that quote came after its opening; else its own) at every grid latency from
        its next one up to ``t``."""
        cur, seq, g = bw.q, bw.seq, L_GRID_MS
        nxt = _NEVER
        keep = True
        for leg in bw.legs:
            if leg.due >= t:
                if leg.due < nxt:  # noqa: PLR1730 (per quote: a compare, not a call)
                    nxt = leg.due
                continue
            if leg.done:
                keep = False
                continue
            if cur is not None and seq > leg.seq0:
                ok = _holds(leg, cur)
                if ok is not leg.ok:
                    leg.ok = ok
                    leg.path.append((float(g[leg.gi]), ok))
            ms = (t - leg.opened_ns) / 1e6
            gi = bisect.bisect_left(g, ms)
            if ms >= leg.horizon or gi >= leg.k:
                leg.done = True  # every latency it is needed for has passed
                keep = False
                continue
            leg.gi = gi
            d = leg.due = leg.opened_ns + g[gi] * 1_000_000
            if d < nxt:  # noqa: PLR1730
                nxt = d
        if not keep:
            bw.legs = [leg for leg in bw.legs if not leg.done]
        bw.due = nxt

    def _settle(self, leg: _Leg, bw: _Book | None) -> None:
        """The window retires: the leg's remaining grid latencies take the state of its
        book's last quote, if that came after the opening and before the horizon."""
        if leg.done:
            return
        leg.done = True
        cur = None if bw is None else bw.q
        if cur is None or bw.seq <= leg.seq0 or leg.gi >= leg.k:  # type: ignore[union-attr]
            return
        if (cur.recv_ts_ns - leg.opened_ns) / 1e6 >= leg.horizon:
            return  # past the horizon: not this window's
        ok = _holds(leg, cur)
        if ok is not leg.ok:
            leg.ok = ok
            leg.path.append((float(L_GRID_MS[leg.gi]), ok))

    def event(self, p: Opportunity, ev: OppEvent, now_ns: int) -> None:
        """Before an UPDATED or CLOSED event of ``p`` (the open window's record) is
        emitted: re-estimate at its age; at the close, note its lifetime."""
        x = self._by_id.get(p.id)
        if x is None:
            return
        t = max(0.0, (now_ns - x.opened_ns) / 1e6)
        if ev is OppEvent.CLOSED:
            x.closed_ms = t
            self._retire(now_ns)
            if x.retired:
                self._finish(x)
            self._set(p, p.p_catch if p.p_catch is not None else 0.0)
            return
        self._set(p, self.stats.estimate(p.buy_venue, p.sell_venue, x.bucket, x.lb, x.ls,
                                         self.cfg.jitter_ms, age=t))

    def _retire(self, now_ns: int) -> None:
        """Stop watching windows whose horizon passed; record the closed ones."""
        if self._staged:
            # Retired by ``idle`` since the last call: this call would have retired them
            # (their horizons passed first), so they enter the counts here, in that order.
            for x, r, w in self._staged:
                if x.closed_ms >= 0:
                    self._finish(x, r, w)
            self._staged.clear()
        due = self._due
        while due and due[0][0] <= now_ns:
            x = heapq.heappop(due)[2]
            self._unwatch(x)
            if x.closed_ms >= 0:
                self._finish(x)

    def _unwatch(self, x: _Watch) -> None:
        x.retired = True
        for leg, k in ((x.buy, x.buy_key), (x.sell, x.sell_key)):
            bw = self.watched.get(k)
            self._settle(leg, bw)
            if bw is not None:
                bw.ids.discard(x.p.id)
                if not bw.ids:
                    del self.watched[k]

    def idle(self, now_ns: int) -> bool:
        """One unit of deferred work, for when the loop has nothing else to do (the detect
        role calls it between batches): apply one finished window to the counts, or retire
        one window whose horizon passed by ``now_ns`` and prepare its counts. False when
        there is nothing to do. Every p_catch / ev and every count stays what it would have
        been without these calls:

        - a finished window is applied in order and before any read of the counts;
        - retiring is the same at any time after the horizon (a leg's remaining grid
          latencies take its book's last quote from before the horizon, ``_settle``, which
          is what the first later quote would record, ``_cross``), but the counts must not
          see a retired window before ``_retire`` would have retired it (an UPDATED
          estimate in between reads them): so the window waits in ``_staged`` with its
          counts prepared, and ``_retire`` adds it in its place.

        "The same" assumes a quote reaches the model before the detector's clock passes a
        horizon that its receive time precedes: so in one process and in a replay, where a
        quote is queued when it is stamped and this runs only with nothing queued. On Kafka a
        quote stamped before a horizon can arrive after it; whether it still counted already
        depended on whether an opening or a close came first, and now it does not."""
        if self._adds:
            a = self._adds.popleft()
            if isinstance(a, WindowRecord):
                self._stats.add(a)
            else:
                self._stats.apply(a)
            return True
        due = self._due
        if not due or due[0][0] > now_ns:
            return False
        x = heapq.heappop(due)[2]
        self._unwatch(x)
        if x.closed_ms >= 0 and not x.p.suspect:
            r = x.record()
            self._staged.append((x, r, CatchStats.prepare(r)))
        else:
            self._staged.append((x, None, None))  # still open (or suspect): no counts yet
        return True

    def _finish(self, x: _Watch, r: WindowRecord | None = None,
                w: Prepared | None = None) -> None:
        if self._by_id.pop(x.p.id, None) is None:
            return
        if x.p.suspect:
            return  # a data problem, not market behaviour
        if r is None:
            r = x.record()
        # Into the counts before the next read of them; the loop's idle time may do it.
        self._adds.append(r if w is None else w)
        if self.keep_closed:
            self.closed.append(r)

    @staticmethod
    def _set(opp: Opportunity, pc: float) -> None:
        opp.p_catch = pc
        opp.ev = opp.profit * pc
        opp.ev_bps = opp.net_bps * pc

    # ----------------------------------------------------------- views

    def round_trip_ms(self, buy_venue: str, sell_venue: str) -> float:
        """The slower leg's configured latency (no jitter, no feed latency)."""
        return max(self.latency_ms(buy_venue), self.latency_ms(sell_venue))

    def curves(self, now_s: float | None = None) -> dict[str, Any]:
        """Per pair (``buy>sell``): P(catch) with both legs at round trip L, and the
        windows' survival, on ``BUDGET_GRID_MS``; the windows behind them; the pair's
        configured round trip. Recomputed when windows were added, and with ``now_s``
        (the caller's monotonic clock) at most once per ``CURVES_EVERY_S`` unless a pair
        is new: the dashboard samples this 10x a second while windows keep closing."""
        st = self.stats  # flushed
        if st.version != self._curves_version and (
                now_s is None or now_s - self._curves_at >= CURVES_EVERY_S
                or len(st.pairs) != len(self._curves.get("pairs", ()))):  # a new pair: now
            self._curves_at = now_s if now_s is not None else 0.0
            self._curves = latency_budget(st)
            self._curves["history_windows"] = self.history_windows
            for k, v in self._curves["pairs"].items():
                b, _, s = k.partition(">")
                v["round_trip_ms"] = self.round_trip_ms(b, s)
            self._curves_version = st.version
        return self._curves


def model_for(cfg: Config, history: Iterable[WindowRecord] = ()) -> CatchModel | None:
    """The detector's model as ``cfg`` asks for it: None with ``[detector] catch = false``
    (an operator on a busy box saves its per-window cost; p_catch / ev stay None)."""
    if not cfg.detector.catch:
        return None
    return CatchModel(cfg.execution, history, level_share=cfg.detector.max_level_share,
                      min_notional=cfg.detector.min_notional)

