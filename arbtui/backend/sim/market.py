"""Market model behind the venue simulator.

One fair price per symbol moves as a random walk in discrete ticks. Each venue
quotes around its *view* of the fair price with its own spread, depth and size
noise. A dislocation is a jump in the fair price that one venue reacts to late
(20-500 ms), so real cross-venue windows open and close. Everything is driven
by one seeded RNG and a tick counter, never by the wall clock, so a seed gives
the same market every run.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field

BASE_PRICES = {"BTC": 65000.0, "ETH": 1900.0, "SOL": 150.0, "XRP": 0.55, "DOGE": 0.12,
               "ADA": 0.45, "LTC": 80.0, "AVAX": 30.0, "DOT": 6.0, "LINK": 14.0,
               "USDT": 1.0, "USDC": 1.0}  # stablecoins: the conversion books (USDT-USD)

# Per-venue personality: spread in bps, level count, tick multiplier, size scale.
VENUE_PROFILE = {
    "binance": (0.4, 1.0, 1.5),
    "coinbase": (0.8, 1.0, 1.0),
    "kraken": (1.2, 1.0, 0.8),
    "bybit": (0.6, 1.0, 1.2),
    "okx": (0.6, 1.0, 1.2),
    "gemini": (1.5, 1.0, 0.6),
}


def price_tick(symbol: str) -> float:
    base = BASE_PRICES.get(symbol.split("-")[0], 100.0)
    if base >= 1000:
        return 0.01
    if base >= 10:
        return 0.01
    if base >= 1:
        return 0.001
    return 0.00001


def decimals(step: float) -> int:
    return max(0, -math.floor(math.log10(step) + 1e-9))


@dataclass
class Dislocation:
    venue: str
    until_tick: int
    frozen_price: float


@dataclass
class VenueBook:
    """The book a venue shows for one symbol at one tick: price string -> size string."""

    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)

    def sorted_bids(self) -> list[tuple[str, str]]:
        return sorted(self.bids.items(), key=lambda kv: -float(kv[0]))

    def sorted_asks(self) -> list[tuple[str, str]]:
        return sorted(self.asks.items(), key=lambda kv: float(kv[0]))


def diff(old: VenueBook, new: VenueBook) -> list[tuple[str, str, str]]:
    """Changes from ``old`` to ``new`` as (side, px, qty) with "0" for removals."""
    out: list[tuple[str, str, str]] = []
    for side, o, n in (("bid", old.bids, new.bids), ("ask", old.asks, new.asks)):
        for px, q in n.items():
            if o.get(px) != q:
                out.append((side, px, q))
        for px in o:
            if px not in n:
                out.append((side, px, "0"))
    return out


class MarketModel:
    def __init__(self, symbols: list[str], venues: list[str], *, seed: int = 7,
                 volatility_bps: float = 0.5, dislocation_rate: float = 0.5,
                 tick_ms: float = 50.0, levels: int = 20,
                 dislocation_bps: tuple[float, float] = (5.0, 80.0)) -> None:
        self.symbols = list(symbols)
        self.venues = list(venues)
        self.rng = random.Random(seed)
        self.vol = volatility_bps / 1e4
        self.p_dislocate = dislocation_rate * tick_ms / 1000.0
        self.tick_ms = tick_ms
        self.levels = levels
        self.dislocation_bps = dislocation_bps
        self.tick = 0
        self.fair = {s: BASE_PRICES.get(s.split("-")[0], 100.0) for s in self.symbols}
        self.dislocations: dict[str, list[Dislocation]] = {s: [] for s in self.symbols}
        # Each venue's own noise around fair, re-drawn slowly.
        self.noise = {(v, s): 0.0 for v in self.venues for s in self.symbols}
        self.books: dict[tuple[str, str], VenueBook] = {}
        self.base = dict(self.fair)
        self.grid = {s: max(1, round(p * 0.5e-4 / price_tick(s))) for s, p in self.fair.items()}
        self._rebuild_all()

    def venue_price(self, venue: str, symbol: str) -> float:
        for d in self.dislocations[symbol]:
            if d.venue == venue:
                return d.frozen_price
        return self.fair[symbol] * (1 + self.noise[(venue, symbol)])

    def step(self) -> None:
        """Advance one tick: walk fair prices, maybe open a dislocation, rebuild books."""
        self.tick += 1
        rng = self.rng
        for s in self.symbols:
            self.dislocations[s] = [d for d in self.dislocations[s] if d.until_tick > self.tick]
            if len(self.venues) > 1 and rng.random() < self.p_dislocate:
                lag_ms = rng.uniform(20, 500)
                v = rng.choice(self.venues)
                if not any(d.venue == v for d in self.dislocations[s]):
                    frozen = self.venue_price(v, s)
                    jump = rng.uniform(*self.dislocation_bps) / 1e4 * rng.choice((-1, 1))
                    self.fair[s] *= 1 + jump
                    until = self.tick + max(1, int(lag_ms / self.tick_ms))
                    self.dislocations[s].append(Dislocation(v, until, frozen))
            self.fair[s] *= 1 + rng.gauss(0.0, self.vol)
            for v in self.venues:
                if rng.random() < 0.1:
                    self.noise[(v, s)] = rng.gauss(0.0, 0.5e-4)
        self._rebuild_all()

    def _rebuild_all(self) -> None:
        for v in self.venues:
            for s in self.symbols:
                self.books[(v, s)] = self._build(v, s)

    def _build(self, venue: str, symbol: str) -> VenueBook:
        spread_bps, _, size_scale = VENUE_PROFILE.get(venue, (1.0, 1.0, 1.0))
        mid = self.venue_price(venue, symbol)
        tick = price_tick(symbol)
        dp = decimals(tick)
        # Levels sit on a grid ~0.5 bps apart so a small move shifts a few levels
        # (a realistic delta stream) instead of re-pricing the whole book.
        step = self.grid[symbol]
        half = max(tick, mid * spread_bps / 2e4)
        best_bid = math.floor((mid - half) / tick / step) * step
        best_ask = math.ceil((mid + half) / tick / step) * step
        if best_ask <= best_bid:
            best_ask = best_bid + step
        base_size = 50_000.0 / self.base[symbol] * size_scale  # ~$50k per level, fixed so sizes persist
        book = VenueBook()
        # Sizes depend on (price level, a slowly changing epoch) so most levels
        # persist between ticks and the stream carries real deltas, not snapshots.
        for i in range(self.levels):
            for is_bid, idx in ((True, best_bid - i * step), (False, best_ask + i * step)):
                epoch = (self.tick + idx % 20) // 20  # staggered: ~1 in 20 levels resized per tick
                # crc32, not hash(): str hashes are salted per process (PYTHONHASHSEED).
                h = random.Random(zlib.crc32(f"{venue}|{symbol}|{idx}|{epoch}".encode()))
                size = base_size * (0.2 + h.random() * 1.8)
                px = f"{idx * tick:.{dp}f}"
                qty = f"{size:.8f}"
                (book.bids if is_bid else book.asks)[px] = qty
        return book
