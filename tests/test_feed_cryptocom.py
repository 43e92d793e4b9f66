"""Crypto.com adapter: frame-level rules (book snapshot, book.update u/pu chain,
gap -> one book resubscribed, heartbeat answered, malformed frames, v2-era
full books) and against the simulator."""

from __future__ import annotations

import json

from feed_og_fixtures import Rig

from arbtui.backend.feeds.cryptocom import CryptocomFeed
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]
T = 1_786_000_000_000


def _msg(inst, channel, d, depth=50):
    return json.dumps({"id": -1, "method": "subscribe", "code": 0, "result": {
        "instrument_name": inst, "subscription": f"book.{inst}.{depth}", "channel": channel,
        "depth": depth, "data": [d]}})


def _snap(f, u=100, inst="BTC_USDT"):
    f.feed_frame(_msg(inst, "book", {"bids": [["100.5", "2", "1"], ["100.25", "1", "1"]],
                                     "asks": [["101", "0.75", "1"], ["101.5", "4", "2"]],
                                     "t": T, "u": u}), 1)
    return f.books["BTC-USDT" if inst == "BTC_USDT" else "ETH-USDT"]


def _upd(f, u, pu, bids=(), asks=(), inst="BTC_USDT", ts=2):
    f.feed_frame(_msg(inst, "book.update", {"update": {"bids": [list(b) for b in bids],
                                                       "asks": [list(a) for a in asks]},
                                            "t": T + 5, "u": u, "pu": pu}), ts)


def _feed():
    quotes: list = []
    return CryptocomFeed(SYMS, quotes.append), quotes


def test_snapshot_then_chained_updates():
    f, quotes = _feed()
    sb = _snap(f)
    assert sb.state is BookState.LIVE and quotes[-1].seq == 100
    assert quotes[-1].venue_ts_ns == T * 1_000_000
    _upd(f, 103, 100, bids=[("100.5", "0", "0"), ("100.75", "3", "1")])
    _upd(f, 104, 103, asks=[("101", "0", "0")])
    _upd(f, 107, 104)  # an empty update still moves the chain
    assert sb.book.top_bids(5) == [("100.75", "3"), ("100.25", "1")]
    assert sb.book.top_asks(5) == [("101.5", "4")]
    assert sb.seq == 107 and quotes[-1].seq == 104
    assert not f.counters.get("gaps") and not f.counters.get("frame_errors")


def test_gap_drops_and_resyncs_only_that_book():
    f, _ = _feed()
    sb = _snap(f)
    eth = _snap(f, u=5, inst="ETH_USDT")
    _upd(f, 103, 101, bids=[("99", "1", "1")])  # pu 101, but the book is at 100
    assert f.counters["gaps"] == 1 and sb.state is BookState.RESYNC and len(sb.book) == 0
    assert eth.state is BookState.LIVE
    _upd(f, 104, 103, bids=[("99", "1", "1")])
    assert f.counters["updates_before_snapshot"] == 1 and len(sb.book) == 0
    _snap(f, u=200)  # the fresh snapshot after the resubscribe
    assert sb.state is BookState.LIVE and sb.seq == 200


def test_heartbeat_is_answered_with_its_id():
    f, _ = _feed()
    sent: list[str] = []
    f.send = sent.append
    f.feed_frame('{"id":1587523073344,"method":"public/heartbeat","code":0}', 1)
    assert json.loads(sent[-1]) == {"id": 1587523073344, "method": "public/respond-heartbeat"}


def test_malformed_frames_are_counted_not_fatal():
    f, _ = _feed()
    sb = _snap(f)
    for bad in ("{", "[]", '{"code":0}', _msg("BTC_USDT", "book.update", {"u": 1}),
                _msg("BTC_USDT", "book", "x")):
        f.feed_frame(bad, 3)
    assert f.counters["frame_errors"] == 5 and sb.state is BookState.LIVE
    _upd(f, 101, 100, bids=[("x", "1", "1")])  # a bad row on a LIVE book: dropped
    assert f.counters["frame_errors"] == 6 and sb.state is BookState.RESYNC
    f.feed_frame('{"id":3,"method":"subscribe","code":10004,"message":"BAD_REQUEST"}', 4)
    assert f.counters["venue_errors"] == 1


