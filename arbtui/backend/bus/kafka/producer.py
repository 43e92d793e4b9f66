"""Producing: a delivery policy per topic, two bounded outboxes and one sender task.

``publish`` never blocks the caller: it appends to an outbox and returns; one
sender task takes what queued up since its last pass, groups it by (topic,
partition) and hands aiokafka one record per group (no timer: one message per
record when idle, bigger records under load).

The policy differs by what a lost message costs:

- **Quotes (and perp funding states) are newest-wins** (``LOSSY``). A newer quote of the same venue+symbol
  makes an older one worthless, so when queued + unacknowledged quotes reach
  ``max_in_flight`` the queue is coalesced to the newest quote per venue+symbol
  (counted as *superseded*); only if that is not enough is the oldest one shed
  (counted as *dropped*). A failed quote record is not retried (its quotes are
  stale by the time the broker is back) and counts as dropped.
- **Everything else is reliable**: opportunity events, fills, book states,
  snapshots. A failed record goes back to the FRONT of its outbox and is retried
  (with back-off while the broker is away) until it is acknowledged; the
  idempotent producer is used where the broker supports it, and consumers
  deduplicate by id for the rest (a retry after a lost acknowledgement). The
  outbox is bounded by ``reliable_buffer`` so an outage cannot grow memory
  without limit; if that bound is ever hit the oldest message is LOST, counted
  in ``lost`` and flagged in the bus state (the status line says so in red), and
  the detectors' open-set snapshots reconcile the viewers and the journal.

An acknowledgement is not the end of it: a broker that loses its log (an
in-memory dev broker restarted, an unclean leader election) loses records it
had acknowledged but nobody had read yet. So the last minute of acknowledged
reliable records is kept (``_recent``), and after every outage each partition's
newest one is looked up by its timestamp: if the log no longer has it, every
kept record of that partition is sent again (``replayed``; consumers drop the
ones they already had by id). Book states are not replayed: they are restated
every few seconds anyway, and an old one would briefly undo a newer one.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import Any

from arbtui import model
from arbtui.backend.bus.base import FUNDING, QUOTES, STATUS
from arbtui.backend.bus.kafka.connection import missing_permission
from arbtui.backend.bus.kafka.logs import log, quiet_stop
from arbtui.backend.bus.kafka.partitioning import base_partitioner
from arbtui.backend.bus.kafka.wire import PREFIX, WIRE, encode_batch, unpack

#: Logical topics whose messages may be coalesced or shed under pressure: a
#: newer quote or funding state of the same venue+symbol makes an older one worthless.
LOSSY = frozenset({QUOTES, FUNDING})

#: Messages the sender takes from an outbox per pass (one pass = one record per
#: partition or a few; the rest stays queued).
_PASS_MAX = 4096

#: Back-off of the reliable outbox after a failed record (seconds, doubling).
_RETRY_MIN, _RETRY_MAX = 0.25, 5.0

#: Acknowledged reliable records kept for a replay if the cluster loses them.
_RECENT_S = 60.0

#: Delivery counts as recovered once records have been acknowledged, none has
#: failed for this long and the broker has been reachable for twice as long: for
#: seconds after a broker restart some partitions answer while others still fail
#: (tansu answers UnknownError until its topics are back), and one outage must not
#: log as several episodes.
_RECOVERED_AFTER_S = 5.0


class ProducerSide:
    """The producing half of ``KafkaBus`` (the bus calls ``_init_producer``)."""

    def _init_producer(self) -> None:
        self.published: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.records: dict[str, int] = {}  # Kafka records sent (several messages each)
        self.delivery_errors: dict[str, int] = {}  # messages whose record failed (any topic)
        self.superseded: dict[str, int] = {}  # quotes replaced by a newer one before sending
        self.dropped: dict[str, int] = {}  # quotes shed or failed: never reached the broker
        self.retried: dict[str, int] = {}  # reliable messages sent again after a failure
        self.lost: dict[str, int] = {}  # reliable messages shed at reliable_buffer: LOUD
        self.replayed: dict[str, int] = {}  # acknowledged, then lost by the cluster: sent again
        # (acked at monotonic s, topic name, partition, offset, timestamp ms, logical topic,
        # the record's value, messages in it). The encoded bytes, not the messages: a
        # minute of objects would be the garbage collector's to walk on every full pass.
        self._recent: deque[tuple[float, str, int, int, int, str, bytes, int]] = deque()
        self._recent_n = 0
        self.idempotent = False
        self._outq: deque[tuple[str, str, Any]] = deque()  # quotes: (topic, key, message)
        self._relq: deque[tuple[str, str, Any]] = deque()  # reliable topics
        self._out_event = asyncio.Event()
        self._unacked = 0  # quotes handed to aiokafka, not yet acknowledged
        self._rel_unacked = 0
        self._retry_at = 0.0  # monotonic: the reliable outbox waits until then
        self._retry_delay = _RETRY_MIN
        # One warning when delivery starts failing, one when it recovers (with counts).
        self._failing_since: float | None = None
        self._last_fail = 0.0
        self._acked_since_fail = False
        self._fail_window: dict[str, int] = {}

    # ------------------------------------------------------------------ publish

    def publish(self, topic: str, key: str, msg: Any) -> None:
        if type(msg) not in PREFIX and not isinstance(msg, WIRE):
            raise TypeError(f"cannot put {type(msg).__name__} on the Kafka bus")
        self.published[topic] = self.published.get(topic, 0) + 1
        if topic in LOSSY:
            q = self._outq
            if len(q) + self._unacked >= self.k.max_in_flight and not self._make_room(topic):
                return
            self._outq.append((topic, key, msg))
        else:
            r = self._relq
            if len(r) + self._rel_unacked >= self.k.reliable_buffer:
                # The bound of an outage's worth of reliable messages: past it memory
                # would grow without limit. Shed the oldest, loudly; the detectors'
                # open-set snapshots close what the lost events leave open.
                victim = r.popleft()[0] if r else topic
                self.lost[victim] = self.lost.get(victim, 0) + 1
                if sum(self.lost.values()) == 1 or self._logb.take():
                    log.error("kafka: reliable outbox full (%d messages, bus.kafka.reliable_buffer)"
                              "; LOST a %s message (lost so far: %s)", self.k.reliable_buffer,
                              victim, self.lost)
                if not r:
                    return
            r.append((topic, key, msg))
        self._out_event.set()

    def _make_room(self, topic: str) -> bool:
        """Quotes at max_in_flight: coalesce the queue to the newest quote per
        venue+symbol, then, if that freed nothing, shed the oldest. False = drop
        the new one (everything is in flight, nothing queued to shed)."""
        q = self._outq
        items = list(q)  # indexed below: a deque's middle is O(n) to reach
        newest: dict[tuple[str, str, str], int] = {}
        for i, (t, _, m) in enumerate(items):
            newest[(t, m.venue, m.symbol)] = i  # a perp's quote and its funding differ
        if len(newest) < len(items):
            keep = sorted(newest.values())
            self.superseded[topic] = self.superseded.get(topic, 0) + len(items) - len(keep)
            self._outq = q = deque([items[i] for i in keep])
        if len(q) + self._unacked < self.k.max_in_flight:
            return True
        self.dropped[topic] = self.dropped.get(topic, 0) + 1
        if self._logb.take():
            log.warning("kafka: %d quotes in flight (max_in_flight); shedding the oldest",
                        len(q) + self._unacked)
        if q:
            q.popleft()
            return True
        return False

    # ------------------------------------------------------------------ sender

    def _take(self) -> tuple[list[tuple[str, str, Any]], bool]:
        """The next pass: reliable messages first (unless backing off), then quotes."""
        if self._relq and time.monotonic() >= self._retry_at:
            r = self._relq
            if len(r) <= _PASS_MAX:
                self._relq = deque()
                return list(r), True
            return [r.popleft() for _ in range(_PASS_MAX)], True
        q = self._outq
        if not q:
            return [], False
        if len(q) <= _PASS_MAX:
            self._outq = deque()
            return list(q), False
        return [q.popleft() for _ in range(_PASS_MAX)], False

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
            q, reliable = self._take()
            if not q:
                self._out_event.clear()
                wait = self._retry_at - time.monotonic() if self._relq else None
                try:
                    await asyncio.wait_for(self._out_event.wait(), wait)
                except TimeoutError:
                    pass
                continue
            # What was taken counts as in flight from here on.
            self._add_unacked(reliable, len(q))
            try:
                groups = await self._group(q, parts)
            except Exception as e:  # noqa: BLE001 - no metadata: counted, never fatal
                self._add_unacked(reliable, -len(q))
                by_topic: dict[str, list] = {}
                for item in q:
                    by_topic.setdefault(item[0], []).append(item)
                for topic, items in by_topic.items():
                    self._failed(reliable, topic, items, e)
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
                        value = encode_batch(topic, [m for _, m in chunk], qfmt)
                        est[topic] = max(64.0, len(value) / n)
                        # An explicit timestamp: after an outage a record is found again
                        # by it (see check_lost_acked).
                        ts_ms = time.time_ns() // 1_000_000
                        fut = await producer.send(self.names.get(topic, topic), value,
                                                  key=key, partition=p, timestamp_ms=ts_ms)
                    except Exception as e:  # noqa: BLE001 - counted, surfaced, never fatal
                        self._add_unacked(reliable, -n)
                        self._failed(reliable, topic, [(topic, k, m) for k, m in chunk], e)
                        continue
                    self.records[topic] = self.records.get(topic, 0) + 1
                    fut.add_done_callback(
                        lambda f, t=topic, ch=chunk, rel=reliable, ts=ts_ms, v=value:
                        self._on_ack(t, rel, ch, f, ts, v))
            # The partition count can change (a topic re-created by another role):
            # re-read it whenever the client refreshed its metadata.
            for topic, (known, _) in list(parts.items()):
                now = producer.client.cluster.partitions_for_topic(self.names.get(topic, topic))
                if now is not None and frozenset(now) != known:
                    del parts[topic]

    def _add_unacked(self, reliable: bool, n: int) -> None:
        if reliable:
            self._rel_unacked += n
        else:
            self._unacked += n

    async def _group(self, q: list, parts: dict) -> dict[tuple[str, int], tuple[bytes, list]]:
        """(topic, partition) -> (record key, [(message key, message)] in publish
        order). The partition is the one ``base_partitioner`` gives the message's
        key; the record key is the base asset of its first message, so Kafka's
        default partitioner (murmur2 of the key) would place every record where it is."""
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
                groups[(topic, p)] = (key.split("-", 1)[0].encode(), [(key, msg)])
            else:
                g[1].append((key, msg))
        return groups

    def _on_ack(self, topic: str, reliable: bool, chunk: list, fut: asyncio.Future,
                ts_ms: int = 0, value: bytes = b"") -> None:
        n = len(chunk)
        self._add_unacked(reliable, -n)
        e = (asyncio.CancelledError() if fut.cancelled() else fut.exception())
        if e is not None:
            self._failed(reliable, topic, [(topic, k, m) for k, m in chunk], e)
            return
        self.delivered[topic] = self.delivered.get(topic, 0) + n
        if reliable:
            self._retry_delay = _RETRY_MIN
            if topic != STATUS and n:
                self._keep_recent(topic, n, fut.result(), ts_ms, value)
        if self._failing_since is not None:
            self._acked_since_fail = True
            self.check_recovered()

    # ------------------------------------------------------------------ failures

    def _failed(self, reliable: bool, topic: str, msgs: list[tuple[str, str, Any]],
                e: BaseException) -> None:
        """A record (or a pass) could not be delivered: reliable messages go back to
        the front of their outbox, in order, and wait out a back-off; quotes are
        counted as dropped."""
        n = len(msgs)
        self._delivery_failed(topic, e, n)
        if reliable and not self._stopping:
            self._relq.extendleft(reversed(msgs))
            self.retried[topic] = self.retried.get(topic, 0) + n
            self._retry_at = time.monotonic() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, _RETRY_MAX)
            self._out_event.set()
        elif not reliable:
            self.dropped[topic] = self.dropped.get(topic, 0) + n

    def _delivery_failed(self, topic: str, e: BaseException, n: int = 1) -> None:
        self.delivery_errors[topic] = self.delivery_errors.get(topic, 0) + n
        self._fail_window[topic] = self._fail_window.get(topic, 0) + n
        self._last_fail = time.monotonic()
        self._acked_since_fail = False
        self.last_error = f"deliver {topic}: {type(e).__name__}: {e}"
        perm = missing_permission(e, self.k, self.names.get(topic, topic))
        if perm:
            perm = perm.replace("(READ/WRITE/DESCRIBE)", "(WRITE)")
            self.state, self.reason = "unauthorized", f"needs {perm}"
            if perm not in self.auth:
                self.auth.append(perm)
        if self._failing_since is None:
            # One line when delivery starts failing; the recovery line has the counts.
            self._failing_since = time.monotonic()
            log.warning("kafka: delivery to %s failing (%s: %s); opportunities, fills and "
                        "states are kept and retried, quotes are dropped until it recovers",
                        self.names.get(topic, topic), type(e).__name__, e)

    def check_recovered(self) -> None:
        """Log the recovery once records are acknowledged again and none failed for
        _RECOVERED_AFTER_S (also called by the health loop: a quiet role may get its
        last acknowledgement before that)."""
        now = time.monotonic()
        up = self.up_since if self.state == "up" else None
        if (self._failing_since is not None and self._acked_since_fail
                and now - self._last_fail >= _RECOVERED_AFTER_S
                and up is not None and now - up >= 2 * _RECOVERED_AFTER_S):
            self._recovered()

    def _recovered(self) -> None:
        took = time.monotonic() - (self._failing_since or time.monotonic())
        failed = dict(self._fail_window)
        self._failing_since = None
        self._fail_window = {}
        log.warning("kafka: delivery recovered after %.1fs: failed %s; retried so far %s, "
                    "quotes dropped %s, lost %s", took, failed, dict(self.retried),
                    dict(self.dropped), dict(self.lost))

    # ------------------------------------------------------------------ lost acknowledgements

    def _keep_recent(self, topic: str, n: int, md: Any, ts_ms: int, value: bytes) -> None:
        now = time.monotonic()
        r = self._recent
        r.append((now, md.topic, md.partition, md.offset, ts_ms, topic, value, n))
        self._recent_n += n
        while r and (now - r[0][0] > _RECENT_S or self._recent_n > self.k.reliable_buffer):
            self._recent_n -= r.popleft()[7]

    async def check_lost_acked(self) -> None:
        """After an outage: did the cluster keep what it acknowledged? Per partition,
        the newest kept record is looked up by its timestamp; a log that no longer has
        it lost them all, and every kept record of that partition is sent again."""
        if not self._recent:
            return
        from aiokafka import AIOKafkaConsumer, TopicPartition

        newest: dict[Any, tuple[int, int]] = {}  # tp -> (offset, timestamp ms)
        for _, name, part, off, ts, _, _, _ in self._recent:
            newest[TopicPartition(name, part)] = (off, ts)
        c = AIOKafkaConsumer(**self._kw, group_id=None, enable_auto_commit=False)
        try:
            await asyncio.wait_for(c.start(), 10)
            found = await asyncio.wait_for(
                c.offsets_for_times({tp: ts for tp, (_, ts) in newest.items()}), 10)
        except Exception as e:  # noqa: BLE001 - cannot tell: keep what we have, say so
            log.warning("kafka: cannot check whether the cluster kept acknowledged records "
                        "(%s: %s)", type(e).__name__, e)
            return
        finally:
            await quiet_stop(c)
        gone = set()
        for tp, (off, ts) in newest.items():
            ot = found.get(tp)
            # Kept: the earliest record at/after our timestamp is ours (or shares its ms).
            if ot is None or ot.timestamp != ts or ot.offset > off:
                gone.add((tp.topic, tp.partition))
        if not gone:
            return
        again = [e for e in self._recent if (e[1], e[2]) in gone]
        self._recent = deque(e for e in self._recent if (e[1], e[2]) not in gone)
        self._recent_n = sum(e[7] for e in self._recent)
        msgs = []
        for _, _, _, _, _, topic, value, _ in again:
            for m in unpack(value)[0]:
                if isinstance(m, (model.OpenSet, model.WalletState, model.ControlAck)):
                    continue  # states, periodic anyway: an old one proves nothing
                msgs.append((topic, getattr(m, "symbol", topic), m))  # control: no symbol
                self.replayed[topic] = self.replayed.get(topic, 0) + 1
        self._relq.extendleft(reversed(msgs))
        self._out_event.set()
        log.warning("kafka: the cluster lost %d acknowledged messages in %d partitions during "
                    "the outage; sending them again (consumers drop what they already had): %s",
                    len(msgs), len(gone), dict(self.replayed))

    def pending(self) -> int:
        """Messages queued or unacknowledged (both outboxes)."""
        return len(self._outq) + self._unacked + len(self._relq) + self._rel_unacked
