"""Fixed-width formatting and layout budgets of the dashboard (pure functions, no app)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbtui.fmt import fmt_age_ms, fmt_bps, fmt_money, fmt_px, fmt_sz
from arbtui.ui.widgets.header import header_text, mode_label
from arbtui.ui.widgets.venue_panel import layout_for

finite = st.floats(min_value=1e-8, max_value=1e7, allow_nan=False, allow_infinity=False)


@given(finite)
def test_price_and_size_cells_never_change_width(x):
    # A changing price must never change a column width (no re-layout per tick).
    assert len(fmt_px(x)) == 10
    assert len(fmt_px(x, 8)) == 8
    assert len(fmt_sz(x)) == 8
    assert len(fmt_sz(x, 6)) == 6


@pytest.mark.parametrize("ms,want", [(0, "  0ms"), (999, "999ms"), (1500, " 1.5s"),
                                     (90_000, "   2m"), (None, "    —")])
def test_age(ms, want):
    assert fmt_age_ms(ms) == want


def test_bps_and_money_signs():
    assert fmt_bps(3.456, 6) == "  +3.5"
    assert fmt_bps(-12.0, 6) == " -12.0"
    assert fmt_money(15.214, 8) == "  +15.21"
    assert fmt_money(-25_000.0, 8) == "  -25.0k"


def _state(**kw):
    base = {"mode": "DEMO", "bus": {"kind": "embedded", "state": "up"}, "uptime_s": 61.0,
            "quotes_per_s": 20_000.0, "detect_p50_ms": 0.12, "detect_p99_ms": 0.85,
            "min_net_bps": 2.5,
            "extra": {"executor": {"pnl": 12.5, "pnl_ccy": "USD", "enabled": True}}}
    base.update(kw)
    return SimpleNamespace(**base)


def test_header_keeps_execution_and_threshold_at_80_columns():
    t = header_text(_state(), now_ns=0, width=80, focused="BTC-USD", paused=True, execution=True)
    assert len(t.plain) <= 80
    assert "EXEC ON" in t.plain and "thr +2.5bps" in t.plain and "DEMO" in t.plain
    wide = header_text(_state(), now_ns=0, width=200, focused="BTC-USD", paused=True,
                       execution=False)
    for part in ("EXEC OFF", "20k q/s", "det 0.12/0.85ms", "PnL +12.50 USD", "bus embedded up",
                 "up 00:01:01", "LOG PAUSED", "00:00:00 UTC"):
        assert part in wide.plain


def test_replay_mode_label():
    assert mode_label(_state(mode="REPLAY", extra={"replay": {"speed": 5.0}})) == "REPLAY ×5"
    assert mode_label(_state(mode="REPLAY", extra={"replay": {"speed": "max",
                                                               "finished": True}})) == "REPLAY max done"


@pytest.mark.parametrize("width,lines,nsym,want", [
    (56, 10, 2, (True, True, False, 5)),    # wide panel: sizes inline, full ladder
    (36, 11, 2, (False, True, True, 4)),    # narrow: size lines first, then ladder levels
    (36, 8, 2, (False, True, False, 3)),    # tight: ladder keeps 3 levels, no size lines
    (36, 3, 2, (False, False, False, 0)),   # compact: state + one line per symbol only
])
def test_panel_layout_budget(width, lines, nsym, want):
    assert layout_for(width, lines, nsym) == want


def _panel(status, quotes=None):
    from arbtui.ui.widgets.venue_panel import PanelInput

    return PanelInput(index=1, venue="binance", status=status, quotes=quotes or {},
                      symbols=["BTC-USDT"], best_bid={}, best_ask={}, focused="BTC-USDT",
                      now_ns=10**18, disabled=False, disabled_symbols=set(), max_lines=6)


def test_panel_state_line_says_not_connected_not_syncing():
    # Live mode without network: the feed reports SYNCING with its socket down (gaierror).
    from arbtui.model import BookState, VenueStatus
    from arbtui.ui.widgets.venue_panel import panel_text, state_text, state_word

    st = VenueStatus(venue="binance", state=BookState.SYNCING, connected=False, reconnects=3,
                     reason="reconnecting in 9.6s (gaierror: [Errno -2] Name or service not known)")
    p = _panel(st)
    assert state_word(p) == "NOT CONNECTED"
    label, style = state_text(p)
    assert label == "NOT CONNECTED gaierror, retry 10s" and "red" in style
    line = panel_text(p, 34).plain.splitlines()[0]
    assert line.startswith("NOT CONNECTED gaierror, retry 10s") and "SYNCING" not in line
    # Connected, waiting for the snapshot: that is what SYNCING means.
    st = VenueStatus(venue="binance", state=BookState.SYNCING, connected=True,
                     reason="BTC-USDT: snapshot")
    assert state_text(_panel(st))[0] == "SYNCING BTC-USDT: snapshot"


@pytest.mark.parametrize("width", [34, 40, 54, 60, 80])
def test_panel_symbols_are_never_cut_into_another_symbol(width):
    # At 8 columns "DOGE-USDT" read as DOGE-USD and a perp venue's "BTC-USDT-PERP" as the
    # spot BTC-USDT: the symbol column takes the panel's longest symbol, prices give way.
    from ui_fixtures import quote

    from arbtui.model import BookState, VenueStatus
    from arbtui.ui.widgets.venue_panel import PanelInput, panel_text

    syms = ["BTC-USDT-PERP", "DOGE-USDT-PERP"]
    qs = {s: quote("okx-swap", s, 100.0, 100.5) for s in syms}
    st = VenueStatus(venue="okx-swap", state=BookState.LIVE, connected=True)
    p = PanelInput(index=9, venue="okx-swap", status=st, quotes=qs, symbols=syms, best_bid={},
                   best_ask={}, focused=syms[0], now_ns=qs[syms[0]].recv_ts_ns + 10**8,
                   disabled=False, disabled_symbols=set(), max_lines=8)
    rows = panel_text(p, width).plain.splitlines()
    assert any(r.startswith("BTC-USDT-PERP ") for r in rows), rows
    # 14 characters do not fit the 13-column cap: marked as cut, never shown as another name
    assert any(r.startswith("DOGE-USDT-PE… ") for r in rows), rows
