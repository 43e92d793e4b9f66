"""The live connection of a venue adapter: connect, subscribe, read, reconnect.

``Connection`` is the half of ``VenueFeed`` (``feeds/base.py``) that touches the
network: the WebSocket session with its paced writer and watchdog (keepalive,
staleness, proactive reconnect, healthy-period backoff reset), the outbound
queue, background tasks, and REST reads. Replay never runs any of it: it hands
recorded frames to ``feed_frame`` and recorded bodies through ``http_get_impl``,
so everything a frame does lives in the other half (``feeds/publish.py`` and the
adapter). ``RateLimiter`` and ``Backoff`` are the pacing rules it and the
adapters share.
"""

from __future__ import annotations

import asyncio
import logging
import random
import urllib.request

from arbtui.backend.clock import LIVE, Clock
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds")


class RateLimiter:
    """Token bucket: ``rate`` tokens per second, ``burst`` at most."""

    def __init__(self, rate: float, burst: float, clock: Clock = LIVE) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.clock = clock
        self.t = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    async def take(self, n: float = 1.0) -> None:
        while not self.try_take(n):
            await self.clock.sleep(max(0.005, (n - self.tokens) / self.rate))


class Backoff:
    """Exponential reconnect backoff with full jitter.

    Reset only by ``healthy()`` after the connection has carried valid data for
    ``healthy_s`` — never because a subscribe call returned (cryptofeed resets
    on subscribe, so a server that kicks right after subscribing gets hammered
    once a second forever; docs/protocols.md, "Rules every venue shares").
    """

    def __init__(self, base: float = 1.0, cap: float = 60.0, healthy_s: float = 30.0,
                 rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.healthy_s = healthy_s
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        # Jitter in [ceiling/2, ceiling]: spreads reconnects yet keeps growth visible.
        return ceiling * (0.5 + 0.5 * self.rng.random())

    def healthy(self) -> None:
        self.attempt = 0



class Connection:
    """The live loop and outbound side of a ``VenueFeed`` (a mixin: the state it
    reads, ``books``, ``counters``, ``clock`` ..., is set by ``VenueFeed.__init__``)."""

    def send(self, text: str) -> None:
        """Queue an outbound frame; the writer task paces them at ``send_rate``."""
        if self._outbox is not None:
            self._outbox.put_nowait(text)

    async def http_get(self, url: str) -> str:
        if self.http_get_impl is not None:
            return await self.http_get_impl(url)

        def _get() -> str:
            req = urllib.request.Request(url, headers={"User-Agent": "arbtui"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read().decode()

        body = await asyncio.to_thread(_get)
        if self.recorder is not None:
            self.recorder.on_http(url, body, self.clock_ns())
        return body

    def spawn(self, coro) -> asyncio.Task:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)
        return t

    def _task_done(self, t: asyncio.Task) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            self.count("task_errors")
            log.error("%s: background task failed: %r", self.venue, t.exception())

    def request_reconnect(self, reason: str) -> None:
        self._reconnect_reason = reason
        ws = self._ws
        if ws is not None and _has_loop():
            self.spawn(ws.close())
    # ================================================================ live loop

    async def run(self) -> None:
        """Connect, subscribe, read; reconnect with backoff until ``stop``."""
        import websockets

        self._stop = asyncio.Event()
        for s in self.unknown_symbols:
            log.warning("%s: no venue symbol for %s; skipped", self.venue, s)
        first = True
        while not self._stop.is_set():
            if not first:
                self.reconnects += 1
                delay = self.backoff.next_delay()
                self.conn_state_reason = f"reconnecting in {delay:.1f}s ({self._reconnect_reason})"
                if await self.clock.wait(self._stop, delay):
                    break
            first = False
            self._reconnect_reason = None
            self.reset_books(BookState.SYNCING, "connecting")
            try:
                url = await self.resolve_url()
                async with websockets.connect(
                    url, max_size=self.max_frame, open_timeout=10, close_timeout=2,
                    ping_interval=None,  # keepalive is per venue, below; server pings get pongs
                    compression=None,
                ) as ws:
                    if self.recorder is not None:
                        self.recorder.on_connect(url, self.clock_ns())
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any socket failure means reconnect
                self.count("connect_errors")
                self._reconnect_reason = self._reconnect_reason or f"{type(e).__name__}: {e}"
                log.warning("%s: connection ended: %s", self.venue, self._reconnect_reason)
            finally:
                self._ws = None
                self.connected = False
                for t in list(self._tasks):
                    t.cancel()
                self.reset_books(BookState.STALE, self._reconnect_reason or "disconnected")
        self.conn_state_reason = "stopped"

    async def _session(self, ws) -> None:
        self._ws = ws
        self.connected = True
        self.conn_state_reason = "connected"
        opened = self.clock.monotonic()
        self._outbox = asyncio.Queue()
        self.spawn(self._writer(ws))
        self.spawn(self._watchdog(ws, opened))
        for m in self.subscribe_messages():
            self.send(m)
        await self.on_open()
        async for data in ws:
            recv_ns = self.clock_ns()
            if self.recorder is not None:
                self.recorder.on_recv(data, recv_ns)
            self.feed_frame(data, recv_ns)
            if self._stop.is_set():
                break
        self._reconnect_reason = self._reconnect_reason or (
            f"closed by venue ({ws.close_code})" if ws.close_code is not None else "closed")

    async def _writer(self, ws) -> None:
        assert self._outbox is not None
        gap = 1.0 / self.send_rate
        while True:
            text = await self._outbox.get()
            await ws.send(text)
            if self.recorder is not None:
                self.recorder.on_send(text, self.clock_ns())
            await self.clock.sleep(gap)

    async def _watchdog(self, ws, opened: float) -> None:
        """Keepalive, staleness, healthy-period backoff reset, proactive reconnect."""
        clock = self.clock
        last_ping = clock.monotonic()
        healthy_since: float | None = None
        while True:
            await clock.sleep(0.25)
            now = clock.monotonic()
            self._update_rate(now)
            if self.keepalive_s and now - last_ping >= self.keepalive_s:
                msg = self.keepalive_message()
                if msg:
                    self.send(msg)
                last_ping = now
            age = (clock.now_ns() - self.last_msg_ns) / 1e9 if self.last_msg_ns else now - opened
            if age > self.stale_after_s:
                for sb in self.books.values():
                    self.set_state(sb, BookState.STALE, f"no data for {age:.1f}s")
                self.count("stale")
                self.request_reconnect(f"silent for {age:.1f}s")
                return
            if self.max_conn_life_s and now - opened > self.max_conn_life_s:
                self.request_reconnect("proactive reconnect before the venue's connection limit")
                return
            all_live = self.books and all(sb.state is BookState.LIVE for sb in self.books.values())
            if all_live:
                healthy_since = healthy_since or now
                if now - healthy_since >= self.backoff.healthy_s:
                    self.backoff.healthy()
            else:
                healthy_since = None

    def _update_rate(self, now: float) -> None:
        dt = now - self._rate_t
        if dt >= 1.0:
            self.msg_rate = (self.msg_count - self._rate_n) / dt
            self._rate_n = self.msg_count
            self._rate_t = now

    async def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
        ws = self._ws
        if ws is not None:
            await ws.close()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
