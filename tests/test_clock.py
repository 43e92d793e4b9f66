"""The one clock: live reads the process clocks; the virtual one moves only when driven."""

from __future__ import annotations

import asyncio

from replay_fixtures import recording, replay_inprocess

from arbtui.backend.clock import LIVE, VirtualClock


async def test_live_clock_waits_for_real():
    ev = asyncio.Event()
    assert await LIVE.wait(ev, 0.01) is False
    ev.set()
    assert await LIVE.wait(ev, 0.01) is True


async def test_virtual_timers_fire_in_time_order_only_when_driven():
    clock = VirtualClock(1_000)
    log: list[tuple[str, int]] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        log.append((name, clock.now_ns()))

    tasks = [asyncio.create_task(sleeper("b", 2e-6)), asyncio.create_task(sleeper("a", 1e-6))]
    await asyncio.sleep(0.02)  # wall time passes; virtual time does not
    assert log == [] and clock.now_ns() == 1_000
    assert clock.next_due() == 2_000
    while clock.fire_next():
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert log == [("a", 2_000), ("b", 3_000)]


async def test_virtual_wait_times_out_on_virtual_time_and_wakes_on_set():
    clock = VirtualClock(0)
    ev = asyncio.Event()
    t = asyncio.create_task(clock.wait(ev, 0.5))
    await asyncio.sleep(0)
    assert clock.next_due() == 500_000_000
    assert clock.fire_next()
    assert await t is False and clock.now_ns() == 500_000_000
    t = asyncio.create_task(clock.wait(ev, 0.5))
    await asyncio.sleep(0)
    ev.set()
    assert await t is True
    assert clock.next_due() is None  # the woken wait's timer was dropped


async def test_outside_cancellation_of_a_virtual_wait_propagates():
    clock = VirtualClock(0)
    t = asyncio.create_task(clock.wait(asyncio.Event(), 1.0))
    await asyncio.sleep(0)
    t.cancel()
    try:
        await t
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the outside cancel was swallowed")


async def test_recorded_answers_survive_the_end_and_closing_drops_timers():
    clock = VirtualClock(0)
    got = asyncio.create_task(clock.deliver_at(5, "body"))
    other = asyncio.create_task(clock.sleep(1.0))
    await asyncio.sleep(0)
    assert clock.next_recorded() == 5
    assert clock.fire_next(recorded_only=True)
    assert await got == "body"
    clock.close()
    assert clock.next_due() is None
    await asyncio.sleep(0)
    assert other.cancelled()


async def test_replay_leaves_asyncio_sleep_alone():
    real = asyncio.sleep
    run = await replay_inprocess([recording("COINBASE.jsonl.zst")])
    assert run.quotes
    assert asyncio.sleep is real


async def test_files_years_apart_sleep_through_the_gap():
    """BINANCE (2021) and COINBASE (2026) merged: the periodic timers (sweep, polls)
    do not tick through the five years between them, they fire once at the leap."""
    from replay_fixtures import default_cfg

    from arbtui.backend.replay import ReplayEngine

    files = [str(recording("BINANCE.jsonl.zst")), str(recording("COINBASE.jsonl.zst"))]
    eng = ReplayEngine(default_cfg(), files, speed=0)
    fired = 0
    real = eng.clock.fire_next

    def counting(**kw):
        nonlocal fired
        fired += 1
        return real(**kw)

    eng.clock.fire_next = counting
    await eng.start()
    try:
        assert await eng.wait_finished(300)
    finally:
        await eng.stop()
    assert eng.error is None and eng.lines_done == eng.lines_total
    span_s = (eng.clock.now_ns() - eng.plan.start_ns) / 1e9
    assert span_s > 3 * 365 * 86400
    assert fired < 20_000, fired  # ~100 s of recorded activity at a few timers per 100 ms
