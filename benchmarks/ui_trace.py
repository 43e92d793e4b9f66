"""Stall forensics for ``benchmarks.ui``: what was going on during a slow key press.

Recorded, all on one ``perf_counter_ns`` clock:

- every garbage collection (generation, duration, the thread that triggered it);
- event-loop lag of the UI loop and of the engine loop (a 5 ms sleeper that
  notes how late it woke), and of a plain thread (how long the GIL or the CPU
  was unavailable to a thread that only sleeps);
- per press: wall time, the process's CPU time, and per thread (UI, engine) CPU
  time and run-queue wait from ``/proc/self/task/<tid>/schedstat`` -- a stall
  with little CPU and much run-queue wait is the machine's (CPU starvation), a
  stall with the CPU busy in our threads is ours;
- stacks of the UI and engine threads, sampled every 10 ms while a press has
  been in flight for more than ``SAMPLE_AFTER_MS``.

Only the benchmark imports this; the app knows nothing of it.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
import time
from collections import Counter
from typing import Any

SAMPLE_AFTER_MS = 50
LAG_NOTE_MS = 10


def _schedstat(tid: int | None) -> tuple[int, int]:
    """(cpu ns, run-queue wait ns) of one thread; (0, 0) where unavailable."""
    if tid is None:
        return (0, 0)
    try:
        with open(f"/proc/self/task/{tid}/schedstat") as f:
            a = f.read().split()
        return int(a[0]), int(a[1])
    except (OSError, IndexError, ValueError):
        return (0, 0)


def _short(frame: Any, depth: int = 14) -> tuple[str, ...]:
    out = []
    while frame is not None and len(out) < depth:
        co = frame.f_code
        fn = co.co_filename
        for cut in ("site-packages/", "/work/main/"):
            if cut in fn:
                fn = fn.split(cut, 1)[1]
        out.append(f"{fn}:{frame.f_lineno} {co.co_name}")
        frame = frame.f_back
    return tuple(out)


class Trace:
    def __init__(self) -> None:
        self.t0 = time.perf_counter_ns()
        # (start, wall dur, gen, thread, CPU dur): wall >> CPU = descheduled mid-collection
        self.gcs: list[tuple[int, int, int, str, int]] = []
        self._gc_start: dict[int, tuple[int, int]] = {}
        self.lags: list[tuple[str, int, int]] = []  # (who, woke_at, lag)
        self.samples: list[tuple[int, dict[str, tuple[str, ...]]]] = []
        self.inflight: int | None = None
        self.ui_tid: int | None = threading.get_native_id()
        self.ui_ident = threading.get_ident()
        self.eng_tid: int | None = None
        self.eng_ident: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ gc
    def _gc_cb(self, phase: str, info: dict[str, Any]) -> None:
        me = threading.get_ident()
        if phase == "start":
            self._gc_start[me] = (time.perf_counter_ns(), time.thread_time_ns())
        else:
            st = self._gc_start.pop(me, None)
            if st is not None:
                s, c = st
                name = "ui" if me == self.ui_ident else (
                    "engine" if me == self.eng_ident else threading.current_thread().name)
                self.gcs.append((s, time.perf_counter_ns() - s, info.get("generation", -1), name,
                                 time.thread_time_ns() - c))

    # ------------------------------------------------------------------ lag monitors
    async def loop_lag(self, who: str, stop: asyncio.Event | None = None) -> None:
        if who == "engine":
            self.eng_tid, self.eng_ident = threading.get_native_id(), threading.get_ident()
        step = 5_000_000
        while not self._stop.is_set():
            t = time.perf_counter_ns()
            await asyncio.sleep(step / 1e9)
            now = time.perf_counter_ns()
            lag = now - t - step
            if lag > LAG_NOTE_MS * 1_000_000:
                self.lags.append((who, now, lag))

    def _sampler(self) -> None:
        step = 0.01
        while not self._stop.is_set():
            t = time.perf_counter_ns()
            time.sleep(step)
            now = time.perf_counter_ns()
            lag = now - t - int(step * 1e9)
            if lag > LAG_NOTE_MS * 1_000_000:
                self.lags.append(("thread", now, lag))
            inf = self.inflight
            if inf is not None and now - inf > SAMPLE_AFTER_MS * 1_000_000:
                frames = sys._current_frames()
                snap = {}
                for who, ident in (("ui", self.ui_ident), ("engine", self.eng_ident)):
                    f = frames.get(ident) if ident is not None else None
                    if f is not None:
                        snap[who] = _short(f)
                self.samples.append((now, snap))

    def start(self) -> None:
        gc.callbacks.append(self._gc_cb)
        self._thread = threading.Thread(target=self._sampler, name="trace-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._gc_cb in gc.callbacks:
            gc.callbacks.remove(self._gc_cb)
        if self._thread is not None:
            self._thread.join(1)

    # ------------------------------------------------------------------ presses
    def press_begin(self) -> dict[str, Any]:
        t = time.perf_counter_ns()
        self.inflight = t
        return {"t": t, "cpu": time.process_time_ns(), "ui": _schedstat(self.ui_tid),
                "eng": _schedstat(self.eng_tid), "load": os.getloadavg()[0]}

    def press_end(self, b: dict[str, Any], total_ns: int, phases: dict[str, int]) -> dict[str, Any]:
        self.inflight = None
        t1 = time.perf_counter_ns()
        ui, eng = _schedstat(self.ui_tid), _schedstat(self.eng_tid)
        t0 = b["t"]
        return {
            "at_s": (t0 - self.t0) / 1e9, "ms": total_ns / 1e6, "wall_ms": (t1 - t0) / 1e6,
            "proc_cpu_ms": (time.process_time_ns() - b["cpu"]) / 1e6,
            "ui_cpu_ms": (ui[0] - b["ui"][0]) / 1e6, "ui_wait_ms": (ui[1] - b["ui"][1]) / 1e6,
            "eng_cpu_ms": (eng[0] - b["eng"][0]) / 1e6,
            "eng_wait_ms": (eng[1] - b["eng"][1]) / 1e6,
            "load": b["load"], "phases_ms": {k: (v - t0) / 1e6 for k, v in phases.items()},
            "gc": [(g, d / 1e6, th, c / 1e6) for s, d, g, th, c in self.gcs
                   if s + d >= t0 and s <= t1 and (g > 0 or d > 2_000_000)],
            "lags": [(w, lag / 1e6) for w, at, lag in self.lags if at - lag <= t1 and at >= t0],
            "stacks": self._stack_summary(t0, t1),
        }

    def _stack_summary(self, t0: int, t1: int) -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        for who in ("ui", "engine"):
            c: Counter[str] = Counter()
            for at, snap in self.samples:
                if t0 <= at <= t1 and who in snap:
                    c[" <- ".join(snap[who][:6])] += 1
            out[who] = c.most_common(3)
        return out

    def gc_summary(self) -> dict[str, Any]:
        """generation -> (count, max wall ms, total wall ms, max CPU ms)."""
        by: dict[int, list[tuple[int, int]]] = {}
        for _s, d, g, _th, c in self.gcs:
            by.setdefault(g, []).append((d, c))
        return {g: (len(v), round(max(d for d, _ in v) / 1e6, 1),
                    round(sum(d for d, _ in v) / 1e6, 1), round(max(c for _, c in v) / 1e6, 1))
                for g, v in sorted(by.items())}


def describe(p: dict[str, Any]) -> str:
    """One slow press, in a few lines."""
    ph = ", ".join(f"{k} {v:.1f}" for k, v in p["phases_ms"].items())
    lines = [(f"  {p['ms']:.1f} ms at t={p['at_s']:.1f}s (phases ms: {ph}); process CPU "
             f"{p['proc_cpu_ms']:.0f} ms of {p['wall_ms']:.0f} ms wall; UI thread cpu "
             f"{p['ui_cpu_ms']:.0f} / run-queue wait {p['ui_wait_ms']:.0f} ms; engine cpu "
             f"{p['eng_cpu_ms']:.0f} / wait {p['eng_wait_ms']:.0f} ms; load {p['load']:.2f}")]
    if p["gc"]:
        lines.append("    gc: " + ", ".join(f"gen{g} {d:.1f} ms wall/{c:.1f} CPU ({th})"
                                          for g, d, th, c in p["gc"]))
    if p["lags"]:
        worst: dict[str, float] = {}
        for w, lag in p["lags"]:
            worst[w] = max(worst.get(w, 0.0), lag)
        lines.append("    loop/thread lag max: " + ", ".join(f"{w} {v:.0f} ms"
                                                           for w, v in worst.items()))
    for who, top in p["stacks"].items():
        for n, st in top:
            lines.append(f"    {who} x{n}: {st}")
    return "\n".join(lines)
