"""The one net-edge formula and the depth walk, checked against hand arithmetic."""

from __future__ import annotations

import math

import pytest

from arbtui.backend.edge import gross_bps, net_bps, net_profit, walk

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
    w = walk([(101.0, 1.0)], [(101.0, 3.0)], 0, 0)
    assert w.size == 0 and w.limited_by == "edge" and w.profit == 0
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
