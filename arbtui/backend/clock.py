"""One clock for every component that reads time or waits.

Components never call ``time.time_ns()``, ``time.monotonic()`` or
``asyncio.sleep(delay)`` for their own timing; they take a ``Clock``:

- ``now_ns()``: wall time in ns since the epoch (quote and event timestamps,
  ages, lifetimes);
- ``monotonic()``: seconds, for intervals and rate windows;
- ``sleep(seconds)`` and ``wait(event, timeout)``: timers.

``LIVE`` is the process clock. ``VirtualClock`` only moves when the replay
driver moves it: timers are kept in a heap the driver fires in time order,
interleaved with the recorded frames, so a replay is the live code on
recorded time and gives the same result at any pace. Nothing is patched
process-wide: code not handed a virtual clock (the UI, the bus) sleeps for real.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any


class Clock:
    """The live clock: the process's wall and monotonic clocks, asyncio's timers."""

    virtual = False
    # Plain functions as attributes: a clock read on the hot path costs what the
    # direct call cost (no extra method frame).
    now_ns: Callable[[], int] = staticmethod(time.time_ns)
    monotonic: Callable[[], float] = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        """Wait for ``event`` at most ``timeout`` seconds; True if it is set."""
        if event.is_set():
            return True
        try:
            # asyncio.timeout, not wait_for: wait_for wraps the wait in a task of its own
            # (Python 3.11), one more task and loop pass per wake-up (~6 us of CPU, measured
            # by a ping-pong of two waiters: 14 vs 8 us a wait); the detector loop waits
            # here once per batch.
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return event.is_set()
        return True


#: The process clock (stateless, shared).
LIVE = Clock()


class Timer:
    """A scheduled callback on a ``VirtualClock``; ``cancel()`` makes the heap skip it."""

    __slots__ = ("args", "cancelled", "due_ns", "fn", "recorded")

    def __init__(self, due_ns: int, fn: Callable[..., Any], args: tuple, recorded: bool) -> None:
        self.due_ns = due_ns
        self.fn = fn
        self.args = args
        self.cancelled = False
        #: An event the recording holds (a REST answer), not a component's own timer:
        #: it is still delivered after the recording's last line.
        self.recorded = recorded

    def cancel(self) -> None:
        self.cancelled = True


def _resolve(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class VirtualClock(Clock):
    """Replay time. ``now_ns()`` is the time the driver last moved to; timers wait in
    a heap until the driver fires them (``fire_next``), never on the wall clock."""

    virtual = True

    def __init__(self, start_ns: int = 0) -> None:
        self.now = start_ns
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        #: Set by the driver: called when a timer is scheduled (a paced driver
        #: waiting in wall time must reconsider what is due next).
        self.on_schedule: Callable[[], None] | None = None
        #: Once closed (replay stopping), waits fall back to real time so that
        #: shutdown paths that sleep do not hang on a clock nobody moves.
        self.closed = False

    # ------------------------------------------------------------------ reading

    def now_ns(self) -> int:  # type: ignore[override]
        return self.now

    def monotonic(self) -> float:  # type: ignore[override]
        return self.now / 1e9

    # ------------------------------------------------------------------ scheduling

    def call_at(self, due_ns: int, fn: Callable[..., Any], *args: Any,
                recorded: bool = False) -> Timer:
        t = Timer(max(due_ns, self.now), fn, args, recorded)
        heapq.heappush(self._heap, (t.due_ns, next(self._seq), t))
        if self.on_schedule is not None:
            self.on_schedule()
        return t

    async def sleep(self, seconds: float) -> None:
        if self.closed:
            await asyncio.sleep(seconds)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut = asyncio.get_running_loop().create_future()
        t = self.call_at(self.now + round(seconds * 1e9), _resolve, fut, None)
        try:
            await fut
        finally:
            t.cancel()

    async def deliver_at(self, due_ns: int, value: Any) -> Any:
        """``value`` once replay time reaches ``due_ns`` (a recorded REST answer)."""
        if due_ns <= self.now:
            return value
        fut = asyncio.get_running_loop().create_future()
        t = self.call_at(due_ns, _resolve, fut, value, recorded=True)
        try:
            return await fut
        finally:
            t.cancel()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> bool:
        if event.is_set():
            return True
        if self.closed:
            return await super().wait(event, timeout)
        if timeout is None:
            await event.wait()
            return True
        # Like asyncio.timeout(): the timer cancels the waiting task, and uncancel()
        # tells our cancellation from one coming from outside.
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        t = self.call_at(self.now + round(timeout * 1e9), expire)
        try:
            await event.wait()
            return True
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                return event.is_set()
            raise
        finally:
            t.cancel()

    # ------------------------------------------------------------------ the driver's side

    def _prune(self) -> None:
        h = self._heap
        while h and h[0][2].cancelled:
            heapq.heappop(h)

    def next_due(self) -> int | None:
        """Due time of the earliest live timer, or None."""
        self._prune()
        return self._heap[0][0] if self._heap else None

    def next_recorded(self) -> int | None:
        """Due time of the earliest live recorded event (REST answer), or None."""
        due = [d for d, _, t in self._heap if t.recorded and not t.cancelled]
        return min(due) if due else None

    def advance(self, t_ns: int) -> None:
        """Move time forward to ``t_ns`` (never back)."""
        self.now = max(self.now, t_ns)

    def fire_next(self, *, recorded_only: bool = False) -> bool:
        """Move time to the earliest timer (earliest recorded one if ``recorded_only``)
        and run it. False if there is none."""
        self._prune()
        if recorded_only:
            cands = [e for e in self._heap if e[2].recorded and not e[2].cancelled]
            if not cands:
                return False
            entry = min(cands)
            self._heap.remove(entry)
            heapq.heapify(self._heap)
        else:
            if not self._heap:
                return False
            entry = heapq.heappop(self._heap)
        due, _, t = entry
        self.advance(due)
        t.cancelled = True
        t.fn(*t.args)
        return True

    def close(self) -> None:
        """Stop: every pending timer is dropped; later waits use real time."""
        self.closed = True
        for _, _, t in self._heap:
            t.cancel()
            if t.fn is _resolve and not t.args[0].done():
                t.args[0].cancel()
        self._heap.clear()
