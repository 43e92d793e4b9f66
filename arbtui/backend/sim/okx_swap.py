"""OKX v5 public swap simulator: the spot simulator (``sim/okx.py``) on
``BTC-USDT-SWAP`` style instIds, sizes in CONTRACTS, plus the venue-state
channels (docs/protocols.md#okx-swap).

- ``book(symbol)`` is the market model's book converted to contracts by the
  instrument table (``arbtui.venues``: linear ``ctVal`` in base units, lot
  0.01 contract; inverse ``ctVal`` in quote currency, lot 1 contract), so
  snapshots, updates, checksums and the REST book all speak contracts.
- ``funding-rate`` (``fundingRate``, ``fundingTime`` = the next settlement,
  ``nextFundingTime`` the one after), ``mark-price`` (``markPx``) and
  ``index-tickers`` (``idxPx`` on the underlying ``BTC-USDT``): a push on
  subscribe, then whenever the value changes (funding at most once a second),
  from the market model's perp state.
- REST ``/api/v5/public/instruments?instType=SWAP`` with ``ctVal``, ``ctType``,
  ``uly``, ``settleCcy``.

Book faults are the spot simulator's (gap, checksum with ``checksums``,
crossed, snapshot, drop, silence, malformed).
"""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from arbtui import venues
from arbtui.backend.sim import okx
from arbtui.backend.sim.market import VenueBook, next_funding_ms

_SPEC = venues.get("okx-swap")


def contracts(inst: venues.Instrument, px: str, base: str) -> str:
    """A base-unit size -> the venue's contract count for ``inst`` (never 0: a
    level the model holds stays a level)."""
    if inst.kind == "inverse":
        n = max(1, round(float(base) * float(px) / float(inst.ct_val)))
        return str(n)
    n = max(0.01, round(float(base) / float(inst.ct_val), 2))
    return format(Decimal(f"{n:.2f}").normalize(), "f")


class Sim(okx.Sim):
    venue: ClassVar[str] = "okx-swap"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instruments = {s: _SPEC.instrument(s) for s in self.symbols}
        self._conv: dict[str, tuple[VenueBook, VenueBook]] = {}
        self.state_pushes = 0

    def book(self, symbol: str) -> VenueBook:
        """The model's book in contracts (converted once per market tick)."""
        vb = super().book(symbol)
        hit = self._conv.get(symbol)
        if hit is not None and hit[0] is vb:
            return hit[1]
        inst = self.instruments[symbol]
        out = VenueBook(bids={p: contracts(inst, p, q) for p, q in vb.bids.items()},
                        asks={p: contracts(inst, p, q) for p, q in vb.asks.items()})
        self._conv[symbol] = (vb, out)
        return out

    # ------------------------------------------------------------ connection

    async def handle(self, ws) -> None:
        subs: dict[str, okx._Sub] = {}
        state_subs: dict[tuple[str, str], str] = {}  # (channel, instId) -> last pushed
        state = {"silent_until": 0.0}

        async def on_frame(msg: str | bytes) -> None:
            if time.monotonic() < state["silent_until"]:
                return
            if msg == "ping":
                self.pings += 1
                await self.send(ws, "pong")
                return
            try:
                req = json.loads(msg)
                args = req["args"]
                op = req["op"]
            except (ValueError, KeyError, TypeError):
                await self._on_request(ws, msg, subs)
                return
            mine = [a for a in args if isinstance(a, dict) and self._state_arg(a)]
            for a in mine:
                key = (a["channel"], a["instId"])
                await self.send(ws, {"event": op, "arg": a, "connId": "sim"})
                if op == "subscribe":
                    state_subs[key] = ""
                    await self._push_state(ws, key, state_subs)
                else:
                    state_subs.pop(key, None)
            rest = [a for a in args if a not in mine]
            if rest:
                await self._on_request(ws, json.dumps({**req, "args": rest}), subs)

        async def streams() -> None:
            pusher = asyncio.get_running_loop().create_task(self._state_loop(ws, state_subs, state))
            try:
                await self._writer(ws, subs, state)
            finally:
                pusher.cancel()

        await self.duplex(ws, streams(), on_frame)

    def _state_arg(self, a: dict) -> bool:
        ch, inst = a.get("channel"), a.get("instId")
        if ch in ("funding-rate", "mark-price"):
            return inst in self.inst_to_symbol
        if ch == "index-tickers":
            return any(venues.underlying(s) == inst for s in self.symbols)
        return False

    def _symbol_of(self, ch: str, inst: str) -> str:
        if ch == "index-tickers":
            return next(s for s in self.symbols if venues.underlying(s) == inst)
        return self.inst_to_symbol[inst]

    def state_row(self, ch: str, inst: str) -> dict[str, str]:
        st = self.hub.model.perp_state(self._symbol_of(ch, inst))
        now = time.time_ns() // 1_000_000
        if ch == "funding-rate":
            nxt = next_funding_ms(now)
            return {"instId": inst, "instType": "SWAP", "fundingRate": f"{st['rate']:.8f}",
                    "fundingTime": str(nxt), "nextFundingTime": str(nxt + 8 * 3_600_000),
                    "method": "current_period", "ts": str(now)}
        if ch == "mark-price":
            return {"instId": inst, "instType": "SWAP", "markPx": f"{st['mark']:.2f}",
                    "ts": str(now)}
        return {"instId": inst, "idxPx": f"{st['index']:.2f}", "ts": str(now)}

    async def _push_state(self, ws, key: tuple[str, str], held: dict) -> None:
        row = self.state_row(*key)
        sig = json.dumps({k: v for k, v in row.items() if k != "ts"})
        if held.get(key) == sig:
            return
        held[key] = sig
        self.state_pushes += 1
        await self.send(ws, {"arg": {"channel": key[0], "instId": key[1]}, "data": [row]})

    #: Push cadence per channel (ms): OKX pushes mark-price every 200 ms and
    #: index-tickers every 100 ms when they change; funding-rate every 30-90 s on
    #: the venue, every second here so a short session sees it move.
    cadence_ms: ClassVar[dict[str, float]] = {"funding-rate": 1000.0, "mark-price": 200.0,
                                              "index-tickers": 100.0}

    async def _state_loop(self, ws, held: dict, state: dict) -> None:
        every = {ch: max(1, round(ms / self.hub.model.tick_ms))
                 for ch, ms in self.cadence_ms.items()}
        while True:
            await self.hub.wait_tick()
            if time.monotonic() < state["silent_until"]:
                continue
            tick = self.hub.model.tick
            for key in sorted(held):
                if tick % every[key[0]] == 0:
                    await self._push_state(ws, key, held)

    # ------------------------------------------------------------ REST

    async def http_get(self, path: str) -> tuple[int, str]:
        url = urlsplit(path)
        q = parse_qs(url.query)
        if url.path == "/api/v5/public/instruments" and q.get("instType") == ["SWAP"]:
            rows = []
            for inst, s in self.inst_to_symbol.items():
                spec = self.instruments[s]
                uly = venues.underlying(s)
                base, _, quote = uly.partition("-")
                rows.append({"instId": inst, "instType": "SWAP", "uly": uly, "instFamily": uly,
                             "ctVal": spec.ct_val, "ctType": spec.kind,
                             "ctValCcy": base if spec.kind == "linear" else quote,
                             "settleCcy": spec.settle, "lotSz": "0.01", "state": "live"})
            return 200, json.dumps({"code": "0", "msg": "", "data": rows})
        return await super().http_get(path)
