"""Simulated Crypto.com Exchange: v1 market WebSocket, ``book.{instrument}.{depth}``
in SNAPSHOT_AND_UPDATE mode (docs/protocols.md#cryptocom).

``subscribe`` is acknowledged (``id``, ``code 0``); the next tick sends the
book on channel ``book`` with its ``u``, every later tick that changes it a
``book.update`` whose ``pu`` is the previous ``u``. Heartbeats
(``public/heartbeat``) go out every ``heartbeat_s``; an unanswered one closes
the connection as the venue does. The instrument list answers the v1 shape.

Faults: ``gap`` (one update not sent, its ``u`` consumed), ``crossed`` (a bid
above the best ask the market does not hold), ``drop``, ``malformed``,
``silence``. ``checksum``/``snapshot``/``seq`` do not exist here and are discarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.cryptocom")


class Sim(SimVenue):
    venue: ClassVar[str] = "cryptocom"
    ws_path: ClassVar[str] = "/exchange/v1/market"
    needs_http: ClassVar[bool] = True
    #: Seconds between heartbeats (the venue: 30); an answer is due within 5.
    heartbeat_s: float = 30.0

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.vsym = {s: venue_symbol(self.venue, s) for s in self.symbols}
        self.by_vsym = {v: s for s, v in self.vsym.items()}
        self.u = {s: self.rng.randrange(10 ** 9, 10 ** 10) for s in self.symbols}
        self.heartbeats_answered = 0
        self.subscribes = 0

    async def handle(self, ws) -> None:
        subs: dict[str, int] = {}  # symbol -> depth
        fresh: set[str] = set()
        beat: dict[str, Any] = {"id": None}

        async def on_frame(raw: Any) -> None:
            try:
                m = json.loads(raw)
                method, mid = m["method"], m.get("id")
            except (ValueError, KeyError, TypeError):
                await self.send(ws, {"id": -1, "code": 10004, "message": "BAD_REQUEST"})
                return
            if method == "public/respond-heartbeat":
                if mid == beat["id"]:
                    beat["id"] = None
                    self.heartbeats_answered += 1
                return
            if method not in ("subscribe", "unsubscribe"):
                await self.send(ws, {"id": mid, "method": method, "code": 10004})
                return
            for ch in (m.get("params") or {}).get("channels") or []:
                parts = ch.split(".")
                s = self.by_vsym.get(parts[1]) if len(parts) == 3 and parts[0] == "book" else None
                if s is None:
                    await self.send(ws, {"id": mid, "method": method, "code": 40003,
                                         "message": f"unknown channel {ch}"})
                    continue
                if method == "subscribe":
                    self.subscribes += 1
                    subs[s] = int(parts[2])
                    fresh.add(s)
                else:
                    subs.pop(s, None)
                    fresh.discard(s)
                await self.send(ws, {"id": mid, "method": method, "code": 0})

        async def heartbeats() -> None:
            while True:
                await asyncio.sleep(self.heartbeat_s)
                if beat["id"] is not None:
                    await ws.close(1000, "heartbeat not answered")
                    return
                beat["id"] = int(time.time() * 1000)
                await self.send(ws, {"id": beat["id"], "method": "public/heartbeat", "code": 0})

        hb = asyncio.get_running_loop().create_task(heartbeats())
        try:
            await self.duplex(ws, self._stream(ws, subs, fresh), on_frame)
        finally:
            hb.cancel()

    def _msg(self, s: str, depth: int, channel: str, d: dict) -> dict:
        v = self.vsym[s]
        return {"id": -1, "method": "subscribe", "code": 0,
                "result": {"instrument_name": v, "subscription": f"book.{v}.{depth}",
                           "channel": channel, "depth": depth, "data": [d]}}

    async def _stream(self, ws, subs: dict[str, int], fresh: set[str]) -> None:
        while True:
            await self.hub.wait_tick()
            if await self.common_fault(ws):
                return
            if self.take_fault("checksum", "snapshot", "seq"):
                log.info("cryptocom sim: checksum/snapshot/seq faults do not exist here; ignored")
            gap = self.take_fault("gap")
            crossed = self.take_fault("crossed")
            now = int(time.time() * 1000)
            for s, depth in sorted(subs.items()):
                vb = self.book(s)
                if s in fresh:
                    fresh.discard(s)
                    await self.send(ws, self._msg(s, depth, "book", {
                        "bids": [[p, q, "1"] for p, q in vb.sorted_bids()[:depth]],
                        "asks": [[p, q, "1"] for p, q in vb.sorted_asks()[:depth]],
                        "t": now, "tt": now, "u": self.u[s]}))
                    continue
                ch = self.changes(s)
                upd: dict[str, list] = {"bids": [], "asks": []}
                for side, p, q in ch:
                    upd["bids" if side == "bid" else "asks"].append([p, q, "0" if q == "0" else "1"])
                if crossed:
                    crossed = None
                    best_ask = vb.sorted_asks()[0][0]
                    dp = len(best_ask.partition(".")[2])
                    upd["bids"].append([f"{float(best_ask) * 1.001:.{dp}f}", "0.5", "1"])
                if not upd["bids"] and not upd["asks"]:
                    continue
                pu = self.u[s]
                self.u[s] += 1 + self.rng.randrange(3)  # ids are increasing, not +1
                if gap:
                    gap = None
                    log.info("cryptocom sim: gap fault: %s update u=%d not sent", s, self.u[s])
                    continue
                await self.send(ws, self._msg(s, depth, "book.update", {
                    "update": upd, "t": now, "tt": now, "u": self.u[s], "pu": pu}))
            if gap:
                self.pending_faults.append(gap)  # nothing carried it this tick

    async def http_get(self, path: str) -> tuple[int, str]:
        if path.startswith("/exchange/v1/public/get-instruments"):
            rows = [{"symbol": v, "inst_type": "CCY_PAIR", "base_ccy": split(s)[0],
                     "quote_ccy": split(s)[1], "tradable": True} for s, v in self.vsym.items()]
            rows.append({"symbol": "BTCUSD-PERP", "inst_type": "PERPETUAL_SWAP",
                         "base_ccy": "BTC", "quote_ccy": "USD", "tradable": True})
            return 200, json.dumps({"id": 1, "method": "public/get-instruments", "code": 0,
                                    "result": {"data": rows}})
        return 404, '{"code":40004,"message":"NOT_FOUND"}'
