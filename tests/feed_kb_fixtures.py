"""Shared rig for the Kraken and Bybit adapter tests: a real loopback venue
simulator (WebSocket server on 127.0.0.1) driven by the market model, and the
real adapter connected to it through ``VenueFeed.run``. Every wait is bounded."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Self

from arbtui.backend.feeds import feed_class
from arbtui.backend.sim.market import MarketModel
from arbtui.backend.sim.server import SimHub
from arbtui.model import BookState, BookStatus, Quote
from arbtui.symbols import sim_symbol_map


class Rig:
    def __init__(self, venue: str, symbols: list[str], *, depth: int, seed: int = 7,
                 tick_ms: float = 25.0) -> None:
        self.venue = venue
        self.symbols = symbols
        self.model = MarketModel(symbols, [venue], seed=seed, tick_ms=tick_ms,
                                 dislocation_rate=0.0)
        self.hub = SimHub(self.model)
        sim_cls = importlib.import_module(f"arbtui.backend.sim.{venue}").Sim
        self.sim = sim_cls(self.hub, symbols, seed=seed)
        self.depth = depth
        self.quotes: list[Quote] = []
        self.states: list[BookStatus] = []
        self.feed = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Self:
        await self.sim.start()
        await self.hub.start()
        self.feed = feed_class(self.venue)(
            list(self.symbols), self.quotes.append, url=self.sim.url, depth=self.depth,
            symbol_map=sim_symbol_map(self.venue, self.symbols))
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

    def states_of(self, symbol: str) -> list[BookState]:
        return [s.state for s in self.states if s.symbol == symbol]

    def last_quote(self, symbol: str) -> Quote | None:
        for q in reversed(self.quotes):
            if q.symbol == symbol:
                return q
        return None

    def sim_top(self, symbol: str, n: int = 10):
        vb = self.sim.book(symbol)
        return vb.sorted_bids()[:n], vb.sorted_asks()[:n]

    async def freeze_and_converge(self) -> None:
        """Stop the market, then wait until every feed book equals the sim's book
        cut to the subscribed depth: every level, and nothing beyond it."""
        await self.hub.stop()
        depth = self.feed.sub_depth

        def converged() -> bool:
            for s in self.symbols:
                sb = self.feed.books[s]
                bids, asks = self.sim_top(s, depth)
                if sb.state is not BookState.LIVE:
                    return False
                if (len(sb.book.bids), len(sb.book.asks)) != (len(bids), len(asks)):
                    return False
                if sb.book.top_bids(depth) != bids or sb.book.top_asks(depth) != asks:
                    return False
            return True

        await self.wait(converged, "feed books equal to the frozen sim books")
