"""Issue 12 with the simulator: real loopback WebSocket venues, the demo engine.

Gemini's simulator goes silent (every frame stops, the socket stays open) while
Kraken's keeps streaming. The detector must close the windows on Gemini's book
as stale within ``max_quote_age_ms`` of its last proof of life, long before the
Gemini feed's own watchdog (10 s of silence) marks the book STALE: freshness is
judged by liveness, the same on every path.
"""

from __future__ import annotations

import time

from polling import until

from arbtui import config
from arbtui.backend.engine import Engine
from arbtui.commands.demo import simulator
from arbtui.model import BookState, OppEvent, Opportunity


async def test_a_silent_venue_closes_its_windows_within_max_quote_age(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = config.load(use_user=False)
    cfg.journal.enabled = False
    cfg.sim.venues = ["kraken", "gemini"]
    cfg.sim.symbols = ["BTC-USD"]
    for v in ("kraken", "gemini"):
        cfg.venues[v].taker_fee_bps = 0.0
    # With no fees and a -200 bps hurdle the two books always form a window (the
    # loss is about one spread), so a window is open when the silence starts.
    cfg.detector.min_net_bps = -200.0
    cfg.detector.min_notional = 0.0
    cfg.detector.max_quote_age_ms = 1500.0
    engine = Engine(cfg, mode="demo", sim=simulator(cfg))
    await engine.start()

    def opps() -> list[Opportunity]:
        return [e for _, e in engine.events if isinstance(e, Opportunity)]

    try:
        await until(lambda: [o for o in opps() if o.event is OppEvent.OPENED
                             and "gemini" in (o.buy_venue, o.sell_venue)], 20,
                    "a window on the gemini book")
        n0 = len(engine.events)
        engine.sim.venues["gemini"].inject("silence")
        t0 = time.monotonic()
        closed = await until(lambda: [o for o in opps()[n0:] if o.event is OppEvent.CLOSED
                                      and "gemini" in (o.buy_venue, o.sell_venue)], 9,
                             "the gemini windows closing")
        elapsed = time.monotonic() - t0
        c = closed[0]
        assert c.reason.startswith("gemini book stale"), c.reason
        # The feed itself has not given up on the book yet: the detector judged it
        # by liveness, not by the connection watchdog.
        st = engine.snapshot().venues["gemini"]
        assert st.symbols["BTC-USD"].state is BookState.LIVE, st
        assert elapsed < 9.0
        # Kraken's book stayed live throughout: no window was closed on it as stale.
        assert not [o for o in opps()[n0:] if o.event is OppEvent.CLOSED
                    and o.reason.startswith("kraken book stale")]
    finally:
        await engine.stop()
