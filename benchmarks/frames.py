"""Per-frame cost of one venue's adapter, for instruction counts and call profiles.

    valgrind --tool=callgrind --callgrind-out-file=a.out python -m benchmarks.frames REC VENUE --shadows 0
    valgrind --tool=callgrind --callgrind-out-file=b.out python -m benchmarks.frames REC VENUE --shadows 2
    python -m benchmarks.frames REC VENUE --profile     # cProfile of the shadow's feed_frame only
    python -m benchmarks.frames REC VENUE --tight all|nonupd|none [--cryptofeed]

``--tight`` is the tight loop for venues whose books need no REST snapshot: one fresh
adapter (or, with ``--cryptofeed``, cryptofeed's handler for that venue at its defaults,
as ``benchmarks/peer.py`` builds it) is handed the venue's frames in order, no replay
driver: ``all`` every frame, ``nonupd`` all but the book-update frames, ``none`` none.
Under callgrind (``PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1``: OpenBLAS's idle thread
otherwise adds ~1-2 k instructions a frame of noise), (all - nonupd) / updates is the
instructions per update frame, the figure the peer table's headline is about; on a
venue whose non-update frames depend on the updates (Bitfinex's checksums, sequence
numbers) use (all - none) / frames instead.

The recording is replayed exactly as ``benchmarks/peer.py`` replays it (``ReplayEngine``,
virtual clock, recorded REST answers). Each connection of VENUE gets ``--shadows`` extra
adapters, built with the same arguments as the replayed one and served the same recorded
REST bodies, and every frame the replayed adapter gets is handed to them too. Everything
else in the process is the same between ``--shadows 0`` and ``--shadows 2``, so the
difference in instructions (callgrind's ``Ir``, load-independent) divided by 2 and by the
frame count is what one adapter's ``feed_frame`` costs a frame, averaged over the
recording's frames (snapshots included: the count of each kind is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from pathlib import Path


async def _run(path: str, venue: str, shadows: int, profile: cProfile.Profile | None) -> dict:
    from arbtui import config as configmod
    from arbtui.backend.gcpolicy import tune_gc
    from arbtui.backend.replay import ReplayEngine
    from benchmarks.peer import is_update

    cfg = configmod.load(None, use_user=False)
    eng = ReplayEngine(cfg, [path], speed=0, roles=("feed",),
                       journal_path=str(Path(tempfile.gettempdir()) / "arbtui-frames.sqlite"))
    await eng.start()
    restore_gc = tune_gc()
    stats = {"frames": 0, "updates": 0, "quotes": 0}
    drv = eng.driver

    def emit(q, _s=stats):
        _s["quotes"] += 1

    for c in eng.conns:
        feed = c.feed
        if feed is None:
            continue
        feed.emit = lambda q: None
        if c.venue != venue:
            continue
        extra = []
        for _ in range(shadows):
            sh = type(feed)(list(c.symbols), emit, url=c.url, rest_url=feed.rest_url,
                            depth=feed.depth, quote_depth=feed.quote_depth,
                            symbol_map=c.symbol_map, clock=feed.clock)

            async def http_get(url, _f=sh):
                return await drv._http_get(_f, url)

            sh.http_get_impl = http_get
            extra.append(sh)
        orig = feed.feed_frame

        def frame(data, recv_ns, _orig=orig, _extra=tuple(extra)):
            stats["frames"] += 1
            stats["updates"] += is_update(venue, data)
            _orig(data, recv_ns)
            for sh in _extra:
                if profile is not None:
                    profile.enable()
                    sh.feed_frame(data, recv_ns)
                    profile.disable()
                else:
                    sh.feed_frame(data, recv_ns)

        feed.feed_frame = frame
    try:
        ok = await eng.wait_finished(600)
    finally:
        restore_gc()
    await eng.stop()
    if not ok:
        raise TimeoutError(f"replay of {path} did not finish")
    stats["quotes_per_shadow"] = stats["quotes"] // max(1, shadows)
    return stats


def tight(path: str, venue: str, mode: str, cryptofeed: bool) -> dict:
    import gc

    from arbtui.backend.clock import VirtualClock
    from arbtui.backend.feeds import feed_class
    from benchmarks import peer

    src = peer.Source("tight", path)
    frames = [(d, ts, u) for d, ts, u in src.frames[venue]]
    if cryptofeed:
        import logging

        from cryptofeed.symbols import Symbols

        logging.getLogger("feedhandler").setLevel(logging.CRITICAL)
        peer._patch_http(peer._Rest([b for v in src.http.values() for b in v]))
        Symbols.clear()
        _feed, conn, handler, _std = asyncio.run(peer._cf_feed(src, venue, "defaults"))

        def feed_frame(data, ts, _h=handler, _c=conn):
            try:
                _h(data, _c, ts).send(None)
            except StopIteration:
                pass
    else:
        syms = src.symbols[venue]
        clock = VirtualClock(int(frames[0][1] * 1e9))
        f = feed_class(venue)(list(syms), lambda q: None, symbol_map=dict(syms), clock=clock,
                              quote_depth=10)

        def feed_frame(data, ts, _f=f.feed_frame, _c=clock):
            _c.now = ns = int(ts * 1e9)
            _f(data, ns)
    gc.disable()
    st = {"frames": len(frames), "updates": sum(1 for f in frames if f[2])}
    if mode == "none":
        frames = []
    for d, ts, u in frames:
        if u and mode == "nonupd":
            continue
        feed_frame(d, ts)
    return st


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording")
    ap.add_argument("venue")
    ap.add_argument("--shadows", type=int, default=2)
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the shadow adapter's feed_frame calls (one shadow)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--tight", choices=("all", "nonupd", "none"),
                    help="the tight loop (no replay driver, venues without REST snapshots)")
    ap.add_argument("--cryptofeed", action="store_true", help="--tight: cryptofeed's handler")
    a = ap.parse_args()
    if a.tight:
        print(f"{a.venue}: {tight(a.recording, a.venue, a.tight, a.cryptofeed)}", file=sys.stderr)
        return
    prof = cProfile.Profile() if a.profile else None
    shadows = 1 if a.profile else a.shadows
    st = asyncio.run(_run(a.recording, a.venue, shadows, prof))
    print(f"{a.venue}: {st}", file=sys.stderr)
    if prof is not None:
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
