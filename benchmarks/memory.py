"""RSS over time with the embedded engine at a steady offered load.

Frames are generated on the fly (``load.Market``), never stored, so the only
thing that can grow is arbtui's own state (books, detector, rings, queues).
"""

from __future__ import annotations

import asyncio
import gc
import os
import re
import time

from benchmarks import load

CYCLE = 30_000


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def rss_run(rate: float, seconds: float, nv: int = 5, ns: int = 50,
                  sample_s: float = 1.0, cycle: int = CYCLE) -> dict:
    from arbtui.backend.bus.embedded import EmbeddedBus
    from arbtui.backend.engine import Engine
    from benchmarks.e2e import FeedSide, bench_config

    mode = "frames"  # the full path: venue frames through the Coinbase adapter
    m = load.Market(nv, ns, seed=3)
    snaps = {vi: load.coinbase_snapshot_frames(m, vi, 1) for vi in range(nv)}
    # A fixed cycle of messages, replayed with fresh sequence numbers; every cycle
    # starts with each product's snapshot again (a snapshot replaces the book), so
    # the books stay consistent and the generator costs nothing at run time.
    frames = []
    for i in range(cycle):  # rendered one by one: only the frames are kept
        mm = m.next(i % nv, m.rng.randrange(ns))
        a, b = load.coinbase_frame(m, mm, 0).split('"sequence_num":0', 1)
        frames.append((mm.venue, a + '"sequence_num":', b))
    snap_parts = {vi: [tuple(re.sub(r'"sequence_num":\d+', '"sequence_num":', fr, count=1)
                             .split('"sequence_num":', 1)) for fr in frs]
                  for vi, frs in snaps.items()}
    for parts in snap_parts.values():
        for i, (x, y) in enumerate(parts):
            parts[i] = (x + '"sequence_num":', y)
    cfg = bench_config(m.venues)
    eng = Engine(cfg, mode="live", bus=EmbeddedBus(cfg.bus.queue_size), roles=("detect",))
    await eng.start()
    side = FeedSide(m, eng._on_quote, mode, on_state=eng._on_book_state)
    side.sync(snaps)
    seqs = side.seq
    feeds = side.feeds
    gc.collect()
    gc.freeze()  # the cycle is the harness's, not arbtui's
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    next_sample = t0
    period = 1.0 / rate
    sent = 0
    resnaps = 0
    try:
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - t0, rss_mb()))
                next_sample += sample_s
            if now - t0 >= seconds:
                break
            due = int((now - t0) / period)
            while sent < due:
                k = sent % cycle
                if k == 0 and sent:
                    resnaps += 1
                    for vi, f in enumerate(feeds):
                        for sa, sb in snap_parts[vi]:
                            s = seqs[vi]
                            seqs[vi] = s + 1
                            f.feed_frame(f"{sa}{s}{sb}", time.time_ns())
                vi, a, b = frames[k]
                s = seqs[vi]
                seqs[vi] = s + 1
                feeds[vi].feed_frame(f"{a}{s}{b}", time.time_ns())
                sent += 1
                if sent % 32 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(0.001)
    finally:
        gc.unfreeze()
        await eng.stop()
    errors = sum(f.counters.get("frame_errors", 0) + f.counters.get("resyncs", 0)
                 for f in feeds)
    warm = [r for t, r in samples if t >= min(10.0, seconds / 3)]
    first, last = (warm[0], warm[-1]) if warm else (float("nan"), float("nan"))
    span_min = max(1e-9, (samples[-1][0] - samples[0][0]) / 60) if samples else 1
    return {
        "rate": rate, "seconds": seconds, "venues": nv, "symbols": ns, "sent": sent,
        "achieved_rate": sent / max(1e-9, time.monotonic() - t0), "mode": mode,
        "cycle": cycle, "snapshot_rounds": resnaps, "adapter_errors": errors,
        "rss_start_mb": samples[0][1] if samples else float("nan"),
        "rss_after_warmup_mb": first, "rss_end_mb": last,
        "rss_max_mb": max(r for _, r in samples) if samples else float("nan"),
        "growth_after_warmup_mb": last - first,
        "growth_mb_per_min": (last - first) / span_min,
        "samples": samples,
    }


def _child(conn, rate: float, seconds: float, cycle: int) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    try:
        conn.send(asyncio.run(rss_run(rate, seconds, cycle=cycle)))
    except Exception as e:  # noqa: BLE001 - reported by the parent
        conn.send({"error": f"{type(e).__name__}: {e}"})


def rss_in_subprocess(rate: float, seconds: float, cycle: int = CYCLE) -> dict:
    """A fresh interpreter, so the RSS is arbtui's alone (not the suite's caches)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_child, args=(child, rate, seconds, cycle), daemon=True)
    p.start()
    child.close()
    try:
        if not parent.poll(seconds + 120):
            raise TimeoutError("memory run did not report")
        out = parent.recv()
    finally:
        p.join(10)
        if p.is_alive():
            p.kill()
    if "error" in out:
        raise RuntimeError(out["error"])
    return out
