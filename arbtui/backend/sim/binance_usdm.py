"""Simulated Binance USD-M perpetual futures: the spot simulator (``sim/binance.py``)
with USD-M's wire where it differs (docs/protocols.md#binance-usdm).

- ``depthUpdate`` events carry ``pu`` (the previous event's ``u``) and ``T``
  (transaction time); ``U`` jumps by a few ids between events, as USD-M ids are
  not contiguous per symbol, so only ``pu`` can tell a lost event.
- REST ``/fapi/v1/depth`` (with ``E``/``T``) and ``/fapi/v1/exchangeInfo``
  (PERPETUAL contracts, plus a quarterly future the parser must skip).
- ``<sym>@markPrice@1s`` (or ``@markPrice``, 3 s on the venue; we send both at
  1 s): ``markPriceUpdate`` with ``p`` mark, ``i`` index, ``P`` estimated
  settle price, ``r`` funding rate, ``T`` next funding time, from the market
  model's perp state (``MarketModel.perp_state``).

Faults are the spot simulator's: ``gap`` (one event lost: the next ``pu`` does
not chain), ``crossed``, ``drop``, ``malformed``, ``silence``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from arbtui.backend.sim import binance
from arbtui.backend.sim.market import VenueBook, next_funding_ms
from arbtui.symbols import split


class Sim(binance.Sim):
    venue = "binance-usdm"
    depth_path = "/fapi/v1/depth"

    def __init__(self, hub, symbols: list[str], **kw: Any) -> None:
        super().__init__(hub, symbols, **kw)
        #: markPriceUpdate every this many market ticks (1 s).
        self.mark_every = max(1, round(1000.0 / hub.model.tick_ms))
        self.mark_sent = 0

    def next_first(self, symbol: str) -> int:
        return self.ids[symbol] + 1 + self.rng.randrange(4)

    def depth_event(self, vs: str, now_ms: int, first: int, last: int, prev: int,
                    bids: list, asks: list) -> dict:
        return {"e": "depthUpdate", "E": now_ms, "T": now_ms - 2, "s": vs, "U": first,
                "u": last, "pu": prev, "b": bids, "a": asks}

    def stream_key(self, stream: str) -> tuple[str, str] | None:
        sym, _, kind = stream.partition("@")
        if kind in ("markPrice", "markPrice@1s"):
            return sym.lower(), "markPrice"
        if kind == "bookTicker":
            return None  # USD-M's bookTicker is not simulated
        return binance._stream_key(stream)

    def _tick(self) -> None:
        super()._tick()
        if self.hub.model.tick % self.mark_every:
            return
        now_ms = int(time.time() * 1000)
        for s in self.symbols:
            st = self.hub.model.perp_state(s)
            self.mark_sent += 1
            self._broadcast(s, "markPrice", {
                "e": "markPriceUpdate", "E": now_ms, "s": self.vsym[s],
                "p": f"{st['mark']:.2f}", "i": f"{st['index']:.8f}",
                "P": f"{st['index']:.8f}", "r": f"{st['rate']:.8f}",
                "T": next_funding_ms(now_ms)})

    @staticmethod
    def snapshot_body(last_id: int, book: VenueBook, limit: int) -> dict:
        now = int(time.time() * 1000)
        body = binance.Sim.snapshot_body(last_id, book, limit)
        return {"lastUpdateId": last_id, "E": now, "T": now - 2, **body}

    async def http_get(self, path: str) -> tuple[int, str]:
        url = urllib.parse.urlsplit(path)
        if url.path == self.depth_path:
            q = urllib.parse.parse_qs(url.query)
            if q.get("limit", ["500"])[0] not in ("5", "10", "20", "50", "100", "500", "1000"):
                return 400, '{"code":-1130,"msg":"Invalid limit."}'
            return await super().http_get(path)
        if url.path == "/fapi/v1/exchangeInfo":
            syms = []
            for s, vs in self.vsym.items():
                b, qt = split(s)
                syms.append({"symbol": vs, "pair": vs, "contractType": "PERPETUAL",
                             "status": "TRADING", "baseAsset": b, "quoteAsset": qt,
                             "marginAsset": qt})
            # A quarterly future: not a perpetual, the parser must skip it.
            syms.append({"symbol": "BTCUSDT_261225", "pair": "BTCUSDT",
                         "contractType": "CURRENT_QUARTER", "status": "TRADING",
                         "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT"})
            return 200, json.dumps({"timezone": "UTC", "serverTime": int(time.time() * 1000),
                                    "symbols": syms})
        return 404, '{"code":-1,"msg":"not found"}'
