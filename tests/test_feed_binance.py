"""Binance spot adapter: against the loopback simulator and on the real 2021 recording."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from feed_bc_fixtures import Rig, load_recording, replay_connection

from arbtui.backend.feeds.binance import BinanceFeed, depth_weight
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]


async def test_reaches_live_and_quotes_equal_sim_book():
    async with Rig("binance", SYMS) as rig:
        await rig.live()
        await rig.wait_equal()
        for s in SYMS:
            sb = rig.feed.books[s]
            assert sb.seq == rig.sim.ids[s]  # the book sits at the venue's latest update id
        st = rig.feed.status()
        assert st.state is BookState.LIVE
        assert st.counters.get("gaps", 0) == 0 and st.counters.get("crossed", 0) == 0
        assert st.counters["bbo_checks"] > 0 and st.counters.get("bbo_mismatch", 0) == 0
        # One snapshot per symbol, fetched over real HTTP from the sim.
        assert rig.sim.snapshot_requests == {s: 1 for s in SYMS}
        # Depth event time E (ms) travels as the venue timestamp; a quote straight
        # from a REST snapshot has none.
        await rig.wait(lambda: any(q.venue_ts_ns > 0 and q.seq > 0 for q in rig.quotes),
                       "a quote from a depth event")


async def test_subscribe_frames_paced_under_the_venue_limit():
    """All streams via SUBSCRIBE, one per frame: 8 frames must be paced below
    5 msgs/s, or the simulated venue (like Binance) closes the connection."""

    class OneByOne(BinanceFeed):
        url_streams = 0
        sub_batch = 1

    syms = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "XRP-USDT"]
    async with Rig("binance", syms, feed_cls=OneByOne) as rig:
        assert rig.feed.url.endswith("/stream")
        await rig.live(timeout=8)
        await rig.wait(lambda: rig.counter("sub_acks") == 8, "8 SUBSCRIBE acks", 8)
        assert rig.feed.reconnects == 0
        await rig.wait_equal()


async def test_gap_resnapshots_only_that_symbol():
    async with Rig("binance", SYMS) as rig:
        await rig.live()
        before = dict(rig.sim.snapshot_requests)
        other_changes = rig.feed.books["ETH-USDT"].changes
        rig.sim.inject("gap")  # the sim loses one BTC-USDT depth event
        await rig.wait(lambda: rig.counter("gaps") >= 1, "gap detected")
        assert rig.feed.books["BTC-USDT"].state is not BookState.LIVE
        await rig.live()
        await rig.wait_equal()
        assert rig.sim.snapshot_requests["BTC-USDT"] == before["BTC-USDT"] + 1
        assert rig.sim.snapshot_requests["ETH-USDT"] == before["ETH-USDT"]
        assert rig.feed.books["ETH-USDT"].changes == other_changes  # never left LIVE
        assert BookState.RESYNC in rig.states_of("BTC-USDT")
        assert rig.feed.reconnects == 0
        assert rig.feed.status().symbols["BTC-USDT"].changes >= 3  # LIVE -> RESYNC -> LIVE


async def test_stale_snapshot_is_fetched_again():
    async with Rig("binance", SYMS) as rig:
        await rig.live()
        await rig.wait(lambda: len(rig.sim.history["BTC-USDT"]) >= 30, "sim history", 5)
        rig.sim.stale_snapshots = 1  # the next snapshot predates what the client buffers
        rig.sim.inject("gap")
        await rig.wait(lambda: rig.counter("snapshot_too_old") >= 1, "stale snapshot noticed")
        await rig.live()
        await rig.wait_equal()


async def test_server_shutdown_reconnects():
    async with Rig("binance", SYMS) as rig:
        await rig.live()
        rig.sim.announce_shutdown()
        await rig.wait(lambda: rig.counter("server_shutdown") >= 1, "serverShutdown handled")
        await rig.wait(lambda: rig.feed.reconnects >= 1, "reconnect")
        await rig.live()
        await rig.wait_equal()
        assert rig.sim.connects == 2


def test_parse_instruments_from_sim_exchange_info():
    import asyncio

    from arbtui.backend.sim.binance import Sim
    from arbtui.backend.sim.market import MarketModel
    from arbtui.backend.sim.server import SimHub

    async def get() -> str:
        sim = Sim(SimHub(MarketModel(["BTC-USDT", "ETH-BTC"], ["binance"])), ["BTC-USDT", "ETH-BTC"])
        status, body = await sim.http_get("/api/v3/exchangeInfo")
        assert status == 200
        return body

    m = BinanceFeed.parse_instruments(asyncio.run(get()))
    assert m == {"BTC-USDT": "BTCUSDT", "ETH-BTC": "ETHBTC"}  # HALTUSDT (status BREAK) skipped
    assert BinanceFeed.instruments_url("http://x:1/") == "http://x:1/api/v3/exchangeInfo"


def test_symbols_from_subscribe_url_and_frames():
    m = {"BTCUSDT": "BTC-USDT", "ETHBTC": "ETH-BTC", "SOLUSDT": "SOL-USDT"}
    url = "wss://stream.binance.com:9443/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker"
    frames = [json.dumps({"method": "SUBSCRIBE", "params": ["ethbtc@depth", "solusdt@aggTrade"], "id": 1})]
    assert BinanceFeed.symbols_from_subscribe(url, frames, m) == ["BTC-USDT", "ETH-BTC"]
    # A feed's own URL and frames round-trip.
    f = BinanceFeed(["SOL-USDT", "ETH-BTC"], lambda q: None, symbol_map={v: k for k, v in m.items()})
    assert BinanceFeed.symbols_from_subscribe(f.url, f.subscribe_messages(), m) == ["SOL-USDT", "ETH-BTC"]


def test_depth_weights_follow_the_docs():
    assert [depth_weight(n) for n in (100, 500, 1000, 5000)] == [5, 25, 50, 250]


# ---------------------------------------------------------------------- real frames


def _by_hand(lines: list[dict]) -> dict[str, dict]:
    """The documented sync procedure, written out independently of the adapter:
    REST snapshot, drop events with u <= lastUpdateId, first kept must bridge,
    then every U == previous u + 1; levels in plain dicts keyed by Decimal."""
    snaps = {}
    for ln in lines:
        if ln["t"] == "http" and "/depth?" in ln["url"]:
            sym = ln["url"].split("symbol=")[1].split("&")[0]
            snaps[sym] = json.loads(ln["data"])
    out = {}
    for sym, snap in snaps.items():
        bids = {Decimal(p): q for p, q in snap["bids"]}
        asks = {Decimal(p): q for p, q in snap["asks"]}
        last = snap["lastUpdateId"]
        applied = dropped = 0
        for ln in lines:
            if ln["t"] != "recv":
                continue
            d = json.loads(ln["data"])["data"]
            if d.get("e") != "depthUpdate" or d["s"] != sym:
                continue
            if d["u"] <= last:
                dropped += 1
                continue
            assert d["U"] <= last + 1 <= d["u"], "gap in the recording"
            for side, rows in ((bids, d["b"]), (asks, d["a"])):
                for p, q in rows:
                    if Decimal(q) == 0:
                        side.pop(Decimal(p), None)
                    else:
                        side[Decimal(p)] = q
            last = d["u"]
            applied += 1
        out[sym] = {"bid": max(bids), "ask": min(asks), "applied": applied, "id": last,
                    "bids": bids, "asks": asks}
    return out


async def test_recording_syncs_without_gaps_and_matches_hand_computed_books():
    lines = load_recording("BINANCE.jsonl.zst")
    info = next(ln for ln in lines if ln["t"] == "http" and "exchangeInfo" in ln["url"])
    smap = BinanceFeed.parse_instruments(info["data"])
    assert smap["NKN-USDT"] == "NKNUSDT" and smap["LRC-BTC"] == "LRCBTC"
    conn = next(ln["conn"] for ln in lines if ln["t"] == "connect")
    crossed_seen = []

    def check(feed, ln):
        for sb in feed.books.values():
            if sb.state is BookState.LIVE and sb.book.crossed():
                crossed_seen.append((sb.symbol, ln["ts"]))

    feed, quotes = await replay_connection(BinanceFeed, lines, conn, smap, check)
    st = feed.status()
    assert sorted(feed.books) == ["BLZ-ETH", "LRC-BTC", "NKN-USDT", "RUNE-EUR"]
    assert all(sb.state is BookState.LIVE for sb in feed.books.values()), st
    assert st.counters.get("gaps", 0) == 0
    assert st.counters.get("crossed", 0) == 0 and not crossed_seen
    assert st.counters.get("frame_errors", 0) == 0
    assert st.counters["snapshots"] == 4
    # bookTicker agreed with the L2 book every time both named the same update id.
    assert st.counters["bbo_checks"] > 0 and st.counters.get("bbo_mismatch", 0) == 0

    hand = _by_hand(lines)
    # An independent replay of the same recording by the venue's rule counted
    # the same applied events.
    assert {s: h["applied"] for s, h in hand.items()} == {
        "NKNUSDT": 149, "LRCBTC": 13, "BLZETH": 9, "RUNEEUR": 1}
    for sb in feed.books.values():
        h = hand[sb.vsym]
        assert sb.seq == h["id"]
        assert Decimal(sb.book.best_bid()[0]) == h["bid"]
        assert Decimal(sb.book.best_ask()[0]) == h["ask"]
        want_b = sorted(h["bids"].items(), reverse=True)[:50]
        assert [(Decimal(p), q) for p, q in sb.book.top_bids(50)] == want_b
        want_a = sorted(h["asks"].items())[:50]
        assert [(Decimal(p), q) for p, q in sb.book.top_asks(50)] == want_a
        q = [x for x in quotes if x.symbol == sb.symbol][-1]
        assert (Decimal(q.bid_px), Decimal(q.ask_px)) == (h["bid"], h["ask"])


@pytest.mark.parametrize("limit,weight", [(1, 5), (101, 25), (1000, 50), (1001, 250)])
def test_snapshot_limit_follows_depth(limit, weight):
    f = BinanceFeed(["BTC-USDT"], lambda q: None, depth=limit)
    assert depth_weight(f.snapshot_limit) == weight


async def test_quiet_symbol_still_goes_live():
    """A symbol with no depth events at all gets its snapshot after the wait,
    and a later event must still bridge that snapshot's id."""

    def quiet(sim) -> None:
        sim.quiet.add("ETH-USDT")

    async with Rig("binance", SYMS, sim_setup=quiet) as rig:
        await rig.live()
        await rig.wait_equal()
        eth = rig.feed.books["ETH-USDT"]
        assert eth.seq == rig.sim.ids["ETH-USDT"]  # straight from the REST snapshot
        seq0 = eth.seq
        rig.sim.quiet.clear()  # the market wakes up: its events continue from that id
        await rig.wait(lambda: eth.seq > seq0, "ETH-USDT events applied on top of the snapshot")
        await rig.wait_equal()
        assert rig.counter("gaps") == 0


