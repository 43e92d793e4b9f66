"""Gemini market data v2 adapter: against the loopback simulator, the full-book
/ changes rules at frame level, and the spot-vs-perp symbol mapping."""

from __future__ import annotations

import json

from feed_og_fixtures import Rig

from arbtui.backend.feeds.gemini import GeminiFeed
from arbtui.model import BookState

SYMS = ["BTC-USD", "ETH-USD"]
FAST = {"crossed_grace_s": 0.3, "resubscribe_timeout_s": 2.0, "send_rate": 20.0}


def full_equal(r: Rig, symbol: str) -> bool:
    vb = r.sim.book(symbol)
    b = r.feed.books[symbol].book
    return b.top_bids(len(b.bids)) == vb.sorted_bids() and b.top_asks(len(b.asks)) == vb.sorted_asks()


# ====================================================================== simulator


async def test_reaches_live_and_quote_equals_sim_top():
    async with Rig("gemini", SYMS, sim_attrs={"heartbeat_s": 0.2, "trade_every_ticks": 5}) as r:
        await r.live()
        await r.wait(lambda: r.c("heartbeats") >= 2 and r.c("ignored_msgs") >= 2,
                     "heartbeats and trades seen")
        r.sim.heartbeat_s = 3600.0  # so the feed can go quiet below
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
            assert full_equal(r, s)
        q = r.last_quote("BTC-USD")
        assert q.venue_ts_ns == 0 and q.seq == -1  # v2 l2 has neither
        assert r.c("snapshots") == 2 and r.c("resyncs") == 0 and r.c("frame_errors") == 0
        assert r.sim.connects == 1


async def test_crossed_book_resubscribes_only_that_symbol():
    async with Rig("gemini", SYMS, feed_attrs=FAST) as r:
        await r.live()
        eth_changes = r.feed.books["ETH-USD"].changes
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("crossed") >= 1, "crossed book seen")
        await r.wait(lambda: r.c("resubscribes") >= 1 and r.all_live(), "LIVE after re-subscribe")
        assert all(q.bid < q.ask for q in r.quotes), "a crossed quote was published"
        assert BookState.RESYNC in r.states_of("BTC-USD")
        assert r.feed.books["ETH-USD"].changes == eth_changes
        assert r.sim.connects == 1 and r.sim.full_books_sent == 3
        await r.freeze()
        r.assert_top_matches_sim("BTC-USD")
        assert full_equal(r, "BTC-USD")


async def test_resubscribe_without_full_book_falls_back_to_reconnect():
    attrs = dict(FAST, resubscribe_timeout_s=0.5)
    async with Rig("gemini", SYMS, feed_attrs=attrs,
                   sim_attrs={"resend_full_on_resubscribe": False}) as r:
        await r.live()
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("resubscribe_timeouts") == 1, "re-subscribe timed out")
        await r.wait(lambda: r.sim.connects == 2 and r.all_live(), "LIVE after reconnect")
        assert r.c("ignored_while_resync") >= 1  # plain changes never reset the book
        await r.freeze()
        r.assert_top_matches_sim("BTC-USD")


