"""BASELINE consumer / detector (tutorial design, not arbtui).

``async for`` over the consumer, ``json.loads`` each value, store the tick in
``price_cache[symbol][exchange]``, then for EVERY symbol in the cache sort its
venues by price and compute the spread in bps (a full scan per message),
reporting spreads of at least 5 bps.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer

TOPIC = "tick-data"
MIN_SPREAD_BPS = 5.0


def make_consumer(bootstrap: str, topic: str = TOPIC, group_id: str = "arb-detector"
                  ) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="latest",
        enable_auto_commit=True,
        auto_commit_interval_ms=100,
        max_poll_records=500,
        fetch_min_bytes=1,
        fetch_max_wait_ms=10,
    )


class SpreadDetector:
    def __init__(self, on_done: Callable[[dict, int], None] | None = None) -> None:
        self.price_cache: dict[str, dict[str, dict]] = defaultdict(dict)
        self.opportunities = 0
        # HOOK: the tutorial printed each opportunity; the benchmark counts them
        # (cheaper than printing, so this favours the baseline) and is told when
        # each message's scan is done, to time receive -> detection.
        self.on_done = on_done

    def on_message(self, value: bytes) -> None:
        tick = json.loads(value)
        self.price_cache[tick["symbol"]][tick["exchange"]] = tick
        found = 0
        for by_exchange in self.price_cache.values():
            if len(by_exchange) < 2:
                continue
            prices = sorted(by_exchange.values(), key=lambda t: t["price"])
            low, high = prices[0], prices[-1]
            spread_bps = (high["price"] - low["price"]) / low["price"] * 10_000
            if spread_bps >= MIN_SPREAD_BPS:
                found += 1
                self.opportunities += 1
        if self.on_done is not None:
            self.on_done(tick, found)


async def run(consumer: AIOKafkaConsumer, detector: SpreadDetector) -> None:
    async for message in consumer:
        detector.on_message(message.value)
