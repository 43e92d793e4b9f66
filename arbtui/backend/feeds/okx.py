"""OKX v5 public ``books`` channel (docs/protocols.md#okx).

Book rules, per instrument:

- ``action: snapshot`` (``prevSeqId == -1``) replaces the book.
- Each ``update`` must chain: its ``prevSeqId`` equals the ``seqId`` we hold.
  That single rule also covers OKX's two documented exceptions: the idle
  keepalive (empty sides, ``prevSeqId == seqId``) and the post-maintenance
  reset (``seqId < prevSeqId``) are both accepted only when ``prevSeqId`` is our
  last ``seqId``. Anything else is a gap: unsubscribe + subscribe that one
  instrument and wait for its fresh snapshot.
- ``checksum`` has been 0 since 2026-06-23 and must never be validated then;
  a non-zero checksum (2022-era data, or if OKX ever revives it) is verified
  with the CRC32 rule in ``book.okx_checksum`` and a mismatch resyncs.
- 2022-era frames carry no ``seqId`` at all: a book whose snapshot had none is
  checked by checksum only. A book whose snapshot had one must keep having one.

Only subscribed *spot* instruments feed books. Futures/swaps on the same
connection (``BTC-USD-220527``, ``UNI-USD-SWAP``) are ignored: their ``instId``
never equals a spot ``BASE-QUOTE`` instId, and the symbol map is built from
``instType=SPOT`` only.

Crossed books: OKX documents that ask < bid is possible in pre-open / call
auctions (new listings). A crossed book is therefore never published (it
leaves LIVE at once, so the detector drops it), but it is given
``crossed_grace_s`` to uncross by itself before it is treated as a desync and
resynced. Outside auctions the grace costs nothing: the book is withheld, not
trusted, during it.

OKX announced that ``books`` will stop sending the in-band snapshot. If a
book gets updates but no snapshot for ``snapshot_wait_s``, it is synced the
Binance way instead: updates are buffered (bounded), ``/api/v5/market/books``
is fetched, buffered updates with ``seqId <= snapshot seqId`` are dropped, the
first one kept must bridge it (``prevSeqId <= snap < seqId``), then the chain
rule applies (the shared bridge, ``bridge.py``). Whether the REST answer carries
``seqId`` is not clearly documented: a REST
snapshot without it cannot be bridged, so the book stays SYNCING (counted as
``rest_snapshot_without_seq``) rather than go LIVE on a guess.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError, okx_checksum
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, BRIDGING, NEW, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.okx")
_SPEC = venues.get("okx")
_decode = msgspec.json.decode

_CHANNEL = "books"


class _Arg(msgspec.Struct, gc=False):
    channel: str
    instId: str


class _Row(msgspec.Struct, gc=False):
    """One ``data[]`` element of a ``books`` update in the documented shape
    (levels ``[px, qty, "0", n]`` as strings, integer ids, ``ts`` as text)."""

    asks: list[list[str]]
    bids: list[list[str]]
    ts: str | None = None
    checksum: int | None = None
    prevSeqId: int | None = None
    seqId: int | None = None


class _Books(msgspec.Struct, gc=False):
    arg: _Arg
    action: str
    data: list[_Row]


#: Nearly every frame is a one-row ``books`` update of a synced book. Decoded into
#: structs in one pass it skips the generic path's dicts, ``get``s and ``isinstance``
#: checks. Any frame this refuses (another shape, another channel, a snapshot, a
#: book not synced, ids missing) takes the generic path, whose checks and error
#: reports are the rule (test_feed_okx checks both paths agree).
_books_decoder = msgspec.json.Decoder(_Books)
#: Off only in tests comparing the two paths.
TYPED_BOOKS = True
#: ``_finish``'s short way for a LIVE, uncrossed book; off only in tests comparing paths.
FAST_FINISH = True
_LIVE = BookState.LIVE


@dataclass(slots=True, eq=False)
class OkxSync(BookSync):
    """``BookSync`` plus OKX's chain mode and REST-bridge bookkeeping. ``pending``
    holds updates as ``Pending(prevSeqId, seqId, row)`` while no snapshot came."""

    #: The snapshot carried a ``seqId``: every update must chain to it (2022-era
    #: data has none and is checked by checksum only).
    chained: bool = False
    #: Receive time of the first buffered update (the REST fallback's clock).
    first_update_ns: int | None = None
    #: Names the REST fetch in flight (phase BRIDGING), so a stale answer is ignored.
    rest_token: object | None = None


class OkxFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    #: A 400-level snapshot is ~30 KB; 4 MiB leaves room for many instruments per frame.
    max_frame: ClassVar[int] = 2 ** 22
    #: How often the watchdog asks for a keepalive; ``keepalive_message`` decides.
    keepalive_s: ClassVar[float | None] = 5.0
    #: OKX drops a connection after 30 s without traffic; ping (text) when idle this long.
    ping_idle_s: ClassVar[float] = 20.0
    #: No frame at all (not even ``pong``) for this long -> STALE + reconnect.
    stale_after_s: ClassVar[float] = 30.0
    #: OKX sends an empty keepalive update after ~60 s without depth change, so a
    #: book silent for longer than this (while the connection still answers pings)
    #: has lost its subscription: resync that book.
    book_stale_s: ClassVar[float] = 75.0
    send_rate: ClassVar[float] = 5.0
    #: 480 subscribe/unsubscribe ops per hour per connection; past this many a
    #: resync reconnects instead (a new connection has a fresh budget).
    ops_per_hour: ClassVar[int] = 400
    #: Checked by our own crossed logic, never by base ``publish`` (see module doc).
    allow_crossed: ClassVar[bool] = True
    crossed_grace_s: ClassVar[float] = 3.0
    #: Updates but no in-band snapshot for this long -> REST snapshot + bridge.
    snapshot_wait_s: ClassVar[float] = 3.0
    #: Updates buffered per book while waiting for a snapshot.
    max_buffer: ClassVar[int] = 5000
    #: OKX allows < 64 KB of channel args per request.
    max_request_chars: ClassVar[int] = 60_000
    sync_state: ClassVar[type[BookSync]] = OkxSync
    #: The offline table is the registry's (``arbtui.venues``).

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for sb in self.books.values():
            # The checksum covers the top 25 levels; a smaller cap would break it.
            sb.book.depth = max(sb.book.depth, 25)
        self._ops: deque[float] = deque()
        # The typed path inlines ``_apply``'s update rules: a subclass with its own
        # keeps the generic path.
        cls = type(self)
        self._typed_books = cls._apply is OkxFeed._apply and cls._finish is OkxFeed._finish

    # ------------------------------------------------------------ symbols

    @classmethod
    def rest_books_url(cls, rest_base: str, inst_id: str, sz: int = 400) -> str:
        return f"{(rest_base or cls.default_rest).rstrip('/')}/api/v5/market/books?instId={inst_id}&sz={sz}"

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``instType=SPOT`` list -> {``BASE-QUOTE``: instId} from ``baseCcy``/``quoteCcy``."""
        out: dict[str, str] = {}
        doc = json.loads(body)
        rows = doc.get("data") if isinstance(doc, dict) else None
        for r in rows or []:
            if not isinstance(r, dict) or r.get("instType") != "SPOT":
                continue
            base, quote, inst = r.get("baseCcy"), r.get("quoteCcy"), r.get("instId")
            if not (base and quote and inst):
                continue
            if r.get("state") not in (None, "", "live"):
                continue  # suspended / preopen / test instruments have no continuous book
            out[f"{base.upper()}-{quote.upper()}"] = inst
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Normalized symbols whose ``books`` channel a recorded session subscribed."""
        out: list[str] = []
        for m in cls.sent_objects(sent_frames):
            if m.get("op") != "subscribe":
                continue
            for a in m.get("args") or []:
                if isinstance(a, dict) and a.get("channel") == _CHANNEL:
                    norm = vsym_to_norm.get(a.get("instId"))
                    if norm and norm not in out:
                        out.append(norm)
        return out

    # ------------------------------------------------------------ outbound

    def _args(self, sbs: list[SymbolBook]) -> list[dict[str, str]]:
        return [{"channel": _CHANNEL, "instId": sb.vsym} for sb in sbs]

    def _requests(self, op: str, sbs: list[SymbolBook]) -> list[str]:
        """One request per batch of distinct args (cryptofeed re-sends an
        accumulating list, burning the 480 ops/hour budget)."""
        out: list[str] = []
        batch: list[dict[str, str]] = []
        size = 0
        for a in self._args(sbs):
            n = len(json.dumps(a)) + 1
            if batch and size + n > self.max_request_chars:
                out.append(json.dumps({"op": op, "args": batch}, separators=(",", ":")))
                batch, size = [], 0
            batch.append(a)
            size += n
        if batch:
            out.append(json.dumps({"op": op, "args": batch}, separators=(",", ":")))
        return out

    def subscribe_messages(self) -> list[str]:
        self._ops.clear()  # the ops budget is per connection
        if len(self.books) > 30:
            log.warning("okx: %d books channels on one connection; OKX recommends < 30", len(self.books))
        msgs = self._requests("subscribe", list(self.books.values()))
        self._note_ops(len(msgs))
        return msgs

    def _note_ops(self, n: int) -> None:
        now = self.clock.monotonic()
        for _ in range(n):
            self._ops.append(now)

    def _ops_left(self) -> int:
        cutoff = self.clock.monotonic() - 3600.0
        while self._ops and self._ops[0] < cutoff:
            self._ops.popleft()
        return self.ops_per_hour - len(self._ops)

    def keepalive_message(self) -> str | None:
        # The watchdog calls this every ``keepalive_s``; it is also where books
        # that went silent on a live connection are noticed (see book_stale_s).
        now_ns = self.clock_ns()
        for sb in self.books.values():
            if (sb.state is BookState.LIVE and sb.last_update_ns
                    and (now_ns - sb.last_update_ns) / 1e9 > self.book_stale_s):
                self.count("stale_books")
                self.set_state(sb, BookState.STALE, f"no book data for {self.book_stale_s:.0f}s")
                self._resync(sb, "book silent")
        idle = (now_ns - self.last_msg_ns) / 1e9 if self.last_msg_ns else 0.0
        if idle >= self.ping_idle_s:
            self.count("pings")
            return "ping"  # plain text, not JSON (OKX rule)
        return None

    async def resync_symbol(self, sb: SymbolBook) -> None:
        """Unsubscribe + subscribe this instId only; its next snapshot resets it."""
        self._unsync(sb)
        if self._ops_left() < 2:
            self.count("ops_budget_reconnects")
            self.request_reconnect(f"resync {sb.symbol}: subscribe-ops budget spent")
            return
        self._note_ops(2)
        self.count("resubscribes")
        for m in self._requests("unsubscribe", [sb]) + self._requests("subscribe", [sb]):
            self.send(m)

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        if (TYPED_BOOKS and self._typed_books and data.__class__ is str
                and '"update"' in data):
            try:
                m = _books_decoder.decode(data)
            except msgspec.DecodeError:  # also ValidationError: another shape
                m = None
            if m is not None and self._on_update_typed(m, recv_ns, data):
                return
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if data == "pong":
            self.count("pongs")
            return
        try:
            m = _decode(data)  # msgspec: same types as json.loads, ~2x faster per frame
        except ValueError:  # msgspec.DecodeError, and bytes that are not UTF-8
            self.frame_error("not JSON", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        if "event" in m:
            self._on_event(m, data)
            return
        arg = m.get("arg")
        if not isinstance(arg, dict):
            self.frame_error("no arg", data)
            return
        if arg.get("channel") != _CHANNEL:
            if not self.on_channel(arg, m, recv_ns, data):
                self.count("ignored_msgs")  # tickers/trades sharing the connection
            return
        sb = self.by_vsym.get(arg.get("instId"))
        if sb is None:
            self.count("ignored_msgs")  # not one of our spot books (futures, swaps)
            return
        action = m.get("action")
        rows = m.get("data")
        if action not in ("snapshot", "update") or not isinstance(rows, list) or not rows:
            self._bad(sb, "books frame without action/data", data)
            return
        ts_ns = 0
        seq = -1
        for row in rows:
            if not self._apply(sb, action, row, data, recv_ns):
                return  # resync already requested
            try:
                ts_ns = int(row.get("ts") or 0) * 1_000_000
            except (TypeError, ValueError):
                ts_ns = 0
            seq = sb.seq
        self._finish(sb, recv_ns, ts_ns, seq)

    def _on_update_typed(self, m: _Books, recv_ns: int, data: str) -> bool:
        """``on_message`` + ``_apply`` + ``_finish`` for a typed one-row ``books``
        update of a SYNCED book, the same rules in the same order; False: the
        generic path must handle this frame."""
        arg = m.arg
        if arg.channel != _CHANNEL or m.action != "update" or len(m.data) != 1:
            return False
        sb = self.by_vsym.get(arg.instId)
        if sb is None:
            return False
        x = sb.sync
        if x.phase is not SYNCED:
            return False
        row = m.data[0]
        seq = row.seqId
        if x.chained:
            prev = row.prevSeqId
            if seq is None or prev is None:
                return False  # the generic path reports it
            if prev != sb.seq:
                self.count("gaps")
                self._resync(sb, f"seq gap: prevSeqId {prev} != last seqId {sb.seq}")
                return True
            if seq < prev:
                self.count("seq_resets")
            elif seq == prev:
                self.count("keepalive_updates")
        book = sb.book
        try:
            book.apply_sides(row.bids, row.asks)
        except (BookError, IndexError, TypeError, ValueError) as e:
            self._bad(sb, f"bad level: {e}", data)
            return True
        if x.chained:
            sb.seq = seq
        cs = row.checksum
        if cs is not None and cs != 0:
            if okx_checksum(book) != cs:
                self.count("checksum_fail")
                self._resync(sb, "checksum mismatch")
                return True
            self.count("checksum_ok")
        try:
            ts_ns = int(row.ts or 0) * 1_000_000
        except ValueError:
            ts_ns = 0
        self._finish(sb, recv_ns, ts_ns, sb.seq)
        return True

    def on_channel(self, arg: dict, m: dict, recv_ns: int, data: str) -> bool:
        """A push on a channel other than ``books`` (the swap adapter's funding-rate,
        mark-price, index-tickers); True when handled."""
        return False

    def _on_event(self, m: dict, data: str) -> None:
        ev = m.get("event")
        if ev in ("subscribe", "unsubscribe"):
            self.count(f"{ev}_acks")
        elif ev == "error":
            self.count("venue_errors")
            log.warning("okx: venue error %s: %s", m.get("code"), m.get("msg"))
            # Errors carry no reliable arg; show them on every book still waiting
            # (e.g. 60018: an instId the venue does not list) so SYNCING says why.
            for sb in self.books.values():
                if sb.sync.phase is not SYNCED:
                    self.set_state(sb, sb.state, f"venue error {m.get('code')}: {str(m.get('msg'))[:80]}")
        elif ev == "notice":
            # e.g. 64008 "connection will soon be closed for a service upgrade":
            # reconnect now rather than lose data when the venue cuts us.
            self.count("notices")
            self.request_reconnect(f"venue notice {m.get('code')}: {m.get('msg')}")
        else:
            self.count("ignored_msgs")

    def _apply(self, sb: SymbolBook, action: str, row: Any, data: str, recv_ns: int = 0) -> bool:
        """Apply one ``data[]`` element. False if the book was sent to resync."""
        if not isinstance(row, dict):
            self._bad(sb, "data row not an object", data)
            return False
        bids, asks = row.get("bids"), row.get("asks")
        if not isinstance(bids, list) or not isinstance(asks, list):
            self._bad(sb, "bids/asks missing", data)
            return False
        seq, prev = row.get("seqId"), row.get("prevSeqId")
        x = sb.sync
        book = sb.book
        if action == "snapshot":
            try:
                book.load(bids, asks)
            except (BookError, IndexError, TypeError, ValueError) as e:
                self._bad(sb, f"bad snapshot level: {e}", data)
                return False
            # An in-band snapshot supersedes any REST sync under way.
            sb.sync = x = OkxSync(phase=SYNCED, chained=isinstance(seq, int),
                                  crossed_since=x.crossed_since)
            sb.seq = seq if isinstance(seq, int) else -1
            self.count("snapshots")
        else:
            if x.phase is not SYNCED:
                # Before the first snapshot of a (re)subscription: old-subscription
                # leftovers, or OKX's announced snapshot-less mode (module doc).
                self.count("updates_before_snapshot")
                self._buffer(sb, row, seq, prev, recv_ns)
                return True
            if x.chained:
                if not isinstance(seq, int) or not isinstance(prev, int):
                    self._bad(sb, "update without seqId/prevSeqId", data)
                    return False
                if prev != sb.seq:
                    self.count("gaps")
                    self._resync(sb, f"seq gap: prevSeqId {prev} != last seqId {sb.seq}")
                    return False
                if seq < prev:
                    self.count("seq_resets")  # post-maintenance reset, linked to our last id
                elif seq == prev:
                    self.count("keepalive_updates")
            try:
                book.apply_sides(bids, asks)
            except (BookError, IndexError, TypeError, ValueError) as e:
                self._bad(sb, f"bad level: {e}", data)
                return False
            if x.chained:
                sb.seq = seq
        cs = row.get("checksum")
        if isinstance(cs, int) and cs != 0:
            # Only a non-zero checksum is meaningful: OKX sends 0 since 2026-06-23.
            if okx_checksum(book) != cs:
                self.count("checksum_fail")
                self._resync(sb, "checksum mismatch")
                return False
            self.count("checksum_ok")
        return True

    # ------------------------------------------------------------ REST sync

    def _buffer(self, sb: SymbolBook, row: dict, seq: Any, prev: Any, recv_ns: int) -> None:
        if not isinstance(seq, int) or not isinstance(prev, int):
            return  # 2022-style frames cannot be bridged to a REST snapshot
        x = sb.sync
        if bridge.push(x.pending, bridge.Pending(prev, seq, row), self.max_buffer):
            self.count("buffer_overflows")
        if x.first_update_ns is None:
            x.first_update_ns = recv_ns
        if x.rest_token is not None or (recv_ns - x.first_update_ns) / 1e9 < self.snapshot_wait_s:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # synchronous replay without a loop: stay SYNCING, visibly
        x.rest_token = token = object()
        x.phase = BRIDGING
        self.spawn(self._rest_snapshot(sb, token))

    async def _rest_snapshot(self, sb: SymbolBook, token: object) -> None:
        self.count("rest_snapshot_requests")
        try:
            body = await self.http_get(self.rest_books_url(self.rest_url, sb.vsym))
            d = json.loads(body)["data"][0]
            bids, asks, snap_seq = d["bids"], d["asks"], d.get("seqId")
        except Exception as e:  # noqa: BLE001 - a failed fetch is retried on a later update
            self.count("rest_errors")
            log.warning("okx: REST book for %s failed: %r", sb.vsym, e)
            x = sb.sync
            if x.rest_token is token:
                x.rest_token = None
                x.phase = NEW
                x.first_update_ns = self.clock_ns()
            return
        x = sb.sync
        if x.rest_token is not token or x.phase is SYNCED:
            return  # resynced meanwhile, or an in-band snapshot came after all
        if not isinstance(snap_seq, int):
            self.count("rest_snapshot_without_seq")
            self.set_state(sb, sb.state, "REST snapshot has no seqId: cannot bridge")
            return  # keep the token: do not hammer REST with the same useless answer
        plan = bridge.bridge(snap_seq, x.pending, exact=True)
        if plan.outcome is bridge.Outcome.TOO_OLD:
            # Older than the first update kept (or a hole right at it): refetch
            # on a later update; a newer snapshot bridges it.
            self.count("rest_snapshot_too_old")
            x.rest_token = None
            x.phase = NEW
            return
        if plan.outcome is bridge.Outcome.GAP:
            p = plan.kept[plan.gap_at]
            self.count("gaps")
            self._resync(sb, f"seq gap in buffer: prevSeqId {p.first} != "
                             f"{plan.kept[plan.gap_at - 1].last}")
            return
        book = sb.book
        try:
            book.load(bids, asks)
            for p in plan.kept:
                book.apply_sides(p.msg["bids"], p.msg["asks"])
        except (BookError, IndexError, TypeError, ValueError, KeyError) as e:
            self._bad(sb, f"bad REST/buffered level: {e}", body)
            return
        ts = plan.kept[-1].msg.get("ts") if plan.kept else d.get("ts")
        sb.sync = OkxSync(phase=SYNCED, chained=True)
        sb.seq = plan.kept[-1].last if plan.kept else snap_seq
        self.count("rest_snapshots")
        try:
            ts_ns = int(ts or 0) * 1_000_000
        except (TypeError, ValueError):
            ts_ns = 0
        self._finish(sb, self.clock_ns(), ts_ns, sb.seq)

    # ------------------------------------------------------------ state

    def _unsync(self, sb: SymbolBook) -> None:
        sb.book.clear()
        sb.seq = -1
        sb.sync = OkxSync(phase=AWAIT_SNAPSHOT)
        sb.last_top = None

    def _resync(self, sb: SymbolBook, reason: str) -> None:
        # Drop the book at once so later frames of the broken stream are ignored
        # (and not counted as more gaps) until the fresh snapshot arrives.
        self._unsync(sb)
        self.resync(sb, reason)

    def _bad(self, sb: SymbolBook, reason: str, data: str) -> None:
        self._unsync(sb)
        self.frame_error(reason, data, sb)

    def _finish(self, sb: SymbolBook, recv_ns: int, ts_ns: int, seq: int) -> None:
        """After a WHOLE message: crossed check, LIVE transition, publish."""
        x = sb.sync
        if x.phase is not SYNCED:
            sb.last_update_ns = recv_ns
            return
        if FAST_FINISH and x.crossed_since is None and sb.state is _LIVE \
                and not sb.book.crossed():
            # The common message: a LIVE book that was not withheld and is not crossed
            # now, where withhold_crossed would only say so (one call less a frame).
            self.publish(sb, recv_ns, ts_ns, seq)
            return
        crossed = self.withhold_crossed(sb, recv_ns, "crossed book withheld (call auction?)")
        if crossed == "desync":
            self._resync(sb, "crossed book")
        if crossed:
            return
        if sb.state is not BookState.LIVE:
            self.set_state(sb, BookState.LIVE, "in sync")
        self.publish(sb, recv_ns, ts_ns, seq)
