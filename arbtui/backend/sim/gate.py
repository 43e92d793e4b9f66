"""Simulated Gate spot API v4: the ``spot.obu`` book channel (docs/protocols.md, "Gate").

Requests are ``{"time", "channel", "event", "payload"}``; a subscribe is
acknowledged with ``result: {"status": "success"}`` and followed by the full
book (``full: true``, ``u``); increments carry ``U``/``u`` chained per book.
A second subscribe to the same stream on one connection is an error, as on
the venue. ``spot.ping`` is answered ``spot.pong``. Also serves the REST
currency-pair list.

Ids are per book and venue-wide; each tick's changes take one id each.

Faults: ``gap`` (one increment lost, its ids consumed), ``crossed`` (a bid
above the best ask the market does not hold, on a valid id), ``snapshot``
(a full push mid-stream, which is legal), ``drop``, ``malformed``,
``silence``. There is no checksum on obu: ``checksum`` is discarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from arbtui.backend.sim.market import VenueBook, diff
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.gate")


class _Conn:
    __slots__ = ("q", "subs", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.q: asyncio.Queue[str] = asyncio.Queue(maxsize=20_000)
        self.subs: dict[str, str] = {}  # venue pair -> stream name ("ob.BTC_USDT.400")


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
        self.subscribes = 0

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))

    # ------------------------------------------------------------ frames

    def _full(self, s: str, stream: str) -> str:
        b = self.cur[s]
        return json.dumps({"time": int(time.time()), "time_ms": int(time.time() * 1000),
                           "channel": "spot.obu", "event": "update", "result": {
                               "t": int(time.time() * 1000), "full": True, "s": stream,
                               "u": self.ids[s],
                               "b": [[p, q] for p, q in b.sorted_bids()],
                               "a": [[p, q] for p, q in b.sorted_asks()]}},
                          separators=(",", ":"))

    def _tick(self) -> None:
        if self.take_fault("checksum"):
            log.info("gate sim: spot.obu has no checksum; checksum fault ignored")
        gap = self.take_fault("gap")
        crossed = self.take_fault("crossed")
        full = self.take_fault("snapshot")
        now_ms = int(time.time() * 1000)
        for i, s in enumerate(self.symbols):
            new = self.book(s)
            ch = diff(self.cur[s], new)
            self.cur[s] = new
            if full and i == 0:
                self.ids[s] += len(ch)
                self._each(s, lambda st, s=s: self._full(s, st))
                continue
            if gap and i == 0 and not ch:
                self.pending_faults.append("gap")  # nothing to lose this tick: next one
                gap = None
            if ch:
                first = self.ids[s] + 1
                self.ids[s] += len(ch)
                if gap and i == 0:
                    log.info("gate sim: gap fault: %s %d-%d not sent", s, first, self.ids[s])
                else:
                    self._send_incr(s, first, self.ids[s],
                                    [[p, q] for side, p, q in ch if side == "bid"],
                                    [[p, q] for side, p, q in ch if side == "ask"], now_ms)
            if crossed and i == 0:
                best_ask = new.sorted_asks()[0][0]
                dp = len(best_ask.partition(".")[2])
                self.ids[s] += 1
                self._send_incr(s, self.ids[s], self.ids[s],
                                [[f"{float(best_ask) * 1.001:.{dp}f}", "0.5"]], [], now_ms)

    def _send_incr(self, s: str, first: int, last: int, bids: list, asks: list, now_ms: int) -> None:
        def frame(stream: str) -> str:
            return json.dumps({"time": now_ms // 1000, "time_ms": now_ms, "channel": "spot.obu",
                               "event": "update", "result": {"t": now_ms, "s": stream, "U": first,
                                                             "u": last, "b": bids, "a": asks}},
                              separators=(",", ":"))
        self._each(s, frame)

    def _each(self, s: str, make) -> None:
        vs = self.vsym[s]
        for c in list(self.conns):
            st = c.subs.get(vs)
            if st is not None:
                self.put_or_drop(self.conns, c, make(st))

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
            if ch != "spot.obu" or ev not in ("subscribe", "unsubscribe"):
                self._reply(conn, {"channel": ch, "event": ev, "error": {
                    "code": 2, "message": f"unknown channel {ch}"}, "result": None})
                continue
            for st in m.get("payload") or []:
                parts = st.split(".") if isinstance(st, str) else []
                s = self.by_vsym.get(parts[1]) if len(parts) == 3 and parts[2] in ("50", "400") else None
                if s is None:
                    self._reply(conn, {"channel": ch, "event": ev, "payload": [st], "error": {
                        "code": 2, "message": f"unknown currency pair in {st}"}, "result": None})
                    continue
                vs = parts[1]
                if ev == "subscribe":
                    if vs in conn.subs:
                        self._reply(conn, {"channel": ch, "event": ev, "payload": [st], "error": {
                            "code": 2, "message": f"Alert sub {st}"}, "result": None})
                        continue
                    self.subscribes += 1
                    conn.subs[vs] = st
                    self._reply(conn, {"channel": ch, "event": ev, "payload": [st],
                                       "result": {"status": "success"}})
                    self.put_or_drop(self.conns, conn, self._full(s, st))
                else:
                    conn.subs.pop(vs, None)
                    self._reply(conn, {"channel": ch, "event": ev, "payload": [st],
                                       "result": {"status": "success"}})

    # ------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        if path.split("?")[0].rstrip("/") == "/api/v4/spot/currency_pairs":
            rows = [{"id": v, "base": split(s)[0], "quote": split(s)[1], "trade_status": "tradable"}
                    for s, v in self.vsym.items()]
            rows.append({"id": "HALT_USDT", "base": "HALT", "quote": "USDT", "trade_status": "untradable"})
            return 200, json.dumps(rows)
        return 404, '{"label":"NOT_FOUND","message":"not found"}'
