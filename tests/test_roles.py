"""The roles on the real embedded bus: the detector sizes from wallet states it
receives on the bus (published by the execute role), in one process exactly as
across processes; the supervisor's bookkeeping; the role interface."""

from __future__ import annotations

import asyncio

import pytest
from detector_fixtures import Clock, dcfg, mkq
from polling import until

from arbtui import config
from arbtui.backend.bus import OPPORTUNITIES, QUOTES, WALLETS
from arbtui.backend.bus.embedded import EmbeddedBus
from arbtui.backend.clock import Clock as LiveClock
from arbtui.backend.detector import Detector
from arbtui.backend.engine import Engine
from arbtui.backend.executor import Executor
from arbtui.backend.roles import DetectRole, ExecuteRole, Supervisor
from arbtui.config import ExecutionConfig, WalletConfig
from arbtui.model import OppEvent, WalletState

ASKS_A = [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)]
BIDS_B = [(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)]
FEES = {"kraken": 10.0, "gemini": 10.0}


class FixedClock(LiveClock):
    """The live clock's waits and sleeps, with the time standing still at ``clock.t``."""

    def __init__(self, clock: Clock) -> None:
        self.now_ns = lambda: clock.t  # type: ignore[method-assign]


async def test_detect_role_sizes_from_the_wallet_state_on_the_bus() -> None:
    clock = Clock()
    bus = EmbeddedBus(1000)
    sup = Supervisor()
    events = []
    role = DetectRole(Detector(dcfg(), FEES, clock=clock), bus, sup, on_event=events.append)
    out = bus.subscribe(OPPORTUNITIES, "test")
    await bus.start()
    await role.start()
    try:
        # gemini holds 1.2 BTC; kraken's USD was never traded: its configured row counts.
        bus.publish(WALLETS, "wallets", WalletState(
            enabled=True, free={"gemini": {"BTC": 1.2}}, initial={"kraken": (0.0, 1e9)}))
        await until(lambda: role.state().sized_to_wallets, 5, "wallet state applied", every=0.005)
        bus.publish(QUOTES, "BTC-USD", mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A,
                                           recv=clock.t))
        bus.publish(QUOTES, "BTC-USD", mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)],
                                           recv=clock.t))
        await until(lambda: events, 5, "an opportunity", every=0.005)
        assert events[0].event is OppEvent.OPENED
        assert events[0].size == pytest.approx(1.2) and events[0].limited_by == "base_balance"
        assert [e.id for e in out.drain()] == [events[0].id]  # published, not only recorded
        # Execution switched off: nothing caps a size any more (2.5 BTC is the book's edge).
        bus.publish(WALLETS, "wallets", WalletState(enabled=False))
        await until(lambda: not role.state().sized_to_wallets, 5, "wallet state applied",
                    every=0.005)
        role.set_threshold(0.0)  # keep the window; the next quote re-walks it
        clock.t += 1
        bus.publish(QUOTES, "BTC-USD", mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)],
                                           recv=clock.t))
        await until(lambda: any(o.size > 1.2 for o in role.state().open), 5, "resized window",
                    every=0.005)
        assert role.state().open[0].size == pytest.approx(2.5)
    finally:
        await role.stop()
        await sup.stop()
        await bus.stop()


