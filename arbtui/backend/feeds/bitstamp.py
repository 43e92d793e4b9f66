"""Bitstamp WebSocket API v2: ``order_book_<pair>`` live, ``diff_order_book_<pair>``
read too (docs/protocols.md#bitstamp).

Bitstamp offers two book channels. ``diff_order_book_<pair>`` sends changes
with no sequence number: its only rule is "apply the diffs whose
``microtimestamp`` is after the REST snapshot's", and a lost diff can never be
seen. ``order_book_<pair>`` sends the whole top 100 of each side on every
change. Live, this adapter subscribes ``order_book_``: each message replaces
the book, so a lost message is healed by the next one and nothing needs
bridging; 100 levels are plenty for arbitrage sizing.

What the wire does let us check is order: within one channel the
``microtimestamp`` must increase. A message at or before the newest one seen
means the stream is out of order: ``seq_regressions``, the book leaves LIVE
(RESYNC) and only a message newer than everything seen brings it back.

Recorded sessions of the diff channel (cryptofeed records that one) are
replayed by Bitstamp's own rule: buffer the diffs, take the REST book
(``/api/v2/order_book/<pair>/``, which carries its ``microtimestamp``), drop
the diffs at or before it, apply the rest in order. Live, that mode is never
chosen, because a lost diff would go unseen.

Keepalive: the client sends ``bts:heartbeat`` (answered the same). The venue
asks clients to leave with ``bts:request_reconnect`` (maintenance): we do.
Recordings of the Pusher-era v1 API (``data`` a JSON string) are refused by
name, never misread.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.bitstamp")
_SPEC = venues.get("bitstamp")
_decode = msgspec.json.decode

_FULL = "order_book_"
_DIFF = "diff_order_book_"
_BAD = (BookError, TypeError, ValueError, IndexError, KeyError)


@dataclass(slots=True, eq=False)
class BitstampSync(BookSync):
    """``BookSync`` plus the order check and, on the diff channel, the REST book."""

    #: Newest microtimestamp seen on this book's channel. A resync keeps it (the
    #: order rule spans the connection); a reconnect starts a fresh one.
    newest: int = -1
    #: Diff channel: the REST book's microtimestamp (-1: none yet) and its fetch.
    snap_mts: int = -1
    task: asyncio.Task | None = None
    #: Diff channel: (microtimestamp, diff) received before the REST book.
    diffs: list = field(default_factory=list)


class BitstampFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_depth: ClassVar[int | None] = 100
    max_frame: ClassVar[int] = 2 ** 22
    keepalive_s: ClassVar[float | None] = 10.0
    #: Heartbeats are answered, so silence this long is a dead link.
    stale_after_s: ClassVar[float] = 30.0
    #: A channel the venue silently stopped serving (the socket still answers
    #: heartbeats) cannot be told from a quiet market; an hourly reconnect
    #: re-subscribes every book and bounds how long that can last.
    max_conn_life_s: ClassVar[float | None] = 3600.0
    send_rate: ClassVar[float] = 10.0
    #: Diffs buffered per book while its REST book is fetched (diff channel).
    max_buffer: ClassVar[int] = 5000
    sync_state: ClassVar[type[BookSync]] = BitstampSync

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        self.by_channel: dict[str, tuple[SymbolBook, bool]] = {}
        for sb in self.books.values():
            p = sb.vsym.lower()
            self.by_channel[_FULL + p] = (sb, False)
            self.by_channel[_DIFF + p] = (sb, True)

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``trading-pairs-info`` -> {BASE-QUOTE: PAIR}; ``name`` is ``BTC/USD``."""
        out: dict[str, str] = {}
        for r in json.loads(body):
            if not isinstance(r, dict) or r.get("trading") not in (None, "Enabled"):
                continue
            name, url_sym = r.get("name"), r.get("url_symbol")
            base, _, quote = (name or "").partition("/")
            if base and quote and url_sym:
                out[f"{base.upper()}-{quote.upper()}"] = url_sym.upper()
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        out: list[str] = []
        other = ""
        for m in cls.sent_objects(sent_frames):
            d = m.get("data")
            ch = d.get("channel") if isinstance(d, dict) else None
            if m.get("event") == "pusher:subscribe":
                other = "Pusher-era v1 API"
            if m.get("event") != "bts:subscribe" or not isinstance(ch, str):
                continue
            pair = ch[len(_DIFF):] if ch.startswith(_DIFF) else (
                ch[len(_FULL):] if ch.startswith(_FULL) else None)
            n = vsym_to_norm.get(pair.upper()) if pair else None
            if n and n not in out:
                out.append(n)
            elif pair is None and "order_book" in ch:
                other = ch.rpartition("_")[0] + "_<pair>"
        if not out and other:
            raise ValueError(f"Bitstamp {other} recordings are not spoken here "
                             f"(only {_FULL}<pair> and {_DIFF}<pair>)")
        return out

    # ------------------------------------------------------------ outbound

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"event": "bts:subscribe", "data": {"channel": _FULL + sb.vsym.lower()}})
                for sb in self.books.values()]

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return '{"event":"bts:heartbeat"}'

    async def resync_symbol(self, sb: SymbolBook) -> None:
        """Full channel: nothing to fetch, the next message is a whole book.
        Diff channel: a new REST book (started by the next diff)."""

    def resync(self, sb: SymbolBook, reason: str) -> None:
        sb.book.clear()
        x = sb.sync
        x.phase = AWAIT_SNAPSHOT
        x.snap_mts = -1  # diff channel: the next diff asks for a new REST book
        x.diffs.clear()
        if x.task is not None:
            x.task.cancel()
            x.task = None
        super().resync(sb, reason)

    def reset_books(self, state: BookState, reason: str) -> None:
        for sb in self.books.values():
            if sb.sync.task is not None:
                sb.sync.task.cancel()
        super().reset_books(state, reason)  # fresh sync: a new connection, a new order

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            m = _decode(data)
        except msgspec.DecodeError as e:
            self.frame_error(f"json: {e}", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        ev, ch = m.get("event"), m.get("channel")
        if ev == "data":
            hit = self.by_channel.get(ch)
            d = m.get("data")
            if hit is None:
                self.count("ignored")
            elif isinstance(d, str):
                # Pusher (v1) sent ``data`` as a JSON string: another API, never guessed at.
                self.frame_error("Pusher-era v1 frame (data is a string): not spoken", data)
            elif not isinstance(d, dict):
                self.frame_error("data is not an object", data)
            else:
                self._on_book(hit[0], ch, hit[1], d, recv_ns, data)
        elif ev == "bts:heartbeat":
            self.count("pongs")
        elif ev == "bts:subscription_succeeded":
            self.count("sub_acks")
        elif ev == "bts:request_reconnect":
            self.count("reconnect_requests")
            self.request_reconnect("bts:request_reconnect from venue")
        elif ev == "bts:error":
            self.count("venue_errors")
            log.warning("bitstamp: venue error: %s", m.get("data"))
        elif ev is None:
            self.frame_error("no event", data)
        else:
            self.count("ignored")  # trades, orders sharing the connection

    def _on_book(self, sb: SymbolBook, ch: str, diff: bool, d: dict, recv_ns: int, data) -> None:
        try:
            mts = int(d["microtimestamp"])  # a string of digits on the wire
            bids, asks = d["bids"], d["asks"]
        except (KeyError, TypeError, ValueError):
            self.frame_error("book without microtimestamp/bids/asks", data)
            return
        x = sb.sync
        if diff:
            if x.snap_mts < 0:
                self._buffer(sb, mts, d)
                return
            if mts <= x.snap_mts:
                self.count("stale_updates")  # already in the REST book
                return
        if mts <= x.newest:
            self.count("seq_regressions")
            self.resync(sb, f"microtimestamp {mts} not after {x.newest}: out of order")
            return
        x.newest = mts
        try:
            if diff:
                sb.book.apply_sides(bids, asks)  # a diff merges
            else:
                sb.book.load(bids, asks)  # a full book replaces
        except _BAD as e:
            self.frame_error(f"bad level: {e}", data, sb)
            return
        x.phase = SYNCED
        if sb.state is not BookState.LIVE:
            self.set_state(sb, BookState.LIVE, "")
        self.publish(sb, recv_ns, mts * 1000)

    # ------------------------------------------------------------ diff channel: REST book

    def _buffer(self, sb: SymbolBook, mts: int, d: dict) -> None:
        x = sb.sync
        if len(x.diffs) >= self.max_buffer:
            x.diffs.clear()
            self.count("buffer_overflow")
        x.diffs.append((mts, d))
        if x.task is None and not sb.resync_pending:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return
            x.task = self.spawn(self._snapshot(sb, x))

    async def _snapshot(self, sb: SymbolBook, x: BitstampSync) -> None:
        url = f"{self.rest_url}/api/v2/order_book/{sb.vsym.lower()}/"
        delay = 0.5
        while sb.sync is x and x.snap_mts < 0:
            try:
                d = _decode(await self.http_get(url))
                snap_mts = int(d["microtimestamp"])
                sb.book.load(d["bids"], d["asks"])
            except Exception as e:  # noqa: BLE001 - network, venue or replay gap: retry
                self.count("snapshot_errors")
                log.warning("bitstamp: REST book %s failed: %r", sb.vsym, e)
                sb.book.clear()
                await self.clock.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            break
        else:
            return
        self.count("snapshots")
        x.task = None
        x.snap_mts = snap_mts
        x.newest = max(x.newest, snap_mts)
        x.phase = SYNCED
        pending, x.diffs = x.diffs, []
        self.set_state(sb, BookState.LIVE, "")
        # The REST book's own top first, then each buffered diff by the live
        # rules: every top the venue's book passed through is published.
        self.publish(sb, self.clock_ns(), snap_mts * 1000)
        ch = _DIFF + sb.vsym.lower()
        for _mts, d in pending:
            if sb.state is not BookState.LIVE:
                return
            self._on_book(sb, ch, True, d, self.clock_ns(), None)
