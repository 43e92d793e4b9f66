"""Bybit v5 spot adapter: parser units on recorded frame shapes
(docs/protocols.md#bybit), u/seq rules, and end-to-end runs against the loopback Bybit
simulator with each fault the protocol can reveal."""

from __future__ import annotations

import asyncio
import json

import websockets
from feed_kb_fixtures import Rig
from spies import count_taken

from arbtui.backend.feeds.bybit import BybitFeed
from arbtui.backend.sim.market import MarketModel
from arbtui.backend.sim.server import SimHub
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]

# Bybit frames recorded 2026-08-09 (book shortened to its first levels).
REC_SNAP = ('{"topic":"orderbook.200.BTCUSDT","ts":1786310816516,"type":"snapshot","data":'
            '{"s":"BTCUSDT","b":[["65140.4","0.885797"],["65140","0.014"]],'
            '"a":[["65140.5","0.472203"],["65154.6","0.2"],["65239.1","0.5"]],'
            '"u":62505424,"seq":112488545843},"cts":1786310816512}')
REC_DELTA = ('{"topic":"orderbook.200.BTCUSDT","ts":1786310816618,"type":"delta","data":'
             '{"s":"BTCUSDT","b":[["65140.4","0.875077"]],"a":[["65154.6","0.09948"],'
             '["65154.7","0.123013"],["65239","0.155135"],["65239.1","0"]],'
             '"u":62505425,"seq":112488545865},"cts":1786310816585}')


def _delta(u: int, seq: int, b=(), a=(), typ="delta", topic="orderbook.200.BTCUSDT") -> str:
    return json.dumps({"topic": topic, "ts": 1786310816700, "type": typ, "data": {
        "s": topic.rsplit(".", 1)[1], "b": [list(x) for x in b], "a": [list(x) for x in a],
        "u": u, "seq": seq}, "cts": 1786310816690})


def _feed(depth=200):
    out = []
    return BybitFeed(SYMS, out.append, depth=depth), out


# ---------------------------------------------------------------- parser units


def test_recorded_snapshot_and_delta_build_the_book():
    feed, out = _feed()
    feed.feed_frame(REC_SNAP, 1)
    feed.feed_frame(REC_DELTA, 2)
    sb = feed.books["BTC-USDT"]
    assert sb.state is BookState.LIVE and sb.seq == 62505425
    assert sb.book.top_bids(5) == [("65140.4", "0.875077"), ("65140", "0.014")]
    assert sb.book.top_asks(5) == [("65140.5", "0.472203"), ("65154.6", "0.09948"),
                                   ("65154.7", "0.123013"), ("65239", "0.155135")]
    q = out[-1]
    assert (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) == ("65140.4", "0.875077", "65140.5",
                                                          "0.472203")
    assert q.venue_ts_ns == 1786310816585 * 1_000_000 and q.seq == 62505425
    assert not feed.counters.get("gaps") and not feed.counters.get("frame_errors")


def test_u_gap_resyncs_that_topic_only():
    feed, _ = _feed()
    feed.feed_frame(REC_SNAP, 1)
    feed.feed_frame(_delta(1000, 5, b=[("10", "1")], a=[("11", "1")], typ="snapshot",
                           topic="orderbook.200.ETHUSDT"), 1)
    feed.feed_frame(_delta(62505426, 112488545900, b=[("65140.1", "1")]), 2)  # skips ...425
    assert feed.counters["gaps"] == 1
    assert feed.books["BTC-USDT"].state is BookState.RESYNC
    assert feed.books["ETH-USDT"].state is BookState.LIVE


def test_u_equal_1_is_a_full_book_reset():
    feed, out = _feed()
    feed.feed_frame(REC_SNAP, 1)
    feed.feed_frame(_delta(1, 112488546000, b=[("65000.1", "2")], a=[("65000.2", "3")]), 2)
    sb = feed.books["BTC-USDT"]
    assert sb.state is BookState.LIVE and feed.counters["service_restarts"] == 1
    assert sb.book.top_bids(5) == [("65000.1", "2")]  # old levels gone, not merged
    assert sb.book.top_asks(5) == [("65000.2", "3")]
    feed.feed_frame(_delta(2, 112488546001, b=[("65000.0", "1")]), 3)
    assert not feed.counters.get("gaps") and sb.seq == 2
    assert out[-1].bid_px == "65000.1"


def test_seq_regression_resyncs():
    feed, _ = _feed()
    feed.feed_frame(REC_SNAP, 1)
    feed.feed_frame(_delta(62505425, 112488545000, b=[("65140.1", "1")]), 2)
    assert feed.counters["seq_regressions"] == 1
    assert feed.books["BTC-USDT"].state is BookState.RESYNC


