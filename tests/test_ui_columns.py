"""The opportunity log's column priority and the footer, at every terminal width.

Issue 15: at 100x30 NET read ``+56`` under a header ``N`` and profit, size and life were
gone; the footer cut ``enter`` and drew a stray character. Now the log plans its columns
from one priority table (``opportunity_log.COLUMNS``) and the footer plans its keys
(``keybar.plan_footer``): these check, for every width from 80 to 200, that the kept
columns are the most important ones and that every cell and every key label is whole.
The real widgets are held to the same numbers at the four snapshot sizes.
"""

from __future__ import annotations

import pytest
from ui_fixtures import T0, make_app, seed_market

from arbtui.model import Fill, OppEvent, Opportunity
from arbtui.ui.screens.dashboard import NARROW, log_width
from arbtui.ui.screens.keymap import FOOTER_PRIORITY, KEYMAP, footer_items
from arbtui.ui.widgets.keybar import footer_text, plan_footer
from arbtui.ui.widgets.opportunity_log import (
    BY_KEY,
    COLUMNS,
    MUST_KEEP,
    SCROLLBAR_W,
    OpportunityLog,
    OppRow,
    fit,
    plan_columns,
    row_cell,
)

SIZES = [(80, 24), (100, 30), (120, 40), (160, 50)]


def opp(i: int = 1, *, net: float = 3.9, profit: float = 3.87, size: float = 5.2758,
        p_catch: float | None = 0.62, ev: float | None = 2.4, kind: str = "spot",
        buy: str = "cryptocom", sell: str = "bitfinex", life_ms: float = 0.0,
        event: OppEvent = OppEvent.OPENED, symbol: str = "BTC-USDT") -> Opportunity:
    return Opportunity(
        id=f"o{i}", event=event, symbol=symbol, buy_venue=buy, sell_venue=sell,
        buy_price=64_000.0, sell_price=64_030.0, gross_bps=net + 20.0, net_bps=net,
        buy_fee_bps=10.0, sell_fee_bps=10.0, size=size, buy_vwap=64_001.25, sell_vwap=64_029.5,
        profit=profit, opened_ts_ns=T0 + i * 1_000_000, ts_ns=T0 + i * 1_000_000,
        lifetime_ms=life_ms, kind=kind, p_catch=p_catch, ev=ev)


#: Values at the edges of each formatter: wide numbers must shrink, never be cut.
EXTREME = [
    opp(1),
    opp(2, net=-12345.67, profit=-98765432.1, size=123456789.0, p_catch=None, ev=None,
        life_ms=9_000_000_000.0, event=OppEvent.CLOSED, kind="basis", symbol="BTC-USDT-PERP"),
    opp(3, net=99999.9, profit=1e12, size=0.000012, p_catch=1.0, ev=-1e9, kind="perp",
        life_ms=599_999.0),
]


def visible_log_width(term_w: int) -> int:
    """Columns the log plans with on a ``term_w`` terminal, charts as the dashboard puts them."""
    return log_width(term_w, charts=term_w >= NARROW) - SCROLLBAR_W


def test_every_width_keeps_the_priority_columns_whole():
    for term_w in range(80, 201):
        check_width(term_w)


def check_width(term_w: int) -> None:
    width = visible_log_width(term_w)
    cols = plan_columns(width)
    keys = [c.key for c in cols]
    assert sum(c.width for c in cols) <= width
    # time, symbol, venues, NET, profit, size, lifetime: at every width; and P with them.
    for k in (*MUST_KEEP, "p"):
        assert k in keys or (k == "route" and "route_full" in keys), (term_w, k, keys)
    # Priority: a column is left out only if it did not fit where it stood in the table.
    room = width - sum(c.width for c in cols)
    wider = {c.replaces for c in cols if c.replaces}
    for c in COLUMNS:
        if not c.replaces and c.key not in keys and c.key not in wider:
            assert c.width > room, (term_w, c.key, room)
    # Every cell exactly its column's width, the value in it whole.
    for o in EXTREME:
        row = OppRow(first=o, last=o, closed=o.event is OppEvent.CLOSED)
        cells = [row_cell(row, c, T0 + 5_000_000_000) for c in cols]
        line = "".join(t for t, _ in cells)
        assert len(line) <= width
        for c, (text, _) in zip(cols, cells, strict=True):
            assert len(text) == c.width and text.endswith(" "), (c.key, text)
            value = text.strip()
            assert value or c.key == "mk", (c.key, o.id)  # no marker without fills
            if c.right:  # numbers: a whole representation, never a cut one
                assert "…" not in value and value in whole_forms(c.key, row), (c.key, value)


