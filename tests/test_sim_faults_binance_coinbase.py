"""Every fault the Binance and Coinbase protocols make detectable is detected by the
adapter (a counter and a state in ``status()``), and the books return to LIVE and
equal to the simulated venue's book. Real loopback sockets throughout."""

from __future__ import annotations

import pytest
from feed_bc_fixtures import Rig

from arbtui.model import BookState

SYMS = {"binance": ["BTC-USDT", "ETH-USDT"], "coinbase": ["BTC-USD", "ETH-USD"]}
VENUES = ["binance", "coinbase"]


@pytest.mark.parametrize("venue", VENUES)
async def test_dropped_connection_reconnects_and_resyncs(venue):
    async with Rig(venue, SYMS[venue]) as rig:
        await rig.live()
        rig.sim.inject("drop")
        await rig.wait(lambda: rig.feed.reconnects >= 1, "reconnect after drop")
        for s in SYMS[venue]:
            assert BookState.STALE in rig.states_of(s)
        await rig.live()
        await rig.wait_equal()
        assert rig.sim.connects == 2


@pytest.mark.parametrize("venue", VENUES)
async def test_malformed_frame_is_counted_and_not_fatal(venue):
    async with Rig(venue, SYMS[venue]) as rig:
        await rig.live()
        changes = {s: sb.changes for s, sb in rig.feed.books.items()}
        rig.sim.inject("malformed")
        await rig.wait(lambda: rig.counter("frame_errors") >= 1, "malformed frame counted")
        await rig.wait_equal()
        assert rig.feed.reconnects == 0
        # A frame that never touched a book leaves every book LIVE.
        assert {s: sb.changes for s, sb in rig.feed.books.items()} == changes


@pytest.mark.parametrize("venue", VENUES)
async def test_silence_marks_stale_and_reconnects(venue):
    async with Rig(venue, SYMS[venue], stale_after_s=1.0) as rig:
        await rig.live()
        rig.sim.inject("silence")
        await rig.wait(lambda: rig.counter("stale") >= 1, "staleness noticed")
        for s in SYMS[venue]:
            assert BookState.STALE in rig.states_of(s)
        await rig.wait(lambda: rig.feed.reconnects >= 1, "reconnect after silence")
        await rig.live()
        await rig.wait_equal()


@pytest.mark.parametrize("venue", VENUES)
async def test_crossed_book_is_resynced(venue):
    async with Rig(venue, SYMS[venue]) as rig:
        await rig.live()
        first = SYMS[venue][0]
        rig.sim.inject("crossed")
        await rig.wait(lambda: rig.counter("crossed") >= 1, "crossed book detected")
        assert BookState.RESYNC in rig.states_of(first)
        # No quote with bid >= ask ever left the adapter.
        assert all(q.bid < q.ask for q in rig.quotes)
        await rig.live()
        await rig.wait_equal()  # every level equal: the fake crossing level is gone
        assert rig.feed.reconnects == 0


async def test_binance_gap_detected_by_update_ids():
    async with Rig("binance", SYMS["binance"]) as rig:
        await rig.live()
        rig.sim.inject("gap")
        await rig.wait(lambda: rig.counter("gaps") >= 1, "gap detected")
        assert BookState.RESYNC in rig.states_of(SYMS["binance"][0])
        await rig.live()
        await rig.wait_equal()


async def test_coinbase_midstream_snapshot_resets_the_book():
    async with Rig("coinbase", SYMS["coinbase"]) as rig:
        await rig.live()
        await rig.wait_equal()
        before = rig.counter("snapshots")
        rig.sim.inject("snapshot")  # a junk level, then a snapshot without it
        await rig.wait(lambda: rig.counter("snapshots") > before, "mid-stream snapshot applied")
        # Full equality: a client that merged the snapshot would still hold the junk level.
        await rig.wait_equal()
        assert rig.counter("gaps") == 0 and rig.feed.reconnects == 0


