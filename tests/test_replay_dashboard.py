"""``arbtui --replay FILE``: the dashboard runs unchanged on a ReplayEngine (Textual Pilot)."""

from __future__ import annotations

import asyncio

import pytest
from replay_fixtures import default_cfg

from arbtui import symbols as symmod
from arbtui.backend.record import record_session
from arbtui.backend.replay import ReplayEngine
from arbtui.backend.sim.server import Simulator
from arbtui.model import BookState

pytestmark = pytest.mark.slow

SYMBOLS = ["BTC-USD", "ETH-USD"]
VENUES = ["binance", "coinbase"]


async def _record(path) -> None:
    sim = Simulator(VENUES, SYMBOLS, seed=3, tick_ms=50.0)
    await sim.start()
    try:
        await record_session(default_cfg(), VENUES, SYMBOLS, 2.0, str(path), urls=sim.urls(),
                             symbol_maps={v: symmod.sim_symbol_map(v, SYMBOLS) for v in VENUES})
    finally:
        await asyncio.wait_for(sim.stop(), 10)


async def test_dashboard_replays_a_recording(tmp_path, monkeypatch):
    from arbtui.fmt import fmt_px
    from arbtui.ui.app import ArbApp

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = tmp_path / "s.jsonl.zst"
    await _record(path)
    cfg = default_cfg()
    cfg.journal.path = str(tmp_path / "journal.sqlite")
    eng = ReplayEngine(cfg, [str(path)], speed=0)
    assert sorted(eng.symbols()) == SYMBOLS  # known before start: the panels can be built
    app = ArbApp(eng, cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        loop = asyncio.get_running_loop()
        end = loop.time() + 30
        while not eng.finished.is_set():
            assert loop.time() < end, "replay did not finish"
            await pilot.pause(0.1)
        assert eng.error is None
        app.dashboard.sample(force=True)
        st = app.dashboard.last_state
        assert st.mode == "REPLAY" and st.extra["replay"]["finished"]
        assert {v for v, s in st.venues.items() if s.state is BookState.LIVE} == set(VENUES)
        for v in VENUES:
            text = app.dashboard.panels[v].plain
            for (qv, _sym), q in st.quotes.items():
                if qv == v:
                    assert fmt_px(q.bid).strip() in text and fmt_px(q.ask).strip() in text
        await pilot.press("q")
        await pilot.pause()
    assert eng._stopping
