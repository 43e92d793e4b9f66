"""Replay recorded sessions through the SAME adapters and book code as live.

``ReplayEngine`` is an ``Engine`` whose feeds are fed from format-2 recordings
(``recording.py``) instead of sockets: every recorded WebSocket connection gets
its own adapter instance (``feed_class(venue)``), exactly as a live connection
would, and each recorded ``recv`` frame goes through ``feed.feed_frame(data,
recv_ns)`` with ``recv_ns`` = the recording's receive time. REST calls the
adapters make (``await self.http_get(url)``, e.g. Binance depth snapshots) are
answered from the recording's ``http`` lines, matched by path and the
instrument query parameter (never the host), given out in recorded order, and
delivered no earlier than the time they were recorded: the adapter sees the
same interleaving of snapshot and stream it saw live.

Time is virtual: a replay clock that only moves with the recording. The
detector, its stale sweep, the executor, the adapters' resync rate limiter,
``feed.clock_ns()`` and every ``asyncio.sleep`` inside a replayed adapter read
it, so two replays of the same files give identical opportunity sequences,
whatever the speed. ``--speed X`` paces the virtual clock at X times real time;
``--max`` (speed 0/inf) runs as fast as the CPU allows. Time stops at the
recording's last line.

Several files are merged by timestamp. Lines of one connection keep their file
order; a file in time order is streamed, one grouped by connection
(cryptofeed's converter writes them so) is split per connection, and a k-way
merge takes the earliest head.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import heapq
import itertools
import logging
import math
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import msgspec

from arbtui.backend.engine import Engine, EngineState
from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import RateLimiter, VenueFeed
from arbtui.backend.recording import Damage, Line, RecordingError, RecordingReader
from arbtui.backend.shutdown import stop_event
from arbtui.config import Config
from arbtui.model import BookState, BookStatus, Quote, SymbolStatus, VenueStatus

log = logging.getLogger("arbtui.replay")

#: Query parameters that name WHAT a REST call is about (the instrument or the
#: instrument class). Anything else (``limit``, ``sz``...) may legitimately
#: differ between the recorder's client and our adapter.
IDENTITY_PARAMS = frozenset({"symbol", "instid", "insttype", "insttypes", "uly", "instfamily",
                             "category", "product_id", "product_ids", "pair", "currency_pair"})
#: In paced mode, recorded silences longer than this are skipped in wall time
#: (several files may be years apart); virtual time still jumps, so staleness holds.
MAX_PACED_GAP_S = 5.0
SWEEP_NS = 100_000_000  # the live sweeper runs every 100 ms


class ReplayHTTPError(OSError):
    """The recording holds no answer for a REST call the adapter made."""


# ---------------------------------------------------------------------- REST archive


def _query(url: str) -> list[tuple[str, str]]:
    return sorted((k.lower(), v.upper()) for k, v in
                  urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def url_key(url: str) -> tuple[str, dict[str, str]]:
    """(path, identity params) of a URL: what matching a request to a recording uses."""
    u = urllib.parse.urlsplit(url)
    path = u.path.rstrip("/") or "/"
    params = {k.lower(): v.upper() for k, v in urllib.parse.parse_qsl(u.query)
              if k.lower() in IDENTITY_PARAMS}
    return path, params


@dataclass
class _Resp:
    ts_ns: int
    url: str
    body: str
    idx: int
    path: str
    params: dict[str, str]


class HttpArchive:
    """One venue's recorded REST responses."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[_Resp]] = {}
        self.all: list[_Resp] = []

    def add(self, ln: Line) -> None:
        path, params = url_key(ln.url or "")
        body = ln.data if isinstance(ln.data, str) else (ln.data or b"").decode("utf-8", "replace")
        r = _Resp(_ns(ln.ts), ln.url or "", body, len(self.all), path, params)
        self.all.append(r)
        self.by_path.setdefault(path, []).append(r)

    def matching(self, url: str) -> list[_Resp]:
        path, params = url_key(url)
        out = [r for r in self.by_path.get(path, ()) if r.params == params]
        out.sort(key=lambda r: (r.ts_ns, r.idx))
        return out

    def choose(self, url: str, used: set[int]) -> _Resp | None:
        """The answer to the next request for ``url``: the first unused response recorded
        for it, in recorded order. The same adapter code makes the same requests in the
        same order as when it was recorded, so the k-th request gets the k-th answer;
        it is delivered no earlier than it was recorded (the caller waits). Responses
        to the very same query (``limit`` included) are preferred, so e.g. a small
        "is the book quiet?" probe never takes a full snapshot meant for a resync."""
        cands = [r for r in self.matching(url) if r.idx not in used]
        exact = [r for r in cands if _query(r.url) == _query(url)]
        pick = exact or cands
        return pick[0] if pick else None


