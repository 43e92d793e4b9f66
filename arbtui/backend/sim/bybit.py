"""Bybit v5 public spot simulator (``orderbook.{depth}.{SYMBOL}`` topics).

Speaks the spot shapes recorded from Bybit (docs/protocols.md#bybit): subscribe acks
without ``req_id`` unless the client sent one, at most 10 args per request,
a snapshot per topic then deltas whose ``u`` rises by exactly 1 per message,
a ``seq`` cross sequence that only increases, ``ts``/``cts`` in ms, and the
spot pong reply to ``{"op":"ping"}``. Bybit keeps each book at exactly N
levels, so deltas carry deletes for levels leaving the window as well as the
levels entering it. Depth 1 is snapshot-only.

Faults: ``gap`` (one delta skips a ``u``), ``seq`` (one delta's ``seq`` goes
back), ``restart`` (a full book in a message with ``u == 1``, as after a
Bybit service restart), ``crossed`` (a bid through the ask), ``snapshot`` (an
unrequested snapshot mid-stream), and the common ``drop``/``silence``/
``malformed``. ``checksum`` does not exist on Bybit and is ignored.
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any, ClassVar

from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import venue_symbol

DEPTHS = (1, 50, 200, 1000)
MAX_ARGS = 10
#: Bybit-only fault kinds on top of the shared ones.
EXTRA_FAULTS = ("restart", "seq")


def _ms() -> int:
    return time.time_ns() // 1_000_000


class _Conn:
    def __init__(self, conn_id: str) -> None:
        self.conn_id = conn_id
        self.lock = asyncio.Lock()
        self.subs: dict[str, tuple[str, int]] = {}  # topic -> (vsym, depth)
        self.views: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
        self.u: dict[str, int] = {}


class Sim(SimVenue):
    venue: ClassVar[str] = "bybit"
    ws_path: ClassVar[str] = "/v5/public/spot"
    depths: ClassVar[tuple[int, ...]] = DEPTHS

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.vsyms = {venue_symbol(self.venue, s): s for s in self.symbols}
        self.seq = {v: 112_488_000_000 + self.rng.randrange(1_000_000) for v in self.vsyms}
        self.n_conns = 0
        #: What the sim did, for tests: (kind, topic).
        self.fault_log: list[tuple[str, str]] = []
        self.subscribes: list[str] = []
        self.unsubscribes: list[str] = []

    def inject(self, kind: str) -> None:
        if kind in EXTRA_FAULTS:
            self.pending_faults.append(kind)
            return
        super().inject(kind)

    # ------------------------------------------------------------ connection

    async def handle(self, ws) -> None:
        self.n_conns += 1
        conn = _Conn(f"sim{self.n_conns:04d}-{self.rng.randrange(16 ** 6):06x}")
        await self.duplex(ws, self._stream(ws, conn), lambda raw: self._on_client(ws, conn, raw))

    async def _reply(self, ws, conn: _Conn, op: str, ok: bool, ret_msg: str, req: dict) -> None:
        body: dict[str, Any] = {"success": ok, "ret_msg": ret_msg, "conn_id": conn.conn_id}
        if "req_id" in req:
            body["req_id"] = req["req_id"]  # spot echoes req_id only when one was sent
        body["op"] = op
        await self.send(ws, body)

    async def _on_client(self, ws, conn: _Conn, raw: Any) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            msg = None
        if not isinstance(msg, dict):
            await self._reply(ws, conn, "", False, "error:invalid request", {})
            return
        op = msg.get("op")
        if op == "ping":
            await self._reply(ws, conn, "ping", True, "pong", msg)
            return
        if op not in ("subscribe", "unsubscribe"):
            await self._reply(ws, conn, str(op), False, f"error:unknown op {op}", msg)
            return
        args = msg.get("args") or []
        if len(args) > MAX_ARGS:
            await self._reply(ws, conn, op, False, f"args size >{MAX_ARGS}", msg)
            return
        async with conn.lock:
            bad: list[str] = []
            good: list[tuple[str, str, int]] = []
            for t in args:
                parts = t.split(".") if isinstance(t, str) else []
                ok = (len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit()
                      and int(parts[1]) in self.depths and parts[2] in self.vsyms)
                if not ok or (op == "subscribe") == (t in conn.subs):
                    bad.append(str(t))
                else:
                    good.append((t, parts[2], int(parts[1])))
            for t, vsym, depth in good:
                if op == "subscribe":
                    self.subscribes.append(t)
                    conn.subs[t] = (vsym, depth)
                    conn.u[t] = 10_000_000 + self.rng.randrange(50_000_000)
                else:
                    self.unsubscribes.append(t)
                    del conn.subs[t]
                    conn.views.pop(t, None)
            ret = "" if op == "unsubscribe" else "subscribe"
            if bad:
                ret = f"error:invalid or duplicate topic:{','.join(bad)}"
            await self._reply(ws, conn, op, not bad, ret, msg)
            if op == "subscribe":
                for t, _, _ in good:
                    await self._snapshot(ws, conn, t)

    # ------------------------------------------------------------ book text

    def _top(self, vsym: str, depth: int) -> tuple[dict[str, str], dict[str, str]]:
        vb = self.book(self.vsyms[vsym])
        return dict(vb.sorted_bids()[:depth]), dict(vb.sorted_asks()[:depth])

    def _next_seq(self, vsym: str) -> int:
        self.seq[vsym] += 1 + self.rng.randrange(40)
        return self.seq[vsym]

    async def _msg(self, ws, topic: str, typ: str, vsym: str, bids: list, asks: list, u: int,
                   seq: int) -> None:
        ts = _ms()
        await self.send(ws, {"topic": topic, "ts": ts, "type": typ, "data": {
            "s": vsym, "b": [list(r) for r in bids], "a": [list(r) for r in asks],
            "u": u, "seq": seq}, "cts": ts - 3})

    async def _snapshot(self, ws, conn: _Conn, topic: str, *, typ: str = "snapshot",
                        u: int | None = None) -> None:
        vsym, depth = conn.subs[topic]
        bids, asks = conn.views[topic] = self._top(vsym, depth)
        if u is None:
            conn.u[topic] += 1
        else:
            conn.u[topic] = u
        await self._msg(ws, topic, typ, vsym,
                        sorted(bids.items(), key=lambda kv: Decimal(kv[0]), reverse=True),
                        sorted(asks.items(), key=lambda kv: Decimal(kv[0])),
                        conn.u[topic], self._next_seq(vsym))

    # ------------------------------------------------------------ stream

    async def _stream(self, ws, conn: _Conn) -> None:
        while True:
            await self.hub.wait_tick()
            if await self.common_fault(ws):
                return
            if self.take_fault("checksum"):
                self.fault_log.append(("checksum-not-applicable", ""))
            async with conn.lock:
                fault = target = None
                if conn.subs:
                    fault = self.take_fault("gap", "seq", "restart", "crossed", "snapshot")
                    if fault:
                        target = self.rng.choice(sorted(conn.subs))
                        self.fault_log.append((fault, target))
                for topic in sorted(conn.subs):
                    f = fault if topic == target else None
                    if f == "snapshot":
                        await self._snapshot(ws, conn, topic)
                    elif f == "restart":
                        # After a Bybit service restart u starts again at 1 and that
                        # message holds the whole book, whatever its type says.
                        await self._snapshot(ws, conn, topic, typ="delta", u=1)
                    else:
                        await self._delta(ws, conn, topic, f)

    async def _delta(self, ws, conn: _Conn, topic: str, fault: str | None) -> None:
        vsym, depth = conn.subs[topic]
        old_b, old_a = conn.views[topic]
        new_b, new_a = self._top(vsym, depth)
        if fault == "crossed":
            best_ask = min(new_a, key=Decimal)
            dp = len(best_ask.partition(".")[2])
            new_b[f"{Decimal(best_ask) + Decimal(1).scaleb(-dp):.{dp}f}"] = "1.000000"
            new_b = dict(sorted(new_b.items(), key=lambda kv: Decimal(kv[0]), reverse=True)[:depth])
        db = [(p, q) for p, q in new_b.items() if old_b.get(p) != q]
        db += [(p, "0") for p in old_b if p not in new_b]
        da = [(p, q) for p, q in new_a.items() if old_a.get(p) != q]
        da += [(p, "0") for p in old_a if p not in new_a]
        if not db and not da:
            if fault:
                self.pending_faults.append(fault)  # nothing to carry it this tick; retry
                self.fault_log.pop()
            return
        conn.views[topic] = (new_b, new_a)
        if depth == 1:
            # Depth 1 is snapshot-only on Bybit.
            conn.u[topic] += 1
            await self._msg(ws, topic, "snapshot", vsym, list(new_b.items()),
                            list(new_a.items()), conn.u[topic], self._next_seq(vsym))
            return
        conn.u[topic] += 2 if fault == "gap" else 1
        seq = self._next_seq(vsym)
        if fault == "seq":
            seq = self.seq[vsym] - 1_000  # the cross sequence must never go back
        await self._msg(ws, topic, "delta", vsym, db, da, conn.u[topic], seq)
