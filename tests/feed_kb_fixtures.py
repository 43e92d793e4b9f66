"""Rig for the Kraken and Bybit adapter tests (``feed_fixtures.SimFeedRig``):
WebSocket only, no REST, and a check that the feed book equals the frozen
sim book cut to the subscribed depth."""

from __future__ import annotations

from typing import Any

from feed_fixtures import SimFeedRig

from arbtui.backend.feeds import feed_class
from arbtui.model import BookState
from arbtui.symbols import sim_symbol_map


class Rig(SimFeedRig):
    def __init__(self, venue: str, symbols: list[str], *, depth: int, seed: int = 7,
                 tick_ms: float = 25.0) -> None:
        super().__init__(venue, symbols, seed=seed, tick_ms=tick_ms)
        self.depth = depth

    def make_feed(self) -> Any:
        return feed_class(self.venue)(
            list(self.symbols), self.quotes.append, url=self.sim.url, depth=self.depth,
            symbol_map=sim_symbol_map(self.venue, self.symbols))

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
