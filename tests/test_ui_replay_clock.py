"""Replay: the dashboard's ages and clock are on the recording's time, not the wall clock.

A real 2021 Binance recording (../shared/recordings) is replayed unpaced into
the real dashboard. Measured against the wall clock its quotes would be years
old; against the replay clock they are at most seconds old.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from replay_fixtures import default_cfg, recording

from arbtui.backend.replay import ReplayEngine
from arbtui.fmt import fmt_age_ms, fmt_clock

pytestmark = pytest.mark.slow


async def test_replay_quote_ages_use_the_replay_clock(tmp_path, monkeypatch):
    from arbtui.ui.app import ArbApp

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = recording("BINANCE.jsonl.zst")
    cfg = default_cfg()
    eng = ReplayEngine(cfg, [str(path)], speed=0)
    app = ArbApp(eng, cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        loop = asyncio.get_running_loop()
        end = loop.time() + 60
        while not eng.finished.is_set():
            assert loop.time() < end, "replay did not finish"
            await pilot.pause(0.1)
        assert eng.error is None
        app.dashboard.sample(force=True)
        await pilot.pause()
        st = app.dashboard.last_state
        replay_now = int(st.extra["replay"]["replay_ts"] * 1e9)
        wall = time.time_ns()
        assert wall - replay_now > 86_400e9  # the recording is from 2021
        quotes = {s: q for (v, s), q in st.quotes.items() if v == "binance"}
        assert quotes, "no binance quote replayed"
        text = app.dashboard.panels["binance"].plain
        for sym, q in quotes.items():
            replay_age = (replay_now - q.recv_ts_ns) / 1e6
            assert 0 <= replay_age < 60_000, (sym, replay_age)
            row = next(ln for ln in text.splitlines() if ln.strip().startswith(sym))
            # The top's age, then the book's live age where it differs (a quiet top on
            # a live book), both on the replay clock.
            tail = fmt_age_ms(replay_age).strip()
            if q.live_ts_ns > q.recv_ts_ns:
                live = fmt_age_ms((replay_now - q.live_ts_ns) / 1e6).strip()
                if live != tail:
                    tail = f"{tail} live {live}"
            assert row.rstrip().endswith(tail), (row, replay_age)
            assert fmt_age_ms((wall - q.recv_ts_ns) / 1e6).strip() not in row
        # The header's clock is the recording's time too.
        assert f"{fmt_clock(replay_now)} UTC" in app.dashboard.header_widget.plain
        await pilot.press("q")
        await pilot.pause()
