"""A deterministic engine for dashboard tests.

Hand-built Quotes and BookStatus messages go through the engine's real bus and
real detector (no network). Time is frozen: the detector's clock and the
dashboard's clock return fixed instants, and ``FrozenEngine.snapshot`` pins the
wall-time-derived numbers (uptime, quotes/s, detection latency) and the venue
connection facts, which would otherwise come from live sockets.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from arbtui import config as configmod
from arbtui.backend.bus import QUOTES, STATUS
from arbtui.backend.engine import Engine, EngineState
from arbtui.model import BookState, BookStatus, Quote, SymbolStatus, VenueStatus

T0 = 1_767_225_600_000_000_000 + 34_567_000_000  # 2026-01-01 00:00:34.567 UTC
VENUES = ("binance", "coinbase")
SYMBOLS = ("BTC-USD", "ETH-USD")
FEES = {"binance": 10.0, "coinbase": 20.0}


def make_cfg() -> configmod.Config:
    cfg = configmod.load(use_user=False)
    cfg.sim.venues = list(VENUES)
    cfg.sim.symbols = list(SYMBOLS)
    for v, fee in FEES.items():
        cfg.venues[v].taker_fee_bps = fee
    cfg.detector.min_net_bps = 2.0
    cfg.execution.min_net_bps = 5.0
    cfg.ui.refresh_hz = 10.0
    cfg.journal.enabled = False  # a demo engine would learn p_catch from this host's journal
    return cfg


def quote(venue: str, symbol: str, bid: float, ask: float, *, age_ms: float = 120.0,
          size: float = 0.5, step: float | None = None, levels: int = 5) -> Quote:
    step = step if step is not None else round(bid * 0.00005, 2) or 0.01
    bids = [(round(bid - i * step, 2), round(size + 0.25 * i, 4)) for i in range(levels)]
    asks = [(round(ask + i * step, 2), round(size + 0.2 * i, 4)) for i in range(levels)]
    return Quote(venue=venue, symbol=symbol, bid=bids[0][0], bid_size=bids[0][1], ask=asks[0][0],
                 ask_size=asks[0][1], bids=bids, asks=asks, bid_px=f"{bids[0][0]:.2f}",
                 bid_qty=f"{bids[0][1]}", ask_px=f"{asks[0][0]:.2f}", ask_qty=f"{asks[0][1]}",
                 recv_ts_ns=T0 - int(age_ms * 1e6), seq=1)


class Clock:
    """The dashboard's clock: frozen, moved only by the test (``advance``)."""

    def __init__(self, t: int = T0 + 500_000_000) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t

    def advance(self, ms: float) -> None:
        self.t += int(ms * 1e6)


