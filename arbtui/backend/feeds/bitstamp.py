"""Bitstamp WebSocket API v2: the ``order_book_<pair>`` channel (docs/protocols.md,
"Bitstamp").

Bitstamp offers two book channels. ``diff_order_book_<pair>`` sends changes,
but with no sequence number: the only rule is "apply diffs whose
``microtimestamp`` is after the REST snapshot's", and a lost diff can never be
seen. ``order_book_<pair>`` sends the whole top 100 of each side on every
change. This adapter speaks ``order_book_``: each message replaces the book,
so a lost message is healed by the next one and no snapshot needs bridging;
100 levels are plenty for arbitrage sizing.

What the wire does let us check is order: within one channel the
``microtimestamp`` must increase. A message at or before the newest one seen
means the stream is out of order; the book leaves LIVE (RESYNC) and only a
message newer than everything seen so far brings it back.

Keepalive: the client sends ``bts:heartbeat`` (answered the same). The venue
asks clients to leave with ``bts:request_reconnect`` (maintenance): we do.
Recordings of the Pusher-era v1 API (``data`` as a JSON string) or of the
``diff_order_book_`` channel are refused by name, never misread.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.bitstamp")
_SPEC = venues.get("bitstamp")
_decode = msgspec.json.decode

_PREFIX = "order_book_"


class BitstampFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    default_url: ClassVar[str] = _SPEC.ws_url
    default_rest: ClassVar[str] = _SPEC.rest_url
    instruments_path: ClassVar[str] = _SPEC.instruments_path
    max_frame: ClassVar[int] = 2 ** 22
    keepalive_s: ClassVar[float | None] = 10.0
    #: Heartbeats are answered, so silence this long is a dead link.
    stale_after_s: ClassVar[float] = 30.0
    #: A channel the venue silently stopped serving (the socket still answers
    #: heartbeats) cannot be told from a quiet market; an hourly reconnect
    #: re-subscribes every book and bounds how long that can last.
    max_conn_life_s: ClassVar[float | None] = 3600.0
    send_rate: ClassVar[float] = 10.0
    STATIC_SYMBOLS: ClassVar[dict[str, str]] = dict(_SPEC.static_symbols)

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        for sb in self.books.values():
            sb.book.depth = min(sb.book.depth, 100)
        self.by_channel: dict[str, SymbolBook] = {
            _PREFIX + sb.vsym.lower(): sb for sb in self.books.values()}
        #: Newest microtimestamp seen per channel, kept across a drop of the book.
        self._newest: dict[str, int] = {}

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``trading-pairs-info`` -> {BASE-QUOTE: PAIR}; ``name`` is ``BTC/USD``."""
        out: dict[str, str] = {}
        for r in json.loads(body):
            if not isinstance(r, dict) or r.get("trading") not in (None, "Enabled"):
                continue
            name, url_sym = r.get("name"), r.get("url_symbol")
            base, _, quote = (name or "").partition("/")
            if base and quote and url_sym:
                out[f"{base.upper()}-{quote.upper()}"] = url_sym.upper()
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        out: list[str] = []
        other = ""
        for m in cls.sent_objects(sent_frames):
            d = m.get("data")
            ch = d.get("channel") if isinstance(d, dict) else None
            if m.get("event") != "bts:subscribe" or not isinstance(ch, str):
                if m.get("event") == "pusher:subscribe":
                    other = "Pusher-era v1 API"
                continue
            if ch.startswith(_PREFIX):
                n = vsym_to_norm.get(ch[len(_PREFIX):].upper())
                if n and n not in out:
                    out.append(n)
            elif "order_book" in ch:
                other = ch.rpartition("_")[0] + "_<pair>"
        if not out and other:
            raise ValueError(f"Bitstamp {other} recordings are not spoken here "
                             f"(only {_PREFIX}<pair> full books)")
        return out

    # ------------------------------------------------------------ outbound

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"event": "bts:subscribe", "data": {"channel": ch}})
                for ch in self.by_channel]

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return '{"event":"bts:heartbeat"}'

    async def resync_symbol(self, sb: SymbolBook) -> None:
        """Nothing to fetch: the channel's next message is a whole book."""

    def resync(self, sb: SymbolBook, reason: str) -> None:
        sb.book.clear()
        super().resync(sb, reason)

    def reset_books(self, state: BookState, reason: str) -> None:
        super().reset_books(state, reason)
        self._newest.clear()  # a new connection starts a new order

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            m = _decode(data)
        except msgspec.DecodeError as e:
            self.frame_error(f"json: {e}", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        ev, ch = m.get("event"), m.get("channel")
        if ev == "data":
            sb = self.by_channel.get(ch)
            d = m.get("data")
            if sb is None:
                self.count("ignored")
            elif isinstance(d, str):
                # Pusher (v1) sent ``data`` as a JSON string: another API, never guessed at.
                self.frame_error("Pusher-era v1 frame (data is a string): not spoken", data)
            elif not isinstance(d, dict):
                self.frame_error("data is not an object", data)
            else:
                self._on_book(sb, ch, d, recv_ns, data)
        elif ev == "bts:heartbeat":
            self.count("pongs")
        elif ev == "bts:subscription_succeeded":
            self.count("sub_acks")
        elif ev == "bts:request_reconnect":
            self.count("reconnect_requests")
            self.request_reconnect("bts:request_reconnect from venue")
        elif ev == "bts:error":
            self.count("venue_errors")
            log.warning("bitstamp: venue error: %s", m.get("data"))
        elif ev is None:
            self.frame_error("no event", data)
        else:
            self.count("ignored")

    def _on_book(self, sb: SymbolBook, ch: str, d: dict, recv_ns: int, data) -> None:
        try:
            mts = int(d["microtimestamp"])  # a string of digits on the wire
            bids, asks = d["bids"], d["asks"]
        except (KeyError, TypeError, ValueError):
            self.frame_error("book without microtimestamp/bids/asks", data)
            return
        newest = self._newest.get(ch, -1)
        if mts <= newest:
            self.count("seq_regressions")
            self.resync(sb, f"microtimestamp {mts} not after {newest}: out of order")
            return
        self._newest[ch] = mts
        try:
            sb.book.load(bids, asks)
        except (BookError, TypeError, ValueError, IndexError) as e:
            self.frame_error(f"bad level: {e}", data, sb)
            return
        sb.book.truncate()
        if sb.state is not BookState.LIVE:
            self.set_state(sb, BookState.LIVE, "")
        self.publish(sb, recv_ns, mts * 1000)