def whole_forms(key: str, row: OppRow) -> set[str]:
    """Every representation ``row_cell`` may choose for a number (all of them whole)."""
    from arbtui.ui.widgets.opportunity_log import _num_options

    o = row.last
    kinds = {"net": (o.net_bps, "bps"), "gross": (o.gross_bps, "bps"), "profit": (o.profit, "money"),
             "ev": (o.ev, "money"), "size": (o.size, "size"), "buy_vwap": (o.buy_vwap, "px"),
             "sell_vwap": (o.sell_vwap, "px")}
    if key in kinds:
        return set(_num_options(*kinds[key])) | {"≫"}
    if key == "p":
        return {"—"} if o.p_catch is None else {f"{o.p_catch:.2f}"}
    if key == "life":
        ms = row.lifetime_ms(T0 + 5_000_000_000)
        from arbtui.fmt import fmt_lifetime

        return {fmt_lifetime(ms), f"{ms / 3_600_000:.0f}h", f"{ms / 86_400_000:.0f}d"}
    raise AssertionError(key)


def test_priority_table_is_the_issue_order():
    order = [c.key for c in COLUMNS if not c.replaces]
    # The seven every width keeps come first, in the issue's order; P and EV above gross/VWAPs.
    assert tuple(order[:7]) == MUST_KEEP
    assert order.index("p") < order.index("gross") and order.index("ev") < order.index("gross")
    assert order.index("gross") < order.index("buy_vwap") < order.index("sell_vwap")
    # At 80 columns (no charts) the log shows P and EV beside NET, profit, size and life.
    keys = {c.key for c in plan_columns(visible_log_width(80))}
    assert {"net", "profit", "size", "life", "p", "ev"} <= keys
    # Wide enough, everything.
    assert {c.key for c in plan_columns(200)} >= {c.key for c in COLUMNS if not c.replaces} - {
        "route", "kind"}


def test_fit_shrinks_precision_never_cuts():
    assert fit(("+12345.7", "+12346", "+12k"), 6) == "+12346"
    assert fit(("+12345.7", "+12346", "+12k"), 4) == "+12k"
    assert fit(("+12345.7",), 3) == "≫"


def test_p_catch_and_kind_cells():
    row = OppRow(first=opp(1), last=opp(1))
    assert row_cell(row, BY_KEY["p"], T0)[0] == "0.62 "
    none = opp(2, p_catch=None, kind="basis")
    row = OppRow(first=none, last=none)
    assert row_cell(row, BY_KEY["p"], T0)[0].strip() == "—"
    assert row_cell(row, BY_KEY["kind"], T0)[0] == "B "
    assert row_cell(row, BY_KEY["kind_word"], T0)[0] == "basis "


# ---------------------------------------------------------------------------- footer


def test_footer_labels_are_whole_and_question_mark_covers_the_rest():
    for width in range(60, 251):
        check_footer(width)


def check_footer(width: int) -> None:
    items = plan_footer(footer_items(), FOOTER_PRIORITY, width)
    text, spans = footer_text(footer_items(), FOOTER_PRIORITY, width)
    assert text.cell_len <= width
    everything = footer_items()
    shown = {it.action for it in items}
    for it, (start, end, action) in zip(items, spans, strict=True):
        assert text.plain[start:end] == f"{it.key} {it.label}" and action == it.action
    assert "app.quit" in shown and "help" in shown
    missing = {it.action for it in everything} - shown
    help_label = next(it.label for it in items if it.action == "help")
    assert help_label == ("More" if missing else "Help")
    # What the footer leaves out it leaves out by priority: the first keys always stay.
    rank = {a: i for i, a in enumerate(FOOTER_PRIORITY)}
    if width >= 80:
        assert all(rank[a] > rank["detail"] for a in missing if a in rank), (width, missing)