class FastChecks(BinanceFeed):
    quiet_check_s = 0.3
    quiet_grace_s = 0.2
    rest_refused_wait_s = 0.3


async def test_rest_429_pauses_every_fetch_then_recovers():
    def refuse(sim) -> None:
        sim.rest_refuse = 2

    async with Rig("binance", SYMS, sim_setup=refuse, feed_cls=FastChecks) as rig:
        await rig.live()
        assert rig.counter("rest_429") == 2
        await rig.wait_equal()
        assert rig.sim.snapshot_requests == {s: 1 for s in SYMS}  # served after the 429s


async def test_quiet_symbol_passes_the_quiet_check():
    def quiet(sim) -> None:
        sim.quiet.add("ETH-USDT")

    async with Rig("binance", SYMS, sim_setup=quiet, feed_cls=FastChecks) as rig:
        await rig.live()
        changes = rig.feed.books["ETH-USDT"].changes
        await rig.wait(lambda: rig.counter("quiet_checks") >= 2, "quiet checks ran")
        assert rig.counter("missed_events") == 0
        assert rig.feed.books["ETH-USDT"].changes == changes  # stayed LIVE throughout
        assert rig.feed.books["ETH-USDT"].state is BookState.LIVE


async def test_silently_lost_stream_is_caught_by_the_quiet_check():
    """The venue's ids move on but no event reaches us (no U/u gap can show it):
    the quiet check compares the venue's lastUpdateId with the book's and resyncs."""
    async with Rig("binance", SYMS, feed_cls=FastChecks) as rig:
        await rig.live()
        rig.sim.mute.add("ETH-USDT")
        await rig.wait(lambda: rig.counter("missed_events") >= 1, "lost events noticed")
        assert BookState.RESYNC in rig.states_of("ETH-USDT")
        assert rig.counter("missed_events") >= 1 and rig.counter("gaps") == 0
        rig.sim.mute.clear()
        await rig.live()
        await rig.wait_equal()


