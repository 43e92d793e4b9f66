"""The peer benchmark's harness (benchmarks/peer.py): never speed, only that it is
skipped cleanly without cryptofeed, classifies frames right, reports top-of-book
disagreements, and — with cryptofeed installed — drives both libraries through the
same recorded frames to the same books."""

from __future__ import annotations

import builtins
from decimal import Decimal
from pathlib import Path

import pytest

from benchmarks import peer

REC = Path(__file__).resolve().parents[2] / "shared" / "recordings" / "BINANCE.jsonl.zst"


def test_without_cryptofeed_the_benchmark_is_one_skipped_line(monkeypatch):
    real_import = builtins.__import__

    def no_cryptofeed(name, *a, **kw):
        if name == "cryptofeed" or name.startswith("cryptofeed."):
            raise ModuleNotFoundError("No module named 'cryptofeed'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_cryptofeed)
    why = peer.available()
    assert why and "cryptofeed not installed" in why and ".[peer]" in why
    from benchmarks.__main__ import Plan, bench_peer

    out: dict = {}
    md = bench_peer(Plan(True, 1), out)
    assert out["peer"] == {"skipped": why}
    assert [ln for ln in md if ln.startswith("_Skipped")] == [f"_Skipped: {why}_"]


def test_update_frames_are_told_from_snapshots_and_other_channels():
    assert peer.is_update("binance", '{"stream":"x@depth@100ms","data":{"e":"depthUpdate"}}')
    assert not peer.is_update("binance", '{"stream":"x@bookTicker","data":{"u":1}}')
    assert peer.is_update("coinbase", '{"channel":"l2_data","events":[{"type":"update"}]}')
    assert not peer.is_update("coinbase", '{"channel":"l2_data","events":[{"type":"snapshot"}]}')
    assert peer.is_update("bitfinex", "[10,[100.5,1,2.5],7]")
    assert not peer.is_update("bitfinex", "[10,[[100.5,1,2.5],[101,1,-1]],7]")
    assert not peer.is_update("bitfinex", '[10,"hb",8]')
    assert not peer.is_update("okx", b"\x1f\x8b")


def test_a_book_missing_its_snapshot_asks_is_reported_not_matched():
    lvl = (Decimal("100.5"), Decimal(2))
    ask = (Decimal(101), Decimal(1))
    ours = {"BTC-USD": ((lvl,), (ask, (Decimal(102), Decimal(3))))}
    same = peer._compare(ours, {"BTC-USD": ((lvl,), (ask, (Decimal(102), Decimal(3))))},
                         "coinbase")
    assert same == []
    # cryptofeed's Coinbase bug: snapshot asks ("offer") dropped, updates added one back.
    theirs = {"BTC-USD": ((lvl,), ((Decimal(102), Decimal(3)),))}
    diff = peer._compare(ours, theirs, "coinbase")
    assert len(diff) == 1 and diff[0].startswith("BTC-USD: asks differ from level 1")
    assert "101×1" in diff[0] and "(2 vs 1 levels)" in diff[0]


@pytest.mark.skipif(peer.available() is not None, reason="cryptofeed (extra `peer`) not installed")
@pytest.mark.skipif(not REC.exists(), reason=f"recording {REC} is absent")
def test_both_libraries_replay_the_binance_recording_to_the_same_books():
    res = peer.run(repeats=1, files=[("BINANCE", str(REC))])
    (row,) = res["rows"]
    assert row["venue"] == "binance" and row["upd_frames"] == 177
    assert row["tops"] == []  # every symbol's 10 best levels a side agree, price and size
    for mode in peer.MODES:
        assert not row[mode + "_failed"] and row[mode + "_errors"] == 0
        assert row[mode + "_suspended"] == 0  # every handler ran to completion in place
        assert len(row[mode]) == 1 and row[mode][0] > 0
        # cryptofeed awaits its REST book inside the first update of each symbol: the
        # load is counted apart and taken off that frame (arbtui's runs in a task).
        n_loads, ms = row[mode + "_rest"]
        assert n_loads >= 1 and ms > 0
    assert row["arbtui_errors"] == 0 and len(row["arbtui"]) == 1
    # both handlers were handed the same frames: every replayed frame, the same updates
    assert row["arbtui_seen"] == row["defaults_seen"] == row["top_seen"] == (265, 177)
    text = "\n".join(peer.table(res))
    assert "| BINANCE | binance | 265 (177) |" in text and "Not compared: kraken" in text
    assert "BINANCE binance: " in text and "REST snapshot loads" in text


def test_a_rest_snapshot_awaited_inside_a_frame_is_taken_off_that_frame():
    """The frame's figure keeps only the handler's own work: the snapshot's interval
    and the inner clock pair's share (``over``) go to ``rest_ns``."""
    import asyncio

    ticks = iter(range(0, 10_000, 100))  # every clock read advances 100 ns

    class Feed:
        async def _snapshot(self, pair):
            next(ticks)  # the load's own work: one more step of the clock
            return pair

    feed, box = Feed(), {"rest_n": 0, "rest_ns": 0}
    peer._time_rest_snapshots(feed, box, lambda: next(ticks), 7)

    async def handler():
        return await feed._snapshot("BTCUSDT")

    assert asyncio.run(handler()) == "BTCUSDT"
    # reads at 0 and 200 (the load's step at 100 between): 200 ns + over (7)
    assert box == {"rest_n": 1, "rest_ns": 207}

    class NoRest:  # venues with in-channel snapshots: nothing wrapped
        pass

    plain = NoRest()
    peer._time_rest_snapshots(plain, box, lambda: 0, 7)
    assert not hasattr(plain, "_snapshot")
