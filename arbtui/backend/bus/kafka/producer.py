"""Producing: a bounded outbox and one sender task.

``publish`` never blocks the caller: it appends to a bounded outbox and
returns; one sender task takes what queued up since its last pass, groups it
by (topic, partition) and hands aiokafka one record per group (no timer: one
message per record when idle, bigger records under load). When queued +
unacknowledged messages reach ``max_in_flight`` the OLDEST queued message is
dropped and counted (newer quotes supersede older ones; a broker outage must
not grow memory without bound).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any

from arbtui.backend.bus.kafka.connection import missing_permission
from arbtui.backend.bus.kafka.logs import log
from arbtui.backend.bus.kafka.partitioning import base_partitioner
from arbtui.backend.bus.kafka.wire import PREFIX, WIRE, encode_batch

#: Messages the sender takes from the outbox per pass (one pass = one record per
#: partition or a few; the rest stays queued, where max_in_flight drops the oldest).
_PASS_MAX = 4096


class ProducerSide:
    """The producing half of ``KafkaBus`` (state lives on the bus: see its __init__)."""


    def publish(self, topic: str, key: str, msg: Any) -> None:
        q = self._outq
        if len(q) + self._unacked >= self.k.max_in_flight:
            # Backpressure policy: drop the OLDEST queued message (a newer quote
            # supersedes it); with nothing queued (all in flight) drop this one.
            if not q:
                self.dropped[topic] = self.dropped.get(topic, 0) + 1
                self._log_drop(topic)
                return
            victim = q.popleft()[0]
            self.dropped[victim] = self.dropped.get(victim, 0) + 1
            self._log_drop(victim)
        if type(msg) not in PREFIX and not isinstance(msg, WIRE):
            raise TypeError(f"cannot put {type(msg).__name__} on the Kafka bus")
        q.append((topic, key, msg))
        self.published[topic] = self.published.get(topic, 0) + 1
        self._out_event.set()

    def _log_drop(self, topic: str) -> None:
        if self._logb.take():
            log.warning("kafka: %d messages in flight (max_in_flight); dropping oldest %s",
                        len(self._outq) + self._unacked, topic)

    async def _send_loop(self) -> None:
        """Everything queued since the last pass leaves as one record per (topic,
        partition): the batch grows with the load by itself (one message per record
        when idle, so latency is unchanged) and no timer adds delay."""
        producer = self._producer
        parts: dict[str, tuple[frozenset, dict[str, int]]] = {}
        est: dict[str, float] = {}  # encoded bytes per message, per topic (chunk sizing)
        # Records of a quarter batch: a partition takes several per request before
        # a send has to wait for the broker (see the round robin below).
        cap = max(4096, min(self.k.max_batch_size, 1 << 20) // 4)
        qfmt = self.k.quote_format
        while True:
            q = self._outq
            if not q:
                self._out_event.clear()
                await self._out_event.wait()
                continue
            # Take (up to a pass's worth of) the outbox; what was taken counts as in
            # flight from here on. What stays queued is what max_in_flight may drop.
            if len(q) <= _PASS_MAX:
                self._outq = deque()
            else:
                q = [q.popleft() for _ in range(_PASS_MAX)]
            self._unacked += len(q)
            try:
                groups = await self._group(q, parts)
            except Exception as e:  # noqa: BLE001 - no metadata: counted, never fatal
                self._unacked -= len(q)
                for topic, _, _ in q:
                    self._delivery_failed(topic, e)
                continue
            chunks = []
            for (topic, p), (key, msgs) in groups.items():
                per = max(1, int(cap / est.get(topic, 1024.0)))
                chunks.append([(topic, p, key, msgs[i:i + per]) for i in range(0, len(msgs), per)])
            # Round robin over the partitions: aiokafka holds one open batch per
            # partition and a send into a full one waits for the broker's answer to
            # the request in flight; partition by partition, every request would
            # carry one batch, and the pipe would run at one batch per round trip.
            for row in itertools.zip_longest(*chunks):
                for c in row:
                    if c is None:
                        continue
                    topic, p, key, chunk = c
                    n = len(chunk)
                    try:
                        value = encode_batch(topic, chunk, qfmt)
                        est[topic] = max(64.0, len(value) / n)
                        fut = await producer.send(self.names.get(topic, topic), value,
                                                  key=key, partition=p)
                    except Exception as e:  # noqa: BLE001 - counted, surfaced, never fatal
                        self._unacked -= n
                        self._delivery_failed(topic, e, n)
                        continue
                    self.records[topic] = self.records.get(topic, 0) + 1
                    fut.add_done_callback(lambda f, t=topic, n=n: self._on_ack(t, n, f))
            # The partition count can change (a topic re-created by another role):
            # re-read it whenever the client refreshed its metadata.
            for topic, (known, _) in list(parts.items()):
                now = producer.client.cluster.partitions_for_topic(self.names.get(topic, topic))
                if now is not None and frozenset(now) != known:
                    del parts[topic]

    async def _group(self, q: deque, parts: dict) -> dict[tuple[str, int], tuple[bytes, list]]:
        """(topic, partition) -> (record key, messages in publish order). The partition
        is the one ``base_partitioner`` gives the message's key; the record key is the
        base asset of its first message, so Kafka's default partitioner (murmur2 of
        the key) would place every record where it is."""
        groups: dict[tuple[str, int], tuple[bytes, list]] = {}
        for topic, key, msg in q:
            pm = parts.get(topic)
            if pm is None:
                name = self.names.get(topic, topic)
                pm = parts[topic] = (frozenset(await self._producer.partitions_for(name)), {})
            p = pm[1].get(key)
            if p is None:
                p = pm[1][key] = base_partitioner(key.encode(), sorted(pm[0]), [])
            g = groups.get((topic, p))
            if g is None:
                groups[(topic, p)] = (key.split("-", 1)[0].encode(), [msg])
            else:
                g[1].append(msg)
        return groups

    def _on_ack(self, topic: str, n: int, fut: asyncio.Future) -> None:
        self._unacked -= n
        if fut.cancelled():
            self._delivery_failed(topic, asyncio.CancelledError(), n)
        elif fut.exception() is not None:
            self._delivery_failed(topic, fut.exception(), n)
        else:
            self.delivered[topic] = self.delivered.get(topic, 0) + n

    def _delivery_failed(self, topic: str, e: BaseException, n: int = 1) -> None:
        self.delivery_errors[topic] = self.delivery_errors.get(topic, 0) + n
        self.last_error = f"deliver {topic}: {type(e).__name__}: {e}"
        perm = missing_permission(e, self.k, self.names.get(topic, topic))
        if perm:
            perm = perm.replace("(READ/WRITE/DESCRIBE)", "(WRITE)")
            self.state, self.reason = "unauthorized", f"needs {perm}"
            if perm not in self.auth:
                self.auth.append(perm)
        if self._logb.take():
            log.warning("kafka: delivery to %s failed: %s: %s", self.names.get(topic, topic),
                        type(e).__name__, e)
