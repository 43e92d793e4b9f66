"""A demo with perps (issue 18): the simulator's spot and perp venues over real loopback
WebSockets, the engine's feeds, bus, detector and simulated executor; basis windows come
out with funding and carry, and their trades open a short perp position."""

from __future__ import annotations

import asyncio
import time

from arbtui import config
from arbtui.backend.engine import Engine
from arbtui.commands.demo import simulator
from arbtui.model import Fill, OppEvent, Opportunity

VENUES = ["binance", "binance-usdm", "bybit-linear"]
SYMBOLS = ["BTC-USDT", "BTC-USDT-PERP"]


async def test_demo_with_perps_shows_basis_with_funding_and_carry(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = config.load(use_user=False)
    cfg.sim.venues, cfg.sim.symbols = list(VENUES), list(SYMBOLS)
    # The simulated perp trades a few bps over spot (a small contango): with taker fees
    # of 10 + 5 bps a basis window is a tail event; fee-free, one opens within seconds.
    for v in VENUES:
        cfg.venues[v].taker_fee_bps = 0.0
    cfg.detector.min_net_bps = 0.5
    cfg.execution.enabled = True
    cfg.execution.min_net_bps = 0.5
    engine = Engine(cfg, mode="demo", sim=simulator(cfg))
    await engine.start()
    try:
        deadline = time.monotonic() + 15
        basis: list[Opportunity] = []
        shorts: list[Fill] = []
        while time.monotonic() < deadline and not (basis and shorts):
            await asyncio.sleep(0.2)
            evs = [e for _, e in engine.events]
            basis = [e for e in evs if isinstance(e, Opportunity) and e.kind == "basis"
                     and e.event is not OppEvent.CLOSED and e.funding_interval_h > 0]
            shorts = [e for e in evs if isinstance(e, Fill) and e.symbol.endswith("-PERP")
                      and e.side == "sell" and e.filled > 0]
        assert basis, "no basis window with funding within 15 s"
        o = basis[0]
        assert o.symbol == "BTC-USDT" and o.sell_symbol == "BTC-USDT-PERP"
        assert o.buy_venue == "binance" and o.sell_venue in ("binance-usdm", "bybit-linear")
        assert o.size > 0 and o.net_bps >= 0.5 and o.sell_price > o.buy_price
        # funding and carry from the perp venue's own funding stream (edge.carry_apr)
        assert o.funding_interval_h == 8.0 and o.next_funding_ts_ns > 0
        assert o.funding_rate != 0.0
        assert abs(o.carry_apr - o.funding_rate * 3 * 365) < 1e-12
        assert -100 < o.basis_bps < 100
        st = engine.snapshot()
        for rows in (st.extra["detector"]["funding"], st.extra["funding"]):  # detector, market
            assert o.sell_venue in {r["venue"] for r in rows}
            assert {r["venue"] for r in rows} <= {"binance-usdm", "bybit-linear"}
        # executed: the perp sell is a short, held as a negative perp position
        assert shorts, "no perp short filled within 15 s"
        wallets = st.extra["executor"]["wallets"]
        assert wallets[shorts[0].venue]["BTC-USDT-PERP"] < 0
    finally:
        await engine.stop()