# ---------------------------------------------------------------------- plan


@dataclass
class _Conn:
    file: int
    path: str
    conn: str
    venue: str | None
    url: str = ""
    send_addr: str = ""
    n_lines: int = 0
    n_recv: int = 0
    sends: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    feed: VenueFeed | None = None
    skip: str = ""
    opened: bool = False
    frames: int = 0
    first_ns: int = 0
    last_recv_ns: int = 0


class _VirtualLimiter(RateLimiter):
    """The adapters' resync rate limiter on replay time, so resyncs are deterministic."""

    def __init__(self, rate: float, burst: float, engine: ReplayEngine) -> None:
        self._eng = engine
        super().__init__(rate, burst)
        self.t = engine.now_ns / 1e9

    def _refill(self) -> None:
        now = self._eng.now_ns / 1e9
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.t) * self.rate)
        self.t = now

    async def take(self, n: float = 1.0) -> None:
        while not self.try_take(n):
            await self._eng.sleep_virtual(max(0.005, (n - self.tokens) / self.rate))


def _ns(ts: float) -> int:
    return round(ts * 1e9)


# ---------------------------------------------------------------------- virtual sleep

#: Set in the replay driver's context; tasks the adapters spawn while handling a
#: replayed frame inherit it (asyncio copies the context into new tasks).
_REPLAY: contextvars.ContextVar[ReplayEngine | None] = contextvars.ContextVar(
    "arbtui_replay", default=None)
_real_sleep = asyncio.sleep


async def _sleep(delay: float, result: Any = None) -> Any:
    """``asyncio.sleep`` that runs on replay time inside replayed adapters.

    Adapters pace themselves with plain ``asyncio.sleep`` (Binance polls for its
    first buffered event, backs off between snapshot attempts). In a replay those
    waits must follow the recording, not the wall clock: at ``--max`` a 20 ms
    real sleep outlasts the whole file, and any real wait makes runs differ.
    Everything outside a replay (the UI, the bus, live feeds) sleeps for real.
    """
    eng = _REPLAY.get()
    if eng is None or delay <= 0 or eng._stopping:
        return await _real_sleep(delay, result)
    await eng.sleep_virtual(delay)
    return result


def _install_virtual_sleep() -> None:
    if asyncio.sleep is not _sleep:
        asyncio.sleep = _sleep  # type: ignore[assignment]


# ---------------------------------------------------------------------- engine


