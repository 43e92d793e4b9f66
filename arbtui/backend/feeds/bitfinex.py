"""Bitfinex spot: the public WebSocket API v2 ``book`` channel, precision P0
(docs/protocols.md#bitfinex).

The book rules are Bitfinex's own:

1. After connecting the venue sends ``{"event":"info","version":2}``; any other
   version is not the protocol spoken here and nothing is applied.
2. We send ``conf`` with ``SEQ_ALL`` (65536) and ``OB_CHECKSUM`` (131072). The
   venue acknowledges the flags it accepted; only those are relied on (a
   recording made without checksums replays without them).
3. ``subscribe`` per book (``prec P0``, ``freq F0``, ``len 25``) answers
   ``subscribed`` with a ``chanId``; the first data message of that channel is
   the snapshot ``[chanId, [[price, count, amount], ...], seq]``; after it one
   level per message ``[chanId, [price, count, amount], seq]``. ``amount > 0``
   is a bid, ``< 0`` an ask (size ``|amount|``); ``count == 0`` deletes the
   level (``amount`` 1 / -1 names the side).
4. With SEQ_ALL every array message (book, heartbeat ``hb``, checksum ``cs``
   and any other channel) ends with ONE sequence number per connection, +1 per
   message. A hole means a message of SOME channel was lost: every book on the
   connection is dropped and resubscribed (unsubscribe + subscribe, no
   reconnect).
5. With OB_CHECKSUM the venue sends ``[chanId, "cs", checksum, seq]``: CRC32,
   as a signed 32-bit int, of the top 25 bids and asks interleaved
   ``bid.price:bid.amount:ask.price:ask.amount:...`` (ask amounts negative),
   the numbers written as the venue wrote them. We keep the wire text of every
   number (``json`` with ``parse_float=str``), so ``1e-8`` stays ``1e-8``. A
   mismatch drops and resubscribes THAT book.
6. Info codes: 20051 (server restart) reconnects; 20060 (maintenance) marks
   every book STALE and holds; 20061 (maintenance over) resubscribes them all.

Messages carry no venue timestamp (we do not ask for the TIMESTAMP flag).
Bitfinex allows 25 channel subscriptions per connection.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.book import Book, BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.bitfinex")
_SPEC = venues.get("bitfinex")

SEQ_ALL = 65536
OB_CHECKSUM = 131072
#: Levels per side we subscribe (the checksum covers 25, so the whole book is verified).
BOOK_LEN = 25
#: Bitfinex's public limit of channel subscriptions per connection.
MAX_CHANNELS = 25
#: Bitfinex's currency codes that differ from ours (pub:map:currency:sym).
CCY_ALIASES = {"UST": "USDT", "UDC": "USDC", "EUT": "EURT", "TSD": "TUSD", "PAS": "PAX"}
_BAD_ROW = (BookError, TypeError, ValueError, IndexError, AttributeError)


def _loads(data: str | bytes) -> Any:
    # parse_float=str keeps each number's wire text: the checksum is over that text.
    return json.loads(data, parse_float=str)


#: JSON's number and non-negative integer grammar (RFC 8259: no leading zeros).
_NUM = r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_INT = r"(?:0|[1-9]\d*)"
#: The frames that are nearly all of a book stream, with SEQ_ALL: a one-level update
#: ``[CHAN,[PRICE,COUNT,AMOUNT],SEQ]`` and a checksum ``[CHAN,"cs",CRC,SEQ]``, written
#: without whitespace. ``json.loads`` with a ``parse_float`` callback was ~3.8 of the
#: ~8 us such a frame cost; this match yields the same values (numbers as their wire
#: text, integers as ints) in ~1 us. Anything else (snapshots, events, spacing) takes
#: the JSON path.
_UPDATE = re.compile(rf"\[({_INT}),\[({_NUM}),({_INT}),({_NUM})\],({_INT})\]").fullmatch
_CSUM = re.compile(rf'\[({_INT}),"cs",(-?{_INT}),({_INT})\]').fullmatch
#: ``_fast_update`` on; off only in tests comparing it with the generic path.
FAST_UPDATE = True


def _int_or_text(s: str) -> int | str:
    """A number's wire text as json.loads(parse_float=str) gives it: int if integral."""
    return int(s) if s.lstrip("-").isdigit() else s


