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
"""

from __future__ import annotations

import argparse
import asyncio
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
                  threaded: bool = True) -> dict[str, Any]:
    """One run. With ``ui``, ``threaded`` (the default) is what ``arbtui`` runs: the engine
    on its own thread; ``threaded=False`` puts engine and dashboard on one loop."""
    eng, quotes = make_engine()
    prod = Producer(eng, quotes, rate)
    out: dict[str, Any] = {"keys_ns": []}

    async def drive(pilot: Any = None, app: Any = None) -> None:
        host = app.host if app is not None and app.host is not None else None
        if host is not None:
            # The producer plays the feeds: it runs on the engine's loop, like they do.
            ptask = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(prod.run(), host._loop))
        else:
            ptask = asyncio.get_running_loop().create_task(prod.run())
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
                out["keys_ns"].append(await press_and_time(app, "plus" if i % 2 == 0 else "minus"))
                i += 1
            t_next = time.perf_counter() + 0.5
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

    if ui:
        from arbtui.app import ArbApp

        app = ArbApp(eng, eng.cfg, threaded=threaded)
        displays: list[int] = []
        orig = app._display

        def display(screen: Any, renderable: Any) -> None:
            orig(screen, renderable)
            displays.append(time.perf_counter_ns())

        app._display = display  # type: ignore[method-assign]
        app.bench_displays = displays  # type: ignore[attr-defined]
        async with app.run_test(size=(120, 40)) as pilot:
            await drive(pilot, app)
            await pilot.press("q")
    else:
        await eng.start()
        try:
            await drive()
        finally:
            await eng.stop()
    return out


async def press_and_time(app: Any, key: str) -> int:
    from textual import events

    header = app.dashboard.header_widget
    before = app.engine.detector.cfg.min_net_bps
    want = before + (0.5 if key == "plus" else -0.5)
    label = f"thr {want:+.1f}bps"
    ev = events.Key(key, "+" if key == "plus" else "-")
    ev.set_sender(app)
    t0 = time.perf_counter_ns()
    app._driver.send_message(ev)  # the path a real terminal key takes
    while label not in header.plain:
        await asyncio.sleep(0.0005)
    t_upd = time.perf_counter_ns()
    deadline = t_upd + 2_000_000_000
    while not (app.bench_displays and app.bench_displays[-1] >= t_upd):
        if time.perf_counter_ns() > deadline:
            return -1
        await asyncio.sleep(0.0005)
    return app.bench_displays[-1] - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.ui")
    ap.add_argument("--rate", type=float, default=20_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    res: dict[str, dict[str, list[float]]] = {}
    keys_all: dict[str, list[int]] = {}
    for r in range(a.runs):
        for name, ui, threaded in (("engine", False, False), ("engine+ui/loop", True, False),
                                   ("engine+ui/thread", True, True)):
            o = asyncio.run(measure(ui, a.rate, a.seconds, threaded=threaded))
            p50, p99 = pct(o["detect_ns"], 50, 99)
            d = res.setdefault(name, {"p50": [], "p99": [], "offered": [], "detected": []})
            d["p50"].append(p50)
            d["p99"].append(p99)
            d["offered"].append(o["offered_qps"])
            d["detected"].append(o["detected_qps"])
            keys = [k for k in o["keys_ns"] if k >= 0]
            keys_all.setdefault(name, []).extend(keys)
            print(f"run {r + 1} {name:16s} offered {o['offered_qps']:8.0f}/s  detector evaluated "
                  f"{o['detected_qps']:8.0f}/s  detect p50 {p50:.3f} ms p99 {p99:.3f} ms"
                  + (f"  keys n={len(keys)} p50 {pct(keys, 50)[0]:.1f} ms "
                     f"max {max(keys) / 1e6:.1f} ms" if keys else ""),
                  file=sys.stderr)
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
            print(f"\nkey press -> screen ({name}, n={len(keys)}): p50 {k50:.1f} ms, "
                  f"p90 {k90:.1f} ms, p99 {k99:.1f} ms, max {max(keys) / 1e6:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
