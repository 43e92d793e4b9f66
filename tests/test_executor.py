"""Simulated execution: a hand-computed trade, policies, and invariants under hypothesis."""

from __future__ import annotations

import heapq
import math
import random

import pytest
from detector_fixtures import MS, Clock, dcfg, mkq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from arbtui.backend.detector import Detector
from arbtui.backend.executor import Executor
from arbtui.config import ExecutionConfig, WalletConfig
from arbtui.model import OppEvent

FEES = {"kraken": 10.0, "gemini": 10.0}
ASKS_A = [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)]
BIDS_B = [(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)]


def ecfg(**kw) -> ExecutionConfig:
    base = {"enabled": True, "min_net_bps": 5.0, "latency_ms": {"kraken": 40.0, "gemini": 10.0},
            "jitter_ms": 0.0, "max_notional": 1e9, "one_leg_policy": "keep",
            "wallets": {"kraken": WalletConfig(base=0.0, quote=1000.0),
                        "gemini": WalletConfig(base=2.0, quote=0.0)}}
    base.update(kw)
    return ExecutionConfig(**base)


def opened(clock: Clock):
    d = Detector(dcfg(), FEES, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t))
    (o,) = d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t))
    assert o.event is OppEvent.OPENED and o.size == pytest.approx(2.5)
    return o


def quote_sums(ex: Executor, ccy: str) -> float:
    return sum(b - ex.wallets.initial[k] for k, b in ex.wallets.bal.items() if k[1] == ccy)


def run_partial_trade(policy: str):
    clock = Clock()
    opp = opened(clock)
    ex = Executor(ecfg(one_leg_policy=policy), FEES, clock=clock)
    orders = ex.on_opportunity(opp)
    buy, sell = orders
    # Sized to the wallets: gemini holds 2 BTC (opportunity 2.5).
    assert (buy.venue, buy.side, sell.venue, sell.side) == ("kraken", "buy", "gemini", "sell")
    assert buy.qty == pytest.approx(2.0) and sell.qty == pytest.approx(2.0)
    assert (buy.limit, sell.limit) == (100.5, 101.0)  # worst levels of the detector's walk
    assert (buy.arrive_ns - clock.t, sell.arrive_ns - clock.t) == (40 * MS, 10 * MS)
    # +10 ms: gemini's book is unchanged; 1.5 @ 101.5 + 0.5 @ 101.0 = 202.75, fee 0.20275
    clock.t = sell.arrive_ns
    (fs,), _ = ex.on_arrival(sell, mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)]), True)
    assert fs.status == "filled" and fs.filled == pytest.approx(2.0)
    assert fs.vwap == pytest.approx(101.375) and fs.fee == pytest.approx(0.20275)
    assert fs.fee_ccy == "USD" and fs.ts_ns == sell.arrive_ns
    # +40 ms: kraken's ask moved; 1 @ 100.2 fills, 100.8 is past the 100.5 limit.
    clock.t = buy.arrive_ns
    (fb,), follow = ex.on_arrival(buy, mkq("kraken", "BTC-USD", [(99.0, 1)],
                                           [(100.2, 1.0), (100.8, 5.0)]), True)
    assert fb.status == "partial" and fb.filled == pytest.approx(1.0)
    assert fb.reason == "price moved past the limit" or fb.reason.startswith("partial")
    assert fb.fee == pytest.approx(0.1002)
    # matched 1: 1 * (101.375 * 0.999 - 100.2 * 1.001) = 101.273625 - 100.3002
    assert fb.pnl == pytest.approx(0.973425) and fb.pnl_ccy == "USD"
    return clock, ex, fb, follow


