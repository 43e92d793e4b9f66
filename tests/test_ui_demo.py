"""The dashboard on the real demo engine: loopback simulator + venue adapters.

As ``arbtui --demo`` runs it: the engine on its own thread (``threaded=True``),
so every read of engine state here goes through ``host.call`` (the engine's
thread). These assert on engine behaviour and on the text the panels render,
never on pixels (the market moves).
"""

from __future__ import annotations

import pytest
from polling import until

from arbtui import config as configmod
from arbtui.backend.engine import Engine
from arbtui.commands.demo import simulator
from arbtui.fmt import fmt_px
from arbtui.model import BookState
from arbtui.ui.app import ArbApp

pytestmark = pytest.mark.slow


def panel(app: ArbApp, venue: str) -> str:
    p = app.dashboard.panels.get(venue)
    return p.plain if p is not None else ""


@pytest.fixture
def demo_app(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = configmod.load(use_user=False)
    cfg.journal.path = str(tmp_path / "journal.sqlite")
    # Lively on purpose: these tests want fills within seconds; the calibrated demo
    # market opens only a few windows a minute.
    cfg.sim.dislocation_rate = 3.0
    cfg.sim.dislocation_bps = 20.0
    eng = Engine(cfg, mode="demo", sim=simulator(cfg))
    return ArbApp(eng, cfg, threaded=True), eng


async def test_demo_dashboard_shows_two_venues_with_prices(demo_app):
    app, eng = demo_app
    async with app.run_test(size=(120, 40)) as pilot:
        host = app.host

        def two_live_with_prices() -> bool:
            st = host.snapshot()
            live = [v for v, s in st.venues.items() if s.state is BookState.LIVE]
            return len(live) >= 2 and all(
                any(v == qv for qv, _ in st.quotes) for v in live)

        await until(two_live_with_prices, 10, "two LIVE venues with quotes",
                    every=0.1, sleep=pilot.pause)
        app.dashboard.sample(force=True)
        st = app.dashboard.last_state
        shown: set[str] = set()
        for v, vs in st.venues.items():
            if vs.state is not BookState.LIVE:
                continue
            text = panel(app, v)
            assert text.splitlines()[0].startswith("LIVE"), text
            # The panel shows the engine's own latest bid/ask for each symbol it has.
            for (qv, sym), q in st.quotes.items():
                if qv == v:
                    assert sym in text
                    assert fmt_px(q.bid).strip() in text and fmt_px(q.ask).strip() in text
                    shown.add(v)
        assert len(shown) >= 2, shown
        await pilot.press("q")
        await pilot.pause()
    assert eng._stopping and eng.sim is not None
    assert not app.host._thread.is_alive()  # the engine thread is gone after q


def live(host, venue: str) -> bool:
    st = host.snapshot().venues.get(venue)
    return st is not None and st.state is BookState.LIVE


async def test_demo_venue_toggle_stops_feed_and_detection(demo_app):
    app, eng = demo_app
    async with app.run_test(size=(120, 40)) as pilot:
        host = app.host
        await until(lambda: live(host, "binance"), 10, "binance LIVE", every=0.1, sleep=pilot.pause)
        assert app.dashboard.venue_order[0] == "binance"
        await pilot.press("1")
        assert "binance" in eng.detector.disabled_venues
        assert not any("binance" in k[1:3] for k in host.call(lambda: list(eng.detector.open)))
        await until(lambda: "DISABLED" in panel(app, "binance"), 3, "DISABLED panel",
                    every=0.1, sleep=pilot.pause)
        seq = host.call(lambda: eng.event_seq)
        await pilot.pause(1.5)
        assert not [e for s, e in host.events_since(seq)
                    if getattr(e, "event", None) is not None and e.event.value == "opened"
                    and "binance" in (e.buy_venue, e.sell_venue)]
        assert not any(v == "binance" for v, _ in host.snapshot().quotes)
        await pilot.press("1")
        assert "binance" not in eng.detector.disabled_venues
        await until(lambda: live(host, "binance"), 10, "binance LIVE again",
                    every=0.1, sleep=pilot.pause)
        await pilot.press("q")
        await pilot.pause()


async def test_demo_execution_toggle_fills_marked_and_wallets_shown(demo_app):
    app, eng = demo_app
    async with app.run_test(size=(120, 40)) as pilot:
        assert eng.executor is not None
        await pilot.press("x")
        assert eng.cfg.execution.enabled and eng.executor.enabled
        def fills() -> list:
            return [e for _, e in app.host.events_since(0) if type(e).__name__ == "Fill"]

        await until(lambda: len(fills()) >= 2, 20, "simulated fills", every=0.1, sleep=pilot.pause)
        # the fills read BEFORE the sample: one arriving after it has no marker yet
        filled_ids = {f.opp_id for f in fills()}
        app.dashboard.sample(force=True)
        await pilot.pause()
        log = app.dashboard.log_widget
        marked = [r for rid, r in log.rows_by_id.items() if rid in filled_ids]
        assert marked, "no log row for a filled opportunity"
        assert all(r.markers()[:1] in ("E", "P", "X") for r in marked)
        assert app.dashboard.wallets.display
        assert "PnL" in app.dashboard.header_widget.plain
        await pilot.press("x")
        assert not eng.cfg.execution.enabled
        await pilot.press("q")
        await pilot.pause()
