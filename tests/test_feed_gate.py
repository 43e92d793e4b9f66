"""Gate spot.obu adapter: against the loopback simulator and frame-level id rules."""

from __future__ import annotations

import json

from feed_og_fixtures import Rig

from arbtui.backend.feeds.gate import GateFeed
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]
FAST = {"crossed_grace_s": 0.3, "resub_timeout_s": 2.0}


# ====================================================================== simulator


async def test_full_push_then_increments_equal_sim():
    async with Rig("gate", SYMS) as r:
        await r.live()
        await r.wait(lambda: len(r.quotes) > 20 and r.c("subscribe_acks") == 2, "quotes flowing")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        q = r.last_quote("BTC-USDT")
        assert q.venue_ts_ns > 0 and q.seq == r.sim.ids["BTC-USDT"]
        assert r.c("snapshots") == 2 and r.c("gaps") == 0 and r.c("frame_errors") == 0


async def test_gap_resubscribes_only_that_book():
    async with Rig("gate", SYMS, feed_attrs=FAST) as r:
        await r.live()
        before = r.feed.books["ETH-USDT"].changes
        r.sim.inject("gap")
        await r.wait(lambda: r.c("gaps") == 1, "gap detected")
        await r.wait(lambda: r.c("resubscribes") == 1 and r.all_live(), "LIVE after resubscribe")
        assert BookState.RESYNC in r.states_of("BTC-USDT")
        assert r.feed.books["ETH-USDT"].changes == before
        assert r.sim.connects == 1 and r.sim.subscribes == 3
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_full_push_mid_stream_is_legal():
    async with Rig("gate", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("snapshot")
        await r.wait(lambda: r.c("snapshots") >= 3, "second full push")
        await r.freeze()
        assert r.c("gaps") == 0 and r.c("resyncs") == 0 and r.all_live()
        r.assert_top_matches_sim("BTC-USDT")


async def test_crossed_malformed_drop_and_ping():
    async with Rig("gate", SYMS, feed_attrs=dict(FAST, keepalive_s=0.2)) as r:
        await r.live()
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("crossed") >= 1 and r.c("resubscribes") >= 1, "crossed resynced")
        await r.live()
        assert all(q.bid < q.ask for q in r.quotes)
        r.sim.inject("malformed")
        await r.wait(lambda: r.c("frame_errors") >= 1, "malformed counted")
        assert r.all_live() and r.sim.connects == 1
        await r.wait(lambda: r.c("pongs") >= 1 and r.sim.pings >= 1, "spot.ping answered")
        r.feed.keepalive_s = 60.0  # pongs would keep the feed from going quiet below
        r.sim.inject("drop")
        await r.wait(lambda: r.feed.reconnects >= 1, "reconnect")
        await r.wait(lambda: r.all_live() and r.sim.connects == 2, "LIVE again")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_instrument_list_tradable_only():
    async with Rig("gate", SYMS) as r:
        body = await r.feed.http_get(GateFeed.instruments_url(r.sim.rest_url))
        assert GateFeed.parse_instruments(body) == {"BTC-USDT": "BTC_USDT", "ETH-USDT": "ETH_USDT"}


# ====================================================================== frame rules


def _msg(result):
    return json.dumps({"time": 1, "time_ms": 1000, "channel": "spot.obu", "event": "update",
                       "result": {"t": 1_786_000_000_000, "s": "ob.BTC_USDT.400", **result}})


def _feed():
    quotes: list = []
    f = GateFeed(["BTC-USDT"], quotes.append, depth=400)
    return f, f.books["BTC-USDT"], quotes


def test_subscribe_frame_and_levels():
    f, _, _ = _feed()
    (sub,) = [json.loads(x) for x in f.subscribe_messages()]
    assert sub["channel"] == "spot.obu" and sub["event"] == "subscribe"
    assert sub["payload"] == ["ob.BTC_USDT.400"] and isinstance(sub["time"], int)
    assert GateFeed(["BTC-USDT"], lambda q: None, depth=50).level == 50
    assert json.loads(f.keepalive_message())["channel"] == "spot.ping"


def test_chain_rule():
    f, sb, quotes = _feed()
    f.feed_frame(_msg({"U": 5, "u": 6, "b": [["9", "1"]], "a": []}), 1)
    assert f.counters.get("updates_before_snapshot") == 1 and sb.state is not BookState.LIVE
    f.feed_frame(_msg({"full": True, "u": 10, "b": [["10", "1"]], "a": [["11", "1"]]}), 2)
    assert sb.state is BookState.LIVE and sb.seq == 10 and quotes[-1].seq == 10
    f.feed_frame(_msg({"U": 11, "u": 13, "b": [["10", "0"], ["10.5", "2"]], "a": []}), 3)
    assert sb.seq == 13 and sb.book.best_bid() == ("10.5", "2") and 10.0 not in sb.book.bids
    f.feed_frame(_msg({"U": 15, "u": 15, "b": [["10.6", "1"]], "a": []}), 4)  # 14 lost
    assert f.counters.get("gaps") == 1 and sb.state is BookState.RESYNC and sb.seq == -1
    f.feed_frame(_msg({"U": 16, "u": 16, "b": [], "a": [["11", "0"]]}), 5)  # old subscription
    assert sb.state is BookState.RESYNC and len(sb.book) == 0
    f.feed_frame(_msg({"full": True, "u": 40, "b": [["10", "1"]], "a": [["11", "1"]]}), 6)
    assert sb.state is BookState.LIVE and sb.seq == 40


def test_bad_frames_counted_and_errors_visible():
    f, sb, _ = _feed()
    f.feed_frame(_msg({"full": True, "u": 10, "b": [["10", "1"]], "a": [["11", "1"]]}), 1)
    for bad in ("{", "1", '{"channel": "spot.obu", "event": "update", "result": 3}',
                _msg({"U": "x", "u": 11}), '{"event": "update"}'):
        f.feed_frame(bad, 2)
    assert f.counters.get("frame_errors") == 5 and sb.state is BookState.LIVE
    f.feed_frame(json.dumps({"channel": "spot.obu", "event": "subscribe",
                             "error": {"code": 2, "message": "Alert sub ob.BTC_USDT.400"}}), 3)
    assert f.counters.get("venue_errors") == 1
