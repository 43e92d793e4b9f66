"""Spot-perp basis and perp-vs-perp windows (issue 18): hand-computed numbers through the
detector, the executor's short perp leg, the journal and the report."""

from __future__ import annotations

import json

import msgspec
import pytest
from detector_fixtures import MS, Clock, dcfg, mkq

from arbtui.backend import basis as basismod
from arbtui.backend.detector import Detector
from arbtui.backend.edge import basis_bps, carry_apr
from arbtui.backend.executor import Executor
from arbtui.backend.journal import Journal, connect
from arbtui.commands import report
from arbtui.config import ExecutionConfig, WalletConfig
from arbtui.model import Funding, OppEvent, Opportunity

SPOT, PERP = "BTC-USDT", "BTC-USDT-PERP"
FEES = {"binance": 10.0, "binance-usdm": 5.0, "okx-swap": 5.0, "bybit": 10.0}
SPOT_ASKS = [(100.0, 1.0), (100.1, 2.0)]
SPOT_BIDS = [(99.9, 1.0)]
PERP_BIDS = [(100.5, 1.5), (100.2, 3.0)]
PERP_ASKS = [(100.6, 1.0)]
NEXT_FUNDING = 1_765_008_000_000_000_000


def funding(venue: str = "binance-usdm", rate: float = 0.0001, interval_h: float = 8.0,
            ts: int = 1) -> Funding:
    return Funding(venue=venue, symbol=PERP, rate=rate, interval_h=interval_h,
                   next_funding_ts_ns=NEXT_FUNDING, mark=100.55, index=99.95, ts_ns=ts)


def basis_opened(clock: Clock) -> tuple[Detector, Opportunity]:
    d = Detector(dcfg(), FEES, clock=clock)
    assert d.on_funding(funding()) == []
    assert d.on_quote(mkq("binance", SPOT, SPOT_BIDS, SPOT_ASKS, recv=clock.t)) == []
    (o,) = d.on_quote(mkq("binance-usdm", PERP, PERP_BIDS, PERP_ASKS, recv=clock.t))
    return d, o


def test_basis_hand_computed() -> None:
    """Buy spot BTC-USDT on binance (taker 10 bps), sell BTC-USDT-PERP on binance-usdm
    (taker 5 bps), threshold 2 bps: fa = 1.001, fb = 0.9995, hurdle 1.0002.

    spot asks (100.0, 1), (100.1, 2); spot bid 99.9.  perp bids (100.5, 1.5), (100.2, 3);
    perp ask 100.6.  Funding 0.0001 (0.01 %) per 8 h.

    Per-unit hurdle walk (a unit is taken when bid x fb >= ask x fa x 1.0002):
      1   @ 100.0 vs 100.5:  100.5 x 0.9995 = 100.44975 >= 100.0 x 1.001 x 1.0002 = 100.12002
      0.5 @ 100.1 vs 100.5:  100.44975 >= 100.1 x 1.001 x 1.0002 = 100.22014
      next  100.1 vs 100.2:  100.2 x 0.9995 = 100.1499 < 100.1 x 1.001 = 100.2001: a loss,
                             limited_by "edge"
    size 1.5; buy notional 100 + 50.05 = 150.05 (VWAP 100.0333..), sell 1.5 x 100.5 = 150.75
    cost     = 150.05 x 1.001   = 150.20005
    proceeds = 150.75 x 0.9995  = 150.674625
    profit   = 0.474575 USDT;   net = 0.474575 / 150.20005 x 1e4 = 31.596 bps
    top net  = 100.44975 / 100.1 - 1 = 34.94 bps; top gross (100.5 - 100) / 100 = 50 bps
    basis    = (perp mid 100.55 - spot mid 99.95) / 99.95 x 1e4 = 60.030 bps
    carry    = 0.0001 x (24 / 8) x 365 = 0.1095 = 10.95 % a year, received by the short
    """
    clock = Clock()
    _d, o = basis_opened(clock)
    assert o.event is OppEvent.OPENED and o.kind == "basis"
    assert (o.symbol, o.sell_symbol, o.buy_venue, o.sell_venue) == (
        SPOT, PERP, "binance", "binance-usdm")
    assert o.size == pytest.approx(1.5)
    assert o.buy_vwap == pytest.approx(150.05 / 1.5) and o.sell_vwap == pytest.approx(100.5)
    assert o.profit == pytest.approx(0.474575)
    assert o.net_bps == pytest.approx(0.474575 / 150.20005 * 1e4)
    assert o.net_bps == pytest.approx(31.596, abs=1e-3)
    assert o.top_net_bps == pytest.approx((100.44975 / 100.1 - 1) * 1e4)
    assert o.top_gross_bps == pytest.approx(50.0)
    assert o.limited_by == "edge" and (o.buy_limit, o.sell_limit) == (100.1, 100.5)
    assert (o.buy_fee_bps, o.sell_fee_bps, o.quote_ccy, o.rate) == (10.0, 5.0, "USDT", 1.0)
    assert o.basis_bps == pytest.approx(0.6 / 99.95 * 1e4)
    assert o.basis_bps == pytest.approx(60.030, abs=1e-3)
    assert (o.funding_rate, o.funding_interval_h) == (0.0001, 8.0)
    assert o.next_funding_ts_ns == NEXT_FUNDING
    assert o.carry_apr == pytest.approx(0.1095)
    # the formulas as edge.py states them
    assert basis_bps(99.95, 100.55) == pytest.approx(o.basis_bps)
    assert carry_apr(0.0001, 8) == pytest.approx(0.1095) and carry_apr(0.0001, 0) == 0.0


