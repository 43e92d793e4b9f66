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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    ap.add_argument("stage", choices=("adapter", "adapter-real", "detector"))
    ap.add_argument("-n", type=int, default=40_000)
    ap.add_argument("--repeats", type=int, default=4)
    a = ap.parse_args(argv)
    {"adapter": adapter, "adapter-real": adapter_real, "detector": detector}[a.stage](a.n, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
