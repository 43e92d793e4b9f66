"""Detector v2: hand-computed scenarios with exact net bps, size, VWAPs and profit."""

from __future__ import annotations

import pytest
from detector_fixtures import MS, Clock, dcfg, mkq

from arbtui.backend.detector import LIFETIME_BUCKETS_MS, Detector
from arbtui.config import ConversionConfig
from arbtui.model import BookState, BookStatus, OppEvent

ASKS_A = [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)]
BIDS_B = [(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)]


def two_venues(clock: Clock, **kw) -> tuple[Detector, list]:
    d = Detector(dcfg(**kw), {"kraken": 10.0, "gemini": 10.0}, clock=clock)
    out = d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t))
    out += d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t))
    return d, out


def test_two_venues_exact_numbers() -> None:
    clock = Clock()
    _d, out = two_venues(clock)
    assert len(out) == 1
    o = out[0]
    assert o.event is OppEvent.OPENED
    assert (o.buy_venue, o.sell_venue, o.symbol) == ("kraken", "gemini", "BTC-USD")
    # Depth walk (fees 10 bps each, fa = 1.001, fb = 0.999):
    #   1   @ 100.0 vs 101.5  marginal 1.2985
    #   0.5 @ 100.5 vs 101.5  marginal 0.7980
    #   1   @ 100.5 vs 101.0  marginal 0.2985
    #   next 100.5 vs 100.0 is a loss -> stop. size 2.5
    assert o.size == pytest.approx(2.5)
    assert o.buy_vwap == pytest.approx(100.3)  # (100 + 150.75) / 2.5
    assert o.sell_vwap == pytest.approx(101.3)  # (152.25 + 101) / 2.5
    assert o.profit == pytest.approx(1.996)  # 253.25*0.999 - 250.75*1.001
    assert o.net_bps == pytest.approx(1.996 / 251.00075 * 1e4)  # = 79.5217 bps
    assert o.gross_bps == pytest.approx(1 / 100.3 * 1e4)  # gross at the VWAPs, side by side
    assert o.top_gross_bps == pytest.approx(150.0)  # (101.5 - 100) / 100
    assert (o.buy_limit, o.sell_limit) == (100.5, 101.0)
    assert (o.buy_fee_bps, o.sell_fee_bps, o.quote_ccy, o.rate) == (10.0, 10.0, "USD", 1.0)
    assert o.buy_book == ASKS_A and o.sell_book == BIDS_B
    assert not o.suspect


def test_three_venues_each_pair_sized_on_its_own() -> None:
    clock = Clock()
    d = Detector(dcfg(), {"kraken": 10.0, "gemini": 10.0, "okx": 0.0}, clock=clock)
    out = d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t))
    out += d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t))
    out += d.on_quote(mkq("okx", "BTC-USD", [(101.2, 3.0)], [(101.7, 1.0)], recv=clock.t))
    opened = {(o.buy_venue, o.sell_venue): o for o in out if o.event is OppEvent.OPENED}
    # okx asks 101.7 are above every other bid, and gemini's 101.6 ask is above
    # okx's 101.2 bid: only the two kraken-buy windows exist.
    assert set(opened) == {("kraken", "gemini"), ("kraken", "okx")}
    o = opened[("kraken", "okx")]
    # kraken asks (fee 10) vs okx bid 101.2 x 3 (fee 0):
    #   1 @ 100.0: 101.2 - 100.1    = 1.1
    #   2 @ 100.5: 101.2 - 100.6005 = 0.5995 each -> okx depth used up (3)
    assert o.size == pytest.approx(3.0)
    assert o.buy_vwap == pytest.approx(301.0 / 3)
    assert o.sell_vwap == pytest.approx(101.2)
    assert o.profit == pytest.approx(303.6 - 301 * 1.001)  # 2.299
    assert o.net_bps == pytest.approx(2.299 / 301.301 * 1e4)  # 76.30 bps
    assert o.limited_by == "depth"
    assert opened[("kraken", "gemini")].size == pytest.approx(2.5)


