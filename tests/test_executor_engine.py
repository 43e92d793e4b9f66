"""Executor + journal wired in the demo engine, over real loopback WebSockets."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from arbtui import config
from arbtui.model import Fill, OppEvent, Opportunity


async def test_demo_engine_executes_and_journals(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    from arbtui.backend.engine import Engine
    from arbtui.commands.demo import simulator

    cfg = config.load(use_user=False)
    for vc in cfg.venues.values():
        vc.taker_fee_bps = 1.0
    cfg.execution.enabled = True
    cfg.execution.min_net_bps = cfg.detector.min_net_bps
    cfg.journal.path = str(tmp_path / "journal.sqlite")
    cfg.sim.dislocation_rate = 3.0
    engine = Engine(cfg, mode="demo", sim=simulator(cfg))
    await engine.start()
    try:
        deadline = time.monotonic() + 20
        fills: list[Fill] = []
        while time.monotonic() < deadline and len(fills) < 2:
            await asyncio.sleep(0.2)
            fills = [e for _, e in engine.events if isinstance(e, Fill)]
        assert len(fills) >= 2, engine.snapshot().extra.get("executor")
        opened = {e.id: e for _, e in engine.events
                  if isinstance(e, Opportunity) and e.event is OppEvent.OPENED}
        f = fills[0]
        o = opened[f.opp_id]
        # the buy order went to the cheaper ask venue, the sell to the richer bid venue
        assert {(x.side, x.venue) for x in fills if x.opp_id == f.opp_id and x.kind == "leg"} <= \
            {("buy", o.buy_venue), ("sell", o.sell_venue)}
        # it arrived after the venue's configured latency
        lat_ms = cfg.execution.latency_ms[f.venue]
        assert f.ts_ns - f.sent_ts_ns >= lat_ms * 1e6
        ex = engine.snapshot().extra["executor"]
        assert ex["enabled"] and ex["fills"] >= 2
        assert all(b >= 0 for w in ex["wallets"].values() for b in w.values())
        det = engine.snapshot().extra["detector"]
        assert det["counters"]["opened"] >= 1
    finally:
        await engine.stop()
    con = sqlite3.connect(cfg.journal.path)
    n_opp = con.execute("SELECT count(*) FROM opportunities").fetchone()[0]
    n_fill = con.execute("SELECT count(*) FROM fills").fetchone()[0]
    # every event the engine saw was journaled (flushed on stop)
    seen_opps = sum(1 for _, e in engine.events if isinstance(e, Opportunity))
    seen_fills = sum(1 for _, e in engine.events if isinstance(e, Fill))
    assert (n_opp, n_fill) == (seen_opps, seen_fills)
