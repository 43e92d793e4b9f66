from __future__ import annotations

import asyncio

from arbtui.backend.bus import QUOTES, STATUS
from arbtui.backend.bus.base import quote_key
from arbtui.backend.bus.embedded import EmbeddedBus
from arbtui.model import Quote


def q(venue: str, sym: str, bid: float) -> Quote:
    return Quote(venue=venue, symbol=sym, bid=bid, bid_size=1, ask=bid + 1, ask_size=1, bids=[],
                 asks=[], bid_px=str(bid), bid_qty="1", ask_px=str(bid + 1), ask_qty="1")


async def test_quotes_coalesce_newest_per_venue_symbol_and_count_drops():
    bus = EmbeddedBus(queue_size=100)
    sub = bus.subscribe(QUOTES, "det", coalesce=quote_key)
    for i in range(5):
        bus.publish(QUOTES, "BTC-USD", q("binance", "BTC-USD", 100 + i))
    bus.publish(QUOTES, "BTC-USD", q("coinbase", "BTC-USD", 50))
    batch = await sub.get_batch(timeout=1)
    assert {(x.venue, x.bid) for x in batch} == {("binance", 104), ("coinbase", 50)}
    # Replaced by a newer quote of the same key: superseded, not dropped (never mixed).
    assert sub.superseded == 4 and sub.dropped == 0
    assert bus.stats()["subscriptions"]["quotes/det"]["superseded"] == 4
    # A full coalescing inbox sheds its oldest key: that IS a drop.
    small = bus.subscribe(QUOTES, "small", maxsize=2, coalesce=quote_key)
    for v in ("binance", "coinbase", "kraken"):
        bus.publish(QUOTES, "BTC-USD", q(v, "BTC-USD", 100))
    assert small.dropped == 1 and small.superseded == 0


async def test_fifo_bounded_drops_oldest():
    bus = EmbeddedBus(queue_size=3)
    sub = bus.subscribe(STATUS, "x")
    for i in range(5):
        bus.publish(STATUS, "k", i)
    assert await sub.get_batch(timeout=1) == [2, 3, 4]
    assert sub.dropped == 2


async def test_shared_wake_event_and_timeout():
    bus = EmbeddedBus()
    wake = asyncio.Event()
    a = bus.subscribe(QUOTES, "a", wake=wake)
    b = bus.subscribe(STATUS, "b", wake=wake)
    assert await a.get_batch(timeout=0.01) == []
    bus.publish(STATUS, "k", "s")
    await asyncio.wait_for(wake.wait(), 1)
    assert b.drain() == ["s"] and a.drain() == []
