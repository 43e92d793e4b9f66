"""Simulated Binance spot: combined/raw depth + bookTicker streams and REST depth.

Wire format as docs/protocols.md#binance describes it: ``/stream?streams=a/b`` wraps each event as
``{"stream":..., "data":...}``, ``/ws/<stream>`` sends it bare; ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` frames are answered ``{"result":..,"id":..}``;
more than 5 incoming frames in a second closes the connection like the venue.

Update ids are per symbol and venue-wide (one counter however many clients are
connected): each tick's changes for a symbol become one ``depthUpdate`` with
``U`` = previous ``u`` + 1 and ``u`` advanced by the number of level changes;
a ``bookTicker`` carries the ``u`` of the batch that moved the top. The REST
snapshot is served from the same state as the last emitted ``u``, so the
documented sync procedure bridges exactly.

Faults: ``gap`` (one depth event is lost, its ids consumed), ``crossed`` (a
valid-id event that crosses the book), ``drop``, ``malformed``, ``silence``.
``checksum`` and ``snapshot`` do not exist on Binance and are discarded.
``quiet`` symbols never change (no events; the REST snapshot still answers).
``mute`` symbols move on without sending events (a silently broken stream);
``rest_refuse = n`` answers the next n depth requests with HTTP 429.
``stale_snapshots = n`` serves the next n REST snapshots from ~1 s in the past
(the client must see "snapshot too old" and fetch again).
The websockets server pings every 20 s (its default), like Binance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.parse
from collections import deque
from typing import Any

from arbtui.backend.sim.market import VenueBook, diff, price_tick
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.binance")

_KINDS = ("depth", "bookTicker")
_HISTORY = 40  # ticks of (id, book) kept per symbol for stale snapshots


class _Conn:
    __slots__ = ("q", "raw", "recv_times", "subs", "ws")

    def __init__(self, ws, raw: bool) -> None:
        self.ws = ws
        self.q: asyncio.Queue[str] = asyncio.Queue(maxsize=20_000)
        self.subs: set[str] = set()  # full stream names as the client wrote them
        self.raw = raw
        self.recv_times: deque[float] = deque()


def _stream_key(stream: str) -> tuple[str, str] | None:
    """``btcusdt@depth@100ms`` -> ("btcusdt", "depth"); None for streams we don't serve."""
    sym, _, kind = stream.partition("@")
    if kind.startswith("depth") and not kind[5:6].isdigit():
        return sym.lower(), "depth"
    if kind == "bookTicker":
        return sym.lower(), "bookTicker"
    return None


