"""Rig for the Binance and Coinbase adapter tests: the venue's loopback simulator
(real WebSocket + HTTP servers on 127.0.0.1, driven by the market model) and
the real adapter connected through ``VenueFeed.run``. Every wait is bounded.

Also a reader for ../shared/recordings that replays one recorded connection
through ``feed_frame`` and answers REST calls from the recording's ``http``
lines no earlier than they were answered in reality."""

from __future__ import annotations

import asyncio
import importlib
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import pytest

from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import Backoff
from arbtui.backend.sim.market import MarketModel
from arbtui.backend.sim.server import SimHub
from arbtui.model import BookState, BookStatus, Quote
from arbtui.symbols import sim_symbol_map

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"


class Rig:
    def __init__(self, venue: str, symbols: list[str], *, seed: int = 7, tick_ms: float = 25.0,
                 feed_cls: type | None = None, depth: int = 1000,
                 sim_setup: Callable[[Any], None] | None = None,
                 fast_backoff: bool = True, stale_after_s: float | None = None,
                 url: Callable[[Any], str] | None = None) -> None:
        self.venue = venue
        self.symbols = symbols
        self.model = MarketModel(symbols, [venue], seed=seed, tick_ms=tick_ms, dislocation_rate=0.0)
        self.hub = SimHub(self.model)
        self.sim = importlib.import_module(f"arbtui.backend.sim.{venue}").Sim(self.hub, symbols, seed=seed)
        if sim_setup:
            sim_setup(self.sim)
        self.feed_cls = feed_cls or feed_class(venue)
        self.depth = depth
        self.fast_backoff = fast_backoff
        self.stale_after_s = stale_after_s
        self.url = url
        self.quotes: list[Quote] = []
        self.states: list[BookStatus] = []
        self.feed: Any = None
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Self:
        await self.sim.start()
        await self.hub.start()
        url = self.url(self.sim) if self.url else self.sim.url
        self.feed = self.feed_cls(list(self.symbols), self.quotes.append, url=url,
                                  rest_url=self.sim.rest_url, depth=self.depth,
                                  symbol_map=sim_symbol_map(self.venue, self.symbols))
        if self.fast_backoff:
            # Same Backoff class, small base: reconnect tests finish in well under a second.
            self.feed.backoff = Backoff(base=0.05, cap=0.5, healthy_s=30.0)
        if self.stale_after_s is not None:
            self.feed.stale_after_s = self.stale_after_s
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
            await asyncio.sleep(0.005)

    def all_live(self) -> bool:
        return all(sb.state is BookState.LIVE for sb in self.feed.books.values())

    async def live(self, timeout: float = 6.0) -> None:
        await self.wait(self.all_live, "all books LIVE", timeout)

    def counter(self, name: str) -> int:
        return self.feed.status().counters.get(name, 0)

    def states_of(self, symbol: str) -> list[BookState]:
        return [s.state for s in self.states if s.symbol == symbol]

    def last_quote(self, symbol: str) -> Quote | None:
        for q in reversed(self.quotes):
            if q.symbol == symbol:
                return q
        return None

    def sim_levels(self, symbol: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        vb = self.sim.cur[symbol]
        return vb.sorted_bids(), vb.sorted_asks()

    def feed_levels(self, symbol: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        b = self.feed.books[symbol].book
        return b.top_bids(len(b.bids)), b.top_asks(len(b.asks))

    async def wait_equal(self, symbols: list[str] | None = None, timeout: float = 6.0,
                         full: bool = True) -> None:
        """Wait for an instant at which each LIVE feed book equals what the sim last
        sent, and the last published quote's top equals the sim's top.

        Checked synchronously, so the sim cannot tick between the two reads.
        ``full``: every level, not just the top (proves no stale level survived)."""

        def equal() -> bool:
            for s in symbols or self.symbols:
                sb = self.feed.books[s]
                if sb.state is not BookState.LIVE:
                    return False
                bids, asks = self.sim_levels(s)
                fb, fa = self.feed_levels(s)
                if full and (fb, fa) != (bids, asks):
                    return False
                if not fb or not fa or fb[0] != bids[0] or fa[0] != asks[0]:
                    return False
                q = self.last_quote(s)
                if q is None or (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) != (*bids[0], *asks[0]):
                    return False
            return True

        await self.wait(equal, "feed books equal to the sim's books", timeout)


# ---------------------------------------------------------------------- recordings


def load_recording(name: str) -> list[dict]:
    path = RECORDINGS / name
    if not path.exists():
        pytest.skip(f"recording {path} is absent (../shared/recordings is not shipped with the repo)")
    import zstandard

    with open(path, "rb") as f:
        raw = zstandard.ZstdDecompressor().stream_reader(f).read()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _url_key(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return u.path + "?" + "&".join(sorted(u.query.split("&")))


async def replay_connection(cls, lines: list[dict], conn: str, symbol_map: dict[str, str],
                            on_frame: Callable[[Any, dict], None] | None = None):
    """Rebuild the feed one recorded connection served and feed it every frame.

    REST answers come from the ``http`` lines and are released only when the
    replay clock reaches their recorded time, as they were in reality."""
    ls = [ln for ln in lines if ln.get("conn") == conn]
    url = next(ln["addr"] for ln in ls if ln["t"] == "connect")
    sent = [ln["data"] for ln in ls if ln["t"] == "send"]
    symbols = cls.symbols_from_subscribe(url, sent, {v: k for k, v in symbol_map.items()})
    quotes: list[Quote] = []
    feed = cls(symbols, quotes.append, symbol_map=symbol_map)
    http = {_url_key(ln["url"]): ln for ln in lines if ln["t"] == "http"}
    clock = [0.0]

    async def http_get(u: str) -> str:
        ent = http.get(_url_key(u))
        if ent is None:
            raise OSError(f"not in the recording: {u}")
        while clock[0] < ent["ts"]:
            await asyncio.sleep(0)
        return ent["data"]

    feed.http_get_impl = http_get
    for ln in ls:
        if ln["t"] != "recv":
            continue
        clock[0] = ln["ts"]
        feed.feed_frame(ln["data"], int(ln["ts"] * 1e9))
        if on_frame:
            on_frame(feed, ln)
        for _ in range(3):  # let snapshot tasks whose answer is now due run
            await asyncio.sleep(0)
    for t in list(feed._tasks):  # REST calls the recording never answered
        t.cancel()
    await asyncio.gather(*feed._tasks, return_exceptions=True)
    return feed, quotes
