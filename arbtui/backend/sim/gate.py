"""Simulated Gate spot API v4: ``spot.order_book_update`` and the REST book with
its id (docs/protocols.md#gate).

Requests are ``{"time", "channel", "event", "payload"}``; subscribing
``[PAIR, "100ms"]`` is acknowledged with ``result: {"status": "success"}``
and followed by the pair's updates: ``U``/``u`` are the first and last update
ids of the tick's changes (one id per level change, per pair, venue-wide).
``GET /api/v4/spot/order_book?currency_pair=..&with_id=true`` answers the
book as of the last id sent, so the documented bridge holds exactly.
``spot.ping`` is answered ``spot.pong``. Also serves the currency-pair list.

Faults: ``gap`` (one update lost, its ids consumed), ``crossed`` (a bid
above the best ask the market does not hold, on a valid id: only a fresh
snapshot removes it), ``snapshot`` (a ``full: true`` message, which the
channel sends at irregular times since 2025), ``drop``, ``malformed``,
``silence``. There is no checksum: ``checksum`` is discarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from typing import Any, ClassVar

from arbtui.backend.sim.market import VenueBook, diff
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.gate")

_CHANNEL = "spot.order_book_update"


class _Conn:
    __slots__ = ("q", "subs", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.q: asyncio.Queue[str] = asyncio.Queue(maxsize=20_000)
        self.subs: set[str] = set()  # venue pairs


class Sim(SimVenue):
    venue: ClassVar[str] = "gate"
    needs_http: ClassVar[bool] = True
    ws_path: ClassVar[str] = "/ws/v4/"

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.vsym = {s: venue_symbol(self.venue, s) for s in self.symbols}
        self.by_vsym = {v: s for s, v in self.vsym.items()}
        self.ids = {s: self.rng.randrange(10 ** 7, 10 ** 8) for s in self.symbols}
        self.cur: dict[str, VenueBook] = {s: self.book(s) for s in self.symbols}
        self.conns: set[_Conn] = set()
        self.pings = 0
        self.snapshot_requests = 0

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))

    # ------------------------------------------------------------ market -> updates

    def _tick(self) -> None:
        if self.take_fault("checksum"):
            log.info("gate sim: no checksum on this channel; checksum fault ignored")
        gap = self.take_fault("gap")
        crossed = self.take_fault("crossed")
        full = self.take_fault("snapshot")
        now_ms = int(time.time() * 1000)
        for i, s in enumerate(self.symbols):
            new = self.book(s)
            ch = diff(self.cur[s], new)
            self.cur[s] = new
            first = self.ids[s] + 1
            self.ids[s] += len(ch)
            if full and i == 0:
                if gap:
                    self.pending_faults.append("gap")  # this tick carries the full book
                self._send(s, {"t": now_ms, "full": True, "s": self.vsym[s], "u": self.ids[s],
                               "b": [[p, q] for p, q in new.sorted_bids()[:100]],
                               "a": [[p, q] for p, q in new.sorted_asks()[:100]]}, now_ms)
            elif gap and i == 0 and not ch:
                self.pending_faults.append("gap")  # nothing to lose this tick: next one
            elif ch and gap and i == 0:
                log.info("gate sim: gap fault: %s %d-%d not sent", s, first, self.ids[s])
            elif ch:
                self._send(s, {"t": now_ms, "e": "depthUpdate", "E": now_ms // 1000,
                               "s": self.vsym[s], "U": first, "u": self.ids[s],
                               "b": [[p, q] for side, p, q in ch if side == "bid"],
                               "a": [[p, q] for side, p, q in ch if side == "ask"]}, now_ms)
            if crossed and i == 0:
                best_ask = new.sorted_asks()[0][0]
                dp = len(best_ask.partition(".")[2])
                self.ids[s] += 1
                self._send(s, {"t": now_ms, "e": "depthUpdate", "E": now_ms // 1000,
                               "s": self.vsym[s], "U": self.ids[s], "u": self.ids[s],
                               "b": [[f"{float(best_ask) * 1.001:.{dp}f}", "0.5"]], "a": []}, now_ms)

    def _send(self, s: str, result: dict, now_ms: int) -> None:
        vs = self.vsym[s]
        frame = json.dumps({"time": now_ms // 1000, "time_ms": now_ms, "channel": _CHANNEL,
                            "event": "update", "result": result}, separators=(",", ":"))
        for c in list(self.conns):
            if vs in c.subs:
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

    def _reply(self, conn: _Conn, obj: dict) -> None:
        now = time.time()
        obj = {"time": int(now), "time_ms": int(now * 1000), "conn_id": "sim", **obj}
        self.put_or_drop(self.conns, conn, json.dumps(obj, separators=(",", ":")))

    async def _reader(self, conn: _Conn) -> None:
        async for text in conn.ws:
            try:
                m = json.loads(text)
                ch, ev = m["channel"], m.get("event")
                int(m["time"])
            except (ValueError, KeyError, TypeError):
                self._reply(conn, {"channel": "", "event": "", "error": {
                    "code": 1, "message": "invalid request"}, "result": None})
                continue
            if ch == "spot.ping":
                self.pings += 1
                self._reply(conn, {"channel": "spot.pong", "event": "", "result": None})
                continue
            payload = m.get("payload") or []
            pair = payload[0] if payload and isinstance(payload[0], str) else ""
            if ch != _CHANNEL or ev not in ("subscribe", "unsubscribe") or pair not in self.by_vsym:
                self._reply(conn, {"channel": ch, "event": ev, "error": {
                    "code": 2, "message": f"unknown channel or pair: {ch} {payload}"}, "result": None})
                continue
            if ev == "subscribe":
                conn.subs.add(pair)
            else:
                conn.subs.discard(pair)
            self._reply(conn, {"channel": ch, "event": ev, "result": {"status": "success"}})

    # ------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        url = urllib.parse.urlsplit(path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/api/v4/spot/order_book":
            s = self.by_vsym.get(q.get("currency_pair", ""))
            if s is None:
                return 400, '{"label":"INVALID_CURRENCY_PAIR","message":"invalid currency pair"}'
            self.snapshot_requests += 1
            limit = max(1, min(int(q.get("limit", "10")), 100))
            b, now_ms = self.cur[s], int(time.time() * 1000)
            body: dict[str, Any] = {"current": now_ms, "update": now_ms - 1,
                                    "asks": [[p, z] for p, z in b.sorted_asks()[:limit]],
                                    "bids": [[p, z] for p, z in b.sorted_bids()[:limit]]}
            if q.get("with_id") == "true":
                body = {"id": self.ids[s], **body}
            return 200, json.dumps(body)
        if url.path.rstrip("/") == "/api/v4/spot/currency_pairs":
            rows = [{"id": v, "base": split(s)[0], "quote": split(s)[1], "trade_status": "tradable"}
                    for s, v in self.vsym.items()]
            rows.append({"id": "HALT_USDT", "base": "HALT", "quote": "USDT", "trade_status": "untradable"})
            return 200, json.dumps(rows)
        return 404, '{"label":"NOT_FOUND","message":"not found"}'
