"""Simulated execution: paper wallets, latency, IOC taker orders, PnL.

When execution is enabled and an opportunity OPENS (and is not suspect), the
executor sizes the trade by the same rule the detector used
(``edge.THRESHOLD_RULE``) with ``execution.min_net_bps``: it walks the levels the
opportunity's evaluation carried, taking depth while the marginal net edge is at
least that threshold, within the detector's size, ``execution.max_notional``
and the free wallet balances; the trade goes out when that size is positive,
its notional at least ``detector.min_notional`` and its net edge after
``flat_cost`` at least the threshold. It then checks the leg direction and
sends two IOC limit orders: buy on the cheaper venue at most at the worst ask
level its walk touched, sell on the richer venue at least at the worst bid. Each
order ARRIVES after its venue's latency (plus jitter) and fills against that
venue's book as it is THEN (a window that closed in the meantime fills
partially or not at all, which is the whole point of simulating it); a book
that is missing or not LIVE at arrival fills nothing.

With ``min_p_catch`` / ``min_ev`` set, the opportunity must also carry a catch
probability and an expected value (``backend/catch.py``) that clear them.

When both legs are in, the matched quantity's PnL is realized. An imbalance
(one-legged or partial) is handled by ``one_leg_policy``: "keep" leaves the
inventory on the wallet (shown as drift), "unwind" sends a third IOC order
without a limit that flattens it against the then-current book.

Accounting, per quote currency ``c`` (same-currency legs):
    sum over venues of (quote balance - initial) + open basis == realized PnL
where the open basis is what the inventory still held cost (or, short, what it
brought in). Fees are charged in the symbol's quote currency on both legs,
exactly as ``edge.py`` assumes. Balances never go negative: orders are sized to
the free balance (balance minus what in-flight orders reserved) when sent and
clipped to the balance again when they fill.

Perpetuals (issue 18; ``backend/basis.py``): a perp order trades a position held
as the balance of the asset named by the perp symbol (``BTC-USDT-PERP``, base
units, starting at 0), with fees and cash in its settlement currency. A sell
may take it below zero: that is the short a basis trade opens. The
simplification: the cash of a perp trade is booked like a spot trade's (a sell
credits the notional less the fee, a buy debits it), a short must be fully
collateralized (1x: the free settlement currency covers its notional and fee,
checked when sized, reserved in flight and checked again at the fill, like a
buy), funding is shown on the opportunity but never booked, and nothing is
liquidated. The accounting identity above holds unchanged.

``Executor`` is synchronous and clock-injected (tests drive it step by step);
``backend.roles.execute.ExecuteRole`` runs it on the bus, waiting on the engine's clock.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arbtui import symbols as symmod
from arbtui.backend.basis import instrument_assets, is_perp, short_cap
from arbtui.backend.edge import walk
from arbtui.config import ExecutionConfig, WalletConfig
from arbtui.model import Fill, OppEvent, Opportunity, Quote, WalletState

log = logging.getLogger("arbtui.executor")

#: Quantities below this are float dust, not inventory.
EPS = 1e-12
#: Orders are sized this much under a balance so float rounding can never take
#: the balance below zero.
_SAFETY = 1 - 1e-12


@dataclass
class Order:
    id: int
    opp_id: str
    venue: str
    symbol: str
    side: str  # buy | sell
    qty: float
    limit: float  # 0 = no limit (unwind)
    sent_ns: int
    arrive_ns: int
    kind: str = "leg"
    reserved: float = 0.0  # quote (buy) or base (sell) held back for this order
    trade: Trade | None = None


@dataclass
class Trade:
    opp: Opportunity
    buy: Fill | None = None
    sell: Fill | None = None
    done: bool = False
    orders: list[Order] = field(default_factory=list)


class Wallets:
    """Per venue, per asset balances. A venue's assets start from its config row
    the first time they are touched: base assets at ``base``, quote assets at ``quote``."""

    def __init__(self, cfg: ExecutionConfig) -> None:
        self.cfg = cfg
        self.bal: dict[tuple[str, str], float] = {}
        self.initial: dict[tuple[str, str], float] = {}

    def ensure(self, venue: str, asset: str, role: str) -> None:
        k = (venue, asset)
        if k not in self.bal:
            w = self.cfg.wallets.get(venue) or WalletConfig()
            # a perp position (named by its symbol) starts flat, whatever the row says
            self.bal[k] = self.initial[k] = (0.0 if is_perp(asset) else
                                             w.base if role == "base" else w.quote)

    def get(self, venue: str, asset: str) -> float:
        return self.bal.get((venue, asset), 0.0)

    def add(self, venue: str, asset: str, delta: float) -> None:
        v = self.bal.get((venue, asset), 0.0) + delta
        # Orders are sized under the balance (_SAFETY), so anything below zero
        # here is accumulated float dust, never an overdraft.
        self.bal[(venue, asset)] = v if v > 0 or v < -1e-6 else 0.0


class Executor:
    def __init__(self, cfg: ExecutionConfig, fees_bps: dict[str, float], *,
                 clock: Callable[[], int] = time.time_ns, rng: random.Random | None = None,
                 min_notional: float = 0.0, level_share: float = 1.0) -> None:
        self.cfg = cfg
        self.fees = dict(fees_bps)
        self.clock = clock
        self.rng = rng or random.Random()
        self.min_notional = min_notional  # detector.min_notional
        self.level_share = level_share  # detector.max_level_share
        self.enabled = cfg.enabled
        self.wallets = Wallets(cfg)
        self.reserved: dict[tuple[str, str], float] = {}
        self.realized: dict[str, float] = {}
        self.fees_paid: dict[str, float] = {}
        #: Signed cost basis of inventory not matched by the other leg, per currency.
        self.basis: dict[str, float] = {}
        self.counters: dict[str, int] = {
            k: 0 for k in ("trades", "orders", "filled", "partial", "rejected", "one_legged",
                           "imbalanced", "unwinds", "skipped_suspect", "skipped_threshold",
                           "skipped_direction", "skipped_size", "skipped_catch")}
        self.in_flight: dict[int, Order] = {}
        self.pnl_series: list[tuple[int, str, float]] = []  # (ts, ccy, cumulative), bounded
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ controls

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled

    def set_threshold(self, min_net_bps: float) -> None:
        self.cfg.min_net_bps = min_net_bps

    def latency_ns(self, venue: str) -> int:
        ms = self.cfg.latency_ms.get(venue, self.cfg.default_latency_ms)
        if self.cfg.jitter_ms > 0:
            ms += self.rng.uniform(0, self.cfg.jitter_ms)
        return int(ms * 1e6)

    def free(self, venue: str, asset: str) -> float:
        return max(0.0, self.wallets.get(venue, asset) - self.reserved.get((venue, asset), 0.0))

    def balance_cap(self, venue: str, asset: str, role: str) -> float | None:
        """What the detector may size against: free balance while enabled, else no cap."""
        if not self.enabled:
            return None
        self.wallets.ensure(venue, asset, role)
        return self.free(venue, asset)

    def wallet_state(self) -> WalletState:
        """The free balances as a bus message (what the detector sizes against)."""
        free: dict[str, dict[str, float]] = {}
        for (v, a) in self.wallets.bal:
            free.setdefault(v, {})[a] = self.free(v, a)
        d = WalletConfig()
        return WalletState(enabled=self.enabled, free=free,
                           initial={v: (w.base, w.quote) for v, w in self.cfg.wallets.items()},
                           default=(d.base, d.quote), ts_ns=self.clock())

    # ------------------------------------------------------------------ decisions

    def on_opportunity(self, opp: Opportunity) -> list[Order]:
        """Decide and size; returns the orders sent (with their arrival times)."""
        if not self.enabled or opp.event is not OppEvent.OPENED:
            return []
        if opp.suspect:
            self.counters["skipped_suspect"] += 1
            return []
        rate = opp.rate or 1.0
        bsym, ssym = opp.symbol, opp.sell_symbol or opp.symbol
        base, bq = instrument_assets(bsym)
        sbase, sq = instrument_assets(ssym)
        short = is_perp(ssym)  # the sell opens (or adds to) a collateralized short
        w = self.wallets
        w.ensure(opp.buy_venue, bq, "quote")
        w.ensure(opp.buy_venue, base, "base")
        w.ensure(opp.sell_venue, sbase, "base")
        w.ensure(opp.sell_venue, sq, "quote")
        fa_bps = self.fees.get(opp.buy_venue, opp.buy_fee_bps)
        fb_bps = self.fees.get(opp.sell_venue, opp.sell_fee_bps)
        fa = fa_bps / 1e4
        thr = self.cfg.min_net_bps
        sell_cap = (short_cap(self.free(opp.sell_venue, sq), opp.sell_price, 1 + fb_bps / 1e4)
                    if short else self.free(opp.sell_venue, sbase))
        # The threshold rule, on the levels of the one evaluation the event carries
        # (an event from an older producer without them: its top of book).
        sized = walk(opp.buy_book or [(opp.buy_price, opp.size)],
                     opp.sell_book or [(opp.sell_price, opp.size)], fa_bps, fb_bps,
                     min_net_bps=thr, flat_cost=opp.flat_cost, rate=rate,
                     max_notional=self.cfg.max_notional,
                     max_quote=self.free(opp.buy_venue, bq) * _SAFETY,
                     max_base=min(opp.size, sell_cap * _SAFETY),
                     level_share=self.level_share)
        if sized.size <= EPS or sized.net_bps < thr:
            self.counters["skipped_threshold"] += 1
            return []
        if ((self.cfg.min_p_catch > 0 or self.cfg.min_ev > 0)
                and not self._catchable(opp, sized.profit)):
            self.counters["skipped_catch"] += 1
            return []
        buy_limit, sell_limit = sized.buy_worst, sized.sell_worst
        # Leg direction: we BUY where the ask is lower and SELL where the bid is
        # higher. A reversed pair (a corrupt or foreign event) would turn an edge
        # into a guaranteed loss.
        if not (opp.buy_price < opp.sell_price * rate and opp.buy_vwap < opp.sell_vwap * rate
                and sized.buy_vwap <= sized.sell_vwap * rate and opp.buy_venue != opp.sell_venue):
            self.counters["skipped_direction"] += 1
            log.error("refusing %s: legs reversed (buy %s @ %s, sell %s @ %s)", opp.id,
                      opp.buy_venue, opp.buy_price, opp.sell_venue, opp.sell_price)
            return []
        # The reservation holds the whole size at the limit price: keep it inside
        # the free balance too (the walk capped the cost at the level prices).
        size = min(sized.size, self.free(opp.buy_venue, bq) / (buy_limit * (1 + fa)) * _SAFETY)
        if size <= EPS or size * sized.buy_vwap < self.min_notional:
            self.counters["skipped_size"] += 1
            return []
        now = self.clock()
        t = Trade(opp=opp)
        buy = self._order(opp, opp.buy_venue, bsym, "buy", size, buy_limit, now, t)
        sell = self._order(opp, opp.sell_venue, ssym, "sell", size, sell_limit, now, t)
        buy.reserved = size * buy_limit * (1 + fa)
        # a short holds its margin (settlement currency at the best bid, the most a
        # unit of it can need) while in flight; a spot sell holds the base it sells
        sell.reserved = size * opp.sell_price * (1 + fb_bps / 1e4) if short else size
        self._reserve(opp.buy_venue, bq, buy.reserved)
        self._reserve(opp.sell_venue, sq if short else sbase, sell.reserved)
        t.orders = [buy, sell]
        self.counters["trades"] += 1
        return [buy, sell]

    def _catchable(self, opp: Opportunity, profit: float) -> bool:
        """``[execution] min_p_catch`` / ``min_ev`` (backend/catch.py): the window must be
        likely enough to still be there when the legs arrive, and the profit of the size
        this executor would send, times that chance, worth enough. An event without an
        estimate (no model ran) does not meet a requirement."""
        pc = opp.p_catch
        if pc is None:
            return False
        return pc >= self.cfg.min_p_catch and profit * pc >= self.cfg.min_ev

    def _order(self, opp: Opportunity, venue: str, sym: str, side: str, qty: float, limit: float,
               now: int, t: Trade, kind: str = "leg") -> Order:
        o = Order(id=next(self._ids), opp_id=opp.id, venue=venue, symbol=sym, side=side, qty=qty,
                  limit=limit, sent_ns=now, arrive_ns=now + self.latency_ns(venue), kind=kind,
                  trade=t)
        self.in_flight[o.id] = o
        self.counters["orders"] += 1
        return o

    def _reserve(self, venue: str, asset: str, amount: float) -> None:
        self.reserved[(venue, asset)] = self.reserved.get((venue, asset), 0.0) + amount

    # ------------------------------------------------------------------ arrivals

    def on_arrival(self, order: Order, book: Quote | None, live: bool) -> tuple[list[Fill], list[Order]]:
        """The order reaches its venue: fill it against ``book`` (the book NOW).

        Returns the fills to publish and any follow-up (unwind) orders sent.
        """
        self.in_flight.pop(order.id, None)
        base, ccy = instrument_assets(order.symbol)
        if order.reserved:
            asset = ccy if order.side == "buy" or is_perp(order.symbol) else base
            self._reserve(order.venue, asset, -order.reserved)
            order.reserved = 0.0
        fill = self._fill(order, book, live)
        t = order.trade
        followups: list[Order] = []
        if t is not None:
            if order.kind == "leg":
                if order.side == "buy":
                    t.buy = fill
                else:
                    t.sell = fill
                if t.buy is not None and t.sell is not None and not t.done:
                    t.done = True
                    followups = self._settle(t, fill)
            else:
                self._settle_unwind(t, order, fill)
        return [fill], followups

    def _fill(self, o: Order, book: Quote | None, live: bool) -> Fill:
        base, ccy = instrument_assets(o.symbol)
        margined = is_perp(o.symbol)  # a perp sell is paid for like a buy (1x collateral)
        now = self.clock()
        f = self.fees.get(o.venue, 0.0) / 1e4

        def mk(filled: float, vwap: float, fee: float, status: str, reason: str) -> Fill:
            return Fill(opp_id=o.opp_id, venue=o.venue, symbol=o.symbol, side=o.side,
                        requested=o.qty, filled=filled, vwap=vwap, fee=fee, ts_ns=now,
                        status=status, reason=reason, kind=o.kind, fee_ccy=ccy, limit=o.limit,
                        sent_ts_ns=o.sent_ns)

        if book is None or not live:
            self.counters["rejected"] += 1
            return mk(0.0, 0.0, 0.0, "rejected", f"no LIVE {o.symbol} book on {o.venue} at arrival")
        w = self.wallets
        w.ensure(o.venue, base, "base")
        w.ensure(o.venue, ccy, "quote")
        levels = book.asks if o.side == "buy" else book.bids
        filled = notional = 0.0
        why = ""
        for px, sz in levels:
            if o.limit and (px > o.limit if o.side == "buy" else px < o.limit):
                why = "price moved past the limit"
                break
            want = o.qty - filled
            if o.side == "buy" or margined:
                afford = (w.get(o.venue, ccy) - notional * (1 + f)) / (px * (1 + f)) * _SAFETY
            else:
                afford = (w.get(o.venue, base) - filled) * _SAFETY
            q = min(sz, want, afford)
            if q > EPS:
                filled += q
                notional += q * px
            if afford <= sz and afford < want:
                why = "balance exhausted"
                break
            if o.qty - filled <= EPS * max(1.0, o.qty):
                break
        else:
            if o.qty - filled > EPS * max(1.0, o.qty):
                why = "visible depth exhausted"
        fee = notional * f
        if filled > EPS:
            if o.side == "buy":
                w.add(o.venue, ccy, -(notional + fee))
                w.add(o.venue, base, filled)
            else:
                w.add(o.venue, base, -filled)
                w.add(o.venue, ccy, notional - fee)
            self.fees_paid[ccy] = self.fees_paid.get(ccy, 0.0) + fee
        else:
            filled = notional = fee = 0.0
        if filled <= 0:
            status = "rejected"
            self.counters["rejected"] += 1
        elif o.qty - filled > EPS * max(1.0, o.qty):
            status = "partial"
            self.counters["partial"] += 1
        else:
            status = "filled"
            self.counters["filled"] += 1
            why = ""
        return mk(filled, notional / filled if filled else 0.0, fee, status,
                  why or ("" if status == "filled" else "no liquidity"))

    # ------------------------------------------------------------------ settlement

    def _settle(self, t: Trade, last: Fill) -> list[Order]:
        opp, b, s = t.opp, t.buy, t.sell
        assert b is not None and s is not None
        rate = opp.rate or 1.0
        ccy_b = instrument_assets(b.symbol)[1]
        ccy_s = instrument_assets(s.symbol)[1]
        cost_u = b.vwap * (1 + self.fees.get(b.venue, 0.0) / 1e4)  # per unit, buy ccy
        proc_u = s.vwap * (1 - self.fees.get(s.venue, 0.0) / 1e4)  # per unit, sell ccy
        m = min(b.filled, s.filled)
        pnl = m * (proc_u * rate - cost_u) if m > EPS else 0.0
        self._book_pnl(ccy_b, pnl, last.ts_ns)
        last.pnl, last.pnl_ccy = pnl, ccy_b
        d = b.filled - s.filled
        if abs(d) <= EPS * max(1.0, b.filled, s.filled):
            last.reason = last.reason or "matched"
            return []
        self.counters["imbalanced"] += 1
        if m <= EPS:
            self.counters["one_legged"] += 1
        base = symmod.base_of(b.symbol)
        if d > 0:
            # Long: bought more than sold; inventory sits on the buy venue.
            self._basis(ccy_b, d * cost_u)
            where, venue, sym, side = f"+{d:.8g} {base} on {b.venue}", b.venue, b.symbol, "sell"
        else:
            self._basis(ccy_s, d * proc_u)  # d < 0: cash received for base we no longer hold
            where, venue, sym, side = f"{d:.8g} {base} on {s.venue}", s.venue, s.symbol, "buy"
        kind = "one-legged" if m <= EPS else "partial"
        if self.cfg.one_leg_policy == "keep":
            last.reason = f"{kind}: kept {where}"
            return []
        last.reason = f"{kind}: unwinding {where}"
        self.counters["unwinds"] += 1
        u = self._order(t.opp, venue, sym, side, abs(d), 0.0, self.clock(), t, kind="unwind")
        # Remember the basis of what is being unwound so the unwind fill can
        # realize PnL against it.
        u.limit = 0.0
        t.orders.append(u)
        return [u]

    def _settle_unwind(self, t: Trade, o: Order, fill: Fill) -> None:
        b, s = t.buy, t.sell
        assert b is not None and s is not None
        ccy = instrument_assets(o.symbol)[1]
        f = self.fees.get(o.venue, 0.0) / 1e4
        if fill.filled <= EPS:
            fill.reason = (fill.reason + "; " if fill.reason else "") + "inventory kept"
            return
        if o.side == "sell":  # closing a long bought on the buy venue
            cost_u = b.vwap * (1 + self.fees.get(b.venue, 0.0) / 1e4)
            pnl = fill.filled * (fill.vwap * (1 - f) - cost_u)
            self._basis(ccy, -fill.filled * cost_u)
        else:  # buying back base sold on the sell venue
            proc_u = s.vwap * (1 - self.fees.get(s.venue, 0.0) / 1e4)
            pnl = fill.filled * (proc_u - fill.vwap * (1 + f))
            self._basis(ccy, fill.filled * proc_u)
        fill.pnl, fill.pnl_ccy = pnl, ccy
        self._book_pnl(ccy, pnl, fill.ts_ns)

    def _basis(self, ccy: str, amount: float) -> None:
        self.basis[ccy] = self.basis.get(ccy, 0.0) + amount

    def _book_pnl(self, ccy: str, pnl: float, ts: int) -> None:
        total = self.realized.get(ccy, 0.0) + pnl
        self.realized[ccy] = total
        self.pnl_series.append((ts, ccy, total))
        if len(self.pnl_series) > 5000:
            del self.pnl_series[:1000]

    # ------------------------------------------------------------------ state

    def drift(self) -> dict[str, dict[str, float]]:
        """Per venue: balance minus initial, per asset (inventory drift, fees and PnL)."""
        out: dict[str, dict[str, float]] = {}
        for (v, a), bal in sorted(self.wallets.bal.items()):
            out.setdefault(v, {})[a] = bal - self.wallets.initial[(v, a)]
        return out

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready summary for the dashboard and the status line (string keys only)."""
        by_venue = self.drift()
        net: dict[str, float] = {}
        for assets in by_venue.values():
            for a, d in assets.items():
                net[a] = net.get(a, 0.0) + d
        ccys = [c for c, v in self.realized.items() if v or len(self.realized) == 1]
        c = self.counters
        return {
            "enabled": self.enabled,
            # sub-1e-9 float dust from sizing just under a balance shows as 0
            "wallets": {v: {a: (b if abs(b) > 1e-9 else 0.0)
                            for (vv, a), b in sorted(self.wallets.bal.items()) if vv == v}
                        for v in sorted({v for v, _ in self.wallets.bal})},
            # One number only when there is one currency: PnL in USD and USDT is
            # not summed behind the operator's back.
            "pnl": self.realized[ccys[0]] if len(ccys) == 1 else (0.0 if not ccys else None),
            "pnl_ccy": ccys[0] if len(ccys) == 1 else ("" if not ccys else "mixed"),
            "fills": c["filled"] + c["partial"] + c["rejected"],
            "drift": {a: d for a, d in sorted(net.items()) if abs(d) > 1e-9},
            "drift_by_venue": by_venue,
            "realized_pnl": dict(self.realized),
            "fees_paid": dict(self.fees_paid),
            "open_basis": dict(self.basis),
            "in_flight": len(self.in_flight),
            "counters": dict(self.counters),
            "one_leg_policy": self.cfg.one_leg_policy,
        }
