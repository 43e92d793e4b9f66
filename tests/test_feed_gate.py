"""Gate spot.order_book_update adapter: against the loopback simulator (REST
bridge, faults) and frame-level id rules."""

from __future__ import annotations

import json

from feed_og_fixtures import Rig
from spies import count_taken

from arbtui.backend.feeds.gate import GateFeed
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]
FAST = {"crossed_grace_s": 0.3}


# ====================================================================== simulator


async def test_bridged_book_and_quotes_equal_sim():
    async with Rig("gate", SYMS) as r:
        await r.live()
        await r.wait(lambda: len(r.quotes) > 20 and r.c("subscribe_acks") == 2, "quotes flowing")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        assert any("/api/v4/spot/order_book?currency_pair=BTC_USDT&limit=100&with_id=true" in p
                   for p in r.sim.http.requests)
        q = r.last_quote("BTC-USDT")
        assert q.venue_ts_ns > 0 and q.seq == r.sim.ids["BTC-USDT"]
        assert r.c("snapshots") == 2 and r.c("gaps") == 0 and r.c("frame_errors") == 0


async def test_gap_resnapshots_only_that_pair():
    async with Rig("gate", SYMS, feed_attrs=FAST) as r:
        await r.live()
        before = r.feed.books["ETH-USDT"].changes
        r.sim.inject("gap")
        await r.wait(lambda: r.c("gaps") == 1, "gap detected")
        await r.wait(lambda: r.c("snapshots") == 3 and r.all_live(), "LIVE after re-snapshot")
        assert BookState.RESYNC in r.states_of("BTC-USDT")
        assert r.feed.books["ETH-USDT"].changes == before
        assert r.sim.connects == 1
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_full_message_mid_stream_replaces_the_book():
    async with Rig("gate", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("snapshot")
        await r.wait(lambda: r.c("full_books") == 1, "full message applied")
        await r.freeze()
        assert r.c("gaps") == 0 and r.c("resyncs") == 0 and r.all_live()
        r.assert_top_matches_sim("BTC-USDT")


async def test_crossed_malformed_drop_and_ping():
    async with Rig("gate", SYMS, feed_attrs=dict(FAST, keepalive_s=0.2)) as r:
        await r.live()
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("crossed") >= 1 and r.c("resyncs") >= 1, "crossed resynced")
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
    return json.dumps({"time": 1, "channel": "spot.order_book_update", "event": "update",
                       "result": {"t": 1_786_000_000_000, "e": "depthUpdate", "E": 1_786_000_000,
                                  "s": "BTC_USDT", **result}})


def _feed():
    quotes: list = []
    f = GateFeed(["BTC-USDT"], quotes.append)
    return f, f.books["BTC-USDT"], quotes


def test_requests_are_gate_v4():
    f, sb, _ = _feed()
    (sub,) = [json.loads(x) for x in f.subscribe_messages()]
    assert sub["channel"] == "spot.order_book_update" and sub["event"] == "subscribe"
    assert sub["payload"] == ["BTC_USDT", "100ms"] and isinstance(sub["time"], int)
    assert json.loads(f.keepalive_message())["channel"] == "spot.ping"
    assert f.snapshot_urls(sb) == [
        "https://api.gateio.ws/api/v4/spot/order_book?currency_pair=BTC_USDT&limit=100&with_id=true"]


def test_bridge_and_chain_rules():
    f, sb, quotes = _feed()
    f.feed_frame(_msg({"U": 8, "u": 9, "b": [["9", "1"]], "a": []}), 1)  # before the snapshot
    f.feed_frame(_msg({"U": 10, "u": 12, "b": [["10.5", "2"]], "a": []}), 2)
    st = f.books["BTC-USDT"].sync
    assert [(p.first, p.last) for p in st.pending] == [(7, 9), (9, 12)]
    assert f._install(sb, st, 10, [["10", "1"]], [["11", "1"]], 0)
    # u <= id dropped; the first kept (10..12) contains id + 1 = 11.
    assert sb.state is BookState.LIVE and sb.seq == 12 and 9.0 not in sb.book.bids
    assert sb.book.best_bid() == ("10.5", "2")
    f.feed_frame(_msg({"U": 12, "u": 13, "b": [["10.5", "0"]], "a": []}), 3)  # overlap: legal
    assert sb.seq == 13 and sb.book.best_bid() == ("10", "1")
    f.feed_frame(_msg({"U": 15, "u": 15, "b": [["10.6", "1"]], "a": []}), 4)  # 14 lost
    assert f.counters.get("gaps") == 1 and sb.state is BookState.RESYNC and sb.seq == -1
    f.feed_frame(_msg({"full": True, "u": 40, "b": [["10", "1"]], "a": [["11", "1"]]}), 5)
    assert sb.state is BookState.LIVE and sb.seq == 40 and quotes[-1].seq == 40


