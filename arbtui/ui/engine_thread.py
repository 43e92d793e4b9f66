"""Run the engine on its own thread and event loop, for the dashboard.

On one shared loop every dashboard frame (Textual composes and styles the
changed lines, tens of ms under load) delays the detector by that much:
measured p99 detection latency 0.4 ms -> ~20 ms at 20 000 quotes/s
(benchmarks/ui.py). With the engine on its own loop the UI can only delay it by
a GIL switch interval, and a slow frame never holds a quote back (the dashboard's
side of this is in docs/architecture.md, "The dashboard samples a snapshot").

``EngineThread`` is a drop-in for the engine as the dashboard uses it:
``snapshot``, ``events_since`` and every control run ON the engine's loop (the
UI thread waits for the result, a few microseconds of engine time), so the
engine's own data is only ever touched by its own thread. Plain attribute reads
(``detector``, ``cfg``, ``executor``...) pass through; the sets the UI reads
(disabled venues/symbols) change only through these controls.
No Textual import here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("arbtui.ui.engine_thread")
T = TypeVar("T")


class EngineThread:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._running = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 60.0) -> None:
        """Start the engine on its thread; returns once ``engine.start()`` finished (or raises)."""
        self._thread = threading.Thread(target=self._run, name="arbtui-engine", daemon=True)
        self._thread.start()
        self._started.result(timeout)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            self._running = False
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.engine.start()
        except BaseException as e:  # noqa: BLE001 - re-raised in start() by the caller
            self._started.set_exception(e)
            return
        self._running = True
        self._started.set_result(None)
        await self._stop.wait()
        self._running = False
        await self.engine.stop()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the engine cleanly (feeds, detector, bus, simulator) and join the thread."""
        loop, ev, th = self._loop, self._stop, self._thread
        if loop is not None and ev is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop closed between the check and the call
                pass
        if th is not None:
            th.join(timeout)
            if th.is_alive():
                log.error("engine thread did not stop within %.0fs", timeout)

    # ------------------------------------------------------------------ calls

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 5.0) -> T:
        """Run ``fn(*args)`` on the engine's loop and return its result."""
        loop = self._loop
        if (not self._running or loop is None or loop.is_closed()
                or threading.current_thread() is self._thread):
            return fn(*args)  # not started / stopped: nothing else touches the engine
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
                fut.set_exception(e)

        try:
            loop.call_soon_threadsafe(run)
        except RuntimeError:
            return fn(*args)
        return fut.result(timeout)

    # ------------------------------------------------------------------ the engine's face

    def snapshot(self) -> Any:
        return self.call(self.engine.snapshot)

    def events_since(self, seq: int) -> list[tuple[int, Any]]:
        return self.call(self.engine.events_since, seq)

    def frame(self, seq: int | None) -> tuple[Any, list[tuple[int, Any]]]:
        """One dashboard frame in ONE round trip: the snapshot and, unless ``seq`` is None,
        the events after ``seq``. Each round trip can wait a GIL switch interval."""
        eng = self.engine
        return self.call(lambda: (eng.snapshot(), [] if seq is None else eng.events_since(seq)))

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        self.call(self.engine.set_venue_enabled, venue, enabled)

    def set_symbol_enabled(self, symbol: str, enabled: bool) -> None:
        self.call(self.engine.set_symbol_enabled, symbol, enabled)

    def set_threshold(self, min_net_bps: float) -> None:
        self.call(self.engine.set_threshold, min_net_bps)

    def set_max_quote_age(self, ms: float) -> None:
        self.call(self.engine.set_max_quote_age, ms)

    def set_execution_threshold(self, min_net_bps: float) -> None:
        self.call(self.engine.set_execution_threshold, min_net_bps)

    def set_execution(self, enabled: bool) -> None:
        self.call(self.engine.set_execution, enabled)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)
