"""Crypto.com Exchange spot: the Exchange API v1 market WebSocket,
``book.{instrument_name}.{depth}`` with delta updates (docs/protocols.md#cryptocom).

The rules are Crypto.com's own:

1. Wait one second after connecting before the first request (the venue's
   rate limits count from the connection's first calendar second), then
   ``subscribe`` with ``book_subscription_type: SNAPSHOT_AND_UPDATE`` and
   ``book_update_frequency: 10``.
2. The first message per book is on channel ``book``: a full book of
   ``depth`` levels with ``u`` (its update id). Every message on ``book`` is a
   full book and replaces ours (v1 snapshot mode, and the v2 API of older
   recordings, send only these).
3. Then channel ``book.update``: ``update.bids/asks`` rows ``[price, qty,
   count]``, qty ``"0"`` deletes; ``pu`` must equal the ``u`` of the message
   before it. Anything else is a gap: THAT book is dropped and resubscribed
   (unsubscribe + subscribe its channel: a fresh ``book`` snapshot follows).
4. ``public/heartbeat`` (every 30 s) must be answered with
   ``public/respond-heartbeat`` carrying the same ``id``, or the venue closes
   the connection.

``t`` is the venue's event time (ms); quotes carry ``u`` as their sequence.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.cryptocom")
_SPEC = venues.get("cryptocom")
#: v1 serves 10 or 50 levels per side.
DEPTH = 50
_BAD_ROW = (BookError, TypeError, ValueError, IndexError, AttributeError, KeyError)


def _loads(data: str | bytes) -> Any:
    # v2-era recordings write prices as JSON numbers ("45.320"): keep their text.
    return json.loads(data, parse_float=str)


def _rows(rows: Any) -> list[tuple[str, str]]:
    out = []
    for r in rows or ():
        px, qty = r[0], r[1]
        out.append((px if px.__class__ is str else str(int(px)),
                     qty if qty.__class__ is str else str(int(qty))))
    return out


class CryptocomFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_depth: ClassVar[int | None] = DEPTH
    max_frame: ClassVar[int] = 2 ** 21
    #: The venue sends heartbeats every 30 s; the client answers, never pings.
    keepalive_s: ClassVar[float | None] = None
    stale_after_s: ClassVar[float] = 45.0
    #: Market-data requests: 100 per second; we stay well below.
    send_rate: ClassVar[float] = 5.0
    #: Rule 1 (tests shorten it).
    connect_pause_s: ClassVar[float] = 1.0

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        self._ids = itertools.count(1)
        self.by_channel = {self._channel(sb): sb for sb in self.books.values()}

    @staticmethod
    def _channel(sb: SymbolBook) -> str:
        return f"book.{sb.vsym}.{DEPTH}"

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """v1 ``get-instruments`` (``result.data``: ``symbol``, ``inst_type``
        CCY_PAIR, ``base_ccy``, ``quote_ccy``, ``tradable``) or the v2 list of
        older recordings (``result.instruments``: ``instrument_name``,
        ``base_currency``, ``quote_currency``) -> {BASE-QUOTE: name}. Spot only."""
        res = json.loads(body).get("result") or {}
        out: dict[str, str] = {}
        for r in res.get("data") or []:
            if (isinstance(r, dict) and r.get("inst_type") == "CCY_PAIR"
                    and r.get("tradable", True) and r.get("base_ccy") and r.get("quote_ccy")):
                out[f"{r['base_ccy'].upper()}-{r['quote_ccy'].upper()}"] = r["symbol"]
        for r in res.get("instruments") or []:
            if isinstance(r, dict) and r.get("base_currency") and r.get("quote_currency"):
                out[f"{r['base_currency'].upper()}-{r['quote_currency'].upper()}"] = r["instrument_name"]
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        out: list[str] = []
        for m in cls.sent_objects(sent_frames):
            if m.get("method") != "subscribe":
                continue
            for ch in (m.get("params") or {}).get("channels") or []:
                parts = ch.split(".") if isinstance(ch, str) else []
                if len(parts) >= 2 and parts[0] == "book":
                    n = vsym_to_norm.get(parts[1])
                    if n and n not in out:
                        out.append(n)
        return out

    # ------------------------------------------------------------ outbound

    def _req(self, method: str, channels: list[str]) -> str:
        params: dict[str, Any] = {"channels": channels}
        if method == "subscribe":
            params.update(book_subscription_type="SNAPSHOT_AND_UPDATE", book_update_frequency=10)
        return json.dumps({"id": next(self._ids), "method": method, "params": params,
                           "nonce": self.clock_ns() // 1_000_000})

    def subscribe_messages(self) -> list[str]:
        return []  # sent by on_open, after the venue's one-second pause (rule 1)

    async def on_open(self) -> None:
        await asyncio.sleep(self.connect_pause_s)
        self.send(self._req("subscribe", list(self.by_channel)))

    async def resync_symbol(self, sb: SymbolBook) -> None:
        ch = self._channel(sb)
        self.resubscribe_book(sb, [self._req("unsubscribe", [ch]), self._req("subscribe", [ch])],
                              f"resub-{next(self._ids)}")

    def resync(self, sb: SymbolBook, reason: str) -> None:
        sb.book.clear()  # nothing lands on a book we stopped trusting
        sb.seq = -1
        sb.sync.phase = AWAIT_SNAPSHOT
        super().resync(sb, reason)

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            m = _loads(data)
        except ValueError as e:
            self.frame_error(f"json: {e}", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        method = m.get("method")
        if method == "public/heartbeat":
            self.count("heartbeats")
            self.send(json.dumps({"id": m.get("id"), "method": "public/respond-heartbeat"}))
            return
        if m.get("code", 0) != 0:
            self.count("venue_errors")
            log.warning("cryptocom: %s refused (%s): %s", method, m.get("code"), m.get("message"))
            return
        res = m.get("result")
        if method == "subscribe" and isinstance(res, dict):
            self._on_book(res, recv_ns, data)
        elif method in ("subscribe", "unsubscribe"):
            self.count("sub_acks")
        elif method is None:
            self.frame_error("no method", data)
        else:
            self.count("ignored")

    def _on_book(self, res: dict, recv_ns: int, data: Any) -> None:
        channel = res.get("channel")
        if channel not in ("book", "book.update"):
            self.count("ignored")
            return
        sb = self.by_vsym.get(res.get("instrument_name"))
        items = res.get("data")
        if sb is None:
            self.count("unknown_symbol")
            return
        if not isinstance(items, list) or not items or not isinstance(items[0], dict):
            self.frame_error("no book data", data)
            return
        for d in items:
            if channel == "book":
                self._snapshot(sb, d, recv_ns, data)
            else:
                self._update(sb, d, recv_ns, data)

    def _snapshot(self, sb: SymbolBook, d: dict, recv_ns: int, data: Any) -> None:
        try:
            sb.book.load(_rows(d["bids"]), _rows(d["asks"]))
        except _BAD_ROW as e:
            self.frame_error(f"bad book: {e}", data, sb)
            return
        u = d.get("u")
        sb.seq = u if u.__class__ is int else -1
        sb.sync.phase = SYNCED
        self.count("snapshots")
        self.set_state(sb, BookState.LIVE, "")
        self.publish(sb, recv_ns, _ms(d.get("t")), sb.seq)

    def _update(self, sb: SymbolBook, d: dict, recv_ns: int, data: Any) -> None:
        u, pu, upd = d.get("u"), d.get("pu"), d.get("update")
        if u.__class__ is not int or pu.__class__ is not int or not isinstance(upd, dict):
            self.frame_error("bad book.update ids", data)
            return
        if sb.sync.phase is not SYNCED:
            self.count("updates_before_snapshot")
            return
        if pu != sb.seq:
            self.count("gaps")
            self.resync(sb, f"gap: pu {pu} after u {sb.seq}")
            return
        try:
            sb.book.apply_sides(_rows(upd.get("bids")), _rows(upd.get("asks")))
        except _BAD_ROW as e:
            self.frame_error(f"bad update: {e}", data, sb)
            return
        sb.seq = u
        self.publish(sb, recv_ns, _ms(d.get("t")), u)


def _ms(v: Any) -> int:
    return v * 1_000_000 if v.__class__ is int else 0