def _num(v: Any) -> str:
    if v.__class__ is str:
        return v
    if v.__class__ is int:
        return str(v)
    raise TypeError(f"not a number: {v!r}")


def checksum(book: Book) -> int:
    """Bitfinex's OB_CHECKSUM of ``book`` (rule 5), a signed 32-bit int."""
    # bid px:amount and ask px:-amount interleaved, the longer side's rest after:
    # built by slices (it runs on every checksum frame, ~1 in 5 of a book stream).
    b = [f"{px}:{qty}" for px, qty in book.top_bids(25)]
    a = [f"{px}:-{qty}" for px, qty in book.top_asks(25)]
    n = min(len(b), len(a))
    levels: list = [None] * (2 * n)
    levels[0::2] = b[:n]
    levels[1::2] = a[:n]
    levels += b[n:] or a[n:]
    c = zlib.crc32(":".join(levels).encode())
    return c - (1 << 32) if c >= (1 << 31) else c


@dataclass(slots=True, eq=False)
class BitfinexSync(BookSync):
    #: The book channel's id on this connection (None: not subscribed yet).
    chan: int | None = None


class BitfinexFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_depth: ClassVar[int | None] = BOOK_LEN
    sync_state: ClassVar[type[BookSync]] = BitfinexSync
    max_frame: ClassVar[int] = 2 ** 20
    #: Bitfinex sends ``hb`` per channel every 15 s when quiet; we ping as well.
    keepalive_s: ClassVar[float | None] = 20.0
    stale_after_s: ClassVar[float] = 30.0
    send_rate: ClassVar[float] = 5.0
    #: The flags we ask for (rule 2).
    conf_flags: ClassVar[int] = SEQ_ALL | OB_CHECKSUM

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        if len(self.books) > MAX_CHANNELS:
            # The venue refuses subscriptions past its per-connection limit; one
            # connection per adapter is all we open, so say so instead of failing silently.
            log.warning("bitfinex: %d books but the venue allows %d channels per connection; "
                        "the rest will be refused", len(self.books), MAX_CHANNELS)
        self._ids = itertools.count(1)
        self._conn_reset()

    def _conn_reset(self) -> None:
        self._chans: dict[int, SymbolBook] = {}
        self._seq = -1
        self._flags = 0
        self._version_ok: bool | None = None
        self._maintenance = False

    def reset_books(self, state: BookState, reason: str) -> None:
        self._conn_reset()  # channel ids and the sequence live per connection
        super().reset_books(state, reason)

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``/v2/conf/pub:list:pair:exchange`` (``[["BTCUSD", "TESTBTC:TESTUSD", ...]]``)
        -> {BASE-QUOTE: tPAIR}. A pair with a colon splits there; one without is
        two three-letter codes (Bitfinex's rule for short codes)."""
        doc = json.loads(body)
        pairs = doc[0] if doc and isinstance(doc[0], list) else doc
        out: dict[str, str] = {}
        for p in pairs:
            if not isinstance(p, str):
                continue
            if ":" in p:
                base, _, quote = p.partition(":")
            elif len(p) == 6:
                base, quote = p[:3], p[3:]
            else:
                continue
            base, quote = CCY_ALIASES.get(base, base), CCY_ALIASES.get(quote, quote)
            out[f"{base}-{quote}"] = "t" + p
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Symbols of the P0-P4 ``book`` channels a recorded session subscribed.
        Raw books (``prec R0``) are orders, not levels: refused by name."""
        out: list[str] = []
        raw = False
        for m in cls.sent_objects(sent_frames):
            if m.get("event") != "subscribe" or m.get("channel") != "book":
                continue
            if str(m.get("prec", "P0")).startswith("R"):
                raw = True
                continue
            n = vsym_to_norm.get(m.get("symbol") or m.get("pair"))
            if n and n not in out:
                out.append(n)
        if not out and raw:
            raise ValueError("Bitfinex raw books (prec R0) are not spoken here (only P0 books)")
        return out

    # ------------------------------------------------------------ outbound

    def _sub(self, sb: SymbolBook) -> str:
        return json.dumps({"event": "subscribe", "channel": "book", "symbol": sb.vsym,
                           "prec": "P0", "freq": "F0", "len": str(BOOK_LEN)})

    def subscribe_messages(self) -> list[str]:
        return [json.dumps({"event": "conf", "flags": self.conf_flags}),
                *(self._sub(sb) for sb in self.books.values())]

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return json.dumps({"event": "ping", "cid": next(self._ids)})

    async def resync_symbol(self, sb: SymbolBook) -> None:
        frames = []
        chan = sb.sync.chan
        if chan is not None:
            self._chans.pop(chan, None)  # its late frames are ignored, not applied
            frames.append(json.dumps({"event": "unsubscribe", "chanId": chan}))
        frames.append(self._sub(sb))
        self.resubscribe_book(sb, frames, f"resub-{next(self._ids)}")

    def resync(self, sb: SymbolBook, reason: str) -> None:
        self._drop(sb)  # nothing lands on a book we stopped trusting
        super().resync(sb, reason)

    def _drop(self, sb: SymbolBook) -> None:
        sb.book.clear()
        sb.seq = -1
        sb.sync.phase = AWAIT_SNAPSHOT

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        if data.__class__ is str:
            f = _UPDATE(data)
            if f is not None:
                chan, px, cnt, amt, seq = f.groups()
                if FAST_UPDATE and self._fast_update(int(chan), px, cnt, amt, int(seq), recv_ns,
                                                     data):
                    return
                self._on_array([int(chan), [_int_or_text(px), int(cnt), _int_or_text(amt)],
                                int(seq)], recv_ns, data)
                return
            f = _CSUM(data)
            if f is not None:
                chan, crc, seq = f.groups()
                self._on_array([int(chan), "cs", int(crc), int(seq)], recv_ns, data)
                return
        try:
            m = _loads(data)
        except ValueError as e:
            self.frame_error(f"json: {e}", data)
            return
        if isinstance(m, list):
            self._on_array(m, recv_ns, data)
        elif isinstance(m, dict):
            self._on_event(m)
        else:
            self.frame_error("neither an array nor an event", data)

    def _fast_update(self, chan: int, px: str, cnt: str, amt: str, seq: int, recv_ns: int,
                     data: str) -> bool:
        """``_on_array`` -> ``_on_book`` for the common case, a one-level update of a
        SYNCED book that continues the sequence, applied straight from the matched
        wire text (no lists, no per-row conversion; ~40 % of the frame's cost).
        False: the generic path must take the frame (anything else, and ``-0``,
        whose JSON value is spelled ``0``). Same rules, counters and errors."""
        last = self._seq
        sb = self._chans.get(chan)
        if (sb is None or last < 0 or seq != last + 1 or not self._flags & SEQ_ALL
                or self._version_ok is False or self._maintenance
                or sb.sync.phase is not SYNCED or px == "-0" or amt == "-0"):
            return False
        self._seq = seq
        neg = amt[0] == "-"
        book = sb.book
        try:
            # Book.set, then the depth cap as apply_sides applies it after a message.
            if cnt == "0":  # delete; amount 1 / -1 says which side
                book.set(not neg, px, "0")
            elif neg:
                book.set(False, px, amt[1:])
            else:
                book.set(True, px, amt)
        except _BAD_ROW as e:
            self.frame_error(f"bad level: {e}", data, sb)  # may be half-applied: resync
            return True
        d = book.depth
        if len(book.bids) > d or len(book.asks) > d:
            book.truncate()
        sb.seq = seq
        self.publish(sb, recv_ns, 0, seq)
        return True

    def _on_event(self, m: dict) -> None:
        ev = m.get("event")
        if ev == "info":
            if "version" in m:
                self._version_ok = m.get("version") == 2
                if not self._version_ok:
                    self.count("protocol_errors")
                    log.error("bitfinex: API version %r is not spoken here (v2 only)",
                              m.get("version"))
                if (m.get("platform") or {}).get("status") == 0:
                    self._maintenance_start("platform in maintenance")
                return
            code = m.get("code")
            if code == 20051:
                self.count("venue_restarts")
                self.request_reconnect("venue restarting (info 20051)")
            elif code == 20060:
                self._maintenance_start("maintenance (info 20060)")
            elif code == 20061:
                self._maintenance = False
                self.count("maintenance_ends")
                for sb in self.books.values():
                    self.resync(sb, "maintenance over (info 20061)")
            else:
                self.count("ignored")
        elif ev == "conf":
            if m.get("status") == "OK" and isinstance(m.get("flags"), int):
                self._flags = m["flags"]
            else:
                self.count("venue_errors")
                log.warning("bitfinex: conf refused: %s", m)
        elif ev == "subscribed":
            sb = self.by_vsym.get(m.get("symbol"))
            if m.get("channel") != "book" or sb is None or not isinstance(m.get("chanId"), int):
                self.count("ignored")
                return
            self._chans[m["chanId"]] = sb
            sb.sync.chan = m["chanId"]
            sb.sync.phase = AWAIT_SNAPSHOT
            ln = m.get("len")
            if isinstance(ln, str) and ln.isdigit():
                sb.book.depth = int(ln)
            self.count("sub_acks")
        elif ev == "unsubscribed":
            self.count("unsub_acks")
        elif ev == "pong":
            self.count("pongs")
        elif ev == "error":
            self.count("venue_errors")
            log.warning("bitfinex: venue error %s: %s", m.get("code"), m.get("msg"))
        else:
            self.count("ignored")

    def _maintenance_start(self, why: str) -> None:
        self._maintenance = True
        self.count("maintenance")
        for sb in self.books.values():
            self._drop(sb)
            self.set_state(sb, BookState.STALE, why)

    def _on_array(self, m: list, recv_ns: int, data: Any) -> None:
        if len(m) < 2 or m[0].__class__ is not int:
            self.frame_error("no channel id", data)
            return
        if self._version_ok is False or self._maintenance:
            self.count("ignored")
            return
        seq = -1
        if self._flags & SEQ_ALL:
            seq = m[-1]
            if seq.__class__ is not int:
                self.frame_error("no sequence number (SEQ_ALL)", data)
                return
            last = self._seq
            self._seq = seq
            if last >= 0 and seq != last + 1:
                # Rule 4: the lost message may have been any channel's.
                self.count("gaps")
                for sb in self.books.values():
                    if sb.sync.phase is SYNCED:
                        self.resync(sb, f"gap: sequence {seq} after {last}")
        sb = self._chans.get(m[0])
        payload = m[1]
        if payload == "hb":
            self.count("heartbeats")
            return
        if sb is None:
            self.count("other_channel")  # ticker/trades, or a channel we left
            return
        if payload == "cs":
            self._on_checksum(sb, m, data)
        elif isinstance(payload, list):
            self._on_book(sb, payload, seq, recv_ns, data)
        else:
            self.frame_error("unknown book message", data)

    def _on_checksum(self, sb: SymbolBook, m: list, data: Any) -> None:
        want = m[2] if len(m) > 2 else None
        if want.__class__ is not int:
            self.frame_error("bad checksum message", data)
            return
        if sb.sync.phase is not SYNCED:
            return
        self.count("checksums")
        got = checksum(sb.book)
        if got != want:
            self.count("checksum_mismatch")
            self.resync(sb, f"checksum {got} != venue's {want}")

    def _on_book(self, sb: SymbolBook, payload: list, seq: int, recv_ns: int, data: Any) -> None:
        snap = not payload or isinstance(payload[0], list)
        if not snap and sb.sync.phase is not SYNCED:
            self.count("updates_before_snapshot")
            return
        bids: list[tuple[str, str]] = []
        asks: list[tuple[str, str]] = []
        try:
            for price, cnt, amount in (payload if snap else (payload,)):
                px, amt = _num(price), _num(amount)
                if cnt.__class__ is not int:
                    raise TypeError(f"count {cnt!r}")
                if cnt == 0:  # delete; amount 1 / -1 says which side
                    (asks if amt.startswith("-") else bids).append((px, "0"))
                elif amt.startswith("-"):
                    asks.append((px, amt[1:]))
                else:
                    bids.append((px, amt))
            if snap:
                sb.book.load(bids, asks)
            else:
                sb.book.apply_sides(bids, asks)
        except _BAD_ROW as e:
            self.frame_error(f"bad level: {e}", data, sb)  # may be half-applied: resync
            return
        sb.seq = seq
        if snap:
            sb.sync.phase = SYNCED
            self.count("snapshots")
            self.set_state(sb, BookState.LIVE, "")
        self.publish(sb, recv_ns, 0, seq)