def test_partial_fill_kept() -> None:
    _, ex, fb, follow = run_partial_trade("keep")
    assert follow == []
    assert fb.reason == "partial: kept -1 BTC on gemini"
    assert ex.realized == {"USD": pytest.approx(0.973425)}
    assert ex.counters["imbalanced"] == 1 and ex.counters["partial"] == 1
    drift = ex.drift()
    assert drift["kraken"]["BTC"] == pytest.approx(1.0)
    assert drift["gemini"]["BTC"] == pytest.approx(-2.0)
    assert drift["kraken"]["USD"] == pytest.approx(-100.3002)
    assert drift["gemini"]["USD"] == pytest.approx(202.54725)
    assert ex.fees_paid == {"USD": pytest.approx(0.30295)}
    # value: quote drift + basis of the open short = realized
    assert quote_sums(ex, "USD") + ex.basis["USD"] == pytest.approx(ex.realized["USD"])


def test_partial_fill_unwound_at_the_then_current_book() -> None:
    clock, ex, fb, follow = run_partial_trade("unwind")
    assert fb.reason == "partial: unwinding -1 BTC on gemini"
    (u,) = follow
    assert (u.venue, u.side, u.kind, u.limit) == ("gemini", "buy", "unwind", 0.0)
    assert u.qty == pytest.approx(1.0) and u.arrive_ns == clock.t + 10 * MS
    clock.t = u.arrive_ns
    (fu,), more = ex.on_arrival(u, mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0), (102, 1)]), True)
    assert more == [] and fu.status == "filled" and fu.vwap == pytest.approx(101.6)
    # unwind PnL: 1 * (101.273625 - 101.6 * 1.001) = -0.427975
    assert fu.pnl == pytest.approx(-0.427975)
    assert ex.realized["USD"] == pytest.approx(0.973425 - 0.427975)
    assert ex.basis["USD"] == pytest.approx(0.0, abs=1e-9)
    total_btc = sum(b - ex.wallets.initial[k] for k, b in ex.wallets.bal.items() if k[1] == "BTC")
    assert total_btc == pytest.approx(0.0, abs=1e-9)  # flat again
    assert quote_sums(ex, "USD") == pytest.approx(ex.realized["USD"])


def test_no_fill_on_missing_or_non_live_book_and_one_legged() -> None:
    clock = Clock()
    opp = opened(clock)
    ex = Executor(ecfg(), FEES, clock=clock)
    buy, sell = ex.on_opportunity(opp)
    (fs,), _ = ex.on_arrival(sell, mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)]), False)
    assert fs.status == "rejected" and fs.filled == 0 and "no LIVE" in fs.reason
    (fb,), _ = ex.on_arrival(buy, mkq("kraken", "BTC-USD", [(99.0, 1)], ASKS_A), True)
    assert fb.status == "filled" and "one-legged: kept +2 BTC on kraken" in fb.reason
    assert ex.counters["one_legged"] == 1
    assert ex.realized["USD"] == 0.0
    assert quote_sums(ex, "USD") + ex.basis["USD"] == pytest.approx(0.0, abs=1e-9)


def test_gates_suspect_threshold_disabled_direction() -> None:
    clock = Clock()
    opp = opened(clock)
    ex = Executor(ecfg(enabled=False), FEES, clock=clock)
    assert ex.on_opportunity(opp) == []
    assert ex.balance_cap("kraken", "USD", "quote") is None  # no cap while disabled
    ex.set_enabled(True)
    assert ex.balance_cap("kraken", "USD", "quote") == 1000.0
    import msgspec

    assert ex.on_opportunity(msgspec.structs.replace(opp, suspect=True)) == []
    # The execution threshold is the same per-unit hurdle: the event's levels give
    # a first unit of 129.72 bps, so at 130 bps nothing is sized (a 4.9 bps
    # average net would not matter: the walk over the levels decides).
    ex.set_threshold(130.0)
    assert ex.on_opportunity(opp) == []
    ex.set_threshold(5.0)
    rev = msgspec.structs.replace(opp, buy_price=opp.sell_price + 1, buy_vwap=opp.sell_vwap + 1)
    assert ex.on_opportunity(rev) == []
    assert ex.on_opportunity(msgspec.structs.replace(opp, event=OppEvent.UPDATED)) == []
    c = ex.counters
    assert (c["skipped_suspect"], c["skipped_threshold"], c["skipped_direction"]) == (1, 1, 1)
    assert len(ex.on_opportunity(opp)) == 2


