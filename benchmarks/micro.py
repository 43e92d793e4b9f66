"""Single-core micro benchmarks: adapter parse + book, detector cost, book memory.

Parse + book: the real adapters (``feed_class(venue)``) are driven exactly as
``arbtui replay`` drives them (``ReplayEngine``: REST snapshots from the
recording, same connection split), and only the time spent inside
``feed.feed_frame`` is counted, so the figure is the adapter's own cost per
message (JSON decode, sequence/checksum rules, float-keyed book, quote
build), on one core.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from benchmarks import load

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"


def recordings() -> list[Path]:
    d = Path(os.environ.get("ARBTUI_RECORDINGS", str(RECORDINGS)))
    return sorted(d.glob("*.jsonl.zst")) if d.is_dir() else []


def _is_l2_update(venue: str, data) -> bool | None:
    """Book-update frames, for the per-venue "update messages/s" figure."""
    if not isinstance(data, str):
        return None
    if venue == "coinbase":
        return '"l2_data"' in data and '"type":"update"' in data
    if venue == "binance":
        return "depthUpdate" in data
    if venue == "okx":
        return '"books' in data and '"action":"update"' in data
    if venue == "kraken":
        return '"channel":"book"' in data and '"type":"update"' in data
    if venue == "bybit":
        return '"orderbook' in data and '"type":"delta"' in data
    if venue == "gemini":
        return '"l2_updates"' in data
    return None


async def _replay_timed(path: str) -> dict[str, dict]:
    """Replay one recording at max speed; time feed_frame per venue."""
    from arbtui import config as configmod
    from arbtui.backend.replay import ReplayEngine

    cfg = configmod.load(None, use_user=False)
    eng = ReplayEngine(cfg, [path], speed=0, roles=("feed",))
    await eng.start()
    acc: dict[str, dict] = {}
    perf = time.perf_counter_ns
    for c in eng.conns:
        if c.feed is None:
            continue
        feed = c.feed
        venue = c.venue or "?"
        a = acc.setdefault(venue, {"frames": 0, "ns": 0, "upd_frames": 0, "upd_ns": 0,
                                   "bytes": 0, "errors": 0, "quotes": 0})
        orig = feed.feed_frame

        def timed(data, recv_ns, _orig=orig, _a=a, _v=venue):
            t = perf()
            _orig(data, recv_ns)
            dt = perf() - t
            _a["frames"] += 1
            _a["ns"] += dt
            _a["bytes"] += len(data)
            if _is_l2_update(_v, data):
                _a["upd_frames"] += 1
                _a["upd_ns"] += dt

        feed.feed_frame = timed
    ok = await eng.wait_finished(120)
    for c in eng.conns:
        if c.feed is not None:
            a = acc[c.venue or "?"]
            a["errors"] += c.feed.counters.get("frame_errors", 0)
            a["resyncs"] = a.get("resyncs", 0) + c.feed.counters.get("resyncs", 0)
    for a in acc.values():
        a["quotes"] = eng.quotes_out
    await eng.stop()
    if not ok:
        raise TimeoutError(f"replay of {path} did not finish")
    return acc


SIM_TICK_MS = 10.0


def record_sim(venues: list[str], seconds: float, out_dir: str,
               symbols: str = "BTC-USD,ETH-USD") -> str:
    """Record the built-in simulator with ``arbtui record --demo`` (the live adapters).

    The simulator steps every 10 ms here (100 book messages/s per venue and
    symbol) so a few seconds give enough frames to time.
    """
    out = str(Path(out_dir) / "sim.jsonl.zst")
    conf = Path(out_dir) / "sim.toml"
    conf.write_text(f"[sim]\ntick_ms = {SIM_TICK_MS}\n")
    cmd = [sys.executable, "-m", "arbtui", "record", "--demo", "--config", str(conf),
           "--venues", ",".join(venues), "--symbols", symbols,
           "--duration", str(seconds), "--out", out]
    last: Exception | None = None
    for _ in range(2):
        try:
            # A recorder that does not exit after --duration is killed (seen once:
            # ignored SIGTERM during shutdown); one retry.
            subprocess.run(cmd, check=True, capture_output=True, timeout=seconds + 20)
            return out
        except subprocess.SubprocessError as e:
            last = e
    raise RuntimeError(f"arbtui record --demo failed twice: {last}")


def parse_recordings(repeats: int, sim_seconds: float, only_real: bool = False) -> list[dict]:
    """Per (source, venue): messages/s per core (all frames, and book-update frames)."""
    sources: list[tuple[str, str]] = [(p.name, str(p)) for p in recordings()]
    tmp = None
    if not only_real:
        from arbtui.backend.sim.server import venue_classes

        tmp = tempfile.mkdtemp(prefix="arbtui-bench-")
        try:
            sims = sorted(venue_classes())
            sources.append((f"simulator ({sim_seconds:g} s, arbtui record --demo)",
                            record_sim(sims, sim_seconds, tmp)))
        except (RuntimeError, OSError) as e:
            print(f"  (simulator recording failed: {e})", file=sys.stderr)
    rows: list[dict] = []
    try:
        for name, path in sources:
            runs: list[dict[str, dict]] = []
            for _ in range(repeats):
                runs.append(asyncio.run(_replay_timed(path)))
            for venue in sorted(runs[0]):
                per = [r[venue] for r in runs if venue in r]
                rows.append({
                    "source": name, "venue": venue, "frames": per[0]["frames"],
                    "bytes": per[0]["bytes"], "errors": per[0]["errors"],
                    "resyncs": per[0].get("resyncs", 0),
                    "msgs_per_s": [p["frames"] / (p["ns"] / 1e9) for p in per if p["ns"]],
                    "upd_frames": per[0]["upd_frames"],
                    "upd_per_s": [p["upd_frames"] / (p["upd_ns"] / 1e9) for p in per
                                  if p["upd_ns"]],
                    "us_per_msg": [p["ns"] / p["frames"] / 1e3 for p in per if p["frames"]],
                })
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return rows


def parse_synthetic_coinbase(n: int, repeats: int) -> dict:
    """Coinbase level2 update frames of the benchmark market (mostly one level each)."""
    from arbtui.backend.feeds import feed_class

    m = load.Market(1, 2, seed=11)
    snaps = load.coinbase_snapshot_frames(m, 0, 1)
    msgs = m.stream(n)
    frames = [load.coinbase_frame(m, mm, 1 + len(snaps) + i) for i, mm in enumerate(msgs)]
    cls = feed_class("coinbase")
    rates = []
    quotes = 0
    for _ in range(repeats):
        got = [0]

        def emit(q, _g=got):
            _g[0] += 1

        f = cls(list(m.symbols), emit, depth=1000, quote_depth=load.QUOTE_DEPTH,
                symbol_map={s: s for s in m.symbols})
        now = time.time_ns()
        f.feed_frame('{"channel":"subscriptions","client_id":"","timestamp":'
                     '"2026-11-25T20:00:00Z","sequence_num":0,"events":[]}', now)
        for fr in snaps:
            f.feed_frame(fr, now)
        gc.collect()
        ff = f.feed_frame
        t = time.perf_counter_ns()
        for fr in frames:
            ff(fr, now)
        dt = time.perf_counter_ns() - t
        rates.append(n / (dt / 1e9))
        quotes = got[0]
        errs = f.counters.get("frame_errors", 0) + f.counters.get("resyncs", 0)
        if errs:
            raise RuntimeError(f"synthetic coinbase stream rejected: {f.counters}")
    upd = sum(len(mm.updates) for mm in msgs) / n
    return {"frames": n, "levels_per_frame": upd, "quotes": quotes, "msgs_per_s": rates}


# ---------------------------------------------------------------------- detector


def detector_cost(nv: int, ns: int, n: int, repeats: int) -> dict:
    """arbtui ``Detector.on_quote`` vs the baseline's per-message scan, same quotes."""
    from arbtui.backend.detector import Detector
    from benchmarks.baseline.consumer import SpreadDetector
    from benchmarks.e2e import bench_config

    m = load.Market(nv, ns, seed=5)
    msgs = m.stream(n)
    quotes = [load.quote_of(m, mm) for mm in msgs]
    ticks = [json.dumps({"exchange": m.venues[mm.venue], "symbol": m.symbols[mm.symbol],
                         "price": float(mm.trade_px), "quantity": 1.0, "timestamp": 0,
                         "local_ts": 0.0}).encode() for mm in msgs]
    cfg = bench_config(m.venues)
    fees = {v: 1.0 for v in m.venues}
    arb_ns, base_ns, events, base_found = [], [], 0, 0
    for _ in range(repeats):
        now = time.time_ns()
        for q in quotes:
            q.recv_ts_ns = now
        det = Detector(cfg.detector, fees)
        events = 0
        on_quote = det.on_quote
        gc.collect()
        # This thread's CPU time: the figure holds on a machine shared with other work
        # (two clock reads around the whole loop, so the clock's own cost is nil).
        t = time.thread_time_ns()
        for q in quotes:
            events += len(on_quote(q))
        arb_ns.append((time.thread_time_ns() - t) / n)
        bd = SpreadDetector()
        onm = bd.on_message
        t = time.thread_time_ns()
        for v in ticks:
            onm(v)
        base_ns.append((time.thread_time_ns() - t) / n)
        base_found = bd.opportunities
    return {"venues": nv, "symbols": ns, "quotes": n, "arbtui_us": [x / 1e3 for x in arb_ns],
            "baseline_us": [x / 1e3 for x in base_ns], "arbtui_events": events,
            "baseline_reports": base_found}


