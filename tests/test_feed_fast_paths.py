"""Every per-frame fast path of an adapter agrees with its generic path on a recording,
and actually runs there.

A fast path takes the common frame (one update of a synced book) a shorter way;
the generic path stays the rule for everything else. Each is switched off by its
module flag, the same frames are replayed both ways, and the quotes, counters and
books must be equal, while a count shows the fast path took most update frames.
(Binance's typed depth path: tests/test_feed_binance.py.)
"""

from __future__ import annotations

import pytest
from feed_bc_fixtures import load_recording, replay_connection
from feed_fixtures import read_recording
from replay_fixtures import record_sim

from arbtui.backend.feeds.bitfinex import BitfinexFeed
from arbtui.backend.feeds.coinbase import CoinbaseFeed
from arbtui.backend.feeds.gemini import GeminiFeed
from arbtui.symbols import sim_symbol_map

SYMS = ["BTC-USD", "ETH-USD"]


@pytest.fixture(scope="module")
def sim_lines(tmp_path_factory) -> list[dict]:
    """Two seconds of the simulator's Bitfinex and Gemini through the live adapters."""
    out = record_sim(tmp_path_factory.mktemp("fast") / "sim.jsonl.zst", 2.0,
                     venues=["bitfinex", "gemini"])
    return read_recording(str(out))


def _outcome(feed, quotes) -> tuple:
    return ([(q.symbol, q.bids, q.asks, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, q.seq,
              q.venue_ts_ns, q.recv_ts_ns, q.live_ts_ns) for q in quotes],
            feed.status().counters,
            {s: (sb.book.top_bids(50), sb.book.top_asks(50), sb.state, sb.seq)
             for s, sb in feed.books.items()})


async def _both_ways(monkeypatch, module, flag: str, cls, lines, conn, smap, counted: str):
    """Replay ``conn`` with ``flag`` on and off; returns both outcomes and how often
    ``cls.<counted>`` ran (True returns only, when it answers whether it took the frame)."""
    runs, calls = [], []
    orig = getattr(cls, counted)
    for fast in (True, False):
        n = [0]

        def spy(self, *a, _n=n, **kw):
            r = orig(self, *a, **kw)
            _n[0] += r is not False
            return r

        monkeypatch.setattr(module, flag, fast)
        monkeypatch.setattr(cls, counted, spy)
        feed, quotes = await replay_connection(cls, lines, conn, smap)
        runs.append(_outcome(feed, quotes))
        calls.append(n[0])
    monkeypatch.setattr(cls, counted, orig)
    return runs, calls


async def test_bitfinex_fast_update_agrees_with_the_generic_path(monkeypatch, sim_lines):
    from arbtui.backend.feeds import bitfinex

    conn = next(ln["conn"] for ln in sim_lines if ln.get("conn", "").startswith("BITFINEX"))
    updates = sum(1 for ln in sim_lines if ln.get("conn") == conn and ln["t"] == "recv"
                  and bitfinex._UPDATE(ln["data"]))
    runs, calls = await _both_ways(monkeypatch, bitfinex, "FAST_UPDATE", BitfinexFeed, sim_lines,
                                   conn, sim_symbol_map("bitfinex", SYMS), "_fast_update")
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 50
    # On: nearly every one-level update took the fast path; off: it never ran.
    assert calls[0] >= 0.9 * updates and calls[1] == 0


async def test_gemini_fast_finish_agrees_with_the_generic_path(monkeypatch, sim_lines):
    from arbtui.backend.feeds import gemini

    conn = next(ln["conn"] for ln in sim_lines if ln.get("conn", "").startswith("GEMINI"))
    runs, calls = await _both_ways(monkeypatch, gemini, "FAST_FINISH", GeminiFeed, sim_lines,
                                   conn, sim_symbol_map("gemini", SYMS), "withhold_crossed")
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 50
    # The generic finish checks every message for a cross; the fast one only when
    # the book's ends touch or it was withheld.
    assert calls[0] < 0.1 * calls[1]


async def test_coinbase_one_event_path_agrees_with_on_l2(monkeypatch):
    from arbtui.backend.feeds import coinbase

    lines = load_recording("COINBASE.jsonl.zst")
    info = next(ln for ln in lines if ln["t"] == "http" and "products" in ln["url"])
    smap = CoinbaseFeed.parse_instruments(info["data"])
    conn = next(ln["conn"] for ln in lines if ln["t"] == "connect")
    runs, calls = await _both_ways(monkeypatch, coinbase, "FAST_L2", CoinbaseFeed, lines, conn,
                                   smap, "_on_l2")
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 100
    # Off, every l2_data frame goes through _on_l2; on, only snapshots and the rare
    # multi-event frame do.
    assert calls[0] < 0.2 * calls[1]


async def test_okx_fast_finish_agrees_with_the_generic_path(monkeypatch):
    from arbtui.backend.feeds import okx
    from arbtui.backend.feeds.okx import OkxFeed

    lines = load_recording("OKX.jsonl.zst")
    smap = OkxFeed.parse_instruments(next(ln["data"] for ln in lines if ln["t"] == "http"))
    conn = next(ln["conn"] for ln in lines if ln["t"] == "connect")
    runs, calls = await _both_ways(monkeypatch, okx, "FAST_FINISH", OkxFeed, lines, conn, smap,
                                   "withhold_crossed")
    assert runs[0] == runs[1]
    assert len(runs[0][0]) > 50
    assert calls[0] < 0.1 * calls[1]


def test_feed_latency_histogram_bins_every_published_sample_when_read():
    # publish only appends each quote's delay (above the feed's floor so far); the
    # histogram bins them when it is read, as Histogram.observe did per quote.
    from bisect import bisect_left

    from arbtui.backend.metrics import FEED_BUCKETS_S

    f = GeminiFeed(["BTC-USD"], lambda q: None)
    sb = f.books["BTC-USD"]
    f.set_state(sb, sb.state.LIVE)
    delays_ms = [5.0, 3.0, 7.5, 3.2, 40.0, 3.0, 900.0]
    for i, ms in enumerate(delays_ms):
        sb.book.apply_sides([(f"{100 + i}", "1")], [(f"{200 - i}", "1")])
        recv = 10**18 + i * 10**9
        f.publish(sb, recv, recv - int(ms * 1e6))
    want = [0] * (len(FEED_BUCKETS_S) + 1)
    floor, total = float("inf"), 0.0
    for ms in delays_ms:
        floor = min(floor, ms)
        want[bisect_left(FEED_BUCKETS_S, (ms - floor) / 1e3)] += 1
        total += (ms - floor) / 1e3
    h = f.latency_hist
    assert f.quotes_out == len(delays_ms)
    assert h.n == len(delays_ms) and h.counts == want and h.sum == total
    assert f.latency_hist.n == len(delays_ms)  # a second read adds nothing
