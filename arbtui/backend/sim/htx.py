"""Simulated HTX spot: ``/feed`` WebSocket, gzip-compressed binary frames,
``market.$symbol.mbp.150`` increments and ``req`` snapshots (docs/protocols.md#htx).

Every server frame is gzip-compressed JSON sent as a binary frame; client
frames are plain text. ``sub`` is acknowledged (``subbed``), then every tick
that changes a book sends ``tick.seqNum``/``prevSeqNum`` (ids increase by
more than one at a time, as HTX's do). ``req`` answers the book as of the
last sent ``seqNum``. ``{"ping": ts}`` goes out every ``ping_s``; two
unanswered pings close the connection, as the venue does.

Faults: ``gap`` (one update not sent, its ``seqNum`` consumed), ``crossed`` (a
bid above the best ask the market does not hold), ``malformed`` (a frame that
is not gzip), ``drop``, ``silence``. ``checksum``/``snapshot``/``seq`` do not
exist on HTX and are discarded.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from typing import Any, ClassVar

from arbtui.backend.sim.market import VenueBook, diff
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.htx")
LEVELS = 150


def _num_rows(rows: list[tuple[str, str]]) -> str:
    # JSON numbers written with the model's own digits (HTX sends numbers).
    return "[" + ",".join(f"[{p},{q}]" for p, q in rows) + "]"


class Sim(SimVenue):
    venue: ClassVar[str] = "htx"
    ws_path: ClassVar[str] = "/feed"
    needs_http: ClassVar[bool] = True
    #: Seconds between server pings (the venue: 5).
    ping_s: float = 5.0

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.wire = {s: venue_symbol(self.venue, s).lower() for s in self.symbols}
        self.by_wire = {v: s for s, v in self.wire.items()}
        self.seq = {s: self.rng.randrange(10 ** 10, 10 ** 11) for s in self.symbols}
        self.cur: dict[str, VenueBook] = {s: self.book(s) for s in self.symbols}
        self.conns: set[Any] = set()
        self.pongs = 0
        self.snapshot_requests = 0

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))

    async def gz(self, ws, text: str) -> None:
        self.sent_frames += 1
        await ws.send(gzip.compress(text.encode(), compresslevel=1))

    # ------------------------------------------------------------ market -> frames

    def _tick(self) -> None:
        if self.take_fault("checksum", "snapshot", "seq"):
            log.info("htx sim: checksum/snapshot/seq faults do not exist on HTX; ignored")
        gap = self.take_fault("gap")
        crossed = self.take_fault("crossed")
        now = int(time.time() * 1000)
        for i, s in enumerate(self.symbols):
            new = self.book(s)
            ch = diff(self.cur[s], new)
            self.cur[s] = new
            bids = [(p, q) for side, p, q in ch if side == "bid"]
            asks = [(p, q) for side, p, q in ch if side == "ask"]
            if crossed and i == 0:
                best_ask = new.sorted_asks()[0][0]
                dp = len(best_ask.partition(".")[2])
                bids.append((f"{float(best_ask) * 1.001:.{dp}f}", "0.5"))
            if not bids and not asks:
                if gap and i == 0:
                    self.pending_faults.append("gap")  # nothing to lose this tick
                    gap = None
                continue
            prev = self.seq[s]
            self.seq[s] += 1 + self.rng.randrange(5)
            if gap and i == 0:
                log.info("htx sim: gap fault: %s seqNum %d not sent", s, self.seq[s])
                continue
            frame = (f'{{"ch":"market.{self.wire[s]}.mbp.{LEVELS}","ts":{now},"tick":{{'
                     f'"seqNum":{self.seq[s]},"prevSeqNum":{prev},'
                     f'"bids":{_num_rows(bids)},"asks":{_num_rows(asks)}}}}}')
            for c in list(self.conns):
                if s in c.subs:
                    self.put_or_drop(self.conns, c, frame)

    # ------------------------------------------------------------ WebSocket

    async def handle(self, ws) -> None:
        conn = _Conn(ws)
        self.conns.add(conn)
        reader = asyncio.get_running_loop().create_task(self._reader(conn))
        pinger = asyncio.get_running_loop().create_task(self._pinger(conn))
        try:
            while True:
                frame = await conn.q.get()
                if self.take_fault("malformed"):
                    await ws.send(b"\x1f\x8bnot gzip at all")  # counted, never fatal
                if await self.queued_fault(ws, self.conns, conn):
                    return
                await self.gz(ws, frame)
        finally:
            self.conns.discard(conn)
            reader.cancel()
            pinger.cancel()

    async def _pinger(self, conn: _Conn) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            if conn.unanswered >= 2:
                await conn.ws.close(1000, "ping not answered")
                return
            conn.unanswered += 1
            conn.q.put_nowait(json.dumps({"ping": int(time.time() * 1000)}))

    async def _reader(self, conn: _Conn) -> None:
        async for text in conn.ws:
            try:
                m = json.loads(text)
            except (ValueError, TypeError):
                conn.q.put_nowait('{"status":"error","err-code":"bad-request","err-msg":"invalid"}')
                continue
            if "pong" in m:
                self.pongs += 1
                conn.unanswered = 0
                continue
            ch = m.get("sub") or m.get("req") or m.get("unsub") or ""
            parts = ch.split(".")
            s = self.by_wire.get(parts[1]) if len(parts) == 4 and parts[2] == "mbp" else None
            if s is None:
                conn.q.put_nowait(json.dumps({"id": m.get("id"), "status": "error",
                                              "err-code": "bad-request",
                                              "err-msg": f"invalid topic {ch}"}))
                continue
            if "sub" in m:
                conn.subs.add(s)
                conn.q.put_nowait(json.dumps({"id": m.get("id"), "status": "ok", "subbed": ch,
                                              "ts": int(time.time() * 1000)}))
            elif "unsub" in m:
                conn.subs.discard(s)
                conn.q.put_nowait(json.dumps({"id": m.get("id"), "status": "ok", "unsubbed": ch}))
            else:
                # Queued behind every update already sent: seqNum is the last of them.
                self.snapshot_requests += 1
                b = self.cur[s]
                conn.q.put_nowait(
                    f'{{"id":{json.dumps(m.get("id"))},"rep":"{ch}","status":"ok","data":{{'
                    f'"seqNum":{self.seq[s]},"bids":{_num_rows(b.sorted_bids()[:LEVELS])},'
                    f'"asks":{_num_rows(b.sorted_asks()[:LEVELS])}}}}}')

    # ------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        if path.startswith("/v2/settings/common/symbols"):
            rows = [{"sc": w, "bc": split(s)[0].lower(), "qc": split(s)[1].lower(),
                     "state": "online"} for s, w in self.wire.items()]
            rows.append({"sc": "haltusdt", "bc": "halt", "qc": "usdt", "state": "offline"})
            return 200, json.dumps({"status": "ok", "data": rows})
        return 404, '{"status":"error","err-msg":"not found"}'


class _Conn:
    __slots__ = ("q", "subs", "unanswered", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.q: asyncio.Queue[str] = asyncio.Queue(maxsize=20_000)
        self.subs: set[str] = set()
        self.unanswered = 0
