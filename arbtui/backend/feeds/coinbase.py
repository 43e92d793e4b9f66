"""Coinbase Advanced Trade ``level2`` (docs/protocols.md#coinbase).

- One channel per subscribe message (the venue rejects lists), ``level2`` and
  ``heartbeats``, sent within 5 s of connecting or the venue disconnects.
- Book frames arrive on channel ``l2_data``; asks are labelled ``offer``
  (cryptofeed filters snapshot asks on ``"ask"`` and loses them all).
- Any ``snapshot`` event replaces that product's book, wherever it appears.
- ``sequence_num`` is ONE counter per connection across every channel. A jump
  means some message was lost and nobody can tell which product it was for,
  so every level2 book on the connection goes RESYNC and level2 is
  re-subscribed (unsubscribe + subscribe gives fresh snapshots); cryptofeed
  never checks it.
- The first snapshot is ~5 MB (BTC-USD): ``max_frame`` is raised to 32 MiB.
  Frames are decoded into typed structs (about twice as fast as dicts, and a
  level of the wrong type rejects the whole message instead of half-applying
  it); a snapshot deeper than the book's depth cap only has its best ``depth``
  levels per side inserted, which keeps a 46,000-level load to tens of ms.
- ``heartbeats`` (1/s) keep quiet channels open; a ``heartbeat_counter`` that
  skips means the venue's stream to us stalled, counted as ``heartbeat_jumps``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED, BookSync
from arbtui.backend.feeds.timestamps import rfc3339_ns
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.coinbase")
_SPEC = venues.get("coinbase")

_decode = msgspec.json.decode
_encode = msgspec.json.encode

_SIDES = {"bid": True, "offer": False, "ask": False}
_Raw = msgspec.Raw


# gc=False: these hold only strings and lists, never cycles; skipping GC
# tracking makes decoding measurably cheaper at thousands of levels a second.
class _Level(msgspec.Struct, gc=False):
    # Named as Book.apply reads a level record.
    side: str
    px: str = msgspec.field(name="price_level")
    qty: str = msgspec.field(name="new_quantity")


class _L2Event(msgspec.Struct, gc=False):
    type: str
    product_id: str
    updates: list[_Level]


class _L2Frame(msgspec.Struct):
    """An ``l2_data`` frame decoded in one pass (nearly every frame we get).

    ``events`` is required and typed: anything else (other channels, a
    malformed event) fails here and takes the envelope path, whose error
    handling is the rule."""

    channel: str
    events: list[_L2Event]
    timestamp: str | None = None
    sequence_num: int | None = None


class _Envelope(msgspec.Struct):
    channel: str | None = None
    timestamp: str | None = None
    sequence_num: int | None = None
    events: msgspec.Raw = msgspec.Raw(b"null")
    type: str | None = None
    message: str | None = None


#: The one-event fast path in ``on_message``; off only in tests comparing it with ``_on_l2``.
FAST_L2 = True

_env_decoder = msgspec.json.Decoder(_Envelope)
_l2_decoder = msgspec.json.Decoder(list[_L2Event])
_l2_frame_decoder = msgspec.json.Decoder(_L2Frame)


def _px(lv: _Level) -> float:
    """Rank of a snapshot level for the depth cap. A corrupt level is refused
    here too, even one the cap would drop: the snapshot as a whole is suspect."""
    try:
        p = float(lv.px)
    except ValueError:
        p = -1.0
    if not 0.0 < p <= 1e15:  # also NaN
        raise BookError(f"invalid snapshot price {lv.px!r}")
    return p


@dataclass(slots=True, eq=False)
class CoinbaseSync(BookSync):
    #: When level2 was resubscribed for this product (monotonic s), until its snapshot.
    resub_at: float | None = None


class CoinbaseFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    #: The BTC-USD snapshot is one ~5 MB frame and grows with the book.
    max_frame = 32 * 2 ** 20
    keepalive_s = None  # liveness comes from the heartbeats channel, 1/s
    #: Heartbeats arrive every second; ten missing ones mean the stream is dead.
    stale_after_s = 10.0
    max_conn_life_s = None
    #: Unauthenticated messages are limited to 8/s per IP (Coinbase rate-limit page).
    send_rate = 4.0
    #: A resubscribed product whose fresh snapshot has not come by then: reconnect.
    resub_timeout_s: ClassVar[float] = 10.0
    sync_state: ClassVar[type[BookSync]] = CoinbaseSync
    #: The offline table is the registry's (``arbtui.venues``).

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        self._seq = -1
        self._hb = -1
        self._resub_pending: set[str] = set()
        self._resub_task: asyncio.Task | None = None

    # ------------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """Products list -> normalized BASE-QUOTE -> product_id (spot, not aliases, not disabled).

        ``BTC-USDC`` has ``alias: "BTC-USD"``: the venue serves the USD book under
        both names, so the alias is not a second book (and never an arbitrage pair).
        """
        doc = _decode(body)
        out: dict[str, str] = {}
        for p in doc.get("products", []) if isinstance(doc, dict) else []:
            if p.get("product_type", "SPOT") != "SPOT":
                continue
            if p.get("alias"):
                continue
            if p.get("is_disabled") or p.get("trading_disabled") or p.get("status") == "delisted":
                continue
            base, quote, pid = p.get("base_currency_id"), p.get("quote_currency_id"), p.get("product_id")
            if base and quote and pid:
                out[f"{base}-{quote}"] = pid
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Products subscribed to ``level2`` in the frames the client sent."""
        out: list[str] = []
        for m in cls.sent_objects(sent_frames):
            if m.get("type") != "subscribe":
                continue
            chans = [m.get("channel")] + list(m.get("channels") or [])
            if "level2" not in chans and "l2_data" not in chans:
                continue
            for pid in m.get("product_ids") or []:
                n = vsym_to_norm.get(pid)
                if n is not None and n not in out:
                    out.append(n)
        return out

    # ------------------------------------------------------------------ adapter API

    def _sub(self, kind: str, channel: str, pids: list[str]) -> str:
        return _encode({"type": kind, "product_ids": pids, "channel": channel}).decode()

    def subscribe_messages(self) -> list[str]:
        pids = [sb.vsym for sb in self.books.values()]
        if not pids:
            return []
        # Separate messages: Coinbase takes exactly one channel per subscribe.
        return [self._sub("subscribe", "heartbeats", pids), self._sub("subscribe", "level2", pids)]

    async def on_open(self) -> None:
        self._seq = -1  # sequence_num restarts on every connection
        self._hb = -1
        self._resub_pending.clear()
        self._resub_task = None

    async def resync_symbol(self, sb: SymbolBook) -> None:
        # The base already waited on the resync rate limiter.
        self._queue_resub([sb], limited=False)

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            msg = _l2_frame_decoder.decode(data)
        except msgspec.DecodeError:
            msg = None
        if msg is None or msg.channel != "l2_data":
            try:
                msg = _env_decoder.decode(data)
            except msgspec.DecodeError as e:  # also ValidationError: not an object, wrong types
                self.frame_error(f"json: {e}", data)
                return
        seq = msg.sequence_num
        if seq is not None:
            if self._seq >= 0 and seq != self._seq + 1:
                self.count("gaps")
                self._connection_gap(f"sequence_num {seq} after {self._seq}")
            self._seq = seq
        channel = msg.channel
        if channel == "l2_data":
            events = msg.events
            if FAST_L2 and events.__class__ is list and len(events) == 1:
                # ``_on_l2`` for the common frame: one update event of a SYNCED book
                # (no per-frame lists of touched books; same rules and counters).
                ev = events[0]
                sb = self.by_vsym.get(ev.product_id)
                if sb is not None and ev.type == "update" and sb.sync.phase is SYNCED:
                    book = sb.book
                    try:
                        book.apply(ev.updates, _SIDES)
                    except (KeyError, TypeError, BookError) as e:
                        self._invalidate(sb)
                        self.frame_error(f"bad level: {e!r}", data, sb)
                        return
                    if book.top_dirty or sb.last_top is None:
                        ts = msg.timestamp
                        self.publish(sb, recv_ns, rfc3339_ns(ts) if ts else 0, self._seq)
                    else:
                        sb.last_update_ns = recv_ns
                    return
            self._on_l2(msg, recv_ns, data)
        elif channel == "heartbeats":
            self._on_heartbeat(msg, data)
        elif channel == "subscriptions":
            self.count("sub_acks")
        elif msg.type == "error":
            self.count("venue_errors")
            log.warning("coinbase: venue error: %s", msg.message)
        elif channel is None:
            self.frame_error("no channel", data)
        else:
            self.count("ignored")

    # ------------------------------------------------------------------ level2

    def _on_l2(self, msg: _L2Frame | _Envelope, recv_ns: int, data) -> None:
        events = msg.events
        if events.__class__ is _Raw:  # the one-pass decode refused this frame
            try:
                events = _l2_decoder.decode(events)
            except msgspec.DecodeError as e:
                # The message is lost as surely as a skipped sequence_num, and which
                # product it was for cannot be trusted either: resync every book.
                self.frame_error(f"l2_data: {e}", data)
                self._connection_gap("undecodable l2_data message")
                return
        touched: list[SymbolBook] = []
        by_vsym = self.by_vsym
        for ev in events:
            sb = by_vsym.get(ev.product_id)
            if sb is None:
                self.count("unknown_symbol")
                continue
            if ev.type == "update":
                if sb.sync.phase is not SYNCED:
                    self.count("updates_before_snapshot")  # legal right after (re)subscribing
                    continue
                book = sb.book
                try:
                    book.apply(ev.updates, _SIDES)
                except (KeyError, TypeError, BookError) as e:
                    # Part of the message is applied: the book is no longer the venue's.
                    self._invalidate(sb)
                    self.frame_error(f"bad level: {e!r}", data, sb)
                    continue
                if sb not in touched:
                    touched.append(sb)
            elif ev.type == "snapshot":
                if self._load_snapshot(sb, ev.updates, data) and sb not in touched:
                    touched.append(sb)
            else:
                self.frame_error(f"unknown event type {ev.type!r}", data)
        venue_ns = -1
        for sb in touched:
            if sb.book.top_dirty or sb.last_top is None:
                if venue_ns < 0:  # it only goes into a quote: most frames never parse it
                    ts = msg.timestamp
                    venue_ns = rfc3339_ns(ts) if ts else 0
                self.publish(sb, recv_ns, venue_ns, self._seq)
            else:
                # Every change was below the quoted depth: all publish would do is this.
                sb.last_update_ns = recv_ns

    def _load_snapshot(self, sb: SymbolBook, ups: list[_Level], data) -> bool:
        book = sb.book
        book.clear()
        d = book.depth
        try:
            bids = [lv for lv in ups if _SIDES[lv.side]]
            asks = [lv for lv in ups if not _SIDES[lv.side]]
            # Levels past the depth cap would be inserted only to be truncated.
            if len(bids) > d:
                bids = heapq.nlargest(d, bids, key=_px)
            if len(asks) > d:
                asks = heapq.nsmallest(d, asks, key=_px)
            book.apply(bids, _SIDES)  # also caps the depth
            book.apply(asks, _SIDES)
        except (KeyError, TypeError, BookError) as e:
            self._invalidate(sb)
            self.frame_error(f"bad snapshot level: {e!r}", data, sb)
            return False
        book.truncate()
        self.count("snapshots")
        sb.sync.phase = SYNCED
        sb.sync.resub_at = None
        self.set_state(sb, BookState.LIVE, "")
        return True

    def _invalidate(self, sb: SymbolBook) -> None:
        sb.book.clear()
        sb.last_top = None
        sb.sync.phase = AWAIT_SNAPSHOT

    def resync(self, sb: SymbolBook, reason: str) -> None:
        # Whatever the cause (publish finding the book crossed, a bad frame),
        # only a fresh snapshot is trusted again: drop the book and its updates now.
        self._invalidate(sb)
        super().resync(sb, reason)

    # ------------------------------------------------------------------ gaps and resubscribe

    def _connection_gap(self, reason: str) -> None:
        """A lost message on this connection: every level2 book may be wrong."""
        for sb in self.books.values():
            self.count("resyncs")
            self._invalidate(sb)
            self.set_state(sb, BookState.RESYNC, f"gap: {reason}")
        self._queue_resub(list(self.books.values()), limited=True)

    def _queue_resub(self, sbs: list[SymbolBook], limited: bool) -> None:
        for sb in sbs:
            self._invalidate(sb)
            self._resub_pending.add(sb.vsym)
        if self._resub_task is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # replay without a loop: nothing to send to
        self._resub_task = self.spawn(self._flush_resub(limited))

    async def _flush_resub(self, limited: bool) -> None:
        try:
            if limited:
                await self._resync_limiter.take()
            await asyncio.sleep(0)  # let one message's worth of resyncs collect
            pids = sorted(self._resub_pending)
            self._resub_pending.clear()
            if pids:
                self.count("resubscribes")
                self.send(self._sub("unsubscribe", "level2", pids))
                self.send(self._sub("subscribe", "level2", pids))
                now = self.clock.monotonic()
                for pid in pids:
                    sb = self.by_vsym.get(pid)
                    if sb is not None:
                        sb.sync.resub_at = now
        finally:
            self._resub_task = None

    # ------------------------------------------------------------------ heartbeats

    def _on_heartbeat(self, msg: _Envelope, data) -> None:
        try:
            n = _decode(msg.events)[0]["heartbeat_counter"]
        except (msgspec.DecodeError, KeyError, IndexError, TypeError):
            self.frame_error("heartbeat without counter", data)
            return
        if not isinstance(n, int):
            self.frame_error("heartbeat counter is not an integer", data)
            return
        self.count("heartbeats")
        if self._hb >= 0 and n != self._hb + 1:
            self.count("heartbeat_jumps")
            log.info("coinbase: heartbeat_counter %d after %d", n, self._hb)
        self._hb = n
        self._check_resubscribed()

    def _check_resubscribed(self) -> None:
        """Heartbeats tick once a second: a resubscribe that never brought its
        snapshot would leave the book in RESYNC forever, so reconnect instead."""
        now = self.clock.monotonic()
        for sb in self.books.values():
            t = sb.sync.resub_at
            if t is not None and sb.sync.phase is not SYNCED and now - t > self.resub_timeout_s:
                self.count("resubscribe_timeouts")
                for b in self.books.values():
                    b.sync.resub_at = None
                self.request_reconnect(f"no level2 snapshot {now - t:.0f}s after resubscribing {sb.vsym}")
                return
