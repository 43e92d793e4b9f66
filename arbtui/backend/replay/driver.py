"""The replay driver: moves replay time through the recording and hands each
recorded line to its connection's adapter.

Each recorded ``recv`` frame goes through ``feed.feed_frame(data, recv_ns)``
with ``recv_ns`` = the recording's receive time. REST calls the adapters make
are answered from the recording (``archive.py``) and delivered no earlier than
the time they were recorded: the adapter sees the same interleaving of snapshot
and stream it saw live.

``--speed X`` paces replay time at X times real time; ``--max`` (speed 0/inf)
runs as fast as the CPU allows. Time stops at the recording's last line.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import math
from collections.abc import Callable
from typing import Any

from arbtui.backend.feeds.base import RateLimiter, VenueFeed
from arbtui.backend.recording import Line
from arbtui.backend.replay.archive import ReplayHTTPError
from arbtui.backend.replay.plan import Conn, ReplayPlan
from arbtui.model import BookState

log = logging.getLogger("arbtui.replay")

#: In paced mode, recorded silences longer than this are skipped in wall time
#: (several files may be years apart); virtual time still jumps, so staleness holds.
MAX_PACED_GAP_S = 5.0


class VirtualLimiter(RateLimiter):
    """The adapters' resync rate limiter on replay time, so resyncs are deterministic."""

    def __init__(self, rate: float, burst: float, driver: ReplayDriver) -> None:
        self._drv = driver
        super().__init__(rate, burst)
        self.t = driver.now_ns / 1e9

    def _refill(self) -> None:
        now = self._drv.now_ns / 1e9
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.t) * self.rate)
        self.t = now

    async def take(self, n: float = 1.0) -> None:
        while not self.try_take(n):
            await self._drv.sleep_virtual(max(0.005, (n - self.tokens) / self.rate))


#: Set in the replay driver's context; tasks the adapters spawn while handling a
#: replayed frame inherit it (asyncio copies the context into new tasks).
_REPLAY: contextvars.ContextVar[ReplayDriver | None] = contextvars.ContextVar(
    "arbtui_replay", default=None)
_real_sleep = asyncio.sleep