def test_symbols_beyond_one_connections_1024_streams_get_no_book():
    m = {f"C{i}-USDT": f"C{i}USDT" for i in range(600)}
    f = BinanceFeed(list(m), lambda q: None, symbol_map=m)
    assert len(f.books) == 512 and len(f.over_limit) == 88
    assert f.status().counters["symbols_over_limit"] == 88
    streams = f._streams
    assert len(streams) == 1024
    # 200 in the URL, the rest in SUBSCRIBE frames of at most 100 params.
    frames = [json.loads(x) for x in f.subscribe_messages()]
    assert sum(len(x["params"]) for x in frames) == 824 and all(len(x["params"]) <= 100 for x in frames)
    assert BinanceFeed.symbols_from_subscribe(f.url, f.subscribe_messages(), {v: k for k, v in m.items()}) \
        == list(f.books)


async def test_raw_ws_endpoint_with_subscribe_frames():
    """``/ws`` sends bare events (no ``stream`` wrapper); every stream is SUBSCRIBEd."""
    async with Rig("binance", SYMS, url=lambda sim: f"ws://127.0.0.1:{sim.port}/ws") as rig:
        assert rig.feed.url.endswith("/ws")
        frames = [json.loads(m) for m in rig.feed.subscribe_messages()]
        assert [f["params"] for f in frames] == [rig.feed._streams]
        await rig.live()
        await rig.wait(lambda: rig.counter("bbo_checks") > 0, "bare bookTicker events")
        await rig.wait_equal()


