"""Bitfinex adapter: frame-level rules (snapshot, count-0 deletes, connection
sequence, checksum, info codes, malformed frames) and against the simulator."""

from __future__ import annotations

import json
import zlib

from feed_og_fixtures import Rig

from arbtui.backend.feeds.bitfinex import BitfinexFeed, checksum
from arbtui.model import BookState

SYMS = ["BTC-USD", "ETH-USD"]


def _feed(flags: int = 65536 + 131072):
    quotes: list = []
    f = BitfinexFeed(["BTC-USD", "ETH-USD"], quotes.append)
    f.feed_frame('{"event":"info","version":2,"serverId":"x","platform":{"status":1}}', 1)
    f.feed_frame(json.dumps({"event": "conf", "status": "OK", "flags": flags}), 1)
    for cid, sym in ((10, "tBTCUSD"), (11, "tETHUSD")):
        f.feed_frame(json.dumps({"event": "subscribed", "channel": "book", "chanId": cid,
                                 "symbol": sym, "prec": "P0", "freq": "F0", "len": "25"}), 1)
    return f, quotes


def _snap(f, seq=1):
    f.feed_frame(f"[10,[[100.5,1,2.5],[100.25,2,1],[101,1,-0.75],[101.5,3,-4]],{seq}]", 2)
    return f.books["BTC-USD"]


def test_snapshot_then_updates_with_count_zero_deletes():
    f, quotes = _feed()
    sb = _snap(f)
    assert sb.state is BookState.LIVE
    assert sb.book.top_bids(5) == [("100.5", "2.5"), ("100.25", "1")]
    assert sb.book.top_asks(5) == [("101", "0.75"), ("101.5", "4")]
    f.feed_frame("[10,[100.5,0,1],2]", 3)  # delete the best bid (amount 1: bid side)
    f.feed_frame("[10,[101,0,-1],3]", 4)  # delete the best ask
    f.feed_frame("[10,[100.75,1,0.00000001],4]", 5)  # wire text kept as sent
    assert sb.book.top_bids(5) == [("100.75", "0.00000001"), ("100.25", "1")]
    assert sb.book.top_asks(5) == [("101.5", "4")]
    q = quotes[-1]
    assert (q.bid_px, q.ask_px, q.seq, q.venue_ts_ns) == ("100.75", "101.5", 4, 0)
    assert f.counters.get("gaps") is None and f.counters.get("frame_errors") is None


def test_checksum_is_bitfinex_crc_over_wire_text():
    f, _ = _feed()
    sb = _snap(f)
    text = "100.5:2.5:101:-0.75:100.25:1:101.5:-4"
    want = zlib.crc32(text.encode())
    want = want - 2 ** 32 if want >= 2 ** 31 else want
    assert checksum(sb.book) == want
    f.feed_frame(f'[10,"cs",{want},2]', 3)
    assert f.counters["checksums"] == 1 and sb.state is BookState.LIVE
    f.feed_frame(f'[10,"cs",{want + 1},3]', 4)
    assert f.counters["checksum_mismatch"] == 1 and sb.state is BookState.RESYNC
    assert len(sb.book) == 0  # dropped at once
    assert f.books["ETH-USD"].state is not BookState.RESYNC  # one book only


def test_connection_sequence_gap_resyncs_every_book():
    f, _ = _feed()
    sb = _snap(f, seq=1)
    f.feed_frame("[11,[[10,1,1],[11,1,-1]],2]", 2)
    f.feed_frame('[99,"te",[1,2,3,4],3]', 3)  # another channel: counts in the sequence
    f.feed_frame('[10,"hb",4]', 4)
    assert f.counters.get("gaps") is None and f.counters["other_channel"] == 1
    f.feed_frame("[10,[100.5,1,3],6]", 5)  # 5 is missing: some channel lost a frame
    assert f.counters["gaps"] == 1
    assert all(b.state is BookState.RESYNC and len(b.book) == 0 for b in f.books.values())
    assert 100.5 not in sb.book.bids


def test_updates_before_snapshot_and_without_seq_all():
    f, quotes = _feed(flags=0)  # the venue did not accept SEQ_ALL: no sequence field
    f.feed_frame("[10,[100.5,1,3]]", 1)
    assert f.counters["updates_before_snapshot"] == 1
    f.feed_frame("[10,[[100.5,1,2.5],[101,1,-1]]]", 2)
    assert f.books["BTC-USD"].state is BookState.LIVE and quotes[-1].seq == -1


def test_malformed_frames_are_counted_not_fatal():
    f, _ = _feed()
    sb = _snap(f)
    for i, bad in enumerate(("[", "7", '["x",1]', "[10]", '[10,{"a":1},2]'), start=2):
        f.feed_frame(bad, i)
    assert f.counters["frame_errors"] == 5
    # "[10,{...},2]" was a valid sequence number but not a book message
    assert sb.state is BookState.LIVE
    f.feed_frame('[10,[100.5,"x",1],3]', 9)  # bad row on a LIVE book: dropped, resynced
    assert f.counters["frame_errors"] == 6 and sb.state is BookState.RESYNC


