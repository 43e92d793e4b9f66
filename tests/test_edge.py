"""The one net-edge formula and the depth walk, checked against hand arithmetic."""

from __future__ import annotations

import math
import random
import struct

import msgspec
import pytest

from arbtui.backend.edge import (
    _EPS,
    Walk,
    gross_bps,
    hurdle,
    marginal_bps,
    marginal_profit,
    net_bps,
    net_profit,
    walk,
)

A = [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)]  # buy venue asks, best first
B = [(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)]  # sell venue bids, best first


def test_top_of_book_formula() -> None:
    # buy 2 @ 100 with 10 bps fee: cost = 2*100*1.001 = 200.2
    # sell 2 @ 101 with 20 bps fee: proceeds = 2*101*0.998 = 201.596
    # profit = 201.596 - 200.2 - 0.1 (flat) = 1.296 ; net = 1.296/200.2*1e4
    assert gross_bps(100, 101) == pytest.approx(100.0)
    assert net_profit(100, 101, 2, 10, 20, 0.1) == pytest.approx(1.296)
    assert net_bps(100, 101, 10, 20, size=2, flat_cost=0.1) == pytest.approx(1.296 / 200.2 * 1e4)
    # A gross edge smaller than both fees is a net LOSS, never an opportunity:
    # 100 -> 100.15 is +15 bps gross, minus 10 + 10 bps fees ~ -5 bps net.
    assert net_bps(100, 100.15, 10, 10) == pytest.approx((100.15 * 0.999 - 100.1) / 100.1 * 1e4)
    assert net_bps(100, 100.15, 10, 10) < 0


def test_walk_takes_every_profitable_chunk_and_stops_at_the_unprofitable_one() -> None:
    # fa = 1.001, fb = 0.999
    # chunk 1: ask 100.0 / bid 101.5, marginal 101.5*.999 - 100*1.001 = 1.2985 > 0, q = 1
    # chunk 2: ask 100.5 / bid 101.5, marginal 101.3985 - 100.6005 = 0.798 > 0, q = 0.5
    # chunk 3: ask 100.5 / bid 101.0, marginal 100.899 - 100.6005 = 0.2985 > 0, q = 1
    # chunk 4: ask 100.5 / bid 100.0, marginal 99.9 - 100.6005 < 0 -> stop ("edge")
    w = walk(A, B, 10, 10)
    assert w.size == pytest.approx(2.5)
    assert w.buy_vwap == pytest.approx((100 * 1 + 100.5 * 1.5) / 2.5)  # 100.3
    assert w.sell_vwap == pytest.approx((101.5 * 1.5 + 101 * 1) / 2.5)  # 101.3
    # profit = sum of chunk marginals = 1.2985 + 0.5*0.798 + 0.2985 = 1.996
    assert w.profit == pytest.approx(1.996)
    assert w.profit == pytest.approx(253.25 * 0.999 - 250.75 * 1.001)
    assert w.net_bps == pytest.approx(1.996 / 251.00075 * 1e4)  # 79.52 bps of the buy cost
    assert w.gross_bps == pytest.approx((101.3 - 100.3) / 100.3 * 1e4)
    assert (w.buy_worst, w.sell_worst) == (100.5, 101.0)
    assert w.limited_by == "edge"
    assert w.notional == pytest.approx(250.75)


def test_flat_cost_lowers_profit_not_size() -> None:
    w = walk(A, B, 10, 10, flat_cost=1.0)
    assert w.size == pytest.approx(2.5)
    assert w.profit == pytest.approx(0.996)
    assert w.net_bps == pytest.approx(0.996 / 251.00075 * 1e4)