def test_depth_one_snapshots_repeat_u_and_deeper_topic_wins():
    feed, _out = _feed(depth=1)
    t1 = "orderbook.1.BTCUSDT"
    for _ in range(2):  # re-sent every 3 s when unchanged, same u
        feed.feed_frame(_delta(77, 9, b=[("10", "1")], a=[("11", "1")], typ="snapshot",
                               topic=t1), 1)
    assert feed.books["BTC-USDT"].state is BookState.LIVE and not feed.counters.get("gaps")
    # A recording with both depths: the deeper book takes over, depth 1 is then ignored.
    feed.feed_frame(REC_SNAP, 2)
    feed.feed_frame(_delta(78, 10, b=[("99999", "1")], a=[("100000", "1")], typ="snapshot",
                           topic=t1), 3)
    assert feed.books["BTC-USDT"].book.best_bid() == ("65140.4", "0.885797")
    assert feed.counters["other_depth_ignored"] == 1


def test_malformed_and_control_frames():
    feed, _ = _feed()
    feed.feed_frame('{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}', 1)
    feed.feed_frame('{"success":true,"ret_msg":"subscribe","conn_id":"x","op":"subscribe"}', 1)
    feed.feed_frame('{"topic":"tickers.BTCUSDT","type":"snapshot","data":{}}', 1)
    assert feed.counters["pongs"] == 1 and feed.counters["other_topics"] == 1
    feed.feed_frame(REC_SNAP, 1)
    for bad in ["{oops", "[]", '{"topic":"orderbook.200.BTCUSDT","type":"delta","data":[]}',
                _delta(62505425, 112488545900, b=[(65140.1, "1")])]:
        feed.feed_frame(bad, 2)
    assert feed.counters["frame_errors"] == 4
    assert feed.books["BTC-USDT"].state is BookState.RESYNC  # the half-applied one


def test_subscribe_batches_of_ten_and_ping():
    syms = [f"C{i}-USDT" for i in range(23)]
    feed = BybitFeed(syms, lambda q: None, depth=50,
                     symbol_map={s: s.replace("-", "") for s in syms})
    msgs = [json.loads(m) for m in feed.subscribe_messages()]
    assert [len(m["args"]) for m in msgs] == [10, 10, 3]
    assert msgs[0]["op"] == "subscribe" and msgs[0]["args"][0] == "orderbook.50.C0USDT"
    assert json.loads(feed.keepalive_message()) == {"op": "ping"}
    assert feed.keepalive_s == 20.0


def test_instruments_spot_only():
    body = json.dumps({"retCode": 0, "result": {"category": "spot", "list": [
        {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading"},
        {"symbol": "BTCUSDC", "baseCoin": "BTC", "quoteCoin": "USDC", "status": "Trading"},
        {"symbol": "MNTUSDT", "baseCoin": "MNT", "quoteCoin": "USDT", "status": "Closed"}]}})
    assert BybitFeed.parse_instruments(body) == {"BTC-USDT": "BTCUSDT", "BTC-USDC": "BTCUSDC"}
    linear = body.replace('"spot"', '"linear"')
    try:
        BybitFeed.parse_instruments(linear)
    except ValueError:
        pass
    else:
        raise AssertionError("a linear instrument list must be refused")
    assert BybitFeed.instruments_url("https://api.bybit.com") == \
        "https://api.bybit.com/v5/market/instruments-info?category=spot"


def test_symbols_from_subscribe_spot_only():
    sent = [('{"op":"subscribe","args":["orderbook.200.BTCUSDT","orderbook.1.BTCUSDT",'
            '"tickers.BTCUSDT","orderbook.200.ETHUSDT","orderbook.200.NOPE"]}')]
    m = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}
    assert BybitFeed.symbols_from_subscribe("wss://stream.bybit.com/v5/public/spot", sent, m) \
        == ["BTC-USDT", "ETH-USDT"]
    assert BybitFeed.symbols_from_subscribe("wss://stream.bybit.com/v5/public/linear", sent,
                                            m) == []


# ---------------------------------------------------------------- the simulator itself


