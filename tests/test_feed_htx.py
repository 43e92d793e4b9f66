"""HTX adapter: gzip frames, ping/pong, req snapshot bridged exactly to the
buffered mbp updates, gap -> one book re-snapshotted, malformed frames, the
older depth.step0 channel; and against the simulator."""

from __future__ import annotations

import gzip
import json

from feed_og_fixtures import Rig

from arbtui.backend.feeds.htx import HtxFeed
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]
CH = "market.btcusdt.mbp.150"


def gz(obj) -> bytes:
    return gzip.compress((obj if isinstance(obj, str) else json.dumps(obj)).encode())


def upd(prev, seq, bids=(), asks=(), ch=CH):
    return gz(f'{{"ch":"{ch}","ts":1786000000000,"tick":{{"seqNum":{seq},"prevSeqNum":{prev},'
              f'"bids":{json.dumps([list(b) for b in bids]).replace(chr(34), "")},'
              f'"asks":{json.dumps([list(a) for a in asks]).replace(chr(34), "")}}}}}')


def rep(seq, bids, asks, ch=CH):
    return gz(f'{{"id":"req1","rep":"{ch}","status":"ok","data":{{"seqNum":{seq},'
              f'"bids":{json.dumps([list(b) for b in bids]).replace(chr(34), "")},'
              f'"asks":{json.dumps([list(a) for a in asks]).replace(chr(34), "")}}}}}')


def _feed():
    quotes: list = []
    f = HtxFeed(SYMS, quotes.append)
    sent: list[str] = []
    f.send = sent.append
    return f, quotes, sent


def _synced():
    f, quotes, sent = _feed()
    f.feed_frame(upd(90, 100, bids=[("10.5", "1")]), 1)  # in the snapshot: dropped
    f.feed_frame(upd(100, 104, bids=[("10.25", "2")]), 2)  # after it: applied on top
    assert f.books["BTC-USDT"].state is not BookState.LIVE
    f.feed_frame(rep(100, [("10.5", "1"), ("10", "3")], [("11", "0.5000")]), 3)
    sb = f.books["BTC-USDT"]
    assert sb.state is BookState.LIVE and sb.seq == 104
    return f, sb, quotes, sent


def test_snapshot_bridges_buffered_updates_exactly():
    f, sb, quotes, _ = _synced()
    assert sb.book.top_bids(3) == [("10.5", "1"), ("10.25", "2"), ("10", "3")]
    assert sb.book.top_asks(3) == [("11", "0.5000")]  # wire text kept
    q = quotes[-1]
    assert q.seq == 104 and q.venue_ts_ns == 1_786_000_000_000 * 1_000_000
    f.feed_frame(upd(104, 109, bids=[("10.5", "0")], asks=[("10.75", "1")]), 4)
    assert sb.book.best_bid() == ("10.25", "2") and sb.book.best_ask() == ("10.75", "1")
    assert quotes[-1].seq == 109 and not f.counters.get("gaps")


def test_snapshot_older_than_the_buffer_is_requested_again():
    f, quotes, sent = _feed()
    f.feed_frame(upd(200, 205, bids=[("10", "1")]), 1)
    f.feed_frame(rep(150, [("10", "1")], [("11", "1")]), 2)  # 200 > 150: a hole between
    assert f.counters["snapshot_too_old"] == 1 and not quotes
    assert json.loads(sent[-1]) == {"req": CH, "id": json.loads(sent[-1])["id"]}
    f.feed_frame(rep(205, [("10", "1")], [("11", "1")]), 3)
    assert f.books["BTC-USDT"].state is BookState.LIVE


def test_gap_drops_only_that_book_and_asks_for_a_snapshot():
    f, sb, _, _ = _synced()
    eth = f.books["ETH-USDT"]
    f.feed_frame(upd(104, 110, bids=[("9", "1")]), 4)
    f.feed_frame(upd(111, 115, bids=[("9", "2")]), 5)  # 110 -> 111: an update is missing
    assert f.counters["gaps"] == 1 and sb.state is BookState.RESYNC and len(sb.book) == 0
    assert eth.state is not BookState.RESYNC
    f.feed_frame(upd(115, 118, asks=[("11.5", "1")]), 6)  # buffered for the next snapshot
    f.feed_frame(rep(115, [("9", "2")], [("11", "1")]), 7)
    assert sb.state is BookState.LIVE and sb.seq == 118 and sb.book.top_asks(2) == [
        ("11", "1"), ("11.5", "1")]