def test_caps() -> None:
    # max_notional 150: 1 @ 100, then (150 - 100) / 100.5 = 0.497512... @ 100.5
    w = walk(A, B, 10, 10, max_notional=150)
    assert w.size == pytest.approx(1 + 50 / 100.5)
    assert w.notional == pytest.approx(150)
    assert w.limited_by == "max_notional"
    # quote balance 150.15 covers the fee too: (150.15 - 100.1) / (100.5*1.001) = same size
    w = walk(A, B, 10, 10, max_quote=150.15)
    assert w.size == pytest.approx(1 + 50.05 / 100.6005)
    assert w.limited_by == "quote_balance"
    # base balance on the sell venue: 1.2 BTC
    w = walk(A, B, 10, 10, max_base=1.2)
    assert w.size == pytest.approx(1.2)
    assert w.limited_by == "base_balance"
    # half of each visible level: every chunk halves -> size 1.25, profit 0.998
    w = walk(A, B, 10, 10, level_share=0.5)
    assert w.size == pytest.approx(1.25)
    assert w.profit == pytest.approx(0.998)


def test_depth_limit_and_no_edge() -> None:
    w = walk([(100.0, 1.0)], [(101.0, 3.0)], 0, 0)
    assert (w.size, w.limited_by, w.profit) == (1.0, "depth", 1.0)
    # A unit whose marginal edge equals the threshold is taken ("at least"): at
    # threshold 0 a zero-edge unit counts (profit 0), above it nothing does.
    w = walk([(101.0, 1.0)], [(101.0, 3.0)], 0, 0)
    assert (w.size, w.limited_by, w.profit) == (1.0, "depth", 0.0)
    w = walk([(101.0, 1.0)], [(101.0, 3.0)], 0, 0, min_net_bps=0.01)
    assert w.size == 0 and w.limited_by == "edge" and w.profit == 0
    w = walk([(101.0, 1.0)], [(100.0, 3.0)], 0, 0)
    assert w.size == 0 and w.limited_by == "edge"
    assert walk([], [(101.0, 3.0)], 0, 0).size == 0


def test_cross_currency_rate() -> None:
    # buy 1 BTC @ 100 USD; sell 1 BTC @ 102 USDT; 1 USDT = 0.99 USD -> bid 100.98 USD
    w = walk([(100.0, 1.0)], [(102.0, 1.0)], 0, 0, rate=0.99)
    assert w.sell_vwap == 102.0  # in the sell venue's own currency
    assert w.profit == pytest.approx(0.98)  # in USD, the buy leg's currency
    assert w.gross_bps == pytest.approx(98.0)
    # the same prices with USDT at 0.97 USD: 98.94 < 100 -> no trade at all
    assert walk([(100.0, 1.0)], [(102.0, 1.0)], 0, 0, rate=0.97).size == 0


def test_walk_never_exceeds_visible_size() -> None:
    w = walk(A, [(200.0, 1e9)], 0, 0)
    assert w.size == pytest.approx(sum(s for _, s in A))
    assert math.isfinite(w.net_bps)


def test_threshold_is_a_per_unit_hurdle() -> None:
    """The issue's counter-example: a rich top in front of deep, thin depth."""
    asks = [(100.0, 1.0), (100.2, 50.0)]
    bids = [(100.5, 1.0), (100.41, 50.0)]
    # top unit: 100.5*0.999 - 100*1.001 = 0.2995 over 100.1 -> 29.92 bps
    # next:     100.41*0.999 - 100.2*1.001 = 0.00939 over 100.3002 -> 0.936 bps
    assert marginal_bps(100.0, 100.5, 10, 10) == pytest.approx(0.2995 / 100.1 * 1e4)
    assert marginal_bps(100.2, 100.41, 10, 10) == pytest.approx(0.00939 / 100.3002 * 1e4)
    w = walk(asks, bids, 10, 10, min_net_bps=2.0)
    assert w.size == 1.0
    assert w.profit == pytest.approx(0.2995)
    assert w.net_bps == pytest.approx(29.92, abs=0.01)
    assert w.limited_by == "threshold"  # the next unit still earned, just under 2 bps
    assert (w.buy_worst, w.sell_worst) == (100.0, 100.5)
    # At a 0.5 bps hurdle the 0.936 bps depth clears too: 51 units at ~1.5 bps average.
    w = walk(asks, bids, 10, 10, min_net_bps=0.5)
    assert w.size == pytest.approx(51.0)
    assert w.net_bps == pytest.approx((0.2995 + 50 * 0.00939) / (100.1 + 50 * 100.3002) * 1e4)
    assert w.limited_by == "depth"
    # Above the top unit's own edge nothing is taken.
    w = walk(asks, bids, 10, 10, min_net_bps=30.0)
    assert w.size == 0 and w.limited_by == "threshold"
    # A negative hurdle takes units that lose up to that much: here every level.
    w = walk([(100.0, 1.0), (100.3, 1.0)], [(100.1, 2.0)], 10, 10, min_net_bps=-15.0)
    # second unit: 100.1*0.999 = 100.0 vs 100.3*1.001 = 100.4003 -> -39.9 bps: not taken
    assert w.size == 1.0 and w.limited_by == "edge"
    assert w.net_bps == pytest.approx((100.1 * 0.999 - 100.1) / 100.1 * 1e4)  # -10.0 bps


