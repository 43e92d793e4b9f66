"""Coinbase Advanced Trade adapter: against the loopback simulator and on the real 2026 recording."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from feed_bc_fixtures import Rig, load_recording, replay_connection

from arbtui.backend.feeds.coinbase import CoinbaseFeed, rfc3339_ns
from arbtui.model import BookState

SYMS = ["BTC-USD", "ETH-USD"]


async def test_reaches_live_and_quotes_equal_sim_book():
    async with Rig("coinbase", SYMS) as rig:
        await rig.live()
        await rig.wait_equal()
        st = rig.feed.status()
        assert st.state is BookState.LIVE
        assert st.counters["snapshots"] == 2
        assert st.counters.get("gaps", 0) == 0 and st.counters.get("crossed", 0) == 0
        await rig.wait(lambda: rig.counter("heartbeats") >= 2, "heartbeats", 4)
        assert rig.counter("heartbeat_jumps") == 0
        q = rig.last_quote("BTC-USD")
        assert q.venue_ts_ns > 0 and q.seq > 0  # envelope timestamp and sequence_num


async def test_snapshot_larger_than_one_mib():
    def pad(sim) -> None:
        sim.snapshot_pad_bytes = 3 * 2 ** 20

    async with Rig("coinbase", SYMS, sim_setup=pad, depth=100_000) as rig:
        await rig.live(timeout=8)
        assert rig.sim.largest_frame > 2 ** 20  # over websockets' 1 MiB default
        await rig.wait_equal(full=False)
        for s in SYMS:
            # The padding levels arrived and were kept (depth is large here).
            assert len(rig.feed.books[s].book) > 10_000
        assert rig.feed.reconnects == 0


async def test_depth_cap_truncates_a_big_snapshot():
    def pad(sim) -> None:
        sim.snapshot_pad_bytes = 2 ** 20

    async with Rig("coinbase", SYMS, sim_setup=pad, depth=50) as rig:
        await rig.live(timeout=8)
        await rig.wait_equal(full=False)
        for s in SYMS:
            b = rig.feed.books[s].book
            assert len(b.bids) <= 50 and len(b.asks) <= 50


async def test_connection_gap_resyncs_every_book_by_resubscribing():
    async with Rig("coinbase", SYMS) as rig:
        await rig.live()
        await rig.wait_equal()
        rig.sim.inject("gap")  # one l2_data message lost; its sequence_num is skipped
        await rig.wait(lambda: rig.counter("gaps") >= 1, "sequence gap detected")
        for s in SYMS:  # the lost message could have been for any product
            assert BookState.RESYNC in rig.states_of(s)
        await rig.live()
        await rig.wait_equal()
        assert rig.counter("resubscribes") >= 1
        assert rig.feed.reconnects == 0
        assert rig.counter("snapshots") >= 4


def test_parse_instruments_skips_usdc_aliases():
    lines = load_recording("COINBASE.jsonl.zst")
    body = next(ln["data"] for ln in lines if ln["t"] == "http" and "products" in ln["url"])
    m = CoinbaseFeed.parse_instruments(body)
    assert m["BTC-USD"] == "BTC-USD" and m["ETH-USD"] == "ETH-USD"
    assert "BTC-USDC" not in m and "ETH-USDC" not in m  # aliases of the USD books
    assert m["USDT-USDC"] == "USDT-USDC"  # a real, separate book
    products = json.loads(body)["products"]
    aliases = [p for p in products if p["alias"]]
    assert len(aliases) == 400 and not any(p["product_id"] in m.values() for p in aliases)
    delisted = [p["product_id"] for p in products if p["status"] == "delisted"]
    assert delisted and not set(delisted) & set(m.values())


def test_symbols_from_subscribe():
    m = {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD", "SOL-USD": "SOL-USD"}
    f = CoinbaseFeed(["ETH-USD", "BTC-USD"], lambda q: None, symbol_map=m)
    frames = f.subscribe_messages()
    assert [json.loads(x)["channel"] for x in frames] == ["heartbeats", "level2"]
    assert CoinbaseFeed.symbols_from_subscribe(f.url, frames, m) == ["ETH-USD", "BTC-USD"]
    other = [json.dumps({"type": "subscribe", "product_ids": ["SOL-USD"], "channel": "ticker"})]
    assert CoinbaseFeed.symbols_from_subscribe(f.url, other, m) == []


def test_rfc3339_ns_keeps_nanoseconds():
    assert rfc3339_ns("2026-08-09T21:05:48.483587501Z") == 1786309548_483587501
    assert rfc3339_ns("2026-08-09T21:05:48.170326Z") == 1786309548_170326000
    assert rfc3339_ns("2026-08-09T21:05:48Z") == 1786309548_000000000
    for s in ("1999-12-31T23:59:59.5Z", "2024-02-29T00:00:00.000001Z"):
        dt = datetime.fromisoformat(s)
        assert rfc3339_ns(s) == int(dt.timestamp()) * 10 ** 9 + dt.microsecond * 1000
    assert rfc3339_ns("2026-08-09T23:05:48.5+02:00") == 1786309548_500000000  # slow path
    assert rfc3339_ns("garbage") == 0
    assert rfc3339_ns("2026-08-09T21:05:48.12x4Z") == 0
    assert datetime.fromtimestamp(rfc3339_ns("2026-08-09T21:05:48Z") / 1e9, UTC).hour == 21


async def test_recording_books_and_final_bbo():
    lines = load_recording("COINBASE.jsonl.zst")
    body = next(ln["data"] for ln in lines if ln["t"] == "http" and "products" in ln["url"])
    smap = CoinbaseFeed.parse_instruments(body)
    conn = next(ln["conn"] for ln in lines if ln["t"] == "connect")
    crossed_seen = []

    def check(feed, ln):
        for sb in feed.books.values():
            if sb.state is BookState.LIVE and sb.book.crossed():
                crossed_seen.append(sb.symbol)

    feed, quotes = await replay_connection(CoinbaseFeed, lines, conn, smap, check)
    st = feed.status()
    assert all(sb.state is BookState.LIVE for sb in feed.books.values()), st
    assert st.counters.get("gaps", 0) == 0 and st.counters.get("heartbeat_jumps", 0) == 0
    assert st.counters.get("crossed", 0) == 0 and not crossed_seen
    assert st.counters.get("frame_errors", 0) == 0
    assert st.counters["snapshots"] == 2
    want = {"BTC-USD": ("65083.66", "65083.67"), "ETH-USD": ("1919.28", "1919.38")}
    for s, (bid, ask) in want.items():
        b = feed.books[s].book
        assert (b.best_bid()[0], b.best_ask()[0]) == (bid, ask)
        q = [x for x in quotes if x.symbol == s][-1]
        assert (q.bid_px, q.ask_px) == (bid, ask)
    # The snapshot's asks arrive as "offer": the first BTC-USD quote already has them,
    # and equals the snapshot's own best levels computed straight from the raw frame.
    snap = next(json.loads(ln["data"]) for ln in lines
                if ln["t"] == "recv" and '"type":"snapshot","product_id":"BTC-USD"' in ln["data"]
                and '"l2_data"' in ln["data"])
    ups = snap["events"][0]["updates"]
    best_bid = max(Decimal(u["price_level"]) for u in ups if u["side"] == "bid")
    best_ask = min(Decimal(u["price_level"]) for u in ups if u["side"] == "offer")
    first = next(x for x in quotes if x.symbol == "BTC-USD")
    assert (Decimal(first.bid_px), Decimal(first.ask_px)) == (best_bid, best_ask)


async def test_subscribes_within_the_venues_deadline():
    import asyncio

    import pytest
    import websockets

    def strict(sim) -> None:
        sim.subscribe_deadline_s = 0.3

    async with Rig("coinbase", SYMS, sim_setup=strict) as rig:
        await rig.live()
        await asyncio.sleep(0.5)
        assert rig.feed.reconnects == 0 and rig.all_live()
        # The sim does enforce the deadline: a client that never subscribes is closed.
        async with websockets.connect(rig.sim.url) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)
            assert ws.close_code == 1008


def _frame(seq: int, typ: str, pid: str, levels: list) -> str:
    return json.dumps({"channel": "l2_data", "timestamp": "2026-08-09T21:05:48.483587501Z",
                       "sequence_num": seq, "events": [{"type": typ, "product_id": pid, "updates": [
                           {"side": s, "event_time": "2026-08-09T21:05:48.1Z", "price_level": p,
                            "new_quantity": q} for s, p, q in levels]}]})


async def test_bad_levels_resync_the_right_books():
    import asyncio

    m = {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}
    f = CoinbaseFeed(["BTC-USD", "ETH-USD"], lambda q: None, symbol_map=m)
    f.feed_frame(_frame(0, "snapshot", "BTC-USD", [("bid", "100.00", "1"), ("offer", "101.00", "2")]), 1)
    f.feed_frame(_frame(1, "snapshot", "ETH-USD", [("bid", "10.00", "1"), ("offer", "10.10", "2")]), 2)
    assert all(sb.state is BookState.LIVE for sb in f.books.values())
    # An unknown side label: that product's book is half-applied -> only it resyncs.
    f.feed_frame(_frame(2, "update", "BTC-USD", [("bid", "100.50", "1"), ("sell", "100.60", "1")]), 3)
    await asyncio.sleep(0.01)
    assert f.books["BTC-USD"].state is BookState.RESYNC
    assert f.books["ETH-USD"].state is BookState.LIVE
    assert f.counters["frame_errors"] == 1
    # A level of the wrong JSON type: the message cannot be read at all, so which
    # product it touched is unknown -> every book resyncs (as for a lost message).
    bad = _frame(3, "update", "ETH-USD", [("bid", "10.05", "1")]).replace('"new_quantity": "1"', '"new_quantity": 1')
    f.feed_frame(bad, 4)
    assert f.books["ETH-USD"].state is BookState.RESYNC
    assert f.counters["frame_errors"] == 2 and f.counters.get("gaps", 0) == 0
    # A fresh snapshot brings a product back; updates before it are ignored.
    f.feed_frame(_frame(4, "update", "ETH-USD", [("bid", "10.06", "1")]), 5)
    assert f.counters["updates_before_snapshot"] == 1
    f.feed_frame(_frame(5, "snapshot", "ETH-USD", [("bid", "10.01", "3"), ("offer", "10.09", "4")]), 6)
    assert f.books["ETH-USD"].state is BookState.LIVE
    assert f.books["ETH-USD"].book.best_bid() == ("10.01", "3")
    for t in list(f._tasks):
        t.cancel()
    await asyncio.gather(*f._tasks, return_exceptions=True)


async def test_recording_top_of_book_matches_a_hand_built_book_throughout():
    """Along the whole recording, at every 20th book message, the adapter's best bid/ask
    equals a plain-dict book built by hand from the raw frames: snapshot = replace
    the product's levels, update = set the absolute size ("0" deletes), asks are "offer"."""
    lines = load_recording("COINBASE.jsonl.zst")
    smap = {"BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD"}
    hand: dict[str, tuple[dict, dict]] = {}
    checked = []
    n = [0]

    def check(feed, ln):
        msg = json.loads(ln["data"])
        if msg.get("channel") != "l2_data":
            return
        for ev in msg["events"]:
            if ev["type"] == "snapshot":
                hand[ev["product_id"]] = ({}, {})
            bids, asks = hand[ev["product_id"]]
            for u in ev["updates"]:
                side = bids if u["side"] == "bid" else asks
                p = Decimal(u["price_level"])
                if Decimal(u["new_quantity"]) == 0:
                    side.pop(p, None)
                else:
                    side[p] = u["new_quantity"]
        n[0] += 1
        if n[0] % 20:
            return
        for pid, (bids, asks) in hand.items():
            b = feed.books[pid].book
            assert feed.books[pid].state is BookState.LIVE
            assert Decimal(b.best_bid()[0]) == max(bids) and b.best_bid()[1] == bids[max(bids)]
            assert Decimal(b.best_ask()[0]) == min(asks) and b.best_ask()[1] == asks[min(asks)]
            checked.append(pid)

    conn = next(ln["conn"] for ln in lines if ln["t"] == "connect")
    await replay_connection(CoinbaseFeed, lines, conn, smap, check)
    assert checked.count("BTC-USD") >= 30 and checked.count("ETH-USD") >= 30