def test_snapshot_older_than_buffer_is_refetched():
    f, sb, _ = _feed()
    f.feed_frame(_msg({"U": 50, "u": 52, "b": [["9", "1"]], "a": []}), 1)
    assert not f._install(sb, f.books["BTC-USDT"].sync, 40, [["10", "1"]], [["11", "1"]], 0)
    assert f.counters.get("snapshot_too_old") == 1 and sb.state is not BookState.LIVE


def test_bad_frames_counted_and_errors_visible():
    f, sb, _ = _feed()
    f.feed_frame(_msg({"full": True, "u": 10, "b": [["10", "1"]], "a": [["11", "1"]]}), 1)
    for bad in ("{", "1", '{"channel": "spot.order_book_update", "event": "update", "result": 3}',
                _msg({"U": 11, "u": "x"}), '{"event": "update"}'):
        f.feed_frame(bad, 2)
    assert f.counters.get("frame_errors") == 5 and sb.state is BookState.LIVE
    f.feed_frame(json.dumps({"channel": "spot.order_book_update", "event": "subscribe",
                             "error": {"code": 2, "message": "unknown currency pair"}}), 3)
    assert f.counters.get("venue_errors") == 1


def test_typed_update_path_and_generic_path_agree(monkeypatch):
    # Synced books' updates take a typed one-pass decode; the generic dict path stays
    # the rule for everything else (buffering, full books, malformed frames). Over a
    # bridge, overlaps, a stale update, a bad level, U > u, a gap and a full book,
    # both give the same quotes, counters and books.
    from arbtui.backend.feeds import gate

    frames = [
        _msg({"U": 8, "u": 9, "b": [["9", "1"]], "a": []}),  # buffered
        "INSTALL",
        _msg({"U": 11, "u": 13, "b": [["10.5", "2"]], "a": []}),
        _msg({"U": 12, "u": 14, "b": [["10.5", "0"]], "a": []}),  # overlap: legal
        _msg({"U": 15, "u": 15, "b": [], "a": [["10.9", "3"]]}),
        _msg({"U": 12, "u": 13, "b": [["10.7", "1"]], "a": []}),  # stale
        _msg({"U": 16, "u": 17, "b": [["10.2", "1"]], "a": [["10.9", "0"]], "t": None}),
        _msg({"U": 19, "u": 18, "b": [["10.3", "1"]], "a": []}),  # U > u
        _msg({"U": 18, "u": 18, "b": [[10.3, "1"]], "a": []}),  # a number: generic path
        _msg({"full": True, "u": 40, "b": [["10", "1"]], "a": [["11", "1"]]}),
        _msg({"U": 41, "u": 41, "b": [["10", "abc"]], "a": []}),  # bad level: resync
        _msg({"full": True, "u": 50, "b": [["10", "1"]], "a": [["11", "1"]]}),
        _msg({"U": 51, "u": 52, "b": [["10.1", "1"]], "a": []}),
        _msg({"U": 55, "u": 55, "b": [["10.6", "1"]], "a": []}),  # 53, 54 lost
    ]
    runs = []
    for typed in (True, False):
        monkeypatch.setattr(gate, "TYPED_UPDATE", typed)
        taken = count_taken(monkeypatch, GateFeed, "_on_update_typed")
        f, sb, quotes = _feed()
        for i, fr in enumerate(frames):
            if fr == "INSTALL":
                assert f._install(sb, sb.sync, 10, [["10", "1"]], [["11", "1"]], 0)
            else:
                f.feed_frame(fr, 10 + i)
        runs.append(([(q.bids, q.asks, q.bid_px, q.ask_qty, q.seq, q.venue_ts_ns)
                      for q in quotes], f.status().counters,
                     (sb.state, sb.seq, sb.book.top_bids(50), sb.book.top_asks(50)), taken[0]))
    assert runs[0][:3] == runs[1][:3]
    assert runs[0][3] == 8 and runs[1][3] == 0
    c = runs[0][1]
    assert c["gaps"] == 1 and c["stale_updates"] == 1 and c["frame_errors"] == 2