def detector_catch_cost(nv: int, ns: int, n: int, repeats: int, jitter_ms: float = 0.0) -> dict:
    """``Detector.on_quote`` µs/quote with the catch model (backend/catch.py: p_catch at
    each open/update, each open window's books watched per quote) and without, the same
    quotes, runs interleaved; thread CPU time (the machine is shared)."""
    from arbtui.backend.catch import model_for
    from arbtui.backend.detector import Detector
    from arbtui.config import ExecutionConfig
    from benchmarks.e2e import bench_config

    m = load.Market(nv, ns, seed=5)
    quotes = [load.quote_of(m, mm) for mm in m.stream(n)]
    cfg = bench_config(m.venues)
    fees = {v: 1.0 for v in m.venues}
    res: dict[str, list[float]] = {"off": [], "on": []}
    events = {"off": 0, "on": 0}
    for _ in range(repeats):
        for mode in ("off", "on"):
            now = time.time_ns()
            for i, q in enumerate(quotes):
                q.recv_ts_ns = now + i * 100_000  # 0.1 ms apart: windows age, watches retire
            clock = [now]  # the detector's clock follows the quotes, as in a replay
            det = Detector(cfg.detector, fees, clock=lambda c=clock: c[0])
            # through the operator's switch, [detector] catch
            cfg.detector.catch = mode == "on"
            cfg.execution = ExecutionConfig(jitter_ms=jitter_ms)
            det.catch = model_for(cfg)
            on_quote = det.on_quote
            k = 0
            gc.collect()
            t = time.thread_time_ns()
            for q in quotes:
                clock[0] = q.recv_ts_ns
                k += len(on_quote(q))
            res[mode].append((time.thread_time_ns() - t) / n / 1e3)
            events[mode] = k
    return {"venues": nv, "symbols": ns, "quotes": n, "jitter_ms": jitter_ms,
            "off_us": res["off"], "on_us": res["on"], "events": events,
            "opened": det.counters["opened"]}