class Sim(SimVenue):
    venue = "binance"
    needs_http = True
    ws_path = "/"
    depth_path = "/api/v3/depth"

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.vsym = {s: venue_symbol(self.venue, s) for s in self.symbols}
        self.by_vsym = {v: s for s, v in self.vsym.items()}
        self.ids = {s: self.rng.randrange(10 ** 8, 10 ** 9) for s in self.symbols}
        self.cur: dict[str, VenueBook] = {s: self.book(s) for s in self.symbols}
        self.history: dict[str, deque[tuple[int, VenueBook]]] = {
            s: deque([(self.ids[s], self.cur[s])], maxlen=_HISTORY) for s in self.symbols}
        self.conns: set[_Conn] = set()
        self.stale_snapshots = 0
        #: Symbols whose book never changes (a quiet market): no stream events at all.
        self.quiet: set[str] = set()
        #: Symbols whose book and ids move on but whose events are never sent.
        self.mute: set[str] = set()
        #: The next n depth snapshots are refused with HTTP 429.
        self.rest_refuse = 0
        self.snapshot_requests: dict[str, int] = {s: 0 for s in self.symbols}
        self.max_msgs_per_s = 5

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))

    # ------------------------------------------------------------------ market -> events

    def _tick(self) -> None:
        if self.take_fault("checksum", "snapshot"):
            log.info("binance sim: checksum/snapshot faults do not exist on Binance; ignored")
        now_ms = int(time.time() * 1000)
        gap = self.take_fault("gap")
        crossed = self.take_fault("crossed")
        for i, s in enumerate(self.symbols):
            if s in self.quiet:
                continue  # frozen: no depth events, REST still answers
            old, new = self.cur[s], self.book(s)
            ch = diff(old, new)
            self.cur[s] = new
            vs = self.vsym[s]
            if ch:
                prev, first = self.ids[s], self.next_first(s)
                self.ids[s] = first + len(ch) - 1
                self.history[s].append((self.ids[s], new))
                ev = self.depth_event(vs, now_ms, first, self.ids[s], prev,
                                      [[p, q] for side, p, q in ch if side == "bid"],
                                      [[p, q] for side, p, q in ch if side == "ask"])
                if s in self.mute:
                    pass  # the venue moved on; this client's stream silently lost it
                elif gap and i == 0:
                    log.info("binance sim: gap fault: event %d-%d of %s not sent", first, self.ids[s], vs)
                    gap = None
                else:
                    self._broadcast(s, "depth", ev)
                ot, nt = _top(old), _top(new)
                if ot != nt and nt[0] and nt[1] and s not in self.mute:
                    self._broadcast(s, "bookTicker", {
                        "u": self.ids[s], "s": vs, "b": nt[0][0], "B": nt[0][1],
                        "a": nt[1][0], "A": nt[1][1]})
            if crossed and i == 0:
                best_ask = new.sorted_asks()[0][0]
                tick = price_tick(s)
                px = f"{float(best_ask) + tick:.{_decimals(best_ask)}f}" if tick else best_ask
                prev = self.ids[s]
                self.ids[s] = self.next_first(s)
                # The model does not hold this level: only a fresh snapshot removes it.
                self._broadcast(s, "depth", self.depth_event(
                    vs, now_ms, self.ids[s], self.ids[s], prev, [[px, "1.00000000"]], []))

        if gap:
            # The first symbol did not move this tick: nothing to lose. Keep the
            # fault for the next tick rather than drop it unseen.
            self.pending_faults.append(gap)

    def next_first(self, symbol: str) -> int:
        """``U`` of the symbol's next depth event (spot ids are contiguous)."""
        return self.ids[symbol] + 1

    def depth_event(self, vs: str, now_ms: int, first: int, last: int, prev: int,
                    bids: list, asks: list) -> dict:
        """One ``depthUpdate`` (``prev``: the ``u`` of the event before it)."""
        return {"e": "depthUpdate", "E": now_ms, "s": vs, "U": first, "u": last,
                "b": bids, "a": asks}

    def stream_key(self, stream: str) -> tuple[str, str] | None:
        return _stream_key(stream)

    def _broadcast(self, symbol: str, kind: str, ev: dict) -> None:
        body = json.dumps(ev, separators=(",", ":"))
        key = (self.vsym[symbol].lower(), kind)
        for c in list(self.conns):
            for st in c.subs:
                if self.stream_key(st) == key:
                    frame = body if c.raw else f'{{"stream":"{st}","data":{body}}}'
                    self.put_or_drop(self.conns, c, frame)
                    break

    def announce_shutdown(self) -> None:
        """Send ``serverShutdown`` to every client, as Binance does before maintenance."""
        ev = json.dumps({"e": "serverShutdown", "E": int(time.time() * 1000)})
        for c in self.conns:
            c.q.put_nowait(ev)

    # ------------------------------------------------------------------ WebSocket

    async def handle(self, ws) -> None:
        url = urllib.parse.urlsplit(ws.request.path)
        path = url.path.rstrip("/")
        if path == "/stream":
            conn = _Conn(ws, raw=False)
            for v in urllib.parse.parse_qs(url.query).get("streams", []):
                conn.subs.update(x for x in v.split("/") if x)
        elif path == "/ws" or path.startswith("/ws/"):
            conn = _Conn(ws, raw=True)
            conn.subs.update(x for x in path[4:].split("/") if x)
        else:
            await ws.close(1008, "unknown path")
            return
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

    async def _reader(self, conn: _Conn) -> None:
        ws = conn.ws
        async for text in ws:
            now = time.monotonic()
            conn.recv_times.append(now)
            while conn.recv_times and now - conn.recv_times[0] > 1.0:
                conn.recv_times.popleft()
            if len(conn.recv_times) > self.max_msgs_per_s:
                # Binance: more than 5 incoming messages per second disconnects.
                await ws.close(1008, "Too many messages")
                return
            try:
                req = json.loads(text)
                method = req["method"]
                rid = req.get("id")
            except (ValueError, KeyError, TypeError):
                await self.send(ws, {"error": {"code": 3, "msg": "Invalid JSON"}, "id": None})
                continue
            params = req.get("params") or []
            if method == "SUBSCRIBE":
                conn.subs.update(p for p in params if isinstance(p, str))
                await self.send(ws, {"result": None, "id": rid})
            elif method == "UNSUBSCRIBE":
                conn.subs.difference_update(params)
                await self.send(ws, {"result": None, "id": rid})
            elif method == "LIST_SUBSCRIPTIONS":
                await self.send(ws, {"result": sorted(conn.subs), "id": rid})
            else:
                await self.send(ws, {"error": {"code": 1, "msg": "Invalid method"}, "id": rid})

    # ------------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        url = urllib.parse.urlsplit(path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == self.depth_path:
            s = self.by_vsym.get(q.get("symbol", ""))
            if s is None:
                return 400, '{"code":-1121,"msg":"Invalid symbol."}'
            try:
                limit = int(q.get("limit", "100"))
            except ValueError:
                return 400, '{"code":-1100,"msg":"Illegal characters found in parameter limit."}'
            limit = max(1, min(limit, 5000))
            if self.rest_refuse > 0:
                self.rest_refuse -= 1
                return 429, '{"code":-1003,"msg":"Too much request weight used."}'
            self.snapshot_requests[s] += 1
            last_id, book = self.ids[s], self.cur[s]
            if self.stale_snapshots > 0:
                self.stale_snapshots -= 1
                last_id, book = self.history[s][0]
            return 200, json.dumps(self.snapshot_body(last_id, book, limit),
                                   separators=(",", ":"))
        if url.path == "/api/v3/exchangeInfo":
            syms = []
            for s, vs in self.vsym.items():
                b, qt = split(s)
                syms.append({"symbol": vs, "status": "TRADING", "baseAsset": b, "quoteAsset": qt,
                             "isSpotTradingAllowed": True, "permissions": ["SPOT"]})
            # A halted pair: adapters must skip it.
            syms.append({"symbol": "HALTUSDT", "status": "BREAK", "baseAsset": "HALT",
                         "quoteAsset": "USDT", "isSpotTradingAllowed": True, "permissions": ["SPOT"]})
            return 200, json.dumps({
                "timezone": "UTC", "serverTime": int(time.time() * 1000),
                "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                "intervalNum": 1, "limit": 6000}],
                "symbols": syms})
        return 404, '{"code":-1,"msg":"not found"}'

    @staticmethod
    def snapshot_body(last_id: int, book: VenueBook, limit: int) -> dict:
        return {"lastUpdateId": last_id,
                "bids": [[p, q] for p, q in book.sorted_bids()[:limit]],
                "asks": [[p, q] for p, q in book.sorted_asks()[:limit]]}


def _top(b: VenueBook) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    bids, asks = b.sorted_bids(), b.sorted_asks()
    return (bids[0] if bids else None), (asks[0] if asks else None)


def _decimals(px: str) -> int:
    return len(px.partition(".")[2])
