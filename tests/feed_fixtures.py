"""What every adapter test rig shares: one venue's real loopback simulator
(servers on 127.0.0.1, driven by the market model) and the real adapter
connected to it through ``VenueFeed.run``. Every wait is bounded.

The per-venue rigs (``feed_bc_fixtures``, ``feed_kb_fixtures``,
``feed_og_fixtures``) subclass ``SimFeedRig`` and decide only how their feed
is built (``make_feed``) and which venue-specific checks they offer."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from arbtui.backend.sim.market import MarketModel
from arbtui.backend.sim.server import SimHub
from arbtui.model import BookState, BookStatus, Quote

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"


def read_recording(name: str) -> list[dict]:
    """The JSON lines of one zstd recording (format 2) in ../shared/recordings."""
    import zstandard

    with open(RECORDINGS / name, "rb") as fh:
        raw = zstandard.ZstdDecompressor().stream_reader(fh).read()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _sim_class(venue: str) -> type:
    """The venue's simulator: its registry entry's, else ``sim/<venue>.py`` (the
    templates, which have no entry)."""
    from arbtui import venues

    try:
        return venues.get(venue).simulator_class()
    except KeyError:
        return importlib.import_module(f"arbtui.backend.sim.{venue}").Sim


class SimFeedRig:
    #: How often ``wait`` re-checks its predicate.
    poll_s: float = 0.01

    def __init__(self, venue: str, symbols: list[str], *, seed: int = 7,
                 tick_ms: float = 25.0) -> None:
        self.venue = venue
        self.symbols = symbols
        # No dislocations: these tests compare books, not opportunities.
        self.model = MarketModel(symbols, [venue], seed=seed, tick_ms=tick_ms, dislocation_rate=0.0)
        self.hub = SimHub(self.model)
        self.sim = _sim_class(venue)(self.hub, symbols, seed=seed)
        self.quotes: list[Quote] = []
        self.states: list[BookStatus] = []
        self.feed: Any = None
        self._task: asyncio.Task | None = None

    def make_feed(self) -> Any:
        """The adapter under test, built once the simulator is listening."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.sim.start()
        await self.hub.start()
        self.feed = self.make_feed()
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
            await asyncio.sleep(self.poll_s)

    def all_live(self) -> bool:
        return all(sb.state is BookState.LIVE for sb in self.feed.books.values())

    async def live(self, timeout: float = 6.0) -> None:
        await self.wait(self.all_live, "all books LIVE", timeout)

    def counter(self, name: str) -> int:
        return self.feed.counters.get(name, 0)

    def states_of(self, symbol: str) -> list[BookState]:
        return [s.state for s in self.states if s.symbol == symbol]

    def last_quote(self, symbol: str) -> Quote | None:
        for q in reversed(self.quotes):
            if q.symbol == symbol:
                return q
        return None
