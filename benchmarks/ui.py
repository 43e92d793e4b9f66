"""Dashboard under load: key-press-to-screen latency, and detection latency with vs. without UI.

``python -m benchmarks.ui [--rate 20000] [--seconds 8] [--runs 3]``

One process. A paced producer publishes ``--rate`` quotes/s
(the seeded ``load.Market`` stream, 3 venues x 4 symbols) onto the engine's
embedded bus with ``recv_ts_ns`` = the moment of publish. Two variants, same load:

- ``engine``     the engine alone (what ``--no-ui`` runs);
- ``engine+ui/loop``    the same engine under the real dashboard (``ArbApp``, headless
                        driver, 120x40, ``ui.refresh_hz`` = 10) on ONE shared event loop,
                        with a key press (``+``/``-``, threshold +-0.5 bps) every 0.5 s;
- ``engine+ui/thread``  the same, with the engine on its own thread and loop
                        (``EngineThread``), which is what ``arbtui`` runs.

Key-to-effect latency: from handing the key event to the app's driver (the path
a terminal key takes) to the first screen update (``App._display``) after the
header shows the new threshold. Conservative: a display that happened between
the header update and our poll is not counted; the next one is.

``--trace`` (benchmarks/ui_trace.py) says what was going on during each press:
GC pauses (generation, wall and CPU), UI/engine loop lag, and CPU vs run-queue
wait per thread, so a stall the app causes (its threads on CPU) is told apart
from one the shared machine causes (threads waiting to run). It found the
multi-second presses of the 22:11 run: full (generation 2) collections walking
the whole heap with the GIL held -- ~200 k objects, 170-320 ms each, about once a
second under the dashboard; seconds when the suite's stream caches (millions of
objects, benchmarks/e2e.py) were alive. The app now runs under
``arbtui.backend.gcpolicy``; ``--no-gc-tuning`` measures without it.

The dashboard runs with the app's GC policy (``gc_tuning``), as ``arbtui`` does.
Every run freezes what is alive at its start (the producer's ready quotes and
anything an earlier benchmark left behind) out of the collector, so no variant
pays for the harness's objects.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from typing import Any

from arbtui import config as configmod
from arbtui.backend.bus import QUOTES
from arbtui.backend.engine import Engine
from benchmarks import load
from benchmarks.stats import fmt, machine, pct, spread

N_VENUES, N_SYMBOLS = 3, 4


def make_engine() -> tuple[Engine, list[Any]]:
    cfg = configmod.load(use_user=False)
    m = load.Market(N_VENUES, N_SYMBOLS, seed=7)
    cfg.sim.symbols = list(m.symbols)
    quotes = [load.quote_of(m, msg) for msg in m.stream(20_000)]
    eng = Engine(cfg, mode="demo", roles=("detect",))
    return eng, quotes


class Producer:
    """Open-loop pacing: every 2 ms, publish what the schedule says is due."""

    def __init__(self, eng: Engine, quotes: list[Any], rate: float) -> None:
        self.eng, self.quotes, self.rate = eng, quotes, rate
        self.sent = 0
        self.stop = False

    async def run(self) -> None:
        bus = self.eng.bus
        qs = self.quotes
        n = len(qs)
        t0 = time.perf_counter()
        while not self.stop:
            due = int(self.rate * (time.perf_counter() - t0)) - self.sent
            now = time.time_ns()
            for i in range(self.sent, self.sent + due):
                q = qs[i % n]
                q.recv_ts_ns = now
                bus.publish(QUOTES, q.symbol, q)
            self.sent += max(0, due)
            await asyncio.sleep(0.002)


class Collector:
    """Copies the engine's detection-latency samples out of its bounded window."""

    def __init__(self, eng: Engine) -> None:
        self.lat = eng.detect_latency
        self.seen = self.lat.count
        self.samples: list[int] = []

    def take(self) -> None:
        new = self.lat.count - self.seen
        self.seen = self.lat.count
        if new > 0:
            s = self.lat.samples
            self.samples.extend(list(s)[-min(new, len(s)):])


