"""Gate spot (API v4): the ``spot.obu`` order-book channel (docs/protocols.md, "Gate").

Of Gate's two v4 book channels this speaks ``spot.obu`` (2025), not the older
``spot.order_book_update``: obu sends the full book in-band on subscribe, so
no REST snapshot has to be bridged, and its id rule is exact. Per book
(``ob.<PAIR>.<50|400>``):

- ``full: true`` replaces the book and its id (``u``). It always opens a
  subscription, and the venue may send one again at any time.
- An increment carries ``U`` (first id) and ``u`` (last id) and continues
  the book only if ``U == id + 1``; then the id becomes ``u``. Anything else
  is a gap: unsubscribe + subscribe THAT book and wait for its full push.
- A size of ``"0"`` removes the level.

Keepalive: an application ``spot.ping`` every 10 s (answered ``spot.pong``).
Recordings of ``spot.order_book_update`` / ``spot.order_book`` (the older
channels) or of API v3 (``depth.update``) are refused by name on replay.
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

log = logging.getLogger("arbtui.feeds.gate")
_SPEC = venues.get("gate")
_decode = msgspec.json.decode

_CHANNEL = "spot.obu"
_OLD_CHANNELS = ("spot.order_book_update", "spot.order_book")


class GateFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    default_url: ClassVar[str] = _SPEC.ws_url
    default_rest: ClassVar[str] = _SPEC.rest_url
    instruments_path: ClassVar[str] = _SPEC.instruments_path
    max_frame: ClassVar[int] = 2 ** 22
    #: Gate's own client sends ``spot.ping`` every 10 s.
    keepalive_s: ClassVar[float | None] = 10.0
    #: 400-level books push every 100 ms and pings are answered: 30 s of nothing is dead.
    stale_after_s: ClassVar[float] = 30.0
    send_rate: ClassVar[float] = 10.0
    STATIC_SYMBOLS: ClassVar[dict[str, str]] = dict(_SPEC.static_symbols)

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        #: obu levels: 400 (100 ms) or 50 (20 ms); the book keeps what it is sent.
        self.level = 400 if self.depth > 50 else 50
        for sb in self.books.values():
            sb.book.depth = min(sb.book.depth, self.level)
        self.by_stream: dict[str, SymbolBook] = {self._stream(sb): sb for sb in self.books.values()}
        self._resub = 0

    def _stream(self, sb: SymbolBook) -> str:
        return f"ob.{sb.vsym}.{self.level}"

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``/api/v4/spot/currency_pairs`` -> {BASE-QUOTE: id}, tradable pairs only."""
        out: dict[str, str] = {}
        for r in json.loads(body):
            if not isinstance(r, dict) or r.get("trade_status") not in (None, "tradable"):
                continue
            base, quote, pid = r.get("base"), r.get("quote"), r.get("id")
            if base and quote and pid:
                out[f"{base.upper()}-{quote.upper()}"] = pid
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        out: list[str] = []
        old: str | None = None
        for m in cls.sent_objects(sent_frames):
            ch = m.get("channel")
            if str(m.get("method") or "").startswith("depth."):
                old = "API v3 depth.subscribe"
            if ch in _OLD_CHANNELS and m.get("event") == "subscribe":
                old = ch
            if ch != _CHANNEL or m.get("event") != "subscribe":
                continue
            for p in m.get("payload") or []:
                parts = p.split(".") if isinstance(p, str) else []
                n = vsym_to_norm.get(parts[1]) if len(parts) == 3 else None
                if n and n not in out:
                    out.append(n)
        if not out and old:
            raise ValueError(f"Gate {old} recordings are not spoken here (only {_CHANNEL})")
        return out

    # ------------------------------------------------------------ outbound

    def _request(self, event: str, streams: list[str]) -> str:
        return json.dumps({"time": self.clock_ns() // 1_000_000_000, "channel": _CHANNEL,
                           "event": event, "payload": streams})

    def subscribe_messages(self) -> list[str]:
        streams = list(self.by_stream)
        return [self._request("subscribe", streams[i:i + 50]) for i in range(0, len(streams), 50)]

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return json.dumps({"time": self.clock_ns() // 1_000_000_000, "channel": "spot.ping"})

    async def resync_symbol(self, sb: SymbolBook) -> None:
        # Gate: a broken chain is fixed by unsubscribe + subscribe (a fresh full push).
        self._resub += 1
        st = [self._stream(sb)]
        self.resubscribe_book(sb, [self._request("unsubscribe", st), self._request("subscribe", st)],
                              self._resub)

    def resync(self, sb: SymbolBook, reason: str) -> None:
        # Every way out of LIVE (gap, crossed, bad frame) drops the book at once:
        # increments still in flight are ignored until the full push.
        sb.book.clear()
        sb.seq = -1
        super().resync(sb, reason)

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
        ch, ev = m.get("channel"), m.get("event")
        if ch == _CHANNEL and ev == "update":
            r = m.get("result")
            if not isinstance(r, dict):
                self.frame_error("update without result", data)
                return
            self._on_book(r, recv_ns, data)
        elif ch == "spot.pong":
            self.count("pongs")
        elif m.get("error"):
            self.count("venue_errors")
            err = m["error"]
            log.warning("gate: venue error on %s %s: %s", ch, ev, err)
        elif ev in ("subscribe", "unsubscribe"):
            self.count(f"{ev}_acks")
        elif ch is None:
            self.frame_error("no channel", data)
        else:
            self.count("ignored")

    def _on_book(self, r: dict, recv_ns: int, data) -> None:
        sb = self.by_stream.get(r.get("s"))
        if sb is None:
            self.count("unknown_stream")
            return
        u, bids, asks = r.get("u"), r.get("b") or [], r.get("a") or []
        if not isinstance(u, int) or not isinstance(bids, list) or not isinstance(asks, list):
            self.frame_error("bad ids/levels", data)
            return
        if r.get("full"):
            try:
                sb.book.load(bids, asks)
            except (BookError, TypeError, ValueError, IndexError) as e:
                self.frame_error(f"bad full book: {e}", data, sb)
                return
            sb.book.truncate()
            sb.seq = u
            self.count("snapshots")
            if sb.state is not BookState.LIVE:
                self.set_state(sb, BookState.LIVE, "")
            self.publish(sb, recv_ns, _ms(r.get("t")), u)
            return
        first = r.get("U")
        if not isinstance(first, int) or first > u:
            self.frame_error("bad U/u", data)
            return
        if sb.seq < 0:
            self.count("updates_before_snapshot")  # old subscription, or before the full push
            return
        if first != sb.seq + 1:
            self.count("gaps")
            self.resync(sb, f"gap: U={first} after id {sb.seq}")
            return
        book = sb.book
        try:
            for px, qty in bids:
                book.set(True, px, qty)
            for px, qty in asks:
                book.set(False, px, qty)
        except (BookError, TypeError, ValueError) as e:
            self.frame_error(f"bad level: {e}", data, sb)  # half-applied: resync
            return
        book.truncate()
        sb.seq = u
        self.publish(sb, recv_ns, _ms(r.get("t")), u)


def _ms(v: Any) -> int:
    return v * 1_000_000 if isinstance(v, int) else 0
