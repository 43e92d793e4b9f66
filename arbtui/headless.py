"""``arbtui --no-ui``: the same engine, events as JSON lines on stdout.

stdout carries only the event stream (one JSON object per line): every
opportunity and fill event, and a ``status`` line every
``headless.status_interval_s``. Diagnostics go to stderr / the log file.
SIGINT and SIGTERM stop cleanly: drain, flush, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any, TextIO

import msgspec

from arbtui.backend.engine import Engine, EngineState
from arbtui.backend.gcpolicy import tune_gc
from arbtui.backend.shutdown import stop_event
from arbtui.health import health_facts
from arbtui.model import live_ns

_enc = msgspec.json.Encoder()


def book_ages(st: EngineState, now_ns: int) -> dict[str, dict[str, dict[str, float]]]:
    """venue -> symbol -> the book's two ages in ms (model.AGES_RULE): ``top_age_ms``
    since its levels last changed, ``live_age_ms`` since its feed last proved it good."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for (v, sym), q in st.quotes.items():
        out.setdefault(v, {})[sym] = {"top_age_ms": round((now_ns - q.recv_ts_ns) / 1e6, 1),
                                      "live_age_ms": round((now_ns - live_ns(q)) / 1e6, 1)}
    return out


def status_record(st: EngineState, now_ns: int | None = None) -> dict[str, Any]:
    """The ``status`` line: the health facts the dashboard header shows (arbtui.health),
    per-venue detail with each book's two ages, and the engine's extra sections
    (kafka, executor, detector...). ``now_ns``: the engine's clock (replay time)."""
    ages = book_ages(st, time.time_ns() if now_ns is None else now_ns)
    rec: dict[str, Any] = {
        "type": "status",
        "ts": time.time(),
        **health_facts(st),
        "venues": {
            v: {"state": s.state.value, "reason": s.reason, "msg_rate": round(s.msg_rate, 1),
                "reconnects": s.reconnects, "counters": s.counters, "books": ages.get(v, {})}
            for v, s in st.venues.items()
        },
    }
    # The extra sections never override a shared fact: the values on this line
    # are exactly the ones the header shows.
    for k, v in st.extra.items():
        rec.setdefault(k, v)
    return rec


def event_record(ev: Any) -> dict[str, Any]:
    """One event as a JSON-able dict. An opportunity keeps, of its evaluation's
    levels, the ones its size walk took (``buy_levels``/``sell_levels``: up to its
    buy and sell limits); the rest of the book stays out of the stream."""
    d = msgspec.to_builtins(ev)
    kind = type(ev).__name__.lower()
    asks, bids = d.pop("buy_book", None), d.pop("sell_book", None)
    if asks is not None and bids is not None:
        used = ev.size > 0
        d["buy_levels"] = [lv for lv in asks if used and lv[0] <= ev.buy_limit]
        d["sell_levels"] = [lv for lv in bids if used and lv[0] >= ev.sell_limit]
    return {"type": kind, **d}


class Reporter:
    def __init__(self, engine: Engine, out: TextIO = sys.stdout, status_interval: float = 5.0) -> None:
        self.engine = engine
        self.out = out
        self.status_interval = status_interval
        self.seq = 0

    def write(self, rec: dict[str, Any]) -> None:
        self.out.write(_enc.encode(rec).decode() + "\n")

    def flush_events(self) -> None:
        for seq, ev in self.engine.events_since(self.seq):
            self.write(event_record(ev))
            self.seq = seq
        self.out.flush()

    async def run(self, stop: asyncio.Event) -> None:
        next_status = time.monotonic() + min(self.status_interval, 1.0)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.1)
            except TimeoutError:
                pass
            self.flush_events()
            if time.monotonic() >= next_status:
                self.write(status_record(self.engine.snapshot(), self._now()))
                self.out.flush()
                next_status = time.monotonic() + self.status_interval
        self.flush_events()
        self.write(status_record(self.engine.snapshot(), self._now()))
        self.out.flush()

    def _now(self) -> int:
        """The engine's own clock (a replay's virtual time), for the book ages."""
        det = getattr(self.engine, "detector", None)
        return det.clock() if det is not None else time.time_ns()


async def run_headless(engine: Engine, duration: float | None, status_interval: float) -> int:
    stop = stop_event(duration)
    loop = asyncio.get_running_loop()
    await engine.start()
    # The process's GC policy (arbtui.backend.gcpolicy): what is alive now is the
    # engine's long-lived state, so it leaves the collector's walk.
    restore_gc = tune_gc()
    finished = getattr(engine, "finished", None)  # a replay ends with its recording
    if isinstance(finished, asyncio.Event):
        async def _until_finished() -> None:
            await finished.wait()
            stop.set()

        loop.create_task(_until_finished())
    reporter = Reporter(engine, status_interval=status_interval)
    try:
        await reporter.run(stop)
    finally:
        # A server may hold a connection open forever; a stop that cannot finish
        # in time is logged and abandoned, so SIGTERM always ends the process.
        try:
            await asyncio.wait_for(engine.stop(), 20)
        except TimeoutError:
            logging.getLogger("arbtui").error("engine stop took over 20 s; exiting anyway")
        restore_gc()
    return 0