async def measure(ui: bool, rate: float, seconds: float, warmup: float = 2.0,
                  threaded: bool = True, trace: bool = False,
                  interval: float = 0.5, gc_tuning: bool = True) -> dict[str, Any]:
    """One run. With ``ui``, ``threaded`` (the default) is what ``arbtui`` runs: the engine
    on its own thread; ``threaded=False`` puts engine and dashboard on one loop.
    ``trace`` adds stall forensics (``benchmarks.ui_trace``) to every press.
    ``gc_tuning`` is the app's (``arbtui.backend.gcpolicy``, what ``arbtui`` runs); off = the
    interpreter's defaults, for before/after comparisons."""
    eng, quotes = make_engine()
    # The producer's 20 000 ready quotes (three GC-tracked objects each) are the load
    # generator's, not the product's: a real feed's quotes live milliseconds. Left in
    # the collector's oldest generation they would add ~60 k objects to every full
    # collection the dashboard's allocations trigger, so they are frozen out of it.
    gc.collect()
    gc.freeze()
    prod = Producer(eng, quotes, rate)
    out: dict[str, Any] = {"keys_ns": [], "presses": []}
    tr = None
    if trace:
        from benchmarks.ui_trace import Trace

        tr = Trace()
        tr.start()

    async def drive(pilot: Any = None, app: Any = None) -> None:
        host = app.host if app is not None and app.host is not None else None
        if host is not None:
            # The producer plays the feeds: it runs on the engine's loop, like they do.
            ptask = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(prod.run(), host._loop))
        else:
            ptask = asyncio.get_running_loop().create_task(prod.run())
        if tr is not None:
            asyncio.get_running_loop().create_task(tr.loop_lag("ui" if app else "engine"))
            if host is not None:
                asyncio.run_coroutine_threadsafe(tr.loop_lag("engine"), host._loop)
        await asyncio.sleep(warmup)
        col = Collector(eng)
        # The latency window is the engine's: read it on the engine's thread.
        take = (lambda: host.call(col.take)) if host is not None else col.take
        sent0, t0 = prod.sent, time.perf_counter()
        processed0 = eng.detector.evaluated
        end = t0 + seconds
        i = 0
        while time.perf_counter() < end:
            if app is not None:
                k, info = await press_and_time(app, "plus" if i % 2 == 0 else "minus", tr)
                out["keys_ns"].append(k)
                if info is not None:
                    out["presses"].append(info)
                i += 1
            t_next = time.perf_counter() + interval
            while time.perf_counter() < t_next:
                take()
                await asyncio.sleep(0.05)
        take()
        dt = time.perf_counter() - t0
        out["offered_qps"] = (prod.sent - sent0) / dt
        out["detected_qps"] = (eng.detector.evaluated - processed0) / dt
        out["detect_ns"] = col.samples
        prod.stop = True
        await ptask
        if tr is not None:
            tr.stop()
            out["gc"] = tr.gc_summary()
            out["lags"] = [(w, (at - tr.t0) / 1e9, lag / 1e6) for w, at, lag in tr.lags]

    if ui:
        from arbtui.ui.app import ArbApp

        # (passed only when on, so the harness also drives a pre-gc_tuning app for A/B)
        app = ArbApp(eng, eng.cfg, threaded=threaded, **({"gc_tuning": True} if gc_tuning else {}))
        displays: list[int] = []
        orig = app._display

        def display(screen: Any, renderable: Any) -> None:
            orig(screen, renderable)
            displays.append(time.perf_counter_ns())

        app._display = display  # type: ignore[method-assign]
        app.bench_displays = displays  # type: ignore[attr-defined]
        phases: dict[str, int] = {}
        app.bench_phases = phases  # type: ignore[attr-defined]
        dash = app.dashboard
        orig_thr, orig_sample = dash.action_threshold, dash.sample

        def action_threshold(delta: float) -> None:
            phases["action"] = time.perf_counter_ns()
            orig_thr(delta)
            phases["action_done"] = time.perf_counter_ns()

        def sample(force: bool = False) -> None:
            if force:
                phases["sample"] = time.perf_counter_ns()
            orig_sample(force)

        dash.action_threshold = action_threshold  # type: ignore[method-assign]
        dash.sample = sample  # type: ignore[method-assign]
        async with app.run_test(size=(120, 40)) as pilot:
            await drive(pilot, app)
            await pilot.press("q")
    else:
        await eng.start()
        try:
            await drive()
        finally:
            await eng.stop()
    gc.unfreeze()
    return out


async def press_and_time(app: Any, key: str, tr: Any = None) -> tuple[int, Any]:
    from textual import events

    header = app.dashboard.header_widget
    before = app.engine.detector.cfg.min_net_bps
    want = before + (0.5 if key == "plus" else -0.5)
    label = f"thr {want:+.1f}bps"
    ev = events.Key(key, "+" if key == "plus" else "-")
    ev.set_sender(app)
    phases = app.bench_phases
    phases.clear()
    b = tr.press_begin() if tr is not None else None
    t0 = time.perf_counter_ns()
    app._driver.send_message(ev)  # the path a real terminal key takes
    while label not in header.plain:
        await asyncio.sleep(0.0005)
    t_upd = phases["header"] = time.perf_counter_ns()
    deadline = t_upd + 2_000_000_000
    res = -1
    while True:
        if app.bench_displays and app.bench_displays[-1] >= t_upd:
            res = app.bench_displays[-1] - t0
            phases["display"] = app.bench_displays[-1]
            break
        if time.perf_counter_ns() > deadline:
            break
        await asyncio.sleep(0.0005)
    info = tr.press_end(b, res, dict(phases)) if tr is not None else None
    return res, info