async def _sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep`` that runs on replay time inside replayed adapters."""
    drv = _REPLAY.get()
    if drv is None or delay <= 0 or drv.stopping:
        return await _real_sleep(delay, result)
    await drv.sleep_virtual(delay)
    return result


def _install_virtual_sleep() -> None:
    if asyncio.sleep is not _sleep:
        asyncio.sleep = _sleep  # type: ignore[assignment]


class ReplayDriver:
    """Owns replay time; ``run()`` is the task that replays the plan's timeline."""

    def __init__(self, plan: ReplayPlan, *, speed: float = 0.0, settle_rounds: int = 8,
                 on_time: Callable[[int], None] | None = None) -> None:
        self.plan = plan
        self.speed = math.inf if (speed is None or speed <= 0) else float(speed)
        self.on_time = on_time
        self.now_ns = 0
        self.stopping = False
        self.finished = asyncio.Event()
        self.feeds: list[VenueFeed] = []
        self.lines_total = 0
        self.lines_done = 0
        self.http_served = 0
        self.http_missing = 0
        self.error: str | None = None
        self._settle_rounds = settle_rounds
        self._pending: list[tuple[int, int, asyncio.Future, Any]] = []
        self._pseq = itertools.count()
        self._wake = asyncio.Event()
        self._used: dict[int, set[int]] = {}
        self._wall0 = 0.0
        self._rec0 = 0
        self._last_ns = 0
        self._end_ns = 0

    def attach(self, c: Conn, feed: VenueFeed) -> None:
        """Connect an adapter to this driver's time and REST answers."""
        c.feed = feed
        feed.clock_ns = self.clock_ns

        async def http_get(url: str, _feed: VenueFeed = feed) -> str:
            return await self._http_get(_feed, url)

        feed.http_get_impl = http_get
        feed._resync_limiter = VirtualLimiter(feed.resyncs_per_min / 60.0,
                                              max(1.0, feed.resyncs_per_min / 2), self)
        self.feeds.append(feed)
        self.lines_total += c.n_lines

    # ------------------------------------------------------------------ virtual time

    def clock_ns(self) -> int:
        """Replay time (ns): what "now" means for ages shown while replaying."""
        return self.now_ns

    async def sleep_virtual(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._push(self.now_ns + int(seconds * 1e9), fut, None)
        await fut

    def _push(self, due_ns: int, fut: asyncio.Future, value: Any) -> None:
        heapq.heappush(self._pending, (due_ns, next(self._pseq), fut, value))
        self._wake.set()

    async def _http_get(self, feed: VenueFeed, url: str) -> str:
        arch = self.plan.archives.get(feed.venue)
        used = self._used.setdefault(id(feed), set())
        r = arch.choose(url, used) if arch is not None else None
        if r is None:
            self.http_missing += 1
            feed.count("replay_http_missing")
            raise ReplayHTTPError(f"no recorded response for {url}")
        used.add(r.idx)
        self.http_served += 1
        if r.ts_ns <= self.now_ns:
            return r.body
        fut = asyncio.get_running_loop().create_future()
        self._push(r.ts_ns, fut, r.body)
        return await fut

    def _set_now(self, t: int) -> None:
        self.now_ns = max(self.now_ns, t)
        if self.on_time is not None:
            self.on_time(self.now_ns)

    async def _wait_until(self, due_ns: int) -> bool:
        """Paced mode: sleep until ``due_ns`` is due in wall time. False if woken early
        (a new, possibly earlier, pending item arrived)."""
        if math.isinf(self.speed):
            return True
        loop = asyncio.get_running_loop()
        if not self._wall0:
            self._wall0, self._rec0 = loop.time(), due_ns
        if self._last_ns and due_ns - self._last_ns > MAX_PACED_GAP_S * 1e9:
            self._rec0 += due_ns - self._last_ns - int(MAX_PACED_GAP_S * 1e9)
        self._last_ns = max(self._last_ns, due_ns)
        target = self._wall0 + (due_ns - self._rec0) / 1e9 / self.speed
        delay = target - loop.time()
        if delay <= 0:
            return True
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
            return False
        except TimeoutError:
            return True

    async def _settle(self) -> None:
        """Let adapter tasks woken by the last frame / answer run to their next wait,
        so the order of events never depends on scheduling."""
        rounds = self._settle_rounds if any(f._tasks for f in self.feeds) else 1
        for _ in range(rounds):
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ driver

    async def run(self) -> None:
        self._wake = asyncio.Event()
        _install_virtual_sleep()
        _REPLAY.set(self)  # this task's context only, inherited by what adapters spawn
        try:
            await self._drive()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # report, never hang the UI
            self.error = f"{type(e).__name__}: {e}"
            log.exception("replay failed")
        finally:
            self.finished.set()

    def stop(self) -> None:
        self.stopping = True
        for f in self.feeds:
            for t in list(f._tasks):
                t.cancel()
        for _, _, fut, _ in self._pending:
            if not fut.done():
                fut.cancel()

    async def _drive(self) -> None:
        timeline = self.plan.timeline()
        nxt = next(timeline, None)
        if nxt is not None:
            self.now_ns = nxt[0]
        while not self.stopping:
            due_p = self._pending[0][0] if self._pending else None
            if nxt is None and (due_p is None or due_p > self._end_ns):
                # The recording is over: time stops at its last line (no sweep ages
                # the final books, no adapter timer fires past the end), except for
                # REST answers that were recorded after the last frame.
                late = [e for e in self._pending if e[3] is not None]
                if not late:
                    break
                first = min(late)
                self._pending.remove(first)
                heapq.heapify(self._pending)
                if not await self._wait_until(first[0]):
                    heapq.heappush(self._pending, first)
                    continue
                self._set_now(first[0])
                self._end_ns = max(self._end_ns, first[0])
                if not first[2].done():
                    first[2].set_result(first[3])
                await self._settle()
                continue
            if due_p is not None and (nxt is None or due_p <= nxt[0]):
                if not await self._wait_until(due_p):
                    continue
                _, _, fut, value = heapq.heappop(self._pending)
                self._set_now(due_p)
                if not fut.done():
                    fut.set_result(value)
                await self._settle()
                continue
            assert nxt is not None
            t, _ci, ln, c = nxt
            if not await self._wait_until(t):
                continue
            self._set_now(t)
            self._end_ns = max(self._end_ns, t)
            self._process(ln, c)
            self.lines_done += 1
            nxt = next(timeline, None)
            await self._settle()
        for f in self.feeds:
            f.conn_state_reason = "replay finished"

    def _open(self, c: Conn) -> None:
        feed = c.feed
        assert feed is not None
        c.opened = True
        # A later connection of the same venue carrying the same symbols, after the
        # earlier one went quiet, is a reconnect: the old books are no longer fed.
        for o in self.plan.conns:
            if (o is not c and o.opened and o.feed is not None and o.venue == c.venue
                    and o.last_recv_ns <= self.now_ns and set(o.symbols) & set(c.symbols)
                    and o.feed.connected):
                o.feed.reset_books(BookState.STALE, f"superseded by {c.conn}")
                o.feed.connected = False
                o.feed.conn_state_reason = f"closed; reconnected as {c.conn}"
                feed.reconnects = o.feed.reconnects + 1
        feed.connected = True
        feed.conn_state_reason = f"replaying {c.conn}"
        feed.reset_books(BookState.SYNCING, "connecting")
        # Same order as the live session: subscribe frames are queued (and go
        # nowhere: the recording already holds the venue's answers), then on_open.
        try:
            for m in feed.subscribe_messages():
                feed.send(m)
        except Exception as e:  # noqa: BLE001 - counted like a bad frame, never fatal
            feed.count("task_errors")
            log.warning("replay: %s subscribe_messages failed: %r", feed.venue, e)
        feed.spawn(feed.on_open())

    def _process(self, ln: Line, c: Conn) -> None:
        if not c.opened:
            self._open(c)
        if ln.t == "recv":
            c.frames += 1
            c.feed.feed_frame(ln.data, self.now_ns)  # type: ignore[union-attr]