def test_basis_sells_only_the_perp() -> None:
    """Perp BELOW spot would need spot sold (base we do not hold): never a window. Spot
    on two venues still makes its spot window, and the perp books only a perp one."""
    clock = Clock()
    d = Detector(dcfg(), FEES, clock=clock)
    out = d.on_quote(mkq("binance", SPOT, [(101.0, 1.0)], [(101.1, 1.0)], recv=clock.t))
    out += d.on_quote(mkq("binance-usdm", PERP, [(99.0, 1.0)], [(99.1, 1.0)], recv=clock.t))
    assert out == []
    out = d.on_quote(mkq("bybit", SPOT, [(101.5, 1.0)], [(101.6, 1.0)], recv=clock.t))
    assert [(o.kind, o.buy_venue, o.sell_venue) for o in out] == [("spot", "binance", "bybit")]
    assert out[0].basis_bps == 0.0 and out[0].carry_apr == 0.0
    out = d.on_quote(mkq("okx-swap", PERP, [(99.5, 2.0)], [(99.6, 2.0)], recv=clock.t))
    assert [(o.kind, o.symbol, o.buy_venue, o.sell_venue) for o in out] == [
        ("perp", PERP, "binance-usdm", "okx-swap")]


def test_perp_vs_perp_is_the_spot_rule_with_net_funding() -> None:
    """The same perp on two venues, sized exactly as spot (test_detector's numbers, fees 5 +
    5 bps): buy okx-swap asks (100, 1), sell binance-usdm bids (100.5, 1.5).
      100.5 x 0.9995 = 100.44975 >= 100 x 1.0005 x 1.0002 = 100.070... : 1 unit, depth ends
      profit 100.44975 - 100.05 = 0.39975; net 0.39975 / 100.05 x 1e4 = 39.955 bps
    Funding: short binance-usdm receives 0.0001 / 8 h, long okx-swap pays 0.00005 / 8 h:
      net rate 0.00005, carry 0.0001 x 1095 - 0.00005 x 1095 = 0.05475 a year."""
    clock = Clock()
    d = Detector(dcfg(), FEES, clock=clock)
    d.on_funding(funding("binance-usdm", 0.0001))
    d.on_funding(funding("okx-swap", 0.00005))
    d.on_quote(mkq("okx-swap", PERP, [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    (o,) = d.on_quote(mkq("binance-usdm", PERP, [(100.5, 1.5)], [(100.6, 1.0)], recv=clock.t))
    assert (o.kind, o.buy_venue, o.sell_venue, o.sell_symbol) == (
        "perp", "okx-swap", "binance-usdm", PERP)
    assert o.size == pytest.approx(1.0) and o.limited_by == "depth"
    assert o.profit == pytest.approx(0.39975)
    assert o.net_bps == pytest.approx(0.39975 / 100.05 * 1e4)
    assert o.quote_ccy == "USDT" and o.basis_bps == 0.0
    assert o.funding_rate == pytest.approx(0.00005) and o.funding_interval_h == 8.0
    assert o.carry_apr == pytest.approx(0.05475)


def test_spot_events_unchanged_by_perp_books() -> None:
    """Spot-vs-spot detection is the same with perp books around: every spot event, byte
    for byte (the id's sequence number aside), equals the spot-only run's."""

    def run(with_perps: bool) -> list[bytes]:
        clock = Clock()
        d = Detector(dcfg(), FEES, clock=clock)
        out: list[Opportunity] = []
        steps = [("binance", SPOT, [(99.0, 1.0)], [(100.0, 1.0), (100.5, 2.0)]),
                 ("binance-usdm", PERP, [(100.7, 2.0)], [(100.8, 1.0)]),
                 ("bybit", SPOT, [(101.5, 1.5), (101.0, 1.0)], [(101.6, 1.0)]),
                 ("okx-swap", PERP, [(100.9, 1.0)], [(101.0, 1.0)]),
                 ("bybit", SPOT, [(100.8, 0.5)], [(101.6, 1.0)]),
                 ("binance", SPOT, [(99.0, 1.0)], [(101.0, 1.0)])]
        for venue, sym, bids, asks in steps:
            clock.t += MS
            if basismod.is_perp(sym) and not with_perps:
                continue
            out += d.on_quotes([mkq(venue, sym, bids, asks, recv=clock.t)])
        return [msgspec.json.encode(msgspec.structs.replace(o, id=o.id.rsplit(":", 1)[0]))
                for o in out if o.kind == "spot"]

    spot_only, mixed = run(False), run(True)
    assert len(spot_only) == 3  # opened, updated, closed
    assert mixed == spot_only


def test_basis_window_lifecycle_funding_sweep_and_close() -> None:
    clock = Clock()
    d, o = basis_opened(clock)
    # a funding change is copied onto the open window (no event of its own)
    assert d.on_funding(funding(rate=0.0003, ts=2)) == []
    assert d.on_funding(funding(rate=0.0009, ts=1)) == []  # older: ignored
    (live,) = [x.opp for x in d.open.values()]
    assert live.funding_rate == 0.0003 and live.carry_apr == pytest.approx(0.3285)
    # the sweep keeps it (no conversion rate is involved in a basis pair) ...
    clock.t += 1000 * MS
    assert d.sweep() == []
    # ... until a leg is no longer live
    clock.t += 1500 * MS
    (c,) = d.sweep()
    assert c.event is OppEvent.CLOSED and c.kind == "basis" and "book stale" in c.reason
    assert c.funding_rate == 0.0003 and c.id == o.id
    # the perp bid falling under the hurdle closes a reopened window
    clock.t += MS
    d.on_quote(mkq("binance", SPOT, SPOT_BIDS, SPOT_ASKS, recv=clock.t))
    (o2,) = d.on_quote(mkq("binance-usdm", PERP, PERP_BIDS, PERP_ASKS, recv=clock.t))
    (c2,) = d.on_quote(mkq("binance-usdm", PERP, [(100.0, 1.0)], PERP_ASKS, recv=clock.t))
    assert (o2.event, c2.event, c2.reason) == (OppEvent.OPENED, OppEvent.CLOSED, "edge gone")


def ecfg(margin: float) -> ExecutionConfig:
    return ExecutionConfig(
        enabled=True, min_net_bps=2.0, latency_ms={"binance": 20.0, "binance-usdm": 10.0},
        jitter_ms=0.0, max_notional=1e9, one_leg_policy="keep",
        wallets={"binance": WalletConfig(base=0.0, quote=1000.0),
                 "binance-usdm": WalletConfig(base=5.0, quote=margin)})


def test_basis_execution_opens_a_collateralized_short() -> None:
    """The hand-computed window executed: buy 1.5 spot, sell 1.5 perp (a short).
    perp: 1.5 x 100.5 = 150.75, fee x 0.0005 = 0.075375 -> margin wallet +150.674625,
          position BTC-USDT-PERP -1.5 (starts flat, whatever the base row says)
    spot: 100 + 0.5 x 100.1 = 150.05, fee 0.15005 -> USDT -150.20005, BTC +1.5
    PnL 150.674625 - 150.20005 = 0.474575 USDT (the detected profit: nothing moved)."""
    clock = Clock()
    _d, o = basis_opened(clock)
    ex = Executor(ecfg(margin=1000.0), FEES, clock=clock)
    buy, sell = ex.on_opportunity(o)
    assert (buy.symbol, sell.symbol, buy.qty, sell.qty) == (SPOT, PERP, 1.5, 1.5)
    # the short's margin is held in flight: 1.5 x 100.5 x 1.0005
    assert ex.reserved[("binance-usdm", "USDT")] == pytest.approx(1.5 * 100.5 * 1.0005)
    clock.t = sell.arrive_ns
    (fs,), _ = ex.on_arrival(sell, mkq("binance-usdm", PERP, PERP_BIDS, PERP_ASKS), True)
    assert (fs.status, fs.symbol, fs.fee_ccy) == ("filled", PERP, "USDT")
    assert fs.fee == pytest.approx(0.075375)
    clock.t = buy.arrive_ns
    (fb,), follow = ex.on_arrival(buy, mkq("binance", SPOT, SPOT_BIDS, SPOT_ASKS), True)
    assert follow == [] and fb.reason == "matched"
    assert fb.pnl == pytest.approx(0.474575) and fb.pnl_ccy == "USDT"
    w = ex.wallets
    assert w.get("binance-usdm", PERP) == pytest.approx(-1.5)
    assert w.get("binance-usdm", "USDT") == pytest.approx(1150.674625)
    assert w.get("binance", "BTC") == pytest.approx(1.5)
    assert w.get("binance", "USDT") == pytest.approx(849.79995)
    assert ex.reserved[("binance-usdm", "USDT")] == pytest.approx(0.0)
    # the accounting identity of executor.py, perps included
    assert sum(b - w.initial[k] for k, b in w.bal.items() if k[1] == "USDT") == pytest.approx(
        ex.realized["USDT"])


def test_basis_short_is_capped_by_margin() -> None:
    """100 USDT of margin shorts at most 100 / (100.5 x 1.0005) = 0.99453 units (1x)."""
    clock = Clock()
    _d, o = basis_opened(clock)
    ex = Executor(ecfg(margin=100.0), FEES, clock=clock)
    buy, sell = ex.on_opportunity(o)
    cap = 100.0 / (100.5 * 1.0005)
    assert sell.qty == pytest.approx(cap) and buy.qty == sell.qty
    # the in-flight short holds that margin: a detector sizing from these wallets sees none
    d = Detector(dcfg(), FEES, clock=clock)
    d.balances = ex.balance_cap
    d.on_quote(mkq("binance", SPOT, SPOT_BIDS, SPOT_ASKS, recv=clock.t))
    assert d.on_quote(mkq("binance-usdm", PERP, PERP_BIDS, PERP_ASKS, recv=clock.t)) == []
    # and with fresh wallets the detector sizes against the same cap as the executor
    d = Detector(dcfg(), FEES, clock=clock)
    d.balances = Executor(ecfg(margin=100.0), FEES, clock=clock).balance_cap
    d.on_quote(mkq("binance", SPOT, SPOT_BIDS, SPOT_ASKS, recv=clock.t))
    (o2,) = d.on_quote(mkq("binance-usdm", PERP, PERP_BIDS, PERP_ASKS, recv=clock.t))
    assert o2.size == pytest.approx(cap) and o2.limited_by == "base_balance"


def test_basis_through_journal_and_report(tmp_path) -> None:
    """Events and fills of a basis trade land in the journal with their kind; the report
    counts them by kind and books the PnL to it. An older journal without the column
    reads as spot."""
    clock = Clock()
    d, o = basis_opened(clock)
    ex = Executor(ecfg(margin=1000.0), FEES, clock=clock)
    buy, sell = ex.on_opportunity(o)
    fills = ex.on_arrival(sell, mkq("binance-usdm", PERP, PERP_BIDS, PERP_ASKS), True)[0]
    fills += ex.on_arrival(buy, mkq("binance", SPOT, SPOT_BIDS, SPOT_ASKS), True)[0]
    clock.t += 5000 * MS
    closed = d.sweep()
    path = tmp_path / "j.sqlite"
    j = Journal(path, flush_ms=5)
    for e in [o, *fills, *closed]:
        j.append(e)
    assert j.flush()
    j.close()
    con = connect(path)
    rows = con.execute("SELECT event, kind, basis_bps, carry_apr FROM opportunities").fetchall()
    con.close()
    assert [r[:2] for r in rows] == [("opened", "basis"), ("closed", "basis")]
    assert rows[0][2] == pytest.approx(60.030, abs=1e-3) and rows[0][3] == pytest.approx(0.1095)
    r = report.build(path)
    k = r["per_kind"]["basis"]
    assert (k["opportunities"], k["closed"]) == (1, 1)
    assert k["median_basis_bps"] == pytest.approx(60.030, abs=1e-3)
    assert k["median_carry_apr"] == pytest.approx(0.1095)
    assert r["realized_pnl_by_kind"] == {"basis": {"USDT": pytest.approx(0.474575)}}
    text = report.render(r, charts=False, color=False)
    assert "kind" in text and "median basis 60.03 bps" in text and "10.95 %/yr" in text
    json.dumps(r)
    # an old journal (no kind column), opened read-only by the report: all spot
    old = tmp_path / "old.sqlite"
    con = connect(old)
    con.execute("ALTER TABLE opportunities DROP COLUMN carry_apr")
    con.execute("ALTER TABLE opportunities DROP COLUMN basis_bps")
    con.execute("ALTER TABLE opportunities DROP COLUMN kind")
    con.execute("INSERT INTO opportunities (ts_ns, event, opp_id, symbol, sell_symbol, net_bps, "
                "peak_net_bps, lifetime_ms, quote_ccy) VALUES (1, 'closed', 'x', 'BTC-USD', "
                "'BTC-USD', 5, 6, 10, 'USD')")
    con.commit()
    con.close()
    assert list(report.build(old)["per_kind"]) == ["spot"]
    con = connect(old)  # opened for writing: the columns are added, old rows are spot
    assert con.execute("SELECT kind FROM opportunities").fetchall() == [("spot",)]
    con.close()


def test_basis_benchmark_runs_both_shapes() -> None:
    """benchmarks.basis on a tiny market: the perp shape makes all three kinds."""
    from benchmarks.basis import cost, table

    spot, perp = cost(3, 2, 0, 3000, 1), cost(3, 2, 1, 3000, 1)
    assert set(spot["events"]) == {"spot"}
    assert {"spot", "basis", "perp"} >= set(perp["events"]) >= {"basis"}
    assert "| 3×2 | perp: 2 spot + 1 perp venues |" in table([spot, perp])


def test_only_linear_perps_settled_in_the_spot_quote_are_shorted() -> None:
    """okx-swap's BTC-USD-PERP is inverse (100 USD contracts, settled in BTC: the venue's
    instrument table): its PnL is in BTC, so it is never the short of a basis trade, and
    it meets no other perp; BTC-USDT-PERP there is linear in USDT and is."""
    assert basismod.contract("okx-swap", "BTC-USD-PERP") == ("inverse", "BTC")
    assert basismod.linear_in_quote("okx-swap", "BTC-USDT-PERP")
    assert not basismod.linear_in_quote("okx-swap", "BTC-USD-PERP")
    clock = Clock()
    d = Detector(dcfg(), {"kraken": 10.0, "okx-swap": 5.0, "bybit-linear": 5.0}, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.9, 1.0)], [(100.0, 1.0)], recv=clock.t))
    assert d.on_quote(mkq("okx-swap", "BTC-USD-PERP", [(101.0, 1.0)], [(101.1, 1.0)],
                          recv=clock.t)) == []
    assert d.on_quote(mkq("bybit-linear", "BTC-USD-PERP", [(99.0, 1.0)], [(99.1, 1.0)],
                          recv=clock.t)) == []  # linear there: never meets the inverse one