def test_v2_era_full_books_replay_with_their_text():
    # The v2 API sent numbers as JSON numbers, every message a whole book, no u/pu.
    f, quotes = _feed()
    raw = ('{"code":0,"method":"subscribe","result":{"instrument_name":"BTC_USDT",'
           '"subscription":"book.BTC_USDT.150","channel":"book","depth":150,"data":[{'
           '"bids":[[45.320,1.259,1],[45,0.010,1]],"asks":[[45.400,2,1]],"t":1637709519451}]}}')
    f.feed_frame(raw, 1)
    sb = f.books["BTC-USDT"]
    assert sb.book.top_bids(2) == [("45.320", "1.259"), ("45", "0.010")]
    assert sb.book.top_asks(1) == [("45.400", "2")] and quotes[-1].seq == -1


def test_instrument_lists_v1_and_v2():
    v1 = json.dumps({"result": {"data": [
        {"symbol": "BTC_USDT", "inst_type": "CCY_PAIR", "base_ccy": "BTC", "quote_ccy": "USDT",
         "tradable": True},
        {"symbol": "BTCUSD-PERP", "inst_type": "PERPETUAL_SWAP", "base_ccy": "BTC",
         "quote_ccy": "USD", "tradable": True},
        {"symbol": "OLD_USDT", "inst_type": "CCY_PAIR", "base_ccy": "OLD", "quote_ccy": "USDT",
         "tradable": False}]}})
    assert CryptocomFeed.parse_instruments(v1) == {"BTC-USDT": "BTC_USDT"}
    v2 = json.dumps({"result": {"instruments": [
        {"instrument_name": "MATIC_USDT", "base_currency": "MATIC", "quote_currency": "USDT"}]}})
    assert CryptocomFeed.parse_instruments(v2) == {"MATIC-USDT": "MATIC_USDT"}
    sent = [json.dumps({"method": "subscribe", "params": {"channels": [
        "book.MATIC_USDT.150", "trade.MATIC_USDT"]}})]
    assert CryptocomFeed.symbols_from_subscribe("", sent, {"MATIC_USDT": "MATIC-USDT"}) == ["MATIC-USDT"]


# ====================================================================== simulator


async def test_sim_snapshot_updates_and_heartbeats():
    async with Rig("cryptocom", SYMS, sim_attrs={"heartbeat_s": 0.3},
                   feed_attrs={"connect_pause_s": 0.1}) as r:
        await r.live()
        await r.wait(lambda: r.sim.heartbeats_answered >= 3, "heartbeats answered")
        assert r.sim.connects == 1  # an unanswered heartbeat would have closed it
        r.sim.heartbeat_s = 60.0
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        assert r.c("gaps") == 0 and r.c("frame_errors") == 0 and r.c("snapshots") == 2


async def test_sim_gap_resubscribes_that_book_on_the_same_socket():
    async with Rig("cryptocom", SYMS, feed_attrs={"connect_pause_s": 0.1}) as r:
        await r.live()
        before = {s: r.feed.books[s].changes for s in SYMS}
        r.sim.inject("gap")
        await r.wait(lambda: r.c("gaps") >= 1, "gap seen")
        await r.wait(lambda: r.all_live() and r.c("snapshots") >= 3, "LIVE after resubscribe")
        assert r.sim.connects == 1 and r.sim.subscribes == 3
        # The gap lands on whichever book moves on the faulted tick: that book alone
        # goes LIVE -> RESYNC -> LIVE; the other never leaves LIVE.
        moved = sorted(r.feed.books[s].changes - before[s] for s in SYMS)
        assert moved == [0, 2], moved
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
