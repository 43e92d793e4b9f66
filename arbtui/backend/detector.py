"""Cross-venue opportunity search and lifecycle.

Books are indexed by BASE asset: a quote for BTC-USD on kraken is compared with
every other venue's BTC book whose quote currency is comparable (the same
currency, or one linked by a conversion inside a declared quote group). A
quote update re-evaluates only the books of its own base asset (2·(V-1) pairs
per comparable book), and walks depth only when the top of book already shows
a profitable marginal unit, so cost is O(venues) plus the book walk, never a
scan over all symbols.

An opportunity is keyed by (symbol, buy venue, sell venue, sell symbol): it
OPENS when its NET edge at the depth-aware size reaches ``min_net_bps``,
UPDATES while it lasts (tracking peak net and peak profit), and CLOSES when the
edge falls below the threshold, a leg goes stale or non-LIVE, or its
conversion rate disappears; the CLOSED event carries the lifetime in ms, which
also lands in a per-venue-pair lifetime histogram.

Everything time-dependent reads ``clock`` (injected), so replaying the same
quote sequence with the same clock gives the same events.
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from collections import deque
from collections.abc import Callable

import msgspec

from arbtui import symbols as symmod
from arbtui.backend.edge import gross_bps, marginal_profit, walk
from arbtui.config import DetectorConfig
from arbtui.model import BookState, BookStatus, OppEvent, Opportunity, Quote

#: Venue quote currencies that are aliases of another currency's book, not a
#: second book: Coinbase Advanced Trade serves BTC-USDC from the BTC-USD book
#: (same order book, same liquidity), so comparing them would be a fake edge.
QUOTE_ALIASES: dict[tuple[str, str], str] = {("coinbase", "USDC"): "USD"}

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


class _Open:
    __slots__ = ("last_emit_net", "opp")

    def __init__(self, opp: Opportunity) -> None:
        self.opp = opp
        self.last_emit_net = opp.net_bps


class Detector:
    def __init__(self, cfg: DetectorConfig, fees_bps: dict[str, float], *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        self.fees = dict(fees_bps)
        self.clock = clock
        #: symbol -> venue -> latest LIVE quote (the dashboard reads this).
        self.quotes: dict[str, dict[str, Quote]] = {}
        #: base asset -> (venue, symbol) -> latest LIVE quote (what pairs are built from).
        self._by_base: dict[str, dict[tuple[str, str], Quote]] = {}
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

    # ------------------------------------------------------------------ inputs

    def on_quote(self, q: Quote) -> list[Opportunity]:
        q2 = self._apply(q)
        if q2 is None:
            return []
        out: list[Opportunity] = []
        self._eval_pairs(q2, self.clock(), out, None)
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
        touched: dict[tuple[str, str], Quote] = {}
        for q in batch:
            q2 = self._apply(q)
            if q2 is not None:
                touched[(q2.venue, q2.symbol)] = q2
        out: list[Opportunity] = []
        if touched:
            now = self.clock()
            seen: set = set()
            for q2 in touched.values():
                self._eval_pairs(q2, now, out, seen)
        return out

    def _apply(self, q: Quote) -> Quote | None:
        """Store a quote; returns it (canonical symbol) if its pairs should be evaluated."""
        self.evaluated += 1
        sym = canonical_symbol(q.venue, q.symbol)
        if sym != q.symbol:
            q = msgspec.structs.replace(q, symbol=sym)
        if q.venue_ts_ns:
            d = self._offsets.get(q.venue)
            if d is None:
                d = self._offsets[q.venue] = deque(maxlen=201)
            d.append((q.recv_ts_ns - q.venue_ts_ns) / 1e6)
        st = self.book_state.get((q.venue, sym))
        if st is not None and st is not BookState.LIVE:
            # A quote published before its book left LIVE can be drained after the
            # status (two subscriptions, one batch): it must not resurrect the book.
            self.counters["ignored_not_live"] += 1
            return None
        self.quotes.setdefault(sym, {})[q.venue] = q
        self._by_base.setdefault(symmod.base_of(sym), {})[(q.venue, sym)] = q
        if q.venue in self.disabled_venues or sym in self.disabled_symbols:
            return None
        return q

    def _eval_pairs(self, q: Quote, now: int, out: list[Opportunity], seen: set | None) -> None:
        """Both directions of every pair between ``q``'s book and the other venues' books
        of the same base asset: O(venues), plus a depth walk where an edge exists."""
        sym = q.symbol
        books = self._by_base.get(symmod.base_of(sym), {})
        q = books.get((q.venue, sym), q)  # the latest, should a batch hold two
        for (ov, osym), oq in books.items():
            if ov == q.venue or ov in self.disabled_venues or osym in self.disabled_symbols:
                continue
            if seen is not None:
                pk = ((q.venue, sym), (ov, osym)) if (q.venue, sym) < (ov, osym) \
                    else ((ov, osym), (q.venue, sym))
                if pk in seen:
                    continue
                seen.add(pk)
            if osym == sym:
                r_fwd = 1.0
            else:
                r_fwd = self._pair_rate(sym, osym, now)
                if r_fwd is None:
                    why = self.blocked.get(_pair(sym, osym), "quote currencies not comparable")
                    for k in ((sym, q.venue, ov, osym), (osym, ov, q.venue, sym)):
                        if k in self.open:
                            out.append(self._close(k, now, why))
                    continue
            # r_fwd converts osym's currency into sym's (the sell leg into the buy leg's).
            # Exact shortcut: with no gross edge either way (fees only make it worse)
            # and nothing open for this pair, neither direction can open or close.
            if (q.ask >= oq.bid * r_fwd and oq.ask * r_fwd >= q.bid
                    and (sym, q.venue, ov, osym) not in self.open
                    and (osym, ov, q.venue, sym) not in self.open):
                continue
            trig = max(q.recv_ts_ns, oq.recv_ts_ns)
            self._eval(q, oq, r_fwd, now, out, trig)
            self._eval(oq, q, 1.0 / r_fwd, now, out, trig)

    def on_book_state(self, st: BookStatus) -> list[Opportunity]:
        """A book left LIVE: forget its quote and close what depended on it, at once."""
        sym = canonical_symbol(st.venue, st.symbol)
        self.book_state[(st.venue, sym)] = st.state
        if st.state is BookState.LIVE:
            return []
        by_venue = self.quotes.get(sym)
        if by_venue is not None:
            by_venue.pop(st.venue, None)
        self._by_base.get(symmod.base_of(sym), {}).pop((st.venue, sym), None)
        return self._close_where(
            lambda k: st.venue in (k[1], k[2]) and sym == (k[0] if st.venue == k[1] else k[3]),
            f"{st.venue} book {st.state.value}: {st.reason}")

    def set_venue_enabled(self, venue: str, enabled: bool) -> list[Opportunity]:
        if enabled:
            self.disabled_venues.discard(venue)
            return []
        self.disabled_venues.add(venue)
        return self._close_where(lambda k: venue in (k[1], k[2]), f"{venue} disabled")

    def set_symbol_enabled(self, symbol: str, enabled: bool) -> list[Opportunity]:
        if enabled:
            self.disabled_symbols.discard(symbol)
            return []
        self.disabled_symbols.add(symbol)
        return self._close_where(lambda k: symbol in (k[0], k[3]), f"{symbol} disabled")

    def close_all(self, reason: str) -> list[Opportunity]:
        """Close every open window: this detector stops, and on Kafka no other
        process would ever close what it opened (viewers would keep ghosts)."""
        return self._close_where(lambda k: True, reason)

    def set_threshold(self, min_net_bps: float) -> list[Opportunity]:
        self.cfg.min_net_bps = min_net_bps
        out: list[Opportunity] = []
        now = self.clock()
        for key, o in list(self.open.items()):
            if o.opp.net_bps < min_net_bps:
                out.append(self._close(key, now, "threshold raised"))
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
            sym, bv, sv, ssym = key
            for v, s in ((bv, sym), (sv, ssym)):
                q = self.quotes.get(s, {}).get(v)
                if q is None or now - q.recv_ts_ns > max_age:
                    out.append(self._close(key, now, f"{v} quote stale"))
                    break
            else:
                if ssym != sym and self._pair_rate(sym, ssym, now) is None:
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

    def lifetime_histograms(self) -> dict[str, list[int]]:
        return {f"{b}>{s}": list(h) for (b, s), h in sorted(self.lifetimes.items())}

    def status(self) -> dict:
        return {
            "counters": dict(self.counters),
            "open": len(self.open),
            "blocked": self.blocked_comparisons(),
            "clock_offset_ms": self.clock_offsets_ms(),
            "lifetime_buckets_ms": list(LIFETIME_BUCKETS_MS),
            "lifetimes": self.lifetime_histograms(),
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
        age_ms = (now - q.recv_ts_ns) / 1e6
        if age_ms > conv.max_age_ms:
            return target, None, (f"{ccy}->{target} rate: {conv.book} on {conv.venue} is "
                                  f"{age_ms:.0f} ms old (max {conv.max_age_ms:.0f})")
        if q.bid <= 0 or q.ask <= 0:
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

    def _eval(self, buy: Quote, sell: Quote, rate: float, now: int, out: list[Opportunity],
              trigger_ns: int) -> None:
        """Evaluate buying at ``buy``'s asks and selling at ``sell``'s bids.

        ``rate`` converts the sell venue's currency into the buy venue's.
        """
        key = (buy.symbol, buy.venue, sell.venue, sell.symbol)
        cfg = self.cfg
        max_age = cfg.max_quote_age_ms * 1e6
        o = self.open.get(key)
        if now - buy.recv_ts_ns > max_age or now - sell.recv_ts_ns > max_age:
            if o is not None:
                out.append(self._close(key, now, "quote stale"))
            return
        fa = self.fees.get(buy.venue, 0.0)
        fb = self.fees.get(sell.venue, 0.0)
        if buy.ask <= 0 or sell.bid <= 0 or marginal_profit(buy.ask, sell.bid * rate, fa, fb) <= 0:
            if o is not None:
                out.append(self._close(key, now, "edge gone"))
            return
        max_quote = max_base = math.inf
        if self.balances is not None:
            qb = self.balances(buy.venue, symmod.quote_of(buy.symbol), "quote")
            bb = self.balances(sell.venue, symmod.base_of(sell.symbol), "base")
            max_quote = math.inf if qb is None else qb
            max_base = math.inf if bb is None else bb
        self.counters["walks"] += 1
        w = walk(buy.asks or [(buy.ask, buy.ask_size)], sell.bids or [(sell.bid, sell.bid_size)],
                 fa, fb, flat_cost=cfg.flat_cost, rate=rate, max_notional=cfg.max_notional,
                 max_quote=max_quote, max_base=max_base, level_share=cfg.max_level_share)
        if w.size <= 0 or w.notional < cfg.min_notional or w.net_bps < cfg.min_net_bps:
            if o is not None:
                why = "below min_notional" if w.size > 0 and w.notional < cfg.min_notional \
                    else "edge gone"
                out.append(self._close(key, now, why))
            return
        top_gross = gross_bps(buy.ask, sell.bid * rate)
        suspect = w.net_bps > cfg.max_plausible_bps
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
                quote_recv_ts_ns=trigger_ns, buy_book=list(buy.asks), sell_book=list(sell.bids),
                sell_symbol=sell.symbol, rate=rate, quote_ccy=symmod.quote_of(buy.symbol),
                top_gross_bps=top_gross, buy_limit=w.buy_worst, sell_limit=w.sell_worst,
                limited_by=w.limited_by,
            )
            # The emitted event is immutable from here on; the open window keeps
            # its own copy that later quotes update in place.
            self.open[key] = _Open(msgspec.structs.replace(opp))
            out.append(opp)
            return
        p = o.opp
        p.buy_price, p.sell_price, p.gross_bps, p.net_bps = buy.ask, sell.bid, w.gross_bps, w.net_bps
        p.size, p.buy_vwap, p.sell_vwap, p.profit = w.size, w.buy_vwap, w.sell_vwap, w.profit
        p.top_gross_bps, p.rate, p.limited_by = top_gross, rate, w.limited_by
        p.buy_limit, p.sell_limit = w.buy_worst, w.sell_worst
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
        return msgspec.structs.replace(
            p, event=ev, ts_ns=now, lifetime_ms=(now - p.opened_ts_ns) / 1e6,
            reason=p.reason if reason is None else reason, quote_recv_ts_ns=trigger_ns,
            buy_book=[], sell_book=[],
        )

    def _close(self, key: Key, now: int, reason: str) -> Opportunity:
        o = self.open.pop(key)
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
