"""Gemini market data v2 simulator: the ``l2`` subscription
(docs/protocols.md#gemini).

Wire format as recorded on 2026-08-09: after ``{"type":"subscribe",
"subscriptions":[{"name":"l2","symbols":[...]}]}`` (no ack) each symbol gets
one ``l2_updates`` carrying the whole book plus ``trades`` and
``auction_events``; later ``l2_updates`` carry only ``changes``
(``[side "buy"|"sell", price, qty]``, qty ``"0"`` deletes). ``trade``
messages interleave and a ``heartbeat`` goes out every ``heartbeat_s``.
There are no sequence numbers, exactly like the venue.

A re-subscribe of a symbol on the same connection is answered with a fresh
full book here; whether the real v2 does that is undocumented, which is why
the adapter falls back to reconnecting when no full book comes.

Faults: drop / malformed (``common_fault``); silence (every frame stops,
heartbeats too); crossed (a bid above the best ask that is never deleted);
snapshot (a full book mid-stream); gap (one change message never sent —
undetectable on v2, healed only by the periodic refresh).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, ClassVar

from arbtui.backend.sim.market import VenueBook, diff
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import venue_symbol

log = logging.getLogger("arbtui.sim.gemini")

_SIDE = {"bid": "buy", "ask": "sell"}


class Sim(SimVenue):
    venue: ClassVar[str] = "gemini"
    ws_path: ClassVar[str] = "/v2/marketdata"
    heartbeat_s: float = 5.0
    silence_s: float = 60.0
    #: A trade message per symbol every this many ticks.
    trade_every_ticks: int = 40
    #: False: a re-subscribe on the same connection resumes plain changes with no
    #: full book (the undocumented case the adapter must survive by reconnecting).
    resend_full_on_resubscribe: bool = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vsym_to_symbol = {venue_symbol(self.venue, s): s for s in self.symbols}
        self.trades: dict[str, list[dict]] = {s: [] for s in self.symbols}
        self._tid = 1_000_000
        self.full_books_sent = 0
        self.heartbeats_sent = 0

    # ------------------------------------------------------------ frames

    def _trade(self, symbol: str) -> dict:
        vb = self.book(symbol)
        side = self.rng.choice(("buy", "sell"))
        px = (vb.sorted_asks() if side == "buy" else vb.sorted_bids())[0][0]
        self._tid += 1
        t = {"type": "trade", "symbol": venue_symbol(self.venue, symbol), "event_id": self._tid * 3,
             "tid": self._tid, "price": px, "quantity": f"{self.rng.uniform(0.001, 0.5):.8f}",
             "side": side, "timestamp": time.time_ns() // 1_000_000}
        self.trades[symbol] = (self.trades[symbol] + [t])[-50:]
        return t

    async def _full(self, ws, subs: dict[str, VenueBook], vsym: str) -> None:
        symbol = self.vsym_to_symbol[vsym]
        vb = self.book(symbol)
        subs[vsym] = vb
        changes = [["buy", px, q] for px, q in vb.sorted_bids()]
        changes += [["sell", px, q] for px, q in vb.sorted_asks()]
        self.full_books_sent += 1
        await self.send(ws, {"type": "l2_updates", "symbol": vsym, "changes": changes,
                             "trades": list(self.trades[symbol]), "auction_events": []})

    # ------------------------------------------------------------ connection

    async def handle(self, ws) -> None:
        subs: dict[str, VenueBook] = {}  # venue symbol -> book last sent on this connection
        seen: set[str] = set()  # symbols ever subscribed on this connection
        await self.duplex(ws, self._writer(ws, subs),
                          lambda msg: self._on_request(ws, msg, subs, seen))

    async def _on_request(self, ws, msg: str | bytes, subs: dict[str, VenueBook],
                          seen: set[str]) -> None:
        try:
            req = json.loads(msg)
            kind = req["type"]
            wanted = [str(s).upper() for sub in req["subscriptions"] if sub.get("name") == "l2"
                      for s in sub.get("symbols", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            # [uncertain] the real reply to a bad request is not recorded.
            await self.send(ws, {"type": "error", "reason": "InvalidJson", "message": "bad request"})
            return
        for vsym in wanted:
            if vsym not in self.vsym_to_symbol:
                await self.send(ws, {"type": "error", "reason": "InvalidSymbol", "message": vsym})
            elif kind == "subscribe":
                if vsym in seen and not self.resend_full_on_resubscribe:
                    subs[vsym] = self.book(self.vsym_to_symbol[vsym])
                else:
                    await self._full(ws, subs, vsym)
                seen.add(vsym)
            elif kind == "unsubscribe":
                subs.pop(vsym, None)

    async def _writer(self, ws, subs: dict[str, VenueBook]) -> None:
        last_hb = time.monotonic()
        tick_s = self.hub.model.tick_ms / 1000
        last_tick = -1
        while True:
            try:
                await asyncio.wait_for(self.hub.wait_tick(), timeout=tick_s * 4)
            except TimeoutError:
                pass
            if self.take_fault("silence"):
                try:
                    await asyncio.wait_for(ws.wait_closed(), self.silence_s)
                except TimeoutError:
                    pass
                last_hb = time.monotonic()
                continue
            if await self.common_fault(ws):
                return
            now = time.monotonic()
            if now - last_hb >= self.heartbeat_s:
                last_hb = now
                self.heartbeats_sent += 1
                await self.send(ws, {"type": "heartbeat", "timestamp": time.time_ns() // 1_000_000})
            if self.take_fault("checksum"):
                # v2 has no checksum; drop it so scheduled faults never pile up.
                log.info("gemini sim: checksum fault ignored (no checksum on v2)")
            tick = self.hub.model.tick
            if tick == last_tick:
                continue  # woken by the timeout only (market paused): heartbeats alone
            last_tick = tick
            for vsym in sorted(subs):
                await self._tick_one(ws, subs, vsym)

    async def _tick_one(self, ws, subs: dict[str, VenueBook], vsym: str) -> None:
        symbol = self.vsym_to_symbol[vsym]
        if self.take_fault("snapshot"):
            await self._full(ws, subs, vsym)
            return
        vb = self.book(symbol)
        changes = [[_SIDE[side], px, q] for side, px, q in diff(subs[vsym], vb)]
        subs[vsym] = vb
        if self.take_fault("crossed"):
            best_ask = vb.sorted_asks()[0][0]
            dp = len(best_ask.partition(".")[2])
            changes.append(["buy", f"{float(best_ask) * 1.001:.{dp}f}", "0.5"])
        if changes and not self.take_fault("gap"):
            await self.send(ws, {"type": "l2_updates", "symbol": vsym, "changes": changes})
        if self.hub.model.tick % self.trade_every_ticks == 0:
            await self.send(ws, self._trade(symbol))
