"""The funding/basis panel's text (issue 18): numbers from edge.py's formulas."""

from __future__ import annotations

import pytest
from detector_fixtures import dcfg, mkq

from arbtui.backend.detector import Detector
from arbtui.model import Funding
from arbtui.ui.widgets.funding import funding_rows, funding_text

NOW = 1_765_000_000_000_000_000
HOUR = 3_600_000_000_000


def test_funding_panel_lines() -> None:
    """binance-usdm BTC-USDT-PERP: funding 0.0100 % per 8 h -> carry 0.0001 x 1095 = 10.95 %
    a year; perp mid 100.55 over the median spot mid (99.95 on binance, 100.05 on bybit:
    100.0) = 55.0 bps; mark 100.55 over index 99.95 = 60.0 bps; next funding in 3h12m.
    okx-swap quotes the perp with no funding yet: dashes, basis (100.15 / 100 - 1) 15.0 bps."""
    rows = [{"venue": "binance-usdm", "symbol": "BTC-USDT-PERP", "rate": 0.0001,
             "interval_h": 8.0, "next_funding_ts_ns": NOW + 3 * HOUR + 12 * 60_000_000_000,
             "mark": 100.55, "index": 99.95}]
    quotes = {("binance", "BTC-USDT"): mkq("binance", "BTC-USDT", [(99.9, 1)], [(100.0, 1)]),
              ("bybit", "BTC-USDT"): mkq("bybit", "BTC-USDT", [(100.0, 1)], [(100.1, 1)]),
              ("binance-usdm", "BTC-USDT-PERP"): mkq("binance-usdm", "BTC-USDT-PERP",
                                                     [(100.5, 1)], [(100.6, 1)]),
              ("okx-swap", "BTC-USDT-PERP"): mkq("okx-swap", "BTC-USDT-PERP",
                                                 [(100.1, 1)], [(100.2, 1)])}
    lines = funding_text(rows, quotes, NOW).plain.splitlines()
    assert lines[0].split() == ["perp", "venue", "funding", "next", "carry/yr", "basis", "bps",
                                "prem", "bps"]
    assert lines[1].split() == ["BTC-USDT-PERP", "binance-usdm", "+0.0100%/8h", "3h12m",
                                "+10.95%", "+55.0", "+60.0"]
    assert lines[2].split() == ["BTC-USDT-PERP", "okx-swap", "—", "—", "—", "+15.0", "—"]
    assert len({len(x) for x in lines}) == 1  # fixed columns


def test_funding_rows_come_from_the_detector_status() -> None:
    d = Detector(dcfg(), {})
    assert funding_rows({"detector": d.status()}) == []
    d.on_funding(Funding(venue="okx-swap", symbol="ETH-USDT-PERP", rate=-0.0002, interval_h=4))
    (r,) = funding_rows({"detector": d.status()})
    assert (r["venue"], r["symbol"], r["rate"]) == ("okx-swap", "ETH-USDT-PERP", -0.0002)
    assert r["carry_apr"] == pytest.approx(-0.0002 * 6 * 365)  # -43.8 % a year
    assert funding_rows({}) == [] and funding_rows(None) == []


async def test_dashboard_shows_the_panel_once_a_perp_is_quoted() -> None:
    """Hidden on a spot-only dashboard; shown with the perp's funding and basis once a perp
    book is quoted and funded (the real app and engine, tests/ui_fixtures.py)."""
    from ui_fixtures import T0, make_app, quote, seed_market

    from arbtui.ui.widgets.funding import FundingPanel

    app, eng, _clock = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await seed_market(eng)
        app.dashboard.sample(force=True)
        await pilot.pause()
        panel = app.dashboard.query_one(FundingPanel)
        assert not panel.display
        # the engine runs on the app's loop in tests: the detector is ours to call here
        eng.detector.on_funding(Funding(venue="binance", symbol="BTC-USD-PERP", rate=0.0001,
                                        interval_h=8.0, next_funding_ts_ns=T0 + 2 * HOUR,
                                        mark=64_040.0, index=64_000.0))
        # perp mid 64 045.0 over the median BTC-USD spot mid (64 005 binance, 64 010
        # coinbase: 64 007.5) = 5.86 bps
        await eng.push(quote("binance", "BTC-USD-PERP", 64_040.00, 64_050.00))
        app.dashboard.sample(force=True)
        await pilot.pause()
        assert panel.display
        (line,) = [x for x in panel.plain.splitlines() if x.startswith("BTC-USD-PERP")]
        assert line.split()[1:3] == ["binance", "+0.0100%/8h"]
        assert line.split()[4:] == ["+10.95%", f"{(64_045 / 64_007.5 - 1) * 1e4:+.1f}", "+6.2"]


def test_funding_rows_prefer_the_market() -> None:
    market = [{"venue": "bybit-linear", "symbol": "BTC-USDT-PERP", "rate": 0.0002}]
    det = {"funding": [{"venue": "okx-swap", "symbol": "BTC-USDT-PERP", "rate": 0.0001}]}
    assert funding_rows({"funding": market, "detector": det}) == market
    assert funding_rows({"detector": det}) == det["funding"]