def test_execute_role_publishes_the_free_balances_the_executor_sizes_with() -> None:
    clock = Clock()
    bus = EmbeddedBus(1000)
    cfg = ExecutionConfig(enabled=True, min_net_bps=1.0,
                          latency_ms={"kraken": 40.0, "gemini": 10.0},
                          wallets={"kraken": WalletConfig(base=0.0, quote=10_000.0),
                                   "gemini": WalletConfig(base=5.0, quote=0.0)})
    ex = Executor(cfg, {"kraken": 0.0, "gemini": 0.0}, clock=clock)
    role = ExecuteRole(ex, bus)
    wallets = bus.subscribe(WALLETS, "test")
    det = Detector(dcfg(), {"kraken": 0.0, "gemini": 0.0}, clock=clock)
    for q in (mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0), (100.4, 1.0)], recv=clock.t),
              mkq("gemini", "BTC-USD", [(101.0, 2.0)], [(101.5, 1.0)], recv=clock.t)):
        bus.publish(QUOTES, q.symbol, q)
        for e in det.on_quote(q):
            bus.publish(OPPORTUNITIES, e.symbol, e)
    role.step()  # both legs sent: their funds are reserved
    ws = wallets.drain()[-1]
    assert isinstance(ws, WalletState) and ws.enabled
    assert ex.reserved  # the state above was taken with reservations outstanding
    for venue, asset, kind in (("kraken", "USD", "quote"), ("gemini", "BTC", "base"),
                               ("kraken", "BTC", "base"), ("okx", "USDT", "quote")):
        assert ws.cap(venue, asset, kind) == pytest.approx(ex.balance_cap(venue, asset, kind))
    assert ws.cap("gemini", "BTC", "base") == pytest.approx(5.0 - 2.0)
    role.step()  # nothing changed: nothing re-published
    assert wallets.drain() == []
    role.set_enabled(False)
    assert [w.enabled for w in wallets.drain()] == [False]


async def test_one_process_engine_sizes_to_its_executor_wallets_over_the_bus(tmp_path) -> None:
    cfg = config.load(use_user=False)
    cfg.venues["kraken"].taker_fee_bps = 10.0
    cfg.venues["gemini"].taker_fee_bps = 10.0
    cfg.detector = dcfg()
    cfg.execution.enabled = True
    cfg.execution.wallets = {"kraken": WalletConfig(base=0.0, quote=1e9),
                             "gemini": WalletConfig(base=1.2, quote=0.0)}
    cfg.journal.path = str(tmp_path / "journal.sqlite")
    clock = Clock()
    eng = Engine(cfg, roles=("detect", "execute"), bus=EmbeddedBus(1000),
                 clock=FixedClock(clock))
    await eng.start()
    try:
        await until(lambda: eng.detect.state().sized_to_wallets, 5, "executor wallets applied",
                    every=0.005)
        eng.bus.publish(QUOTES, "BTC-USD", mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A,
                                               recv=clock.t))
        eng.bus.publish(QUOTES, "BTC-USD", mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)],
                                               recv=clock.t))
        await until(lambda: eng.snapshot().open_opportunities, 5, "an opportunity", every=0.005)
        o = eng.snapshot().open_opportunities[0]
        assert o.size == pytest.approx(1.2) and o.limited_by == "base_balance"
        st = eng.snapshot()
        assert st.extra["detector"]["sized_to_wallets"] is True and st.executing
    finally:
        await eng.stop()


async def test_supervisor_restarts_counts_and_stops() -> None:
    sup = Supervisor()
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 2:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)

    t = sup.spawn("flaky", flaky)
    await until(lambda: runs == 2, 10, "restarted", every=0.005)
    assert sup.failures == {"flaky": 1}
    await sup.stop()
    assert sup.stopping and t.done()


async def test_roles_are_subscribed_when_start_returns(tmp_path) -> None:
    # A message published right after start() is not lost to a subscription that the
    # role's loop would only have made on its first turn.
    cfg = config.load(use_user=False)
    cfg.journal.path = str(tmp_path / "journal.sqlite")
    clock = Clock()
    eng = Engine(cfg, roles=("detect", "execute"), bus=EmbeddedBus(1000),
                 clock=FixedClock(clock))
    await eng.start()
    try:
        q = mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t)
        eng.publish_quote(q)  # no await between start() and this
        await until(lambda: eng.detector.evaluated == 1, 5, "the quote evaluated", every=0.005)
        subs = eng.bus.stats()["subscriptions"]
        assert {"quotes/detector", "status/detector", "wallets/detector",
                "opportunities/journal", "fills/journal"} <= set(subs)
    finally:
        await eng.stop()