async def test_snapshot_mid_stream_replaces_book():
    async with Rig("gemini", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("snapshot")
        await r.wait(lambda: r.c("snapshots_midstream") == 1, "mid-stream full book")
        await r.freeze()
        assert r.c("resyncs") == 0 and r.all_live()
        for s in SYMS:
            assert full_equal(r, s)


async def test_malformed_frame_is_counted_not_fatal():
    async with Rig("gemini", SYMS, feed_attrs=FAST) as r:
        await r.live()
        n = len(r.quotes)
        r.sim.inject("malformed")
        await r.wait(lambda: r.c("frame_errors") >= 1, "malformed frame counted")
        await r.wait(lambda: len(r.quotes) > n + 5, "quotes keep flowing")
        assert r.all_live() and r.sim.connects == 1


async def test_silence_goes_stale_and_recovers():
    attrs = dict(FAST, stale_after_s=1.0)
    async with Rig("gemini", SYMS, feed_attrs=attrs, sim_attrs={"silence_s": 30.0}) as r:
        await r.live()
        r.sim.inject("silence")
        await r.wait(lambda: r.c("stale") >= 1, "silence noticed")
        assert BookState.STALE in r.states_of("BTC-USD") and BookState.STALE in r.states_of("ETH-USD")
        await r.wait(lambda: r.sim.connects == 2 and r.all_live(), "LIVE on a new connection")


async def test_dropped_connection_reconnects_to_live():
    async with Rig("gemini", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("drop")
        await r.wait(lambda: r.feed.reconnects >= 1, "reconnect")
        await r.wait(r.all_live, "LIVE after reconnect")
        assert r.sim.connects == 2


async def test_periodic_refresh_heals_an_undetectable_gap():
    # v2 has no sequence numbers: a lost change message is invisible. The
    # periodic reconnect (refresh) re-sends every full book.
    async with Rig("gemini", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("gap")
        await r.wait(lambda: "gap" not in r.sim.pending_faults, "gap applied")
        await r.freeze()
        assert not all(full_equal(r, s) for s in SYMS)  # a book is silently wrong ...
        assert r.c("resyncs") == 0 and r.all_live()  # ... and nothing on the wire said so
        r.feed.max_conn_life_s = 0.5  # the refresh period comes due
        await r.wait(lambda: r.sim.connects >= 2 and r.all_live() and r.sim.full_books_sent >= 4,
                     "refreshed")
        await r.wait(lambda: full_equal(r, "BTC-USD") and full_equal(r, "ETH-USD"), "books healed")


# ====================================================================== frame rules


def _l2(sym, changes, full=False):
    m = {"type": "l2_updates", "symbol": sym, "changes": changes}
    if full:
        m["trades"] = []
        m["auction_events"] = []
    return json.dumps(m)


def test_first_message_is_full_book_and_later_marked_ones_reset():
    quotes = []
    f = GeminiFeed(["BTC-USD"], quotes.append)
    sb = f.books["BTC-USD"]
    f.feed_frame(_l2("BTCUSD", [["buy", "100.00", "1"], ["sell", "100.50", "2"]], full=True), 1)
    assert sb.state is BookState.LIVE and (quotes[-1].bid_px, quotes[-1].ask_px) == ("100.00", "100.50")
    f.feed_frame(_l2("BTCUSD", [["buy", "100.00", "0.0"], ["buy", "99.90", "3"]]), 2)
    assert quotes[-1].bid_px == "99.90" and len(sb.book) == 2
    f.feed_frame(_l2("BTCUSD", [["buy", "98", "1"], ["sell", "99", "1"]], full=True), 3)
    assert len(sb.book) == 2 and (quotes[-1].bid_px, quotes[-1].ask_px) == ("98", "99")
    assert f.counters["snapshots_midstream"] == 1
    f.feed_frame(json.dumps({"type": "heartbeat", "timestamp": 1786313194672}), 4)
    f.feed_frame(json.dumps({"type": "trade", "symbol": "BTCUSD", "price": "1", "quantity": "1"}), 5)
    assert f.counters["heartbeats"] == 1 and f.counters["ignored_msgs"] == 1


def test_bad_change_resyncs_and_only_a_full_book_restores():
    f = GeminiFeed(["BTC-USD"], lambda q: None)
    sb = f.books["BTC-USD"]
    f.feed_frame(_l2("BTCUSD", [["buy", "100", "1"], ["sell", "101", "1"]], full=True), 1)
    f.feed_frame(_l2("BTCUSD", [["hold", "100", "1"]]), 2)
    assert f.counters["frame_errors"] == 1 and sb.state is BookState.RESYNC
    f.feed_frame(_l2("BTCUSD", [["buy", "100.5", "1"]]), 3)  # plain changes: not a book
    assert sb.state is BookState.RESYNC and f.counters["ignored_while_resync"] == 1
    f.feed_frame(_l2("BTCUSD", [["buy", "100", "1"], ["sell", "101", "1"]], full=True), 4)
    assert sb.state is BookState.LIVE
    for bad in ("nope", "[1]", '{"type":"l2_updates","symbol":"BTCUSD"}'):
        f.feed_frame(bad, 5)
    assert f.counters["frame_errors"] == 4


def test_perp_never_maps_to_spot():
    spot = {"symbol": "BTCUSDC", "base_currency": "BTC", "quote_currency": "USDC",
            "product_type": "spot", "status": "open"}
    perp = {"symbol": "BTCUSDCPERP", "base_currency": "BTC", "quote_currency": "USDC",
            "product_type": "swap", "status": "open"}
    eth_perp_only = dict(perp, symbol="ETHUSDCPERP", base_currency="ETH")
    untyped = {"symbol": "SOLUSDC", "base_currency": "SOL", "quote_currency": "USDC"}
    closed = dict(spot, symbol="XYZUSD", base_currency="XYZ", quote_currency="USD", status="closed")
    for rows in ([spot, perp, eth_perp_only, untyped, closed], [perp, eth_perp_only, spot, untyped, closed]):
        m = GeminiFeed.parse_instruments(json.dumps(rows))
        assert m == {"BTC-USDC": "BTCUSDC"}  # cryptofeed would map BTC-USDC to BTCUSDCPERP
    assert GeminiFeed.parse_instruments(json.dumps(spot)) == {"BTC-USDC": "BTCUSDC"}
    assert GeminiFeed.parse_instruments(json.dumps(perp)) == {}
    assert GeminiFeed.instruments_url("https://api.gemini.com/") == \
        "https://api.gemini.com/v1/symbols/details/all"
    assert not any(v.endswith("PERP") for v in GeminiFeed.STATIC_SYMBOLS.values())


def test_symbols_from_subscribe_drops_perps():
    # The shape of the 2026 recording, whose config asked for *-USDC spot but
    # whose subscribe (cryptofeed) requested the perps.
    sent = [json.dumps({"type": "subscribe", "subscriptions": [
        {"name": "l2", "symbols": ["BTCUSD", "ETHUSD", "BTCUSDCPERP", "ETHUSDCPERP"]}]})]
    smap = {"BTC-USD": "BTCUSD", "ETH-USD": "ETHUSD", "BTC-USDC": "BTCUSDC"}
    got = GeminiFeed.symbols_from_subscribe("wss://api.gemini.com/v2/marketdata/", sent,
                                            {v: k for k, v in smap.items()})
    assert got == ["BTC-USD", "ETH-USD"]


def test_subscribe_is_one_l2_request():
    f = GeminiFeed(["BTC-USD", "ETH-USD", "SOL-USD"], lambda q: None)
    (m,) = [json.loads(x) for x in f.subscribe_messages()]
    assert m == {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSD", "ETHUSD", "SOLUSD"]}]}
