"""Opportunity windows: one direction evaluated, and the window it opens, updates
or closes.

The threshold is the per-unit hurdle of ``edge.py`` (``edge.THRESHOLD_RULE``):
the walk takes depth while the marginal net edge is at least ``min_net_bps``,
and a window needs a positive size, ``min_notional`` and a net edge after
``flat_cost`` still at least ``min_net_bps``.

A window is keyed by (symbol, buy venue, sell venue, sell symbol): it OPENS when
the rule holds, UPDATES while it lasts (tracking peak net and peak profit; an
UPDATED event only when the net edge moved ``UPDATE_STEP_BPS``), and CLOSES when
the rule stops holding, a leg goes stale or non-LIVE, or its conversion rate
disappears; the CLOSED event carries the lifetime in ms, which also lands in a
per-venue-pair lifetime histogram. Every event carries the numbers of one
evaluation (``model.Opportunity``).

A depth walk whose inputs (both level lists and every parameter) equal the last
walk of that direction reuses its result: a liveness refresh (same levels, newer
``live_ts_ns``) or a quote that changed only the other side costs an identity or
equality check, not a walk.

``Windows`` is a part of ``detector.Detector`` (a base class: the per-quote path
calls ``self._eval`` with no extra hop); it reads the detector's ``cfg``, ``open``,
``counters``, ``balances``, ``basis`` and ``catch``.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import msgspec

from arbtui.backend import basis as basismod
from arbtui.backend.detector_index import INF, Dir, Key, Leg
from arbtui.backend.edge import Walk, gross_bps, marginal_bps, walk
from arbtui.model import OppEvent, Opportunity

#: Upper edges (ms) of the lifetime histogram buckets; the last bucket is open.
LIFETIME_BUCKETS_MS: tuple[float, ...] = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)

#: An UPDATED event is emitted only when the net edge moved this much, so a
#: window that lasts seconds does not flood the bus with identical events.
UPDATE_STEP_BPS = 0.5


class Window:
    """An open window: its event record (``opp``, updated in place by later quotes;
    each emitted event is a copy), its two books, and the inputs last applied."""

    __slots__ = ("ba", "buy", "last_emit_net", "opp", "rate", "sb", "sell", "w")

    def __init__(self, opp: Opportunity, buy: Leg, sell: Leg) -> None:
        self.opp = opp
        self.last_emit_net = opp.net_bps
        self.buy = buy
        self.sell = sell
        #: the Walk, buy ask, sell bid and rate last applied to ``opp``
        self.w: Walk | None = None
        self.ba = self.sb = self.rate = math.nan


class Windows:
    """Direction evaluation and the window lifecycle of a ``detector.Detector``."""

    cfg: Any
    open: dict[Key, Window]
    counters: dict[str, int]
    lifetimes: dict[tuple[str, str], list[int]]
    balances: Any
    basis: Any
    catch: Any
    clock: Any
    _thr: float
    _seq: int

    def _eval(self, bl: Leg, sl: Leg, rate: float, now: int, out: list[Opportunity],
              trigger_ns: int) -> None:
        """Evaluate buying at ``bl``'s asks and selling at ``sl``'s bids.

        ``rate`` converts the sell venue's currency into the buy venue's.
        """
        d = bl.dirs.get(sl)
        if d is None:
            d = bl.dirs[sl] = Dir(bl, sl)
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
        max_quote = max_base = INF
        if self.balances is not None:
            qb = self.balances(buy.venue, bl.ccy, "quote")
            bb = (self.balances(sell.venue, sl.asset, "base") if not sl.perp else  # a short:
                  basismod.short_cap(self.balances(sell.venue, sl.ccy, "quote"), sb, sl.ma))
            max_quote = INF if qb is None else qb
            max_base = INF if bb is None else bb
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
            self.open[d.key] = d.o = o = Window(msgspec.structs.replace(opp), bl, sl)
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

    def lifetime_histograms(self) -> dict[str, list[int]]:
        return {f"{b}>{s}": list(h) for (b, s), h in sorted(self.lifetimes.items())}
