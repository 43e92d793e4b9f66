"""Long enough loops of one hot stage for a sampling profiler.

    py-spy record -r 1000 -o adapter.svg -- python -m benchmarks.profile adapter
    py-spy record -r 1000 -o real.svg -- python -m benchmarks.profile adapter-real
    py-spy record -r 1000 -o detector.svg -- python -m benchmarks.profile detector

``adapter`` runs synthetic 1-2 level updates (every one moves the quote);
``adapter-real`` the update frames of the real Coinbase recording (about 6
levels a frame, 4 in 10 move the quote), replayed again and again on the
books as they stood after the snapshots.

The stream is generated first (outside the loop that matters); the profile
then shows ``VenueFeed.feed_frame`` / ``Detector.on_quote`` and what they call.
"""

from __future__ import annotations

import argparse
import sys
import time

from benchmarks import load


def adapter(n: int, repeats: int) -> None:
    from arbtui.backend.feeds import feed_class

    m = load.Market(1, 2, seed=11)
    snaps = load.coinbase_snapshot_frames(m, 0, 1)
    frames = [load.coinbase_frame(m, mm, 1 + len(snaps) + i) for i, mm in enumerate(m.stream(n))]
    cls = feed_class("coinbase")
    for _ in range(repeats):
        f = cls(list(m.symbols), lambda q: None, depth=1000, quote_depth=load.QUOTE_DEPTH,
                symbol_map={s: s for s in m.symbols})
        now = time.time_ns()
        for fr in snaps:
            f.feed_frame(fr, now)
        t = time.perf_counter()
        for fr in frames:
            f.feed_frame(fr, now)
        print(f"adapter: {len(frames) / (time.perf_counter() - t):,.0f} frames/s", file=sys.stderr)


def adapter_real(n: int, repeats: int) -> None:
    import copy
    import json
    import re

    import zstandard

    from arbtui.backend.feeds import feed_class
    from benchmarks.micro import recordings

    path = next((p for p in recordings() if p.name == "COINBASE.jsonl.zst"), None)
    if path is None:
        sys.exit("no COINBASE.jsonl.zst (set ARBTUI_RECORDINGS)")
    conns: dict[str, list[str]] = {}
    with open(path, "rb") as fh:
        text = zstandard.ZstdDecompressor().stream_reader(fh).read().decode()
    for line in text.splitlines():
        o = json.loads(line)
        if o.get("t") == "recv":
            conns.setdefault(o["conn"], []).append(o["data"])
    frames = max(conns.values(), key=len)
    snap = max(i for i, d in enumerate(frames) if '"l2_data"' in d and '"type":"snapshot"' in d)
    f = feed_class("coinbase")(["BTC-USD", "ETH-USD"], lambda q: None, depth=1000, quote_depth=10)
    for d in frames[:snap + 1]:
        f.feed_frame(d, 0)
    seq0 = f._seq + 1
    ups = [d for d in frames[snap + 1:] if '"l2_data"' in d and '"type":"update"' in d]
    # Renumbered so the skipped heartbeat/other frames do not read as sequence gaps.
    ups = [re.sub(r'"sequence_num":\d+', f'"sequence_num":{seq0 + i}', d, count=1)
           for i, d in enumerate(ups)]
    saved = {s: copy.deepcopy(sb.book) for s, sb in f.books.items()}
    passes = max(1, n // len(ups))
    for _ in range(repeats):
        t = 0.0
        for _ in range(passes):
            for s, sb in f.books.items():
                sb.book = copy.deepcopy(saved[s])
                sb.last_top = None
            f._seq = seq0 - 1
            t0 = time.perf_counter()
            for d in ups:
                f.feed_frame(d, 0)
            t += time.perf_counter() - t0
        if f.counters.get("frame_errors") or f.counters.get("gaps"):
            sys.exit(f"unexpected: {f.counters}")
        print(f"adapter-real: {passes * len(ups) / t:,.0f} update frames/s", file=sys.stderr)


def detector(n: int, repeats: int, nv: int = 5, ns: int = 50) -> None:
    from arbtui.backend.detector import Detector
    from benchmarks.e2e import bench_config

    m = load.Market(nv, ns, seed=5)
    quotes = [load.quote_of(m, mm) for mm in m.stream(n)]
    cfg = bench_config(m.venues)
    for _ in range(repeats):
        now = time.time_ns()
        for q in quotes:
            q.recv_ts_ns = now
        det = Detector(cfg.detector, {v: 1.0 for v in m.venues})
        t = time.perf_counter()
        for q in quotes:
            det.on_quote(q)
        dt = time.perf_counter() - t
        print(f"detector {nv}x{ns}: {dt / len(quotes) * 1e6:.2f} µs/quote", file=sys.stderr)


def detector_opcodes(n: int, repeats: int, nv: int = 5, ns: int = 50) -> None:
    """Bytecodes executed per quote, by function, over one pass of the detector stream:
    a load-independent count (``sys.settrace`` opcode events), the per-function
    breakdown in results/2026-12-06-r3-detector.md. ``repeats`` is ignored."""
    from collections import Counter

    from arbtui.backend.detector import Detector
    from benchmarks.e2e import bench_config

    m = load.Market(nv, ns, seed=5)
    quotes = [load.quote_of(m, mm) for mm in m.stream(n)]
    now = time.time_ns()
    for q in quotes:
        q.recv_ts_ns = now
    det = Detector(bench_config(m.venues).detector, {v: 1.0 for v in m.venues}, clock=lambda: now)
    ops: Counter = Counter()
    calls: Counter = Counter()

    def trace(frame, event, arg):
        if event == "opcode":
            ops[frame.f_code.co_qualname] += 1
        elif event == "call":
            frame.f_trace_opcodes = True
            calls[frame.f_code.co_qualname] += 1
        return trace

    on_quote = det.on_quote
    sys.settrace(trace)
    try:
        for q in quotes:
            on_quote(q)
    finally:
        sys.settrace(None)
    total = sum(ops.values())
    print(f"detector {nv}x{ns}: {total / n:.1f} bytecodes per quote", file=sys.stderr)
    for name, k in ops.most_common(12):
        print(f"{k / n:8.1f} {100 * k / total:5.1f} %  {calls[name]:7d} calls  {name}",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    ap.add_argument("stage", choices=("adapter", "adapter-real", "detector", "detector-opcodes"))
    ap.add_argument("-n", type=int, default=40_000)
    ap.add_argument("--repeats", type=int, default=4)
    a = ap.parse_args(argv)
    {"adapter": adapter, "adapter-real": adapter_real, "detector": detector,
     "detector-opcodes": detector_opcodes}[a.stage](a.n, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