def test_threshold_is_net_and_caps_apply() -> None:
    clock = Clock()
    # The threshold is a per-unit hurdle (edge.THRESHOLD_RULE). At 80 bps:
    #   1   @ 100.0 vs 101.5  marginal 1.2985 / 100.1    = 129.72 bps >= 80: taken
    #   0.5 @ 100.5 vs 101.5  marginal 0.7980 / 100.6005 =  79.32 bps <  80: stop
    # (the whole-depth average, 79.52 bps, would have reported nothing).
    _d, out = two_venues(clock, min_net_bps=80.0)
    assert len(out) == 1 and out[0].size == pytest.approx(1.0)
    assert out[0].net_bps == pytest.approx(1.2985 / 100.1 * 1e4)
    assert out[0].top_net_bps == pytest.approx(1.2985 / 100.1 * 1e4)
    assert out[0].limited_by == "threshold" and out[0].min_net_bps == 80.0
    # 129.72 bps < 130: the first unit does not clear it, nothing opens although
    # gross is 150 bps at the top.
    _d, out = two_venues(clock, min_net_bps=130.0)
    assert out == []
    _d, out = two_venues(clock, max_notional=100.0, max_level_share=0.5)
    # half of each level: 0.5 @ 100 vs 101.5 (notional 50), 0.25 @ 100.5 vs 101.5 (75.125),
    # then 100.5 vs 101 could take 0.5 but only (100 - 75.125) / 100.5 fits max_notional
    assert out[0].size == pytest.approx(0.5 + 0.25 + 24.875 / 100.5)
    assert out[0].size * out[0].buy_vwap == pytest.approx(100.0)
    assert out[0].limited_by == "max_notional"
    _d, out = two_venues(clock, min_notional=300.0)  # 250.75 notional is too small
    assert out == []


def test_wallet_balances_cap_the_size() -> None:
    clock = Clock()
    d = Detector(dcfg(), {"kraken": 10.0, "gemini": 10.0}, clock=clock)
    bal = {("kraken", "USD"): 1e9, ("gemini", "BTC"): 1.2}
    d.balances = lambda v, a, role: bal.get((v, a), 0.0)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t))
    out = d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t))
    assert out[0].size == pytest.approx(1.2) and out[0].limited_by == "base_balance"


def test_lifecycle_update_close_lifetime_histogram() -> None:
    clock = Clock()
    d, out = two_venues(clock)
    first = out[0]
    clock.t += 30 * MS
    # gemini bid improves to 102 (x1.5): the window grows -> UPDATED with new peak
    up = d.on_quote(mkq("gemini", "BTC-USD", [(102.0, 1.5), (101.0, 1.0)], [(102.1, 1)],
                        recv=clock.t))
    assert [e.event for e in up] == [OppEvent.UPDATED]
    assert up[0].id == first.id
    assert up[0].peak_net_bps == pytest.approx(up[0].net_bps) and up[0].net_bps > first.net_bps
    assert up[0].peak_profit > first.profit
    peak = up[0].peak_net_bps
    # the emitted OPENED event was not mutated by the update
    assert first.event is OppEvent.OPENED and first.size == pytest.approx(2.5)
    clock.t += 90 * MS
    gone = d.on_quote(mkq("gemini", "BTC-USD", [(100.0, 1.0)], [(100.2, 1)], recv=clock.t))
    assert [e.event for e in gone] == [OppEvent.CLOSED]
    c = gone[0]
    assert c.lifetime_ms == pytest.approx(120.0)
    assert c.peak_net_bps == pytest.approx(peak)
    assert c.reason == "edge gone"
    h = d.lifetime_histograms()["kraken>gemini"]
    assert sum(h) == 1 and h[LIFETIME_BUCKETS_MS.index(250)] == 1  # 100 < 120 <= 250 ms
    assert d.open == {}


def test_only_live_books_and_fresh_quotes() -> None:
    clock = Clock()
    d, _out = two_venues(clock)
    assert len(d.open) == 1
    closed = d.on_book_state(BookStatus(venue="gemini", symbol="BTC-USD", state=BookState.RESYNC,
                                        reason="checksum mismatch"))
    assert [e.event for e in closed] == [OppEvent.CLOSED]
    assert "gemini book RESYNC" in closed[0].reason
    # A quote drained after the status (it was published before it) is ignored.
    assert d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t)) == []
    assert d.counters["ignored_not_live"] == 1
    d.on_book_state(BookStatus(venue="gemini", symbol="BTC-USD", state=BookState.LIVE))
    assert len(d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1)], recv=clock.t))) == 1
    # Age: 2001 ms after kraken's receive time its quote no longer counts.
    clock.t += 2001 * MS
    swept = d.sweep()
    assert [e.reason for e in swept] == ["kraken book stale (not live for 2001 ms)"]
    assert d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1)], recv=clock.t)) == []


