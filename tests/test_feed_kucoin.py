"""KuCoin adapter: against the loopback simulator (token, welcome, REST bridge,
faults) and frame-level sequence rules."""

from __future__ import annotations

import json

from feed_og_fixtures import Rig
from spies import count_taken

from arbtui.backend.feeds.kucoin import KucoinFeed
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]
FAST = {"crossed_grace_s": 0.3}


# ====================================================================== simulator


async def test_token_welcome_snapshot_and_quotes_equal_sim():
    async with Rig("kucoin", SYMS) as r:
        await r.live()
        await r.wait(lambda: len(r.quotes) > 20, "quotes flowing")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        assert r.sim.tokens == 1 and r.c("welcomes") == 1 and r.c("sub_acks") == 1
        assert r.c("snapshots") == 2 and r.sim.snapshot_requests == 2
        assert any("/api/v1/market/orderbook/level2_100?symbol=BTC-USDT" in p
                   for p in r.sim.http.requests)
        q = r.last_quote("BTC-USDT")
        assert q.venue_ts_ns > 0 and q.seq == r.sim.seq["BTC-USDT"]
        assert q.bid < q.ask and len(q.bids) <= 10
        assert r.c("gaps") == 0 and r.c("resyncs") == 0 and r.c("frame_errors") == 0


async def test_gap_resnapshots_only_that_symbol():
    async with Rig("kucoin", SYMS, feed_attrs=FAST) as r:
        await r.live()
        before = r.feed.books["ETH-USDT"].changes
        r.sim.inject("gap")  # BTC-USDT (the first symbol) loses one message
        await r.wait(lambda: r.c("gaps") >= 1, "gap detected")
        await r.wait(lambda: r.c("snapshots") >= 3 and r.all_live(), "LIVE after re-snapshot")
        assert BookState.RESYNC in r.states_of("BTC-USDT")
        assert r.feed.books["ETH-USDT"].changes == before
        assert r.sim.connects == 1
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_crossed_and_malformed_and_drop():
    async with Rig("kucoin", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("crossed") >= 1 and r.c("resyncs") >= 1, "crossed resynced")
        await r.live()
        assert all(q.bid < q.ask for q in r.quotes)
        r.sim.inject("malformed")
        await r.wait(lambda: r.c("frame_errors") >= 1, "malformed counted")
        assert r.all_live() and r.sim.connects == 1
        r.sim.inject("drop")
        await r.wait(lambda: r.feed.reconnects >= 1, "reconnect")
        await r.wait(lambda: r.all_live() and r.sim.tokens == 2, "LIVE on a new token")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_refused_token_is_retried_with_backoff():
    async with Rig("kucoin", SYMS, sim_attrs={"refuse_tokens": 2}) as r:
        await r.wait(lambda: r.c("connect_errors") == 2, "two refused token calls")
        await r.live()
        assert r.sim.tokens == 1 and r.sim.connects == 1 and r.feed.reconnects == 2


async def test_ping_interval_from_bullet_and_pong():
    async with Rig("kucoin", SYMS, sim_attrs={"ping_interval_ms": 300}) as r:
        await r.live()
        assert r.feed.keepalive_s == 0.3
        await r.wait(lambda: r.c("pongs") >= 2 and r.sim.pings >= 2, "pings answered")


async def test_instrument_list_skips_disabled_pairs():
    async with Rig("kucoin", SYMS) as r:
        body = await r.feed.http_get(KucoinFeed.instruments_url(r.sim.rest_url))
        assert KucoinFeed.parse_instruments(body) == {"BTC-USDT": "BTC-USDT", "ETH-USDT": "ETH-USDT"}


# ====================================================================== frame rules


def _upd(start, end, bids=(), asks=(), sym="BTC-USDT"):
    return json.dumps({"type": "message", "topic": f"/market/level2:{sym}", "subject": "trade.l2update",
                       "data": {"symbol": sym, "sequenceStart": start, "sequenceEnd": end,
                                "time": 1_786_000_000_000,
                                "changes": {"bids": [list(b) for b in bids], "asks": [list(a) for a in asks]}}})


def _synced():
    """A feed whose BTC-USDT book was bridged at sequence 100 (no network)."""
    quotes: list = []
    f = KucoinFeed(["BTC-USDT"], quotes.append)
    sb = f.books["BTC-USDT"]
    f.feed_frame(_upd(99, 101, bids=[("10", "1", "99"), ("11", "2", "101")]), 1)  # buffered
    st = f.books["BTC-USDT"].sync
    assert len(st.pending) == 1
    done = f._install(sb, st, 100, [["10", "5"]], [["12", "1"]], 1_000_000)
    assert done and sb.state is BookState.LIVE
    return f, sb, quotes


def test_bridge_skips_rows_at_or_below_the_snapshot_sequence():
    _, sb, quotes = _synced()
    # Row 99 (<= 100) is already in the snapshot; row 101 applies.
    assert sb.book.best_bid() == ("11", "2") and sb.book.bids[10.0] == ("10", "5")
    assert sb.seq == 101 and quotes[-1].seq == 101


