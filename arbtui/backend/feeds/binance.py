"""Binance spot: ``@depth@100ms`` diff stream synced to REST snapshots
(docs/protocols.md#binance).

Book integrity is Binance's own update-id rule, per symbol:

1. Buffer depth events until a REST snapshot arrives (the shared bridge,
   ``bridge.py``; docs/protocols.md#bridging-a-rest-snapshot).
2. Snapshot ``lastUpdateId`` < first buffered ``U``: the snapshot predates the
   buffer, so fetch again.
3. Drop buffered events with ``u <= lastUpdateId``; the first kept event must
   bridge it (``U <= lastUpdateId+1 <= u``).
4. Then apply in order; ``U > id+1`` is a gap -> re-snapshot THAT symbol only.

Snapshots are fetched concurrently, one task per symbol, under a REST weight
budget: cryptofeed fetches them inline and serially (stalling every symbol)
and clears every book on one symbol's gap. Those snapshot tasks (fetch under
the weight budget, bridge, install, the quiet-book check) are
``binance_sync.py``; this module is the stream: subscribe, dispatch, the
depth rules and the bookTicker cross-check.

``bookTicker`` shares the depth id space. It is not applied to the book (it
carries one level, so it cannot say which deeper levels vanished). It is used
as a cross-check instead: when its ``u`` equals the book's id, both describe the
same instant and the book's best bid/ask must equal it; otherwise it is either
older than the book (``u < id``) or from a batch the 100 ms depth stream has not
delivered yet (``u > id``), and is only remembered.
"""

from __future__ import annotations

import logging
import urllib.parse
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import RateLimiter, SymbolBook, VenueFeed
from arbtui.backend.feeds.binance_sync import BinanceSnapshots, BinanceSync, _ms_to_ns, depth_weight
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.binance")
_SPEC = venues.get("binance")

_decode = msgspec.json.decode


class _DepthEvent(msgspec.Struct, gc=False):
    """A ``depthUpdate`` in the exact shape the venue documents; the typed decode
    accepts nothing else (levels as two strings, integer ids)."""

    e: str
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]
    E: int = 0


class _DepthFrame(msgspec.Struct, gc=False):
    data: _DepthEvent
    stream: str | None = None


#: Nearly every frame of a book stream is a combined-stream ``depthUpdate`` of a
#: synced book. Decoded into structs in one pass it skips the two dicts and the key
#: lookups of the generic path (~8 % of such a frame on the simulator stream). Any
#: frame this refuses, and any book not synced, takes the generic path, whose checks
#: and error reports are the rule (test_feed_binance checks both paths agree).
_depth_decoder = msgspec.json.Decoder(_DepthFrame)
#: Off only in tests comparing the two paths.
TYPED_DEPTH = True

#: Binance: at most 1024 streams per connection.
_MAX_STREAMS = 1024

#: Depth events buffered per symbol while its snapshot is in flight. Bounded
#: memory: past it the buffer restarts (the snapshot would be stale anyway).
_MAX_BUFFER = 5000


