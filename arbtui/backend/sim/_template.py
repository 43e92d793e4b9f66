"""Skeleton of the seventh venue's simulator. Copy it to ``sim/<venue>.py``.

Not registered and never imported by arbtui itself (tests import it to keep it
valid); it pairs with ``feeds/_template.py`` and becomes real through the
venue's ``simulator="arbtui.backend.sim.<venue>:Sim"`` entry in
``arbtui/venues.py``.

A simulator is a real WebSocket server on 127.0.0.1 (``SimVenue`` owns the
socket, the HTTP server for REST, fault injection and the market-tick hub).
It speaks the venue's public wire format exactly as the adapter expects it
from the real venue, so the adapter runs unchanged against it:

- ``handle(ws)``: one client connection. Answer the venue's subscribe
  requests (with its ack shape and its refusals), then stream: a snapshot per
  subscribed book, then one update per market tick with the venue's sequence
  numbers / checksum. ``self.duplex`` runs the stream beside the client's
  frames; ``self.book(symbol)`` is the market model's book for this venue and
  ``self.changes(symbol)`` the levels that changed this tick.
- Faults (``inject``/``take_fault``, see ``server.FAULTS``): call
  ``self.common_fault(ws)`` once per tick (drop, silence, malformed) and
  apply the venue's own at the next message that can carry them: ``gap``
  (skip one update, keep the numbering moving), ``checksum`` (corrupt one),
  ``crossed`` (a bid through the best ask), ``snapshot`` (an unrequested full
  book). A fault that has nothing to carry it this tick goes back on
  ``self.pending_faults`` for the next one: a fault must never vanish unseen.
  Declare in the registry entry's ``detects`` which of them the adapter can
  see, and with which counter: the contract test injects each.
- REST (``needs_http = True`` and ``http_get(path)``): instrument list and
  snapshots where the venue has them.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from arbtui.backend.sim.server import SimVenue


class Sim(SimVenue):
    venue: ClassVar[str] = "template"  # the registry name; symbols compose from it
    ws_path: ClassVar[str] = "/ws"
    needs_http: ClassVar[bool] = False

    async def handle(self, ws) -> None:
        subs: set[str] = set()

        async def on_frame(raw: Any) -> None:
            msg = json.loads(raw)
            if msg.get("op") == "subscribe":
                subs.update(s for s in msg.get("symbols", []) if s in self.symbols)
                await self.send(ws, {"op": "subscribed", "symbols": sorted(subs)})
            elif msg.get("op") == "ping":
                await self.send(ws, {"op": "pong"})

        await self.duplex(ws, self._stream(ws, subs), on_frame)

    async def _stream(self, ws, subs: set[str]) -> None:
        seq: dict[str, int] = {}  # per book, as the adapter template checks it
        while True:
            await self.hub.wait_tick()
            if await self.common_fault(ws):
                return
            gap = self.take_fault("gap")
            for symbol in sorted(subs):
                if symbol not in seq:
                    seq[symbol] = 1
                    vb = self.book(symbol)
                    await self.send(ws, {"type": "snapshot", "symbol": symbol, "seq": 1,
                                         "bids": vb.sorted_bids(), "asks": vb.sorted_asks()})
                    continue
                ch = self.changes(symbol)
                if not ch:
                    continue
                seq[symbol] += 1
                if gap:
                    gap = None  # this update is lost; the next one skips a number
                    continue
                await self.send(ws, {"type": "update", "symbol": symbol, "seq": seq[symbol],
                                     "bids": [[p, q] for side, p, q in ch if side == "bid"],
                                     "asks": [[p, q] for side, p, q in ch if side == "ask"]})
            if gap:
                self.pending_faults.append(gap)  # nothing moved this tick: keep it
