"""The shape every venue adapter shares.

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

``VenueFeed`` is assembled from three modules, one concept each: this one (the
adapter API, per-book state changes, resync, bad frames, status), the live
connection (``feeds/connection.py``: ``run``, the writer and watchdog, ``send``,
``http_get``, and the ``RateLimiter``/``Backoff`` pacing rules) and the publish
path every frame goes through (``feeds/publish.py``: ``SymbolBook``, ``publish``,
the liveness refresh). Adapters import all of it from here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import statistics
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.feeds.connection import Backoff, Connection, RateLimiter, _has_loop
from arbtui.backend.feeds.publish import LIVE_REFRESH_NS, BookPublisher, SymbolBook
from arbtui.backend.feeds.sync import BookSync
from arbtui.backend.metrics import FEED_BUCKETS_S, Histogram, resync_kind
from arbtui.model import BookState, BookStatus, Funding, Quote, SymbolStatus, VenueStatus

__all__ = ["LIVE_REFRESH_NS", "Backoff", "RateLimiter", "SymbolBook", "VenueFeed"]

log = logging.getLogger("arbtui.feeds")


class VenueFeed(Connection, BookPublisher):
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
        self._latency_hist = Histogram(FEED_BUCKETS_S)  # arbtui_feed_latency_seconds
        self._lat_pending: list[float] = []  # its samples not yet binned (publish)
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