async def test_proactive_reconnect_before_the_connection_limit():
    """Binance closes connections at 24 h; the adapter leaves first (here after 0.5 s)."""
    assert BinanceFeed.max_conn_life_s is not None and BinanceFeed.max_conn_life_s < 24 * 3600

    class ShortLived(BinanceFeed):
        max_conn_life_s = 0.5

    async with Rig("binance", SYMS, feed_cls=ShortLived) as rig:
        await rig.live()
        await rig.wait(lambda: rig.sim.connects >= 2, "second connection")
        await rig.live()
        await rig.wait_equal()
        assert rig.counter("gaps") == 0


async def test_typed_depth_path_and_generic_path_agree_on_the_recording(monkeypatch):
    # Synced books' depthUpdate frames take a typed one-pass decode; the generic
    # dict path stays the rule for everything else. Both must give the same quotes,
    # states and counters on the real stream.
    from arbtui.backend.feeds import binance

    lines = load_recording("BINANCE.jsonl.zst")
    info = next(ln for ln in lines if ln["t"] == "http" and "exchangeInfo" in ln["url"])
    smap = BinanceFeed.parse_instruments(info["data"])
    conn = next(ln["conn"] for ln in lines if ln["t"] == "connect")
    runs = []
    for typed in (True, False):
        monkeypatch.setattr(binance, "TYPED_DEPTH", typed)
        feed, quotes = await replay_connection(BinanceFeed, lines, conn, smap, None)
        runs.append(([(q.symbol, q.bids, q.asks, q.bid_px, q.ask_qty, q.seq, q.venue_ts_ns)
                      for q in quotes], feed.status().counters,
                     {s: sb.book.top_asks(50) for s, sb in feed.books.items()}))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 100
    # USD-M chains by pu, not U: its own rules, so never the spot-typed path.
    from arbtui.backend.feeds.binance_usdm import BinanceUsdmFeed

    assert feed._typed_depth and not BinanceUsdmFeed(["BTC-USDT"], print)._typed_depth