# --------------------------------------------------------------------------- invariants

prices = st.floats(min_value=90.0, max_value=110.0, allow_nan=False).map(lambda x: round(x, 2))
sizes = st.floats(min_value=0.001, max_value=5.0, allow_nan=False)


@st.composite
def book(draw):
    mid = draw(prices)
    n = draw(st.integers(1, 5))
    asks = sorted({round(mid + 0.01 + draw(st.floats(0, 3)), 2) for _ in range(n)})
    bids = sorted({round(mid - 0.01 - draw(st.floats(0, 3)), 2) for _ in range(n)}, reverse=True)
    return ([(p, draw(sizes)) for p in bids], [(p, draw(sizes)) for p in asks])


@st.composite
def scenario(draw):
    venues = ["kraken", "gemini", "okx"]
    books0 = {v: draw(book()) for v in venues}
    arrivals = draw(st.lists(st.tuples(book(), st.booleans(), st.booleans()), min_size=12,
                             max_size=12))
    lat = {v: draw(st.floats(0, 200)) for v in venues}
    wallets = {v: WalletConfig(base=draw(st.floats(0, 3)), quote=draw(st.floats(0, 2000)))
               for v in venues}
    fees = {v: draw(st.sampled_from([0.0, 10.0, 25.0])) for v in venues}
    return (books0, arrivals, lat, wallets, fees, draw(st.sampled_from(["keep", "unwind"])),
            draw(st.floats(0, 50)), draw(st.integers(0, 2**32)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_execution_invariants(sc) -> None:
    books0, arrivals, lat, wallets, fees, policy, jitter, seed = sc
    clock = Clock()
    cfg = ExecutionConfig(enabled=True, min_net_bps=-9000.0, latency_ms=lat, jitter_ms=jitter,
                          max_notional=1e9, one_leg_policy=policy, wallets=wallets)
    ex = Executor(cfg, fees, clock=clock, rng=random.Random(seed))
    det = Detector(dcfg(min_net_bps=-9000.0, max_plausible_bps=9000.0), fees, clock=clock)
    det.balances = ex.balance_cap
    heap: list = []
    opps = []
    for v, (bids, asks) in books0.items():
        for e in det.on_quote(mkq(v, "BTC-USD", bids, asks, recv=clock.t)):
            if e.event is OppEvent.OPENED:
                opps.append(e)
                for o in ex.on_opportunity(e):
                    heapq.heappush(heap, (o.arrive_ns, o.id, o))
        clock.t += 1 * MS
    fills = []
    arr = iter(arrivals)
    while heap:
        t, _, o = heapq.heappop(heap)
        clock.t = max(clock.t, t)
        (bids, asks), live, missing = next(arr, (books0[o.venue], True, False))
        q = None if missing else mkq(o.venue, o.symbol, bids, asks)
        (f,), follow = ex.on_arrival(o, q, live)
        fills.append(f)
        # no fill on a non-LIVE or missing book
        if q is None or not live:
            assert f.filled == 0 and f.status == "rejected"
        else:
            levels = asks if o.side == "buy" else bids
            within = [s for p, s in levels
                      if not o.limit or (p <= o.limit if o.side == "buy" else p >= o.limit)]
            assert f.filled <= sum(within) * (1 + 1e-9) + 1e-12  # no fill beyond visible size
            assert f.filled <= o.qty * (1 + 1e-9)
            if f.filled:
                assert (f.vwap <= o.limit + 1e-9) if (o.side == "buy" and o.limit) else True
                assert (f.vwap >= o.limit - 1e-9) if (o.side == "sell" and o.limit) else True
        assert f.fee_ccy == "USD"
        # balances never negative, at every step
        assert all(b >= 0 for b in ex.wallets.bal.values()), ex.wallets.bal
        for o2 in follow:
            heapq.heappush(heap, (o2.arrive_ns, o2.id, o2))
    event(f"fills: {min(len(fills), 4)}; imbalanced: {ex.counters['imbalanced'] > 0}")
    assert ex.in_flight == {}
    assert all(abs(r) < 1e-6 for r in ex.reserved.values())
    # ledger: every balance change is explained by the fills
    flows: dict = {}
    for f in fills:
        sgn = 1 if f.side == "buy" else -1
        flows[(f.venue, "BTC")] = flows.get((f.venue, "BTC"), 0.0) + sgn * f.filled
        flows[(f.venue, "USD")] = flows.get((f.venue, "USD"), 0.0) - sgn * f.filled * f.vwap - f.fee
    for k, bal in ex.wallets.bal.items():
        assert bal - ex.wallets.initial[k] == pytest.approx(flows.get(k, 0.0), abs=1e-6)
    # value is conserved except fees and explicit PnL
    assert sum(f.fee for f in fills) == pytest.approx(ex.fees_paid.get("USD", 0.0), abs=1e-9)
    usd = quote_sums(ex, "USD") + ex.basis.get("USD", 0.0)
    assert usd == pytest.approx(ex.realized.get("USD", 0.0), abs=1e-6)
    assert sum(f.pnl for f in fills) == pytest.approx(ex.realized.get("USD", 0.0), abs=1e-9)
    assert all(math.isfinite(b) for b in ex.wallets.bal.values())


def test_cross_currency_fees_in_each_leg_currency_and_pnl_in_the_buy_currency() -> None:
    from arbtui.config import ConversionConfig

    clock = Clock()
    fees = {"kraken": 10.0, "binance": 10.0}
    d = Detector(dcfg(quote_groups=[["USD", "USDT"]],
                      conversions={"USDT": ConversionConfig(rate=0.99, to="USD")}),
                 fees, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    (opp,) = d.on_quote(mkq("binance", "BTC-USDT", [(102.0, 1.0)], [(103, 1)], recv=clock.t))
    assert (opp.symbol, opp.sell_symbol, opp.rate) == ("BTC-USD", "BTC-USDT", 0.99)
    cfg = ecfg(latency_ms={"kraken": 5.0, "binance": 5.0},
               wallets={"kraken": WalletConfig(base=0.0, quote=1000.0),
                        "binance": WalletConfig(base=1.0, quote=0.0)})
    ex = Executor(cfg, fees, clock=clock)
    buy, sell = ex.on_opportunity(opp)
    assert (buy.symbol, sell.symbol) == ("BTC-USD", "BTC-USDT")
    (fs,), _ = ex.on_arrival(sell, mkq("binance", "BTC-USDT", [(102.0, 1.0)], [(103, 1)]), True)
    (fb,), _ = ex.on_arrival(buy, mkq("kraken", "BTC-USD", [(99.0, 1)], [(100.0, 1.0)]), True)
    # fees: 10 bps of each leg's notional, in that leg's own quote currency
    assert (fs.fee_ccy, fb.fee_ccy) == ("USDT", "USD")
    assert fs.fee == pytest.approx(0.102) and fb.fee == pytest.approx(0.1)
    # PnL in USD: 102 * 0.999 USDT * 0.99 USD/USDT - 100 * 1.001 USD
    assert fb.pnl_ccy == "USD"
    assert fb.pnl == pytest.approx(102 * 0.999 * 0.99 - 100.1, rel=1e-9)
    dr = ex.drift()
    assert dr["binance"]["USDT"] == pytest.approx(102 * 0.999, rel=1e-9)
    assert dr["kraken"]["USD"] == pytest.approx(-100.1, rel=1e-9)
    assert dr["kraken"]["BTC"] == pytest.approx(1.0) and dr["binance"]["BTC"] == pytest.approx(-1.0)
