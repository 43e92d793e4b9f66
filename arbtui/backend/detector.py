"""Cross-venue opportunity search and lifecycle.

Books are indexed by BASE asset: a quote for BTC-USD on kraken is compared with
every other venue's BTC book whose quote currency is comparable (the same
currency, or one linked by a conversion inside a declared quote group). A
quote update re-evaluates only the books of its own base asset, and walks
depth only when the top of book already shows a marginal unit that clears the
threshold, so cost is O(venues) plus the book walk, never a scan over all
symbols.

The threshold is the per-unit hurdle of ``edge.py`` (``edge.THRESHOLD_RULE``):
the walk takes depth while the marginal net edge is at least ``min_net_bps``,
and a window needs a positive size, ``min_notional`` and a net edge after
``flat_cost`` still at least ``min_net_bps``.

The pair index: every (venue, symbol) book keeps its fee-adjusted top of book
(ask x (1 + fee) x hurdle, bid x (1 - fee): the exact products ``edge.walk``
compares), so for books of the same symbol "can this direction's first unit
clear the threshold" is one float comparison, decided bit for bit as the walk
decides it. A quote evaluates only the directions that can clear it plus
those with a window open (they must still update or close); when the base has
one symbol, a max/min over the symbol's books rejects a quote with neither
before any pair is looked at. A depth walk whose inputs (both level lists and
every parameter) equal the last walk of that direction reuses its result. The
plain all-pairs evaluation the index must reproduce lives with the tests
(``tests/detector_reference.py``).

An opportunity is keyed by (symbol, buy venue, sell venue, sell symbol): it
OPENS when the rule above holds, UPDATES while it lasts (tracking peak net and
peak profit), and CLOSES when the rule stops holding, a leg goes stale or
non-LIVE, or its conversion rate disappears; the CLOSED event carries the
lifetime in ms, which also lands in a per-venue-pair lifetime histogram. Every
event carries the numbers of one evaluation (``model.Opportunity``).

Staleness is by book LIVENESS (``model.AGES_RULE``): a leg or a conversion
book is stale when its ``live_ts_ns`` (the last time its feed proved it good)
is older than the limit, not when its top has been quiet. Feeds re-publish an
unchanged top with a newer ``live_ts_ns`` while frames arrive; such a refresh
has the same levels, so the walk reuse below makes it cost an identity check.

Everything time-dependent reads ``clock`` (injected), so replaying the same
quote sequence with the same clock gives the same events.

Why one module past ~600 lines: the index (``_Leg``/``_Base``/``_Group``), the
depth-walk reuse and the window lifecycle share slotted private records that the
per-quote path reads attribute by attribute; splitting them across modules would
either publish those internals or add a call per quote on the hot path
(BENCHMARKS.md keeps the µs per quote). The reference evaluation lives in tests.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from arbtui import symbols as symmod
from arbtui import venues
from arbtui.backend import basis as basismod
from arbtui.backend.edge import Walk, gross_bps, hurdle, marginal_bps, walk
from arbtui.config import DetectorConfig
from arbtui.model import BookState, BookStatus, Funding, OppEvent, Opportunity, Quote, live_ns

#: Venue quote currencies that are aliases of another currency's book, not a
#: second book: Coinbase Advanced Trade serves BTC-USDC from the BTC-USD book
#: (same order book, same liquidity), so comparing them would be a fake edge.
#: Declared per venue in the registry (``arbtui.venues``, ``quote_aliases``).
QUOTE_ALIASES: dict[tuple[str, str], str] = {
    (s.name, q): to for s in venues.REGISTRY for q, to in s.quote_aliases.items()}

#: Upper edges (ms) of the lifetime histogram buckets; the last bucket is open.
LIFETIME_BUCKETS_MS: tuple[float, ...] = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

#: An UPDATED event is emitted only when the net edge moved this much, so a
#: window that lasts seconds does not flood the bus with identical events.
UPDATE_STEP_BPS = 0.5

Key = tuple[str, str, str, str]  # (symbol, buy venue, sell venue, sell symbol)


def canonical_symbol(venue: str, symbol: str) -> str:
    """The book a venue's symbol really is (Coinbase BTC-USDC -> BTC-USD)."""
    base, quote = symmod.split(symbol)
    alias = QUOTE_ALIASES.get((venue, quote))
    return f"{base}-{alias}" if alias else symbol


_INF = math.inf


class _Group:
    """The books of one canonical symbol: their fee-adjusted tops, by slot."""

    __slots__ = ("eas", "ebs", "legs", "npresent", "partner")

    def __init__(self) -> None:
        self.partner: _Group | None = None  # the spot/perp twin group (backend/basis.py)
        self.eas: list[float] = []  # ask x (1 + fee); +inf while the book is absent
        self.ebs: list[float] = []  # bid x (1 - fee); -inf while the book is absent
        self.legs: list[_Leg] = []
        self.npresent = 0