class ReplayEngine(Engine):
    """An ``Engine`` (same ``start/stop/snapshot/events_since/feeds/set_*`` surface) whose
    quotes come from recordings. ``mode == "replay"``."""

    def __init__(self, cfg: Config, files: list[str] | str, *, speed: float = 1.0,
                 bus=None, roles: tuple[str, ...] = ("feed", "detect", "execute"),
                 settle_rounds: int = 8) -> None:
        if not cfg.journal.path:
            # Replayed opportunities must never mix with a live session's record:
            # by default they go to their own journal next to the live one.
            from arbtui.backend.journal import default_path

            cfg.journal.path = str(default_path().with_name("replay-journal.sqlite"))
        super().__init__(cfg, mode="replay", bus=bus, roles=roles)
        self.files = [files] if isinstance(files, str) else list(files)
        if not self.files:
            raise RecordingError("no recording given")
        self.speed = math.inf if (speed is None or speed <= 0) else float(speed)
        self.now_ns = 0
        self.detector.clock = lambda: self.now_ns
        self.finished = asyncio.Event()
        self.damage: list[Damage] = []
        self.conns: list[_Conn] = []
        self.conn_feeds: list[VenueFeed] = []
        self.archives: dict[str, HttpArchive] = {}
        self.headers: list[dict[str, Any]] = []
        self.ordered: list[bool] = []  # per file: non-REST lines in time order (streamable)
        self.quote_listeners: list[Callable[[Quote], None]] = []
        self.state_listeners: list[Callable[[BookStatus], None]] = []
        self.lines_total = 0
        self.lines_done = 0
        self.quotes_out = 0
        self.http_served = 0
        self.http_missing = 0
        self.error: str | None = None
        self._settle_rounds = settle_rounds
        self._pending: list[tuple[int, int, asyncio.Future, Any]] = []
        self._pseq = itertools.count()
        self._wake = asyncio.Event()
        self._used: dict[int, set[int]] = {}
        self._next_sweep = 0
        self._wall0 = 0.0
        self._rec0 = 0
        self._last_ns = 0
        self._end_ns = 0
        # Read and plan now, not in start(): the dashboard asks for symbols() when it
        # builds its widgets, and a missing or unreadable file should fail at once.
        self._plan()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.bus.start()
        self._wake = asyncio.Event()
        if "execute" in self.roles:
            await self._start_executor()
        metrics = getattr(self.cfg, "metrics", None)
        if metrics is not None and metrics.listen:
            from arbtui.backend.prometheus import serve

            self._metrics_server = serve(self, metrics.listen, asyncio.get_running_loop())
        t = asyncio.get_running_loop().create_task(self._run_driver(), name="replay")
        self._tasks.append(t)

    async def stop(self) -> None:
        self._stopping = True
        for f in self.conn_feeds:
            for t in list(f._tasks):
                t.cancel()
        for _, _, fut, _ in self._pending:
            if not fut.done():
                fut.cancel()
        await super().stop()

    async def wait_finished(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self.finished.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # ------------------------------------------------------------------ planning

    def _plan(self) -> None:
        """First pass over every file: REST bodies, connections, their subscriptions.

        Frames are not kept: a file whose lines are in time order is streamed again
        during the replay, so a long recording never has to fit in memory.
        """
        by_conn: dict[tuple[int, str], _Conn] = {}
        for fi, path in enumerate(self.files):
            reader = RecordingReader(path)
            self.headers.append(reader.header)
            ordered, last = True, -math.inf
            for ln in reader:
                if ln.t == "http":
                    if ln.venue is not None:
                        self.archives.setdefault(ln.venue, HttpArchive()).add(ln)
                    continue
                if ln.ts < last:
                    ordered = False
                last = max(last, ln.ts)
                c = by_conn.get((fi, ln.conn))
                if c is None:
                    c = by_conn[(fi, ln.conn)] = _Conn(fi, path, ln.conn, ln.venue)
                    c.first_ns = _ns(ln.ts)
                c.n_lines += 1
                if ln.t == "connect" and not c.url:
                    c.url = ln.addr or ""
                elif ln.t == "send":
                    c.send_addr = c.send_addr or ln.addr or ""
                    if isinstance(ln.data, str):
                        c.sends.append(ln.data)
                elif ln.t == "recv":
                    c.n_recv += 1
                    c.last_recv_ns = _ns(ln.ts)
            self.ordered.append(ordered)
            if reader.damage is not None:
                self.damage.append(reader.damage)
                log.warning("replay: %s", reader.damage)
        classes: dict[str, type[VenueFeed] | None] = {}
        maps: dict[str, dict[str, str]] = {}
        for c in by_conn.values():
            self.conns.append(c)
            c.url = c.url or c.send_addr
            if c.venue is None:
                c.skip = f"no adapter for exchange {c.conn.split('.', 1)[0]!r}"
                continue
            if c.venue not in classes:
                try:
                    classes[c.venue] = feed_class(c.venue)
                except (ModuleNotFoundError, AttributeError, KeyError) as e:
                    log.warning("replay: no adapter for %s (%s)", c.venue, e)
                    classes[c.venue] = None
                if classes[c.venue] is not None:
                    maps[c.venue] = self._symbol_map(c.venue, classes[c.venue])
            cls = classes[c.venue]
            if cls is None:
                c.skip = f"no adapter for {c.venue}"
                continue
            smap = maps[c.venue]
            inv = {v: k for k, v in smap.items()}
            try:
                c.symbols = list(cls.symbols_from_subscribe(c.url, c.sends, inv))
            except Exception as e:  # noqa: BLE001 - a strange subscribe must not stop the replay
                c.skip = f"cannot read its subscriptions: {e!r}"
                continue
            if not c.symbols:
                # e.g. OKX futures/swap-only or Bybit linear connections: no spot books.
                c.skip = "no spot book subscription"
                continue
            c.feed = self._make_feed(c, cls, smap)
        for c in self.conns:
            if c.skip:
                log.info("replay: %s %s: %s; its %d frames are not replayed", c.path, c.conn,
                         c.skip, c.n_recv)
        self.lines_total = sum(c.n_lines for c in self.conns if c.feed is not None)
        if not self.conn_feeds:
            log.warning("replay: nothing to replay (no connection with a spot book subscription)")

    def _symbol_map(self, venue: str, cls: type[VenueFeed]) -> dict[str, str]:
        """normalized -> venue symbol: the recorded instrument list, else the map our
        recorder wrote in the header, else the adapter's static table."""
        smap: dict[str, str] = {}
        arch = self.archives.get(venue)
        if arch is not None:
            try:
                cands = arch.matching(cls.instruments_url(""))
            except Exception:  # noqa: BLE001 - an adapter without instrument support
                cands = []
            for r in cands:
                try:
                    smap.update(cls.parse_instruments(r.body))
                except Exception as e:  # noqa: BLE001 - a bad body is only logged
                    log.warning("replay: %s instrument list %s unreadable: %r", venue, r.url, e)
            if not smap:
                # The recorder may have used another endpoint for the same list;
                # any body the adapter's parser accepts is one.
                for r in arch.all:
                    if r in cands:
                        continue
                    try:
                        m = cls.parse_instruments(r.body)
                    except Exception as e:  # noqa: BLE001 - not an instrument list
                        log.debug("replay: %s is not an instrument list (%r)", r.url, e)
                        continue
                    smap.update(m or {})
        for h in self.headers:
            conf = h.get("config") if isinstance(h.get("config"), dict) else {}
            vconf = (conf.get("venues") or {}).get(venue) if isinstance(conf.get("venues"), dict) else None
            hmap = vconf.get("symbol_map") if isinstance(vconf, dict) else None
            if isinstance(hmap, dict):
                for k, v in hmap.items():
                    smap.setdefault(k, v)
        if not smap:
            smap = dict(cls.STATIC_SYMBOLS)
        return smap

    def _make_feed(self, c: _Conn, cls: type[VenueFeed], smap: dict[str, str]) -> VenueFeed:
        vc = self.cfg.venues.get(c.venue or "")
        rest = ""
        arch = self.archives.get(c.venue or "")
        if arch is not None and arch.all:
            u = urllib.parse.urlsplit(arch.all[0].url)
            rest = f"{u.scheme}://{u.netloc}"
        feed = cls(list(c.symbols), self._on_quote, url=c.url, rest_url=rest,
                   depth=vc.depth if vc else 1000, quote_depth=self.cfg.quote_depth,
                   symbol_map=smap)
        feed.on_book_state = self._on_book_state
        feed.clock_ns = self.clock_ns
        feed.conn_state_reason = "replay: waiting for its first frame"

        async def http_get(url: str, _feed: VenueFeed = feed) -> str:
            return await self._http_get(_feed, url)

        feed.http_get_impl = http_get
        feed._resync_limiter = _VirtualLimiter(feed.resyncs_per_min / 60.0,
                                               max(1.0, feed.resyncs_per_min / 2), self)
        if not feed.enabled:
            feed.enabled = True
        self.conn_feeds.append(feed)
        self.feeds.setdefault(c.venue or "?", feed)
        return feed

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
        arch = self.archives.get(feed.venue)
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

    def _set_now(self, ns: int) -> None:
        self.now_ns = max(self.now_ns, ns)
        if "detect" in self.roles and self.now_ns >= self._next_sweep:
            if self._next_sweep:
                self._emit_all(self.detector.sweep())
            self._next_sweep = self.now_ns + SWEEP_NS

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
        rounds = self._settle_rounds if any(f._tasks for f in self.conn_feeds) else 1
        for _ in range(rounds):
            await asyncio.sleep(0)

    # ------------------------------------------------------------------ driver

    def _timeline(self) -> Iterator[tuple[int, int, Line, _Conn]]:
        """All replayable lines, merged by time; one connection's lines keep file order.

        A file in time order is streamed. One that is not (cryptofeed's converter
        writes a file connection by connection) is loaded and split per connection,
        each connection being in receive order.
        """
        replayed = {(c.file, c.conn): c for c in self.conns if c.feed is not None}
        streams = []
        src = itertools.count()

        def stream(fi: int, path: str, sid: int) -> Iterator[tuple]:
            for ln in RecordingReader(path):  # damage was reported by the first pass
                c = replayed.get((fi, ln.conn))
                if c is not None and ln.t != "http":
                    yield _ns(ln.ts), sid, ln.lineno, ln, c

        def listed(lines: list[Line], c: _Conn, sid: int) -> Iterator[tuple]:
            return ((_ns(ln.ts), sid, ln.lineno, ln, c) for ln in lines)

        for fi, path in enumerate(self.files):
            if not any(k[0] == fi for k in replayed):
                continue
            if self.ordered[fi]:
                streams.append(stream(fi, path, next(src)))
                continue
            per: dict[str, list[Line]] = {}
            for ln in RecordingReader(path):
                if ln.t != "http" and (fi, ln.conn) in replayed:
                    per.setdefault(ln.conn, []).append(ln)
            for conn, lines in per.items():
                streams.append(listed(lines, replayed[(fi, conn)], next(src)))
        for ns, sid, _lineno, ln, c in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2])):
            yield ns, sid, ln, c

    async def _run_driver(self) -> None:
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
            self._log_summary()

    async def _drive(self) -> None:
        timeline = self._timeline()
        nxt = next(timeline, None)
        if nxt is not None:
            self.now_ns = nxt[0]
            self._next_sweep = 0
        while not self._stopping:
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
            ns, _ci, ln, c = nxt
            if not await self._wait_until(ns):
                continue
            self._set_now(ns)
            self._end_ns = max(self._end_ns, ns)
            self._process(ln, c)
            self.lines_done += 1
            nxt = next(timeline, None)
            await self._settle()
        for f in self.conn_feeds:
            f.conn_state_reason = "replay finished"

    def _open(self, c: _Conn) -> None:
        feed = c.feed
        assert feed is not None
        c.opened = True
        # A later connection of the same venue carrying the same symbols, after the
        # earlier one went quiet, is a reconnect: the old books are no longer fed.
        for o in self.conns:
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

    def _process(self, ln: Line, c: _Conn) -> None:
        if not c.opened:
            self._open(c)
        if ln.t == "recv":
            c.frames += 1
            c.feed.feed_frame(ln.data, self.now_ns)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ hot path

    def _on_quote(self, q: Quote) -> None:
        # Every quote is stamped with replay time: the frame's receive time, or
        # the recorded arrival of the REST answer that completed the book.
        if q.live_ts_ns <= q.recv_ts_ns:  # a liveness refresh keeps its top's time
            q.recv_ts_ns = q.live_ts_ns = self.now_ns
        q.pub_ts_ns = time.time_ns()
        if q.venue in self.detector.disabled_venues:
            return
        self.quotes_out += 1
        self.latest[(q.venue, q.symbol)] = q
        self.quote_rate.add()
        self.bus.publish("quotes", q.symbol, q)
        for fn in self.quote_listeners:
            fn(q)
        if "detect" in self.roles:
            t0 = time.perf_counter_ns()
            events = self.detector.on_quote(q)
            self.detect_latency.add(time.perf_counter_ns() - t0)
            if events:
                self._emit_all(events)

    def _on_book_state(self, st: BookStatus) -> None:
        st.ts_ns = self.now_ns
        if st.state is not BookState.LIVE:
            self.latest.pop((st.venue, st.symbol), None)
        self.bus.publish("status", st.symbol, st)
        for fn in self.state_listeners:
            fn(st)
        if "detect" in self.roles:
            self._emit_all(self.detector.on_book_state(st))

    # ------------------------------------------------------------------ controls

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        # Replay never opens sockets: a disabled venue's frames still build its
        # books (so re-enabling is instant), its quotes just go nowhere.
        self._emit_all(self.detector.set_venue_enabled(venue, enabled))
        for f in self.conn_feeds:
            if f.venue == venue:
                f.enabled = enabled
        if not enabled:
            for k in [k for k in self.latest if k[0] == venue]:
                self.latest.pop(k, None)

    # ------------------------------------------------------------------ sampling

    def symbols(self) -> list[str]:
        out: list[str] = []
        for f in self.conn_feeds:
            for s in f.books:
                if s not in out:
                    out.append(s)
        return out

    def venue_statuses(self) -> dict[str, VenueStatus]:
        by_venue: dict[str, list[VenueFeed]] = {}
        for f in self.conn_feeds:
            by_venue.setdefault(f.venue, []).append(f)
        out: dict[str, VenueStatus] = {}
        for v, fs in by_venue.items():
            sts = [f.status() for f in fs]
            if len(sts) == 1:
                out[v] = sts[0]
                continue
            out[v] = _merge_status(v, sts)
        return out

    def snapshot(self) -> EngineState:
        st = super().snapshot()
        st.extra["replay"] = self.progress()
        return st

    def progress(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines_done,
            "lines_total": self.lines_total,
            "replay_ts": self.now_ns / 1e9 if self.now_ns else None,
            "speed": "max" if math.isinf(self.speed) else self.speed,
            "finished": self.finished.is_set(),
            "damage": [str(d) for d in self.damage],
            "error": self.error,
        }

    def summary(self) -> dict[str, Any]:
        conns = []
        for c in self.conns:
            d: dict[str, Any] = {"file": c.path, "conn": c.conn, "venue": c.venue,
                                 "frames": c.frames}
            if c.skip:
                d["skipped"] = c.skip
            else:
                d["symbols"] = c.symbols
                assert c.feed is not None
                st = c.feed.status()
                d["counters"] = st.counters
                d["books"] = {s: ss.state.value for s, ss in st.symbols.items()}
            conns.append(d)
        return {"type": "replay_summary", **self.progress(), "quotes": self.quotes_out,
                "http_served": self.http_served, "http_missing": self.http_missing,
                "opportunity_events": self.event_seq, "connections": conns}

    def _log_summary(self) -> None:
        s = self.summary()
        for c in s["connections"]:
            if "skipped" in c:
                continue
            log.info("replay: %s %s (%s): %d frames, books %s, counters %s", c["file"],
                     c["conn"], c["venue"], c["frames"], c["books"], c["counters"])
        log.info("replay: %d/%d lines, %d quotes, %d opportunity events%s", self.lines_done,
                 self.lines_total, self.quotes_out, self.event_seq,
                 f"; stopped early: {'; '.join(s['damage'])}" if self.damage else "")


