"""Cross-venue opportunity search: quotes in, opportunity events out.

Books are indexed by BASE asset: a quote for BTC-USD on kraken is compared with
every other venue's BTC book whose quote currency is comparable (the same
currency, or one linked by a conversion inside a declared quote group). A
quote update re-evaluates only the books of its own base asset, and walks
depth only when the top of book already shows a marginal unit that clears the
threshold, so cost is O(venues) plus the book walk, never a scan over all
symbols.

The detector is four modules, one concept each:

- ``detector.py`` (this one): the inputs (quotes, batches, book states, funding,
  operator commands), storing a quote in the index, and which pairs a quote
  evaluates: only the directions whose first unit can clear the threshold plus
  those with a window open (they must still update or close); when the base has
  one symbol, a max/min over the symbol's books rejects a quote with neither
  before any pair is looked at;
- ``detector_index.py``: the index records (books, symbols, base assets,
  directions) and their fee-adjusted tops;
- ``detector_windows.py``: one direction evaluated (the threshold rule, the depth
  walk and its reuse) and the window lifecycle (open / update / close, lifetimes);
- ``detector_rates.py``: conversion rates and blocked comparisons.

``Windows`` and ``Rates`` are base classes of ``Detector``: one object, so the
per-quote path makes no extra call to cross a module. The plain all-pairs
evaluation the index must reproduce lives with the tests
(``tests/detector_reference.py``).

Staleness is by book LIVENESS (``model.AGES_RULE``): a leg or a conversion
book is stale when its ``live_ts_ns`` (the last time its feed proved it good)
is older than the limit, not when its top has been quiet. Feeds re-publish an
unchanged top with a newer ``live_ts_ns`` while frames arrive; such a refresh
has the same levels, so the walk reuse makes it cost an identity check.

Everything time-dependent reads ``clock`` (injected), so replaying the same
quote sequence with the same clock gives the same events.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from arbtui import symbols as symmod
from arbtui.backend import basis as basismod
from arbtui.backend.detector_index import (
    INF,
    QUOTE_ALIASES,
    Base,
    Group,
    Key,
    Leg,
    canonical_symbol,
)
from arbtui.backend.detector_rates import Rates, pair_key
from arbtui.backend.detector_windows import LIFETIME_BUCKETS_MS, UPDATE_STEP_BPS, Window, Windows
from arbtui.backend.edge import hurdle
from arbtui.config import DetectorConfig
from arbtui.model import BookState, BookStatus, Funding, Opportunity, Quote

#: Importable from here as before the split (commands.report, roles.execute, tests).
__all__ = ["LIFETIME_BUCKETS_MS", "QUOTE_ALIASES", "UPDATE_STEP_BPS", "Detector", "Key",
           "canonical_symbol"]


class Detector(Windows, Rates):
    def __init__(self, cfg: DetectorConfig, fees_bps: dict[str, float], *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        #: taker fee bps per venue; a book reads its venue's fee once, when first seen.
        self.fees = dict(fees_bps)
        self.clock = clock
        #: symbol -> venue -> latest LIVE quote (the dashboard reads this).
        self.quotes: dict[str, dict[str, Quote]] = {}
        #: (venue, venue symbol) and (venue, canonical symbol) -> the canonical book.
        self._legs: dict[tuple[str, str], Leg] = {}
        self._canon: dict[tuple[str, str], Leg] = {}
        self._bases: dict[str, Base] = {}
        self._groups: dict[str, Group] = {}
        #: the threshold and its hurdle factor, as the index holds them (set_threshold)
        self._thr = cfg.min_net_bps
        self._h = hurdle(cfg.min_net_bps)
        self.book_state: dict[tuple[str, str], BookState] = {}
        self.open: dict[Key, Window] = {}
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
        touched: dict[Leg, None] = {}
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

    def _leg(self, venue: str, symbol: str) -> Leg:
        sym = canonical_symbol(venue, symbol)
        leg = self._canon.get((venue, sym))
        if leg is None:
            base = basismod.index_base(venue, sym)  # perps apart from spot
            b = self._bases.get(base)
            if b is None:
                b = self._bases[base] = Base()
            g = self._groups.get(sym)
            if g is None:
                g = self._groups[sym] = Group()
                basismod.link(self._groups, sym, g)
            leg = self._canon[(venue, sym)] = Leg(venue, sym, self.fees.get(venue, 0.0), b, g,
                                                    len(self._canon), self._h)
            st = self.book_state.get((venue, sym))
            leg.notlive = st is not None and st is not BookState.LIVE
            leg.off = venue in self.disabled_venues or sym in self.disabled_symbols
        self._legs[(venue, symbol)] = leg
        return leg

    def _apply(self, q: Quote) -> Leg | None:
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
            ea, eb = -INF, INF
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

    def _drop(self, leg: Leg) -> None:
        """The book left LIVE: out of the index until its next LIVE quote."""
        if leg.q is None:
            return
        leg.q = None
        b, g = leg.base, leg.grp
        del b.legs[leg]
        g.npresent -= 1
        if g.npresent == 0:
            b.nsyms -= 1
        leg.ea = g.eas[leg.slot] = INF
        leg.eb = g.ebs[leg.slot] = -INF

    def _eval_pairs(self, a: Leg, now: int, out: list[Opportunity], seen: set | None) -> None:
        """The directions between ``a`` and the other venues' books of its base asset
        whose first unit can clear the threshold, or that have a window open."""
        opens = a.opens
        b = a.base
        ea, eb, g = a.ea, a.eb, a.grp
        if b.nsyms == 1 and not opens and max(g.ebs) < ea and eb < min(g.eas):
            return  # no other book's bid clears a's ask, nor a's bid another's ask (net, hurdle)
        self._pairs(a, now, out, seen)

    def _pairs(self, a: Leg, now: int, out: list[Opportunity], seen: set | None) -> None:
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
                # (an open window of a direction is its Dir's ``o``: Detector.open[key])
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

    def _eval_cross(self, a: Leg, x: Leg, now: int, out: list[Opportunity]) -> None:
        """Both directions between books of different quote currencies (or none, and why)."""
        q, oq, sym, osym = a.q, x.q, a.sym, x.sym
        r_fwd = self._pair_rate(sym, osym, now)
        if r_fwd is None:
            why = self.blocked.get(pair_key(sym, osym), "quote currencies not comparable")
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
                ea, eb = -INF, INF  # as in _apply
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
                    out.append(self._close(key, now, self.blocked.get(pair_key(sym, ssym), "no rate")))
        return out

    # ------------------------------------------------------------------ state for UI

    def clock_offsets_ms(self) -> dict[str, float]:
        """Per venue: rolling median of (local receive - venue timestamp), ms.

        It is network latency plus clock skew; the median ignores the bursts a
        GC pause or a congested link add to single samples.
        """
        return {v: statistics.median(d) for v, d in self._offsets.items() if d}

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