def test_hurdle_is_the_marginal_bps_test() -> None:
    """``bid*fb >= ask*fa*hurdle`` is ``marginal_bps >= threshold`` (away from rounding)."""
    rng = random.Random(3)
    for _ in range(20_000):
        ask = rng.uniform(1, 1e5)
        bid = ask * (1 + rng.uniform(-0.01, 0.01))
        fa, fb, thr = rng.choice((0.0, 10.0, 25.0)), rng.choice((0.0, 10.0)), rng.uniform(-20, 20)
        m = marginal_bps(ask, bid, fa, fb)
        if abs(m - thr) < 1e-6:
            continue
        taken = bid * (1 - fb / 1e4) >= ask * ((1 + fa / 1e4) * hurdle(thr))
        assert taken == (m >= thr), (ask, bid, fa, fb, thr)


def _walk_reference(asks, bids, fee_a_bps, fee_b_bps, *, min_net_bps=0.0, flat_cost=0.0, rate=1.0,
                    max_notional=math.inf, max_quote=math.inf, max_base=math.inf,
                    level_share=1.0) -> Walk:
    """The walk as first written (every cap computed for every chunk): what the
    optimized loop in edge.walk must reproduce bit for bit."""
    fa = 1 + fee_a_bps / 1e4
    fb = 1 - fee_b_bps / 1e4
    i = j = 0
    ra = asks[0][1] * level_share if asks else 0.0
    rb = bids[0][1] * level_share if bids else 0.0
    size = cost_px = proc_px = 0.0
    buy_worst = sell_worst = 0.0
    limited = "depth"
    while i < len(asks) and j < len(bids):
        pa, pb = asks[i][0], bids[j][0]
        # The per-unit hurdle: marginal net edge at least min_net_bps.
        if not (pb * rate * fb >= pa * (fa * (1 + min_net_bps / 1e4))):
            limited = "threshold" if pb * rate * fb > pa * fa else "edge"
            break
        q = min(ra, rb)
        caps = (
            (max_base - size, "base_balance"),
            ((max_notional - cost_px) / pa, "max_notional"),
            ((max_quote - cost_px * fa) / (pa * fa), "quote_balance"),
        )
        cap_hit = ""
        for c, name in caps:
            if c <= q:
                q, cap_hit = c, name
        if q > _EPS:
            size += q
            cost_px += pa * q
            proc_px += pb * q
            buy_worst, sell_worst = pa, pb
            ra -= q
            rb -= q
        if cap_hit:
            limited = cap_hit
            break
        if ra <= _EPS:
            i += 1
            ra = asks[i][1] * level_share if i < len(asks) else 0.0
        if rb <= _EPS:
            j += 1
            rb = bids[j][1] * level_share if j < len(bids) else 0.0
    if size <= _EPS:
        return Walk(limited_by=limited)
    buy_vwap = cost_px / size
    sell_vwap = proc_px / size
    bid_conv = sell_vwap * rate
    return Walk(
        size=size, buy_vwap=buy_vwap, sell_vwap=sell_vwap, buy_worst=buy_worst,
        sell_worst=sell_worst, notional=cost_px,
        profit=net_profit(buy_vwap, bid_conv, size, fee_a_bps, fee_b_bps, flat_cost),
        gross_bps=gross_bps(buy_vwap, bid_conv),
        net_bps=net_bps(buy_vwap, bid_conv, fee_a_bps, fee_b_bps, size=size, flat_cost=flat_cost),
        limited_by=limited,
    )


