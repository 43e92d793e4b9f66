"""Replay on the Kafka bus: private topics per run and a per-step delivery barrier.

A replay on Kafka runs the same roles as one on the embedded bus, and every
message between them makes the real round trip (encode, produce, broker,
fetch, decode). Two things make that a replay and not a live session:

- **Private topics.** Each run writes to its own topics, named after the
  configured ones with ``.replay-<run id>`` appended (``arbtui.quotes`` ->
  ``arbtui.quotes.replay-20261206T061500Z-4242-1a2b3c``), and its detector joins
  its own consumer group. A replay therefore never reads a live deployment's
  records and never writes replayed quotes into the topics live roles consume;
  the configured prefix is kept so prefix ACLs (``arbtui.``) still apply. The
  topics are deleted when the replay stops (``delete_topics``); if the cluster
  refuses (no DELETE permission, a broker without DeleteTopics), the names are
  logged for an operator to remove.
- **A delivery barrier per step.** The embedded bus hands a message to every
  subscriber inside ``publish``; Kafka hands it over a round trip later. So the
  replay driver, after each step, calls ``barrier()`` until it returns False: it
  waits until everything published so far is acknowledged by the broker and
  fetched back by every consumer of its topic (the consumers' fetched offsets
  reach the acknowledged end offsets), then releases what was fetched into the
  subscriptions all at once, in publish order, and the driver lets the roles
  run. Whatever they publish in turn (opportunities, orders' fills, wallet
  states) is the next round; replay time moves on only when a round publishes
  nothing. Fetched records are held back until the round is complete because a
  role woken by the first partition to arrive would otherwise act on half of
  what the step produced, and its output would depend on network timing.

Each private topic has ONE partition: a replay is one process, so the
partitions' parallelism buys nothing, and one partition per topic makes the
broker's order the publish order, which the roles' inboxes need to see the
same messages in the same order as on the embedded bus.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from typing import Any

import msgspec

from arbtui.backend.bus.base import QUOTES, TOPICS, BusError, Subscription
from arbtui.backend.bus.kafka import KafkaBus
from arbtui.backend.bus.kafka.logs import log, quiet_stop

#: fetch_max_wait_ms for a replay's consumers. Each barrier round waits for a fetch
#: that is already parked at the broker when the records are produced; a broker that
#: answers it only when the wait runs out (tansu) would add the whole wait to every
#: round, so a replay asks for at most this much (live default: 5 ms).
REPLAY_FETCH_WAIT_MS = 1
#: A barrier round that has not completed after this long (wall seconds) fails the
#: replay with what it was waiting for (a broker gone away mid-replay).
BARRIER_TIMEOUT_S = 30.0
#: How long start-up waits for the private topics' consumers to hold positions.
READY_TIMEOUT_S = 30.0


def run_id() -> str:
    """A run id unique on this host and across hosts: UTC time, pid, random."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-{secrets.token_hex(3)}"


def private_bus_config(bcfg: Any, rid: str) -> Any:
    """``[bus]`` for one replay: the configured cluster and security, private topic and
    group names, one partition per topic, a short fetch wait, no linger."""
    k = bcfg.kafka
    suffix = f".replay-{rid}"
    # Every topic_* key, including ones added after this was written: a topic left
    # with its configured name would be a live deployment's.
    topics = {f: getattr(k, f) + suffix for f in k.__struct_fields__ if f.startswith("topic_")}
    pk = msgspec.structs.replace(
        k,
        **topics,
        group_id=k.group_id + suffix,
        partitions=1,
        fetch_max_wait_ms=min(k.fetch_max_wait_ms, REPLAY_FETCH_WAIT_MS),
        linger_ms=0,
        # acks=0 gives no offsets back, and the barrier needs them.
        acks=k.acks if k.acks != 0 else 1,
        # A replay against a cluster that is not there fails at once.
        on_unreachable="exit",
    )
    return msgspec.structs.replace(bcfg, kind="kafka", kafka=pk)


class _NoHop:
    """The feed -> detector hop is wall time minus a quote's publish stamp, which in a
    replay is recorded time: not a latency. A replay measures none."""

    def add(self, _v: float) -> None:
        pass

    def percentiles_ms(self, *ps: float) -> list[float | None]:
        return [None for _ in ps]