def detector_floor(nv: int = 5, ns: int = 50, n: int = 50_000, repeats: int = 5) -> dict:
    """What the detector's work costs at its barest in this CPython, on the benchmark's
    stream (``detector_cost``): µs per quote, CPU time of this thread, min of ``repeats``.

    - ``loop``: the bare ``for q in quotes`` loop;
    - ``store``: store the quote in a dict by (venue, symbol) (what keeping the latest
      quote per book costs at least);
    - ``screen``: store it, then one dict lookup and one float compare per other venue
      of its symbol (the cheapest pair screen: "can this quote cross that book?");
    - ``walks``: exactly the ``edge.walk`` calls the detector makes on this stream,
      replayed alone (the depth walks the threshold rule needs; every one is needed:
      each feeds an event or an open window's numbers and peaks);
    - ``detector``: ``Detector.on_quote`` itself, for comparison.
    """
    from arbtui.backend import detector as detmod
    from arbtui.backend import detector_windows
    from benchmarks.e2e import bench_config

    m = load.Market(nv, ns, seed=5)
    quotes = [load.quote_of(m, mm) for mm in m.stream(n)]
    cfg = bench_config(m.venues)
    fees = {v: 1.0 for v in m.venues}
    now = time.time_ns()
    for q in quotes:
        q.recv_ts_ns = now
    calls: list = []
    walk = detector_windows.walk

    def recording_walk(*a, **k):
        calls.append((a, k))
        return walk(*a, **k)

    detector_windows.walk = recording_walk
    try:
        det = detmod.Detector(cfg.detector, fees, clock=lambda: now)
        for q in quotes:
            det.on_quote(q)
    finally:
        detector_windows.walk = walk
    others = {v: [o for o in m.venues if o != v] for v in m.venues}

    def bare() -> None:
        for _q in quotes:
            pass

    def store() -> None:
        books: dict = {}
        for q in quotes:
            books[(q.venue, q.symbol)] = q

    def screen() -> None:
        books: dict = {}
        bids: dict = {}
        for q in quotes:
            books[(q.venue, q.symbol)] = q
            by_venue = bids.get(q.symbol)
            if by_venue is None:
                by_venue = bids[q.symbol] = {}
            by_venue[q.venue] = q.bid
            ask = q.ask
            for o in others[q.venue]:
                b = by_venue.get(o)
                if b is not None and b > ask:
                    pass

    def walks() -> None:
        for a, k in calls:
            walk(*a, **k)

    def detector() -> None:
        on_quote = detmod.Detector(cfg.detector, fees, clock=lambda: now).on_quote
        for q in quotes:
            on_quote(q)

    out: dict = {"venues": nv, "symbols": ns, "quotes": n, "n_walks": len(calls)}
    for name, f in (("loop", bare), ("store", store), ("screen", screen), ("walks", walks),
                    ("detector", detector)):
        best = math.inf
        for _ in range(repeats):
            gc.collect()
            t = time.thread_time_ns()
            f()
            best = min(best, (time.thread_time_ns() - t) / n / 1e3)
        out[name] = best
    return out


