"""Consuming: the consumer group for the detector's quotes, one groupless reader for the rest.

The detector's quote subscription joins the consumer group ``group_id`` (any
number of detector processes share the partitions); every other subscription
(status, viewer, executor) reads all partitions without a group, polling
slowly when it reads only quiet topics (``QUIET_FETCH_WAIT_MS``). Live
consumers start at the latest offset; the viewer can start from a time
(``start_from``). Coalescing quote inboxes keep batch items undecoded until
drained (``QuoteInbox``). After an outage, positions are verified against a
log the cluster may have lost.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from operator import itemgetter
from typing import Any

from arbtui import model
from arbtui.backend.bus.base import OPPORTUNITIES, QUOTES, STATUS, Subscription, quote_key
from arbtui.backend.bus.kafka.inbox import QuoteInbox
from arbtui.backend.bus.kafka.logs import log, quiet_stop
from arbtui.backend.bus.kafka.partitioning import base_partitioner
from arbtui.backend.bus.kafka.wire import (
    ALLOWED,
    Batch,
    QuoteBatch,
    decode,
    decode_quote,
    dedup_key,
)

#: (topic, subscriber name) pairs that consume through the consumer group; all
#: other subscriptions read every partition. Only quotes are worth sharding:
#: status is tiny and every detector needs it for the symbols it owns.
GROUP_SUBSCRIBERS = {(QUOTES, "detector")}


#: How many reliable-message ids a consumer remembers to drop a redelivery: far
#: more than one outage's worth of retried records.
_DEDUP_WINDOW = 200_000

#: The fetch wait of a groupless consumer that reads nothing a reader must act on
#: within milliseconds: book and venue states, wallets, funding, control, the
#: conversion books (the detector's and the feed role's reads). Only those of a
#: viewer (every quote) or an executor, journal or viewer (opportunities) keep
#: ``bus.kafka.fetch_max_wait_ms``. On Apache Kafka a fetch returns as soon as
#: data arrives (fetch_min_bytes = 1), so this only sets how often an idle
#: consumer polls (every 5 ms: 200 empty fetches a second, each ~0.5-1 ms of this
#: process's CPU and some of the broker's); on tansu, whose fetch always waits
#: the whole wait, it also delays those quiet topics by up to this much.
QUIET_FETCH_WAIT_MS = 50


class ConsumerSide:
    """The consuming half of ``KafkaBus`` (the bus calls ``_init_consumer``)."""

    #: See QUIET_FETCH_WAIT_MS; 0 = every consumer uses bus.kafka.fetch_max_wait_ms.
    quiet_fetch_wait_ms = QUIET_FETCH_WAIT_MS

    def _init_consumer(self) -> None:
        self.duplicates: dict[str, int] = {}  # redelivered reliable messages dropped here
        self._seen: set[Hashable] = set()
        self._seen_order: deque[Hashable] = deque()

    def _first_time(self, lt: str, m: Any) -> bool:
        """False for a reliable message already handed out (a producer retry after a
        lost acknowledgement, or a partition re-read after the cluster lost its log)."""
        k = dedup_key(m)
        if k is None:
            return True
        seen = self._seen
        if k in seen:
            self.duplicates[lt] = self.duplicates.get(lt, 0) + 1
            return False
        seen.add(k)
        order = self._seen_order
        order.append(k)
        if len(order) > _DEDUP_WINDOW:
            seen.discard(order.popleft())
        return True

    def subscribe(self, topic: str, name: str, *, maxsize: int | None = None,
                  coalesce: Callable[[Any], Hashable] | None = None,
                  wake: asyncio.Event | None = None) -> Subscription:
        if topic == QUOTES and coalesce is quote_key:
            sub: Subscription = QuoteInbox(topic, name, maxsize or self.bcfg.queue_size,
                                            coalesce, wake, on_bad=self._bad_item)
        else:
            sub = Subscription(topic, name, maxsize or self.bcfg.queue_size, coalesce, wake)
        book = self._group_subs if (topic, name) in GROUP_SUBSCRIBERS else self._free_subs
        book.setdefault(topic, []).append(sub)
        if self._connected:
            self._ensure_consumers()
        return sub

    def _ensure_consumers(self) -> None:
        if self._group_subs and "group" not in self._tasks:
            self._spawn("group", self._group_loop)
        if self._free_subs and "free" not in self._tasks:
            self._spawn("free", self._free_loop)
        elif self._free_subs:
            self.free_ready.clear()  # the running loop picks up the new topic

    def _consumer(self, fetch_wait_ms: int | None = None, **extra: Any) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            **self._kw, enable_auto_commit=False,
            fetch_max_wait_ms=self.k.fetch_max_wait_ms if fetch_wait_ms is None else fetch_wait_ms,
            # Only reached when a position is out of range (retention, or a broker
            # that lost its log): then replay what the log still has rather than skip it.
            auto_offset_reset="earliest", **extra,
        )

    async def _free_loop(self) -> None:
        """All partitions of every groupless topic, one consumer, one fetch loop."""
        from aiokafka import TopicPartition

        wait = self._free_wait()
        c = self._consumer(wait, group_id=None)
        await c.start()
        have: set[str] = set()
        have_plan: dict[str, frozenset | None] = {}
        last_ts: dict[Any, int] = {}
        paused = False
        try:
            while True:
                plan = self._free_plan()
                want = set(plan)
                if plan != have_plan:
                    await c.topics()  # refresh metadata so new topics' partitions are known
                    parts = set()
                    for t, bases in plan.items():
                        every = sorted(c.partitions_for_topic(t) or ())
                        if every and bases is not None:
                            # Only the partitions these base assets live in.
                            every = {base_partitioner(b.encode(), every, []) for b in bases}
                        parts |= {TopicPartition(t, p) for p in every}
                    if not parts:
                        await asyncio.sleep(0.5)
                        continue
                    old = {tp: await c.position(tp) for tp in c.assignment()}
                    if self._free_wait() != wait:
                        # A latency-critical topic joined a quiet consumer (or the other
                        # way round): a new consumer with the other fetch wait takes
                        # over at the same positions.
                        wait = self._free_wait()
                        await quiet_stop(c)
                        c = self._consumer(wait, group_id=None)
                        await c.start()
                        await c.topics()
                        paused = False
                    c.assign(sorted(parts))
                    for tp, pos in old.items():
                        if tp in parts:
                            c.seek(tp, pos)
                    await self._seek_start(c, [tp for tp in parts if tp not in old])
                    have = {tp.topic for tp in parts}
                    if have == want:
                        have_plan = plan
                        self.free_ready.set()
                if self.state == "down" and not paused:
                    # Hold our positions still until the cluster is back and we know
                    # whether it kept its log: a broker that lost it numbers new
                    # records from 0 again, and reading on from our old offset would
                    # silently skip every record written since the restart.
                    c.pause(*c.assignment())
                    paused = True
                elif paused and self.state == "up":
                    await self._verify_positions(c, last_ts)
                    c.resume(*c.assignment())
                    paused = False
                batches = await c.getmany(timeout_ms=250, max_records=10_000)
                if batches:
                    for tp, recs in batches.items():
                        last_ts[tp] = recs[-1].timestamp
                    self._dispatch(batches, self._free_subs)
        finally:
            await quiet_stop(c)

    def _free_wait(self) -> int:
        """The groupless consumer's fetch wait (QUIET_FETCH_WAIT_MS)."""
        fmw = self.k.fetch_max_wait_ms
        for lt, subs in self._free_subs.items():
            if lt == OPPORTUNITIES or (lt == QUOTES and any(s.bases is None for s in subs)):
                return fmw
        return max(fmw, self.quiet_fetch_wait_ms)

    def _free_plan(self) -> dict[str, frozenset | None]:
        """Topic name -> the base assets its groupless subscriptions want (None = all)."""
        plan: dict[str, frozenset | None] = {}
        for lt, subs in self._free_subs.items():
            bases: frozenset | None = frozenset()
            for s in subs:
                b = getattr(s, "bases", None)
                bases = None if b is None or bases is None else bases | b
            plan[self.names[lt]] = bases
        return plan

    def subscribe_rates(self, bases: set[str], *, wake: asyncio.Event | None = None) -> Subscription:
        """The quotes of these base assets (the conversion books, e.g. USDT of USDT-USD)
        read OUTSIDE the consumer group, from just the partitions they live in, so
        every detector process has every rate, whichever partitions it owns."""
        sub = QuoteInbox(QUOTES, "rates", self.bcfg.queue_size, quote_key, wake,
                         on_bad=self._bad_item)
        sub.bases = frozenset(bases)
        self._free_subs.setdefault(QUOTES, []).append(sub)
        if self._connected:
            self._ensure_consumers()
        return sub

    async def _verify_positions(self, c: Any, last_ts: dict[Any, int]) -> None:
        """After an outage: is the last record we read still there? In a kept log the
        earliest record at/after its timestamp IS that record (same timestamp). In a
        log the cluster lost and began again, every record is newer: re-read it from
        its start. (Producers' clocks going backwards within one partition could fool
        this into a re-read, i.e. duplicates, never into a loss.)"""
        tps = [tp for tp in c.assignment() if tp in last_ts]
        if not tps:
            return
        try:
            found = await asyncio.wait_for(
                c.offsets_for_times({tp: last_ts[tp] for tp in tps}), 10)
        except Exception as e:  # noqa: BLE001 - fall back to aiokafka's out-of-range reset
            log.warning("kafka: cannot verify positions after the outage: %s: %s",
                        type(e).__name__, e)
            return
        reread: list[str] = []
        for tp in tps:
            ot = found.get(tp)
            pos = await c.position(tp)
            if ot is None or ot.timestamp < 0:
                # Not even our last record is there. A kept log would have it (or, if
                # retention removed it, newer ones); a new, still-empty log has none:
                # continue from its end, not from an offset it has not reached yet
                # (some brokers answer such fetches with silence, not out-of-range).
                end = (await c.end_offsets([tp]))[tp]
                if end < pos:
                    self.log_resets += 1
                    reread.append(f"{tp.topic}[{tp.partition}]")
                    c.seek(tp, end)
                continue
            if ot.timestamp > last_ts[tp] and ot.offset < pos:
                self.log_resets += 1
                reread.append(f"{tp.topic}[{tp.partition}]")
                c.seek(tp, ot.offset)
        if reread:
            # One line per outage, not one per partition.
            log.warning("kafka: the cluster lost its log during the outage: %d partitions "
                        "read again from what it has now (%s%s)", len(reread),
                        ", ".join(sorted(reread)[:6]), ", ..." if len(reread) > 6 else "")

    async def _seek_start(self, c: Any, tps: list[Any]) -> None:
        if not tps:
            return
        if self.start_ms is None:
            await c.seek_to_end(*tps)
            return
        found = await c.offsets_for_times({tp: self.start_ms for tp in tps})
        late = []
        for tp in tps:
            ot = found.get(tp)
            if ot is None or ot.timestamp < 0:
                late.append(tp)  # nothing at or after that time: start at the end
            else:
                c.seek(tp, ot.offset)
        if late:
            await c.seek_to_end(*late)

    async def _group_loop(self) -> None:
        """The detector's quotes, shared with other detector processes by the group."""
        from aiokafka import ConsumerRebalanceListener, TopicPartition

        bus = self
        c = self._consumer(group_id=self.k.group_id)
        keys: dict[Any, set[str]] = {}
        positions: dict[Any, int] = {}
        seen_outages = [self.outages]

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked):
                for tp in revoked:
                    try:
                        positions[tp] = await c.position(tp)
                    except Exception:  # noqa: BLE001 - no position yet: nothing to keep
                        positions.pop(tp, None)

            async def on_partitions_assigned(self, assigned):
                assigned = set(assigned)
                before = {TopicPartition(t.topic, t.partition) for t in keys}
                lost = before - assigned
                gained = assigned - before
                kept = assigned - gained
                if bus.outages != seen_outages[0]:
                    # Re-joined after an outage: the old offsets may point into a log the
                    # cluster lost. A live detector wants the newest quotes anyway.
                    seen_outages[0] = bus.outages
                    if kept:
                        await c.seek_to_end(*kept)
                else:
                    for tp in kept:
                        if tp in positions:
                            c.seek(tp, positions[tp])
                if gained:
                    # A detector that gains partitions starts at the end (live) and
                    # starts those symbols clean.
                    await c.seek_to_end(*gained)
                moved: set[str] = set()
                for tp in lost | gained:
                    moved |= keys.pop(tp, set())
                    positions.pop(tp, None)
                for tp in assigned:
                    keys.setdefault(tp, set())
                bus.rebalances += 1
                bus.assigned = sorted(tp.partition for tp in assigned)
                log.info("kafka: group %s assigned %s partitions %s (gained %d, lost %d)",
                         bus.k.group_id, bus.k.topic_quotes, bus.assigned, len(gained), len(lost))
                if moved:
                    bus._reset_keys(moved, "partition moved to another detector")

        topics = [self.names[t] for t in self._group_subs]
        c.subscribe(topics=topics, listener=Listener())
        await c.start()
        try:
            while True:
                batches = await c.getmany(timeout_ms=250, max_records=10_000)
                if batches:
                    self._dispatch(batches, self._group_subs, keys)
        finally:
            self.assigned = []
            await quiet_stop(c)

    def _reset_keys(self, moved: set[str], reason: str) -> None:
        for subs in self._group_subs.values():
            for s in subs:
                s.discard_where(lambda m: getattr(m, "symbol", None) in moved)
                if s.on_reset is not None:
                    try:
                        s.on_reset(moved, reason)
                    except Exception:  # noqa: BLE001 - the role's bug must not kill the consumer
                        log.exception("kafka: on_reset handler of %s failed", s.name)

    def _dispatch(self, batches: dict[Any, list[Any]], subs_by_topic: dict[str, list],
                  keys: dict[Any, set[str]] | None = None) -> None:
        """Decode and hand out fetched records; ``keys`` (group consumer) collects the
        symbols seen per partition, for the reset when a rebalance moves one."""
        now = time.time_ns()
        for tp, recs in batches.items():
            lt = self.logical.get(tp.topic, tp.topic)
            subs = subs_by_topic.get(lt, ())
            allowed = ALLOWED.get(lt, ())
            ks = keys.setdefault(tp, set()) if keys is not None else None
            n = 0
            for r in recs:
                msg, why = decode(r.value)
                if msg is None:
                    self._bad(why, r, msg)
                    continue
                if type(msg) is QuoteBatch:
                    if lt != QUOTES:
                        self._bad("wrong_type", r, msg)
                        continue
                    n += self._put_quotes(msg, subs, r, ks, now)
                    continue
                for m in (msg.items if type(msg) is Batch else (msg,)):
                    if not isinstance(m, allowed) or m.v != model.SCHEMA_VERSION:
                        self._bad("wrong_type" if m.v == model.SCHEMA_VERSION
                                  else "wrong_version", r, m)
                        continue
                    if lt != QUOTES and lt != STATUS and not self._first_time(lt, m):
                        continue
                    n += 1
                    if lt == QUOTES:
                        if m.pub_ts_ns:
                            self.hop.add(now - m.pub_ts_ns)
                        if ks is not None:
                            ks.add(m.symbol)
                    for s in subs:
                        if s.bases is None or m.symbol.split("-", 1)[0] in s.bases:
                            s.put(m)
            self.consumed[lt] = self.consumed.get(lt, 0) + n

    def _put_quotes(self, b: QuoteBatch, subs: Any, r: Any, ks: set[str] | None,
                    now: int) -> int:
        """One QuoteBatch record -> the quote subscriptions. Coalescing quote inboxes
        take the items undecoded (see QuoteInbox); any other inbox gets every quote,
        decoded, in order."""
        items = b.items
        if len(b.keys) != len(items):
            self._bad("malformed", r, b)
            return 0
        if b.pub_ts_ns:
            self.hop.add(now - b.pub_ts_ns)
        if ks is not None:
            ks.update(map(itemgetter(1), b.keys))
        every: list[model.Quote] | None = None
        for s in subs:
            if s.bases is not None:  # a rates inbox: only its base assets' quotes
                pick = [i for i, (_, sym) in enumerate(b.keys) if sym.split("-", 1)[0] in s.bases]
                if pick:
                    s.put_raw([b.keys[i] for i in pick], [items[i] for i in pick])
                continue
            if type(s) is QuoteInbox:
                s.put_raw(b.keys, items)
                continue
            if every is None:
                every = []
                for raw in items:
                    q, why = decode_quote(raw)
                    if q is None:
                        self._bad(why, r, q)
                    else:
                        every.append(q)
            for q in every:
                s.put(q)
        return len(items)

    def _bad_item(self, why: str, key: Any) -> None:
        """A QuoteBatch item that did not decode, found when its inbox was drained."""
        self.bad_records[why] = self.bad_records.get(why, 0) + 1
        if self._logb.take():
            log.warning("kafka: skipped %s quote %s in a batch record", why, key)

    def _bad(self, why: str, r: Any, msg: Any) -> None:
        self.bad_records[why] = self.bad_records.get(why, 0) + 1
        if self._logb.take():
            what = type(msg).__name__ if msg is not None else repr((r.value or b"")[:120])
            log.warning("kafka: skipped %s record %s[%d]@%d: %s", why, r.topic, r.partition,
                        r.offset, what)
