"""BASELINE producer (tutorial design, not arbtui).

For every venue message: ``json.loads``, build a tick dict, then
``await producer.send_and_wait(...)`` — one awaited round trip per message,
keyed by the venue's own symbol. Each venue's websocket handler is its own
sequential loop, so there is one message in flight per venue.
"""

from __future__ import annotations

import json
import time

from aiokafka import AIOKafkaProducer

TOPIC = "tick-data"


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        compression_type="snappy",  # ADAPTATION: aiokafka needs the cramjam package for snappy
        max_batch_size=16384,  # ADAPTATION: the tutorial's batch_size= is max_batch_size= today
        linger_ms=2,
        value_serializer=lambda v: json.dumps(v).encode(),
    )


async def handle_message(producer: AIOKafkaProducer, exchange: str, raw: str,
                         topic: str = TOPIC, local_ts: float | None = None) -> None:
    msg = json.loads(raw)
    tick = {
        "exchange": exchange,
        "symbol": msg["s"],
        "price": float(msg["p"]),
        "quantity": float(msg["q"]),
        "timestamp": msg["T"],
        # HOOK: the tutorial stamps time.time() here; the benchmark passes the
        # scheduled receive time instead so a producer that falls behind is
        # charged for the wait (no coordinated omission).
        "local_ts": time.time() if local_ts is None else local_ts,
    }
    await producer.send_and_wait(topic, value=tick, key=msg["s"].encode())
