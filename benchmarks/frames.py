"""Per-frame cost of one venue's adapter, for instruction counts and call profiles.

    valgrind --tool=callgrind --callgrind-out-file=a.out python -m benchmarks.frames REC VENUE --shadows 0
    valgrind --tool=callgrind --callgrind-out-file=b.out python -m benchmarks.frames REC VENUE --shadows 2
    python -m benchmarks.frames REC VENUE --profile     # cProfile of the shadow's feed_frame only

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording")
    ap.add_argument("venue")
    ap.add_argument("--shadows", type=int, default=2)
    ap.add_argument("--profile", action="store_true",
                    help="cProfile the shadow adapter's feed_frame calls (one shadow)")
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    prof = cProfile.Profile() if a.profile else None
    shadows = 1 if a.profile else a.shadows
    st = asyncio.run(_run(a.recording, a.venue, shadows, prof))
    print(f"{a.venue}: {st}", file=sys.stderr)
    if prof is not None:
        pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(a.top)


if __name__ == "__main__":
    main()
