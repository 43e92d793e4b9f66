"""A synthetic market stream every benchmark variant is fed the same way.

Each message is one book change on one (venue, symbol) that moves that venue's
top of book, so one message = one quote for every variant and "quotes/s" means
the same thing for arbtui and for the baseline. Prices sit on a 0.5 bps grid;
a symbol's fair price jumps now and then and each venue follows it only when
its own next "catch-up" message comes, so real cross-venue windows (above the
5 bps baseline threshold and above arbtui's net threshold with the bench fees)
open and close all the time. Seeded: the same stream every run.

The stream is rendered three ways from one source of truth:
- Coinbase Advanced Trade ``l2_data`` frames (snapshot per product, then
  updates) for arbtui's real adapter path (parse -> book -> quote);
- ready ``Quote`` objects (bus + detector only, when no adapter is wanted);
- Binance-style trade messages for the baseline (its producer reads the last
  trade price of each message).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import msgspec

from arbtui.model import Quote

LEVELS = 20
QUOTE_DEPTH = 10
_BASES = [("BTC", 65000.0), ("ETH", 1900.0), ("SOL", 150.0), ("LTC", 80.0), ("LINK", 14.0)]


def symbols(n: int) -> list[str]:
    out = []
    for i in range(n):
        base, _ = _BASES[i % len(_BASES)]
        out.append(f"{base}-USD" if i < len(_BASES) else f"{base}{i // len(_BASES)}-USD")
    return out


def venues(n: int) -> list[str]:
    # Labels, not real venue names: every synthetic venue speaks the Coinbase format.
    return [f"venue{i + 1}" for i in range(n)]


def _base_price(sym: str) -> float:
    for b, p in _BASES:
        if sym.startswith(b):
            return p
    return 100.0


@dataclass
class _VBook:
    bid: int  # best bid grid index
    qty: dict[int, str] = field(default_factory=dict)


@dataclass
class Msg:
    venue: int
    symbol: int
    updates: list[tuple[str, str, str]]  # (side "bid"|"offer", px, qty) absolute, "0" deletes
    bids: list[tuple[str, str]]  # top QUOTE_DEPTH after the change
    asks: list[tuple[str, str]]
    trade_px: str


class Market:
    """Deterministic generator of top-changing book messages."""

    SPREAD = 2  # grid steps between best bid and best ask

    def __init__(self, n_venues: int, n_symbols: int, seed: int = 7,
                 jump_rate: float = 0.01, catch_up: float = 0.25) -> None:
        self.venues = venues(n_venues)
        self.symbols = symbols(n_symbols)
        self.rng = random.Random(seed)
        self.jump_rate = jump_rate
        self.catch_up = catch_up
        self.step: list[float] = []
        self.dp: list[int] = []
        self.fair: list[int] = []
        for s in self.symbols:
            p = _base_price(s)
            step = p * 0.5e-4
            dp = 2 if p >= 10 else 4
            step = round(step, dp) or 10 ** -dp
            self.step.append(step)
            self.dp.append(dp)
            self.fair.append(int(p / step))
        self.books: list[list[_VBook]] = []
        for vi in range(n_venues):
            row = []
            for si in range(n_symbols):
                vb = _VBook(self.fair[si] - 1)
                for i in range(LEVELS):
                    vb.qty[vb.bid - i] = self._qty()
                    vb.qty[vb.bid + self.SPREAD + i] = self._qty()
                row.append(vb)
            self.books.append(row)

    def _qty(self) -> str:
        return f"{self.rng.uniform(0.05, 3.0):.8f}"

    def px(self, si: int, idx: int) -> str:
        return f"{idx * self.step[si]:.{self.dp[si]}f}"

    def _tops(self, si: int, vb: _VBook) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        bids = [(self.px(si, vb.bid - i), vb.qty[vb.bid - i]) for i in range(QUOTE_DEPTH)]
        a = vb.bid + self.SPREAD
        asks = [(self.px(si, a + i), vb.qty[a + i]) for i in range(QUOTE_DEPTH)]
        return bids, asks

    def snapshot(self, vi: int, si: int) -> list[tuple[str, str, str]]:
        vb = self.books[vi][si]
        out = []
        for idx in sorted(vb.qty, reverse=True):
            side = "bid" if idx <= vb.bid else "offer"
            out.append((side, self.px(si, idx), vb.qty[idx]))
        return out

    def next(self, vi: int, si: int) -> Msg:
        rng = self.rng
        if rng.random() < self.jump_rate:
            self.fair[si] += rng.choice((-1, 1)) * rng.randint(10, 40)  # 5-20 bps
        vb = self.books[vi][si]
        target = self.fair[si] - 1
        ups: list[tuple[str, str, str]] = []
        if vb.bid != target and rng.random() < self.catch_up:
            new = target
            old_levels = set(vb.qty)
            new_bids = {new - i for i in range(LEVELS)}
            new_asks = {new + self.SPREAD + i for i in range(LEVELS)}
            for idx in sorted(old_levels - new_bids - new_asks):
                del vb.qty[idx]
                side = "bid" if idx <= vb.bid else "offer"
                ups.append((side, self.px(si, idx), "0"))
            for idx in sorted(new_bids | new_asks):
                side = "bid" if idx <= new else "offer"
                flipped = idx in vb.qty and (side == "bid") != (idx <= vb.bid)
                if flipped:
                    # The level changes side: delete it on the old side first, or the
                    # receiving book would hold it on both sides (crossed).
                    ups.append(("offer" if side == "bid" else "bid", self.px(si, idx), "0"))
                if idx not in vb.qty or flipped:
                    vb.qty[idx] = self._qty()
                    ups.append((side, self.px(si, idx), vb.qty[idx]))
            vb.bid = new
        else:
            # A size change at the best bid or best ask: the top moves, the prices don't.
            if rng.random() < 0.5:
                idx, side = vb.bid, "bid"
            else:
                idx, side = vb.bid + self.SPREAD, "offer"
            vb.qty[idx] = self._qty()
            ups.append((side, self.px(si, idx), vb.qty[idx]))
        bids, asks = self._tops(si, vb)
        trade = bids[0][0] if rng.random() < 0.5 else asks[0][0]
        return Msg(vi, si, ups, bids, asks, trade)

    def stream(self, n: int) -> list[Msg]:
        """``n`` messages, round-robin over venues, random symbol each time."""
        out = []
        nv, ns = len(self.venues), len(self.symbols)
        for i in range(n):
            out.append(self.next(i % nv, self.rng.randrange(ns)))
        return out


# ---------------------------------------------------------------------- renderings

_TS = "2026-11-25T20:00:00.000000000Z"
_enc = msgspec.json.Encoder().encode


def coinbase_frame(m: Market, msg: Msg, seq: int, snapshot: bool = False) -> str:
    sym = m.symbols[msg.symbol]
    ups = [{"side": s, "event_time": _TS, "price_level": p, "new_quantity": q}
           for s, p, q in msg.updates]
    return _enc({
        "channel": "l2_data", "client_id": "", "timestamp": _TS, "sequence_num": seq,
        "events": [{"type": "snapshot" if snapshot else "update", "product_id": sym,
                    "updates": ups}],
    }).decode()


def coinbase_snapshot_frames(m: Market, vi: int, seq0: int) -> list[str]:
    out = []
    for si in range(len(m.symbols)):
        msg = Msg(vi, si, m.snapshot(vi, si), [], [], "")
        out.append(coinbase_frame(m, msg, seq0 + si, snapshot=True))
    return out


def quote_of(m: Market, msg: Msg) -> Quote:
    fb = [(float(p), float(q)) for p, q in msg.bids]
    fa = [(float(p), float(q)) for p, q in msg.asks]
    return Quote(venue=m.venues[msg.venue], symbol=m.symbols[msg.symbol],
                 bid=fb[0][0], bid_size=fb[0][1], ask=fa[0][0], ask_size=fa[0][1],
                 bids=fb, asks=fa, bid_px=msg.bids[0][0], bid_qty=msg.bids[0][1],
                 ask_px=msg.asks[0][0], ask_qty=msg.asks[0][1])


def baseline_trade(m: Market, msg: Msg, trade_id: int) -> str:
    """A Binance ``@trade``-shaped message, as the tutorial's producer consumed.

    Every synthetic venue spells the symbol the same way (``BTCUSD``): the
    baseline keys its cache by the venue's own symbol and does no normalization,
    so this is its best case (otherwise it would find no cross-venue pairs).
    """
    sym = m.symbols[msg.symbol].replace("-", "")
    return json.dumps({"e": "trade", "E": 1764100800000, "s": sym, "t": trade_id,
                       "p": msg.trade_px, "q": msg.bids[0][1], "T": 1764100800000,
                       "m": False, "M": True}, separators=(",", ":"))