class BinanceFeed(BinanceSnapshots, VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_frame = 2 ** 22
    keepalive_s = None  # the SERVER pings every 20 s; websockets answers with a pong
    # No application heartbeat exists; a quiet symbol can be silent for a while,
    # but bookTicker on any listed pair rarely pauses a full minute.
    stale_after_s = 60.0
    # Binance force-closes at 24 h; leave early enough to reconnect on our terms.
    max_conn_life_s = 23.5 * 3600
    # Binance disconnects above 5 incoming messages/s per connection (pongs count).
    send_rate = 4.0
    #: REST REQUEST_WEIGHT per minute we allow ourselves. The venue limit was
    #: 1200/min (2021 exchangeInfo) and is reportedly 6000/min now; stay at the
    #: older, lower figure so other tools on the same IP keep headroom.
    rest_weight_per_min: ClassVar[float] = 1200.0
    #: Streams put in the connection URL; the rest go in SUBSCRIBE frames. Keeps
    #: the request line far below proxy limits (~8 KiB).
    url_streams: ClassVar[int] = 200
    #: Params per SUBSCRIBE frame (no documented per-frame limit; small frames,
    #: paced at ``send_rate``, stay under 5 messages/s).
    sub_batch: ClassVar[int] = 100
    #: A LIVE book with no depth event for this long is checked against the venue's
    #: current ``lastUpdateId`` (limit=5, weight 5): if the venue moved on while we
    #: heard nothing, the stream lost events with no U/u gap to show it.
    quiet_check_s: ClassVar[float] = 60.0
    #: Time the stream gets to deliver events the check's snapshot already counts.
    quiet_grace_s: ClassVar[float] = 1.0
    #: Pause after a 429/418 without a Retry-After header.
    rest_refused_wait_s: ClassVar[float] = 10.0
    #: How long a book waits for its first depth event before fetching the snapshot.
    first_event_wait_s: ClassVar[float] = 1.0
    sync_state: ClassVar[type[BookSync]] = BinanceSync
    #: The offline table is the registry's (``arbtui.venues``).
    #: REST depth snapshot path (USD-M futures: ``/fapi/v1/depth``, binance_usdm.py).
    depth_path: ClassVar[str] = "/api/v3/depth"
    #: How buffered events chain in the snapshot bridge: spot ids are contiguous
    #: (``U <= last + 1``, overlaps legal); USD-M chains exactly (``pu == last u``).
    bridge_exact: ClassVar[bool] = False

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        self.snapshot_limit = self.snapshot_limit_for(self.depth)
        self._weight = RateLimiter(self.rest_weight_per_min / 60.0, self.rest_weight_per_min / 2,
                                   self.clock)
        self._lower: dict[str, SymbolBook] = {sb.vsym.lower(): sb for sb in self.books.values()}
        self._sub_id = 0
        self._rest_paused_until = 0.0
        #: Symbols dropped because one connection carries at most 1024 streams. They
        #: get no book at all: a book without a stream would look LIVE yet never move.
        self.over_limit: list[str] = []
        per_conn = _MAX_STREAMS // 2  # depth + bookTicker per symbol
        if len(self.books) > per_conn:
            for s in list(self.books)[per_conn:]:
                sb = self.books.pop(s)
                self.by_vsym.pop(sb.vsym, None)
                self._lower.pop(sb.vsym.lower(), None)
                self.over_limit.append(s)
            self.count("symbols_over_limit", len(self.over_limit))
            log.warning("binance: %d symbols exceed one connection's 1024 streams; not subscribed: %s",
                        len(self.over_limit), ", ".join(self.over_limit[:10]))
        self._streams = self.streams()
        self.url = self.connect_url(self.url, self._streams[:self.url_streams])
        # The typed path inlines spot's depth rules (U <= id + 1): a subclass with its
        # own continuity or apply rule (USD-M's pu chain) keeps the generic path.
        cls = type(self)
        self._typed_depth = (cls.gap_in is BinanceFeed.gap_in and cls._apply is BinanceFeed._apply
                             and cls._on_depth is BinanceFeed._on_depth)

    @staticmethod
    def snapshot_limit_for(depth: int) -> int:
        return max(5, min(depth, 5000))

    @staticmethod
    def snapshot_weight(limit: int) -> int:
        return depth_weight(limit)

    def pending_of(self, ev: dict) -> bridge.Pending:
        """A buffered depth event as the bridge sees it: it moves the book from
        ``U - 1`` to ``u`` (spot ids are contiguous)."""
        return bridge.Pending(ev["U"] - 1, ev["u"], ev)

    def gap_in(self, sb: SymbolBook, ev: dict) -> str | None:
        """Why ``ev`` (newer than the book) does not continue it, or None (spot:
        ``U <= id + 1``)."""
        U = ev["U"]
        return f"gap: U={U} after id {sb.seq}" if U > sb.seq + 1 else None

    def on_event(self, e: Any, ev: dict, recv_ns: int, data: Any) -> bool:
        """An event type this venue has beyond depth/bookTicker (USD-M: markPriceUpdate).
        True when handled."""
        return False

    # ------------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``exchangeInfo`` -> normalized BASE-QUOTE -> symbol, spot pairs in TRADING only."""
        info = _decode(body)
        out: dict[str, str] = {}
        for s in info.get("symbols", []):
            if s.get("status") != "TRADING":
                continue  # BREAK, HALT, CANCEL_ONLY (2026) books are not tradable
            perms = s.get("permissions")
            sets = s.get("permissionSets")
            spot = s.get("isSpotTradingAllowed")
            if spot is False:
                continue
            if spot is None and perms is not None and "SPOT" not in perms and not sets:
                continue
            base, quote = s.get("baseAsset"), s.get("quoteAsset")
            if base and quote:
                out[f"{base}-{quote}"] = s["symbol"]
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Symbols with a depth stream in the connection URL or in SUBSCRIBE frames."""
        lower = {k.lower(): v for k, v in vsym_to_norm.items()}
        streams = _url_streams(url)
        for m in cls.sent_objects(sent_frames):
            if m.get("method") == "SUBSCRIBE":
                streams += [p for p in m.get("params", []) if isinstance(p, str)]
        out: list[str] = []
        for st in streams:
            vs, _, kind = st.partition("@")
            if kind.startswith("depth") and vs.lower() in lower:
                n = lower[vs.lower()]
                if n not in out:
                    out.append(n)
        return out

    def streams(self) -> list[str]:
        out = []
        for sb in self.books.values():
            v = sb.vsym.lower()
            out += [f"{v}@depth@100ms", f"{v}@bookTicker"]
        return out

    @staticmethod
    def connect_url(base: str, streams: list[str]) -> str:
        """Combined-stream URL; a URL that already names streams is kept as given."""
        if "/stream?" in base or "/ws/" in base or base.rstrip("/").endswith("/ws"):
            return base  # the operator chose the endpoint; missing streams go in SUBSCRIBE
        root = base.rstrip("/")
        root = root.removesuffix("/stream")
        if not streams:
            return root + "/stream"
        return root + "/stream?streams=" + "/".join(streams)

    # ------------------------------------------------------------------ adapter API

    def subscribe_messages(self) -> list[str]:
        named = _url_streams(self.url)
        rest = [s for s in self._streams if s not in named]
        msgs = []
        n = max(1, self.sub_batch)
        for i in range(0, len(rest), n):
            self._sub_id += 1
            msgs.append(msgspec.json.encode(
                {"method": "SUBSCRIBE", "params": rest[i:i + n], "id": self._sub_id}).decode())
        return msgs

    async def on_open(self) -> None:
        # Every symbol starts syncing now, not at its first event, so a quiet
        # symbol still gets its snapshot (after ``first_event_wait_s``).
        for sb in self.books.values():
            self._ensure_sync(sb)
        if self.http_get_impl is None:  # recorded REST answers cannot speak for the present
            self.spawn(self._quiet_watch())

    async def resync_symbol(self, sb: SymbolBook) -> None:
        # Only this symbol: its buffer restarts and one snapshot is fetched.
        sb.sync.hold = False
        self._ensure_sync(sb)

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        if TYPED_DEPTH and self._typed_depth and data.__class__ is str and '"depthUpdate"' in data:
            try:
                ev = _depth_decoder.decode(data).data
            except msgspec.DecodeError:  # also ValidationError: another shape
                ev = None
            if ev is not None and ev.e == "depthUpdate" and self._on_depth_typed(ev, recv_ns, data):
                return
        try:
            msg = _decode(data)
        except msgspec.DecodeError as e:
            self.frame_error(f"json: {e}", data)
            return
        if not isinstance(msg, dict):
            self.frame_error("not an object", data)
            return
        ev = msg.get("data")
        stream = msg.get("stream")
        if ev is None:
            # Raw /ws stream, or a control reply, or a connection event.
            if "result" in msg and "id" in msg:
                self.count("sub_acks")
                return
            if "error" in msg:
                self.count("venue_errors")
                log.warning("binance: venue error %s", msg.get("error"))
                return
            ev = msg
        if not isinstance(ev, dict):
            self.frame_error("data is not an object", data)
            return
        e = ev.get("e")
        if e == "depthUpdate":
            self._on_depth(ev, recv_ns, data)
        elif e is None and "u" in ev and "b" in ev and "a" in ev:
            self._on_book_ticker(ev, data)
        elif e == "serverShutdown":
            # Binance warns before maintenance closes the socket; leave first.
            self.count("server_shutdown")
            self.request_reconnect("serverShutdown from venue")
        elif self.on_event(e, ev, recv_ns, data):
            pass
        elif stream is not None or e is not None:
            self.count("ignored")
        else:
            self.frame_error("unknown message", data)

    # ------------------------------------------------------------------ depth

    def _sb_for(self, ev: dict, data) -> SymbolBook | None:
        s = ev.get("s")
        if not isinstance(s, str):
            self.frame_error("missing symbol", data)
            return None
        sb = self.by_vsym.get(s) or self._lower.get(s.lower())
        if sb is None:
            self.count("unknown_symbol")
        return sb

    def _on_depth(self, ev: dict, recv_ns: int, data) -> None:
        sb = self._sb_for(ev, data)
        if sb is None:
            return
        U, u = ev.get("U"), ev.get("u")
        if not isinstance(U, int) or not isinstance(u, int) or U > u:
            self.frame_error("bad update ids", data)
            return
        if sb.sync.phase is not SYNCED:
            # Binance's ids: the event moves the book from U - 1 to u (bridge.py).
            if bridge.push(sb.sync.pending, self.pending_of(ev), _MAX_BUFFER):
                self.count("buffer_overflow")
            self._ensure_sync(sb)
            return
        if u <= sb.seq:
            self.count("stale_events")  # already covered by the snapshot / book
            return
        gap = self.gap_in(sb, ev)  # the bridge's continuity rule, inline on the hot path
        if gap is not None:
            self.count("gaps")
            self._restart(sb, gap)
            return
        if not self._apply(sb, ev, data):
            return
        self.publish(sb, recv_ns, _ms_to_ns(ev.get("E")), sb.seq)
        self._check_ticker(sb)

    def _on_depth_typed(self, ev: _DepthEvent, recv_ns: int, data) -> bool:
        """``_on_depth`` (spot's rules, ``gap_in`` inline) for a typed event of a SYNCED
        book; False: the generic path must handle this frame (unknown symbol, book
        syncing, bad ids)."""
        s = ev.s
        sb = self.by_vsym.get(s) or self._lower.get(s.lower())
        if sb is None or sb.sync.phase is not SYNCED:
            return False
        U, u = ev.U, ev.u
        if U > u:
            return False
        if u <= sb.seq:
            self.count("stale_events")
            return True
        if U > sb.seq + 1:
            self.count("gaps")
            self._restart(sb, f"gap: U={U} after id {sb.seq}")
            return True
        try:
            sb.book.apply_sides(ev.b, ev.a)
        except (BookError, TypeError, ValueError, IndexError) as e:
            self.frame_error(f"bad levels: {e}", data)
            self._restart(sb, f"bad frame: {e}")
            return True
        sb.seq = u
        self.publish(sb, recv_ns, ev.E * 1_000_000, u)
        bt = sb.sync.ticker
        if bt is not None and bt[0] == u:  # _check_ticker's own first test, without the call
            self._check_ticker(sb)
        return True

    def _apply(self, sb: SymbolBook, ev: dict, data) -> bool:
        try:
            sb.book.apply_sides(ev["b"], ev["a"])
        except (BookError, KeyError, TypeError, ValueError, IndexError) as e:
            # Half-applied: the book can no longer be trusted.
            self.frame_error(f"bad levels: {e}", data)
            self._restart(sb, f"bad frame: {e}")
            return False
        sb.seq = ev["u"]
        return True

    def _drop(self, sb: SymbolBook) -> None:
        """Stop trusting ``sb``: buffer from now on, and hold the re-snapshot until
        the base's rate-limited resync releases it (``resync_symbol``)."""
        sb.book.clear()
        sb.seq = -1
        x = sb.sync
        x.phase = AWAIT_SNAPSHOT
        x.pending = []
        x.hold = True

    def _restart(self, sb: SymbolBook, reason: str) -> None:
        """Stop applying to ``sb`` at once; buffer until the rate-limited re-snapshot."""
        self._drop(sb)
        self.resync(sb, reason)

    def resync(self, sb: SymbolBook, reason: str) -> None:
        if sb.sync.phase is SYNCED:
            # Only publish asks for a resync of a book still SYNCED (it found the book
            # crossed; _restart drops first): stop trusting it now. Overriding resync
            # rather than publish keeps publish one call on every depth event.
            self._drop(sb)
        super().resync(sb, reason)

    # ------------------------------------------------------------------ bookTicker

    def _on_book_ticker(self, ev: dict, data) -> None:
        sb = self._sb_for(ev, data)
        if sb is None:
            return
        u = ev.get("u")
        if not isinstance(u, int):
            self.frame_error("bad bookTicker id", data)
            return
        self.count("book_tickers")
        prev = sb.sync.ticker
        if prev is None or u > prev[0]:
            sb.sync.ticker = (u, ev.get("b"), ev.get("a"))
        self._check_ticker(sb)

    def _check_ticker(self, sb: SymbolBook) -> None:
        bt = sb.sync.ticker
        if bt is None or sb.seq < 0 or bt[0] != sb.seq or sb.state is not BookState.LIVE:
            return
        self.count("bbo_checks")
        bb, ba = sb.book.best_bid(), sb.book.best_ask()
        try:
            ok = (bb is not None and ba is not None
                  and _dec_eq(bb[0], bt[1]) and _dec_eq(ba[0], bt[2]))
        except Exception:  # noqa: BLE001 - a malformed ticker price is not a book fault
            self.count("frame_errors")
            return
        if not ok:
            # Same id, different best price: the L2 book has diverged from the venue.
            self.count("bbo_mismatch")
            self._restart(sb, f"bookTicker mismatch at id {sb.seq}")


def _url_streams(url: str) -> list[str]:
    q = urllib.parse.urlsplit(url)
    out = [s for v in urllib.parse.parse_qs(q.query).get("streams", []) for s in v.split("/")]
    if q.path.startswith("/ws/"):
        out += q.path[4:].split("/")
    return out


def _dec_eq(a: str, b: Any) -> bool:
    # The same text is the same decimal: most checks end here, without two Decimals.
    return isinstance(b, str) and (a == b or Decimal(a) == Decimal(b))