def test_suspect_edges_are_flagged() -> None:
    clock = Clock()
    d = Detector(dcfg(max_plausible_bps=300.0), {"kraken": 0.0, "gemini": 0.0}, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    out = d.on_quote(mkq("gemini", "BTC-USD", [(110.0, 1.0)], [(111.0, 1.0)], recv=clock.t))
    assert out[0].suspect and "implausible" in out[0].reason
    assert out[0].net_bps == pytest.approx(1000.0)


def test_cross_currency_with_live_conversion_book() -> None:
    clock = Clock()
    cfg = dcfg(quote_groups=[["USD", "USDT"]],
               conversions={"USDT": ConversionConfig(book="USDT-USD", venue="kraken",
                                                     max_age_ms=500.0)})
    d = Detector(cfg, {"kraken": 0.0, "binance": 0.0}, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    assert d.on_quote(mkq("binance", "BTC-USDT", [(102.0, 2.0)], [(103.0, 1)], recv=clock.t)) == []
    # Blocked, with the reason visible; never compared at an implicit rate of 1.
    assert d.blocked_comparisons() == [{"a": "BTC-USD", "b": "BTC-USDT",
                                        "reason": "USDT->USD rate: no LIVE USDT-USD book on kraken"}]
    d.on_quote(mkq("kraken", "USDT-USD", [(0.9899, 1e6)], [(0.9901, 1e6)], recv=clock.t))
    out = d.on_quote(mkq("binance", "BTC-USDT", [(102.0, 2.0)], [(103.0, 1)], recv=clock.t))
    assert d.blocked_comparisons() == []
    o = out[0]
    # mid rate (0.9899 + 0.9901) / 2 = 0.99 USD per USDT: 102 USDT = 100.98 USD
    assert (o.buy_venue, o.symbol, o.sell_venue, o.sell_symbol) == \
        ("kraken", "BTC-USD", "binance", "BTC-USDT")
    assert o.rate == pytest.approx(0.99)
    assert o.size == pytest.approx(1.0)  # kraken ask depth
    assert o.sell_vwap == pytest.approx(102.0)  # in USDT
    assert o.profit == pytest.approx(0.98)  # in USD
    assert o.quote_ccy == "USD"
    assert o.net_bps == pytest.approx(98.0)
    # The rate goes stale (500 ms): the window closes with the reason.
    clock.t += 501 * MS
    swept = d.sweep()
    assert len(swept) == 1 and "USDT-USD on kraken not live for 501 ms" in swept[0].reason


def test_cross_currency_fixed_rate_and_groups() -> None:
    clock = Clock()
    cfg = dcfg(quote_groups=[["USD", "USDC"], ["USDT"]],
               conversions={"USDC": ConversionConfig(rate=0.5, to="USD")})
    d = Detector(cfg, {}, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    # USDT is in another group: never compared, not even listed as blocked.
    assert d.on_quote(mkq("okx", "BTC-USDT", [(200.0, 1.0)], [(201.0, 1)], recv=clock.t)) == []
    assert d.blocked == {}
    # A fixed rate the operator wrote down (an absurd 0.5 to make the direction obvious):
    # kraken bid 99 USD vs binance ask 150 USDC = 75 USD -> buy on binance, sell on kraken.
    out = d.on_quote(mkq("binance", "BTC-USDC", [(149.0, 1.0)], [(150.0, 1.0)], recv=clock.t))
    assert [(o.buy_venue, o.sell_venue) for o in out] == [("binance", "kraken")]
    o = out[0]
    assert o.rate == pytest.approx(2.0)  # USD -> USDC
    assert o.quote_ccy == "USDC"
    assert o.profit == pytest.approx(99 * 2 - 150)  # 48 USDC
    assert o.net_bps == pytest.approx(48 / 150 * 1e4)


def test_coinbase_usdc_is_the_usd_book() -> None:
    clock = Clock()
    d = Detector(dcfg(), {}, clock=clock)  # no USDC conversion configured at all
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    out = d.on_quote(mkq("coinbase", "BTC-USDC", [(101.0, 1.0)], [(102.0, 1.0)], recv=clock.t))
    assert [(o.buy_venue, o.sell_venue, o.sell_symbol) for o in out] == \
        [("kraken", "coinbase", "BTC-USD")]
    assert set(d.quotes["BTC-USD"]) == {"kraken", "coinbase"} and "BTC-USDC" not in d.quotes
    # a status for the alias symbol drops the one book
    d.on_book_state(BookStatus(venue="coinbase", symbol="BTC-USDC", state=BookState.STALE))
    assert set(d.quotes["BTC-USD"]) == {"kraken"} and d.open == {}


def test_clock_offset_is_a_rolling_median() -> None:
    clock = Clock()
    d = Detector(dcfg(), {}, clock=clock)
    for i, lag_ms in enumerate([5, 6, 7, 500, 6]):  # one 500 ms outlier
        vts = 10_000 * MS + i * MS
        d.on_quote(mkq("okx", "ETH-USDT", [(1.0, 1.0)], [(1.1, 1.0)], recv=vts + lag_ms * MS,
                       vts=vts))
    assert d.clock_offsets_ms() == {"okx": 6.0}


def test_toggles_close_windows() -> None:
    clock = Clock()
    d, _ = two_venues(clock)
    assert [e.reason for e in d.set_venue_enabled("gemini", False)] == ["gemini disabled"]
    assert d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t)) == []
    d.set_venue_enabled("gemini", True)
    assert len(d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1)], recv=clock.t))) == 1
    # A new threshold re-sizes the window (per-unit hurdle): at 100 bps only the
    # 129.72 bps first unit clears it; at 130 nothing does.
    up = d.set_threshold(100.0)
    assert [(e.event, e.size, e.limited_by) for e in up] == [(OppEvent.UPDATED, 1.0, "threshold")]
    assert [e.reason for e in d.set_threshold(130.0)] == ["below threshold"]
    # Lowered again, the window opens again without waiting for a new quote.
    assert [e.event for e in d.set_threshold(2.0)] == [OppEvent.OPENED]
    d.set_threshold(2.0)
    d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1)], recv=clock.t))
    assert [e.reason for e in d.set_symbol_enabled("BTC-USD", False)] == ["BTC-USD disabled"]


