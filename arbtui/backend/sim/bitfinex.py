"""Simulated Bitfinex: WebSocket API v2 ``book`` channel, P0 (docs/protocols.md#bitfinex).

On connect the server says ``info`` version 2. ``conf`` flags are acknowledged
as asked; with SEQ_ALL every array frame of the connection ends with the next
sequence number, with OB_CHECKSUM every book gets a ``cs`` frame after each
tick that changed it. ``subscribe`` answers ``subscribed`` with a fresh
``chanId``, then the snapshot; one frame per changed level follows. Numbers are
written as JSON numbers with the market model's own digits, so the checksum
text and the adapter's book text are the same.

Faults: ``gap`` (one frame not sent, its sequence number consumed),
``checksum`` (one ``cs`` frame off by one), ``crossed`` (a bid above the best
ask the market does not hold), ``drop``, ``malformed``, ``silence``.
``snapshot``/``seq`` do not exist here and are discarded.
"""

from __future__ import annotations

import json
import logging
import zlib
from typing import Any, ClassVar

from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import split, venue_symbol

log = logging.getLogger("arbtui.sim.bitfinex")

SEQ_ALL = 65536
OB_CHECKSUM = 131072


def sim_checksum(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += (asks[i][0], "-" + asks[i][1])
    c = zlib.crc32(":".join(parts).encode())
    return c - (1 << 32) if c >= (1 << 31) else c


class _Conn:
    def __init__(self) -> None:
        self.flags = 0
        self.seq = 0
        self.chans: dict[int, str] = {}  # chanId -> symbol
        self.fresh: set[int] = set()  # subscribed, snapshot not sent yet


class Sim(SimVenue):
    venue: ClassVar[str] = "bitfinex"
    ws_path: ClassVar[str] = "/ws/2"
    needs_http: ClassVar[bool] = True
    #: A channel with no change for this many ticks gets a ``hb`` frame.
    hb_ticks: int = 20

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.vsym = {s: venue_symbol(self.venue, s) for s in self.symbols}
        self.by_vsym = {v: s for s, v in self.vsym.items()}
        self._next_chan = 1000 + self.rng.randrange(1000)
        self.pings = 0

    async def handle(self, ws) -> None:
        conn = _Conn()
        await self.send(ws, {"event": "info", "version": 2, "serverId": "sim",
                             "platform": {"status": 1}})

        async def on_frame(raw: Any) -> None:
            try:
                m = json.loads(raw)
                ev = m["event"]
            except (ValueError, KeyError, TypeError):
                await self.send(ws, {"event": "error", "msg": "invalid", "code": 10000})
                return
            if ev == "conf":
                conn.flags = int(m.get("flags") or 0)
                await self.send(ws, {"event": "conf", "status": "OK", "flags": conn.flags})
            elif ev == "ping":
                self.pings += 1
                await self.send(ws, {"event": "pong", "ts": 0, "cid": m.get("cid")})
            elif ev == "subscribe":
                s = self.by_vsym.get(m.get("symbol"))
                if m.get("channel") != "book" or s is None:
                    await self.send(ws, {"event": "error", "msg": "symbol: invalid", "code": 10300})
                    return
                if s in conn.chans.values():
                    await self.send(ws, {"event": "error", "msg": "subscribe: dup", "code": 10301})
                    return
                self._next_chan += 1
                cid = self._next_chan
                conn.chans[cid] = s
                conn.fresh.add(cid)
                await self.send(ws, {"event": "subscribed", "channel": "book", "chanId": cid,
                                     "symbol": m["symbol"], "prec": "P0", "freq": "F0",
                                     "len": str(m.get("len", "25")), "pair": m["symbol"][1:]})
            elif ev == "unsubscribe":
                cid = m.get("chanId")
                if conn.chans.pop(cid, None) is not None:
                    conn.fresh.discard(cid)
                    await self.send(ws, {"event": "unsubscribed", "status": "OK", "chanId": cid})

        await self.duplex(ws, self._stream(ws, conn), on_frame)

    async def _frame(self, ws, conn: _Conn, body: str) -> None:
        """``[chanId, ...]`` plus the connection sequence when SEQ_ALL is on."""
        conn.seq += 1
        if conn.flags & SEQ_ALL:
            body = f"{body},{conn.seq}"
        await self.send(ws, f"[{body}]")

    async def _stream(self, ws, conn: _Conn) -> None:
        quiet: dict[int, int] = {}
        while True:
            await self.hub.wait_tick()
            if await self.common_fault(ws):
                return
            if self.take_fault("snapshot", "seq"):
                log.info("bitfinex sim: snapshot/seq faults do not exist on Bitfinex; ignored")
            gap = self.take_fault("gap")
            bad_cs = self.take_fault("checksum")
            crossed = self.take_fault("crossed")
            for cid, s in sorted(conn.chans.items()):
                vb = self.book(s)
                if cid in conn.fresh:
                    conn.fresh.discard(cid)
                    rows = [f"[{p},1,{q}]" for p, q in vb.sorted_bids()[:25]]
                    rows += [f"[{p},1,-{q}]" for p, q in vb.sorted_asks()[:25]]
                    await self._frame(ws, conn, f"{cid},[{','.join(rows)}]")
                    continue
                ch = self.changes(s)
                if crossed:
                    crossed = None
                    best_ask = vb.sorted_asks()[0][0]
                    dp = len(best_ask.partition(".")[2])
                    await self._frame(ws, conn, f"{cid},[{float(best_ask) * 1.001:.{dp}f},1,0.5]")
                if not ch:
                    quiet[cid] = quiet.get(cid, 0) + 1
                    if quiet[cid] >= self.hb_ticks:
                        quiet[cid] = 0
                        await self._frame(ws, conn, f'{cid},"hb"')
                    continue
                quiet[cid] = 0
                # One level per frame: removals first, so no state in between is
                # crossed (the venue's engine never shows a crossed book either).
                for side, p, q in sorted(ch, key=lambda c: c[2] != "0"):
                    if gap:
                        gap = None
                        conn.seq += 1  # lost on the way: its number is gone too
                        log.info("bitfinex sim: gap fault: %s %s %s not sent", s, side, p)
                        continue
                    if q == "0":
                        row = f"[{p},0,{1 if side == 'bid' else -1}]"
                    else:
                        row = f"[{p},1,{q if side == 'bid' else '-' + q}]"
                    await self._frame(ws, conn, f"{cid},{row}")
                if conn.flags & OB_CHECKSUM:
                    cs = sim_checksum(vb.sorted_bids()[:25], vb.sorted_asks()[:25])
                    if bad_cs:
                        bad_cs = None
                        cs += 1
                    await self._frame(ws, conn, f'{cid},"cs",{cs}')
            for f in (gap, bad_cs):
                if f:
                    self.pending_faults.append(f)  # nothing carried it this tick

    async def http_get(self, path: str) -> tuple[int, str]:
        if path.startswith("/v2/conf/pub:list:pair:exchange"):
            pairs = []
            for s, v in self.vsym.items():
                b, q = split(s)
                pairs.append(v[1:] if len(b) == 3 and len(q) == 3 else f"{b}:{q}")
            return 200, json.dumps([pairs + ["TESTBTC:TESTUSD"]])
        return 404, '["error",10020,"not found"]'
