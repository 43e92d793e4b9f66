"""The detector's pair index and walk reuse change speed, never results.

``ReferenceDetector`` (tests/detector_reference.py) is the plain evaluation:
both directions of every pair of books of the quote's base asset, a fresh
depth walk every time. The
indexed detector (the default) evaluates only directions that can have a
positive marginal edge or have a window open, and reuses a walk whose inputs
did not change. Both are fed the same inputs here and must emit the same
events, byte for byte, in the same order, and end in the same state.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import msgspec
import pytest
from detector_fixtures import MS, Clock, dcfg, mkq
from detector_reference import ReferenceDetector

from arbtui.backend.detector import Detector
from arbtui.config import ConversionConfig
from arbtui.model import BookState, BookStatus

# benchmarks/ is a top-level package of the repository, not of the installed arbtui.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import load
from benchmarks.e2e import bench_config

_enc = msgspec.json.Encoder()


def _state(d: Detector) -> tuple:
    return (dict(d.counters), d.evaluated, sorted(d.open), d.blocked_comparisons(),
            d.lifetime_histograms(), _enc.encode([o.opp for o in d.open.values()]),
            {s: sorted(v) for s, v in d.quotes.items()})


@pytest.mark.parametrize(("nv", "ns", "n"), [(2, 2, 20_000), (5, 50, 30_000)])
def test_benchmark_stream_same_events(nv, ns, n) -> None:
    # The benchmark's own dislocation-rich stream (python -m benchmarks --only detector),
    # with a clock that advances 0.1 ms a quote so windows have lifetimes.
    m = load.Market(nv, ns, seed=5)
    quotes = [load.quote_of(m, mm) for mm in m.stream(n)]
    clock = Clock()
    fees = {v: 1.0 for v in m.venues}
    ref = ReferenceDetector(bench_config(m.venues).detector, fees, clock=clock)
    idx = Detector(bench_config(m.venues).detector, fees, clock=clock)
    events = 0
    for q in quotes:
        clock.t += MS // 10
        q = msgspec.structs.replace(q, recv_ts_ns=clock.t)
        a, b = ref.on_quote(q), idx.on_quote(q)
        assert _enc.encode(b) == _enc.encode(a)
        events += len(a)
    assert _state(idx) == _state(ref)
    assert events > n // 100 and ref.counters["opened"] > 100  # the stream does open windows


VENUES = ["kraken", "coinbase", "binance", "okx", "gemini"]
SYMBOLS = ["BTC-USD", "BTC-USDC", "BTC-USDT", "ETH-USD", "ETH-USDT", "USDT-USD"]
FAIR = {"BTC": 100.0, "ETH": 10.0, "USDT": 1.0}


def _levels(rng: random.Random, top: float, step: float, sign: int) -> list[tuple[float, float]]:
    n = rng.choice((0, 1, 1, 2, 3, 5)) if rng.random() < 0.05 else rng.randint(1, 6)
    return [(round(top + sign * i * step, 6), rng.choice((0.1, 0.5, 1.0, 2.0, 7.5)))
            for i in range(n)]


def _quote(rng: random.Random, fair: dict[str, float], t: int):
    venue, sym = rng.choice(VENUES), rng.choice(SYMBOLS)
    base, ccy = sym.split("-")
    mid = fair[base] * (1.002 if ccy == "USDT" and base != "USDT" else 1.0)
    mid *= 1 + rng.uniform(-25, 25) / 1e4
    step = mid * 2e-4
    bid = mid - rng.choice((0.5, 1, 2)) * step
    ask = mid + rng.choice((0.5, 1, 2)) * step
    r = rng.random()
    if r < 0.02:
        bid, ask = ask, bid  # a crossed book
    elif r < 0.03:
        ask = 0.0
    elif r < 0.035:
        bid = rng.choice((math.inf, math.nan, -1.0))
    elif r < 0.04:
        ask = rng.choice((math.inf, math.nan))
    bids, asks = _levels(rng, bid, step, -1), _levels(rng, ask, step, 1)
    recv = t - rng.choice((0, 0, 0, 0, 1, 50, 400, 2500)) * MS
    vts = recv - 3 * MS if rng.random() < 0.3 else 0
    return mkq(venue, sym, bids, asks, recv=recv, vts=vts)


def _config(rng: random.Random):
    kind = rng.randrange(3)
    if kind == 0:
        return dcfg()  # default groups: USD/USDC together, USDT apart, no conversions
    conv = {"USDT": ConversionConfig(book="USDT-USD", venue="kraken", max_age_ms=300.0),
            "USDC": ConversionConfig(rate=1.0, to="USD")}
    return dcfg(quote_groups=[["USD", "USDC", "USDT"]], conversions=conv,
                min_net_bps=rng.choice((-5.0, 0.0, 2.0, 8.0)),
                max_notional=rng.choice((1e12, 150.0)), min_notional=rng.choice((0.0, 20.0)),
                max_level_share=rng.choice((1.0, 0.5)), flat_cost=rng.choice((0.0, 0.01)),
                max_plausible_bps=rng.choice((300.0, 20.0)), max_quote_age_ms=1000.0)


@pytest.mark.parametrize("seed", range(12))
def test_random_sessions_same_events(seed) -> None:
    """Conversions, aliases, stale and non-LIVE books, toggles, thresholds, sweeps,
    batches, wallet caps, crossed / one-sided / non-finite books, in random order."""
    rng = random.Random(seed)
    cfg = _config(rng)
    fees = {v: rng.choice((0.0, 1.0, 10.0, 25.0)) for v in VENUES[:-1]}  # gemini: no fee entry
    clock = Clock()
    ref = ReferenceDetector(msgspec.structs.replace(cfg), fees, clock=clock)
    idx = Detector(msgspec.structs.replace(cfg), fees, clock=clock)
    if seed % 3 == 1:
        caps = {v: rng.choice((None, 0.5, 300.0)) for v in VENUES}
        for d in (ref, idx):
            d.balances = lambda v, asset, kind, _c=caps: _c[v]
    fair = dict(FAIR)
    opened = 0
    for _ in range(4000):
        clock.t += rng.choice((1, 1, 5, 20, 300)) * MS // 10
        for b in ("BTC", "ETH"):
            if rng.random() < 0.05:
                fair[b] *= 1 + rng.choice((-1, 1)) * rng.uniform(5, 40) / 1e4
        r = rng.random()
        if r < 0.75:
            q = _quote(rng, fair, clock.t)
            a, b = ref.on_quote(q), idx.on_quote(q)
        elif r < 0.85:
            batch = [_quote(rng, fair, clock.t) for _ in range(rng.randint(2, 8))]
            a, b = ref.on_quotes(batch), idx.on_quotes(batch)
        elif r < 0.89:
            st = BookStatus(venue=rng.choice(VENUES), symbol=rng.choice(SYMBOLS),
                            state=BookState.LIVE if rng.random() < 0.7
                            else rng.choice(list(BookState)), reason="test")
            a, b = ref.on_book_state(st), idx.on_book_state(st)
        elif r < 0.91:
            v, on = rng.choice(VENUES), rng.random() < 0.6
            a, b = ref.set_venue_enabled(v, on), idx.set_venue_enabled(v, on)
        elif r < 0.93:
            s, on = rng.choice(SYMBOLS), rng.random() < 0.6
            a, b = ref.set_symbol_enabled(s, on), idx.set_symbol_enabled(s, on)
        elif r < 0.95:
            th = rng.choice((-5.0, 0.0, 2.0, 5.0, 10.0))
            a, b = ref.set_threshold(th), idx.set_threshold(th)
        elif r < 0.97:
            # The engine writes these straight into the config at run time.
            ms = rng.choice((300.0, 1000.0, 2000.0))
            ref.cfg.max_quote_age_ms = idx.cfg.max_quote_age_ms = ms
            share = rng.choice((1.0, 0.5))
            ref.cfg.max_level_share = idx.cfg.max_level_share = share
            a, b = ref.sweep(), idx.sweep()
        else:
            a, b = ref.sweep(), idx.sweep()
        assert _enc.encode(b) == _enc.encode(a)
        opened = ref.counters["opened"]
    assert _state(idx) == _state(ref)
    assert opened > 20  # the session did open (and so update and close) windows


def test_walk_inputs_that_are_not_the_books() -> None:
    """Same books, changed walk parameters (level share, wallet caps, conversion
    rate): the reused walk must not hide the change; and a batch evaluates each
    book in the place of its first quote."""
    cfg = dcfg(quote_groups=[["USD", "USDT"]],
               conversions={"USDT": ConversionConfig(book="USDT-USD", venue="kraken")})
    clock = Clock()
    fees = {"kraken": 10.0, "gemini": 10.0, "okx": 0.0, "binance": 0.0}
    ref = ReferenceDetector(msgspec.structs.replace(cfg), fees, clock=clock)
    idx = Detector(msgspec.structs.replace(cfg), fees, clock=clock)
    caps: dict[str, float | None] = {"kraken": None, "gemini": None, "okx": None, "binance": None}

    def both(f) -> list:
        a, b = f(ref), f(idx)
        assert _enc.encode(b) == _enc.encode(a)
        return a

    def quote(venue, sym, bids, asks):
        return lambda d: d.on_quote(mkq(venue, sym, bids, asks, recv=clock.t))

    k = ([(99.0, 1.0)], [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)])
    g = ([(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)], [(101.6, 1.0)])
    usdt = ([(0.9999, 1e6)], [(1.0001, 1e6)])
    both(quote("kraken", "USDT-USD", *usdt))
    both(quote("kraken", "BTC-USD", *k))
    assert both(quote("gemini", "BTC-USD", *g))  # opens kraken > gemini
    assert both(quote("binance", "BTC-USDT", [(101.4, 2.0)], [(103.0, 1.0)]))
    sizes = [o.opp.size for o in ref.open.values()]
    for d in (ref, idx):
        d.balances = lambda v, asset, kind: caps[v]
    for change in ("share", "quote cap", "base cap", "rate"):
        clock.t += MS
        if change == "share":
            ref.cfg.max_level_share = idx.cfg.max_level_share = 0.25
        elif change == "quote cap":
            caps["kraken"] = 30.0
        elif change == "base cap":
            caps["gemini"] = 0.2
        else:
            both(quote("kraken", "USDT-USD", [(0.9949, 1e6)], [(0.9951, 1e6)]))
        both(quote("kraken", "BTC-USD", *k))  # the same books again
        both(quote("gemini", "BTC-USD", *g))
        both(quote("binance", "BTC-USDT", [(101.4, 2.0)], [(103.0, 1.0)]))
        assert _state(idx) == _state(ref)
    assert [o.opp.size for o in ref.open.values()] != sizes  # the walks did change
    clock.t += MS
    batch = [mkq("kraken", "BTC-USD", *k, recv=clock.t),
             mkq("okx", "BTC-USD", [(101.2, 3.0)], [(101.7, 1.0)], recv=clock.t),
             mkq("gemini", "BTC-USD", [(101.3, 1.0)], [(101.6, 1.0)], recv=clock.t),
             mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.1, 1.0)], recv=clock.t)]
    out = both(lambda d: d.on_quotes(batch))
    assert len(out) >= 2
    assert _state(idx) == _state(ref)
