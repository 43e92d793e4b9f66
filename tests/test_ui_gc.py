"""What the dashboard holds on to, and the GC policy it runs under.

Full garbage collections walk every tracked object with the GIL held; under
load they were the dashboard's key-press stalls (benchmarks/ui.py --trace).
These tests pin the two fixes' behaviour, never their speed: the opportunity
log caches rendered strips only for rows in view (and a row re-rendered after
scrolling back is identical), and ``gc_tuning`` sets and then undoes the policy.
"""

from __future__ import annotations

import gc

import ui_fixtures
from textual.app import App, ComposeResult
from ui_fixtures import T0, seed_market

from arbtui.backend.gcpolicy import DASHBOARD_GEN0, DASHBOARD_GEN2
from arbtui.model import OppEvent, Opportunity
from arbtui.ui.widgets.opportunity_log import OpportunityLog


def opp(i: int, event: OppEvent = OppEvent.OPENED) -> Opportunity:
    return Opportunity(
        id=f"o{i}", event=event, symbol="BTC-USD" if i % 2 else "ETH-USD",
        buy_venue="binance", sell_venue="coinbase", buy_price=100.0 + i, sell_price=101.0 + i,
        gross_bps=10.0 + i % 7, net_bps=(i % 11) - 3.0, buy_fee_bps=1.0, sell_fee_bps=1.0,
        size=0.5, profit=1.25 * i, opened_ts_ns=T0 + i * 1_000_000, ts_ns=T0 + i * 1_000_000,
        lifetime_ms=12.0 if event is OppEvent.CLOSED else 0.0,
        buy_book=[(100.0 + i, 1.0)], sell_book=[(101.0 + i, 1.0)])


class LogApp(App):
    def compose(self) -> ComposeResult:
        yield OpportunityLog(cap=500, id="log")

    def clock(self) -> int:
        return T0 + 2_000_000_000


def row_text(log: OpportunityLog, y: int) -> tuple[str, list]:
    strip = log.render_line(y)
    return strip.text, [(s.text, s.style) for s in strip]


async def test_log_caches_strips_only_for_rows_in_view_and_rerenders_them_identically():
    app = LogApp()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(OpportunityLog)
        log.apply_events([opp(i) for i in range(300)], T0)
        log.apply_events([opp(i, OppEvent.CLOSED) for i in range(0, 300, 3)], T0)
        await pilot.pause()
        h = log.size.height
        log.action_cursor_to(0)
        await pilot.pause()
        first_screen = [row_text(log, y) for y in range(1, h)]
        assert "ETH-USD" in first_screen[0][0] and "-3.0" in first_screen[0][0]
        assert "BTC-USD" in first_screen[1][0] and "-2.0" in first_screen[1][0]
        # Walk the cursor through every row: every row gets rendered once.
        for i in range(300):
            log.action_cursor(1)
            if i % 50 == 0:
                await pilot.pause()
            for y in range(1, h):
                log.render_line(y)
        assert len(log._strips) <= 2 * h + 8
        assert log.row_count == 300
        log.action_cursor_to(0)
        await pilot.pause()
        again = [row_text(log, y) for y in range(1, h)]
        # Row 0 carries the cursor highlight in both; every other row is plain.
        assert again == first_screen


async def test_log_rows_keep_plain_strings_not_rich_objects():
    app = LogApp()
    async with app.run_test(size=(100, 20)) as pilot:
        log = app.query_one(OpportunityLog)
        log.apply_events([opp(i) for i in range(5)], T0)
        await pilot.pause()
        for y in range(1, 6):
            log.render_line(y)
        row = log.rows_by_id["o1"]
        assert not hasattr(row, "__dict__")  # slots: no per-row dict for the GC to walk
        assert isinstance(row.life, str) and row.life.strip().endswith("s")
        # The live lifetime moves with the clock: tick() drops exactly the open rows' strips.
        cached = set(log._strips)
        log.tick(T0 + 60_000_000_000)
        assert cached and not (cached & set(log._strips))


async def test_gc_tuning_sets_the_policy_while_the_app_runs_and_restores_it():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    app, eng, clock = ui_fixtures.make_app(gc_tuning=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await seed_market(eng, ui_fixtures.ticker(app, clock))
        await pilot.pause()
        assert gc.get_threshold() == (DASHBOARD_GEN0, before[1], DASHBOARD_GEN2)
        assert gc.get_freeze_count() > 0  # startup objects are out of the collector's walk
        await pilot.press("q")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


async def test_gc_policy_untouched_by_default():
    before = gc.get_threshold()
    app, _eng, _clock = ui_fixtures.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
