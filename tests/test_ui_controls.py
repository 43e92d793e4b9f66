"""Every dashboard control, driven with Textual's Pilot, checked on the ENGINE.

The engine is real (bus, detector, controls, event ring); only its inputs are
hand-built quotes and its clock is frozen (tests/ui_fixtures.py).
"""

from __future__ import annotations

import tomllib

import pytest
import ui_fixtures
from ui_fixtures import FrozenEngine, panel_plain, quote, seed_market

from arbtui import config as configmod
from arbtui.model import OppEvent, Opportunity
from arbtui.ui.app import ArbApp
from arbtui.ui.screens.detail import DetailScreen
from arbtui.ui.screens.help import HelpScreen
from arbtui.ui.screens.symbols import SymbolPickerScreen
from arbtui.ui.screens.thresholds import ThresholdsScreen

SIZE = (120, 40)


def make_app(**kw) -> tuple[ArbApp, FrozenEngine]:
    app, eng, _clock = ui_fixtures.make_app(**kw)
    return app, eng


def opened(eng: FrozenEngine, since: int = 0) -> list[Opportunity]:
    return [e for s, e in eng.events_since(since)
            if isinstance(e, Opportunity) and e.event is OppEvent.OPENED]


async def test_seeded_dashboard_shows_venues_prices_and_log():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        app.dashboard.sample(force=True)
        await pilot.pause()
        for v in ("binance", "coinbase"):
            text = panel_plain(app, v)
            assert "LIVE" in text
            assert "BTC-USD" in text and "ETH-USD" in text
        assert "64000.00" in panel_plain(app, "binance")
        assert "3400.50" in panel_plain(app, "coinbase")
        log = app.dashboard.log_widget
        # BTC window opened and closed, ETH window open: two rows, keyed by the engine's ids.
        ids = {o.id for o in opened(eng)}
        assert len(ids) == 2
        assert set(log.rows_by_id) == ids
        closed = [r for r in log.rows_by_id.values() if r.closed]
        assert [r.last.symbol for r in closed] == ["BTC-USD"]


async def test_venue_toggle_leaves_detection_and_shows_disabled():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        assert any(k[1:3] == ("coinbase", "binance") for k in eng.detector.open)
        await pilot.press("2")  # coinbase is venue 2
        assert "coinbase" in eng.detector.disabled_venues
        # The open ETH window (buy coinbase) closed at once ...
        assert not any("coinbase" in k[1:3] for k in eng.detector.open)
        assert "DISABLED" in panel_plain(app, "coinbase")
        seq = eng.event_seq
        # ... and a fresh dislocation involving coinbase opens nothing.
        await eng.push(quote("coinbase", "BTC-USD", 64_400.00, 64_410.00, age_ms=10))
        assert opened(eng, seq) == []
        await pilot.press("2")
        assert "coinbase" not in eng.detector.disabled_venues
        await eng.push(quote("coinbase", "BTC-USD", 64_401.00, 64_411.00, age_ms=10))
        new = opened(eng, seq)
        assert [(o.symbol, o.buy_venue, o.sell_venue) for o in new] == [
            ("BTC-USD", "binance", "coinbase")]
        app.dashboard.sample(force=True)
        assert "DISABLED" not in panel_plain(app, "coinbase")


async def test_threshold_keys_change_what_is_detected():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        eth = [o for o in eng.detector.open.values() if o.opp.symbol == "ETH-USD"]
        assert len(eth) == 1
        net = eth[0].opp.net_bps
        start = eng.detector.cfg.min_net_bps
        await pilot.press("plus")
        assert eng.detector.cfg.min_net_bps == pytest.approx(start + 0.5)
        # Raise the threshold just above the ETH window's NET edge: it closes.
        steps = int((net - start) / 0.5) + 1
        for _ in range(steps - 1):
            await pilot.press("plus")
        assert eng.detector.cfg.min_net_bps > net
        assert not any(o.opp.symbol == "ETH-USD" for o in eng.detector.open.values())
        seq = eng.event_seq
        await eng.push(quote("binance", "ETH-USD", 3_412.01, 3_412.41, size=3.0, age_ms=10))
        assert opened(eng, seq) == []
        # Lower it back below: the same market is an opportunity again.
        for _ in range(steps):
            await pilot.press("minus")
        assert eng.detector.cfg.min_net_bps == pytest.approx(start)
        await eng.push(quote("binance", "ETH-USD", 3_412.02, 3_412.42, size=3.0, age_ms=10))
        assert [o.symbol for o in opened(eng, seq)] == ["ETH-USD"]
        app.dashboard.sample(force=True)
        assert f"thr {start:+.1f}bps" in app.dashboard.header_widget.plain