def test_every_binding_is_in_the_footer_priority_or_help():
    from arbtui.ui.screens.help import help_table

    keys = list(help_table().columns[0].cells)
    for k in KEYMAP:
        if k.show:
            assert k.action in FOOTER_PRIORITY or k.action == "threshold(-0.5)", k
            assert k.display in keys
    assert "o" in keys  # the sort key


# ---------------------------------------------------------------------------- real widgets


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def test_dashboard_log_and_footer_at_real_sizes(size):
    app, eng, clock = make_app()
    async with app.run_test(size=size) as pilot:
        await seed_market(eng)
        clock.advance(1000)
        app.dashboard.sample(force=True)
        await pilot.pause()
        log = app.dashboard.log_widget
        charts = app.dashboard.charts_visible()
        assert charts == (size[0] >= NARROW)
        assert log.size.width == log_width(size[0], charts)
        header = log.render_line(0).text
        for label in ("Time", "Symbol", "Net", "Profit", "Size", "Life", "P"):
            assert f" {label} " in f" {header} ", (label, header)
        rows = [log.render_line(y).text for y in range(1, 1 + log.row_count)]
        eth = next(r for r in rows if "ETH-USD" in r)
        o = next(r.last for r in log.rows_by_id.values() if r.last.symbol == "ETH-USD")
        for value in (f"{o.net_bps:+.1f}", f"{o.profit:+.2f}"):
            assert f" {value} " in eth, (value, eth)
        from arbtui.ui.widgets.keybar import KeyBar

        bar = app.dashboard.query_one(KeyBar)
        assert bar.plain == footer_text(footer_items(), FOOTER_PRIORITY, size[0])[0].plain


async def test_sort_by_ev_keeps_the_selected_row_and_o_toggles_it():
    app, _eng, _clock = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        log: OpportunityLog = app.dashboard.log_widget
        evs = [3.0, None, 9.0, 1.0]
        log.apply_events([opp(i, ev=e) for i, e in enumerate(evs)], T0)
        log.action_cursor_to(0)  # o0, ev 3.0
        await pilot.press("o")
        await pilot.pause()
        assert log.sort == "ev"
        assert log.view() == ["o2", "o0", "o3", "o1"]  # highest EV first, no estimate last
        assert log.selected().last.id == "o0"
        assert "EV▼" in log.render_line(0).text and "by EV" in str(log.border_title)
        # A new row with the best EV goes to the top; the cursor stays on o0.
        log.apply_events([opp(9, ev=50.0), Fill(opp_id="o3", venue="okx", symbol="BTC-USDT",
                                                 side="buy", requested=1.0, filled=1.0, vwap=1.0, fee=0.0,
                                                 status="filled", ts_ns=T0)], T0)
        assert log.view()[0] == "o9" and log.selected().last.id == "o0"
        await pilot.press("o")
        await pilot.pause()
        assert log.sort == "time" and log.view() == ["o0", "o1", "o2", "o3", "o9"]
        assert log.selected().last.id == "o0"


async def test_a_click_on_a_footer_key_runs_it():
    from arbtui.ui.widgets.keybar import KeyBar

    app, _eng, _clock = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        bar = app.dashboard.query_one(KeyBar)
        start, _end, action = next(sp for sp in bar._spans if sp[2] == "execution")
        assert not app.dashboard.last_state.execution_enabled
        await pilot.click(KeyBar, offset=(start + 1, 0))
        await pilot.pause()
        assert action == "execution" and app.dashboard.last_state.execution_enabled


def test_perp_venues_never_read_as_their_spot_sibling():
    from arbtui.ui.widgets.opportunity_log import short_venue
    from arbtui.venues import REGISTRY

    names = [s.name for s in REGISTRY]
    for width in (4, 9):
        shorts = [short_venue(v, width) for v in names]
        assert all(len(x) <= width for x in shorts)
        assert len(set(shorts)) == len(shorts), (width, shorts)
    assert short_venue("binance-usdm") == "binU" and short_venue("binance") == "bina"
    assert short_venue("binance-usdm", 9) == "binance·U" and short_venue("okx-swap", 9) == "okx-swap"
