"""``KafkaBus``: the lifecycle, health and counters of the Kafka transport.

The producing half is ``producer.ProducerSide``, the consuming half
``consumer.ConsumerSide``; both keep their state on the bus instance.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from arbtui.backend.bus.base import (
    CONTROL,
    FILLS,
    FUNDING,
    OPPORTUNITIES,
    QUOTES,
    STATUS,
    WALLETS,
    Bus,
    BusError,
    Subscription,
)
from arbtui.backend.bus.kafka.admin import ensure_topics
from arbtui.backend.bus.kafka.connection import client_kwargs, explain, missing_permission
from arbtui.backend.bus.kafka.consumer import ConsumerSide
from arbtui.backend.bus.kafka.logs import THIN_LOGS, LogBudget, log, quiet_aiokafka, quiet_stop
from arbtui.backend.bus.kafka.partitioning import base_partitioner
from arbtui.backend.bus.kafka.producer import ProducerSide
from arbtui.backend.metrics import Latency


class KafkaBus(ProducerSide, ConsumerSide, Bus):
    kind = "kafka"

    def __init__(self, bcfg: Any) -> None:
        self.bcfg = bcfg
        k = self.k = bcfg.kafka
        self.names = {QUOTES: k.topic_quotes, OPPORTUNITIES: k.topic_opportunities,
                      FILLS: k.topic_fills, STATUS: k.topic_status, WALLETS: k.topic_wallets,
                      FUNDING: k.topic_funding, CONTROL: k.topic_control}
        self.logical = {v: t for t, v in self.names.items()}
        #: Groupless consumers start here (ms since epoch) instead of at the end.
        self.start_ms: int | None = None
        self.state = "stopped"
        self.reason = ""
        self.auth: list[str] = []  # missing permissions seen, for the status line
        self.outages = 0
        self.down_since: float | None = None
        self.up_since: float | None = None  # monotonic: connected (again) at
        self.rebalances = 0
        self.log_resets = 0  # partitions re-read because the cluster lost their log
        self.assigned: list[int] = []  # quote partitions this process owns (group)
        self.consumed: dict[str, int] = {}
        self.bad_records: dict[str, int] = {}
        self.last_error = ""
        self.hop = Latency(maxlen=4096)  # quote pub_ts -> consumed here (feed -> detector hop)
        self._producer: Any = None
        self._group_subs: dict[str, list[Subscription]] = {}
        self._free_subs: dict[str, list[Subscription]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._connected = False
        self._stopping = False
        self._logb = LogBudget()
        #: Set once the groupless consumer holds positions on every topic it reads
        #: (records published after this are seen; tests and the viewer wait on it).
        self.free_ready = asyncio.Event()
        self._init_producer()
        self._init_consumer()

    # ------------------------------------------------------------------ lifecycle

    def start_from(self, ts_ms: int | None) -> None:
        """Viewer: read the topics from this wall-clock time (ms) instead of the end."""
        self.start_ms = ts_ms

    async def start(self) -> None:
        self._stopping = False
        # aiokafka logs every failed connect/fetch/metadata attempt at ERROR, ten a
        # second per client during an outage; the bus reports reachability itself,
        # once per transition, so theirs are filtered (see logs.ThinLogs).
        quiet_aiokafka()
        self._kw = client_kwargs(self.k)  # misconfiguration fails now, in one line
        if self.k.on_unreachable == "retry":
            self.state, self.reason = "connecting", self.k.bootstrap_servers
            self._spawn("connect", self._connect_retry)
            return
        await self._connect()

    async def _connect_retry(self) -> None:
        delay, attempt = 0.5, 0
        while not self._stopping:
            attempt += 1
            try:
                await self._connect()
                return
            except BusError as e:
                self.state, self.reason = "retrying", f"attempt {attempt}: {e}"
                if attempt == 1 or self._logb.take():
                    log.warning("kafka: %s; retrying in %.1fs", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _connect(self) -> None:
        self.state, self.reason = "connecting", self.k.bootstrap_servers
        await ensure_topics(self._kw, self.k, self.names.values(), self.auth)
        k = self.k
        # The idempotent producer (no duplicate from aiokafka's own retries) needs
        # acks="all" and a broker that answers InitProducerId; "auto" falls back to
        # the plain producer where the broker does not (the tansu dev broker), and
        # consumers deduplicate by id either way.
        want = k.idempotence == "on" or (k.idempotence == "auto" and k.acks == "all")
        producer = None
        self.idempotent = False
        if want:
            try:
                producer = await self._start_producer(True)
                self.idempotent = True
            except BusError:
                if k.idempotence == "on":
                    raise
                log.info("kafka: the broker does not support the idempotent producer; "
                         "using the plain one (consumers deduplicate by id)")
        if producer is None:
            producer = await self._start_producer(False)
        self._producer = producer
        self._connected = True
        self.state, self.reason = "up", ""
        self.up_since = time.monotonic()
        self._spawn("sender", self._send_loop)
        self._spawn("health", self._health_loop)
        self._ensure_consumers()
        log.info("kafka: connected to %s (topics %s)", k.bootstrap_servers,
                 ", ".join(self.names.values()))

    async def _start_producer(self, idempotent: bool) -> Any:
        from aiokafka import AIOKafkaProducer

        k = self.k
        try:
            producer = AIOKafkaProducer(
                **self._kw, acks=k.acks, linger_ms=k.linger_ms, max_batch_size=k.max_batch_size,
                compression_type=None if k.compression == "none" else k.compression,
                enable_idempotence=idempotent, request_timeout_ms=10_000,
                partitioner=base_partitioner,
            )
        except RuntimeError as e:  # aiokafka: "Compression library for lz4 not found"
            raise BusError(f"kafka: bus.kafka.compression = {k.compression!r}: {e} "
                           "(pip install 'arbtui[lz4]')") from None
        try:
            await asyncio.wait_for(producer.start(), 30)
        except Exception as e:  # noqa: BLE001 - reported as one line
            await quiet_stop(producer)
            raise BusError(explain(e, self.k, "start producer")) from None
        return producer

    def _spawn(self, name: str, fn: Callable[[], Any]) -> None:
        async def supervised() -> None:
            delay = 0.5
            while not self._stopping:
                try:
                    await fn()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # noqa: BLE001 - a transport task must not die silently
                    self.last_error = f"{name}: {type(e).__name__}: {e}"
                    perm = missing_permission(e, self.k, self.k.topic_quotes)
                    if perm:
                        self.state, self.reason = "unauthorized", f"needs {perm}"
                        if perm not in self.auth:
                            self.auth.append(perm)
                    if self._logb.take():
                        log.warning("kafka: %s failed (%s: %s); restarting in %.1fs",
                                    name, type(e).__name__, e, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)

        self._tasks[name] = asyncio.get_running_loop().create_task(supervised(),
                                                                     name=f"kafka:{name}")

    async def stop(self) -> None:
        # Give queued records a moment to leave (drain), then close everything.
        deadline = time.monotonic() + 2.0
        while self.pending() and self._connected and self.state == "up" \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        left = len(self._relq) + self._rel_unacked
        if left:
            log.warning("kafka: stopping with %d opportunity/fill/state messages not "
                        "acknowledged", left)
        self._stopping = True
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self._producer is not None:
            await quiet_stop(self._producer)
            self._producer = None
        self._connected = False
        self.state = "stopped"
        for subs in (*self._group_subs.values(), *self._free_subs.values()):
            for s in subs:
                s.close()

    # ------------------------------------------------------------------ health

    async def _health_loop(self) -> None:
        """Probe the cluster every second: the status line shows an outage as it
        happens, and topics are re-created when a broker comes back without them."""
        client = self._producer.client
        while True:
            try:
                md = await asyncio.wait_for(client.fetch_all_metadata(), 3)
                ok = True
            except Exception as e:  # noqa: BLE001 - any failure means "down"
                ok = False
                name = type(e).__name__
                err = f"{name}: {str(e).removeprefix(name + ': ')}" if str(e) else name
            if ok:
                # Topics first: consumers verify their positions the moment we say "up".
                if not set(self.names.values()) <= set(md.topics()):
                    try:
                        await ensure_topics(self._kw, self.k, self.names.values(), self.auth)
                    except BusError as e:
                        self.reason = str(e)
                if self.state in ("down", "connecting"):
                    log.warning("kafka: broker reachable again after %.1fs (%d aiokafka "
                                "messages about it suppressed so far)",
                                time.monotonic() - (self.down_since or time.monotonic()),
                                THIN_LOGS.suppressed)
                    self.down_since = None
                    was_down = self.state == "down"
                    self.state, self.reason = "up", ""
                    self.up_since = time.monotonic()
                    if was_down:
                        asyncio.get_running_loop().create_task(self.check_lost_acked())
            elif self.state != "down":
                if self.state == "up":
                    self.outages += 1
                self.down_since = time.monotonic()
                self.state, self.reason = "down", err
                log.warning("kafka: broker unreachable (%s)", err)
            self.check_recovered()
            await asyncio.sleep(1.0)

    def stats(self) -> dict[str, Any]:
        p50, p99 = self.hop.percentiles_ms(50, 99)
        subs = [s for d in (self._group_subs, self._free_subs) for ss in d.values() for s in ss]
        return {
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "bootstrap": self.k.bootstrap_servers,
            "down_for_s": (round(time.monotonic() - self.down_since, 1)
                           if self.down_since is not None else None),
            "outages": self.outages,
            "missing_permissions": list(self.auth),
            "published": dict(self.published),
            "delivered": dict(self.delivered),
            "records": dict(self.records),
            "delivery_errors": dict(self.delivery_errors),
            "superseded": dict(self.superseded),
            "dropped": dict(self.dropped),
            "retried": dict(self.retried),
            "lost": dict(self.lost),
            "replayed": dict(self.replayed),
            "duplicates": dict(self.duplicates),
            "idempotent": self.idempotent,
            "in_flight": self.pending(),
            "reliable_in_flight": len(self._relq) + self._rel_unacked,
            "reliable_buffer": self.k.reliable_buffer,
            "max_in_flight": self.k.max_in_flight,
            "consumed": dict(self.consumed),
            "bad_records": dict(self.bad_records),
            "group": self.k.group_id if self._group_subs else None,
            "assigned_partitions": list(self.assigned),
            "rebalances": self.rebalances,
            "log_resets": self.log_resets,
            "hop_p50_ms": p50,
            "hop_p99_ms": p99,
            "last_error": self.last_error,
            "subscriptions": {f"{s.topic}/{s.name}": {"depth": len(s), "dropped": s.dropped,
                                                      "superseded": s.superseded,
                                                      "delivered": s.delivered} for s in subs},
        }