VARIANTS = {"engine": (False, False), "loop": (True, False), "thread": (True, True)}
NAMES = {"engine": "engine", "loop": "engine+ui/loop", "thread": "engine+ui/thread"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ui")
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--variants", default="engine,loop,thread",
                    help="comma list of engine (no UI), loop (UI+engine on one loop), "
                         "thread (engine on its own thread: what arbtui runs)")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between key presses")
    ap.add_argument("--trace", action="store_true",
                    help="stall forensics per press: GC, loop lag, CPU vs run-queue wait, "
                         "stacks of slow presses (benchmarks/ui_trace.py)")
    ap.add_argument("--slowest", type=int, default=5, help="slowest presses to describe")
    ap.add_argument("--json", help="write every press (and per-run detection p50/p99) here")
    ap.add_argument("--no-gc-tuning", dest="gc_tuning", action="store_false",
                    help="run the dashboard with the interpreter's GC defaults (before/after)")
    a = ap.parse_args(argv)
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    res: dict[str, dict[str, list[float]]] = {}
    keys_all: dict[str, list[int]] = {}
    lost: dict[str, int] = {}
    presses: dict[str, list[dict[str, Any]]] = {}
    for r in range(a.runs):
        for v in variants:
            ui, threaded = VARIANTS[v]
            name = NAMES[v]
            o = asyncio.run(measure(ui, a.rate, a.seconds, threaded=threaded, trace=a.trace,
                                    interval=a.interval, gc_tuning=a.gc_tuning))
            p50, p99 = pct(o["detect_ns"], 50, 99)
            d = res.setdefault(name, {"p50": [], "p99": [], "offered": [], "detected": []})
            d["p50"].append(p50)
            d["p99"].append(p99)
            d["offered"].append(o["offered_qps"])
            d["detected"].append(o["detected_qps"])
            keys = [k for k in o["keys_ns"] if k >= 0]
            lost[name] = lost.get(name, 0) + len(o["keys_ns"]) - len(keys)
            keys_all.setdefault(name, []).extend(keys)
            for pr in o["presses"]:
                pr["run"] = r + 1
            presses.setdefault(name, []).extend(o["presses"])
            extra = ""
            if a.trace and ui:
                worst = {}
                for w, _at, lag in o.get("lags", []):
                    worst[w] = max(worst.get(w, 0.0), lag)
                extra = (f"  gc(gen: n, max wall ms, total, max CPU ms) {o.get('gc')}  lag max ms "
                         + ", ".join(f"{w} {x:.0f}" for w, x in worst.items()))
            print(f"run {r + 1} {name:16s} offered {o['offered_qps']:8.0f}/s  detector evaluated "
                  f"{o['detected_qps']:8.0f}/s  detect p50 {p50:.3f} ms p99 {p99:.3f} ms"
                  + (f"  keys n={len(keys)} p50 {pct(keys, 50)[0]:.1f} ms "
                     f"max {max(keys) / 1e6:.1f} ms" if keys else "") + extra,
                  file=sys.stderr, flush=True)
    if a.json:
        import json

        with open(a.json, "w") as f:
            json.dump({"variants": res, "keys_ns": keys_all, "presses": presses}, f, default=str)
    m = machine()
    print(f"\n{m['date_utc']} UTC · {m['cpu']} · {m['cores']} cores · Python {m['python']} · "
          f"load {m['loadavg']} · commit {m['commit']}")
    print(f"offered {a.rate:.0f} quotes/s, {N_VENUES} venues x {N_SYMBOLS} symbols, "
          f"{a.seconds:.0f} s per run after 2 s warm-up, {a.runs} runs (median [min–max])\n")
    print("| variant | detector evaluated/s | detect p50 | detect p99 |")
    print("|---|---|---|---|")
    for name, d in res.items():
        print(f"| {name} | {fmt(spread(d['detected']), '', 5)} | {fmt(spread(d['p50']), ' ms')} | "
              f"{fmt(spread(d['p99']), ' ms')} |")
    for name, keys in keys_all.items():
        if keys:
            k50, k90, k99 = pct(keys, 50, 90, 99)
            over = sum(1 for k in keys if k > 100_000_000)
            print(f"\nkey press -> screen ({name}, n={len(keys)}): p50 {k50:.1f} ms, "
                  f"p90 {k90:.1f} ms, p99 {k99:.1f} ms, max {max(keys) / 1e6:.1f} ms; "
                  f"{over} over 100 ms" + (f"; {lost[name]} never reached the screen"
                                           if lost.get(name) else ""))
            slow = sorted(presses.get(name, []), key=lambda p: -p["ms"])[:a.slowest]
            if slow:
                from benchmarks.ui_trace import describe

                print(f"slowest {len(slow)} ({name}):")
                for p in slow:
                    print(f"  run {p['run']}" + describe(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
