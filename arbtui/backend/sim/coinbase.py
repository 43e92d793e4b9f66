"""Simulated Coinbase Advanced Trade: ``level2`` as ``l2_data`` plus ``heartbeats``.

Wire format as docs/protocols.md#coinbase describes it: one channel per subscribe message (a
``channels`` list gets an error), each (un)subscribe acknowledged by a
``subscriptions`` message listing everything the connection holds; level2
starts with a full-book ``snapshot`` event per product, then ``update``
events with asks labelled ``offer``; ``heartbeats`` once a second with a
venue-wide ``heartbeat_counter``; ``sequence_num`` counts every message on a
connection across all channels, from 0. No subscribe within 5 s closes the
connection, like the venue.

``snapshot_pad_bytes`` pads each snapshot with far-away levels to that size
(the real BTC-USD snapshot is ~5 MB, over websockets' 1 MiB default).

Faults: ``gap`` (one l2_data message is not sent but its sequence_num is
used), ``crossed`` (an update that crosses the book), ``snapshot`` (a junk
level, then a mid-stream snapshot without it: only a client that resets the
book on every snapshot drops the junk), ``drop``, ``malformed``, ``silence``.
``checksum`` does not exist on Coinbase and is discarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from arbtui.backend.sim.market import VenueBook, diff, price_tick
from arbtui.backend.sim.server import SimVenue
from arbtui.symbols import venue_symbol

log = logging.getLogger("arbtui.sim.coinbase")

_SIDE = {"bid": "bid", "ask": "offer"}


def rfc3339(ns: int) -> str:
    s, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{frac:09d}Z"


class _Conn:
    __slots__ = ("channels", "q", "seen_l2", "seq", "ws")

    def __init__(self, ws) -> None:
        self.ws = ws
        self.q: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=20_000)
        self.channels: dict[str, set[str]] = {}
        self.seq = 0
        self.seen_l2: set[str] = set()


class Sim(SimVenue):
    venue = "coinbase"

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        self.pid = {s: venue_symbol(self.venue, s) for s in self.symbols}
        self.by_pid = {p: s for s, p in self.pid.items()}
        self.cur: dict[str, VenueBook] = {s: self.book(s) for s in self.symbols}
        self.conns: set[_Conn] = set()
        self.hb_counter = self.rng.randrange(1000, 100_000)
        self.snapshot_pad_bytes = 0
        self.subscribe_deadline_s = 5.0
        self.heartbeat_s = 1.0
        self.largest_frame = 0
        #: False: a product re-subscribed on the same connection gets no new snapshot
        #: (tests the client's way out of a resubscribe that never completes).
        self.resubscribe_snapshots = True
        self._pad_cache: dict[str, str] = {}

    async def start(self) -> None:
        await super().start()
        self.background(self.pump_ticks(self._tick))
        self.background(self._heartbeats())

    # ------------------------------------------------------------------ frames

    @staticmethod
    def _updates(changes, ts: str) -> list[dict]:
        return [{"side": _SIDE[side], "event_time": ts, "price_level": p, "new_quantity": q}
                for side, p, q in changes]

    def _snapshot_events(self, s: str, ts: str) -> str:
        """The ``events`` array of a snapshot message, as JSON text (padding spliced in)."""
        b = self.cur[s]
        ups = [("bid", p, q) for p, q in b.sorted_bids()] + [("ask", p, q) for p, q in b.sorted_asks()]
        body = json.dumps(self._updates(ups, ts), separators=(",", ":"))
        if self.snapshot_pad_bytes > 0:
            body = body[:-1] + "," + self._padding(s, ts) + "]"
        return f'[{{"type":"snapshot","product_id":"{self.pid[s]}","updates":{body}}}]'

    def _padding(self, s: str, ts: str) -> str:
        """Far-from-market levels (half and double the price) that the model never touches."""
        key = f"{s}|{self.snapshot_pad_bytes}"
        if key not in self._pad_cache:
            b = self.cur[s]
            tick = price_tick(s)
            dp = len(b.sorted_bids()[0][0].partition(".")[2])
            low = float(b.sorted_bids()[0][0]) * 0.5
            high = float(b.sorted_asks()[0][0]) * 2.0
            parts: list[str] = []
            size = 0
            i = 0
            while size < self.snapshot_pad_bytes:
                for side, px in (("bid", low - i * tick), ("offer", high + i * tick)):
                    lvl = (f'{{"side":"{side}","event_time":"{ts}","price_level":"{px:.{dp}f}",'
                           f'"new_quantity":"{0.001 + (i % 97) / 1000:.8f}"}}')
                    parts.append(lvl)
                    size += len(lvl) + 1
                i += 1
            self._pad_cache[key] = ",".join(parts)
        return self._pad_cache[key]

    def _envelope(self, conn: _Conn, channel: str, events_json: str) -> str:
        conn.seq += 1
        ts = rfc3339(time.time_ns())
        return (f'{{"channel":"{channel}","client_id":"","timestamp":"{ts}",'
                f'"sequence_num":{conn.seq - 1},"events":{events_json}}}')

    def _to_l2(self, s: str, item: tuple[str, str]) -> None:
        pid = self.pid[s]
        for c in list(self.conns):
            if pid in c.channels.get("level2", ()):
                self._put(c, item)

    def _put(self, c: _Conn, item: tuple[str, str]) -> None:
        self.put_or_drop(self.conns, c, item)

    # ------------------------------------------------------------------ market -> events

    def _tick(self) -> None:
        if self.take_fault("checksum"):
            log.info("coinbase sim: checksum fault does not exist on Coinbase; ignored")
        crossed = self.take_fault("crossed")
        snap = self.take_fault("snapshot")
        ts = rfc3339(time.time_ns())
        for i, s in enumerate(self.symbols):
            old, new = self.cur[s], self.book(s)
            ch = diff(old, new)
            self.cur[s] = new
            pid = self.pid[s]
            if ch:
                ev = [{"type": "update", "product_id": pid, "updates": self._updates(ch, ts)}]
                self._to_l2(s, ("l2_data", json.dumps(ev, separators=(",", ":"))))
            if i != 0:
                continue
            if crossed:
                px = f"{float(new.sorted_asks()[0][0]) + price_tick(s):.{_dp(new)}f}"
                ev = [{"type": "update", "product_id": pid,
                       "updates": self._updates([("bid", px, "1.00000000")], ts)}]
                self._to_l2(s, ("l2_data", json.dumps(ev, separators=(",", ":"))))
            if snap:
                junk = f"{float(new.sorted_bids()[0][0]) * 0.99:.{_dp(new)}f}"
                ev = [{"type": "update", "product_id": pid,
                       "updates": self._updates([("bid", junk, "7.77000000")], ts)}]
                self._to_l2(s, ("l2_data", json.dumps(ev, separators=(",", ":"))))
                self._to_l2(s, ("l2_data", self._snapshot_events(s, ts)))

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            self.hb_counter += 1
            now = time.time_ns()
            ev = json.dumps([{"current_time": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now // 10 ** 9))
                              + f".{now % 10 ** 9:09d} +0000 UTC m=+{self.hb_counter}.0",
                              "heartbeat_counter": self.hb_counter}], separators=(",", ":"))
            for c in list(self.conns):
                if c.channels.get("heartbeats"):
                    self._put(c, ("heartbeats", ev))

    # ------------------------------------------------------------------ WebSocket

    async def handle(self, ws) -> None:
        conn = _Conn(ws)
        self.conns.add(conn)
        reader = asyncio.get_running_loop().create_task(self._reader(conn))
        try:
            while True:
                channel, events = await conn.q.get()
                if channel == "l2_data" and self.take_fault("gap"):
                    conn.seq += 1  # the message is lost, its sequence_num is used
                    log.info("coinbase sim: gap fault: seq %d not sent", conn.seq - 1)
                    continue
                if await self.queued_fault(ws, self.conns, conn):
                    return
                text = self._envelope(conn, channel, events)
                self.largest_frame = max(self.largest_frame, len(text))
                await self.send(ws, text)
        finally:
            self.conns.discard(conn)
            reader.cancel()

    async def _reader(self, conn: _Conn) -> None:
        ws = conn.ws
        subscribed = False

        async def deadline() -> None:
            await asyncio.sleep(self.subscribe_deadline_s)
            if not subscribed:
                await ws.close(1008, "subscribe within 5 seconds")

        dl = asyncio.get_running_loop().create_task(deadline())
        try:
            async for text in ws:
                try:
                    req = json.loads(text)
                    kind = req["type"]
                    pids = list(req.get("product_ids") or [])
                except (ValueError, KeyError, TypeError):
                    await self.send(ws, {"type": "error", "message": "malformed request"})
                    continue
                channel = req.get("channel")
                if not isinstance(channel, str) or "channels" in req:
                    await self.send(ws, {"type": "error",
                                         "message": "exactly one channel per subscribe message"})
                    continue
                if kind == "subscribe":
                    subscribed = True
                    have = conn.channels.setdefault(channel, set())
                    new = [p for p in pids if p not in have]
                    have.update(pids)
                    self._put(conn, ("subscriptions", self._subs_events(conn)))
                    if channel == "level2":
                        ts = rfc3339(time.time_ns())
                        for p in new:
                            s = self.by_pid.get(p)
                            again = p in conn.seen_l2
                            conn.seen_l2.add(p)
                            if s is not None and (self.resubscribe_snapshots or not again):
                                self._put(conn, ("l2_data", self._snapshot_events(s, ts)))
                elif kind == "unsubscribe":
                    conn.channels.get(channel, set()).difference_update(pids)
                    self._put(conn, ("subscriptions", self._subs_events(conn)))
                else:
                    await self.send(ws, {"type": "error", "message": f"unknown type {kind}"})
        finally:
            dl.cancel()

    @staticmethod
    def _subs_events(conn: _Conn) -> str:
        subs = {ch: sorted(p) for ch, p in conn.channels.items() if p}
        return json.dumps([{"subscriptions": subs}], separators=(",", ":"))


def _dp(b: VenueBook) -> int:
    return len(b.sorted_bids()[0][0].partition(".")[2])