def test_batch_is_applied_before_it_is_evaluated() -> None:
    # Both venues move up together; processed one by one, kraken's new bid (101)
    # would meet gemini's superseded ask (100) and open a window that never was.
    def fresh() -> Detector:
        clock = Clock()
        d = Detector(dcfg(), {"kraken": 0.0, "gemini": 0.0}, clock=clock)
        d.on_quote(mkq("kraken", "BTC-USD", [(99.4, 1.0)], [(99.6, 1.0)], recv=clock.t))
        d.on_quote(mkq("gemini", "BTC-USD", [(99.5, 1.0)], [(100.0, 1.0)], recv=clock.t))
        assert d.open == {}
        return d

    batch = [mkq("kraken", "BTC-USD", [(101.0, 1.0)], [(101.2, 1.0)], recv=2),
             mkq("gemini", "BTC-USD", [(101.0, 1.0)], [(101.3, 1.0)], recv=3)]
    d = fresh()
    one_by_one = [e.event for q in batch for e in d.on_quote(q)]
    assert one_by_one == [OppEvent.OPENED, OppEvent.CLOSED]
    d = fresh()
    assert d.on_quotes(batch) == [] and d.open == {}
    # a real window in a batch still opens, once, on the latest quotes
    d = fresh()
    out = d.on_quotes([batch[0], mkq("gemini", "BTC-USD", [(100.0, 1)], [(100.2, 1)], recv=4)])
    assert [(e.event, e.buy_venue, e.buy_price, e.sell_price) for e in out] == \
        [(OppEvent.OPENED, "gemini", 100.2, 101.0)]
