"""Rig for the Binance and Coinbase adapter tests (``feed_fixtures.SimFeedRig``):
WebSocket plus REST, a depth choice, fast backoff, and checks that a LIVE book
equals what the sim last sent.

Also a reader for ../shared/recordings that replays one recorded connection
through ``feed_frame`` and answers REST calls from the recording's ``http``
lines no earlier than they were answered in reality."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from feed_fixtures import RECORDINGS, SimFeedRig, read_recording

from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import Backoff
from arbtui.model import BookState, Quote
from arbtui.symbols import sim_symbol_map


class Rig(SimFeedRig):
    poll_s = 0.005

    def __init__(self, venue: str, symbols: list[str], *, seed: int = 7, tick_ms: float = 25.0,
                 feed_cls: type | None = None, depth: int = 1000,
                 sim_setup: Callable[[Any], None] | None = None,
                 fast_backoff: bool = True, stale_after_s: float | None = None,
                 url: Callable[[Any], str] | None = None) -> None:
        super().__init__(venue, symbols, seed=seed, tick_ms=tick_ms)
        if sim_setup:
            sim_setup(self.sim)
        self.feed_cls = feed_cls or feed_class(venue)
        self.depth = depth
        self.fast_backoff = fast_backoff
        self.stale_after_s = stale_after_s
        self.url = url

    def make_feed(self) -> Any:
        url = self.url(self.sim) if self.url else self.sim.url
        feed = self.feed_cls(list(self.symbols), self.quotes.append, url=url,
                             rest_url=self.sim.rest_url, depth=self.depth,
                             symbol_map=sim_symbol_map(self.venue, self.symbols))
        if self.fast_backoff:
            # Same Backoff class, small base: reconnect tests finish in well under a second.
            feed.backoff = Backoff(base=0.05, cap=0.5, healthy_s=30.0)
        if self.stale_after_s is not None:
            feed.stale_after_s = self.stale_after_s
        return feed

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
    return read_recording(name)


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
