"""Simulated Bitstamp WebSocket API v2: the ``order_book_<pair>`` channel
(docs/protocols.md#bitstamp).

``bts:subscribe`` / ``bts:unsubscribe`` with ``data.channel`` are answered
``bts:subscription_succeeded`` / ``bts:unsubscription_succeeded``; every tick
that changes a book sends its whole top 100 per side, stamped with
``timestamp`` (s) and ``microtimestamp`` (µs, as strings, increasing per
channel). ``bts:heartbeat`` is answered in kind; ``request_reconnect()`` sends
``bts:request_reconnect``. Also serves ``/api/v2/trading-pairs-info/``.

Faults: ``seq`` (the previous book sent again with its older microtimestamp:
out of order), ``crossed`` (one book with a bid above the best ask; the next
book is clean), ``gap`` (one book not sent: undetectable and harmless, the
next is whole), ``drop``, ``malformed``, ``silence``. ``checksum`` and
``snapshot`` do not exist here and are discarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from arbtui.backend.sim.market import VenueBook
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.bitstamp")

#: Faults beyond the shared list (``server.FAULTS``).
EXTRA_FAULTS = ("seq",)


class _Conn:
    __slots__ = ("q", "subs", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.q: asyncio.Queue[str] = asyncio.Queue(maxsize=20_000)
        self.subs: set[str] = set()


class Sim(SimVenue):
    venue: ClassVar[str] = "bitstamp"
    needs_http: ClassVar[bool] = True
    ws_path: ClassVar[str] = "/"

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.pair = {s: venue_symbol(self.venue, s).lower() for s in self.symbols}
        self.by_channel = {f"order_book_{p}": s for s, p in self.pair.items()}
        self.cur: dict[str, VenueBook] = {s: self.book(s) for s in self.symbols}
        self.last_frame: dict[str, str] = {}
        self._mts = int(time.time() * 1e6)
        self.conns: set[_Conn] = set()
        self.heartbeats = 0

    def inject(self, kind: str) -> None:
        if kind in EXTRA_FAULTS:
            self.pending_faults.append(kind)
            return
        super().inject(kind)

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))

    def request_reconnect(self) -> None:
        for c in list(self.conns):
            self.put_or_drop(self.conns, c, '{"event":"bts:request_reconnect","channel":"","data":""}')

    # ------------------------------------------------------------ market -> books

    def _next_mts(self) -> int:
        # Strictly increasing per channel, as the venue's are (one counter for all).
        self._mts = max(self._mts + 1, int(time.time() * 1e6))
        return self._mts

    def _frame(self, s: str, bids: list, asks: list) -> str:
        mts = self._next_mts()
        return json.dumps({"data": {"timestamp": str(mts // 1_000_000), "microtimestamp": str(mts),
                                    "bids": bids, "asks": asks},
                           "channel": f"order_book_{self.pair[s]}", "event": "data"},
                          separators=(",", ":"))

    def _tick(self) -> None:
        if self.take_fault("checksum", "snapshot"):
            log.info("bitstamp sim: checksum/snapshot faults do not exist here; ignored")
        stale = self.take_fault("seq")
        gap = self.take_fault("gap")
        crossed = self.take_fault("crossed")
        for i, s in enumerate(self.symbols):
            new = self.book(s)
            first = i == 0
            if stale and first:
                if s in self.last_frame:
                    self._send(s, self.last_frame[s])  # an older book, again: out of order
                else:
                    self.pending_faults.append("seq")  # nothing sent yet to repeat
            if new == self.cur[s] and not (crossed and first):
                if gap and first:
                    self.pending_faults.append("gap")  # no book to lose this tick
                continue
            self.cur[s] = new
            bids = [[p, q] for p, q in new.sorted_bids()[:100]]
            asks = [[p, q] for p, q in new.sorted_asks()[:100]]
            if crossed and first:
                dp = len(asks[0][0].partition(".")[2])
                bids.insert(0, [f"{float(asks[0][0]) * 1.001:.{dp}f}", "0.5"])
            frame = self._frame(s, bids, asks)
            if not (crossed and first):
                self.last_frame[s] = frame
            if gap and first:
                log.info("bitstamp sim: gap fault: one %s book not sent", s)
                continue
            self._send(s, frame)

    def _send(self, s: str, frame: str) -> None:
        ch = f"order_book_{self.pair[s]}"
        for c in list(self.conns):
            if ch in c.subs:
                self.put_or_drop(self.conns, c, frame)

    # ------------------------------------------------------------ WebSocket

    async def handle(self, ws) -> None:
        conn = _Conn(ws)
        self.conns.add(conn)
        reader = asyncio.get_running_loop().create_task(self._reader(conn))
        try:
            while True:
                frame = await conn.q.get()
                if await self.queued_fault(ws, self.conns, conn):
                    return
                await self.send(ws, frame)
        finally:
            self.conns.discard(conn)
            reader.cancel()

    def _reply(self, conn: _Conn, event: str, channel: str, data: Any) -> None:
        self.put_or_drop(self.conns, conn, json.dumps(
            {"event": event, "channel": channel, "data": data}, separators=(",", ":")))

    async def _reader(self, conn: _Conn) -> None:
        async for text in conn.ws:
            try:
                m = json.loads(text)
                ev = m["event"]
            except (ValueError, KeyError, TypeError):
                self._reply(conn, "bts:error", "", {"code": None, "message": "Bad subscription string."})
                continue
            if ev == "bts:heartbeat":
                self.heartbeats += 1
                self._reply(conn, "bts:heartbeat", "", {"status": "success"})
                continue
            ch = (m.get("data") or {}).get("channel") if isinstance(m.get("data"), dict) else None
            if ev not in ("bts:subscribe", "bts:unsubscribe") or ch not in self.by_channel:
                self._reply(conn, "bts:error", "", {"code": None,
                                                     "message": "Incorrect JSON format."})
                continue
            if ev == "bts:subscribe":
                conn.subs.add(ch)
                self._reply(conn, "bts:subscription_succeeded", ch, {})
            else:
                conn.subs.discard(ch)
                self._reply(conn, "bts:unsubscription_succeeded", ch, {})

    # ------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        if path.split("?")[0].rstrip("/") == "/api/v2/trading-pairs-info":
            rows = [{"name": "/".join(split(s)), "url_symbol": p, "trading": "Enabled"}
                    for s, p in self.pair.items()]
            rows.append({"name": "HALT/USD", "url_symbol": "haltusd", "trading": "Disabled"})
            return 200, json.dumps(rows)
        return 404, '{"status":"error","reason":"Not found"}'