async def test_threshold_editor_sets_engine_values():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        await pilot.press("t")
        assert isinstance(app.screen, ThresholdsScreen)
        scr = app.screen
        scr.query_one("#min_net_bps").value = "50"
        scr.query_one("#max_quote_age_ms").value = "750"
        scr.query_one("#exec_min_net_bps").value = "7.5"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is app.dashboard
        assert eng.detector.cfg.min_net_bps == 50.0
        assert eng.detector.cfg.max_quote_age_ms == 750.0
        assert eng.cfg.execution.min_net_bps == 7.5
        assert eng.detector.open == {}  # nothing in the seeded market clears 50 bps NET
        # A bad value is refused with a message and changes nothing.
        await pilot.press("t")
        app.screen.query_one("#min_net_bps").value = "abc"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ThresholdsScreen)
        assert "not a number" in str(app.screen.query_one("#error").render())
        await pilot.press("escape")
        assert eng.detector.cfg.min_net_bps == 50.0


async def test_execution_toggle_pause_clear_and_detail():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        app.dashboard.sample(force=True)
        await pilot.press("x")
        assert eng.cfg.execution.enabled is True
        assert "EXEC ON" in app.dashboard.header_widget.plain
        await pilot.press("x")
        assert eng.cfg.execution.enabled is False
        log = app.dashboard.log_widget
        rows = log.row_count
        await pilot.press("space")
        assert app.dashboard.paused
        await eng.push(quote("coinbase", "BTC-USD", 64_300.00, 64_310.00, age_ms=10))
        app.dashboard.sample(force=True)
        assert log.row_count == rows  # paused: the engine saw it, the log did not
        assert "PAUSED +1 new" in log.border_title
        await pilot.press("space")
        assert log.row_count == rows + 1
        # Detail of the selected (newest) row: book sides, fee math, fills section.
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        row = app.screen.row
        assert (row.last.symbol, row.last.buy_venue, row.last.sell_venue) == (
            "BTC-USD", "binance", "coinbase")
        from arbtui.ui.screens.detail import fee_math

        math_text = fee_math(row).plain
        # One evaluation: the fee math redone from the event's own VWAPs, fees and
        # flat cost gives the net and profit the event reports.
        assert f"{row.last.net_bps:+.2f} bps" in math_text
        assert f"{row.last.profit:+,.4f}" in math_text
        assert "taker fee 10 bps" in math_text and "taker fee 20 bps" in math_text
        await pilot.press("escape")
        await pilot.press("c")
        assert log.row_count == 0 and log.rows_by_id == {}


async def test_symbol_picker_and_focus_keys():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        dash = app.dashboard
        assert dash.focus_sym == "BTC-USD"
        await pilot.press("tab")
        assert dash.focus_sym == "ETH-USD"
        await pilot.press("right_square_bracket")
        assert dash.focus_sym == "BTC-USD"
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, SymbolPickerScreen)
        await pilot.press("down", "space")  # uncheck ETH-USD
        await pilot.pause()
        assert "ETH-USD" in eng.detector.disabled_symbols
        assert not any(o.opp.symbol == "ETH-USD" for o in eng.detector.open.values())
        await pilot.press("enter")  # focus the highlighted symbol
        await pilot.pause()
        assert app.screen is dash
        assert dash.focus_sym == "ETH-USD"
        seq = eng.event_seq
        await eng.push(quote("binance", "ETH-USD", 3_413.00, 3_413.40, size=3.0, age_ms=10))
        assert opened(eng, seq) == []
        # The picker opens on the focused symbol: space re-enables it.
        await pilot.press("s")
        await pilot.pause()
        await pilot.press("space", "escape")
        await pilot.pause()
        assert "ETH-USD" not in eng.detector.disabled_symbols
        assert "BTC-USD" not in eng.detector.disabled_symbols


