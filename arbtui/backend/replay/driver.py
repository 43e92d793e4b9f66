"""The replay driver: moves replay time through the recording and hands each
recorded line to its connection's adapter.

Each recorded ``recv`` frame goes through ``feed.feed_frame(data, recv_ns)``
with ``recv_ns`` = the recording's receive time. REST calls the adapters make
are answered from the recording (``archive.py``) and delivered no earlier than
the time they were recorded: the adapter sees the same interleaving of snapshot
and stream it saw live.

``--speed X`` paces replay time at X times real time; ``--max`` (speed 0/inf)
runs as fast as the CPU allows; the pace changes when things happen in wall
time, never what happens. Time stops at the recording's last line.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

from arbtui.backend.clock import VirtualClock
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.recording import Line
from arbtui.backend.replay.archive import ReplayHTTPError
from arbtui.backend.replay.plan import Conn, ReplayPlan
from arbtui.model import BookState

log = logging.getLogger("arbtui.replay")

#: In paced mode, recorded silences longer than this are skipped in wall time
#: (several files may be years apart); virtual time still jumps, so staleness holds.
MAX_PACED_GAP_S = 5.0
#: A stretch of recorded time longer than this with no recorded line (files days
#: apart, a feed that went silent) is slept through like a suspended process:
#: timers run normally for this long, then time leaps to the next line and every
#: timer that came due meanwhile fires once, there. Without it a periodic timer
#: (the 100 ms sweep) would fire ~10 times per recorded second of the gap.
MAX_IDLE_NS = 60_000_000_000
#: Fallback when the event loop does not expose its ready queue (uvloop): this many
#: scheduler rounds after each step (enough for frame -> detector -> executor).
SETTLE_ROUNDS = 8


class ReplayDriver:
    """Moves a ``VirtualClock`` through the plan's timeline; ``run()`` is its task.

    Each step is one recorded line or one due timer (an adapter's sleep, the
    sweeper, an order's arrival, a recorded REST answer), in time order; a timer
    due at the same time as a frame fires first. After each step the driver
    lets every task that step woke (adapter tasks, the detector, the executor)
    run until all of them wait again, so the order of events never depends on
    scheduling or on the pace.
    """

    def __init__(self, plan: ReplayPlan, clock: VirtualClock, *, speed: float = 0.0,
                 settle_rounds: int = SETTLE_ROUNDS) -> None:
        self.plan = plan
        self.clock = clock
        self.speed = math.inf if (speed is None or speed <= 0) else float(speed)
        self.stopping = False
        self.finished = asyncio.Event()
        self.feeds: list[VenueFeed] = []
        self.lines_total = 0
        self.lines_done = 0
        self.http_served = 0
        self.http_missing = 0
        self.error: str | None = None
        self._settle_rounds = settle_rounds
        #: On a bus that delivers over the network (Kafka): one delivery round, True
        #: if it handed anything to a subscriber (``replay/kafka.py``). Called after
        #: each step until it returns False, so time moves on only once every role
        #: has handled everything the step published.
        self.barrier: Callable[[], Awaitable[bool]] | None = None
        #: Awaited once before the first step (the bus's consumers hold positions).
        self.before_start: Callable[[], Awaitable[None]] | None = None
        self._wake = asyncio.Event()
        clock.on_schedule = self._wake.set
        self._used: dict[int, set[int]] = {}
        self._wall0 = 0.0
        self._rec0 = 0
        self._last_ns = 0
        self._end_ns = 0

    @property
    def now_ns(self) -> int:
        return self.clock.now

    def attach(self, c: Conn, feed: VenueFeed) -> None:
        """Connect an adapter (built on this driver's clock) to the recorded REST answers."""
        c.feed = feed

        async def http_get(url: str, _feed: VenueFeed = feed) -> str:
            return await self._http_get(_feed, url)

        feed.http_get_impl = http_get
        self.feeds.append(feed)
        self.lines_total += c.n_lines

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
        return await self.clock.deliver_at(r.ts_ns, r.body)

    # ------------------------------------------------------------------ pacing

    async def _wait_until(self, due_ns: int) -> bool:
        """Paced mode: sleep until ``due_ns`` is due in wall time. False if woken early
        (a new, possibly earlier, timer was scheduled)."""
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
        """Run every task the last step woke until all of them wait again; on a
        networked bus, also until everything they published was delivered and handled."""
        await self._run_ready()
        if self.barrier is not None:
            while await self.barrier():
                await self._run_ready()

    async def _run_ready(self) -> None:
        """Run every task the last step (or delivery) woke until all of them wait again.

        asyncio runs ready callbacks in FIFO order, so with time virtual the same
        steps give the same interleaving; the ready queue tells when it is empty.
        """
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        if ready is None:
            for _ in range(self._settle_rounds):
                await asyncio.sleep(0)
            return
        for _ in range(10_000):
            await asyncio.sleep(0)
            if not ready:
                return

    # ------------------------------------------------------------------ driver

    async def run(self) -> None:
        try:
            # Roles spawned with the engine subscribe when they first run: let them.
            await self._run_ready()
            if self.before_start is not None:
                await self.before_start()
            await self._settle()
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
        self.clock.close()

    async def _drive(self) -> None:
        clock = self.clock
        timeline = self.plan.timeline()
        nxt = next(timeline, None)
        self._end_ns = clock.now
        while not self.stopping:
            due = clock.next_due()
            if nxt is None and (due is None or due > self._end_ns):
                # The recording is over: time stops at its last line (no sweep ages
                # the final books, no timer fires past the end), except for REST
                # answers that were recorded after the last frame.
                late = clock.next_recorded()
                if late is None:
                    break
                if not await self._wait_until(late):
                    continue
                clock.fire_next(recorded_only=True)
                self._end_ns = max(self._end_ns, clock.now)
                await self._settle()
                continue
            if due is not None and (nxt is None or due <= nxt[0]):
                if nxt is not None and due > self._end_ns + MAX_IDLE_NS:
                    clock.advance(nxt[0])  # the leap: overdue timers fire at the next line
                if not await self._wait_until(max(due, clock.now)):
                    continue
                clock.fire_next()
                await self._settle()
                continue
            assert nxt is not None
            t, _ci, ln, c = nxt
            if not await self._wait_until(t):
                continue
            clock.advance(t)
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
                    and o.last_recv_ns <= self.clock.now and set(o.symbols) & set(c.symbols)
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
            c.feed.feed_frame(ln.data, self.clock.now)  # type: ignore[union-attr]
