"""Bitstamp order_book_<pair> adapter: against the loopback simulator and
frame-level order rules."""

from __future__ import annotations

import asyncio
import json

from feed_og_fixtures import Rig

from arbtui.backend.feeds.bitstamp import BitstampFeed
from arbtui.model import BookState

SYMS = ["BTC-USD", "ETH-USD"]


# ====================================================================== simulator


async def test_full_books_equal_sim_and_quote_shape():
    async with Rig("bitstamp", SYMS) as r:
        await r.live()
        await r.wait(lambda: len(r.quotes) > 20 and r.c("sub_acks") == 2, "quotes flowing")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        q = r.last_quote("BTC-USD")
        assert q.venue_ts_ns > 0 and q.seq == -1  # microtimestamp, no sequence number
        assert r.c("seq_regressions") == 0 and r.c("frame_errors") == 0


async def test_out_of_order_book_leaves_live_then_recovers():
    async with Rig("bitstamp", SYMS) as r:
        await r.live()
        r.sim.inject("seq")
        await r.wait(lambda: r.c("seq_regressions") == 1, "regression caught")
        assert BookState.RESYNC in r.states_of("BTC-USD")
        await r.live()
        assert r.sim.connects == 1
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_lost_book_is_healed_by_the_next():
    async with Rig("bitstamp", SYMS) as r:
        await r.live()
        r.sim.inject("gap")
        await r.wait(lambda: not r.sim.pending_faults, "one book not sent")
        n = len(r.quotes)
        await r.wait(lambda: len(r.quotes) > n + 4, "later books")
        await r.freeze()
        assert r.c("resyncs") == 0 and r.all_live()
        r.assert_top_matches_sim("BTC-USD")


async def test_crossed_malformed_drop_heartbeat_and_reconnect_request():
    async with Rig("bitstamp", SYMS, feed_attrs={"keepalive_s": 0.2}) as r:
        await r.live()
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("crossed") >= 1 and r.c("resyncs") >= 1, "crossed resynced")
        await r.live()
        assert all(q.bid < q.ask for q in r.quotes)
        r.sim.inject("malformed")
        await r.wait(lambda: r.c("frame_errors") >= 1, "malformed counted")
        await r.wait(lambda: r.c("pongs") >= 1 and r.sim.heartbeats >= 1, "heartbeat answered")
        r.sim.request_reconnect()
        await r.wait(lambda: r.c("reconnect_requests") == 1 and r.feed.reconnects == 1, "left")
        await r.wait(lambda: r.all_live() and r.sim.connects == 2, "LIVE again")


async def test_instrument_list_enabled_only():
    async with Rig("bitstamp", SYMS) as r:
        body = await r.feed.http_get(BitstampFeed.instruments_url(r.sim.rest_url))
        assert BitstampFeed.parse_instruments(body) == {"BTC-USD": "BTCUSD", "ETH-USD": "ETHUSD"}


# ====================================================================== frame rules


def _book(mts, bids, asks, ch="order_book_btcusd"):
    return json.dumps({"event": "data", "channel": ch, "data": {
        "timestamp": str(mts // 1_000_000), "microtimestamp": str(mts), "bids": bids, "asks": asks}})


def test_each_message_replaces_the_book_and_order_is_enforced():
    quotes: list = []
    f = BitstampFeed(["BTC-USD"], quotes.append)
    sb = f.books["BTC-USD"]
    assert json.loads(f.subscribe_messages()[0]) == {
        "event": "bts:subscribe", "data": {"channel": "order_book_btcusd"}}
    f.feed_frame(_book(1_000, [["10", "1"], ["9", "1"]], [["11", "1"]]), 1)
    assert sb.state is BookState.LIVE and quotes[-1].venue_ts_ns == 1_000_000
    f.feed_frame(_book(2_000, [["10", "2"]], [["11", "1"]]), 2)
    assert 9.0 not in sb.book.bids and sb.book.best_bid() == ("10", "2")  # replaced, not merged
    f.feed_frame(_book(2_000, [["10", "3"]], [["11", "1"]]), 3)  # not after the newest
    assert f.counters.get("seq_regressions") == 1 and sb.state is BookState.RESYNC
    f.feed_frame(_book(1_500, [["10", "4"]], [["11", "1"]]), 4)  # still older than 2000
    assert f.counters["seq_regressions"] == 2 and len(sb.book) == 0
    f.feed_frame(_book(3_000, [["10", "5"]], [["11", "1"]]), 5)
    assert sb.state is BookState.LIVE and quotes[-1].bid_qty == "5"


def test_bad_frames_counted_never_fatal():
    f = BitstampFeed(["BTC-USD"], lambda q: None)
    sb = f.books["BTC-USD"]
    f.feed_frame(_book(1_000, [["10", "1"]], [["11", "1"]]), 1)
    for bad in ("{", "[1]", '{"channel": "x"}', '{"event": "data", "channel": "order_book_btcusd", "data": 1}',
                json.dumps({"event": "data", "channel": "order_book_btcusd", "data": {"bids": []}})):
        f.feed_frame(bad, 2)
    assert f.counters.get("frame_errors") == 5 and sb.state is BookState.LIVE
    f.feed_frame('{"event":"bts:error","channel":"","data":{"code":null,"message":"Bad"}}', 3)
    assert f.counters.get("venue_errors") == 1


async def test_diff_channel_is_bridged_to_the_rest_book_by_microtimestamp():
    # Live never subscribes diff_order_book_ (a lost diff is invisible), but
    # recorded sessions of it (cryptofeed's) replay by Bitstamp's rule.
    quotes: list = []
    f = BitstampFeed(["BTC-USD"], quotes.append)
    sb = f.books["BTC-USD"]
    asked: list[str] = []

    async def rest(url):
        asked.append(url)
        return json.dumps({"timestamp": "0", "microtimestamp": "2000",
                           "bids": [["10", "1"], ["9", "1"]], "asks": [["11", "1"]]})

    f.http_get_impl = rest
    diff = "diff_order_book_btcusd"
    f.feed_frame(_book(1_500, [["9", "5"]], [], ch=diff), 1)  # before the REST book: in it
    assert sb.state is not BookState.LIVE
    for _ in range(5):
        await asyncio.sleep(0)
    assert asked == ["https://www.bitstamp.net/api/v2/order_book/btcusd/"]
    assert sb.state is BookState.LIVE and sb.book.bids[9.0] == ("9", "1")
    assert f.counters.get("stale_updates") == 1 and quotes[-1].bid_px == "10"
    f.feed_frame(_book(1_900, [["10", "0"]], [], ch=diff), 2)  # at/before the REST book
    assert sb.book.best_bid() == ("10", "1")
    f.feed_frame(_book(2_500, [["10", "0"]], [["10.5", "2"]], ch=diff), 3)  # applied as a diff
    assert sb.book.best_bid() == ("9", "1") and sb.book.best_ask() == ("10.5", "2")
    assert 11.0 in sb.book.asks  # a diff merges, never replaces
    f.feed_frame(_book(2_400, [["9.5", "1"]], [], ch=diff), 4)  # older than the last diff
    assert f.counters.get("seq_regressions") == 1 and sb.state is BookState.RESYNC


def test_hourly_reconnect_bounds_a_silently_lost_channel():
    assert 0 < BitstampFeed.max_conn_life_s <= 3600
