"""Bybit v5 public linear simulator: the spot simulator (``sim/bybit.py``) on
``/v5/public/linear`` with linear's depths (1, 50, 200, 500) and the
``tickers.{symbol}`` topic (docs/protocols.md#bybit-linear).

Tickers: on subscribe one ``snapshot`` with every field, then a ``delta`` per
market tick holding only the fields that changed (``markPrice``,
``indexPrice``, ``fundingRate`` as the market model's perp state moves;
``nextFundingTime`` when the 8 h boundary passes), as Bybit pushes them.
Book faults are the spot simulator's (gap, seq, restart, crossed, snapshot,
drop, silence, malformed).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

from arbtui.backend.sim import bybit
from arbtui.backend.sim.market import next_funding_ms

DEPTHS = (1, 50, 200, 500)


class Sim(bybit.Sim):
    venue: ClassVar[str] = "bybit-linear"
    ws_path: ClassVar[str] = "/v5/public/linear"
    depths: ClassVar[tuple[int, ...]] = DEPTHS

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.tickers_sent = 0

    async def handle(self, ws) -> None:
        self.n_conns += 1
        conn = bybit._Conn(f"sim{self.n_conns:04d}-{self.rng.randrange(16 ** 6):06x}")
        tickers: dict[str, dict[str, str]] = {}  # vsym -> the fields this client holds

        async def on_frame(raw: Any) -> None:
            try:
                msg = json.loads(raw)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and msg.get("op") in ("subscribe", "unsubscribe"):
                args = msg.get("args") or []
                tick = [a for a in args if isinstance(a, str) and a.startswith("tickers.")
                        and a[len("tickers."):] in self.vsyms]
                if tick:
                    rest = [a for a in args if a not in tick]
                    for a in tick:
                        vsym = a[len("tickers."):]
                        if msg["op"] == "unsubscribe":
                            tickers.pop(vsym, None)
                        else:
                            tickers[vsym] = {}
                    if not rest:
                        await self._reply(ws, conn, msg["op"], True, "", msg)
                        return
                    raw = json.dumps({**msg, "args": rest})
            await self._on_client(ws, conn, raw)

        async def streams() -> None:
            task = asyncio.get_running_loop().create_task(self._tickers(ws, tickers))
            try:
                await self._stream(ws, conn)
            finally:
                task.cancel()

        await self.duplex(ws, streams(), on_frame)

    def ticker_fields(self, vsym: str) -> dict[str, str]:
        st = self.hub.model.perp_state(self.vsyms[vsym])
        now_ms = time.time_ns() // 1_000_000
        return {"symbol": vsym, "markPrice": f"{st['mark']:.2f}",
                "indexPrice": f"{st['index']:.2f}", "fundingRate": f"{st['rate']:.6f}",
                "nextFundingTime": str(next_funding_ms(now_ms)), "fundingIntervalHour": "8"}

    #: Bybit pushes linear tickers every 100 ms.
    tickers_ms: ClassVar[float] = 100.0

    async def _tickers(self, ws, tickers: dict[str, dict[str, str]]) -> None:
        every = max(1, round(self.tickers_ms / self.hub.model.tick_ms))
        while True:
            for vsym in sorted(tickers):
                held = tickers[vsym]
                cur = self.ticker_fields(vsym)
                if not held:
                    typ, body = "snapshot", cur
                else:
                    typ = "delta"
                    body = {k: v for k, v in cur.items() if held.get(k) != v}
                    if not body:
                        continue
                    body["symbol"] = vsym
                tickers[vsym] = cur
                self.tickers_sent += 1
                await self.send(ws, {"topic": f"tickers.{vsym}", "type": typ, "data": body,
                                     "cs": self.rng.randrange(10 ** 9), "ts": bybit._ms()})
            while True:
                await self.hub.wait_tick()
                if self.hub.model.tick % every == 0:
                    break
