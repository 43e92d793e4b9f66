"""Kraken v2 adapter: checksum vectors, parser units on frames shaped as
docs/protocols.md#kraken describes, and end-to-end runs against the loopback Kraken simulator with each
fault the v2 protocol can reveal."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

import msgspec
import pytest
from feed_kb_fixtures import Rig

from arbtui.backend.book import Book, kraken_checksum
from arbtui.backend.feeds.kraken import KrakenFeed, num_text, rfc3339_ns, sub_depth
from arbtui.backend.sim.kraken import crc_top10
from arbtui.model import BookState

SYMS = ["BTC-USD", "ETH-USD"]


# ---------------------------------------------------------------- checksum vectors


def test_doc_formatting_example_price_and_trailing_zero_qty():
    # docs.kraken.com "Book checksum (WebSocket v2)": 45285.2 -> 452852, 0.00100000 -> 100000.
    b = Book(10)
    b.set(False, "45285.2", "0.00100000")
    assert kraken_checksum(b) == zlib.crc32(b"452852100000")


def test_trailing_zeros_change_the_checksum():
    a, b = Book(10), Book(10)
    a.set(False, "45285.2", "0.00100000")
    b.set(False, "45285.2", "0.001")
    assert kraken_checksum(b) == zlib.crc32(b"4528521")
    assert kraken_checksum(a) != kraken_checksum(b)


def test_v1_doc_book_vector_974947235():
    # The book behind the v1 docs' example update (checksum "974947235"): ten asks
    # 0.05005..0.05050 and ten bids 0.05000..0.04950 (no 0.04985), each 0.00000500.
    # An 11th level on each side must not enter the checksum.
    b = Book(1000)
    for i in range(11):
        b.set(False, f"0.0{5005 + 5 * i}", "0.00000500")
    for px in ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965",
               "0.04960", "0.04955", "0.04950", "0.04945"]:
        b.set(True, px, "0.00000500")
    assert kraken_checksum(b) == 974947235


def test_json_numbers_keep_their_literal_digits():
    frame = ('{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD",'
             '"bids":[{"price":45283.5,"qty":0.10000000}],'
             '"asks":[{"price":45285.2,"qty":0.00100000}],"checksum":0}]}')
    # What the venue computes over the literal text:
    want = zlib.crc32(b"452852100000" + b"452835" + b"10000000")
    frame = frame.replace('"checksum":0', f'"checksum":{want}')
    feed = KrakenFeed(["BTC-USD"], lambda q: None, depth=10)
    feed.feed_frame(frame, 1)
    sb = feed.books["BTC-USD"]
    assert sb.state is BookState.LIVE, feed.status()
    assert sb.book.best_ask() == ("45285.2", "0.00100000")
    assert sb.book.best_bid() == ("45283.5", "0.10000000")
    # A float decoder would have produced 0.001 / 0.1 and this checksum would differ.
    assert json.loads(frame)["data"][0]["asks"][0]["qty"] == 0.001
    assert feed.counters.get("checksum_mismatch", 0) == 0


def test_sim_checksum_agrees_with_book_checksum():
    bids = {"65000.10": "0.50000000", "64999.90": "1.25000000"}
    asks = {"65000.30": "0.00100000", "65001.00": "2.00000000"}
    b = Book(10)
    for p, q in bids.items():
        b.set(True, p, q)
    for p, q in asks.items():
        b.set(False, p, q)
    assert crc_top10(bids, asks) == kraken_checksum(b)


# ---------------------------------------------------------------- parser units


def _snap(sym: str, bids, asks, checksum=None, typ="snapshot", ts=None) -> str:
    """A v2 book frame with price/qty written as JSON numbers, literal digits kept."""

    def lv(rows):
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in rows) + "]"

    tail = "" if checksum is None else f',"checksum":{checksum}'
    tail += f',"timestamp":"{ts}"' if ts else ""
    return (f'{{"channel":"book","type":"{typ}","data":[{{"symbol":"{sym}",'
            f'"bids":{lv(bids)},"asks":{lv(asks)}{tail}}}]}}')


def _feed(depth=10):
    out = []
    return KrakenFeed(SYMS, out.append, depth=depth), out


def _book_of(bids, asks) -> Book:
    b = Book(1000)
    for p, q in bids:
        b.set(True, p, q)
    for p, q in asks:
        b.set(False, p, q)
    return b


def test_snapshot_update_truncation_and_quote():
    feed, out = _feed(depth=10)
    bids = [(f"{100 - i}.0", "1.0") for i in range(10)]
    asks = [(f"{101 + i}.0", "2.0") for i in range(10)]
    feed.feed_frame(_snap("ETH/USD", bids, asks, kraken_checksum(_book_of(bids, asks))), 1)
    assert feed.books["ETH-USD"].state is BookState.LIVE
    # Insert a better bid: Kraken sends no delete for the level pushed out of depth 10.
    new_bids = [("100.5", "3.0")] + bids[:9]
    upd = _snap("ETH/USD", [("100.5", "3.0")], [], kraken_checksum(_book_of(new_bids, asks)),
                typ="update", ts="2023-10-06T17:35:55.440295Z")
    feed.feed_frame(upd, 2)
    sb = feed.books["ETH-USD"]
    assert len(sb.book.bids) == 10 and sb.book.top_bids(10)[-1] == ("92.0", "1.0")
    assert feed.counters.get("checksum_mismatch", 0) == 0
    q = out[-1]
    assert (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) == ("100.5", "3.0", "101.0", "2.0")
    assert q.venue_ts_ns == 1696613755_440295000


def test_bad_checksum_resyncs_only_that_symbol():
    feed, _ = _feed()
    for sym in ("BTC/USD", "ETH/USD"):
        bids, asks = [("10.0", "1.0")], [("11.0", "1.0")]
        feed.feed_frame(_snap(sym, bids, asks, kraken_checksum(_book_of(bids, asks))), 1)
    feed.feed_frame(_snap("BTC/USD", [("10.5", "1.0")], [], 12345, typ="update"), 2)
    assert feed.counters["checksum_mismatch"] == 1
    assert feed.books["BTC-USD"].state is BookState.RESYNC
    assert feed.books["ETH-USD"].state is BookState.LIVE


def test_malformed_frames_are_counted_never_raised():
    feed, _ = _feed()
    for bad in [('{"channel":"book","type":"update","data":[{"symbol":"BTC/USD",'
                 '"bids":[{"price":"x","qty":1}]}]}'), "{not json", "[1,2]", "42",
                '{"channel":"book","type":"weird","data":[]}']:
        feed.feed_frame(bad, 1)
    assert feed.counters["frame_errors"] >= 4


def test_update_before_snapshot_is_ignored():
    feed, out = _feed()
    feed.feed_frame(_snap("BTC/USD", [("10.0", "1.0")], [("11.0", "1.0")], 1, typ="update"), 1)
    assert feed.books["BTC-USD"].state is BookState.SYNCING and not out
    assert feed.counters["updates_before_snapshot"] == 1


def test_rfc3339_and_depths_and_numbers():
    assert rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert rfc3339_ns("1970-01-01T00:00:01.123456789Z") == 1_123_456_789
    assert rfc3339_ns("garbage") == 0
    assert [sub_depth(d) for d in (1, 10, 11, 100, 200, 5000)] == [10, 10, 25, 100, 500, 1000]
    assert num_text(Decimal("0.00100000")) == "0.00100000" and num_text(45285) == "45285"
    with pytest.raises(ValueError):
        num_text(True)


def test_wire_numbers_keep_their_literal_text():
    from arbtui.backend.feeds.kraken import _decoder

    raw = b'[45285.20, 0.00100000, 45285, -0.0, 1e-7, 1.5E+2, "7.10"]'
    got = [num_text(v) for v in _decoder.decode(raw)]
    # The old Decimal hook's output, digit for digit (trailing zeros are checksum input).
    assert got == ["45285.20", "0.00100000", "45285", "-0.0", "0.0000001", "150", "7.10"]
    assert got == [num_text(v) for v in msgspec.json.Decoder(float_hook=Decimal).decode(raw)]


def test_parse_instruments_maps_wsname_and_skips_dark_pools():
    body = json.dumps({"error": [], "result": {
        "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD"},
        "XXBTZUSD.d": {"altname": "XBTUSD.d", "base": "XXBT", "quote": "ZUSD"},
        "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD", "base": "XXDG", "quote": "ZUSD"},
        "ETHUSDC": {"altname": "ETHUSDC", "wsname": "ETH/USDC", "base": "XETH", "quote": "USDC"},
        "NOWS": {"altname": "NOWS", "base": "A", "quote": "B"},
    }})
    m = KrakenFeed.parse_instruments(body)
    assert m == {"BTC-USD": "BTC/USD", "DOGE-USD": "DOGE/USD", "ETH-USDC": "ETH/USDC"}
    assert KrakenFeed.instruments_url("https://api.kraken.com/") == \
        "https://api.kraken.com/0/public/AssetPairs"


def test_symbols_from_subscribe_v2_and_v1():
    sent = [('{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","ETH/USD"],'
             '"depth":10,"snapshot":true},"req_id":1}'),
            '{"method":"subscribe","params":{"channel":"ticker","symbol":["SOL/USD"]}}',
            '{"method":"ping"}']
    assert KrakenFeed.symbols_from_subscribe("wss://ws.kraken.com/v2", sent,
                                             {"BTC/USD": "BTC-USD"}) == ["BTC-USD", "ETH-USD"]
    v1 = [('{"event":"subscribe","pair":["XBT/CHF","XDG/USD"],'
           '"subscription":{"name":"book","depth":1000}}')]
    assert KrakenFeed.symbols_from_subscribe("wss://ws.kraken.com", v1, {}) == \
        ["BTC-CHF", "DOGE-USD"]


def test_v1_frames_replay_with_checksum():
    feed = KrakenFeed(["BTC-CHF"], lambda q: None, depth=1000)
    feed.feed_frame('{"event":"subscriptionStatus","channelID":464,"pair":"XBT/CHF",'
                    '"status":"subscribed","subscription":{"depth":1000,"name":"book"}}', 1)
    feed.feed_frame('[464,{"as":[["56218.30000","0.15000000","1618678117.243818"]],'
                    '"bs":[["56119.00000","0.14375128","1618678117.1"]]},"book-1000","XBT/CHF"]', 2)
    sb = feed.books["BTC-CHF"]
    assert sb.state is BookState.LIVE
    b = _book_of([("56119.00000", "0.14375128")], [("56218.30000", "0.01000000")])
    c = kraken_checksum(b)
    feed.feed_frame('[464,{"a":[["56218.30000","0.01000000","1618678133.924027"]],'
                    f'"c":"{c}"}},"book-1000","XBT/CHF"]', 3)
    assert feed.counters.get("checksum_mismatch", 0) == 0
    assert sb.book.best_ask() == ("56218.30000", "0.01000000")


# ---------------------------------------------------------------- against the simulator


async def test_reaches_live_and_matches_sim_top():
    async with Rig("kraken", SYMS, depth=10) as rig:
        await rig.live()
        n = rig.feed.counters.get("checksum_ok", 0)
        # Let levels move in and out of the depth-10 window for a while.
        await rig.wait(lambda: rig.feed.counters.get("checksum_ok", 0) >= n + 60, "updates")
        await rig.freeze_and_converge()
        for s in SYMS:
            q = rig.last_quote(s)
            bids, asks = rig.sim_top(s, 1)
            assert (q.bid_px, q.bid_qty) == bids[0] and (q.ask_px, q.ask_qty) == asks[0]
            assert len(rig.feed.books[s].book.bids) == 10  # truncated to the subscribed depth
        st = rig.feed.status()
        assert st.counters.get("checksum_mismatch", 0) == 0
        assert st.counters.get("frame_errors", 0) == 0


async def test_quiet_market_heartbeats_and_idle_ping_keep_books_live():
    async with Rig("kraken", SYMS, depth=10) as rig:
        rig.feed.keepalive_s = 0.3  # ask often; a ping goes out only when idle
        rig.feed.idle_ping_s = 0.5  # shorter than the 1 s heartbeat gap, to exercise ping
        await rig.live()
        await rig.freeze_and_converge()  # no more book traffic from here on
        await rig.wait(lambda: rig.feed.counters.get("heartbeats", 0) >= 2, "heartbeats")
        await rig.wait(lambda: rig.feed.counters.get("pongs", 0) >= 1, "pong for our ping")
        assert rig.feed.counters["pings"] >= 1
        assert rig.all_live() and rig.feed.reconnects == 0


async def _resync_one(kind: str, counter: str) -> None:
    async with Rig("kraken", SYMS, depth=10) as rig:
        await rig.live()
        rig.states.clear()
        subs_before = list(rig.sim.subscribes)
        rig.sim.inject(kind)
        await rig.wait(lambda: rig.feed.counters.get(counter, 0) >= 1, counter)
        _, target_vsym = rig.sim.fault_log[-1]
        target = "BTC-USD" if target_vsym == "BTC/USD" else "ETH-USD"
        other = next(s for s in SYMS if s != target)
        await rig.wait(lambda: rig.all_live() and BookState.LIVE in rig.states_of(target),
                       "target back to LIVE")
        assert BookState.RESYNC in rig.states_of(target)
        assert rig.states_of(other) == []  # the other symbol never left LIVE
        assert rig.sim.unsubscribes == [target_vsym]
        assert rig.sim.subscribes[len(subs_before):] == [target_vsym]
        assert rig.feed.reconnects == 0
        await rig.freeze_and_converge()


async def test_bad_checksum_fault_resubscribes_only_that_symbol():
    await _resync_one("checksum", "checksum_mismatch")


async def test_missed_update_is_caught_by_checksum():
    await _resync_one("gap", "checksum_mismatch")


async def test_crossed_book_with_valid_checksum_is_resynced():
    await _resync_one("crossed", "crossed")


async def test_snapshot_mid_stream_resets_book_and_stays_live():
    async with Rig("kraken", SYMS, depth=10) as rig:
        await rig.live()
        n = rig.feed.counters.get("snapshots", 0)
        rig.sim.inject("snapshot")
        await rig.wait(lambda: rig.feed.counters.get("snapshots", 0) > n, "mid-stream snapshot")
        await rig.freeze_and_converge()
        assert rig.feed.counters.get("resyncs", 0) == 0
        assert rig.feed.counters.get("checksum_mismatch", 0) == 0


async def test_malformed_frame_counted_books_stay_live():
    async with Rig("kraken", SYMS, depth=10) as rig:
        await rig.live()
        rig.sim.inject("malformed")
        await rig.wait(lambda: rig.feed.counters.get("frame_errors", 0) >= 1, "frame error")
        assert rig.all_live() and rig.feed.reconnects == 0
        await rig.freeze_and_converge()


async def test_dropped_connection_reconnects_to_live():
    async with Rig("kraken", SYMS, depth=25) as rig:
        await rig.live()
        rig.sim.inject("drop")
        await rig.wait(lambda: rig.feed.reconnects >= 1, "reconnect")
        await rig.live()
        assert rig.sim.connects == 2
        await rig.freeze_and_converge()


async def test_silence_marks_stale_then_recovers():
    async with Rig("kraken", SYMS, depth=10) as rig:
        rig.feed.stale_after_s = 1.0
        await rig.live()
        rig.sim.inject("silence")
        await rig.wait(lambda: rig.feed.counters.get("stale", 0) >= 1, "stale")
        assert all(BookState.STALE in rig.states_of(s) for s in SYMS)
        await rig.wait(lambda: rig.feed.reconnects >= 1 and rig.all_live(), "live again")


async def test_resubscribe_without_snapshot_is_retried():
    import asyncio

    feed, _ = _feed()
    feed.resub_timeout_s = 0.2
    bids, asks = [("10.0", "1.0")], [("11.0", "1.0")]
    feed.feed_frame(_snap("BTC/USD", bids, asks, kraken_checksum(_book_of(bids, asks))), 1)
    feed.feed_frame(_snap("BTC/USD", [("10.5", "1.0")], [], 7, typ="update"), 2)
    for _ in range(500):
        # Both: the deadline fires, then the retry it asks for runs in its own task.
        if feed.counters.get("resubscribe_timeouts", 0) >= 1 and feed.counters["resubscribes"] >= 2:
            break
        await asyncio.sleep(0.01)
    assert feed.counters["resubscribe_timeouts"] >= 1 and feed.counters["resubscribes"] >= 2
    # The snapshot that finally arrives ends the retries.
    feed.feed_frame(_snap("BTC/USD", bids, asks, kraken_checksum(_book_of(bids, asks))), 3)
    assert feed.books["BTC-USD"].state is BookState.LIVE
    for t in list(feed._tasks):
        t.cancel()


def test_trimmed_wire_digits_fall_back_to_fixed_precision():
    # If the wire drops trailing zeros (0.001) but the venue checksummed the pair's
    # fixed precision (0.00100000), the book is still right: accept, count it.
    bids = [("45283.5", "0.12345678")]
    asks = [("45285.2", "0.001")]
    want = zlib.crc32(b"452852100000" + b"45283512345678")
    feed = KrakenFeed(["BTC-USD"], lambda q: None, depth=10)
    feed.feed_frame(_snap("BTC/USD", bids, asks, want), 1)
    assert feed.books["BTC-USD"].state is BookState.LIVE
    assert feed.counters["checksum_ok_fixed_precision"] == 1
    assert not feed.counters.get("checksum_mismatch")
    # ...while a checksum neither rule explains is still a mismatch.
    feed.feed_frame(_snap("BTC/USD", [("45283.6", "0.2")], [], want, typ="update"), 2)
    assert feed.counters["checksum_mismatch"] == 1


async def test_sim_speaks_v2_acks_snapshot_numbers_and_pong():
    import asyncio

    import websockets

    from arbtui.backend.sim.kraken import Sim
    from arbtui.backend.sim.market import MarketModel
    from arbtui.backend.sim.server import SimHub

    model = MarketModel(SYMS, ["kraken"], seed=5, tick_ms=25.0, dislocation_rate=0.0)
    hub = SimHub(model)
    sim = Sim(hub, SYMS, seed=5)
    await sim.start()
    await hub.start()
    try:
        async with websockets.connect(sim.url) as ws:
            async def recv() -> str:
                return await asyncio.wait_for(ws.recv(), 3)

            assert json.loads(await recv())["channel"] == "status"
            await ws.send('{"method":"subscribe","params":{"channel":"book","symbol":'
                          '["BTC/USD","ETH/USD","DOGE/XYZ"],"depth":10},"req_id":9}')
            acks, snaps, errors = [], [], []
            while len(acks) + len(errors) < 3 or len(snaps) < 2:
                text = await recv()
                m = json.loads(text)
                if m.get("method") == "subscribe":
                    (acks if m["success"] else errors).append(m)
                elif m.get("type") == "snapshot":
                    snaps.append(text)
            assert [a["result"]["symbol"] for a in acks] == ["BTC/USD", "ETH/USD"]
            assert all(a["req_id"] == 9 and a["result"]["depth"] == 10 for a in acks)
            assert errors[0]["symbol"] == "DOGE/XYZ"
            # Numbers, not strings, with the pair's fixed decimals on the wire.
            assert '"price":65' in snaps[0] and '"qty":"' not in snaps[0]
            el = json.loads(snaps[0], parse_float=Decimal)["data"][0]
            assert len(el["bids"]) == 10 and len(el["asks"]) == 10
            b = Book(10)
            for lv in el["bids"]:
                b.set(True, format(lv["price"], "f"), format(lv["qty"], "f"))
            for lv in el["asks"]:
                b.set(False, format(lv["price"], "f"), format(lv["qty"], "f"))
            assert kraken_checksum(b) == el["checksum"]
            await ws.send('{"method":"ping","req_id":42}')
            for _ in range(500):
                m = json.loads(await recv())
                if m.get("method") == "pong":
                    assert m["req_id"] == 42
                    break
            else:
                raise AssertionError("no pong")
    finally:
        await hub.stop()
        await sim.stop()