async def test_sim_acks_limits_and_pong():
    model = MarketModel(["BTC-USDT"], ["bybit"], seed=3, tick_ms=25.0, dislocation_rate=0.0)
    hub = SimHub(model)
    from arbtui.backend.sim.bybit import Sim

    sim = Sim(hub, ["BTC-USDT"], seed=3)
    await sim.start()
    await hub.start()
    try:
        async with websockets.connect(sim.url) as ws:
            async def recv() -> dict:
                return json.loads(await asyncio.wait_for(ws.recv(), 3))

            await ws.send(json.dumps({"op": "subscribe",
                                      "args": [f"orderbook.50.X{i}" for i in range(11)]}))
            r = await recv()
            assert r["success"] is False and "req_id" not in r
            await ws.send('{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
            ack = await recv()
            assert ack["success"] is True and ack["op"] == "subscribe" and "req_id" not in ack
            snap = await recv()
            assert snap["type"] == "snapshot" and snap["topic"] == "orderbook.50.BTCUSDT"
            await ws.send('{"op":"ping","req_id":"p1"}')
            u = snap["data"]["u"]
            for _ in range(200):
                m = await recv()
                if m.get("op") == "ping":
                    assert m["ret_msg"] == "pong" and m["req_id"] == "p1"
                    break
                assert m["type"] == "delta" and m["data"]["u"] == u + 1
                u += 1
            else:
                raise AssertionError("no pong")
    finally:
        await hub.stop()
        await sim.stop()


# ---------------------------------------------------------------- adapter against the simulator


async def test_reaches_live_and_matches_sim_top():
    async with Rig("bybit", SYMS, depth=50) as rig:
        await rig.live()
        await rig.freeze_and_converge()
        for s in SYMS:
            q = rig.last_quote(s)
            bids, asks = rig.sim_top(s, 1)
            assert (q.bid_px, q.bid_qty) == bids[0] and (q.ask_px, q.ask_qty) == asks[0]
        c = rig.feed.status().counters
        assert not c.get("gaps") and not c.get("frame_errors") and not c.get("resyncs")


async def test_ping_gets_pong_and_quiet_books_stay_live():
    async with Rig("bybit", SYMS, depth=50) as rig:
        rig.feed.keepalive_s = 0.3  # Bybit wants one every 20 s; faster here
        await rig.live()
        await rig.freeze_and_converge()
        await rig.wait(lambda: rig.feed.counters.get("pongs", 0) >= 2, "pongs")
        assert rig.feed.counters["pings"] >= 2 and rig.all_live()


async def _resync_one(kind: str, counter: str) -> None:
    async with Rig("bybit", SYMS, depth=50) as rig:
        await rig.live()
        rig.states.clear()
        n_subs = len(rig.sim.subscribes)
        rig.sim.inject(kind)
        await rig.wait(lambda: rig.feed.counters.get(counter, 0) >= 1, counter)
        _, topic = rig.sim.fault_log[-1]
        target = "BTC-USDT" if topic.endswith("BTCUSDT") else "ETH-USDT"
        other = next(s for s in SYMS if s != target)
        await rig.wait(lambda: rig.all_live() and BookState.LIVE in rig.states_of(target),
                       "target back to LIVE")
        assert BookState.RESYNC in rig.states_of(target)
        assert rig.states_of(other) == []  # never left LIVE
        assert rig.sim.unsubscribes == [topic] and rig.sim.subscribes[n_subs:] == [topic]
        assert rig.feed.reconnects == 0
        await rig.freeze_and_converge()


async def test_u_gap_fault_resubscribes_only_that_topic():
    await _resync_one("gap", "gaps")


async def test_seq_regression_fault_resubscribes_only_that_topic():
    await _resync_one("seq", "seq_regressions")


async def test_crossed_book_fault_is_resynced():
    await _resync_one("crossed", "crossed")


async def test_service_restart_u1_resets_without_resync():
    async with Rig("bybit", SYMS, depth=50) as rig:
        await rig.live()
        rig.sim.inject("restart")
        await rig.wait(lambda: rig.feed.counters.get("service_restarts", 0) >= 1, "u=1 reset")
        await asyncio.sleep(0.2)  # u continues 2, 3, ... after the restart: no false gaps
        await rig.freeze_and_converge()
        c = rig.feed.counters
        assert not c.get("gaps") and not c.get("resyncs") and rig.all_live()


async def test_snapshot_mid_stream_resets_and_stays_live():
    async with Rig("bybit", SYMS, depth=200) as rig:
        await rig.live()
        n = rig.feed.counters.get("snapshots", 0)
        rig.sim.inject("snapshot")
        await rig.wait(lambda: rig.feed.counters.get("snapshots", 0) > n, "snapshot")
        await rig.freeze_and_converge()
        assert not rig.feed.counters.get("resyncs") and not rig.feed.counters.get("gaps")


async def test_malformed_frame_counted_books_stay_live():
    async with Rig("bybit", SYMS, depth=50) as rig:
        await rig.live()
        rig.sim.inject("malformed")
        await rig.wait(lambda: rig.feed.counters.get("frame_errors", 0) >= 1, "frame error")
        assert rig.all_live() and rig.feed.reconnects == 0
        await rig.freeze_and_converge()


async def test_drop_and_silence_recover_to_live():
    async with Rig("bybit", SYMS, depth=50) as rig:
        rig.feed.stale_after_s = 1.0
        await rig.live()
        rig.sim.inject("drop")
        await rig.wait(lambda: rig.feed.reconnects >= 1 and rig.all_live(), "live after drop")
        rig.sim.inject("silence")
        await rig.wait(lambda: rig.feed.counters.get("stale", 0) >= 1, "stale")
        await rig.wait(lambda: rig.feed.reconnects >= 2 and rig.all_live(), "live after silence",
                       timeout=8.0)
        assert rig.sim.connects == 3
        await rig.freeze_and_converge()


async def test_resubscribe_without_snapshot_is_retried():
    feed, _ = _feed()
    feed.resub_timeout_s = 0.2
    feed.feed_frame(REC_SNAP, 1)
    feed.feed_frame(_delta(62505427, 112488545900, b=[("65140.1", "1")]), 2)
    for _ in range(500):
        # Both: the deadline fires, then the retry it asks for runs in its own task.
        if (feed.counters.get("resubscribe_timeouts", 0) >= 1
                and feed.counters.get("resubscribes", 0) >= 2):
            break
        await asyncio.sleep(0.01)
    assert feed.counters["resubscribe_timeouts"] >= 1 and feed.counters["resubscribes"] >= 2
    feed.feed_frame(REC_SNAP, 3)
    assert feed.books["BTC-USDT"].state is BookState.LIVE
    for t in list(feed._tasks):
        t.cancel()


# ---------------------------------------------------------------- typed delta path


def test_typed_delta_path_and_generic_path_agree(monkeypatch):
    # LIVE books' deltas take a typed one-pass decode; the generic dict path stays
    # the rule for everything else. Over in-order deltas, a u gap, a seq
    # regression, u=1, a bad level, another depth, a null symbol, deltas before the
    # snapshot and during a resync, both give the same quotes, counters and books.
    from arbtui.backend.feeds import bybit

    eth = "orderbook.200.ETHUSDT"
    # Without an event loop a resynced book stays resync_pending (its resubscribe
    # never runs), so each list resyncs BTC-USDT at most once, at its end.
    lists = [[
        _delta(5, 1, b=[("10", "1")], a=[("11", "1")], topic=eth),  # before its snapshot
        REC_SNAP, REC_DELTA,
        _delta(62505426, 112488545900, b=[("65140.2", "1")]),
        _delta(62505427, 112488545901, a=[("65140.5", "0")]),
        _delta(1000, 5, b=[("10", "1")], a=[("11", "1")], typ="snapshot", topic=eth),
        _delta(1001, 6, b=[("10.5", "2")], topic=eth),
        _delta(1002, 7, a=[("10.9", "1")], topic="orderbook.50.ETHUSDT"),  # another depth
        _delta(1002, 6, b=[("10.6", "1")], topic=eth),  # seq regression
        _delta(1, 112488546000, b=[("65000.1", "2")], a=[("65000.2", "3")]),  # u=1
        _delta(2, 112488546001, b=[("65000.0", "1")]),
        _delta(4, 112488546002, b=[("65000.1", "1")]),  # u gap
        _delta(5, 112488546003, b=[("65000.1", "1")]),  # while resyncing
    ], [REC_SNAP, REC_DELTA, _delta(62505426, 112488545900, b=[("65140.0", "abc")])],
        [REC_SNAP, _delta(62505425, 112488545866, b=[(65140.1, "1")])],  # a number
        [REC_SNAP, _delta(62505425, 112488545866, b=[("65140.3", "1")]).replace(
            '"s": "BTCUSDT"', '"s": null')]]
    runs = []
    for typed in (True, False):
        monkeypatch.setattr(bybit, "TYPED_DELTA", typed)
        taken = count_taken(monkeypatch, BybitFeed, "_on_delta_typed")
        seen = []
        for frames in lists:
            feed, out = _feed()
            for i, fr in enumerate(frames):
                feed.feed_frame(fr, 10 + i)
            seen.append(([(q.symbol, q.bids, q.asks, q.bid_px, q.ask_qty, q.seq, q.venue_ts_ns)
                          for q in out], feed.status().counters,
                         {s: (sb.state, sb.seq, sb.sync.xseq, sb.book.top_bids(50),
                              sb.book.top_asks(50)) for s, sb in feed.books.items()}))
        runs.append((seen, taken[0]))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == 9 and runs[1][1] == 0
    c = runs[0][0][0][1]
    assert c["gaps"] == 1 and c["seq_regressions"] == 1 and c["service_restarts"] == 1
    assert c["other_depth_ignored"] == 2  # the 50-level delta, and the one before any snapshot
    assert all(r[1]["frame_errors"] == 1 for r in runs[0][0][1:])