class _Base:
    """The books of one base asset that hold a LIVE quote, in the order they got it."""

    __slots__ = ("legs", "nsyms")

    def __init__(self) -> None:
        self.legs: dict[_Leg, None] = {}
        self.nsyms = 0  # symbols (groups) with at least one book here


class _Leg:
    """One venue's book of one canonical symbol."""

    __slots__ = ("asset", "base", "ccy", "dirs", "ea", "eb", "fee", "grp", "key", "live", "ma",
                 "mah", "mb", "notlive", "off", "opens", "perp", "q", "qmap", "slot", "sym", "uid",
                 "venue")

    def __init__(self, venue: str, sym: str, fee: float, base: _Base, grp: _Group,
                 uid: int, h: float) -> None:
        self.venue = venue
        self.sym = sym
        self.asset, self.ccy = basismod.instrument_assets(sym)
        self.perp = basismod.is_perp(sym)
        self.key = (venue, sym)
        self.fee = fee
        # Exactly edge.walk's factors, so ``bid * mb >= ask * mah`` is the walk's own
        # test of its first unit (mah = (1 + fee) x hurdle, as the walk forms it).
        self.ma = 1 + fee / 1e4
        self.mah = self.ma * h
        self.mb = 1 - fee / 1e4
        self.base = base
        self.grp = grp
        self.slot = len(grp.legs)
        grp.legs.append(self)
        grp.eas.append(_INF)
        grp.ebs.append(-_INF)
        self.uid = uid
        self.q: Quote | None = None  # the latest LIVE quote, None while absent
        self.live = 0  # model.live_ns(q): when the book was last known good
        #: Detector.book_state of this book is known and not LIVE (kept by on_book_state)
        self.notlive = False
        #: its venue or symbol is disabled (Detector.disabled_*; kept by _set_off)
        self.off = False
        self.qmap: dict[str, Quote] | None = None  # Detector.quotes[sym]
        self.ea = _INF  # ask x (1 + fee) x hurdle
        self.eb = -_INF  # bid x (1 - fee)
        #: other leg -> number of open windows between the two (either direction).
        self.opens: dict[_Leg, int] = {}
        #: sell leg -> the direction buying here and selling there.
        self.dirs: dict[_Leg, _Dir] = {}


class _Dir:
    """One direction (buy on one book, sell on another): its key and last walk."""

    __slots__ = ("asks", "bids", "key", "kind", "o", "params", "w")

    def __init__(self, buy: _Leg, sell: _Leg) -> None:
        self.key: Key = (buy.sym, buy.venue, sell.venue, sell.sym)
        self.kind = basismod.kind_of(buy.perp, sell.perp)
        #: Detector.open[key] while this direction's window is open, else None (the
        #: per-quote path reads it here instead of hashing the 4-tuple key)
        self.o: _Open | None = None
        self.asks: list | None = None
        self.bids: list | None = None
        self.params: tuple = ()
        self.w: Walk | None = None


class _Open:
    __slots__ = ("ba", "buy", "last_emit_net", "opp", "rate", "sb", "sell", "w")

    def __init__(self, opp: Opportunity, buy: _Leg, sell: _Leg) -> None:
        self.opp = opp
        self.last_emit_net = opp.net_bps
        self.buy = buy
        self.sell = sell
        #: the Walk, buy ask, sell bid and rate last applied to ``opp``
        self.w: Walk | None = None
        self.ba = self.sb = self.rate = math.nan