def test_ping_is_answered_and_bad_frames_are_counted():
    f, sb, _, sent = _synced()
    f.feed_frame(gz({"ping": 1492420473027}), 5)
    assert json.loads(sent[-1]) == {"pong": 1492420473027}
    for bad in (b"\x1f\x8bnot gzip", b"plain bytes", gz("[1,2]"), gz("{"), gz({"x": 1}),
                gz({"ch": CH, "tick": {"seqNum": "105", "prevSeqNum": 104}})):
        f.feed_frame(bad, 6)
    assert f.counters["frame_errors"] == 6 and sb.state is BookState.LIVE
    f.feed_frame(gz(f'{{"ch":"{CH}","ts":1,"tick":{{"seqNum":105,"prevSeqNum":104,'
                    '"bids":[["abc",1]],"asks":[]}}'), 7)  # a bad row on a LIVE book
    assert f.counters["frame_errors"] == 7 and sb.state is BookState.RESYNC


def test_depth_step0_sessions_replace_the_book_and_merged_steps_are_refused():
    f, quotes, _ = _feed()
    f.feed_frame(gz('{"ch":"market.btcusdt.depth.step0","ts":1618678069870,"tick":{"bids":'
                    '[[9.121E-7,92730.24],[9.12E-7,66053.68]],"asks":[[9.2E-7,10.0]],'
                    '"version":42}}'), 1)
    sb = f.books["BTC-USDT"]
    assert sb.state is BookState.LIVE and sb.book.best_bid() == ("9.121E-7", "92730.24")
    assert quotes[-1].seq == 42
    inv = {"BTCUSDT": "BTC-USDT"}
    assert HtxFeed.symbols_from_subscribe("", ['{"sub":"market.btcusdt.depth.step0","id":1}',
                                               '{"sub":"market.btcusdt.trade.detail"}'], inv) == [
        "BTC-USDT"]
    try:
        HtxFeed.symbols_from_subscribe("", ['{"sub":"market.btcusdt.depth.step2","id":1}'], inv)
    except ValueError as e:
        assert "depth.step2" in str(e) and "not spoken" in str(e)
    else:
        raise AssertionError("merged-price book recording was not refused")


def test_instrument_lists_v2_and_v1():
    v2 = json.dumps({"status": "ok", "data": [
        {"sc": "btcusdt", "bc": "btc", "qc": "usdt", "state": "online"},
        {"sc": "oldusdt", "bc": "old", "qc": "usdt", "state": "offline"}]})
    assert HtxFeed.parse_instruments(v2) == {"BTC-USDT": "BTCUSDT"}
    v1 = json.dumps({"status": "ok", "data": [
        {"symbol": "trioeth", "base-currency": "trio", "quote-currency": "eth", "state": "online"}]})
    assert HtxFeed.parse_instruments(v1) == {"TRIO-ETH": "TRIOETH"}


# ====================================================================== simulator


async def test_sim_gzip_frames_pings_and_books_equal_sim():
    async with Rig("htx", SYMS, sim_attrs={"ping_s": 0.2}) as r:
        await r.live()
        await r.wait(lambda: r.sim.pongs >= 3 and r.c("pings") >= 3, "pings answered")
        assert r.sim.connects == 1  # two unanswered pings would have closed it
        r.sim.ping_s = 60.0
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        assert r.sim.snapshot_requests == 2 and r.c("snapshots") == 2
        assert r.c("gaps") == 0 and r.c("frame_errors") == 0


async def test_sim_gap_re_requests_only_that_snapshot():
    async with Rig("htx", SYMS) as r:
        await r.live()
        before = r.feed.books["ETH-USDT"].changes
        r.sim.inject("gap")
        await r.wait(lambda: r.c("gaps") >= 1, "gap seen")
        await r.wait(lambda: r.all_live() and r.sim.snapshot_requests >= 3, "LIVE again")
        assert r.sim.connects == 1 and r.feed.books["ETH-USDT"].changes == before
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