def test_overlap_is_legal_and_a_hole_is_a_gap():
    f, sb, _ = _synced()
    f.feed_frame(_upd(100, 102, asks=[("12", "0", "101"), ("12", "3", "102")]), 2)  # overlaps 101
    assert sb.seq == 102 and sb.book.best_ask() == ("12", "3")
    f.feed_frame(_upd(101, 102, bids=[("9", "1", "102")]), 3)  # wholly old: ignored
    assert f.counters.get("stale_updates") == 1 and 9.0 not in sb.book.bids
    f.feed_frame(_upd(104, 105, bids=[("9", "1", "105")]), 4)  # 103 is missing
    assert f.counters.get("gaps") == 1 and sb.state is BookState.RESYNC
    assert sb.seq == -1 and len(sb.book) == 0


def test_price_zero_row_only_advances_the_sequence():
    f, sb, _ = _synced()
    f.feed_frame(_upd(102, 103, bids=[("0", "0", "102"), ("10.5", "1", "103")]), 2)
    assert sb.seq == 103 and sb.book.best_bid() == ("11", "2") and 10.5 in sb.book.bids


def test_snapshot_older_than_the_buffer_is_fetched_again():
    quotes: list = []
    f = KucoinFeed(["BTC-USDT"], quotes.append)
    sb = f.books["BTC-USDT"]
    f.feed_frame(_upd(200, 201, bids=[("10", "1", "201")]), 1)
    st = f.books["BTC-USDT"].sync
    assert not f._install(sb, st, 150, [["10", "5"]], [["12", "1"]], 0)
    assert f.counters.get("snapshot_too_old") == 1 and sb.state is not BookState.LIVE


def test_bad_frames_are_counted_not_fatal():
    f, sb, _ = _synced()
    for bad in ("{", "[]", '{"type": "message", "subject": "trade.l2update", "data": {"symbol": "BTC-USDT"}}',
                '{"no": "type"}'):
        f.feed_frame(bad, 5)
    assert f.counters.get("frame_errors") == 4 and sb.state is BookState.LIVE
    # A malformed row inside a message for a LIVE book drops and resyncs that book.
    f.feed_frame(_upd(102, 102, bids=[("x", "1", "102")]), 6)
    assert f.counters["frame_errors"] == 5 and sb.state is BookState.RESYNC


def test_subscribe_waits_for_welcome_and_batches_100_symbols():
    f = KucoinFeed([], lambda q: None)
    assert f.subscribe_messages() == []
    f.books = {f"S{i}-USDT": type("SB", (), {"vsym": f"S{i}-USDT"})() for i in range(150)}
    frames = [json.loads(x) for x in f._subscribe_frames()]
    assert [len(x["topic"].partition(":")[2].split(",")) for x in frames] == [100, 50]
    assert all(x["type"] == "subscribe" and x["response"] is True for x in frames)


def test_typed_l2update_path_and_generic_path_agree(monkeypatch):
    # Synced books' l2updates take a typed one-pass decode; the generic dict path
    # stays the rule for everything else. Over overlaps, a stale update, price-0
    # rows, start > end, numbers as rows, a bad row and a gap, both give the same
    # quotes, counters and books.
    from arbtui.backend.feeds import kucoin

    frames = [
        _upd(100, 102, asks=[("12", "0", "101"), ("12", "3", "102")]),  # overlaps 101
        _upd(101, 102, bids=[("9", "1", "102")]),  # stale
        _upd(103, 104, bids=[("0", "0", "103"), ("10.5", "1", "104")]),
        _upd(105, 105, asks=[("11.5", "2", "105")]),
        _upd(107, 106, bids=[("9", "1", "106")]),  # start > end
        _upd(106, 106, bids=[(10.6, "1", "106")]),  # a number: generic path
        _upd(107, 108, asks=[("11.4", "1", "107"), ("11.5", "0", "108")]),
        _upd(110, 111, bids=[("9", "1", "111")]),  # 109 is missing
    ]
    runs = []
    for typed in (True, False):
        monkeypatch.setattr(kucoin, "TYPED_L2", typed)
        taken = count_taken(monkeypatch, KucoinFeed, "_on_update_typed")
        out = []
        for tail in (frames, [_upd(101, 102, bids=[("x", "1", "102")])]):
            f, sb, quotes = _synced()
            for i, fr in enumerate(tail):
                f.feed_frame(fr, 10 + i)
            out.append(([(q.bids, q.asks, q.bid_px, q.ask_qty, q.seq, q.venue_ts_ns)
                         for q in quotes[1:]], f.status().counters,
                        (sb.state, sb.seq, sb.book.top_bids(50), sb.book.top_asks(50))))
        runs.append((out, taken[0]))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == 7 and runs[1][1] == 0
    c = runs[0][0][0][1]
    assert c["gaps"] == 1 and c["stale_updates"] == 1 and c["frame_errors"] == 1
    assert runs[0][0][1][1]["frame_errors"] == 1 and runs[0][0][1][2][0] is BookState.RESYNC
