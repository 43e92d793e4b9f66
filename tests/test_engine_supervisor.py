"""A failed role is restarted by the engine's supervisor and reported, never silently dead."""

from __future__ import annotations

import asyncio

from arbtui import config
from arbtui.backend.engine import Engine
from arbtui.headless import status_record


async def test_crashed_role_is_restarted_and_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = config.load(use_user=False)
    engine = Engine(cfg, mode="live", roles=())
    await engine.start()
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        done.set()
        await asyncio.sleep(3600)

    try:
        engine._spawn("flaky", flaky)
        await asyncio.wait_for(done.wait(), 10)
        assert runs == 3
        assert engine.failures == {"flaky": 2}
        rec = status_record(engine.snapshot())
        assert rec["role_failures"] == {"flaky": 2}
    finally:
        await engine.stop()
