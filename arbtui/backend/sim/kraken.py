"""Kraken spot WebSocket v2 simulator (``book`` channel).

Speaks the documented v2 shapes: a ``status`` frame on connect, one
subscribe ack per symbol, a snapshot then updates, ``heartbeat`` when a
second passes without traffic, and ``pong`` for ``ping``. Prices and sizes go
out as JSON *numbers* written with the pair's fixed decimals (``65000.10``,
``0.50000000``), and every book message carries the CRC32 computed the
venue's way over exactly that text — so a client that parses them as floats
loses trailing zeros and fails the checksum, as it would against Kraken.

Depth follows Kraken's window rule: a level that drops out of the subscribed
depth because a better one arrived is NOT deleted on the wire; the client
must truncate. Genuine removals inside the window are sent as ``qty: 0``.

Faults: ``checksum`` (one update with a wrong checksum), ``gap`` (one update
touching the top 10 silently not sent — only the checksum can reveal it),
``crossed`` (a bid through the ask, with a checksum that *matches*, as seen
in XChange #4239), ``snapshot`` (an unrequested snapshot mid-stream), and the
common ``drop``/``silence``/``malformed``.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import venue_symbol

DEPTHS = (10, 25, 100, 500, 1000)


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def crc_top10(bids: dict[str, str], asks: dict[str, str]) -> int:
    """Kraken's rule: top 10 asks ascending, then top 10 bids descending; for
    each level drop the ``.`` and leading zeros of price then qty; CRC32 unsigned."""

    def fmt(s: str) -> str:
        return s.replace(".", "").lstrip("0")

    a = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))[:10]
    b = sorted(bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:10]
    text = "".join(fmt(p) + fmt(q) for p, q in a) + "".join(fmt(p) + fmt(q) for p, q in b)
    return zlib.crc32(text.encode()) & 0xFFFFFFFF


def _levels(rows: list[tuple[str, str]]) -> str:
    # Literal number text, not json.dumps(float): the digits are the checksum input.
    return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in rows) + "]"


class _Conn:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.subs: dict[str, int] = {}  # vsym -> depth
        self.views: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        #: After a "gap" fault: what the client holds instead of ``views``.
        self.shadow: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self.last_sent = time.monotonic()


class Sim(SimVenue):
    venue: ClassVar[str] = "kraken"
    ws_path: ClassVar[str] = "/v2"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.vsyms = {venue_symbol("kraken", s): s for s in self.symbols}
        self.conn_ids = 0
        #: What the sim did, for tests: (kind, vsym).
        self.fault_log: list[tuple[str, str]] = []
        self.subscribes: list[str] = []
        self.unsubscribes: list[str] = []

    # ------------------------------------------------------------ connection

    async def handle(self, ws) -> None:
        conn = _Conn()
        self.conn_ids += 1
        await self._send(ws, conn, {"channel": "status", "type": "update", "data": [{
            "api_version": "v2", "connection_id": 10_000 + self.conn_ids, "system": "online",
            "version": "2.0.10"}]})
        await self.duplex(ws, self._stream(ws, conn), lambda raw: self._on_client(ws, conn, raw))

    async def _send(self, ws, conn: _Conn, obj: Any) -> None:
        conn.last_sent = time.monotonic()
        await self.send(ws, obj)

    async def _on_client(self, ws, conn: _Conn, raw: Any) -> None:
        t_in = _now_rfc3339()
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            await self._send(ws, conn, {"error": "Malformed request", "success": False,
                                        "time_in": t_in, "time_out": _now_rfc3339()})
            return
        method = msg.get("method")
        extra = {"req_id": msg["req_id"]} if "req_id" in msg else {}
        if method == "ping":
            await self._send(ws, conn, {"method": "pong", **extra, "time_in": t_in,
                                        "time_out": _now_rfc3339()})
            return
        if method not in ("subscribe", "unsubscribe"):
            await self._send(ws, conn, {"error": f"Method not supported: {method}",
                                        "method": method, "success": False, **extra,
                                        "time_in": t_in, "time_out": _now_rfc3339()})
            return
        p = msg.get("params") or {}
        depth = p.get("depth", 10)
        syms = p.get("symbol") or []

        async def err(text: str, sym: str | None = None) -> None:
            body = {"error": text, "method": method, "success": False, **extra}
            if sym is not None:
                body["symbol"] = sym
            await self._send(ws, conn, {**body, "time_in": t_in, "time_out": _now_rfc3339()})

        if p.get("channel") != "book":
            await err(f"Channel not supported: {p.get('channel')}")
            return
        if depth not in DEPTHS:
            await err("Invalid depth")
            return
        async with conn.lock:
            for vsym in syms:
                if vsym not in self.vsyms:
                    await err(f"Currency pair not supported {vsym}", vsym)
                    continue
                if method == "subscribe":
                    if vsym in conn.subs:
                        await err("Already subscribed", vsym)
                        continue
                    self.subscribes.append(vsym)
                    conn.subs[vsym] = depth
                    snapshot = p.get("snapshot", True)
                    await self._send(ws, conn, {
                        "method": "subscribe", "result": {"channel": "book", "depth": depth,
                                                          "snapshot": snapshot, "symbol": vsym},
                        "success": True, **extra, "time_in": t_in, "time_out": _now_rfc3339()})
                    conn.views[vsym] = self._top(vsym, depth)
                    if snapshot:
                        await self._snapshot(ws, conn, vsym)
                else:
                    if vsym not in conn.subs:
                        await err("Subscription Not Found", vsym)
                        continue
                    self.unsubscribes.append(vsym)
                    del conn.subs[vsym]
                    conn.views.pop(vsym, None)
                    await self._send(ws, conn, {
                        "method": "unsubscribe", "result": {"channel": "book", "depth": depth,
                                                            "symbol": vsym},
                        "success": True, **extra, "time_in": t_in, "time_out": _now_rfc3339()})

    # ------------------------------------------------------------ book text

    def _top(self, vsym: str, depth: int) -> tuple[dict[str, str], dict[str, str]]:
        vb = self.book(self.vsyms[vsym])
        return dict(vb.sorted_bids()[:depth]), dict(vb.sorted_asks()[:depth])

    async def _snapshot(self, ws, conn: _Conn, vsym: str) -> None:
        bids, asks = conn.views[vsym] = self._top(vsym, conn.subs[vsym])
        await self._book_msg(ws, conn, "snapshot", vsym,
                             sorted(bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True),
                             sorted(asks.items(), key=lambda kv: Decimal(kv[0])),
                             crc_top10(bids, asks))

    async def _book_msg(self, ws, conn: _Conn, typ: str, vsym: str, bids: list, asks: list,
                        checksum: int) -> None:
        text = (f'{{"channel":"book","type":"{typ}","data":[{{"symbol":"{vsym}",'
                f'"bids":{_levels(bids)},"asks":{_levels(asks)},"checksum":{checksum},'
                f'"timestamp":"{_now_rfc3339()}"}}]}}')
        await self._send(ws, conn, text)

    @staticmethod
    def _side_diff(old: dict[str, str], new: dict[str, str], depth: int,
                   is_bid: bool) -> list[tuple[str, str]]:
        out = [(p, q) for p, q in new.items() if old.get(p) != q]
        worst = None
        if len(new) >= depth and new:
            worst = min(map(Decimal, new)) if is_bid else max(map(Decimal, new))
        for p in old:
            if p in new:
                continue
            d = Decimal(p)
            # Kraken's window rule: a level pushed out by better ones gets no delete.
            if worst is not None and (d < worst if is_bid else d > worst):
                continue
            out.append((p, "0"))
        return out

    def _heal_check(self, conn: _Conn, vsym: str, depth: int, db: list, da: list,
                    new_b: dict[str, str], new_a: dict[str, str]) -> None:
        """After a lost update: if this one happens to re-send every level the
        client missed, the loss is invisible (as on Kraken); lose another."""
        sb, sa = conn.shadow.pop(vsym)
        for side, rows, desc in ((sb, db, True), (sa, da, False)):
            for p, q in rows:
                if q == "0":
                    side.pop(p, None)
                else:
                    side[p] = q
            keep = sorted(side, key=Decimal, reverse=desc)[:depth]
            for p in list(side):
                if p not in keep:
                    del side[p]
        def top(d: dict[str, str], desc: bool) -> list:
            return sorted(d.items(), key=lambda kv: Decimal(kv[0]), reverse=desc)[:10]

        if top(sb, True) == top(new_b, True) and top(sa, False) == top(new_a, False):
            self.pending_faults.append("gap")

    # ------------------------------------------------------------ stream

    async def _stream(self, ws, conn: _Conn) -> None:
        while True:
            try:
                await asyncio.wait_for(self.hub.wait_tick(), 1.0)
            except TimeoutError:
                # Kraken sends a heartbeat about once a second when nothing else flows.
                async with conn.lock:
                    await self._send(ws, conn, {"channel": "heartbeat"})
                continue
            if await self.common_fault(ws):
                return
            async with conn.lock:
                fault = target = None
                if conn.subs:
                    fault = self.take_fault("checksum", "gap", "crossed", "snapshot")
                    if fault:
                        target = self.rng.choice(sorted(conn.subs))
                        self.fault_log.append((fault, target))
                for vsym in sorted(conn.subs):
                    f = fault if vsym == target else None
                    if f == "snapshot":
                        await self._snapshot(ws, conn, vsym)
                        continue
                    await self._update(ws, conn, vsym, f)
                if time.monotonic() - conn.last_sent >= 1.0:
                    await self._send(ws, conn, {"channel": "heartbeat"})

    async def _update(self, ws, conn: _Conn, vsym: str, fault: str | None) -> None:
        depth = conn.subs[vsym]
        old_b, old_a = conn.views[vsym]
        new_b, new_a = self._top(vsym, depth)
        if fault == "crossed":
            best_ask = min(new_a, key=Decimal)
            dp = len(best_ask.partition(".")[2])
            bogus = Decimal(best_ask) + Decimal(1).scaleb(-dp)
            px = f"{bogus:.{dp}f}"
            new_b[px] = "1.00000000"
            # The client truncates to depth; mirror it so later diffs stay exact.
            new_b = dict(sorted(new_b.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:depth])
        db = self._side_diff(old_b, new_b, depth, True)
        da = self._side_diff(old_a, new_a, depth, False)
        conn.views[vsym] = (new_b, new_a)
        if not db and not da:
            if fault:
                self.pending_faults.append(fault)  # nothing to carry it this tick; retry
                self.fault_log.pop()
            return
        if fault == "gap":
            window = {p for side, desc in ((new_b, True), (old_b, True), (new_a, False),
                                           (old_a, False))
                      for p in sorted(side, key=Decimal, reverse=desc)[:10]}
            if any(p in window for p, _ in db + da):
                # Lost on the wire: the client keeps the old view; only the CRC can tell.
                conn.shadow[vsym] = (dict(old_b), dict(old_a))
                return
            self.pending_faults.append(fault)  # invisible to the checksum; try next tick
            self.fault_log.pop()
        elif vsym in conn.shadow:
            self._heal_check(conn, vsym, depth, db, da, new_b, new_a)
        crc = crc_top10(new_b, new_a)
        if fault == "checksum":
            crc ^= 0x5A5A5A5A
        await self._book_msg(ws, conn, "update", vsym, db, da, crc)
