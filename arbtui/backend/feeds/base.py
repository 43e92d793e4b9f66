"""The shape every venue adapter shares, and the live connection loop.

An adapter (``feeds/<venue>.py``) subclasses ``VenueFeed`` and fills in:

- ``subscribe_messages()``: the frames to send after connecting, batched as the
  venue's per-request limits require;
- ``on_message(data, recv_ns)``: parse one frame, apply it to the books with
  the venue's own gap/checksum rules, and call ``self.publish(sb, ...)``;
- ``keepalive_message()``: what to send every ``keepalive_s`` (or None);
- ``resync_symbol(sb)``: how that venue refreshes ONE book (resubscribe,
  re-snapshot), or leave the default, which reconnects. Venues whose only
  re-snapshot is unsubscribe + subscribe call ``resubscribe_book``;
- ``symbols_from_subscribe(url, sent, vsym_to_norm)`` (classmethod): which
  symbols a recorded connection subscribed (read ``sent_objects(sent)``), so
  replay can rebuild that feed;
- ``instruments_path`` + ``parse_instruments(body)``: the venue's public
  instrument list and how to read it as normalized -> venue symbol.

The adapter never touches a socket: it calls ``self.send(text)`` and
``await self.http_get(url)``. The live loop (``run``) supplies a WebSocket and
urllib; replay supplies recorded frames and recorded HTTP bodies. So live,
simulator and replay all go through the same parser and book code.

Why one module past ~600 lines: ``VenueFeed`` is the one adapter shape, and its
connection loop, per-book resync and publish path (with the liveness refresh)
act on the same per-book state under one rule set; the pacing helpers and
``SymbolBook`` beside it are the small types those three parts share.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import statistics
import urllib.request
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.book import Book
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.feeds.sync import BookSync
from arbtui.backend.metrics import FEED_BUCKETS_S, Histogram, resync_kind
from arbtui.model import BookState, BookStatus, Funding, Quote, SymbolStatus, VenueStatus

log = logging.getLogger("arbtui.feeds")

# An Enum member read through its class costs ~60 ns (EnumType lookup); publish
# runs once per book message.
_LIVE = BookState.LIVE

#: Liveness refresh cadence (model.AGES_RULE). Quotes are published when the
#: quoted levels change; a LIVE book whose levels stay the same while its feed
#: keeps proving it good (a frame applied to it, or any frame on its connection:
#: data for other books, heartbeats, pongs) is re-published with the SAME level
#: lists and a newer ``live_ts_ns`` at most this often. The detector ages books by
#: that time, so a quiet top stays usable and a silent feed goes stale within
#: ``max_quote_age_ms`` (config keeps that at least 2 x this cadence).
LIVE_REFRESH_NS = 250_000_000
#: A connection's frames look for books due a refresh this often (frame time). While
#: they come that often, each book is due at its own phase past ``LIVE_REFRESH_NS``
#: (``SymbolBook.live_phase_ns``, under ``LIVE_REFRESH_NS - 2 x LIVE_CHECK_NS``): a book
#: is still re-published within 2 x ``LIVE_REFRESH_NS`` of its last publish, as when
#: every quiet book was checked once per cadence, but the books of one connection no
#: longer leave all together. Frames further apart (a quiet connection, heartbeats)
#: refresh every book past ``LIVE_REFRESH_NS`` at once, as before.
#: That burst (every quiet book at once, four times a second) queued behind itself on
#: the Kafka path: its quotes reached the detector 5-6 ms later than other quotes at
#: 1 k quotes/s (benchmarks/results/2026-12-06-r3-kafka.md).
LIVE_CHECK_NS = 25_000_000


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


class SymbolBook:
    """Per-symbol book with its sync state: the venue's last id in ``seq``, the
    adapter's typed bookkeeping in ``sync`` (``feeds/sync.py``)."""

    __slots__ = (
        "book",
        "changes",
        "last_quote",
        "last_top",
        "last_update_ns",
        "live_phase_ns",
        "live_venue_ns",
        "next_resync",
        "pub_live_ns",
        "quote_template",
        "reason",
        "resync_pending",
        "seq",
        "since_ns",
        "state",
        "symbol",
        "sync",
        "vsym",
    )

    def __init__(self, symbol: str, vsym: str, depth: int, sync: BookSync,
                 now_ns: int = 0, venue: str = "?") -> None:
        self.symbol = symbol
        self.vsym = vsym
        self.book = Book(depth)
        self.state = BookState.SYNCING
        self.reason = "connecting"
        self.since_ns = now_ns
        self.changes = 0
        self.seq: int = -1
        self.sync = sync
        self.last_top: tuple | None = None
        self.last_update_ns = 0  # receive time of the last frame applied to this book
        self.live_venue_ns = 0  # the venue's timestamp of that frame, 0 when none
        self.last_quote: Quote | None = None  # the last Quote published for these levels
        self.pub_live_ns = 0  # live_ts_ns of the last Quote published (or re-published)
        #: spreads the connection-proven refreshes (LIVE_CHECK_NS); crc32, not hash():
        #: the same in every process and replay
        self.live_phase_ns = zlib.crc32(symbol.encode()) % (
            (LIVE_REFRESH_NS - 2 * LIVE_CHECK_NS) // 1_000_000) * 1_000_000
        self.next_resync = 0.0
        self.resync_pending = False
        #: Never emitted: ``publish`` copies it and sets every field a quote varies in.
        self.quote_template = Quote(venue=venue, symbol=symbol, bid=0.0, bid_size=0.0, ask=0.0,
                                    ask_size=0.0, bids=[], asks=[], bid_px="", bid_qty="",
                                    ask_px="", ask_qty="")


class VenueFeed:
    venue: ClassVar[str] = "?"
    default_url: ClassVar[str] = ""
    default_rest: ClassVar[str] = ""
    #: Max inbound frame; Coinbase's first level2 snapshot is ~5 MB (docs/protocols.md#coinbase).
    max_frame: ClassVar[int] = 2 ** 20
    keepalive_s: ClassVar[float | None] = None
    #: No message at all for this long -> STALE and reconnect.
    stale_after_s: ClassVar[float] = 30.0
    #: Proactive reconnect before a venue's forced limit (Binance closes at 24 h).
    max_conn_life_s: ClassVar[float | None] = None
    #: Minimum spacing of outbound frames (Binance: 5 incoming msgs/s per connection).
    send_rate: ClassVar[float] = 5.0
    #: Venue rule: at most this many per-symbol resyncs per minute.
    resyncs_per_min: ClassVar[float] = 6.0
    #: ``resubscribe_book``: no snapshot within this long after a resubscribe -> retry it.
    resub_timeout_s: ClassVar[float] = 10.0
    #: Crossed books are legal during auctions on some venues (OKX pre-open, Gemini).
    allow_crossed: ClassVar[bool] = False
    #: ``allow_crossed`` venues: how long a crossed book may stay crossed (withheld)
    #: before it counts as out of sync (``withhold_crossed``).
    crossed_grace_s: ClassVar[float] = 2.0
    #: normalized symbol -> venue symbol, used when the instrument list is unavailable
    #: (the registry's ``static_symbols``, ``arbtui.venues``).
    STATIC_SYMBOLS: ClassVar[dict[str, str]] = {}
    #: The per-book sync state this adapter keeps (a ``BookSync`` subclass when
    #: the venue needs more fields); every reset builds a fresh one.
    sync_state: ClassVar[type[BookSync]] = BookSync
    #: Path (and query) of the venue's public instrument list under the REST base;
    #: "" when the adapter has none (the static table is then all there is).
    instruments_path: ClassVar[str] = ""
    #: Most levels a side the venue's book feed carries (None: no cap of its own).
    max_depth: ClassVar[int | None] = None

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        # An adapter names its venue; the endpoints and the offline symbol table come
        # from that venue's registry entry (arbtui/venues.py), the one place a venue
        # is declared, unless the adapter sets them itself.
        name = cls.__dict__.get("venue")
        if name not in venues.names():
            return
        spec = venues.get(name)
        for attr, value in (("default_url", spec.ws_url), ("default_rest", spec.rest_url),
                            ("instruments_path", spec.instruments_path),
                            ("STATIC_SYMBOLS", dict(spec.static_symbols))):
            if attr not in cls.__dict__:
                setattr(cls, attr, value)

    def __init__(self, symbols: list[str], emit: Callable[[Quote], None], *, url: str = "",
                 rest_url: str = "", depth: int = 1000, quote_depth: int = 10,
                 symbol_map: dict[str, str] | None = None, clock: Clock = LIVE) -> None:
        #: Every time read and timer of the adapter goes through this clock (replay
        #: hands in its virtual clock): compare frame times (``recv_ns``) against
        #: ``self.clock_ns()``, never ``time.time_ns()``, or a replayed book looks years old.
        self.clock = clock
        self.clock_ns: Callable[[], int] = clock.now_ns
        self.url = url or self.default_url
        self.rest_url = (rest_url or self.default_rest).rstrip("/")
        # A book never holds more levels than the venue's feed carries, whatever
        # ``depth`` asks for (the deeper levels would never be updated).
        self.depth = depth if self.max_depth is None else min(depth, self.max_depth)
        self.quote_depth = quote_depth
        self.emit = emit
        smap = symbol_map or self.STATIC_SYMBOLS
        self.books: dict[str, SymbolBook] = {}
        self.by_vsym: dict[str, SymbolBook] = {}
        self.unknown_symbols: list[str] = []
        for s in symbols:
            vsym = smap.get(s)
            if vsym is None:
                self.unknown_symbols.append(s)
                continue
            sb = SymbolBook(s, vsym, self.depth, self.sync_state(), clock.now_ns(), self.venue)
            self.books[s] = sb
            self.by_vsym[vsym] = sb
        self.counters: dict[str, int] = {}
        self.connected = False
        self.reconnects = 0
        self.msg_count = 0
        self.last_msg_ns = 0
        self.msg_rate = 0.0
        self.enabled = True
        self.backoff = Backoff()
        self.conn_state_reason = "not started"
        self._latency: deque[float] = deque(maxlen=600)  # recv - venue ts, ms
        self._latency_floor = math.inf
        self.latency_hist = Histogram(FEED_BUCKETS_S)  # arbtui_feed_latency_seconds
        self.quotes_out = 0  # arbtui_quotes_total
        self._outbox: asyncio.Queue[str] | None = None
        self._ws: Any = None
        self._stop = asyncio.Event() if _has_loop() else None
        self._tasks: set[asyncio.Task] = set()
        self._reconnect_reason: str | None = None
        self._resync_limiter = RateLimiter(self.resyncs_per_min / 60.0,
                                           max(1.0, self.resyncs_per_min / 2), clock)
        self._rate_t = clock.monotonic()
        self._rate_n = 0
        self._log_budget = RateLimiter(1.0, 10.0, clock)
        self.http_get_impl: Callable[[str], Any] | None = None  # replay injects recorded bodies
        #: Called on every book state change (the engine publishes it on the status topic).
        self.on_book_state: Callable[[BookStatus], None] | None = None
        #: Perp venues: called with every funding/mark/index update (the engine
        #: publishes it on the funding topic); ``funding`` keeps the latest per symbol.
        self.on_funding: Callable[[Funding], None] | None = None
        self.funding: dict[str, Funding] = {}
        #: Optional tap set by ``arbtui record`` (``recording.FeedRecorder``): the live
        #: loop reports every connect, sent frame, received frame and REST body to it.
        self.recorder: Any = None
        #: next frame time at which LIVE books with unchanged levels are re-published
        self._live_due = 0

    # ================================================================ adapter API

    def subscribe_messages(self) -> list[str]:
        raise NotImplementedError

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        raise NotImplementedError

    def keepalive_message(self) -> str | None:
        return None

    async def on_open(self) -> None:
        """Called after the subscribe frames are queued (Binance starts snapshot sync here)."""

    async def resync_symbol(self, sb: SymbolBook) -> None:
        """Refresh one book. Default: the venue has no per-symbol way, so reconnect."""
        self.request_reconnect(f"resync {sb.symbol}")

    async def resolve_url(self) -> str:
        """The WebSocket URL of the next connection. Default: ``self.url``. Venues
        that hand out a per-connection endpoint first (KuCoin's token from
        ``bullet-public``) override it; replay never calls it."""
        return self.url

    # ================================================================ helpers for adapters

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

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

    def set_state(self, sb: SymbolBook, state: BookState, reason: str = "") -> None:
        if sb.state is not state or sb.reason != reason:
            if sb.state is not state:
                sb.changes += 1
                sb.since_ns = self.clock_ns()
            sb.state = state
            sb.reason = reason
            if self.on_book_state is not None:
                self.on_book_state(BookStatus(venue=self.venue, symbol=sb.symbol, state=state,
                                              reason=reason, ts_ns=self.clock_ns()))

    def publish_funding(self, f: Funding) -> None:
        """A perp venue's funding rate / next funding time / mark / index for one
        symbol (``model.Funding``): kept as the latest, handed to ``on_funding``."""
        self.funding[f.symbol] = f
        self.count("funding_updates")
        if self.on_funding is not None:
            self.on_funding(f)

    def frame_error(self, reason: str, data: Any = None, sb: SymbolBook | None = None) -> None:
        """A malformed frame: counted, logged (rate-limited), never fatal.

        If it may have left ``sb`` half-applied, that book is resynced.
        """
        self.count("frame_errors")
        if self._log_budget.try_take():
            snippet = (data[:200] if isinstance(data, (str, bytes)) else repr(data)[:200])
            log.warning("%s: bad frame (%s): %r", self.venue, reason, snippet)
        if sb is not None:
            self.resync(sb, f"bad frame: {reason}")

    def resync(self, sb: SymbolBook, reason: str) -> None:
        """Mark ONE book RESYNC and refresh it, rate-limited per venue."""
        self.count("resyncs")
        self.count(f"resyncs.{resync_kind(reason)}")  # arbtui_book_resyncs_total{reason}
        self.set_state(sb, BookState.RESYNC, reason)
        sb.last_top = None
        if sb.resync_pending:
            return
        sb.resync_pending = True
        if _has_loop():
            self.spawn(self._do_resync(sb))

    async def _do_resync(self, sb: SymbolBook) -> None:
        try:
            await self._resync_limiter.take()
            await self.resync_symbol(sb)
        finally:
            sb.resync_pending = False

    def resubscribe_book(self, sb: SymbolBook, frames: list[str], token: Any) -> None:
        """Refresh ONE book on venues whose only re-snapshot is unsubscribe +
        subscribe on the same socket (Kraken v2, Bybit); ``frames`` are those two.

        The book stays RESYNC (updates ignored) until the new snapshot: on one
        socket the old subscription's frames all precede the unsubscribe, so
        nothing stale can land on the fresh book. ``token`` names this attempt
        (``sb.sync.resub``) so a later attempt or an ack can be told apart.
        """
        sb.sync.resub = token
        self.set_state(sb, BookState.RESYNC, sb.reason or "resubscribing")
        sb.book.clear()
        self.count("resubscribes")
        for f in frames:
            self.send(f)
        self.spawn(self._resub_deadline(sb, token))

    async def _resub_deadline(self, sb: SymbolBook, token: Any) -> None:
        """A resubscribe that yields no snapshot (rejected, lost) must not leave
        the book in RESYNC forever: try again, still rate-limited."""
        await self.clock.sleep(self.resub_timeout_s)
        if sb.sync.resub == token and sb.state is not BookState.LIVE:
            self.count("resubscribe_timeouts")
            self.resync(sb, "no snapshot after resubscribe")

    def request_reconnect(self, reason: str) -> None:
        self._reconnect_reason = reason
        ws = self._ws
        if ws is not None and _has_loop():
            self.spawn(ws.close())

    def venue_latency(self, recv_ns: int, venue_ts_ns: int) -> None:
        """Called once per published quote: counts it, and keeps its receive delay."""
        self.quotes_out += 1
        if venue_ts_ns:
            ms = (recv_ns - venue_ts_ns) / 1e6
            self._latency.append(ms)
            # The histogram is skew-corrected like feed_latency_ms: the smallest delay
            # seen on this feed stands for clock offset + fastest path. (A compare,
            # not min(): this runs once per quote, and the builtin call costs more.)
            floor = self._latency_floor
            if ms < floor:
                self._latency_floor = floor = ms
            self.latency_hist.observe((ms - floor) / 1e3)

    def publish(self, sb: SymbolBook, recv_ns: int, venue_ts_ns: int = 0, seq: int = -1) -> None:
        """After a WHOLE message is applied: crossed check, then emit a Quote if the top
        changed, or a liveness refresh if it did not for ``LIVE_REFRESH_NS``."""
        sb.last_update_ns = recv_ns
        sb.live_venue_ns = venue_ts_ns
        if sb.state is not _LIVE:
            return
        book = sb.book
        if not book.top_dirty and sb.last_top is not None:
            # every change in this message was below the quoted depth: the book is
            # proven good, its quote unchanged
            if recv_ns - sb.pub_live_ns >= LIVE_REFRESH_NS:
                self._refresh(sb, recv_ns)
            return
        # The book keeps each level's floats: the quote's lists are read, not converted.
        top = book.take_top(self.quote_depth)
        fb, fa = top
        if not fb or not fa:
            book.top_dirty = True  # nothing published: look again after the next change
            return
        bid, bid_size = fb[0]
        ask, ask_size = fa[0]
        if bid >= ask:  # the float keys order exactly as the decimal prices
            book.top_dirty = True
            # A crossed quote is never published: it would be a free "opportunity".
            # Venues with documented auctions (allow_crossed) decide themselves when
            # a persistent cross means desync; everyone else resyncs at once.
            if not self.allow_crossed:
                self.count("crossed")
                self.resync(sb, "crossed book")
            return
        if top == sb.last_top:
            if recv_ns - sb.pub_live_ns >= LIVE_REFRESH_NS:
                self._refresh(sb, recv_ns)
            return
        sb.last_top = top
        self.venue_latency(recv_ns, venue_ts_ns)
        bp, bq = book.bids[bid]
        ap, aq = book.asks[ask]
        sb.pub_live_ns = recv_ns
        # A copy of the book's never-published template with every other field set:
        # half the cost of Quote(...) with 17 keywords (~1.3 vs ~2.6 us loaded, 2026-12).
        sb.last_quote = q = sb.quote_template.__copy__()
        q.venue = self.venue  # read now, as before: a relabelled feed (benchmarks) names itself
        q.bid = bid
        q.bid_size = bid_size
        q.ask = ask
        q.ask_size = ask_size
        q.bids = fb
        q.asks = fa
        q.bid_px = bp
        q.bid_qty = bq
        q.ask_px = ap
        q.ask_qty = aq
        q.venue_ts_ns = q.live_venue_ts_ns = venue_ts_ns
        q.recv_ts_ns = q.live_ts_ns = recv_ns
        q.seq = seq
        self.emit(q)

    def _refresh(self, sb: SymbolBook, live_ns: int) -> None:
        """Re-publish ``sb``'s last quote (same level lists, same top times) with
        ``live_ts_ns = live_ns``: the book is proven good, its levels unchanged."""
        q = sb.last_quote
        if q is None or sb.last_top is None:
            return
        sb.pub_live_ns = live_ns
        self.count("live_refreshes")
        self.emit(Quote(
            venue=q.venue, symbol=q.symbol, bid=q.bid, bid_size=q.bid_size, ask=q.ask,
            ask_size=q.ask_size, bids=q.bids, asks=q.asks, bid_px=q.bid_px, bid_qty=q.bid_qty,
            ask_px=q.ask_px, ask_qty=q.ask_qty, venue_ts_ns=q.venue_ts_ns,
            recv_ts_ns=q.recv_ts_ns, seq=q.seq, live_ts_ns=live_ns,
            live_venue_ts_ns=sb.live_venue_ns if sb.last_update_ns == live_ns else 0,
        ))

    def connection_alive(self, recv_ns: int) -> None:
        """A frame arrived on this connection (data, heartbeat, pong): it proves
        every LIVE book on it is still being served, the venues' per-connection
        heartbeats being the only ones they send. Books whose quote has not been
        (re-)published for ``LIVE_REFRESH_NS`` (plus the book's phase while the
        connection's frames come at least every ``LIVE_CHECK_NS`` or so) are
        re-published; checked at most once per ``LIVE_CHECK_NS`` of frame time, so the
        hot path pays one compare."""
        due = self._live_due
        if recv_ns < due:
            return
        # The previous check was under 2 x LIVE_CHECK_NS ago: the next one comes soon
        # enough for a book's phase to keep it within 2 x LIVE_REFRESH_NS.
        phased = recv_ns - due < LIVE_CHECK_NS
        self._live_due = recv_ns + LIVE_CHECK_NS
        for sb in self.books.values():
            if sb.state is _LIVE and recv_ns - sb.pub_live_ns >= LIVE_REFRESH_NS + (
                    sb.live_phase_ns if phased else 0):
                self._refresh(sb, recv_ns)

    def withhold_crossed(self, sb: SymbolBook, recv_ns: int, reason: str) -> str | None:
        """For ``allow_crossed`` venues, after a WHOLE message: None if the book is
        not crossed. A crossed book is never published; it may be an auction, so it
        is withheld (STALE, ``reason``) and given ``crossed_grace_s`` to uncross:
        returns "withheld". Still crossed after that, it is out of sync: returns
        "desync" and the caller drops and resyncs it."""
        x = sb.sync
        if not sb.book.crossed():
            if x.crossed_since is not None:  # the store only when it changes: every message
                x.crossed_since = None
            return None
        since = x.crossed_since
        if since is None:
            x.crossed_since = since = recv_ns
            self.count("crossed")
        sb.last_update_ns = recv_ns
        if (recv_ns - since) / 1e9 >= self.crossed_grace_s:
            return "desync"
        self.set_state(sb, BookState.STALE, reason)
        return "withheld"

    # ================================================================ frame entry point

    def feed_frame(self, data: str | bytes, recv_ns: int) -> None:
        """One inbound frame, live or replayed. Nothing escapes: errors are counted."""
        self.msg_count += 1
        self.last_msg_ns = recv_ns
        try:
            self.on_message(data, recv_ns)
        except Exception as e:  # noqa: BLE001 - a bad frame must never kill the feed
            self.frame_error(f"{type(e).__name__}: {e}", data)
        if recv_ns >= self._live_due:
            self.connection_alive(recv_ns)

    def reset_books(self, state: BookState, reason: str) -> None:
        for sb in self.books.values():
            sb.book.clear()
            sb.seq = -1
            sb.sync = self.sync_state()
            sb.last_top = None
            sb.last_quote = None
            self.set_state(sb, state, reason)

    @staticmethod
    def sent_objects(sent_frames: list[str]) -> Iterator[dict]:
        """The JSON objects among the frames a recorded client sent; anything else
        is skipped. For an adapter's ``symbols_from_subscribe``, with which replay
        rebuilds a feed from what the recorded connection subscribed."""
        for f in sent_frames:
            try:
                m = json.loads(f)
            except (ValueError, TypeError):
                continue
            if isinstance(m, dict):
                yield m

    @classmethod
    def instruments_url(cls, rest_base: str) -> str:
        if not cls.instruments_path:
            raise NotImplementedError(f"{cls.venue}: no instrument list")
        return (rest_base or cls.default_rest).rstrip("/") + cls.instruments_path

    @classmethod
    async def fetch_symbol_map(cls, rest_url: str = "") -> dict[str, str] | None:
        """The venue's instrument list as normalized -> venue symbol, or None when unreachable.

        Called before a live feed is built; the static table stays the offline fallback.
        """
        parse = getattr(cls, "parse_instruments", None)
        base = (rest_url or cls.default_rest).rstrip("/")
        if not cls.instruments_path or parse is None or not base:
            return None

        def _get() -> str:
            req = urllib.request.Request(cls.instruments_url(base),
                                         headers={"User-Agent": "arbtui"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read().decode()

        try:
            return parse(await asyncio.to_thread(_get)) or None
        except Exception as e:  # noqa: BLE001 - offline or geo-blocked: use the static table
            log.warning("%s: instrument list unavailable (%s: %s); using the static symbol table",
                        cls.venue, type(e).__name__, e)
            return None

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

    # ================================================================ status

    def status(self) -> VenueStatus:
        syms = {s: SymbolStatus(state=sb.state, reason=sb.reason, since_ns=sb.since_ns,
                                changes=sb.changes) for s, sb in self.books.items()}
        if not self.enabled:
            state, reason = BookState.DISABLED, "disabled by operator"
        elif not self.connected:
            state, reason = (BookState.STALE if self.msg_count else BookState.SYNCING), self.conn_state_reason
        else:
            order = [BookState.RESYNC, BookState.STALE, BookState.SYNCING]
            state, reason = BookState.LIVE, ""
            for st in order:
                bad = [sb for sb in self.books.values() if sb.state is st]
                if bad:
                    state, reason = st, f"{bad[0].symbol}: {bad[0].reason}"
                    break
        lat = offset = None
        if len(self._latency) >= 5:
            samples = list(self._latency)
            floor = min(samples)  # best case ~ clock offset + minimum path delay
            offset = statistics.median(samples)
            lat = statistics.median(samples) - floor
        return VenueStatus(
            venue=self.venue, state=state, reason=reason, connected=self.connected,
            last_msg_ns=self.last_msg_ns, reconnects=self.reconnects, msg_rate=self.msg_rate,
            # quotes_out stays out of the counters: a status is republished when it changes,
            # and a count that moves with every quote would flood the status topic.
            symbols=syms, counters=dict(self.counters),
            feed_latency_ms=lat, clock_offset_ms=offset,
        )

    def live_symbols(self) -> list[str]:
        return [s for s, sb in self.books.items() if sb.state is BookState.LIVE]


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