def _bits(f):
    try:
        w = f()
    except ArithmeticError as e:
        return type(e).__name__
    return tuple(struct.pack("<d", x) if isinstance(x, float) else x
                 for x in msgspec.structs.astuple(w))


@pytest.mark.parametrize("seed", range(4))
def test_walk_matches_the_reference_bit_for_bit(seed) -> None:
    """Random books and parameters, including zero / negative / infinite / NaN
    prices, dust sizes, every cap finite or not, zero and negative balances."""
    rng = random.Random(seed)
    odd_px = [0.0, -0.0, -1.0, 1e-13, math.inf, -math.inf, math.nan, 1e300]
    odd_sz = [0.0, -0.0, 1e-13, 0.5, 1e300, -1.0]

    def levels(mid, sign):
        out, px = [], mid
        for _ in range(rng.choice((0, 1, 2, 3, 5, 8))):
            px = round(px + sign * rng.choice((0.1, 0.5, 1.0)), 2)
            out.append((rng.choice(odd_px) if rng.random() < 0.03 else px,
                        rng.choice(odd_sz) if rng.random() < 0.05 else rng.choice((0.1, 1.0, 2.5))))
        return out

    kinds = set()
    for _ in range(20_000):
        mid = rng.uniform(90, 110)
        asks = levels(mid - rng.uniform(0, 3), 1)
        bids = levels(mid + rng.uniform(0, 3), -1)
        args = (asks, bids, rng.choice((0.0, 1.0, 10.0)), rng.choice((0.0, 2.5, 25.0)))
        kw = {"min_net_bps": rng.choice((0.0, 0.0, 2.0, 25.0, -5.0)),
              "flat_cost": rng.choice((0.0, 0.05)), "rate": rng.choice((1.0, 0.99, 1.02)),
              "max_notional": rng.choice((math.inf, 1e4, 150.0, 0.0)),
              "max_quote": rng.choice((math.inf, math.inf, 60.0, 0.0, -1.0)),
              "max_base": rng.choice((math.inf, math.inf, 0.3, 0.0)),
              "level_share": rng.choice((1.0, 0.5))}
        got = _bits(lambda a=args, k=kw: walk(*a, **k))
        assert got == _bits(lambda a=args, k=kw: _walk_reference(*a, **k)), (args, kw)
        kinds.add(got if isinstance(got, str) else got[-1])
    # every way a walk can end was exercised
    assert kinds >= {"edge", "threshold", "depth", "max_notional", "quote_balance",
                     "base_balance"}


def test_marginal_profit_is_net_profit_of_one_unit_bit_for_bit() -> None:
    rng = random.Random(7)
    odd = [0.0, -0.0, 1.0, -1.0, 1e-300, 1e300, math.inf, -math.inf, math.nan]
    for _ in range(50_000):
        ask, bid = (rng.choice(odd) if rng.random() < 0.1 else rng.uniform(0.5, 2e5)
                    for _ in range(2))
        fa, fb = (rng.choice((0.0, 1.0, 2.5, 10.0, 25.0, -1.0)) for _ in range(2))
        got = struct.pack("<d", marginal_profit(ask, bid, fa, fb))
        assert got == struct.pack("<d", net_profit(ask, bid, 1.0, fa, fb)), (ask, bid, fa, fb)