class Detector:
    def __init__(self, cfg: DetectorConfig, fees_bps: dict[str, float], *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        #: taker fee bps per venue; a book reads its venue's fee once, when first seen.
        self.fees = dict(fees_bps)
        self.clock = clock
        #: symbol -> venue -> latest LIVE quote (the dashboard reads this).
        self.quotes: dict[str, dict[str, Quote]] = {}
        #: (venue, venue symbol) and (venue, canonical symbol) -> the canonical book.
        self._legs: dict[tuple[str, str], _Leg] = {}
        self._canon: dict[tuple[str, str], _Leg] = {}
        self._bases: dict[str, _Base] = {}
        self._groups: dict[str, _Group] = {}
        #: the threshold and its hurdle factor, as the index holds them (set_threshold)
        self._thr = cfg.min_net_bps
        self._h = hurdle(cfg.min_net_bps)
        self.book_state: dict[tuple[str, str], BookState] = {}
        self.open: dict[Key, _Open] = {}
        self.disabled_venues: set[str] = set()
        self.disabled_symbols: set[str] = set()
        #: (symbol a, symbol b) sorted -> why the two books cannot be compared now.
        self.blocked: dict[tuple[str, str], str] = {}
        #: (venue, asset, "base"|"quote") -> balance cap, or None for no cap. The
        #: engine points this at the executor's wallets (None while execution is off).
        self.balances: Callable[[str, str, str], float | None] | None = None
        self._offsets: dict[str, deque[float]] = {}
        #: (buy venue, sell venue) -> counts per LIFETIME_BUCKETS_MS bucket.
        self.lifetimes: dict[tuple[str, str], list[int]] = {}
        self.counters: dict[str, int] = {"opened": 0, "closed": 0, "suspect": 0,
                                         "ignored_not_live": 0, "walks": 0}
        self._seq = 0
        self.evaluated = 0
        #: basis/perp windows and funding (backend/basis.py)
        self.basis = basismod.Basis()
        #: The catch-probability model (``backend.catch.CatchModel``), or None: called per
        #: emitted event (sets p_catch/ev/ev_bps) and per quote of a book it watches.
        self.catch: Any = None

    # ------------------------------------------------------------------ inputs

    def on_quote(self, q: Quote) -> list[Opportunity]:
        leg = self._apply(q)
        if leg is None:
            return []
        out: list[Opportunity] = []
        g = leg.grp
        if not (leg.base.nsyms == 1 and not leg.opens and max(g.ebs) < leg.ea
                and leg.eb < min(g.eas)):
            # (the test above is _eval_pairs' first line, here to spare the call
            # for the ~70 % of quotes it rejects, and its repetition for the others)
            self._pairs(leg, self.clock(), out, None)
        if leg.grp.partner is not None:
            self.basis.evaluate(self, leg, self.clock(), out, None)
        return out

    def on_quotes(self, batch: list[Quote]) -> list[Opportunity]:
        """Apply a whole batch of quotes first, THEN evaluate the books they touched.

        Evaluating quote by quote would judge venue A's new price against venue
        B's superseded one although B's newer quote is already in the same
        batch: a window that opens and closes within microseconds and never
        existed for anyone who had read all the data. Each touched pair is
        evaluated once, on the latest quotes.
        """
        if len(batch) == 1:
            return self.on_quote(batch[0])
        touched: dict[_Leg, None] = {}
        for q in batch:
            leg = self._apply(q)
            if leg is not None:
                touched[leg] = None  # a book keeps its first place in the batch
        out: list[Opportunity] = []
        if touched:
            now = self.clock()
            seen: set = set()
            for leg in touched:
                self._eval_pairs(leg, now, out, seen)
                if leg.grp.partner is not None:
                    self.basis.evaluate(self, leg, now, out, seen)
        return out

    def _leg(self, venue: str, symbol: str) -> _Leg:
        sym = canonical_symbol(venue, symbol)
        leg = self._canon.get((venue, sym))
        if leg is None:
            base = basismod.index_base(venue, sym)  # perps apart from spot
            b = self._bases.get(base)
            if b is None:
                b = self._bases[base] = _Base()
            g = self._groups.get(sym)
            if g is None:
                g = self._groups[sym] = _Group()
                basismod.link(self._groups, sym, g)
            leg = self._canon[(venue, sym)] = _Leg(venue, sym, self.fees.get(venue, 0.0), b, g,
                                                    len(self._canon), self._h)
            st = self.book_state.get((venue, sym))
            leg.notlive = st is not None and st is not BookState.LIVE
            leg.off = venue in self.disabled_venues or sym in self.disabled_symbols
        self._legs[(venue, symbol)] = leg
        return leg

    def _apply(self, q: Quote) -> _Leg | None:
        """Store a quote; returns its book if its pairs should be evaluated."""
        self.evaluated += 1
        venue = q.venue
        leg = self._legs.get((venue, q.symbol))
        if leg is None:
            leg = self._leg(venue, q.symbol)
        sym = leg.sym
        if sym != q.symbol:
            q = msgspec.structs.replace(q, symbol=sym)
        lt = q.live_ts_ns
        rt = q.recv_ts_ns
        if q.venue_ts_ns and lt <= rt:
            # (a liveness refresh repeats its top's timestamps: one sample per top)
            d = self._offsets.get(venue)
            if d is None:
                d = self._offsets[venue] = deque(maxlen=201)
            d.append((rt - q.venue_ts_ns) / 1e6)
        if leg.notlive:
            # A quote published before its book left LIVE can be drained after the
            # status (two subscriptions, one batch): it must not resurrect the book.
            self.counters["ignored_not_live"] += 1
            return None
        qm = leg.qmap
        if qm is None:
            qm = leg.qmap = self.quotes.setdefault(sym, {})
        qm[venue] = q
        leg.live = lt if lt > rt else rt  # noqa: FURB136 -- model.live_ns(q) without the call
        ea = q.ask * leg.mah
        eb = q.bid * leg.mb
        if ea * eb * 0.0 != 0.0:
            # inf or nan somewhere: no float comparison can rule a pair out, so
            # this book is a candidate for every pair (the full evaluation decides).
            ea, eb = -_INF, _INF
        leg.ea = ea
        leg.eb = eb
        g = leg.grp
        g.eas[leg.slot] = ea
        g.ebs[leg.slot] = eb
        if leg.q is None:
            b = leg.base
            b.legs[leg] = None
            g.npresent += 1
            if g.npresent == 1:
                b.nsyms += 1
        leg.q = q
        c = self.catch
        if c is not None and leg.key in c.watched:
            c.book(leg.key, q)  # a window's legs are watched past its opening
        if leg.off:  # its venue or symbol is disabled
            return None
        return leg

    def _drop(self, leg: _Leg) -> None:
        """The book left LIVE: out of the index until its next LIVE quote."""
        if leg.q is None:
            return
        leg.q = None
        b, g = leg.base, leg.grp
        del b.legs[leg]
        g.npresent -= 1
        if g.npresent == 0:
            b.nsyms -= 1
        leg.ea = g.eas[leg.slot] = _INF
        leg.eb = g.ebs[leg.slot] = -_INF

    def _eval_pairs(self, a: _Leg, now: int, out: list[Opportunity], seen: set | None) -> None:
        """The directions between ``a`` and the other venues' books of its base asset
        whose first unit can clear the threshold, or that have a window open."""
        opens = a.opens
        b = a.base
        ea, eb, g = a.ea, a.eb, a.grp
        if b.nsyms == 1 and not opens and max(g.ebs) < ea and eb < min(g.eas):
            return  # no other book's bid clears a's ask, nor a's bid another's ask (net, hurdle)
        self._pairs(a, now, out, seen)

    def _pairs(self, a: _Leg, now: int, out: list[Opportunity], seen: set | None) -> None:
        """``_eval_pairs`` past its first test."""
        opens = a.opens
        ea, eb, g = a.ea, a.eb, a.grp
        av, q = a.venue, a.q
        qr = q.recv_ts_ns
        dirs = a.dirs
        for x in a.base.legs:
            if x.grp is g:
                if x is a:
                    continue
                fwd = not (x.eb < ea)
                rev = not (eb < x.ea)
                if not (fwd or rev or x in opens):
                    continue
                if x.off:
                    continue
                if seen is not None:
                    pk = (a.uid, x.uid) if a.uid < x.uid else (x.uid, a.uid)
                    if pk in seen:
                        continue
                    seen.add(pk)
                xr = x.q.recv_ts_ns
                trig = qr if qr >= xr else xr  # noqa: FURB136 -- max() without the call
                # (an open window of a direction is its _Dir's ``o``: Detector.open[key])
                if fwd or ((d := dirs.get(x)) is not None and d.o is not None):
                    self._eval(a, x, 1.0, now, out, trig)
                if rev or ((d := x.dirs.get(a)) is not None and d.o is not None):
                    self._eval(x, a, 1.0, now, out, trig)
            elif x.venue != av and not x.off:
                if seen is not None:
                    pk = (a.uid, x.uid) if a.uid < x.uid else (x.uid, a.uid)
                    if pk in seen:
                        continue
                    seen.add(pk)
                self._eval_cross(a, x, now, out)

    def _eval_cross(self, a: _Leg, x: _Leg, now: int, out: list[Opportunity]) -> None:
        """Both directions between books of different quote currencies (or none, and why)."""
        q, oq, sym, osym = a.q, x.q, a.sym, x.sym
        r_fwd = self._pair_rate(sym, osym, now)
        if r_fwd is None:
            why = self.blocked.get(_pair(sym, osym), "quote currencies not comparable")
            for k in ((sym, a.venue, x.venue, osym), (osym, x.venue, a.venue, sym)):
                if k in self.open:
                    out.append(self._close(k, now, why))
            return
        # r_fwd converts osym's currency into sym's (the sell leg into the buy leg's).
        # Exact shortcut: with a gross LOSS either way (the very products the walk
        # forms), a threshold >= 0 (fees and the hurdle only make it worse) and
        # nothing open for this pair, neither direction can open or close.
        r_rev = 1.0 / r_fwd
        if (self._thr >= 0 and oq.bid * r_fwd < q.ask and q.bid * r_rev < oq.ask
                and (sym, a.venue, x.venue, osym) not in self.open
                and (osym, x.venue, a.venue, sym) not in self.open):
            return
        trig = max(q.recv_ts_ns, oq.recv_ts_ns)
        self._eval(a, x, r_fwd, now, out, trig)
        self._eval(x, a, r_rev, now, out, trig)

    def on_funding(self, f: Funding) -> list[Opportunity]:
        """A perp book's funding: kept, and copied onto its open windows (no event)."""
        self.basis.on_funding(self, f)
        return []

    def on_book_state(self, st: BookStatus) -> list[Opportunity]:
        """A book left LIVE: forget its quote and close what depended on it, at once."""
        sym = canonical_symbol(st.venue, st.symbol)
        self.book_state[(st.venue, sym)] = st.state
        leg = self._canon.get((st.venue, sym))
        if leg is not None:
            leg.notlive = st.state is not BookState.LIVE
        if st.state is BookState.LIVE:
            return []
        by_venue = self.quotes.get(sym)
        if by_venue is not None:
            by_venue.pop(st.venue, None)
        if leg is not None:
            self._drop(leg)
        return self._close_where(
            lambda k: st.venue in (k[1], k[2]) and sym == (k[0] if st.venue == k[1] else k[3]),
            f"{st.venue} book {st.state.value}: {st.reason}")

    def forget_bases(self, bases: set[str], reason: str) -> list[Opportunity]:
        """Start these base assets clean: close every window on them (``reason``) and
        drop their quotes from the index, as if none had arrived yet.

        A Kafka rebalance moved their partition to (or from) another detector
        process, so what this one remembers may be superseded by quotes it never
        saw. Book states are kept: the status topic, not the partition, owns them.
        The next quotes are used again at once.
        """
        out = self._close_where(
            lambda k: symmod.base_of(k[0]) in bases or symmod.base_of(k[3]) in bases, reason)
        for (venue, sym), leg in self._canon.items():
            if symmod.base_of(sym) in bases:
                by_venue = self.quotes.get(sym)
                if by_venue is not None:
                    by_venue.pop(venue, None)
                self._drop(leg)
        return out

    def _set_off(self) -> None:
        """Each book's ``off`` flag from the disabled sets (the per-quote path reads the flag)."""
        dv, ds = self.disabled_venues, self.disabled_symbols
        for leg in self._canon.values():
            leg.off = leg.venue in dv or leg.sym in ds

    def set_venue_enabled(self, venue: str, enabled: bool) -> list[Opportunity]:
        if enabled:
            self.disabled_venues.discard(venue)
            self._set_off()
            return []
        self.disabled_venues.add(venue)
        self._set_off()
        return self._close_where(lambda k: venue in (k[1], k[2]), f"{venue} disabled")

    def set_symbol_enabled(self, symbol: str, enabled: bool) -> list[Opportunity]:
        if enabled:
            self.disabled_symbols.discard(symbol)
            self._set_off()
            return []
        self.disabled_symbols.add(symbol)
        self._set_off()
        return self._close_where(lambda k: symbol in (k[0], k[3]), f"{symbol} disabled")

    def close_all(self, reason: str) -> list[Opportunity]:
        """Close every open window: this detector stops, and on Kafka no other
        process would ever close what it opened (viewers would keep ghosts)."""
        return self._close_where(lambda k: True, reason)

    def set_threshold(self, min_net_bps: float) -> list[Opportunity]:
        """A new threshold re-sizes every window (it is a per-unit hurdle, so the
        size moves with it), closes those it no longer admits and opens those it
        now admits: every present book is evaluated again."""
        self.cfg.min_net_bps = min_net_bps
        self._thr = min_net_bps
        h = self._h = hurdle(min_net_bps)
        for leg in self._canon.values():
            leg.mah = leg.ma * h
            q = leg.q
            if q is None:
                continue
            ea = q.ask * leg.mah
            eb = q.bid * leg.mb
            if ea * eb * 0.0 != 0.0:
                ea, eb = -_INF, _INF  # as in _apply
            leg.ea = leg.grp.eas[leg.slot] = ea
        out: list[Opportunity] = []
        now = self.clock()
        seen: set = set()
        dv, ds = self.disabled_venues, self.disabled_symbols
        for b in self._bases.values():
            for leg in list(b.legs):
                if leg.venue not in dv and leg.sym not in ds:
                    self._eval_pairs(leg, now, out, seen)
                    if leg.grp.partner is not None:
                        self.basis.evaluate(self, leg, now, out, seen)
        return out

    def sweep(self) -> list[Opportunity]:
        """Close windows whose legs (or conversion rate) went stale by age.

        Needed because staleness is the ABSENCE of a new quote: nothing else
        would trigger the close. Scans open windows only, never all symbols.
        """
        now = self.clock()
        max_age = self.cfg.max_quote_age_ms * 1e6
        out: list[Opportunity] = []
        for key, o in list(self.open.items()):
            sym, ssym = key[0], key[3]
            for leg in (o.buy, o.sell):
                if leg.q is None or now - leg.live > max_age:
                    why = "book gone" if leg.q is None else \
                        f"not live for {(now - leg.live) / 1e6:.0f} ms"
                    out.append(self._close(key, now, f"{leg.venue} book stale ({why})"))
                    break
            else:
                if ssym != sym and o.opp.kind != "basis" and self._pair_rate(sym, ssym, now) is None:
                    out.append(self._close(key, now, self.blocked.get(_pair(sym, ssym), "no rate")))
        return out

    # ------------------------------------------------------------------ state for UI

    def clock_offsets_ms(self) -> dict[str, float]:
        """Per venue: rolling median of (local receive - venue timestamp), ms.

        It is network latency plus clock skew; the median ignores the bursts a
        GC pause or a congested link add to single samples.
        """
        return {v: statistics.median(d) for v, d in self._offsets.items() if d}

    def blocked_comparisons(self) -> list[dict[str, str]]:
        return [{"a": a, "b": b, "reason": r} for (a, b), r in sorted(self.blocked.items())]

    def rates_status(self) -> dict[str, dict]:
        """Each configured conversion as this detector sees it now: its rate, or why none
        (on Kafka every detector process must have every rate, whatever it owns)."""
        now = self.clock()
        out = {}
        for ccy in self.cfg.conversions:
            target, r, why = self._to_target(ccy, now)
            out[ccy] = {"to": target, "rate": r, "reason": why}
        return out

    def lifetime_histograms(self) -> dict[str, list[int]]:
        return {f"{b}>{s}": list(h) for (b, s), h in sorted(self.lifetimes.items())}

    def status(self) -> dict:
        return {
            "counters": dict(self.counters),
            "open": len(self.open),
            "blocked": self.blocked_comparisons(),
            "rates": self.rates_status(),
            "clock_offset_ms": self.clock_offsets_ms(),
            "lifetime_buckets_ms": list(LIFETIME_BUCKETS_MS),
            "lifetimes": self.lifetime_histograms(),
            "funding": self.basis.rows(),
        }

    # ------------------------------------------------------------------ conversions

    def _to_target(self, ccy: str, now: int) -> tuple[str, float | None, str]:
        """(target currency, rate ccy->target or None, reason when None)."""
        conv = self.cfg.conversions.get(ccy)
        if conv is None:
            return "", None, f"no conversion configured for {ccy}"
        if not conv.book:
            return conv.to, conv.rate, ""
        target = symmod.quote_of(conv.book)
        q = self.quotes.get(conv.book, {}).get(conv.venue)
        if q is None:
            return target, None, f"{ccy}->{target} rate: no LIVE {conv.book} book on {conv.venue}"
        # Aged by liveness: a USDT-USD book's top is quiet for minutes while its
        # feed is perfectly live; only a silent or invalid book blocks the rate.
        age_ms = (now - live_ns(q)) / 1e6
        if age_ms > conv.max_age_ms:
            return target, None, (f"{ccy}->{target} rate: {conv.book} on {conv.venue} not "
                                  f"live for {age_ms:.0f} ms (max {conv.max_age_ms:.0f})")
        if not (0 < q.bid < _INF and 0 < q.ask < _INF):
            # Also NaN/inf (a quote decoded from a foreign producer): an infinite
            # rate would become 0 the other way round and divide by zero.
            return target, None, f"{ccy}->{target} rate: {conv.book} on {conv.venue} has no two-sided book"
        return target, (q.bid + q.ask) / 2, ""

    def rate(self, frm: str, to: str, now: int | None = None) -> tuple[float | None, str]:
        """How many ``to`` one ``frm`` is worth, or (None, reason). Never an implicit 1."""
        if frm == to:
            return 1.0, ""
        now = self.clock() if now is None else now
        tf, rf, why_f = self._to_target(frm, now)
        tt, rt, why_t = self._to_target(to, now)
        if tf == to:
            return (rf, "") if rf is not None else (None, why_f)
        if tt == frm:
            return (1.0 / rt, "") if rt is not None else (None, why_t)
        if tf and tf == tt:
            if rf is None or rt is None:
                return None, why_f if rf is None else why_t
            return rf / rt, ""
        return None, f"no conversion path {frm}->{to} (configure [detector.conversions.{frm}])"

    def _pair_rate(self, sym: str, osym: str, now: int) -> float | None:
        """Rate converting ``osym``'s quote currency into ``sym``'s, or None (and why, in blocked)."""
        ccy, occy = symmod.quote_of(sym), symmod.quote_of(osym)
        groups = self.cfg.quote_groups
        g = symmod.group_of(ccy, groups)
        if g is None or g != symmod.group_of(occy, groups):
            return None  # not declared comparable: not an opportunity, not "blocked"
        r, why = self.rate(occy, ccy, now)
        key = _pair(sym, osym)
        if r is None:
            self.blocked[key] = why
            return None
        self.blocked.pop(key, None)
        return r

    # ------------------------------------------------------------------ core

    def _eval(self, bl: _Leg, sl: _Leg, rate: float, now: int, out: list[Opportunity],
              trigger_ns: int) -> None:
        """Evaluate buying at ``bl``'s asks and selling at ``sl``'s bids.

        ``rate`` converts the sell venue's currency into the buy venue's.
        """
        d = bl.dirs.get(sl)
        if d is None:
            d = bl.dirs[sl] = _Dir(bl, sl)
        cfg = self.cfg
        max_age = cfg.max_quote_age_ms * 1e6
        o = d.o
        # Liveness, not top age (model.AGES_RULE): a quiet top on a live book is usable.
        if now - bl.live > max_age or now - sl.live > max_age:
            if o is not None:
                x = bl if now - bl.live > max_age else sl
                out.append(self._close(d.key, now, f"{x.venue} book stale (not live for "
                                                   f"{(now - x.live) / 1e6:.0f} ms)"))
            return
        buy, sell = bl.q, sl.q
        ba, sb = buy.ask, sell.bid
        # The walk's own test of its first unit (same products, same order): the
        # best ask and bid must already clear the per-unit hurdle.
        if not (ba > 0 and sb > 0 and sb * rate * sl.mb >= ba * bl.mah):
            if o is not None:
                out.append(self._close(d.key, now, "below threshold"
                                       if sb * rate * sl.mb > ba * bl.ma else "edge gone"))
            return
        thr = self._thr
        max_quote = max_base = _INF
        if self.balances is not None:
            qb = self.balances(buy.venue, bl.ccy, "quote")
            bb = (self.balances(sell.venue, sl.asset, "base") if not sl.perp else  # a short:
                  basismod.short_cap(self.balances(sell.venue, sl.ccy, "quote"), sb, sl.ma))
            max_quote = _INF if qb is None else qb
            max_base = _INF if bb is None else bb
        self.counters["walks"] += 1
        asks = buy.asks or [(buy.ask, buy.ask_size)]
        bids = sell.bids or [(sell.bid, sell.bid_size)]
        params = (rate, cfg.flat_cost, cfg.max_notional, max_quote, max_base, cfg.max_level_share,
                  thr)
        w = d.w
        # walk() is a pure function of its inputs: same inputs, same Walk. A
        # published Quote is never changed (feeds build new level lists for
        # every quote), so the same list object means the same levels; equal
        # lists are remembered as the current objects, so the next evaluation
        # of this direction on the same quotes only checks identity.
        if (w is not None and (d.asks is asks or d.asks == asks)
                and (d.bids is bids or d.bids == bids) and d.params == params):
            d.asks, d.bids = asks, bids
        else:
            w = walk(asks, bids, bl.fee, sl.fee, min_net_bps=thr, flat_cost=cfg.flat_cost, rate=rate,
                     max_notional=cfg.max_notional, max_quote=max_quote, max_base=max_base,
                     level_share=cfg.max_level_share)
            d.asks, d.bids, d.params, d.w = asks, bids, params, w
        # The rule (edge.THRESHOLD_RULE): a positive size, min_notional, and the net
        # edge after flat_cost still at least the threshold.
        if w.size <= 0 or w.notional < cfg.min_notional or w.net_bps < thr:
            if o is not None:
                why = (f"no size ({w.limited_by})" if w.size <= 0 else "below min_notional"
                       if w.notional < cfg.min_notional else "below threshold after flat_cost")
                out.append(self._close(d.key, now, why))
            return
        suspect = w.net_bps > cfg.max_plausible_bps
        if o is not None and o.w is w and o.ba == ba and o.sb == sb and o.rate == rate and (
                p := o.opp).suspect >= suspect:
            # The same walk on the same top of book: every field below already
            # holds these values (peaks included) and no UPDATED is due.
            return
        fa = bl.fee
        fb = sl.fee
        top_gross = gross_bps(ba, sb * rate)
        top_net = marginal_bps(ba, sb * rate, fa, fb)
        if o is None:
            self._seq += 1
            self.counters["opened"] += 1
            if suspect:
                self.counters["suspect"] += 1
            opp = Opportunity(
                id=f"{buy.symbol}:{buy.venue}>{sell.venue}:{now}:{self._seq}",
                event=OppEvent.OPENED, symbol=buy.symbol,
                buy_venue=buy.venue, sell_venue=sell.venue, buy_price=buy.ask,
                sell_price=sell.bid, gross_bps=w.gross_bps, net_bps=w.net_bps,
                buy_fee_bps=fa, sell_fee_bps=fb, size=w.size, buy_vwap=w.buy_vwap,
                sell_vwap=w.sell_vwap, profit=w.profit, peak_net_bps=w.net_bps,
                peak_profit=w.profit, opened_ts_ns=now, ts_ns=now, suspect=suspect,
                reason=f"implausible edge > {cfg.max_plausible_bps:g} bps" if suspect else "",
                # The levels this evaluation walked: a published Quote's lists
                # are never changed, so they are shared, not copied.
                quote_recv_ts_ns=trigger_ns, buy_book=asks, sell_book=bids,
                sell_symbol=sell.symbol, rate=rate, quote_ccy=bl.ccy,
                top_gross_bps=top_gross, buy_limit=w.buy_worst, sell_limit=w.sell_worst,
                limited_by=w.limited_by, top_net_bps=top_net, flat_cost=cfg.flat_cost,
                min_net_bps=thr, kind=d.kind,
            )
            if d.kind != "spot":
                self.basis.decorate(opp, bl, sl)
            if self.catch is not None:
                self.catch.opened(opp, buy, sell)
            # The emitted event is immutable from here on; the open window keeps
            # its own copy that later quotes update in place.
            self.open[d.key] = d.o = o = _Open(msgspec.structs.replace(opp), bl, sl)
            o.w, o.ba, o.sb, o.rate = w, ba, sb, rate
            bl.opens[sl] = bl.opens.get(sl, 0) + 1
            sl.opens[bl] = sl.opens.get(bl, 0) + 1
            out.append(opp)
            return
        o.w, o.ba, o.sb, o.rate = w, ba, sb, rate
        p = o.opp
        p.buy_price, p.sell_price, p.gross_bps, p.net_bps = buy.ask, sell.bid, w.gross_bps, w.net_bps
        p.size, p.buy_vwap, p.sell_vwap, p.profit = w.size, w.buy_vwap, w.sell_vwap, w.profit
        p.top_gross_bps, p.rate, p.limited_by = top_gross, rate, w.limited_by
        p.buy_limit, p.sell_limit = w.buy_worst, w.sell_worst
        # One evaluation: the levels, fees and costs travel with the numbers they gave.
        p.buy_book, p.sell_book, p.top_net_bps = asks, bids, top_net
        p.buy_fee_bps, p.sell_fee_bps, p.flat_cost, p.min_net_bps = fa, fb, cfg.flat_cost, thr
        if d.kind != "spot":
            self.basis.decorate(p, bl, sl)
        p.peak_net_bps = max(p.peak_net_bps, w.net_bps)
        p.peak_profit = max(p.peak_profit, w.profit)
        if suspect and not p.suspect:
            # Once suspect, always suspect: a window that ever showed an
            # implausible edge is a data problem, not a trade.
            p.suspect = True
            p.reason = f"implausible edge > {cfg.max_plausible_bps:g} bps"
            self.counters["suspect"] += 1
        if abs(w.net_bps - o.last_emit_net) >= UPDATE_STEP_BPS:
            o.last_emit_net = w.net_bps
            out.append(self._event(p, OppEvent.UPDATED, now, trigger_ns))

    def _event(self, p: Opportunity, ev: OppEvent, now: int, trigger_ns: int,
               reason: str | None = None) -> Opportunity:
        if self.catch is not None:
            self.catch.event(p, ev, now)  # sets p_catch/ev/ev_bps on the window's record
        return msgspec.structs.replace(
            p, event=ev, ts_ns=now, lifetime_ms=(now - p.opened_ts_ns) / 1e6,
            reason=p.reason if reason is None else reason, quote_recv_ts_ns=trigger_ns,
        )

    def _close(self, key: Key, now: int, reason: str) -> Opportunity:
        o = self.open.pop(key)
        o.buy.dirs[o.sell].o = None
        for a, b in ((o.buy, o.sell), (o.sell, o.buy)):
            n = a.opens[b] - 1
            if n:
                a.opens[b] = n
            else:
                del a.opens[b]
        ev = self._event(o.opp, OppEvent.CLOSED, now, o.opp.quote_recv_ts_ns, reason)
        self.counters["closed"] += 1
        h = self.lifetimes.get((key[1], key[2]))
        if h is None:
            h = self.lifetimes[(key[1], key[2])] = [0] * (len(LIFETIME_BUCKETS_MS) + 1)
        h[bisect.bisect_left(LIFETIME_BUCKETS_MS, ev.lifetime_ms)] += 1
        return ev

    def _close_where(self, pred, reason: str) -> list[Opportunity]:
        now = self.clock()
        return [self._close(k, now, reason) for k in list(self.open) if pred(k)]


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)