def _merge_status(venue: str, sts: list[VenueStatus]) -> VenueStatus:
    """One venue, several recorded connections: the freshest state per symbol."""
    rank = {BookState.LIVE: 0, BookState.SYNCING: 1, BookState.RESYNC: 2, BookState.STALE: 3,
            BookState.DISABLED: 4}
    syms: dict[str, SymbolStatus] = {}
    for st in sts:
        for s, ss in st.symbols.items():
            cur = syms.get(s)
            if cur is None or rank[ss.state] < rank[cur.state]:
                syms[s] = ss
    counters: dict[str, int] = {}
    for st in sts:
        for k, n in st.counters.items():
            counters[k] = counters.get(k, 0) + n
    state, reason = BookState.LIVE, ""
    for bad in (BookState.RESYNC, BookState.STALE, BookState.SYNCING):
        hit = [s for s, ss in syms.items() if ss.state is bad]
        if hit:
            state, reason = bad, f"{hit[0]}: {syms[hit[0]].reason}"
            break
    live = [st for st in sts if st.connected] or sts
    return VenueStatus(
        venue=venue, state=state, reason=reason, connected=any(st.connected for st in sts),
        last_msg_ns=max(st.last_msg_ns for st in sts), reconnects=max(st.reconnects for st in sts),
        msg_rate=sum(st.msg_rate for st in sts), symbols=syms, counters=counters,
        feed_latency_ms=live[0].feed_latency_ms, clock_offset_ms=live[0].clock_offset_ms)


