"""Cross-venue opportunity search and lifecycle.

Per symbol the detector keeps the latest LIVE quote of each venue. A quote
update re-evaluates only the pairs that involve its venue (2·(V-1) pairs), so
cost is O(venues) per quote, never a scan over all symbols. An opportunity is
keyed by (symbol, buy venue, sell venue): it OPENS when its NET edge reaches
``min_net_bps``, UPDATES while it lasts (tracking the peak), and CLOSES when the
edge falls below the threshold or a leg's quote goes stale or non-LIVE.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from arbtui.backend.edge import gross_bps, net_bps, net_profit
from arbtui.config import DetectorConfig
from arbtui.model import BookState, BookStatus, Opportunity, OppEvent, Quote


class _Open:
    __slots__ = ("opp", "last_emit_net")

    def __init__(self, opp: Opportunity) -> None:
        self.opp = opp
        self.last_emit_net = opp.net_bps


class Detector:
    def __init__(self, cfg: DetectorConfig, fees_bps: dict[str, float], *,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = cfg
        self.fees = dict(fees_bps)
        self.clock = clock
        self.quotes: dict[str, dict[str, Quote]] = {}
        self.open: dict[tuple[str, str, str], _Open] = {}
        self.disabled_venues: set[str] = set()
        self.disabled_symbols: set[str] = set()
        self._seq = 0
        self.evaluated = 0

    # ------------------------------------------------------------------ inputs

    def on_quote(self, q: Quote) -> list[Opportunity]:
        self.evaluated += 1
        by_venue = self.quotes.setdefault(q.symbol, {})
        by_venue[q.venue] = q
        if q.venue in self.disabled_venues or q.symbol in self.disabled_symbols:
            return []
        now = self.clock()
        out: list[Opportunity] = []
        for other, oq in by_venue.items():
            if other == q.venue:
                continue
            self._eval(q.symbol, q, oq, now, out, q.recv_ts_ns)
            self._eval(q.symbol, oq, q, now, out, q.recv_ts_ns)
        return out

    def on_book_state(self, st: BookStatus) -> list[Opportunity]:
        """A book left LIVE: forget its quote and close what depended on it, at once."""
        if st.state is BookState.LIVE:
            return []
        by_venue = self.quotes.get(st.symbol)
        if by_venue is not None:
            by_venue.pop(st.venue, None)
        return self._close_where(lambda k: k[0] == st.symbol and st.venue in (k[1], k[2]),
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
        return self._close_where(lambda k: k[0] == symbol, f"{symbol} disabled")

    def set_threshold(self, min_net_bps: float) -> list[Opportunity]:
        self.cfg.min_net_bps = min_net_bps
        out: list[Opportunity] = []
        now = self.clock()
        for key, o in list(self.open.items()):
            if o.opp.net_bps < min_net_bps:
                out.append(self._close(key, now, "threshold raised"))
        return out

    def sweep(self) -> list[Opportunity]:
        """Close windows whose legs went stale by age (no new quote to trigger it)."""
        now = self.clock()
        max_age = self.cfg.max_quote_age_ms * 1e6
        out: list[Opportunity] = []
        for key, o in list(self.open.items()):
            sym, bv, sv = key
            qs = self.quotes.get(sym, {})
            for v in (bv, sv):
                q = qs.get(v)
                if q is None or now - q.recv_ts_ns > max_age:
                    out.append(self._close(key, now, f"{v} quote stale"))
                    break
        return out

    # ------------------------------------------------------------------ core

    def _eval(self, sym: str, buy: Quote, sell: Quote, now: int, out: list[Opportunity],
              trigger_ns: int) -> None:
        key = (sym, buy.venue, sell.venue)
        cfg = self.cfg
        max_age = cfg.max_quote_age_ms * 1e6
        fresh = (buy.venue not in self.disabled_venues and sell.venue not in self.disabled_venues
                 and now - buy.recv_ts_ns <= max_age and now - sell.recv_ts_ns <= max_age)
        o = self.open.get(key)
        if not fresh:
            if o is not None:
                out.append(self._close(key, now, "quote stale"))
            return
        ask, bid = buy.ask, sell.bid
        fa = self.fees.get(buy.venue, 0.0)
        fb = self.fees.get(sell.venue, 0.0)
        size = min(buy.ask_size, sell.bid_size, cfg.max_notional / ask)
        net = net_bps(ask, bid, fa, fb, size=size, flat_cost=cfg.flat_cost) if size > 0 else -1e9
        if net < cfg.min_net_bps:
            if o is not None:
                out.append(self._close(key, now, "edge gone"))
            return
        gross = gross_bps(ask, bid)
        profit = net_profit(ask, bid, size, fa, fb, cfg.flat_cost)
        if o is None:
            self._seq += 1
            opp = Opportunity(
                id=f"{sym}:{buy.venue}>{sell.venue}:{now}", event=OppEvent.OPENED, symbol=sym,
                buy_venue=buy.venue, sell_venue=sell.venue, buy_price=ask, sell_price=bid,
                gross_bps=gross, net_bps=net, buy_fee_bps=fa, sell_fee_bps=fb, size=size,
                buy_vwap=ask, sell_vwap=bid, profit=profit, peak_net_bps=net, peak_profit=profit,
                opened_ts_ns=now, ts_ns=now, suspect=net > cfg.max_plausible_bps,
                reason="implausible edge" if net > cfg.max_plausible_bps else "",
                quote_recv_ts_ns=trigger_ns, buy_book=list(buy.asks), sell_book=list(sell.bids),
            )
            self.open[key] = _Open(opp)
            out.append(opp)
            return
        p = o.opp
        p.buy_price, p.sell_price, p.gross_bps, p.net_bps = ask, bid, gross, net
        p.size, p.buy_vwap, p.sell_vwap, p.profit = size, ask, bid, profit
        p.peak_net_bps = max(p.peak_net_bps, net)
        p.peak_profit = max(p.peak_profit, profit)
        p.suspect = p.suspect or net > cfg.max_plausible_bps
        # Emit an update only when the edge moved materially, so a window that
        # lasts seconds does not flood the bus with identical events.
        if abs(net - o.last_emit_net) >= 0.5:
            o.last_emit_net = net
            out.append(self._event(p, OppEvent.UPDATED, now, trigger_ns))

    def _event(self, p: Opportunity, ev: OppEvent, now: int, trigger_ns: int,
               reason: str | None = None) -> Opportunity:
        return Opportunity(
            id=p.id, event=ev, symbol=p.symbol, buy_venue=p.buy_venue, sell_venue=p.sell_venue,
            buy_price=p.buy_price, sell_price=p.sell_price, gross_bps=p.gross_bps,
            net_bps=p.net_bps, buy_fee_bps=p.buy_fee_bps, sell_fee_bps=p.sell_fee_bps,
            size=p.size, buy_vwap=p.buy_vwap, sell_vwap=p.sell_vwap, profit=p.profit,
            peak_net_bps=p.peak_net_bps, peak_profit=p.peak_profit, opened_ts_ns=p.opened_ts_ns,
            ts_ns=now, lifetime_ms=(now - p.opened_ts_ns) / 1e6, suspect=p.suspect,
            reason=p.reason if reason is None else reason, quote_recv_ts_ns=trigger_ns,
        )

    def _close(self, key: tuple[str, str, str], now: int, reason: str) -> Opportunity:
        o = self.open.pop(key)
        return self._event(o.opp, OppEvent.CLOSED, now, o.opp.quote_recv_ts_ns, reason)

    def _close_where(self, pred, reason: str) -> list[Opportunity]:
        now = self.clock()
        return [self._close(k, now, reason) for k in list(self.open) if pred(k)]
