"""Rig for the OKX and Gemini adapter tests: the real loopback simulator
(WebSocket server on 127.0.0.1, market model ticking) and the real adapter
connected to it through ``VenueFeed.run``. Every wait is bounded."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Self

from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import Backoff
from arbtui.backend.sim.market import MarketModel
from arbtui.backend.sim.server import SimHub
from arbtui.model import BookState, BookStatus, Quote
from arbtui.symbols import sim_symbol_map

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"


def read_recording(name: str) -> list[dict]:
    import zstandard

    with open(RECORDINGS / name, "rb") as fh:
        raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


class Rig:
    def __init__(self, venue: str, symbols: list[str], *, seed: int = 7, tick_ms: float = 25.0,
                 feed_attrs: dict | None = None, sim_attrs: dict | None = None) -> None:
        self.venue = venue
        self.symbols = symbols
        self.model = MarketModel(symbols, [venue], seed=seed, tick_ms=tick_ms, dislocation_rate=0.0)
        self.hub = SimHub(self.model)
        self.sim = importlib.import_module(f"arbtui.backend.sim.{venue}").Sim(self.hub, symbols, seed=seed)
        for k, v in (sim_attrs or {}).items():
            setattr(self.sim, k, v)
        self.feed_attrs = feed_attrs or {}
        self.quotes: list[Quote] = []
        self.states: list[BookStatus] = []
        self.feed = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Self:
        await self.sim.start()
        await self.hub.start()
        self.feed = feed_class(self.venue)(
            list(self.symbols), self.quotes.append, url=self.sim.url, rest_url=self.sim.rest_url,
            symbol_map=sim_symbol_map(self.venue, self.symbols))
        # Short reconnect backoff so a dropped connection recovers within the test budget.
        self.feed.backoff = Backoff(base=0.1, cap=0.5)
        for k, v in self.feed_attrs.items():
            setattr(self.feed, k, v)
        self.feed.on_book_state = self.states.append
        self._task = asyncio.get_running_loop().create_task(self.feed.run())
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.wait_for(self.feed.stop(), 5)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.hub.stop()
        await asyncio.wait_for(self.sim.stop(), 5)

    async def wait(self, pred: Callable[[], bool], what: str, timeout: float = 6.0) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not pred():
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {what}; status={self.feed.status()}")
            await asyncio.sleep(0.01)

    def all_live(self) -> bool:
        return all(sb.state is BookState.LIVE for sb in self.feed.books.values())

    async def live(self) -> None:
        await self.wait(self.all_live, "all books LIVE")

    def c(self, name: str) -> int:
        return self.feed.counters.get(name, 0)

    def states_of(self, symbol: str) -> list[BookState]:
        return [s.state for s in self.states if s.symbol == symbol]

    def last_quote(self, symbol: str) -> Quote | None:
        for q in reversed(self.quotes):
            if q.symbol == symbol:
                return q
        return None

    async def freeze(self) -> None:
        """Stop the market and wait until the feed has received nothing new for 0.3 s."""
        await self.hub.stop()
        loop = asyncio.get_running_loop()
        end = loop.time() + 5.0
        n, quiet_since = self.feed.msg_count, loop.time()
        while loop.time() - quiet_since < 0.3:
            assert loop.time() < end, "feed never went quiet after the market stopped"
            await asyncio.sleep(0.02)
            if self.feed.msg_count != n:
                n, quiet_since = self.feed.msg_count, loop.time()

    def assert_top_matches_sim(self, symbol: str) -> None:
        """The last published Quote's best levels are exactly the simulator's."""
        q = self.last_quote(symbol)
        assert q is not None, f"no quote for {symbol}"
        vb = self.sim.book(symbol)
        assert (q.bid_px, q.bid_qty) == vb.sorted_bids()[0]
        assert (q.ask_px, q.ask_qty) == vb.sorted_asks()[0]
        sb = self.feed.books[symbol]
        assert sb.book.top_bids(10) == vb.sorted_bids()[:10]
        assert sb.book.top_asks(10) == vb.sorted_asks()[:10]
