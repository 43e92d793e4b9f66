"""Market model behind the venue simulator, calibrated on real recordings.

One fair price per symbol follows a random walk whose per-second volatility is fitted
to the recordings (``calibration.json``, written by ``python tools/fit_market.py``).
Each venue quotes the fair price as it was ``lag`` ms ago (the price leader has no lag,
the others follow; a prior, since no two venues were recorded at once), plus a small
slowly reverting deviation of its own, with the fitted top-of-book spread and a book whose
level spacing and level sizes follow the fitted depth profile.

Net opportunities come from *dislocations*: a sweep knocks one venue's quotes away from
the rest by a log-normal amount (usually a few bps, now and then tens) and makers refill
it with a half-life of a few hundred ms. The fair price itself does not jump, so a
two-minute demo moves BTC by tenths of a percent, as in a quiet real hour.

Perpetual futures (``BASE-QUOTE-PERP`` symbols, served only by perp venues) track the
spot fair price of their underlying times ``1 + basis``, where the basis (bps) is its own
slowly reverting process around a small contango (``PERP_BASIS``). Funding follows it as
the venues compute it: the premium (an average of the basis) plus the interest rate,
clamped (``perp_state``). Perps draw from the RNG only when perp symbols are present, so
a spot-only market is the same with or without this code.

Everything is driven by one seeded RNG and a tick counter, never by the wall clock, so a
seed gives the same market every run.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from collections import deque
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from arbtui import venues as _venues

BASE_PRICES = {"BTC": 65000.0, "ETH": 1900.0, "SOL": 150.0, "XRP": 0.55, "DOGE": 0.12,
               "ADA": 0.45, "LTC": 80.0, "AVAX": 30.0, "DOT": 6.0, "LINK": 14.0,
               "USDT": 1.0, "USDC": 1.0}  # stablecoins: the conversion books (USDT-USD)


@cache
def calibration() -> dict[str, Any]:
    """The fitted parameters shipped with the package (``calibration.json``)."""
    return json.loads(resources.files("arbtui.backend.sim").joinpath("calibration.json")
                      .read_text(encoding="utf-8"))


def asset_params(symbol: str) -> dict[str, Any]:
    assets = calibration()["model"]["assets"]
    return assets.get(symbol.split("-")[0], assets["default"])


def _venue_prior(name: str, venue: str, default: float) -> float:
    pri = calibration()["priors"][name]
    if venue not in pri:
        # A perp venue has no recording of its own: it takes its exchange's spot prior.
        venue = _spot_of(venue)
    return float(pri.get(venue, default))


def _spot_of(venue: str) -> str:
    try:
        return _venues.get(venue).spot_venue or venue
    except KeyError:
        return venue


def serves(venue: str, symbol: str) -> bool:
    """A perp venue serves ``-PERP`` symbols, every other venue the spot ones (names
    outside the registry, as some tests use, are spot)."""
    try:
        return _venues.get(venue).serves(symbol)
    except KeyError:
        return not _venues.is_perp(symbol)


#: The perp basis process (bps over the underlying's fair price): mean (a small
#: contango, as perps mostly trade), standard deviation and half-life. Priors, not
#: fitted: no perp session was recorded.
PERP_BASIS = {"mean_bps": 4.0, "std_bps": 8.0, "halflife_s": 90.0}
#: Funding as Binance/Bybit/OKX compute it: rate = premium + clamp(interest - premium,
#: -CLAMP, +CLAMP), interest 0.01 % per 8 h, clamp 0.05 %; the premium is the basis
#: averaged over ``PREMIUM_AVG_S`` (the venues average it over the funding interval).
FUNDING_INTEREST = 0.0001
FUNDING_CLAMP = 0.0005
PREMIUM_AVG_S = 60.0


def next_funding_ms(now_ms: int, interval_h: float = 8.0) -> int:
    """The next funding time after ``now_ms``: funding settles at every multiple of
    the interval since 00:00 UTC (00:00, 08:00, 16:00 for 8 h)."""
    step = int(interval_h * 3600_000)
    return (now_ms // step + 1) * step


def funding_rate(premium: float) -> float:
    """The funding rate for a premium (fractions), by the venues' formula."""
    return premium + min(FUNDING_CLAMP, max(-FUNDING_CLAMP, FUNDING_INTEREST - premium))


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
    """One venue's quotes knocked ``bps`` away from the rest, decaying as makers refill."""

    venue: str
    bps: float


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
    """``volatility_bps`` (per second), ``dislocation_rate`` (per symbol per second) and
    ``dislocation_bps`` (median size) default to the calibration; pass numbers to
    override them, e.g. a livelier demo or ``dislocation_rate=0`` for book-only tests."""

    def __init__(self, symbols: list[str], venues: list[str], *, seed: int = 7,
                 volatility_bps: float | None = None, dislocation_rate: float | None = None,
                 tick_ms: float = 50.0, levels: int = 20,
                 dislocation_bps: float | None = None) -> None:
        cal = calibration()
        disl = cal["priors"]["dislocation"]
        dev = cal["model"]["venue_dev"]
        # Spot symbols first: a perp's fair price is read from its underlying's.
        self.symbols = ([s for s in symbols if not _venues.is_perp(s)]
                        + [s for s in symbols if _venues.is_perp(s)])
        self.venues = list(venues)
        #: symbol -> the venues that quote it (spot venues spot, perp venues perps)
        self.venues_for = {s: [v for v in self.venues if serves(v, s)] for s in self.symbols}
        self.rng = random.Random(seed)
        self.tick_ms = tick_ms
        self.levels = levels
        self.tick = 0
        dt = tick_ms / 1000.0
        rate = disl["rate_per_s"] if dislocation_rate is None else dislocation_rate
        self.p_dislocate = min(1.0, rate * dt)
        self.disl_median = disl["median_bps"] if dislocation_bps is None else dislocation_bps
        self.disl_sigma = disl["sigma_ln"]
        self.disl_decay = 0.5 ** (tick_ms / disl["halflife_ms"])
        # Venue deviation: an AR(1) (discrete Ornstein-Uhlenbeck) around the lagged fair.
        self.dev_a = 0.5 ** (tick_ms / dev["halflife_ms"])
        # 1 s variance of a deviation of std 1 (an AR(1) with this half-life)
        dev_unit_1s = 2 * (1 - 0.5 ** (1000.0 / dev["halflife_ms"]))
        self.vol: dict[str, float] = {}
        self.dev_sd: dict[str, float] = {}
        for s in self.symbols:
            if volatility_bps is not None:
                target = volatility_bps / 1e4
            else:
                target = asset_params(s)["vol_bps_per_s"] / 1e4
            # A venue's mid moves with the fair price plus its own deviation, and the
            # fitted number is a venue mid's volatility: the deviation takes at most half
            # of its variance (a still market, like the recorded ETH, keeps venues close)
            # and the fair price's walk gets the rest.
            sd = min(dev["std_bps"] / 1e4, target * math.sqrt(0.5 / dev_unit_1s))
            self.dev_sd[s] = sd
            self.vol[s] = math.sqrt(max(target ** 2 - sd ** 2 * dev_unit_1s, 0.0) * dt)
        self.lag_ticks = {v: round(_venue_prior("venue_lag_ms", v, 100.0) / tick_ms)
                          for v in self.venues}
        hist = max(self.lag_ticks.values(), default=0) + 1
        self.fair = {s: BASE_PRICES.get(s.split("-")[0], 100.0) for s in self.symbols}
        # Perps: the spot symbol whose fair price each follows (its underlying, else
        # any of the same base; None: it walks on its own), its basis and premium.
        self.perp_ref: dict[str, str | None] = {}
        self.basis_bps: dict[str, float] = {}
        self.premium: dict[str, float] = {}
        pb = PERP_BASIS
        self.basis_a = 0.5 ** (tick_ms / (pb["halflife_s"] * 1000.0))
        self.premium_a = math.exp(-tick_ms / (PREMIUM_AVG_S * 1000.0))
        for s in self.symbols:
            if not _venues.is_perp(s):
                continue
            base = s.split("-")[0]
            und = _venues.underlying(s)
            ref = und if und in self.fair else next(
                (x for x in self.symbols if not _venues.is_perp(x) and x.split("-")[0] == base),
                None)
            self.perp_ref[s] = ref
            self.basis_bps[s] = pb["mean_bps"] + self.rng.gauss(0.0, pb["std_bps"])
            self.premium[s] = self.basis_bps[s] / 1e4
            if ref is not None:
                self.fair[s] = self._perp_fair(s, self.fair[s])
        self.history = {s: deque([p] * hist, maxlen=hist) for s, p in self.fair.items()}
        self.dislocations: dict[str, list[Dislocation]] = {s: [] for s in self.symbols}
        self.noise = {(v, s): self.rng.gauss(0.0, self.dev_sd[s])
                      for v in self.venues for s in self.symbols if v in self.venues_for[s]}
        # Quotes are sticky, as on a real venue: a top moves when the venue requotes (at
        # the fitted top-change rate), when a sweep hits it, or when it has drifted
        # further than a maker would leave it (it would be picked off).
        self.requote_p = {s: min(1.0, asset_params(s).get("top_changes_per_s", 20.0) * dt)
                          for s in self.symbols}
        self.stale_bps = float(cal["priors"].get("requote", {}).get("stale_bps", 2.0))
        self.quoted = {(v, s): self.venue_price(v, s)
                       for v in self.venues for s in self.symbols if v in self.venues_for[s]}
        self.books: dict[tuple[str, str], VenueBook] = {}
        self._levels: dict[tuple[str, str, int, int], tuple[str, str]] = {}
        self.base = dict(self.fair)
        # Deeper levels sit on a grid at the fitted level spacing, fixed in price, so a
        # small move shifts a few levels (a realistic delta stream) instead of re-pricing
        # the whole book.
        self.grid = {s: max(1, round(p * asset_params(s)["level_gap_bps"] / 1e4 / price_tick(s)))
                     for s, p in self.fair.items()}
        self._rebuild_all()

    def _perp_fair(self, s: str, own: float) -> float:
        ref = self.perp_ref[s]
        under = self.fair[ref] if ref is not None else own
        return under * (1 + self.basis_bps[s] / 1e4)

    def perp_state(self, symbol: str) -> dict[str, float]:
        """A perp's venue-wide state now: ``mark`` (its fair price), ``index`` (the
        underlying's fair price), ``basis_bps``, and the funding ``rate`` for the
        next interval (``funding_rate`` of the averaged premium)."""
        mark = self.fair[symbol]
        index = mark / (1 + self.basis_bps[symbol] / 1e4)
        return {"mark": mark, "index": index, "basis_bps": self.basis_bps[symbol],
                "rate": funding_rate(self.premium[symbol])}

    def venue_price(self, venue: str, symbol: str) -> float:
        """The mid this venue quotes now: the fair price ``lag`` ago, its own deviation,
        and any dislocation it is in."""
        h = self.history[symbol]
        lagged = h[-1 - min(self.lag_ticks[venue], len(h) - 1)]
        bps = sum(d.bps for d in self.dislocations[symbol] if d.venue == venue)
        return lagged * (1 + self.noise[(venue, symbol)] + bps / 1e4)

    def step(self) -> None:
        """Advance one tick: walk fair prices, age and maybe open dislocations, rebuild."""
        self.tick += 1
        rng = self.rng
        a = self.dev_a
        for s in self.symbols:
            b = self.dev_sd[s] * math.sqrt(1 - a ** 2)
            live = []
            for d in self.dislocations[s]:
                d.bps *= self.disl_decay
                if abs(d.bps) >= 0.05:
                    live.append(d)
            self.dislocations[s] = live
            swept = ""
            vs = self.venues_for[s]
            if len(vs) > 1 and rng.random() < self.p_dislocate:
                size = self.disl_median * math.exp(rng.gauss(0.0, self.disl_sigma))
                swept = rng.choice(vs)
                self.dislocations[s].append(Dislocation(swept, size * rng.choice((-1, 1))))
            if s in self.perp_ref:
                pb = PERP_BASIS
                ba = self.basis_a
                self.basis_bps[s] = (pb["mean_bps"] + ba * (self.basis_bps[s] - pb["mean_bps"])
                                     + rng.gauss(0.0, pb["std_bps"] * math.sqrt(1 - ba * ba)))
                pa = self.premium_a
                self.premium[s] = pa * self.premium[s] + (1 - pa) * self.basis_bps[s] / 1e4
                if self.perp_ref[s] is None:
                    # No underlying in this market: the perp walks on its own and
                    # the basis only sets the index it reports (perp_state).
                    self.fair[s] *= math.exp(rng.gauss(0.0, self.vol[s]))
                else:
                    self.fair[s] = self._perp_fair(s, self.fair[s])
            else:
                self.fair[s] *= math.exp(rng.gauss(0.0, self.vol[s]))
            self.history[s].append(self.fair[s])
            p, stale = self.requote_p[s], self.stale_bps / 1e4
            for v in vs:
                self.noise[(v, s)] = a * self.noise[(v, s)] + rng.gauss(0.0, b)
                target = self.venue_price(v, s)
                q = self.quoted[(v, s)]
                if rng.random() < p or v == swept or abs(target / q - 1) > stale:
                    self.quoted[(v, s)] = target
        self._rebuild_all()

    def _rebuild_all(self) -> None:
        for v in self.venues:
            for s in self.symbols:
                if v in self.venues_for[s]:
                    self.books[(v, s)] = self._build(v, s)

    def _build(self, venue: str, symbol: str) -> VenueBook:
        par = asset_params(symbol)
        spread_bps = par["spread_bps"] * _venue_prior("venue_spread_mult", venue, 1.0)
        mid = self.quoted[(venue, symbol)]
        tick = price_tick(symbol)
        dp = decimals(tick)
        step = self.grid[symbol]
        half = mid * spread_bps / 2e4
        # The top sits at the fitted spread on the venue's tick; deeper levels on the grid.
        best_bid = math.floor((mid - half) / tick + 1e-9)
        best_ask = math.ceil((mid + half) / tick - 1e-9)
        if best_ask <= best_bid:
            best_ask = best_bid + 1
        # Fixed per symbol (not per tick) so a level's size persists while prices move.
        median = par["level_notional_usd"] / self.base[symbol] * _venue_prior(
            "venue_size_mult", venue, 1.0)
        # Level sizes are log-normal like the recorded ones; the spread of the log is
        # capped so a demo book is not mostly one wall.
        sigma = min(1.5, par.get("level_notional_ln_sigma") or 1.0)
        book = VenueBook()
        cache = self._levels
        if len(cache) > 200_000:  # a pure function of its key: dropping it changes nothing
            cache.clear()
        bid_idx = [best_bid] + [(best_bid - 1) // step * step - i * step
                                for i in range(self.levels - 1)]
        ask_idx = [best_ask] + [-((-best_ask - 1) // step) * step + i * step
                                for i in range(self.levels - 1)]
        for is_bid, idxs in ((True, bid_idx), (False, ask_idx)):
            for idx in idxs:
                epoch = (self.tick + idx % 20) // 20  # staggered: ~1 in 20 levels resized per tick
                key = (venue, symbol, idx, epoch)
                lvl = cache.get(key)
                if lvl is None:
                    # crc32, not hash(): str hashes are salted per process (PYTHONHASHSEED).
                    h = random.Random(zlib.crc32(f"{venue}|{symbol}|{idx}|{epoch}".encode()))
                    size = median * math.exp(h.gauss(0.0, sigma))
                    lvl = cache[key] = (f"{idx * tick:.{dp}f}", f"{size:.8f}")
                (book.bids if is_bid else book.asks)[lvl[0]] = lvl[1]
        return book