# ---------------------------------------------------------------------- book memory


def book_memory(depth: int = 1000) -> dict:
    """Bytes held by one Book with ``depth`` levels per side (tracemalloc)."""
    from arbtui.backend.book import Book

    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    b = Book(depth)
    mid = 65000.00
    for i in range(depth):
        b.set(True, f"{mid - 0.01 * (i + 1):.2f}", f"{0.1 + i * 1e-4:.8f}")
        b.set(False, f"{mid + 0.01 * (i + 1):.2f}", f"{0.1 + i * 1e-4:.8f}")
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(s.size_diff for s in snap.compare_to(base, "filename"))
    assert len(b) == 2 * depth
    return {"depth": depth, "levels": len(b), "bytes": size, "bytes_per_level": size / len(b)}


if __name__ == "__main__":
    # python -m benchmarks.micro catch [REPEATS]: detector µs/quote with p_catch on and off
    import statistics

    if sys.argv[1:2] == ["floor"]:
        # python -m benchmarks.micro floor [REPEATS]: the detector's floor on this machine
        r = detector_floor(repeats=int(sys.argv[2]) if len(sys.argv) > 2 else 5)
        print(f"{r['venues']}x{r['symbols']}, {r['quotes']} quotes, {r['n_walks']} walks; "
              "µs per quote (CPU, min): " + ", ".join(
                  f"{k} {r[k]:.3f}" for k in ("loop", "store", "screen", "walks", "detector")))
    if sys.argv[1:2] == ["catch"]:
        reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
        for nv, ns, j in ((5, 50, 0.0), (2, 2, 0.0), (5, 50, 20.0)):
            r = detector_catch_cost(nv, ns, 20_000, reps, jitter_ms=j)
            off, on = statistics.median(r["off_us"]), statistics.median(r["on_us"])
            print(f"{nv}x{ns} jitter {j:g} ms: off {off:.2f} µs/quote (min {min(r['off_us']):.2f})"
                  f", on {on:.2f} (min {min(r['on_us']):.2f}); {r['opened']} windows in "
                  f"{r['quotes']} quotes: +{(on - off) * r['quotes'] / r['opened']:.0f} µs/window")