class ReplayKafkaBus(KafkaBus):
    """``KafkaBus`` on private topics whose deliveries the replay driver releases."""

    #: Every barrier round waits for every consumer's fetch: none may wait longer.
    quiet_fetch_wait_ms = 0

    def __init__(self, bcfg: Any, rid: str | None = None) -> None:
        self.run_id = rid or run_id()
        super().__init__(private_bus_config(bcfg, self.run_id))
        # The groupless consumers read the private topics from their first record, so
        # one that gets its position after a role's first message (a wallet state
        # published at start) still fetches it.
        self.start_from(0)
        self.hop = _NoHop()  # type: ignore[assignment]
        #: (topic name, partition) -> offset after the last acknowledged record
        self._acked_end: dict[tuple[str, int], int] = {}
        #: ("group"|"free", topic name, partition) -> offset after the last fetched record
        self._fetched: dict[tuple[str, str, int], int] = {}
        #: fetched records not yet released: (consumer kind, subs, keys, {tp: records})
        self._staged: list[tuple[str, dict, Any, dict]] = []
        self._progress = asyncio.Event()
        self._published_at_release = 0
        self.rounds = 0  # barrier rounds that released something
        self.barrier_wait_s = 0.0  # wall time spent waiting for the broker round trip
        self.topics_deleted: bool | None = None

    # ------------------------------------------------------------------ hooks

    def _ensure_consumers(self) -> None:
        # The detector's quotes are read without the consumer group: a replay has one
        # detector, so the group would only share one partition with itself, and
        # joining it costs seconds of rebalance delay per run (~5 s on tansu). The
        # records and the inbox (QuoteInbox) are the same.
        for topic, subs in self._group_subs.items():
            self._free_subs.setdefault(topic, []).extend(subs)
        self._group_subs.clear()
        super()._ensure_consumers()

    def _on_ack(self, topic: str, reliable: bool, chunk: list, fut: asyncio.Future,
                *args: Any, **kw: Any) -> None:
        super()._on_ack(topic, reliable, chunk, fut, *args, **kw)
        if not fut.cancelled() and fut.exception() is None:
            md = fut.result()
            k = (md.topic, md.partition)
            if md.offset + 1 > self._acked_end.get(k, 0):
                self._acked_end[k] = md.offset + 1
        self._progress.set()

    def _dispatch(self, batches: dict[Any, list[Any]], subs_by_topic: dict[str, list],
                  keys: dict[Any, set[str]] | None = None) -> None:
        kind = "group" if subs_by_topic is self._group_subs else "free"
        for tp, recs in batches.items():
            if recs:
                self._fetched[(kind, tp.topic, tp.partition)] = recs[-1].offset + 1
        self._staged.append((kind, subs_by_topic, keys, batches))
        self._progress.set()

    def subscribe_rates(self, bases: set[str], *, wake: asyncio.Event | None = None) -> Subscription:
        # The rates inbox exists because the group shares the quote partitions out;
        # here the detector's own inbox reads every quote, rates included, in publish
        # order. A second copy placed first in its batch would reorder that batch
        # against the embedded bus's, so the inbox is returned unfed.
        return Subscription(QUOTES, "rates", 1)

    # ------------------------------------------------------------------ the driver's side

    async def ready(self) -> None:
        """Wait until the consumers hold their positions on the (new, empty) private
        topics: a record produced earlier would be skipped by a consumer that then
        starts at the end."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            free_ok = not self._free_subs or self.free_ready.is_set()
            group_ok = not self._group_subs or bool(self.assigned)
            if free_ok and group_ok:
                return
            await asyncio.sleep(0.01)
        raise BusError(f"kafka replay: consumers not ready on {self.k.bootstrap_servers} "
                       f"after {READY_TIMEOUT_S:.0f}s ({self.state}: {self.reason or self.last_error})")

    def _readers(self, name: str) -> list[str]:
        lt = self.logical.get(name, name)
        out = []
        if lt in self._group_subs:
            out.append("group")
        if lt in self._free_subs:
            out.append("free")
        return out

    def _complete(self) -> bool:
        """Everything published is acknowledged and fetched by every consumer of its topic."""
        if self.pending():
            return False
        fetched = self._fetched
        for (name, p), end in self._acked_end.items():
            for kind in self._readers(name):
                if fetched.get((kind, name, p), 0) < end:
                    return False
        return True

    async def barrier(self) -> bool:
        """One delivery round: wait until every message published so far has made the
        round trip, then hand the fetched records to the subscriptions. False when
        there was nothing to deliver (the step is over)."""
        published = sum(self.published.values())
        if published == self._published_at_release and not self._staged:
            return False
        t0 = time.monotonic()
        deadline = t0 + BARRIER_TIMEOUT_S
        while not self._complete():
            self._progress.clear()
            left = deadline - time.monotonic()
            if left <= 0 or self.state not in ("up", "connecting"):
                raise BusError(self._stuck(time.monotonic() - t0))
            try:
                await asyncio.wait_for(self._progress.wait(), min(left, 0.5))
            except TimeoutError:
                pass
        self.barrier_wait_s += time.monotonic() - t0
        self._published_at_release = published
        self._release()
        self.rounds += 1
        return True

    def _stuck(self, waited: float) -> str:
        behind = []
        for (name, p), end in sorted(self._acked_end.items()):
            for kind in self._readers(name):
                got = self._fetched.get((kind, name, p), 0)
                if got < end:
                    behind.append(f"{name}[{p}] {kind} at {got}/{end}")
        return (f"kafka replay: delivery round incomplete after {waited:.1f}s "
                f"(bus {self.state} {self.reason}; {self.pending()} messages unacknowledged; "
                f"behind: {', '.join(behind) or 'none'}; last error: {self.last_error or '-'})")

    def _release(self) -> None:
        """Hand the staged records out: per consumer, topic by topic in a fixed order,
        each partition's records in offset order (= publish order: one partition)."""
        staged, self._staged = self._staged, []
        order = {self.names[t]: i for i, t in enumerate(TOPICS)}
        for kind in ("group", "free"):
            merged: dict[Any, list[Any]] = {}
            subs = keys = None
            for k, s, ks, batches in staged:
                if k != kind:
                    continue
                subs, keys = s, ks
                for tp, recs in batches.items():
                    merged.setdefault(tp, []).extend(recs)
            if subs is None:
                continue
            tps = sorted(merged, key=lambda tp: (order.get(tp.topic, 99), tp.topic, tp.partition))
            KafkaBus._dispatch(self, {tp: merged[tp] for tp in tps}, subs, keys)

    # ------------------------------------------------------------------ clean-up

    async def stop(self) -> None:
        # Deliver what is still staged: the journal drains its inboxes once more on stop.
        if self._staged:
            self._release()
        up = self.state == "up"  # stop() says "stopped"
        await super().stop()
        await self.delete_topics(up)

    async def delete_topics(self, up: bool = True) -> None:
        """Remove this run's private topics (no consumer group was joined). ``up``: the
        broker was reachable when the replay stopped."""
        names = list(self.names.values())
        if not up:
            # Down (or never up): asking would only time out. An in-memory broker took
            # them with it; a real cluster still has them.
            self.topics_deleted = False
            log.warning("kafka replay: broker not reachable; the replay's topics %s were not "
                        "deleted", ", ".join(names))
            return
        try:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(**self._kw, request_timeout_ms=5000)
        except Exception as e:  # noqa: BLE001 - never started: nothing to delete
            log.debug("kafka replay: no admin client (%s)", e)
            return
        try:
            await asyncio.wait_for(admin.start(), 10)
            await asyncio.wait_for(admin.delete_topics(names), 15)
            self.topics_deleted = True
            log.info("kafka replay: deleted topics %s", ", ".join(names))
        except Exception as e:  # noqa: BLE001 - reported, never fatal
            self.topics_deleted = False
            log.warning("kafka replay: could not delete the replay's topics %s (%s: %s); "
                        "remove them by hand", ", ".join(names), type(e).__name__, e)
        finally:
            await quiet_stop(admin, "close")

    def stats(self) -> dict[str, Any]:
        s = super().stats()
        s["replay"] = {"run_id": self.run_id, "rounds": self.rounds,
                       "barrier_wait_s": round(self.barrier_wait_s, 3),
                       "topics": list(self.names.values()),
                       "topics_deleted": self.topics_deleted}
        return s
