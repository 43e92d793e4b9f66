"""Long enough loops of one hot stage for a sampling profiler.

    py-spy record -r 1000 -o adapter.svg -- python -m benchmarks.profile adapter
    py-spy record -r 1000 -o detector.svg -- python -m benchmarks.profile detector

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
    ap.add_argument("stage", choices=("adapter", "detector"))
    ap.add_argument("-n", type=int, default=40_000)
    ap.add_argument("--repeats", type=int, default=4)
    a = ap.parse_args(argv)
    (adapter if a.stage == "adapter" else detector)(a.n, a.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