async def test_help_screen_lists_every_visible_key():
    app, _ = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        from arbtui.ui.screens.help import help_table
        from arbtui.ui.screens.keymap import KEYMAP

        table = help_table()
        keys = list(table.columns[0].cells)
        for k in KEYMAP:
            if k.show:
                assert k.display in keys
        await pilot.press("escape")
        assert app.screen is app.dashboard


async def test_command_palette_has_the_dashboard_actions():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        app.dashboard.sample(force=True)
        titles = [c.title for c in app.get_system_commands(app.dashboard)]
        for want in ("Thr+ (+)", "Exec (x)", "Save (ctrl+s)", "Toggle venue coinbase (2)"):
            assert want in titles
        cmd = next(c for c in app.get_system_commands(app.dashboard)
                   if c.title == "Toggle venue binance (1)")
        await cmd.callback()
        assert "binance" in eng.detector.disabled_venues
        await pilot.pause()


async def test_ctrl_s_saves_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    user = tmp_path / "arbtui" / "config.toml"
    user.parent.mkdir(parents=True)
    # Keys the dashboard does not manage must survive the save untouched.
    user.write_text('[ui]\nlog_lines = 500\n\n[sim]\nseed = 11\n'
                    '[detector]\nmax_plausible_bps = 250.0\n')
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        await pilot.press("plus", "plus", "plus")  # 2.0 -> 3.5
        await pilot.press("2")  # coinbase off
        await pilot.press("x")  # execution on
        await pilot.press("tab")  # focus ETH-USD
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert user.is_file()
        toasts = [n.message for n in app._notifications]
        assert any(str(user) in m for m in toasts)
    raw = tomllib.loads(user.read_text())
    assert raw["ui"]["log_lines"] == 500 and raw["sim"]["seed"] == 11
    assert raw["detector"]["max_plausible_bps"] == 250.0
    loaded = configmod.load()
    assert loaded.detector.min_net_bps == 3.5
    assert loaded.venues["coinbase"].enabled is False
    assert loaded.venues["binance"].enabled is True
    assert loaded.execution.enabled is True
    assert loaded.ui.focused_symbol == "ETH-USD"
    assert loaded.ui.log_lines == 500 and loaded.sim.seed == 11
    # Only what changed was written (defaults are not pinned into the user file).
    assert "max_quote_age_ms" not in raw["detector"]
    assert "kraken" not in raw.get("venues", {})


async def test_quit_stops_the_engine():
    app, eng = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await seed_market(eng)
        await pilot.press("q")
        await pilot.pause()
        assert eng._stopping
        assert all(t.done() for t in eng._tasks)
    assert app.return_code == 0


async def test_engine_start_failure_exits_2_with_reason(capsys):
    class Unstartable(FrozenEngine):
        async def start(self) -> None:
            raise OSError("address already in use")

    cfg = ui_fixtures.make_cfg()
    app = ArbApp(Unstartable(cfg), cfg, threaded=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
    assert app.return_code == 2
    out = capsys.readouterr()
    assert "arbtui: engine failed to start: address already in use" in out.out + out.err


async def test_threaded_engine_controls_run_on_the_engine_thread():
    import threading

    cfg = ui_fixtures.make_cfg()
    eng = FrozenEngine(cfg)
    seen: list[str] = []
    real = eng.set_threshold

    def spy(v: float) -> None:
        seen.append(threading.current_thread().name)
        real(v)

    eng.set_threshold = spy
    app = ArbApp(eng, cfg, threaded=True, clock=ui_fixtures.Clock())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("plus")
        assert seen == ["arbtui-engine"]
        assert eng.detector.cfg.min_net_bps == 2.5
        assert "thr +2.5bps" in app.dashboard.header_widget.plain
        await pilot.press("q")
        await pilot.pause()
    assert not app.host._thread.is_alive() and eng._stopping
