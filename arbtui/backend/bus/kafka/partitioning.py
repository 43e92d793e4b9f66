"""Which partition a message goes to.

Every message of a record belongs to the same partition: the one of its
symbol's BASE asset (Kafka's murmur2 of ``BTC`` for ``BTC-USD``), because the
detector also pairs BTC-USD against BTC-USDT through a conversion, so every
quote currency of one base must meet in one detector. The record key is the
base asset of its first message (murmur2 of it gives the record's partition).
"""

from __future__ import annotations

_BASE_HASH: dict[bytes, int] = {}


def base_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """Partition by the key's base asset (``BTC`` of ``BTC-USD``) with Kafka's murmur2,
    so any Kafka client can reproduce the placement."""
    from aiokafka.partitioner import DefaultPartitioner, murmur2

    if not key:
        return DefaultPartitioner()(key, all_partitions, available)
    base = key.split(b"-", 1)[0]
    h = _BASE_HASH.get(base)
    if h is None:
        h = _BASE_HASH[base] = murmur2(base) & 0x7FFFFFFF
    return all_partitions[h % len(all_partitions)]
