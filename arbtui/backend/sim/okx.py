"""OKX v5 public WebSocket simulator: the ``books`` channel
(docs/protocols.md#okx).

Speaks the real wire format: ``{"op":"subscribe","args":[...]}`` with one
ack per arg, a ``snapshot`` (``prevSeqId -1``) then ``update`` frames chained
``prevSeqId`` -> ``seqId``, 4-element levels, ``ts`` in ms as a string, text
``ping`` -> ``pong``, an empty keepalive update (``prevSeqId == seqId``) when a
book has been idle, and ``checksum`` 0 as OKX sends since 2026-06-23 (set
``checksums = True`` for 2022-style real CRC32 checksums).

Each connection diffs the current market book against what it last sent on
that connection, so a tick it was too busy to see is folded into the next
update instead of silently lost.

Faults: drop / malformed (``common_fault``), silence (stops every frame,
pongs included: a network stall), gap (one update skipped, the chain breaks),
checksum (a wrong non-zero checksum, only with ``checksums``), crossed (a bid
above the best ask), snapshot (a fresh snapshot mid-stream, which is legal),
and ``reset_seq()`` (post-maintenance seqId reset, legal).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from arbtui.backend.book import Book, okx_checksum
from arbtui.backend.sim.market import VenueBook, diff
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import venue_symbol

log = logging.getLogger("arbtui.sim.okx")


def _num_orders(px: str) -> str:
    return str(1 + zlib.crc32(px.encode()) % 7)


class _Sub:
    __slots__ = ("idle_ticks", "inst", "last_seq", "sent", "symbol")

    def __init__(self, symbol: str, inst: str) -> None:
        self.symbol = symbol
        self.inst = inst
        self.sent: VenueBook | None = None  # what this connection's client holds
        self.last_seq = -1
        self.idle_ticks = 0


class Sim(SimVenue):
    venue: ClassVar[str] = "okx"
    ws_path: ClassVar[str] = "/ws/v5/public"
    #: REST: ``/api/v5/market/books`` (snapshot-less mode) and the SPOT instrument list.
    needs_http: ClassVar[bool] = True
    #: Send an empty keepalive update after this many idle seconds (OKX: ~60 s).
    keepalive_idle_s: float = 30.0
    #: How long the "silence" fault stalls the connection.
    silence_s: float = 60.0
    #: True: real CRC32 checksums (2022 behaviour); False: always 0 (2026).
    checksums: bool = False
    #: False: OKX's announced mode with no snapshot on subscribe (sync from REST).
    in_band_snapshot: bool = True
    #: instIds whose book stream is withheld (no updates, no keepalives) while the
    #: connection keeps answering: a subscription the venue silently lost.
    muted: set[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inst_to_symbol = {venue_symbol(self.venue, s): s for s in self.symbols}
        # seqId is per instrument and the same on every connection (OKX rule).
        self.seq_base = {s: 10_000 + 1_000 * i for i, s in enumerate(self.symbols)}
        self._reset_pending = False
        self.muted = set()
        self.acks = 0
        self.pings = 0

    def reset_seq(self) -> None:
        """Next update of each book carries a seqId lower than its prevSeqId."""
        self._reset_pending = True

    def _seq_now(self, symbol: str) -> int:
        return self.seq_base[symbol] + 3 * self.hub.model.tick

    # ------------------------------------------------------------ frames

    @staticmethod
    def _levels(rows: list[tuple[str, str]]) -> list[list[str]]:
        return [[px, q, "0", "0" if q == "0" else _num_orders(px)] for px, q in rows]

    def _checksum(self, vb: VenueBook) -> int:
        if not self.checksums:
            return 0
        b = Book(1000)
        b.load(vb.sorted_bids(), vb.sorted_asks())
        return okx_checksum(b)

    def _frame(self, sub: _Sub, action: str, bids: list, asks: list, prev: int, seq: int,
               checksum: int) -> str:
        return json.dumps({
            "arg": {"channel": "books", "instId": sub.inst},
            "action": action,
            "data": [{"asks": self._levels(asks), "bids": self._levels(bids),
                      "ts": str(time.time_ns() // 1_000_000), "checksum": checksum,
                      "prevSeqId": prev, "seqId": seq}],
        }, separators=(",", ":"))

    async def http_get(self, path: str) -> tuple[int, str]:
        url = urlsplit(path)
        q = parse_qs(url.query)
        if url.path == "/api/v5/market/books":
            inst = (q.get("instId") or [""])[0]
            symbol = self.inst_to_symbol.get(inst)
            if symbol is None:
                return 200, json.dumps({"code": "51001", "msg": "Instrument ID does not exist", "data": []})
            vb = self.book(symbol)
            return 200, json.dumps({"code": "0", "msg": "", "data": [{
                "asks": self._levels(vb.sorted_asks()), "bids": self._levels(vb.sorted_bids()),
                "ts": str(time.time_ns() // 1_000_000), "seqId": self._seq_now(symbol)}]})
        if url.path == "/api/v5/public/instruments" and q.get("instType") == ["SPOT"]:
            rows = [{"instId": inst, "instType": "SPOT", "baseCcy": s.split("-")[0],
                     "quoteCcy": s.split("-")[1], "state": "live"} for inst, s in self.inst_to_symbol.items()]
            rows.append({"instId": "BTC-USDT-SWAP", "instType": "SWAP", "baseCcy": "", "quoteCcy": "",
                         "state": "live"})  # never in a SPOT answer for real; the parser must still skip it
            return 200, json.dumps({"code": "0", "msg": "", "data": rows})
        return 404, json.dumps({"code": "404", "msg": "not found", "data": []})

    async def _snapshot(self, ws, sub: _Sub) -> None:
        vb = self.book(sub.symbol)
        seq = self._seq_now(sub.symbol)
        sub.sent, sub.last_seq, sub.idle_ticks = vb, seq, 0
        await self.send(ws, self._frame(sub, "snapshot", vb.sorted_bids(), vb.sorted_asks(),
                                         -1, seq, self._checksum(vb)))

    # ------------------------------------------------------------ connection

    async def handle(self, ws) -> None:
        subs: dict[str, _Sub] = {}
        state = {"silent_until": 0.0}

        async def on_frame(msg: str | bytes) -> None:
            if time.monotonic() < state["silent_until"]:
                return  # a stalled network answers nothing
            if msg == "ping":
                self.pings += 1
                await self.send(ws, "pong")
                return
            await self._on_request(ws, msg, subs)

        await self.duplex(ws, self._writer(ws, subs, state), on_frame)

    async def _on_request(self, ws, msg: str | bytes, subs: dict[str, _Sub]) -> None:
        try:
            req = json.loads(msg)
            op, args = req["op"], req["args"]
        except (ValueError, KeyError, TypeError):
            await self.send(ws, {"event": "error", "code": "60012", "msg": f"Invalid request: {msg!s:.100}",
                                 "connId": "sim"})
            return
        for a in args:
            inst = a.get("instId") if isinstance(a, dict) else None
            if not isinstance(a, dict) or a.get("channel") != "books" or inst not in self.inst_to_symbol:
                await self.send(ws, {"event": "error", "code": "60018",
                                     "msg": f"Wrong URL or channel:{a}, doesn't exist", "connId": "sim"})
                continue
            if op == "subscribe":
                self.acks += 1
                await self.send(ws, {"event": "subscribe", "arg": a, "connId": "sim"})
                sub = subs.get(inst) or _Sub(self.inst_to_symbol[inst], inst)
                subs[inst] = sub
                if self.in_band_snapshot:
                    await self._snapshot(ws, sub)
                else:
                    # No snapshot: the stream starts with the next update, chained
                    # from the current seqId (what a REST snapshot now returns).
                    sub.sent, sub.last_seq = self.book(sub.symbol), self._seq_now(sub.symbol)
            elif op == "unsubscribe":
                subs.pop(inst, None)
                await self.send(ws, {"event": "unsubscribe", "arg": a, "connId": "sim"})

    async def _writer(self, ws, subs: dict[str, _Sub], state: dict) -> None:
        idle_limit = max(1, int(self.keepalive_idle_s * 1000 / self.hub.model.tick_ms))
        while True:
            try:
                # Bounded wait so idle keepalives still go out if the hub pauses.
                await asyncio.wait_for(self.hub.wait_tick(), timeout=self.hub.model.tick_ms / 1000 * 4)
            except TimeoutError:
                pass
            if self.take_fault("silence"):
                # Before common_fault, whose silence would keep answering pings.
                state["silent_until"] = time.monotonic() + self.silence_s
                try:
                    await asyncio.wait_for(ws.wait_closed(), self.silence_s)
                except TimeoutError:
                    pass
                continue
            if await self.common_fault(ws):
                return
            if not self.checksums and self.take_fault("checksum"):
                # 2026 OKX has no checksum to corrupt; drop it so scheduled faults never pile up.
                log.info("okx sim: checksum fault ignored (checksums are 0)")
            reset = self._reset_pending
            self._reset_pending = False
            for sub in sorted(subs.values(), key=lambda s: s.inst):
                await self._tick_one(ws, sub, reset, idle_limit)

    async def _tick_one(self, ws, sub: _Sub, reset: bool, idle_limit: int) -> None:
        if sub.sent is None or sub.inst in self.muted:
            return
        if reset:
            # Maintenance reset: the venue restarts its ids far below the old ones.
            self.seq_base[sub.symbol] = 100 - 3 * self.hub.model.tick
        vb = self.book(sub.symbol)
        if self.take_fault("snapshot"):
            await self._snapshot(ws, sub)
            return
        changes = diff(sub.sent, vb)
        seq = self._seq_now(sub.symbol)
        if reset and seq >= sub.last_seq:
            seq = sub.last_seq - 1
        if not changes:
            sub.idle_ticks += 1
            if sub.idle_ticks >= idle_limit:
                sub.idle_ticks = 0
                # OKX keepalive: empty sides, prevSeqId == seqId == last seqId.
                await self.send(ws, self._frame(sub, "update", [], [], sub.last_seq, sub.last_seq, 0))
            return
        sub.idle_ticks = 0
        if seq == sub.last_seq:
            seq += 1
            self.seq_base[sub.symbol] += 1
        bids = [(px, q) for side, px, q in changes if side == "bid"]
        asks = [(px, q) for side, px, q in changes if side == "ask"]
        prev = sub.last_seq
        sub.sent, sub.last_seq = vb, seq
        if self.take_fault("gap"):
            return  # the client never sees this update: its next prevSeqId will not chain
        checksum = self._checksum(vb)
        if self.checksums and self.take_fault("checksum"):
            checksum = checksum ^ 0x5A5A or 1
        if self.take_fault("crossed"):
            best_ask = vb.sorted_asks()[0][0]
            dp = len(best_ask.partition(".")[2])
            bad = f"{float(best_ask) * 1.001:.{dp}f}"
            bids.append((bad, "0.5"))
            checksum = 0  # the crossing level is not in the venue's book either
        await self.send(ws, self._frame(sub, "update", bids, asks, prev, seq, checksum))
