"""Rig for the OKX and Gemini adapter tests (``feed_fixtures.SimFeedRig``):
WebSocket plus REST, settable feed/sim attributes, and checks that wait for
a quiet feed and compare its top levels with the simulator's."""

from __future__ import annotations

import asyncio
from typing import Any

from feed_fixtures import RECORDINGS, SimFeedRig, read_recording

from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import Backoff
from arbtui.symbols import sim_symbol_map

__all__ = ["RECORDINGS", "Rig", "read_recording"]


class Rig(SimFeedRig):
    def __init__(self, venue: str, symbols: list[str], *, seed: int = 7, tick_ms: float = 25.0,
                 feed_attrs: dict | None = None, sim_attrs: dict | None = None) -> None:
        super().__init__(venue, symbols, seed=seed, tick_ms=tick_ms)
        for k, v in (sim_attrs or {}).items():
            setattr(self.sim, k, v)
        self.feed_attrs = feed_attrs or {}

    def make_feed(self) -> Any:
        feed = feed_class(self.venue)(
            list(self.symbols), self.quotes.append, url=self.sim.url, rest_url=self.sim.rest_url,
            symbol_map=sim_symbol_map(self.venue, self.symbols))
        # Short reconnect backoff so a dropped connection recovers within the test budget.
        feed.backoff = Backoff(base=0.1, cap=0.5)
        for k, v in self.feed_attrs.items():
            setattr(feed, k, v)
        return feed

    def c(self, name: str) -> int:
        return self.counter(name)

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
