"""The benchmark harness measures what it claims (correctness only, never speed).

Speed is measured by ``python -m benchmarks`` and recorded in BENCHMARKS.md;
nothing here asserts a timing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

# benchmarks/ is a top-level package of the repository, not of the installed arbtui.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import e2e, load
from benchmarks.baseline.consumer import SpreadDetector


def test_market_stream_is_a_valid_book_stream():
    # Every message moves the top of one venue's book and never crosses it, so
    # one message is one quote for every variant.
    m = load.Market(3, 4, seed=1)
    msgs = m.stream(3000)
    assert {mm.venue for mm in msgs} == {0, 1, 2}
    for mm in msgs:
        q = load.quote_of(m, mm)
        assert q.bid < q.ask
        assert mm.updates
    # Deterministic: the same seed gives the same stream.
    again = load.Market(3, 4, seed=1).stream(3000)
    assert [a.updates for a in again] == [b.updates for b in msgs]


def test_coinbase_adapter_accepts_the_synthetic_frames():
    pytest.importorskip("arbtui.backend.feeds.coinbase")
    m = load.Market(2, 2, seed=2)
    snaps = {vi: load.coinbase_snapshot_frames(m, vi, 1) for vi in range(2)}
    got = []
    side = e2e.FeedSide(m, got.append, "frames")
    side.sync(snaps)  # raises unless every book went LIVE
    msgs = m.stream(400)
    for mm in msgs:
        s = side.seq[mm.venue]
        side.seq[mm.venue] = s + 1
        side.feeds[mm.venue].feed_frame(load.coinbase_frame(m, mm, s), 1)
    for f in side.feeds:
        assert f.counters.get("frame_errors", 0) == 0, f.counters
        assert f.counters.get("resyncs", 0) == 0, f.counters
    # The adapter's last quote of each book equals the generator's top of book.
    last_msg = {(m.venues[mm.venue], m.symbols[mm.symbol]): mm for mm in msgs}
    last_quote = {(q.venue, q.symbol): q for q in got}
    for key, q in last_quote.items():
        mm = last_msg[key]
        assert (q.bid_px, q.ask_px) == (mm.bids[0][0], mm.asks[0][0])


def test_baseline_detector_scans_every_symbol():
    seen = []
    d = SpreadDetector(lambda tick, found: seen.append(found))
    for ex, sym, px in [("a", "X", 100.0), ("b", "X", 100.1), ("a", "Y", 10.0), ("b", "Y", 10.0)]:
        d.on_message(json.dumps({"exchange": ex, "symbol": sym, "price": px}).encode())
    # 100 -> 100.1 is 10 bps (reported on every later message, the full scan);
    # Y never spreads.
    assert seen == [0, 1, 1, 1]


def test_embedded_e2e_run_counts_every_quote():
    spec = e2e.Spec("embedded", 2, 2, rate=2000.0, window_s=0.4, warmup_s=0.1)
    r = asyncio.run(asyncio.wait_for(e2e.run(spec, 5000), 60))
    assert r.sent == e2e.n_needed(spec, 5000)
    assert r.samples > 0 and r.p50_ms == r.p50_ms  # measured, not nan
    assert r.p50_ms <= r.p99_ms <= r.p999_ms
    # Everything handed over after the warm-up reached the detector (evaluated
    # or superseded by a newer quote of the same venue+symbol).
    assert r.processed_rate > 0
    assert not any(n.startswith("FAILED") for n in r.notes)


def test_floor_queue_latency_is_measured_per_message():
    spec = e2e.Spec("floor-queue", 2, 2, rate=2000.0, window_s=0.3, warmup_s=0.1)
    r = asyncio.run(asyncio.wait_for(e2e.run(spec, 5000), 60))
    # Exactly one sample per message received from the warm-up on, none before it.
    assert r.samples == r.sent_after_warm
    assert 0 < r.sent_after_warm < r.sent


def test_arbtui_bench_dispatches_from_any_directory(tmp_path):
    import subprocess

    # Run from elsewhere: the suite is found in the checkout, and its own argument
    # check answers (exit 2, names the choices), not "needs a source checkout".
    p = subprocess.run([sys.executable, "-m", "arbtui", "bench", "--only", "nosuch"],
                       check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "unknown benchmark(s) nosuch" in p.stderr
    assert "parse, detector, embedded, kafka, memory, ui" in p.stderr