# ---------------------------------------------------------------------- --print-quotes


class QuotePrinter:
    """One JSON line per change of a book's TOP of book (``publish`` emits on any
    change in the top N levels; deeper changes are filtered here)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        self.lines = 0
        self.broken = False  # the reader went away (``| head``)
        self.on_broken: Callable[[], None] | None = None
        self._enc = msgspec.json.Encoder()

    def on_quote(self, q: Quote) -> None:
        key = (q.venue, q.symbol)
        top = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        if self.last.get(key) == top:
            return
        self.last[key] = top
        rec = {"venue": q.venue, "symbol": q.symbol, "bid": q.bid_px, "bid_size": q.bid_qty,
               "ask": q.ask_px, "ask_size": q.ask_qty, "recv_ts": q.recv_ts_ns / 1e9,
               "seq": q.seq}
        if self.broken:
            return
        try:
            self.out.write(self._enc.encode(rec).decode() + "\n")
        except BrokenPipeError:
            # Raised inside an adapter's publish it would count as a bad frame: stop instead.
            self.broken = True
            if self.on_broken is not None:
                self.on_broken()
            return
        self.lines += 1

    def on_state(self, st: BookStatus) -> None:
        # A book that left LIVE and came back prints its first top again.
        if st.state is not BookState.LIVE:
            self.last.pop((st.venue, st.symbol), None)


# ---------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arbtui replay",
        description="Replay recordings (format 2, zstd JSON lines) through the live adapters. "
                    "Exit 0 when every file was read to its end, 3 when a file was damaged "
                    "(replayed up to the damage), 2 on usage/config errors.")
    p.add_argument("files", nargs="+", metavar="FILE", help="recording(s); several merge by time")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--speed", type=float, default=None, help="pace at X times recorded time")
    g.add_argument("--max", action="store_true", help="as fast as possible")
    p.add_argument("--no-ui", action="store_true", help="headless: events as JSON lines on stdout")
    p.add_argument("--print-quotes", action="store_true",
                   help="stdout: one JSON line per top-of-book change, nothing else")
    p.add_argument("--config", metavar="PATH", help="config file merged over the defaults")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--log-file", metavar="PATH", help="diagnostics log (default: stderr)")
    return p


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    from arbtui import cli

    ns = build_parser().parse_args(argv)
    bad = cli.check_args(ns)
    if bad:
        print(f"arbtui replay: {bad}", file=sys.stderr)
        return 2
    top = args or argparse.Namespace()
    config = ns.config or getattr(top, "config", None)
    log_file = ns.log_file or getattr(top, "log_file", None)
    no_ui = ns.no_ui or bool(getattr(top, "no_ui", False))
    duration = ns.duration if ns.duration is not None else getattr(top, "duration", None)
    speed = 0.0 if ns.max else (ns.speed if ns.speed is not None else getattr(top, "speed", 1.0))
    cfg = cli.load_config(argparse.Namespace(config=config, seed=getattr(top, "seed", None)))
    if not (no_ui or ns.print_quotes):
        return _run_dashboard(cfg, ns.files, speed, top)
    cli.setup_logging(log_file)
    try:
        engine = ReplayEngine(cfg, ns.files, speed=speed)
    except RecordingError as e:
        print(f"arbtui replay: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run_headless(engine, ns.print_quotes, duration, cfg))
    except KeyboardInterrupt:
        return 130


async def _run_headless(engine: ReplayEngine, print_quotes: bool, duration: float | None,
                        cfg: Config) -> int:
    out = sys.stdout
    printer = None
    if print_quotes:
        printer = QuotePrinter(out)
        printer.on_broken = lambda: stop.set()
        engine.quote_listeners.append(printer.on_quote)
        engine.state_listeners.append(printer.on_state)
    stop = stop_event(duration)
    loop = asyncio.get_running_loop()
    await engine.start()

    async def until_done() -> None:
        await engine.finished.wait()
        stop.set()

    watcher = loop.create_task(until_done())
    try:
        if printer is None:
            from arbtui.headless import Reporter

            await Reporter(engine, out, cfg.headless.status_interval_s).run(stop)
        else:
            await stop.wait()
    finally:
        watcher.cancel()
        await engine.stop()
        try:
            out.flush()
        except BrokenPipeError:
            if printer is not None:
                printer.broken = True
    if printer is not None and printer.broken:
        # The reader closed the pipe: not an error; keep Python's exit flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    for d in engine.damage:
        print(f"arbtui replay: {d}", file=sys.stderr)
    if engine.error:
        print(f"arbtui replay: failed: {engine.error}", file=sys.stderr)
        return 1
    return 3 if engine.damage else 0


def _run_dashboard(cfg: Config, files: list[str], speed: float, top: argparse.Namespace) -> int:
    from arbtui import cli

    try:
        from arbtui.app import run_app  # Textual only on the dashboard path
    except ModuleNotFoundError as e:
        print(f"arbtui replay: the dashboard is not available in this build ({e.name}); "
              "use --no-ui or --print-quotes", file=sys.stderr)
        return 2
    try:
        for p in files:
            RecordingReader(p).close()
    except RecordingError as e:
        print(f"arbtui replay: {e}", file=sys.stderr)
        return 2
    ns = argparse.Namespace(**vars(top)) if vars(top) else argparse.Namespace()
    ns.replay = files
    ns.speed = speed
    ns.no_ui = False
    ns.role = getattr(ns, "role", "all")
    cli.setup_logging(str(cli._state_dir() / "arbtui.log"))
    return run_app(cfg, mode="replay", args=ns)
