"""The Kafka transport (aiokafka) behind the same ``Bus`` interface as the embedded bus.

Wire format: msgspec JSON with a ``type`` tag and schema version ``v``, readable
with kcat; the quotes topic is msgpack with the same fields unless
``quote_format = "json"`` (readers detect the format). A record carries SEVERAL messages (per-record client and broker work,
not per-message work, is what limits a Kafka pipe at tens of thousands of
quotes/s): ``{"type":"quotes","keys":[[venue,symbol],...],"items":[quote,...]}``
on the quotes topic, ``{"type":"batch","items":[tagged message,...]}`` on the
others. Single tagged messages (``{"type":"quote",...}``) are still accepted.
Every message of a record belongs to the same partition: the one of its
symbol's BASE asset (Kafka's murmur2 of ``BTC`` for ``BTC-USD``), because the
detector also pairs BTC-USD against BTC-USDT through a conversion, so every
quote currency of one base must meet in one detector. The record key is the
base asset of its first message (murmur2 of it gives the record's partition).

Producing never blocks the caller: ``publish`` appends to a bounded outbox and
returns; one sender task takes what queued up since its last pass, groups it
by (topic, partition) and hands aiokafka one record per group (no timer: one
message per record when idle, bigger records under load). When queued +
unacknowledged messages reach ``max_in_flight`` the OLDEST queued message is
dropped and counted (newer quotes supersede older ones; a broker outage must
not grow memory without bound).

Consuming: the detector's quote subscription joins the consumer group
``group_id`` (any number of detector processes share the partitions); every
other subscription (status, viewer, executor) reads all partitions without a
group. Live consumers start at the latest offset; the viewer can start from a
time (``start_from``). Coalescing quote inboxes keep batch items undecoded
until drained (``_QuoteInbox``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Hashable
from operator import itemgetter
from typing import Any, Union

import msgspec

from arbtui import model
from arbtui.backend.bus.base import (
    FILLS,
    OPPORTUNITIES,
    QUOTES,
    STATUS,
    WALLETS,
    Bus,
    BusError,
    Subscription,
    quote_key,
)
from arbtui.backend.metrics import Latency

log = logging.getLogger("arbtui.kafka")

#: (topic, subscriber name) pairs that consume through the consumer group; all
#: other subscriptions read every partition. Only quotes are worth sharding:
#: status is tiny and every detector needs it for the symbols it owns.
GROUP_SUBSCRIBERS = {(QUOTES, "detector")}


# ----------------------------------------------------------------------------- wire types
# Tagged subclasses of the model Structs: decoding yields instances that ARE
# model.Quote etc. (isinstance holds), so consumers cannot tell the transports apart.


class Quote(model.Quote, tag="quote", tag_field="type"):
    pass


class Opportunity(model.Opportunity, tag="opportunity", tag_field="type"):
    pass


class Fill(model.Fill, tag="fill", tag_field="type"):
    pass


class BookStatus(model.BookStatus, tag="book_status", tag_field="type"):
    pass


class VenueStatus(model.VenueStatus, tag="venue_status", tag_field="type"):
    pass


class WalletState(model.WalletState, tag="wallet_state", tag_field="type"):
    pass


_WIRE = (Quote, Opportunity, Fill, BookStatus, VenueStatus, WalletState)
#: model class (and wire subclass) -> the JSON prefix that opens its object with the tag.
_PREFIX: dict[type, bytes] = {}
for _w in _WIRE:
    _PREFIX[_w.__mro__[1]] = b'{"type":"' + _w.__struct_config__.tag.encode() + b'",'


class QuoteBatch(msgspec.Struct, tag="quotes", tag_field="type"):
    """Many quotes in one Kafka record: per-record client and broker work, not
    per-quote work, is what limits a Kafka pipe at tens of thousands of quotes/s.

    ``keys[i]`` is ``[venue, symbol]`` of ``items[i]``. Items stay undecoded
    (``Raw``) until a consumer needs them: a coalescing inbox keeps the newest
    item per key undecoded and decodes only what its reader drains, so a quote
    superseded before the detector got to it is never decoded at all.
    ``pub_ts_ns`` is the newest item's publish time (the feed -> consumer hop).
    """

    keys: list[tuple[str, str]]
    items: list[msgspec.Raw]
    pub_ts_ns: int = 0
    v: int = model.SCHEMA_VERSION


class Batch(msgspec.Struct, tag="batch", tag_field="type"):
    """Opportunities, fills and status changes several to a record: each item is
    one tagged message exactly as a single record would carry it."""

    items: list[Union[_WIRE]]  # noqa: UP007 - msgspec wants a Union
    v: int = model.SCHEMA_VERSION


class _QuoteBatchOut(msgspec.Struct, tag="quotes", tag_field="type"):
    """QuoteBatch as written (decoded items in, one encoder call)."""

    keys: list[tuple[str, str]]
    items: list[model.Quote]
    pub_ts_ns: int = 0
    v: int = model.SCHEMA_VERSION


_ANY = Union[(QuoteBatch, Batch, *_WIRE)]
_DECODER = msgspec.json.Decoder(_ANY)
_MP_DECODER = msgspec.msgpack.Decoder(_ANY)
_QUOTE = msgspec.json.Decoder(model.Quote)
_MP_QUOTE = msgspec.msgpack.Decoder(model.Quote)
_ENCODER = msgspec.json.Encoder()
_MP_ENCODER = msgspec.msgpack.Encoder()
_OPEN_BRACE = 0x7B  # a JSON record/item starts with "{"; a msgpack one with a map header

#: What may legally arrive on each logical topic; anything else is a bad record
#: (an Opportunity on the quotes topic would crash the detector otherwise).
ALLOWED: dict[str, tuple[type, ...]] = {
    QUOTES: (model.Quote,),
    OPPORTUNITIES: (model.Opportunity,),
    FILLS: (model.Fill,),
    STATUS: (model.BookStatus, model.VenueStatus),
    WALLETS: (model.WalletState,),
}


class _Head(msgspec.Struct):
    """Just enough of a record to tell 'other schema version' from 'garbage'."""

    v: int = -1


_HEAD = msgspec.json.Decoder(_Head)
_MP_HEAD = msgspec.msgpack.Decoder(_Head)


def encode(msg: Any) -> bytes:
    """Struct -> tagged JSON bytes. Model instances get the tag spliced in (no copy)."""
    if isinstance(msg, _WIRE):
        return _ENCODER.encode(msg)
    prefix = _PREFIX.get(type(msg))
    if prefix is None:
        raise TypeError(f"cannot put {type(msg).__name__} on the Kafka bus")
    return prefix + _ENCODER.encode(msg)[1:]


#: Messages the sender takes from the outbox per pass (one pass = one record per
#: partition or a few; the rest stays queued, where max_in_flight drops the oldest).
_PASS_MAX = 4096

_B_OPEN = b'{"type":"batch","items":['
_V_CLOSE = b',"v":' + str(model.SCHEMA_VERSION).encode() + b"}"


def encode_batch(topic: str, msgs: list[Any], quote_format: str = "json") -> bytes:
    """Several messages of one logical topic -> ONE record value (see QuoteBatch/Batch).

    Quotes can be written as msgpack (``bus.kafka.quote_format``): most of a quote
    is its 2 x 10 levels of floats, and formatting floats as JSON text is half the
    cost of producing a quote; msgpack writes them as 9 binary bytes each."""
    if topic == QUOTES:
        out = _QuoteBatchOut([(q.venue, q.symbol) for q in msgs], msgs, msgs[-1].pub_ts_ns)
        return (_MP_ENCODER if quote_format == "msgpack" else _ENCODER).encode(out)
    return b"".join((_B_OPEN, b",".join([encode(m) for m in msgs]), b"]", _V_CLOSE))


def decode(value: bytes | None) -> tuple[Any, str]:
    """bytes (JSON or msgpack) -> (Struct, "") or (None, why) where why is
    malformed/wrong_version. The Struct is a single message or a QuoteBatch/Batch."""
    if not value:
        return None, "malformed"
    js = value[0] == _OPEN_BRACE
    try:
        msg = (_DECODER if js else _MP_DECODER).decode(value)
    except msgspec.DecodeError:
        try:
            v = (_HEAD if js else _MP_HEAD).decode(value).v
        except msgspec.DecodeError:
            return None, "malformed"
        return None, ("wrong_version" if v not in (-1, model.SCHEMA_VERSION) else "malformed")
    if msg.v != model.SCHEMA_VERSION:
        return None, "wrong_version"
    return msg, ""


def decode_quote(raw: Any) -> tuple[model.Quote | None, str]:
    """One QuoteBatch item (JSON or msgpack, as its record was) -> (Quote, "") or (None, why)."""
    try:
        q = (_QUOTE if memoryview(raw)[0] == _OPEN_BRACE else _MP_QUOTE).decode(raw)
    except (msgspec.DecodeError, IndexError):
        return None, "malformed"
    if q.v != model.SCHEMA_VERSION:
        return None, "wrong_version"
    return q, ""


def unpack(value: bytes | None) -> tuple[list[Any], str]:
    """A record value -> (every message in it, decoded, in order) or ([], why): for
    tools and tests that read the topics without a KafkaBus."""
    msg, why = decode(value)
    if msg is None:
        return [], why
    if isinstance(msg, QuoteBatch):
        out = []
        for raw in msg.items:
            q, why = decode_quote(raw)
            if q is None:
                return [], why
            out.append(q)
        return out, ""
    if isinstance(msg, Batch):
        return list(msg.items), ""
    return [msg], ""


# ----------------------------------------------------------------------------- partitioning

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


# ----------------------------------------------------------------------------- config -> client kwargs


def client_kwargs(k: Any) -> dict[str, Any]:
    """aiokafka connection/security kwargs from ``[bus.kafka]``.

    Raises BusError for a misconfiguration; the password is resolved from
    ``env:VAR`` here and never stored anywhere that is logged or shown.
    """
    from arbtui.config import resolve_secret

    kw: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers.split(","),
                          "client_id": k.client_id, "security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        try:
            ctx = ssl.create_default_context(cafile=k.ssl_cafile or None)
            if k.ssl_certfile:
                ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile or None)
        except (OSError, ssl.SSLError) as e:
            raise BusError(f"kafka: bus.kafka.ssl_*: cannot load certificates: {e}") from None
        kw["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        if not k.sasl_mechanism:
            raise BusError(f"kafka: bus.kafka.sasl_mechanism must be set for {k.security_protocol}")
        password = resolve_secret(k.sasl_password)
        if k.sasl_password.startswith("env:") and not password:
            raise BusError(f"kafka: bus.kafka.sasl_password: environment variable "
                           f"{k.sasl_password[4:]} is not set")
        kw.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                  sasl_plain_password=password)
    return kw


def _missing_permission(err: BaseException, k: Any, topic: str = "") -> str | None:
    """Name the ACL a Kafka authorization error means, or None if it is not one."""
    from aiokafka import errors as ke

    if isinstance(err, ke.TopicAuthorizationFailedError):
        return f"Topic:{topic or '?'} (READ/WRITE/DESCRIBE)"
    if isinstance(err, ke.GroupAuthorizationFailedError):
        return f"READ on Group:{k.group_id}"
    if isinstance(err, ke.ClusterAuthorizationFailedError):
        return "Cluster (CREATE/DESCRIBE_CONFIGS)"
    name = type(err).__name__
    if "Authorization" in name or "Authentication" in name or "Sasl" in name:
        return f"{name}: {err}"
    return None


class _LogBudget:
    """At most ``burst`` log lines, refilled at ``rate`` per second: a flood of bad
    records must be visible without drowning the log."""

    def __init__(self, rate: float = 1.0, burst: float = 10.0) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class _QuoteInbox(Subscription):
    """A coalescing quote inbox (newest per venue+symbol) that holds QuoteBatch items
    undecoded and decodes them only when drained: at saturation most quotes are
    superseded in the inbox before the detector gets to them, and decoding them
    (the 10-level float lists especially) would be the consumer's biggest cost."""

    def __init__(self, *a: Any, on_bad: Callable[[str, Any], None], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._on_bad = on_bad

    def put_raw(self, keys: list[tuple[str, str]], items: list[Any]) -> None:
        if self.closed:
            return
        newest = dict(zip(keys, items))  # later items of a key replace earlier ones
        self.dropped += len(items) - len(newest)
        latest = self._latest
        for k, raw in newest.items():
            if k in latest:
                self.dropped += 1
                del latest[k]  # re-insert so arrival order stays roughly fair
            elif len(latest) >= self.maxsize:
                latest.pop(next(iter(latest)))
                self.dropped += 1
            latest[k] = raw
        self._event.set()

    def _decode_pending(self) -> None:
        latest = self._latest
        for k, m in list(latest.items()):
            if type(m) is msgspec.Raw:
                q, why = decode_quote(m)
                if q is None or (q.venue, q.symbol) != k:
                    del latest[k]
                    self._on_bad(why or "malformed", k)
                else:
                    latest[k] = q

    def drain(self) -> list[Any]:
        self._decode_pending()
        return super().drain()

    def discard_where(self, pred: Callable[[Any], bool]) -> int:
        self._decode_pending()  # the predicate reads message fields
        return super().discard_where(pred)


# ----------------------------------------------------------------------------- the bus


class KafkaBus(Bus):
    kind = "kafka"

    def __init__(self, bcfg: Any) -> None:
        self.bcfg = bcfg
        k = self.k = bcfg.kafka
        self.names = {QUOTES: k.topic_quotes, OPPORTUNITIES: k.topic_opportunities,
                      FILLS: k.topic_fills, STATUS: k.topic_status, WALLETS: k.topic_wallets}
        self.logical = {v: t for t, v in self.names.items()}
        #: Groupless consumers start here (ms since epoch) instead of at the end.
        self.start_ms: int | None = None
        self.state = "stopped"
        self.reason = ""
        self.auth: list[str] = []  # missing permissions seen, for the status line
        self.outages = 0
        self.down_since: float | None = None
        self.rebalances = 0
        self.log_resets = 0  # partitions re-read because the cluster lost their log
        self.assigned: list[int] = []  # quote partitions this process owns (group)
        self.published: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.records: dict[str, int] = {}  # Kafka records sent (several messages each)
        self.delivery_errors: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.consumed: dict[str, int] = {}
        self.bad_records: dict[str, int] = {}
        self.last_error = ""
        self.hop = Latency(maxlen=4096)  # quote pub_ts -> consumed here (feed -> detector hop)
        self._outq: deque[tuple[str, str, Any]] = deque()  # (topic, key, message)
        self._out_event = asyncio.Event()
        self._unacked = 0
        self._producer: Any = None
        self._group_subs: dict[str, list[Subscription]] = {}
        self._free_subs: dict[str, list[Subscription]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._connected = False
        self._stopping = False
        self._logb = _LogBudget()
        #: Set once the groupless consumer holds positions on every topic it reads
        #: (records published after this are seen; tests and the viewer wait on it).
        self.free_ready = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def start_from(self, ts_ms: int | None) -> None:
        """Viewer: read the topics from this wall-clock time (ms) instead of the end."""
        self.start_ms = ts_ms

    async def start(self) -> None:
        self._stopping = False
        # aiokafka logs every failed connect/fetch/metadata attempt at ERROR, ten a
        # second per client during an outage; the bus reports reachability itself,
        # once per transition, so theirs are thinned to one per message per 30 s.
        for name in _AIOKAFKA_LOGGERS:
            logging.getLogger(name).addFilter(_THIN_LOGS)
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
        from aiokafka import AIOKafkaProducer

        self.state, self.reason = "connecting", self.k.bootstrap_servers
        await self._ensure_topics()
        k = self.k
        try:
            producer = AIOKafkaProducer(
                **self._kw, acks=k.acks, linger_ms=k.linger_ms, max_batch_size=k.max_batch_size,
                compression_type=None if k.compression == "none" else k.compression,
                enable_idempotence=False, request_timeout_ms=10_000, partitioner=base_partitioner,
            )
        except RuntimeError as e:  # aiokafka: "Compression library for lz4 not found"
            raise BusError(f"kafka: bus.kafka.compression = {k.compression!r}: {e} "
                           "(pip install 'arbtui[lz4]')") from None
        try:
            await producer.start()
        except Exception as e:  # noqa: BLE001 - reported as one line
            await _quiet_stop(producer)
            raise BusError(self._explain(e, "start producer")) from None
        self._producer = producer
        self._connected = True
        self.state, self.reason = "up", ""
        self._spawn("sender", self._send_loop)
        self._spawn("health", self._health_loop)
        self._ensure_consumers()
        log.info("kafka: connected to %s (topics %s)", k.bootstrap_servers,
                 ", ".join(self.names.values()))

    def _explain(self, e: BaseException, what: str) -> str:
        perm = _missing_permission(e, self.k)
        if perm:
            return f"kafka {self.k.bootstrap_servers}: not authorized to {what}: needs {perm}"
        from aiokafka.errors import KafkaConnectionError

        name = type(e).__name__
        if isinstance(e, (KafkaConnectionError, TimeoutError, OSError)):
            return (f"kafka {self.k.bootstrap_servers}: cannot {what}: no broker answered "
                    f"({name}; check bus.kafka.bootstrap_servers and that the cluster is up)")
        msg = str(e).removeprefix(f"{name}: ") or name
        return f"kafka {self.k.bootstrap_servers}: cannot {what}: {name}: {msg}"

    async def _ensure_topics(self) -> None:
        """Create missing topics with the configured partitions/replication."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(**self._kw, request_timeout_ms=5000)
        try:
            try:
                await asyncio.wait_for(admin.start(), 10)
                existing = set(await asyncio.wait_for(admin.list_topics(), 10))
            except Exception as e:  # noqa: BLE001 - unreachable/unauthorized: one line
                raise BusError(self._explain(e, "connect")) from None
            missing = [t for t in self.names.values() if t not in existing]
            if not missing:
                return
            try:
                resp = await asyncio.wait_for(admin.create_topics(
                    [NewTopic(t, self.k.partitions, self.k.replication) for t in missing]), 15)
            except Exception as e:  # noqa: BLE001
                raise BusError(self._explain(e, f"create topics {', '.join(missing)}")) from None
            for topic, code, message in [(t[0], t[1], t[2] if len(t) > 2 else "")
                                         for t in resp.topic_errors]:
                if code in (0, 36):  # 36 TOPIC_ALREADY_EXISTS: another role won the race
                    continue
                if code in (29, 31):  # TOPIC_/CLUSTER_AUTHORIZATION_FAILED
                    need = f"CREATE on Topic:{topic} (or Cluster)"
                    self.auth.append(need)
                    raise BusError(f"kafka {self.k.bootstrap_servers}: topic {topic} is missing "
                                   f"and this principal may not create it: needs {need}")
                raise BusError(f"kafka {self.k.bootstrap_servers}: cannot create topic {topic}: "
                               f"error {code} {message or ''}".rstrip())
            log.info("kafka: created topics %s (%d partitions, replication %d)",
                     ", ".join(missing), self.k.partitions, self.k.replication)
        finally:
            await _quiet_stop(admin, "close")

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
                    perm = _missing_permission(e, self.k, self.k.topic_quotes)
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
        while (self._outq or self._unacked) and self._connected and self.state == "up" \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._stopping = True
        for t in self._tasks.values():
            t.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self._producer is not None:
            await _quiet_stop(self._producer)
            self._producer = None
        self._connected = False
        self.state = "stopped"
        for subs in (*self._group_subs.values(), *self._free_subs.values()):
            for s in subs:
                s.close()

    # ------------------------------------------------------------------ producing

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
        if type(msg) not in _PREFIX and not isinstance(msg, _WIRE):
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
        perm = _missing_permission(e, self.k, self.names.get(topic, topic))
        if perm:
            perm = perm.replace("(READ/WRITE/DESCRIBE)", "(WRITE)")
            self.state, self.reason = "unauthorized", f"needs {perm}"
            if perm not in self.auth:
                self.auth.append(perm)
        if self._logb.take():
            log.warning("kafka: delivery to %s failed: %s: %s", self.names.get(topic, topic),
                        type(e).__name__, e)

    # ------------------------------------------------------------------ consuming

    def subscribe(self, topic: str, name: str, *, maxsize: int | None = None,
                  coalesce: Callable[[Any], Hashable] | None = None,
                  wake: asyncio.Event | None = None) -> Subscription:
        if topic == QUOTES and coalesce is quote_key:
            sub: Subscription = _QuoteInbox(topic, name, maxsize or self.bcfg.queue_size,
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

    def _consumer(self, **extra: Any) -> Any:
        from aiokafka import AIOKafkaConsumer

        return AIOKafkaConsumer(
            **self._kw, enable_auto_commit=False, fetch_max_wait_ms=self.k.fetch_max_wait_ms,
            # Only reached when a position is out of range (retention, or a broker
            # that lost its log): then replay what the log still has rather than skip it.
            auto_offset_reset="earliest", **extra,
        )

    async def _free_loop(self) -> None:
        """All partitions of every groupless topic, one consumer, one fetch loop."""
        from aiokafka import TopicPartition

        c = self._consumer(group_id=None)
        await c.start()
        have: set[str] = set()
        last_ts: dict[Any, int] = {}
        paused = False
        try:
            while True:
                want = {self.names[t] for t in self._free_subs}
                if want != have:
                    await c.topics()  # refresh metadata so new topics' partitions are known
                    parts = {TopicPartition(t, p) for t in want
                             for p in (c.partitions_for_topic(t) or ())}
                    if not parts:
                        await asyncio.sleep(0.5)
                        continue
                    old = {tp: await c.position(tp) for tp in c.assignment()}
                    c.assign(sorted(parts))
                    for tp, pos in old.items():
                        if tp in parts:
                            c.seek(tp, pos)
                    await self._seek_start(c, [tp for tp in parts if tp not in old])
                    have = {tp.topic for tp in parts}
                    if have == want:
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
            await _quiet_stop(c)

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
                    log.warning("kafka: %s[%d] was recreated during the outage; reading it "
                                "from offset %d (was at %d)", tp.topic, tp.partition, end, pos)
                    c.seek(tp, end)
                continue
            if ot.timestamp > last_ts[tp] and ot.offset < pos:
                self.log_resets += 1
                log.warning("kafka: %s[%d] was recreated during the outage; re-reading it "
                            "from offset %d (was at %d)", tp.topic, tp.partition, ot.offset, pos)
                c.seek(tp, ot.offset)

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
            await _quiet_stop(c)

    def _reset_keys(self, moved: set[str], reason: str) -> None:
        for subs in self._group_subs.values():
            for s in subs:
                s.discard_where(lambda m: getattr(m, "symbol", None) in moved)
                if s.on_reset is not None:
                    try:
                        s.on_reset(moved, reason)
                    except Exception:  # the role's bug must not kill the consumer
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
                    n += 1
                    if lt == QUOTES:
                        if m.pub_ts_ns:
                            self.hop.add(now - m.pub_ts_ns)
                        if ks is not None:
                            ks.add(m.symbol)
                    for s in subs:
                        s.put(m)
            self.consumed[lt] = self.consumed.get(lt, 0) + n

    def _put_quotes(self, b: QuoteBatch, subs: Any, r: Any, ks: set[str] | None,
                    now: int) -> int:
        """One QuoteBatch record -> the quote subscriptions. Coalescing quote inboxes
        take the items undecoded (see _QuoteInbox); any other inbox gets every quote,
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
            if type(s) is _QuoteInbox:
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
                        await self._ensure_topics()
                    except BusError as e:
                        self.reason = str(e)
                if self.state in ("down", "connecting"):
                    log.warning("kafka: broker reachable again after %.1fs",
                                time.monotonic() - (self.down_since or time.monotonic()))
                    self.down_since = None
                    self.state, self.reason = "up", ""
            elif self.state != "down":
                if self.state == "up":
                    self.outages += 1
                self.down_since = time.monotonic()
                self.state, self.reason = "down", err
                log.warning("kafka: broker unreachable (%s)", err)
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
            "dropped": dict(self.dropped),
            "in_flight": len(self._outq) + self._unacked,
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
                                                      "delivered": s.delivered} for s in subs},
        }


_AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.fetcher",
                     "aiokafka.consumer.group_coordinator", "aiokafka.producer.sender",
                     "aiokafka.producer.producer", "aiokafka.consumer.consumer")


class _ThinLogs(logging.Filter):
    """Let each distinct message template through at most once per ``period`` seconds."""

    def __init__(self, period: float = 30.0) -> None:
        super().__init__()
        self.period = period
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if str(record.msg).startswith("Unable connect to"):
            # Startup prints its own one line; outages are reported by the health loop.
            self.suppressed += 1
            return False
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.period:
            self.suppressed += 1
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        return True


_THIN_LOGS = _ThinLogs()


async def _quiet_stop(obj: Any, meth: str = "stop") -> None:
    try:
        await asyncio.wait_for(getattr(obj, meth)(), 5)
    except Exception as e:  # noqa: BLE001 - closing after a failure; nothing left to do
        log.debug("kafka: %s.%s failed: %r", type(obj).__name__, meth, e)