class FrozenEngine(Engine):
    """The real engine (bus, detector, controls, event ring) with time frozen."""

    def __init__(self, cfg: configmod.Config) -> None:
        super().__init__(cfg, mode="demo", roles=("detect",))
        self.detector.clock = lambda: T0
        self.frozen_venues: dict[str, VenueStatus] = {
            v: VenueStatus(venue=v, state=BookState.SYNCING, reason="connecting", connected=True,
                           last_msg_ns=T0 - 120_000_000, reconnects=i, msg_rate=40.0 * (i + 1),
                           symbols={s: SymbolStatus(state=BookState.SYNCING) for s in SYMBOLS},
                           feed_latency_ms=1.5 + i, clock_offset_ms=2.0)
            for i, v in enumerate(VENUES)
        }

    def snapshot(self) -> EngineState:
        st = super().snapshot()
        venues = {}
        for v, vs in self.frozen_venues.items():
            if v in self.detector.disabled_venues:
                vs = VenueStatus(venue=v, state=BookState.DISABLED, reason="disabled by operator",
                                 reconnects=vs.reconnects, symbols=vs.symbols)
            venues[v] = vs
        return dataclasses.replace(st, uptime_s=3723.0, quotes_per_s=1234.0, detect_p50_ms=0.12,
                                   detect_p99_ms=0.85, bus={"kind": "embedded", "state": "up"},
                                   venues=venues)

    def book_state(self, venue: str, symbol: str, state: BookState, reason: str = "") -> None:
        """A feed's book changed state: published on the status topic like a real feed does."""
        vs = self.frozen_venues[venue]
        vs.symbols[symbol] = SymbolStatus(state=state, reason=reason, since_ns=T0)
        worst = [s for s in (BookState.RESYNC, BookState.STALE, BookState.SYNCING)
                 if any(x.state is s for x in vs.symbols.values())]
        vs.state = worst[0] if worst else BookState.LIVE
        vs.reason = "" if not worst else next(
            f"{k}: {x.reason}" for k, x in vs.symbols.items() if x.state is worst[0])
        if state is not BookState.LIVE:
            self.latest.pop((venue, symbol), None)
        self.bus.publish(STATUS, symbol, BookStatus(venue=venue, symbol=symbol, state=state,
                                                    reason=reason, ts_ns=T0))

    async def push(self, *quotes: Quote, timeout: float = 5.0) -> None:
        """Publish quotes and wait until the detector has evaluated every one of them."""
        target = self.detector.evaluated + len(quotes)
        for q in quotes:
            self.bus.publish(QUOTES, q.symbol, q)
            # One at a time: the quote inbox coalesces per venue+symbol by design.
            await self.wait_evaluated(self.detector.evaluated + 1, timeout)
        await self.wait_evaluated(target, timeout)

    async def wait_evaluated(self, target: int, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.detector.evaluated < target:
            if loop.time() > end:
                raise TimeoutError(f"detector evaluated {self.detector.evaluated} < {target}")
            await asyncio.sleep(0.005)

    async def wait_status(self, timeout: float = 5.0) -> None:
        """Let the detector drain the status topic."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        subs = getattr(self.bus, "_subs", {}).get(STATUS, [])
        while any(len(s) for s in subs):
            if loop.time() > end:
                raise TimeoutError("status topic not drained")
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.01)


async def wait_detector_running(engine: Engine, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not getattr(engine.bus, "_subs", {}).get(QUOTES):
        if loop.time() > end:
            raise TimeoutError("detector never subscribed")
        await asyncio.sleep(0.005)


async def seed_market(engine: FrozenEngine, tick: Any = None) -> None:
    """Both venues LIVE on both symbols; one BTC window that opens then closes, one ETH
    window that stays open. Deterministic given the frozen clock. ``tick`` (optional)
    runs after each step, e.g. to advance the dashboard clock and take a sample."""

    async def step() -> None:
        if tick is not None:
            await tick()

    await wait_detector_running(engine)
    for v in VENUES:
        for s in SYMBOLS:
            engine.book_state(v, s, BookState.LIVE)
    await engine.wait_status()
    # BTC: coinbase bid well above binance ask -> a window opens...
    await engine.push(quote("binance", "BTC-USD", 64_000.00, 64_010.00),
                      quote("coinbase", "BTC-USD", 64_300.00, 64_310.00))
    await step()
    # ... and closes when coinbase comes back in line.
    await engine.push(quote("coinbase", "BTC-USD", 64_005.00, 64_015.00, age_ms=80))
    await step()
    # ETH: binance bid above coinbase ask -> an open window (buy coinbase, sell binance).
    await engine.push(quote("coinbase", "ETH-USD", 3_400.00, 3_400.50, size=4.0),
                      quote("binance", "ETH-USD", 3_412.00, 3_412.40, size=3.0))
    await step()


def panel_plain(app: Any, venue: str) -> str:
    from arbtui.ui.widgets.venue_panel import VenuePanel

    panel = app.dashboard.query_one(f"#venue-{venue}", VenuePanel)
    return panel.plain


def make_app(**kw: Any) -> tuple[Any, FrozenEngine, Clock]:
    from arbtui.ui.app import ArbApp

    cfg = make_cfg()
    eng = FrozenEngine(cfg)
    clock = Clock()
    return ArbApp(eng, cfg, clock=clock, **kw), eng, clock


def ticker(app: Any, clock: Clock, ms: float = 1000.0) -> Any:
    """A ``tick`` for seed_market: move the clock on, then take one forced sample."""

    async def tick() -> None:
        clock.advance(ms)
        app.dashboard.sample(force=True)

    return tick