@pytest.mark.parametrize("venue", VENUES)
async def test_faults_the_venue_does_not_have_are_discarded(venue):
    async with Rig(venue, SYMS[venue]) as rig:
        await rig.live()
        rig.sim.inject("checksum")
        if venue == "binance":
            rig.sim.inject("snapshot")  # Binance has no in-stream snapshots
        await rig.wait(lambda: not rig.sim.pending_faults, "fault consumed")
        await rig.wait_equal()
        assert rig.counter("frame_errors") == 0 and rig.counter("resyncs") == 0


@pytest.mark.parametrize("venue", VENUES)
async def test_backoff_is_not_reset_by_a_successful_subscribe(venue):
    """Three drops, each after the feed subscribed and its books went LIVE again:
    the backoff keeps growing (cryptofeed resets it on subscribe). Only a
    healthy period resets it."""
    async with Rig(venue, SYMS[venue]) as rig:
        await rig.live()
        for i in range(3):
            rig.sim.inject("drop")
            await rig.wait(lambda n=i: rig.feed.reconnects == n + 1, f"reconnect {i + 1}")
            await rig.live()
            await rig.wait_equal()
        assert rig.feed.backoff.attempt == 3
        rig.feed.backoff.healthy_s = 0.3
        await rig.wait(lambda: rig.feed.backoff.attempt == 0, "healthy period resets backoff")


@pytest.mark.parametrize("venue", VENUES)
async def test_refused_connections_back_off_then_recover(venue):
    async with Rig(venue, SYMS[venue]) as rig:
        await rig.live()
        rig.sim.inject("refuse")  # new handshakes get HTTP 503
        rig.sim.inject("drop")
        await rig.wait(lambda: rig.counter("connect_errors") >= 2, "refused reconnects")
        assert rig.feed.backoff.attempt >= 2
        assert not rig.all_live()
        rig.sim.inject("refuse")  # accept again
        await rig.live()
        await rig.wait_equal()


async def test_coinbase_resubscribe_without_snapshot_falls_back_to_reconnect():
    def no_resnapshot(sim) -> None:
        sim.resubscribe_snapshots = False
        sim.heartbeat_s = 0.2

    async with Rig("coinbase", SYMS["coinbase"], sim_setup=no_resnapshot) as rig:
        rig.feed.resub_timeout_s = 0.5
        await rig.live()
        rig.sim.inject("gap")
        await rig.wait(lambda: rig.counter("gaps") >= 1, "gap detected")
        await rig.wait(lambda: rig.counter("resubscribe_timeouts") >= 1, "resubscribe timed out")
        await rig.wait(lambda: rig.feed.reconnects >= 1, "reconnect")
        await rig.live()  # a new connection's first subscribe always brings snapshots
        await rig.wait_equal()


async def test_sims_are_deterministic_for_a_seed():
    from arbtui.backend.sim.binance import Sim as BSim
    from arbtui.backend.sim.coinbase import Sim as CSim
    from arbtui.backend.sim.market import MarketModel
    from arbtui.backend.sim.server import SimHub

    async def binance_state(seed: int) -> tuple[str, list]:
        model = MarketModel(["BTC-USDT"], ["binance"], seed=seed)
        sim = BSim(SimHub(model), ["BTC-USDT"], seed=seed)
        events = []
        sim._broadcast = lambda s, kind, ev: events.append((kind, {k: v for k, v in ev.items() if k != "E"}))
        for _ in range(20):
            model.step()
            sim._tick()
        _, body = await sim.http_get("/api/v3/depth?symbol=BTCUSDT&limit=20")
        return body, events

    a, b, c = await binance_state(5), await binance_state(5), await binance_state(6)
    assert a == b and a[1]  # same seed: same snapshot, same update ids and levels
    assert a[0] != c[0]

    def coinbase_snapshot(seed: int) -> str:
        model = MarketModel(["BTC-USD"], ["coinbase"], seed=seed)
        sim = CSim(SimHub(model), ["BTC-USD"], seed=seed)
        for _ in range(20):
            model.step()
            sim._tick()
        return sim._snapshot_events("BTC-USD", "T") + str(sim.hb_counter)

    assert coinbase_snapshot(5) == coinbase_snapshot(5) != coinbase_snapshot(6)
