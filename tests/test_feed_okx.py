"""OKX v5 adapter: against the loopback simulator, frame-level chain rules, and
the real 2022 recording (``../shared/recordings/OKX.jsonl.zst``)."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import pytest
from feed_og_fixtures import RECORDINGS, Rig, read_recording
from spies import count_taken

from arbtui.backend.book import Book, okx_checksum
from arbtui.backend.feeds.okx import OkxFeed
from arbtui.model import BookState

SYMS = ["BTC-USDT", "ETH-USDT"]
FAST = {"keepalive_s": 0.1, "crossed_grace_s": 0.3}


# ====================================================================== simulator


async def test_reaches_live_and_quote_equals_sim_top():
    async with Rig("okx", SYMS) as r:
        await r.live()
        await r.wait(lambda: r.c("subscribe_acks") == 2 and len(r.quotes) > 20, "quotes flowing")
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)
        q = r.last_quote("BTC-USDT")
        assert q.venue_ts_ns > 0 and q.seq > 0  # OKX ts (ms) and seqId are carried
        assert r.c("gaps") == 0 and r.c("resyncs") == 0 and r.c("frame_errors") == 0
        assert r.c("checksum_ok") == 0  # the 2026 simulator sends checksum 0: never validated
        assert r.sim.acks == 2 and r.sim.connects == 1


async def test_gap_resubscribes_only_that_instrument():
    async with Rig("okx", SYMS, feed_attrs=FAST) as r:
        await r.live()
        before = {s: r.feed.books[s].changes for s in SYMS}
        r.sim.inject("gap")
        await r.wait(lambda: r.c("gaps") >= 1, "gap detected")
        await r.wait(lambda: r.c("resubscribes") >= 1 and r.all_live(), "LIVE after resubscribe")
        # The skipped update hit one instrument: only that one was resynced.
        hit = [s for s in SYMS if BookState.RESYNC in r.states_of(s)]
        assert len(hit) == 1 and r.c("gaps") == 1
        (other,) = set(SYMS) - set(hit)
        assert r.feed.books[other].changes == before[other]
        assert r.sim.connects == 1 and r.sim.acks == 3  # one resubscribe, no reconnect
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_malformed_frame_is_counted_not_fatal():
    async with Rig("okx", SYMS, feed_attrs=FAST) as r:
        await r.live()
        n = len(r.quotes)
        r.sim.inject("malformed")
        await r.wait(lambda: r.c("frame_errors") >= 1, "malformed frame counted")
        await r.wait(lambda: len(r.quotes) > n + 5, "quotes keep flowing")
        assert r.all_live() and r.sim.connects == 1 and r.c("resyncs") == 0


async def test_crossed_book_is_withheld_then_resynced():
    async with Rig("okx", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("crossed")
        await r.wait(lambda: r.c("crossed") >= 1, "crossed book seen")
        await r.wait(lambda: r.c("resyncs") >= 1 and r.all_live(), "LIVE after crossed resync")
        assert all(q.bid < q.ask for q in r.quotes), "a crossed quote was published"
        assert r.sim.connects == 1
        await r.freeze()
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_snapshot_mid_stream_resets_book_without_resync():
    async with Rig("okx", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("snapshot")
        await r.wait(lambda: r.c("snapshots") >= 3, "mid-stream snapshot applied")
        await r.freeze()
        assert r.c("gaps") == 0 and r.c("resyncs") == 0 and r.all_live()
        r.assert_top_matches_sim("BTC-USDT")


async def test_dropped_connection_reconnects_to_live():
    async with Rig("okx", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.inject("drop")
        await r.wait(lambda: r.feed.reconnects >= 1, "reconnect")
        await r.wait(r.all_live, "LIVE after reconnect")
        assert r.sim.connects == 2
        assert BookState.STALE in r.states_of("BTC-USDT")


async def test_silence_goes_stale_and_recovers():
    attrs = dict(FAST, ping_idle_s=0.3, stale_after_s=1.0)
    async with Rig("okx", SYMS, feed_attrs=attrs, sim_attrs={"silence_s": 30.0}) as r:
        await r.live()
        r.sim.inject("silence")
        await r.wait(lambda: r.c("stale") >= 1, "silence noticed")
        assert r.c("pings") >= 1  # it pinged first; the stalled venue never answered
        await r.wait(lambda: r.sim.connects == 2 and r.all_live(), "LIVE on a new connection")
        assert BookState.STALE in r.states_of("ETH-USDT")


async def test_book_silent_on_a_live_connection_is_resubscribed():
    attrs = dict(FAST, book_stale_s=0.4)
    async with Rig("okx", SYMS, feed_attrs=attrs) as r:
        await r.live()
        r.sim.muted.add("BTC-USDT")
        await r.wait(lambda: r.c("stale_books") >= 1, "silent book noticed")
        assert BookState.STALE in r.states_of("BTC-USDT")
        assert BookState.STALE not in r.states_of("ETH-USDT")
        r.sim.muted.clear()
        await r.wait(lambda: r.c("resubscribes") >= 1 and r.all_live(), "LIVE after resubscribe")
        assert r.sim.connects == 1
        await r.freeze()
        r.assert_top_matches_sim("BTC-USDT")


async def test_unknown_instrument_error_is_visible_in_status():
    async with Rig("okx", ["BTC-USDT", "DOGE-USDT"]) as r:
        r.sim.inst_to_symbol.pop("DOGE-USDT")  # the venue does not list it
        await r.wait(lambda: r.feed.books["BTC-USDT"].state is BookState.LIVE, "BTC-USDT LIVE")
        await r.wait(lambda: r.c("venue_errors") == 1, "error event")
        st = r.feed.status()
        assert st.symbols["DOGE-USDT"].state is BookState.SYNCING
        assert "60018" in st.symbols["DOGE-USDT"].reason


async def test_nonzero_checksums_verified_and_mismatch_resyncs():
    async with Rig("okx", SYMS, feed_attrs=FAST, sim_attrs={"checksums": True}) as r:
        await r.live()
        await r.wait(lambda: r.c("checksum_ok") > 10, "checksums verified")
        r.sim.inject("checksum")
        await r.wait(lambda: r.c("checksum_fail") == 1, "bad checksum caught")
        await r.wait(lambda: r.c("resubscribes") >= 1 and r.all_live(), "LIVE after resync")
        assert r.sim.connects == 1


async def test_seq_reset_linked_to_last_id_is_accepted():
    async with Rig("okx", SYMS, feed_attrs=FAST) as r:
        await r.live()
        r.sim.reset_seq()
        await r.wait(lambda: r.c("seq_resets") >= 2, "resets seen on both books")
        await r.freeze()
        assert r.c("gaps") == 0 and r.c("resyncs") == 0 and r.all_live()
        assert r.feed.books["BTC-USDT"].seq < 1000  # the new, lower id space
        r.assert_top_matches_sim("ETH-USDT")


async def test_idle_keepalive_update_and_text_ping_pong():
    attrs = dict(FAST, ping_idle_s=0.25)
    async with Rig("okx", SYMS, feed_attrs=attrs, sim_attrs={"keepalive_idle_s": 0.2}) as r:
        await r.live()
        await r.freeze()  # market stops: only keepalive updates and pongs remain
        await r.wait(lambda: r.c("keepalive_updates") >= 2, "empty keepalive updates accepted")
        await r.wait(lambda: r.c("pongs") >= 1 and r.sim.pings >= 1, "text ping answered")
        assert r.c("gaps") == 0 and r.c("frame_errors") == 0 and r.all_live()


async def test_without_in_band_snapshot_syncs_from_rest_and_bridges():
    # OKX's announced snapshot-less mode: updates only; the adapter fetches
    # /api/v5/market/books and bridges it with the buffered seqId chain.
    attrs = dict(FAST, snapshot_wait_s=0.3)
    async with Rig("okx", SYMS, feed_attrs=attrs, sim_attrs={"in_band_snapshot": False}) as r:
        await r.live()
        assert r.c("rest_snapshots") == 2 and r.c("snapshots") == 0
        assert "/api/v5/market/books?instId=BTC-USDT&sz=400" in r.sim.http.requests
        await r.wait(lambda: len(r.quotes) > 20, "quotes flowing")
        await r.freeze()
        assert r.c("gaps") == 0 and r.c("resyncs") == 0
        for s in SYMS:
            r.assert_top_matches_sim(s)


async def test_instrument_list_from_rest_maps_spot_only():
    async with Rig("okx", SYMS) as r:
        body = await r.feed.http_get(OkxFeed.instruments_url(r.sim.rest_url))
        assert OkxFeed.parse_instruments(body) == {"BTC-USDT": "BTC-USDT", "ETH-USDT": "ETH-USDT"}


# ====================================================================== frame rules


def _frame(inst, action, bids, asks, prev=None, seq=None, checksum=0, ts="1786309548848"):
    d = {"asks": [[p, q, "0", "1"] for p, q in asks], "bids": [[p, q, "0", "1"] for p, q in bids],
         "ts": ts, "checksum": checksum}
    if seq is not None:
        d["prevSeqId"], d["seqId"] = prev, seq
    return json.dumps({"arg": {"channel": "books", "instId": inst}, "action": action, "data": [d]})


def _feed():
    quotes = []
    f = OkxFeed(["BTC-USDT"], quotes.append)
    return f, quotes


def test_chain_rules_keepalive_reset_and_gap():
    f, quotes = _feed()
    sb = f.books["BTC-USDT"]
    f.feed_frame(_frame("BTC-USDT", "update", [("1", "1")], [("2", "1")], 5, 6), 1)
    assert f.counters["updates_before_snapshot"] == 1 and sb.state is BookState.SYNCING
    f.feed_frame(_frame("BTC-USDT", "snapshot", [("100.0", "1")], [("100.5", "2")], -1, 10), 2)
    assert sb.state is BookState.LIVE and quotes[-1].bid_px == "100.0" and quotes[-1].seq == 10
    assert quotes[-1].venue_ts_ns == 1786309548848 * 1_000_000
    f.feed_frame(_frame("BTC-USDT", "update", [("100.1", "3")], [], 10, 15), 3)
    f.feed_frame(_frame("BTC-USDT", "update", [], [], 15, 15), 4)  # keepalive
    assert f.counters["keepalive_updates"] == 1 and sb.seq == 15
    f.feed_frame(_frame("BTC-USDT", "update", [], [("100.4", "1")], 15, 3), 5)  # reset, linked
    assert f.counters["seq_resets"] == 1 and sb.seq == 3 and sb.state is BookState.LIVE
    assert (quotes[-1].bid_px, quotes[-1].ask_px) == ("100.1", "100.4")
    f.feed_frame(_frame("BTC-USDT", "update", [], [], 7, 7), 6)  # "keepalive" not linked: gap
    assert f.counters["gaps"] == 1 and sb.state is BookState.RESYNC and len(sb.book) == 0
    f.feed_frame(_frame("BTC-USDT", "update", [("1", "1")], [], 7, 8), 7)  # broken stream: ignored
    assert f.counters["gaps"] == 1
    assert "seq_resets" in f.counters and f.counters.get("frame_errors", 0) == 0


def test_reset_not_linked_to_last_id_is_a_gap():
    f, _ = _feed()
    f.feed_frame(_frame("BTC-USDT", "snapshot", [("100.0", "1")], [("100.5", "2")], -1, 50), 1)
    f.feed_frame(_frame("BTC-USDT", "update", [], [("100.4", "1")], 49, 3), 2)
    assert f.counters["gaps"] == 1 and f.counters.get("seq_resets", 0) == 0


def test_zero_checksum_never_checked_and_missing_seq_in_chained_book_is_an_error():
    f, _ = _feed()
    f.feed_frame(_frame("BTC-USDT", "snapshot", [("100.0", "1")], [("100.5", "2")], -1, 1), 1)
    f.feed_frame(_frame("BTC-USDT", "update", [("99", "1")], [], 1, 2, checksum=0), 2)
    assert "checksum_ok" not in f.counters and "checksum_fail" not in f.counters
    f.feed_frame(_frame("BTC-USDT", "update", [("98", "1")], []), 3)  # no seqId any more
    assert f.counters["frame_errors"] == 1 and f.books["BTC-USDT"].state is BookState.RESYNC


def test_non_spot_instruments_and_garbage_never_touch_books():
    f, quotes = _feed()
    f.feed_frame(_frame("BTC-USDT-SWAP", "snapshot", [("1", "1")], [("2", "1")], -1, 1), 1)
    f.feed_frame(_frame("BTC-USD-220527", "snapshot", [("1", "1")], [("2", "1")], -1, 1), 2)
    assert not quotes and f.counters["ignored_msgs"] == 2
    for bad in ("{", "[]", '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update"}',
                _frame("BTC-USDT", "snapshot", [("abc", "1")], [], -1, 1), b"\xff\xfe"):
        f.feed_frame(bad, 3)
    assert f.counters["frame_errors"] == 5 and not quotes
    f.feed_frame("pong", 4)
    assert f.counters["pongs"] == 1


def test_crossed_within_one_message_is_not_crossed():
    # Whole-message rule: a bid at the old best ask plus that ask's deletion, in one frame.
    f, quotes = _feed()
    f.feed_frame(_frame("BTC-USDT", "snapshot", [("100.0", "1")], [("100.5", "2"), ("101", "1")], -1, 1), 1)
    f.feed_frame(_frame("BTC-USDT", "update", [("100.5", "1")], [("100.5", "0")], 1, 2), 2)
    assert f.counters.get("crossed", 0) == 0
    assert (quotes[-1].bid_px, quotes[-1].ask_px) == ("100.5", "101")


def test_subscribe_is_one_request_without_duplicates():
    f = OkxFeed(["BTC-USDT", "ETH-USDT", "SOL-USDT"], lambda q: None)
    msgs = [json.loads(m) for m in f.subscribe_messages()]
    assert len(msgs) == 1 and msgs[0]["op"] == "subscribe"
    args = [(a["channel"], a["instId"]) for a in msgs[0]["args"]]
    assert sorted(args) == [("books", "BTC-USDT"), ("books", "ETH-USDT"), ("books", "SOL-USDT")]


# ====================================================================== real recording

needs_rec = pytest.mark.skipif(not (RECORDINGS / "OKX.jsonl.zst").exists(),
                               reason=f"real recordings not present at {RECORDINGS}")


@pytest.fixture(scope="module")
def okx_lines():
    return read_recording("OKX.jsonl.zst")


def _books_frames(lines):
    for ln in lines:
        if ln["t"] == "recv":
            m = json.loads(ln["data"])
            if m.get("arg", {}).get("channel") == "books" and "data" in m:
                yield ln, m


@needs_rec
def test_recording_instruments_and_subscribe_map_spot_only(okx_lines):
    http = next(ln for ln in okx_lines if ln["t"] == "http" and "instType=SPOT" in ln["url"])
    assert http["url"] == OkxFeed.instruments_url("https://www.okx.com")
    smap = OkxFeed.parse_instruments(http["data"])
    assert smap["BTC-USDT"] == "BTC-USDT" and smap["ETH-USDT"] == "ETH-USDT"
    assert not any(v.endswith("-SWAP") for v in smap.values())
    sends = [ln["data"] for ln in okx_lines if ln["t"] == "send"]
    syms = OkxFeed.symbols_from_subscribe("wss://ws.okx.com:8443/ws/v5/public", sends,
                                          {v: k for k, v in smap.items()})
    assert syms == ["BTC-USDT"]  # the future and the swap are not spot


@needs_rec
def test_recording_all_290_checksums_verify(okx_lines):
    books: dict[str, Book] = {}
    ok: Counter = Counter()
    bad: Counter = Counter()
    for _, m in _books_frames(okx_lines):
        inst = m["arg"]["instId"]
        b = books.setdefault(inst, Book(10_000))
        for d in m["data"]:
            if m["action"] == "snapshot":
                b.load(d["bids"], d["asks"])
            else:
                for row in d["bids"]:
                    b.set(True, row[0], row[1])
                for row in d["asks"]:
                    b.set(False, row[0], row[1])
            (ok if okx_checksum(b) == d["checksum"] else bad)[inst] += 1
            assert "seqId" not in d  # 2022 data: no sequence ids at all
    assert not bad
    assert ok == {"BTC-USDT": 98, "BTC-USD-220527": 99, "UNI-USD-SWAP": 93}
    assert sum(ok.values()) == 290


@needs_rec
def test_recording_replays_through_the_feed(okx_lines):
    smap = OkxFeed.parse_instruments(next(ln["data"] for ln in okx_lines if ln["t"] == "http"))
    quotes = []
    f = OkxFeed(["BTC-USDT"], quotes.append, symbol_map=smap)
    for ln in okx_lines:
        if ln["t"] == "recv" and ln["conn"] == "OKX.ws.1":
            f.feed_frame(ln["data"], int(ln["ts"] * 1e9))
    c = f.counters
    assert c["checksum_ok"] == 98 and c.get("checksum_fail", 0) == 0
    assert c.get("crossed", 0) == 0 and c.get("gaps", 0) == 0 and c.get("resyncs", 0) == 0
    assert c.get("frame_errors", 0) == 0 and c["snapshots"] == 1
    assert f.books["BTC-USDT"].state is BookState.LIVE
    assert all(q.bid < q.ask for q in quotes)

    # Top of book by hand, independently of Book: two dicts keyed by Decimal
    # price; a snapshot replaces both, each update row sets the absolute size
    # and size 0 deletes; best bid = max key, best ask = min key, read only
    # after the whole frame. Checked after every BTC-USDT frame against the
    # quote the feed published at that frame's receive time.
    bids: dict = {}
    asks: dict = {}
    by_recv = {q.recv_ts_ns: q for q in quotes}
    tops = []
    for ln, m in _books_frames(okx_lines):
        if m["arg"]["instId"] != "BTC-USDT":
            continue
        d = m["data"][0]
        if m["action"] == "snapshot":
            bids, asks = {}, {}
        for side, rows in ((bids, d["bids"]), (asks, d["asks"])):
            for px, sz, *_ in rows:
                if Decimal(sz) == 0:
                    side.pop(Decimal(px), None)
                else:
                    side[Decimal(px)] = (px, sz)
        top = (bids[max(bids)], asks[min(asks)])
        tops.append(top)
        q = by_recv.get(int(ln["ts"] * 1e9))
        if q is not None:
            assert ((q.bid_px, q.bid_qty), (q.ask_px, q.ask_qty)) == top
    assert len(tops) == 98
    # Written down for the 9th BTC-USDT frame (index 8, recv ts 1652459226.3636534):
    # it adds bid 30243.5 @ 0.006 at the previous best ask and deletes asks
    # 30243.5 ... 30250.9 in the same message (crossed only if read mid-message),
    # leaving 30251 @ 0.01 as the best ask.
    assert tops[8] == (("30243.5", "0.006"), ("30251", "0.01"))
    last = quotes[-1]
    assert tops[-1] == ((last.bid_px, last.bid_qty), (last.ask_px, last.ask_qty))


def _both_paths(monkeypatch, run):
    """``run(feed_factory)`` with the typed ``books`` update path on, then off:
    (what it returned, how many frames the typed path took) for each."""
    from arbtui.backend.feeds import okx

    out = []
    for typed in (True, False):
        monkeypatch.setattr(okx, "TYPED_BOOKS", typed)
        taken = count_taken(monkeypatch, OkxFeed, "_on_update_typed")
        out.append((run(), taken[0]))
    return out


def _observed(f, quotes):
    return ([(q.symbol, q.bids, q.asks, q.bid_px, q.ask_qty, q.seq, q.venue_ts_ns, q.recv_ts_ns)
             for q in quotes], f.status().counters,
            {s: (sb.state, sb.seq, sb.book.top_bids(50), sb.book.top_asks(50))
             for s, sb in f.books.items()})


def test_typed_update_path_and_generic_path_agree_on_chain_rules(monkeypatch):
    # Chained updates: in order, keepalive, linked reset, gap, broken stream, a bad
    # level, checksum ok and mismatch, updates before the snapshot (buffered), an
    # unknown instrument: the typed path must give what the generic one gives.
    snap = _frame("BTC-USDT", "snapshot", [("100.0", "1")], [("100.5", "2")], -1, 10)
    b = Book(1000)
    b.load([["100.0", "1"], ["100.1", "3"]], [["100.5", "2"]])
    good_cs = okx_checksum(b)
    frames = [
        _frame("BTC-USDT", "update", [("1", "1")], [("2", "1")], 5, 6), snap,
        _frame("BTC-USDT", "update", [("100.1", "3")], [], 10, 15, checksum=good_cs),
        _frame("BTC-USDT", "update", [], [], 15, 15),
        _frame("BTC-USDT", "update", [], [("100.4", "1")], 15, 3),
        _frame("BTC-USDT", "update", [("100.2", "1")], [], 3, 4, ts=""),
        _frame("BTC-USDT-SWAP", "update", [("1", "1")], [], 1, 2),
        _frame("BTC-USDT", "update", [], [], 7, 7), _frame("BTC-USDT", "update", [("1", "1")], [], 7, 8),
        snap, _frame("BTC-USDT", "update", [("abc", "1")], [], 10, 11),
        snap, _frame("BTC-USDT", "update", [("99", "1")], [], 10, 11, checksum=12345),
        snap, _frame("BTC-USDT", "update", [("99", "1")], []),
    ]

    def run():
        f, quotes = _feed()
        for i, fr in enumerate(frames):
            f.feed_frame(fr, 1_000 + i)
        return _observed(f, quotes)

    (typed, n_typed), (generic, n_generic) = _both_paths(monkeypatch, run)
    assert typed == generic
    assert n_typed >= 6 and n_generic == 0
    c = typed[1]
    assert c["gaps"] == 1 and c["checksum_ok"] == 1 and c["checksum_fail"] == 1
    assert c["frame_errors"] == 2 and c["keepalive_updates"] == 1 and c["seq_resets"] == 1


@needs_rec
def test_typed_update_path_and_generic_path_agree_on_the_recording(monkeypatch, okx_lines):
    # The 2022 stream: unchained (no seqId), a checksum on every frame.
    smap = OkxFeed.parse_instruments(next(ln["data"] for ln in okx_lines if ln["t"] == "http"))

    def run():
        quotes = []
        f = OkxFeed(["BTC-USDT"], quotes.append, symbol_map=smap)
        for ln in okx_lines:
            if ln["t"] == "recv" and ln["conn"] == "OKX.ws.1":
                f.feed_frame(ln["data"], int(ln["ts"] * 1e9))
        return _observed(f, quotes)

    (typed, n_typed), (generic, n_generic) = _both_paths(monkeypatch, run)
    assert typed == generic
    assert n_typed == 97 and n_generic == 0 and typed[1]["checksum_ok"] == 98
