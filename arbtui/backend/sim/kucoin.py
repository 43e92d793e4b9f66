"""Simulated KuCoin spot: bullet-public token, ``/market/level2`` increments and
the public REST level2_100 snapshot (docs/protocols.md#kucoin).

``POST /api/v1/bullet-public`` answers this simulator's own WebSocket endpoint
and a token; a WebSocket connection without a token is refused as the venue
does (``refuse_tokens = n`` refuses the next n token calls). After
``welcome`` the client subscribes (``ack`` when ``response`` is true) and
sends ``ping`` frames (answered ``pong`` with the same id).

Sequences are per symbol and venue-wide: every level change of a tick takes
the next sequence, its row carries it, and the message says
``sequenceStart``/``sequenceEnd``. The REST snapshot is the state as of the
last emitted sequence, so the documented calibration bridges exactly.

Faults: ``gap`` (one message lost, its sequences consumed), ``crossed`` (a
valid-sequence bid above the best ask that the market does not hold: only a
fresh snapshot removes it), ``drop``, ``malformed``, ``silence``.
``checksum``/``snapshot`` do not exist on KuCoin and are discarded.
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

log = logging.getLogger("arbtui.sim.kucoin")


class _Conn:
    __slots__ = ("q", "subs", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.q: asyncio.Queue[str] = asyncio.Queue(maxsize=20_000)
        self.subs: set[str] = set()  # venue symbols


class Sim(SimVenue):
    venue: ClassVar[str] = "kucoin"
    needs_http: ClassVar[bool] = True
    ws_path: ClassVar[str] = "/"
    #: Announced in the bullet answer (ms); tests shorten it.
    ping_interval_ms: int = 18_000

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.vsym = {s: venue_symbol(self.venue, s) for s in self.symbols}
        self.by_vsym = {v: s for s, v in self.vsym.items()}
        self.seq = {s: self.rng.randrange(10 ** 9, 10 ** 10) for s in self.symbols}
        self.cur: dict[str, VenueBook] = {s: self.book(s) for s in self.symbols}
        self.conns: set[_Conn] = set()
        self.tokens = 0
        #: The next n bullet-public calls are refused (KuCoin's "too many requests").
        self.refuse_tokens = 0
        self.pings = 0
        self.snapshot_requests = 0

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))

    # ------------------------------------------------------------ market -> messages

    def _tick(self) -> None:
        if self.take_fault("checksum", "snapshot"):
            log.info("kucoin sim: checksum/snapshot faults do not exist on KuCoin; ignored")
        now_ms = int(time.time() * 1000)
        gap = self.take_fault("gap")
        crossed = self.take_fault("crossed")
        for i, s in enumerate(self.symbols):
            new = self.book(s)
            ch = diff(self.cur[s], new)
            self.cur[s] = new
            if gap and i == 0 and not ch:
                self.pending_faults.append("gap")  # nothing to lose this tick: next one
                gap = None
            if ch:
                rows = {"bids": [], "asks": []}
                start = self.seq[s] + 1
                for side, px, qty in ch:
                    self.seq[s] += 1
                    rows["bids" if side == "bid" else "asks"].append([px, qty, str(self.seq[s])])
                if gap and i == 0:
                    log.info("kucoin sim: gap fault: %s %d-%d not sent", s, start, self.seq[s])
                else:
                    self._broadcast(s, start, self.seq[s], rows, now_ms)
            if crossed and i == 0:
                best_ask = new.sorted_asks()[0][0]
                dp = len(best_ask.partition(".")[2])
                self.seq[s] += 1
                px = f"{float(best_ask) * 1.001:.{dp}f}"
                self._broadcast(s, self.seq[s], self.seq[s],
                                {"bids": [[px, "0.5", str(self.seq[s])]], "asks": []}, now_ms)

    def _broadcast(self, s: str, start: int, end: int, rows: dict, now_ms: int) -> None:
        vs = self.vsym[s]
        frame = json.dumps({
            "topic": f"/market/level2:{vs}", "type": "message", "subject": "trade.l2update",
            "data": {"changes": rows, "sequenceEnd": end, "sequenceStart": start,
                     "symbol": vs, "time": now_ms}}, separators=(",", ":"))
        for c in list(self.conns):
            if vs in c.subs:
                self.put_or_drop(self.conns, c, frame)

    # ------------------------------------------------------------ WebSocket

    async def handle(self, ws) -> None:
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(ws.request.path).query)
        if not q.get("token"):
            await ws.close(4001, "token is required")  # KuCoin refuses token-less connects
            return
        conn = _Conn(ws)
        self.conns.add(conn)
        await self.send(ws, {"id": (q.get("connectId") or ["sim"])[0], "type": "welcome"})
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

    async def _reader(self, conn: _Conn) -> None:
        ws = conn.ws
        async for text in ws:
            try:
                m = json.loads(text)
                kind, mid = m["type"], m.get("id")
            except (ValueError, KeyError, TypeError):
                await self.send(ws, {"id": None, "type": "error", "code": 400, "data": "invalid frame"})
                continue
            if kind == "ping":
                self.pings += 1
                await self.send(ws, {"id": mid, "type": "pong"})
            elif kind in ("subscribe", "unsubscribe"):
                topic = m.get("topic") or ""
                if not topic.startswith("/market/level2:"):
                    await self.send(ws, {"id": mid, "type": "error", "code": 404,
                                         "data": f"topic {topic} is not supported"})
                    continue
                vs = {v for v in topic.partition(":")[2].split(",") if v in self.by_vsym}
                if kind == "subscribe":
                    conn.subs |= vs
                else:
                    conn.subs -= vs
                if m.get("response"):
                    await self.send(ws, {"id": mid, "type": "ack"})

    # ------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        url = urllib.parse.urlsplit(path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/api/v1/bullet-public":
            if self.refuse_tokens > 0:
                self.refuse_tokens -= 1
                return 200, '{"code":"429000","msg":"Too Many Requests"}'
            self.tokens += 1
            return 200, json.dumps({"code": "200000", "data": {
                "token": f"simtoken{self.tokens}",
                "instanceServers": [{"endpoint": f"ws://127.0.0.1:{self.port}/", "encrypt": False,
                                     "protocol": "websocket", "pingInterval": self.ping_interval_ms,
                                     "pingTimeout": 10_000}]}})
        if url.path == "/api/v1/market/orderbook/level2_100":
            s = self.by_vsym.get(q.get("symbol", ""))
            if s is None:
                return 200, '{"code":"400100","msg":"symbol not exists"}'
            self.snapshot_requests += 1
            b = self.cur[s]
            return 200, json.dumps({"code": "200000", "data": {
                "time": int(time.time() * 1000), "sequence": str(self.seq[s]),
                "bids": [[p, z] for p, z in b.sorted_bids()[:100]],
                "asks": [[p, z] for p, z in b.sorted_asks()[:100]]}})
        if url.path == "/api/v2/symbols":
            rows = [{"symbol": v, "baseCurrency": split(s)[0], "quoteCurrency": split(s)[1],
                     "enableTrading": True} for s, v in self.vsym.items()]
            rows.append({"symbol": "HALT-USDT", "baseCurrency": "HALT", "quoteCurrency": "USDT",
                         "enableTrading": False})
            return 200, json.dumps({"code": "200000", "data": rows})
        return 404, '{"code":"404000","msg":"Not Found"}'