def test_other_api_version_is_refused():
    quotes: list = []
    f = BitfinexFeed(["BTC-USD"], quotes.append)
    f.feed_frame('{"event":"info","version":1}', 1)
    f.feed_frame('{"event":"subscribed","channel":"book","chanId":5,"symbol":"tBTCUSD"}', 1)
    f.feed_frame("[5,[[100,1,1],[101,1,-1]]]", 2)
    assert f.counters["protocol_errors"] == 1 and not quotes
    assert f.books["BTC-USD"].state is not BookState.LIVE


def test_maintenance_info_codes():
    f, _ = _feed()
    sb = _snap(f)
    f.feed_frame('{"event":"info","code":20060,"msg":"maintenance"}', 3)
    assert sb.state is BookState.STALE and len(sb.book) == 0
    f.feed_frame("[10,[[100.5,1,2.5],[101,1,-1]],2]", 4)
    assert sb.state is BookState.STALE  # nothing applied during maintenance
    f.feed_frame('{"event":"info","code":20061,"msg":"over"}', 5)
    assert sb.state is BookState.RESYNC


def test_instrument_list_and_recorded_subscriptions():
    body = json.dumps([["BTCUSD", "BTCUST", "TESTBTC:TESTUSD", "AVAX:USD", "ETHBTC"]])
    m = BitfinexFeed.parse_instruments(body)
    assert m == {"BTC-USD": "tBTCUSD", "BTC-USDT": "tBTCUST", "TESTBTC-TESTUSD": "tTESTBTC:TESTUSD",
                 "AVAX-USD": "tAVAX:USD", "ETH-BTC": "tETHBTC"}
    inv = {v: k for k, v in m.items()}
    sent = [json.dumps({"event": "conf", "flags": 65536}),
            json.dumps({"event": "subscribe", "channel": "ticker", "symbol": "tETHBTC"}),
            json.dumps({"event": "subscribe", "channel": "book", "symbol": "tBTCUSD", "prec": "P0"})]
    assert BitfinexFeed.symbols_from_subscribe("", sent, inv) == ["BTC-USD"]
    raw = [json.dumps({"event": "subscribe", "channel": "book", "symbol": "tBTCUSD", "prec": "R0"})]
    try:
        BitfinexFeed.symbols_from_subscribe("", raw, inv)
    except ValueError as e:
        assert "R0" in str(e) and "not spoken" in str(e)
    else:
        raise AssertionError("raw book recording was not refused")


# ====================================================================== simulator


async def test_sim_conf_flags_checksums_and_pings():
    async with Rig("bitfinex", SYMS, feed_attrs={"keepalive_s": 0.2}) as r:
        await r.live()
        await r.wait(lambda: r.c("checksums") >= 10 and r.c("pongs") >= 2, "checksums and pongs")
        r.feed.keepalive_s = None  # pongs would keep the feed from going quiet
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        assert r.c("checksum_mismatch") == 0 and r.c("gaps") == 0 and r.c("frame_errors") == 0
        assert r.feed._flags == 65536 + 131072


async def test_sim_checksum_fault_resyncs_only_that_book():
    async with Rig("bitfinex", SYMS) as r:
        await r.live()
        before = {s: sb.changes for s, sb in r.feed.books.items()}
        # The next cs frame is off by one: the first channel's that moved on that
        # tick, so either book's (a quiet channel sends no cs).
        r.sim.inject("checksum")
        await r.wait(lambda: r.c("checksum_mismatch") >= 1, "mismatch seen")
        await r.wait(lambda: r.all_live() and r.c("resubscribes") >= 1, "LIVE again")
        moved = [s for s, sb in r.feed.books.items() if sb.changes != before[s]]
        assert len(moved) == 1 and r.c("resubscribes") == 1 and r.sim.connects == 1
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


def test_compact_frame_fast_path_matches_the_json_path():
    # Update and checksum frames written without spaces take a regex path instead of
    # json.loads; the same frames with spaces take the JSON path. Both must leave the
    # same books, quotes, checksum verdicts and counters, including edge spellings
    # (integer prices, exponents, -0, a bad checksum, a JSON-invalid leading zero).
    frames = ["[10,[100.75,1,0.00000001],2]", "[10,[101,2,-3],3]", "[10,[100.5,0,1],4]",
              "[10,[1e2,1,2.5E-1],5]", "[10,[101.25,1,-0],6]", "[10,[102.5,1,-0.5e+1],7]"]
    fa, qa = _feed()
    fb, qb = _feed()
    _snap(fa)
    _snap(fb)
    for i, fr in enumerate(frames):
        fa.feed_frame(fr, 10 + i)
        fb.feed_frame(fr.replace(",", ", "), 10 + i)
    good = checksum(fa.books["BTC-USD"].book)
    tail = [f'[10,"cs",{good},8]', f'[10,"cs",{good + 1},9]', "[10,[100,01,1],10]"]
    for i, fr in enumerate(tail):
        fa.feed_frame(fr, 20 + i)
        fb.feed_frame(fr.replace(",", ", "), 20 + i)
    for f in (fa, fb):
        assert f.counters["checksums"] == 2 and f.counters["checksum_mismatch"] == 1
        assert f.counters["frame_errors"] >= 1  # the leading zero is not JSON
    assert fa.counters == fb.counters
    assert [(q.bids, q.asks, q.bid_px, q.ask_qty, q.seq) for q in qa] == \
        [(q.bids, q.asks, q.bid_px, q.ask_qty, q.seq) for q in qb]
    assert len(qa) >= 4
