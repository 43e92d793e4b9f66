"""HTX (formerly Huobi) spot: ``market.$symbol.mbp.150`` incremental book on the
``/feed`` WebSocket, bridged to a ``req`` snapshot on the same socket
(docs/protocols.md#htx).

Every server frame is a gzip-compressed binary frame holding one JSON
message; the adapter gunzips it (live and in replay alike: recordings keep the
wire bytes, base64-encoded). The rules are HTX's own:

1. ``{"ping": ts}`` comes every few seconds and must be answered
   ``{"pong": ts}`` (plain text), or the venue closes the connection after
   two missed pings.
2. ``{"sub": "market.$symbol.mbp.150"}`` streams updates ``tick.seqNum`` /
   ``tick.prevSeqNum`` with the changed levels (size 0 deletes).
3. ``{"req": "market.$symbol.mbp.150"}`` answers the full 150-level book
   with its ``seqNum``. Updates are buffered from the subscription on; the
   snapshot is bridged exactly (``feeds/bridge.py``, ``exact=True``): updates
   with ``seqNum`` at or below it are dropped, the first kept must have
   ``prevSeqNum`` equal to it, each later one the ``seqNum`` before it.
4. Live, an update whose ``prevSeqNum`` is not the book's ``seqNum`` is a gap:
   THAT book is dropped and re-snapshotted with a new ``req`` (the
   subscription stays).

Sessions of the older full-book channel ``market.$symbol.depth.step0``
(cryptofeed's 2021 sample) replay too: each of its messages is a whole book.
Merged-price channels (``depth.step1``..``step5``) are refused by name.
"""

from __future__ import annotations

import gzip
import itertools
import json
import logging
import zlib
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, BRIDGING, SYNCED
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.htx")
_SPEC = venues.get("htx")
LEVELS = 150
_BAD_ROW = (BookError, TypeError, ValueError, IndexError, AttributeError, KeyError)


def _text(v: Any) -> str:
    if v.__class__ is str:
        return v
    if v.__class__ is int:
        return str(v)
    raise TypeError(f"not a number: {v!r}")


def _rows(rows: Any) -> list[tuple[str, str]]:
    return [(_text(r[0]), _text(r[1])) for r in rows or ()]


def decode_frame(data: str | bytes) -> Any:
    """One HTX frame -> its JSON message (gzip binary; plain text is accepted for
    control frames). Numbers keep their wire text (``parse_float=str``)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = gzip.decompress(bytes(data))
    return json.loads(data, parse_float=str)


class HtxFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_depth: ClassVar[int | None] = LEVELS
    max_frame: ClassVar[int] = 2 ** 21
    #: The venue pings (every 5 s); we only answer.
    keepalive_s: ClassVar[float | None] = None
    stale_after_s: ClassVar[float] = 30.0
    send_rate: ClassVar[float] = 10.0
    #: Updates buffered per book while its snapshot is in flight.
    max_buffer: ClassVar[int] = 5000

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        # HTX spells symbols lower case on the wire; ours are upper case.
        self.by_wire = {sb.vsym.lower(): sb for sb in self.books.values()}
        self._ids = itertools.count(1)

    @staticmethod
    def _ch(sb: SymbolBook) -> str:
        return f"market.{sb.vsym.lower()}.mbp.{LEVELS}"

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``/v2/settings/common/symbols`` (``sc``, ``bc``, ``qc``, ``state``) or the
        v1 list of older recordings (``symbol``, ``base-currency``,
        ``quote-currency``, ``state``) -> {BASE-QUOTE: SYMBOL}; online pairs only."""
        out: dict[str, str] = {}
        for r in json.loads(body).get("data") or []:
            if not isinstance(r, dict) or r.get("state", "online") != "online":
                continue
            sym = r.get("sc") or r.get("symbol")
            base = r.get("bc") or r.get("base-currency")
            quote = r.get("qc") or r.get("quote-currency")
            if sym and base and quote:
                out[f"{base.upper()}-{quote.upper()}"] = sym.upper()
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        out: list[str] = []
        merged: list[str] = []
        for m in cls.sent_objects(sent_frames):
            ch = m.get("sub")
            parts = ch.split(".") if isinstance(ch, str) else []
            if len(parts) != 4 or parts[0] != "market":
                continue
            if parts[2] == "mbp" or (parts[2] == "depth" and parts[3] == "step0"):
                n = vsym_to_norm.get(parts[1].upper())
                if n and n not in out:
                    out.append(n)
            elif parts[2] == "depth":
                merged.append(f"depth.{parts[3]}")
        if not out and merged:
            raise ValueError(f"HTX merged-price book {merged[0]} is not spoken here "
                             "(only mbp increments and depth.step0 books)")
        return out

    # ------------------------------------------------------------ outbound

    def subscribe_messages(self) -> list[str]:
        out = []
        for sb in self.books.values():
            out.append(json.dumps({"sub": self._ch(sb), "id": f"sub{next(self._ids)}"}))
            sb.sync.phase = BRIDGING  # updates are buffered from now on (rule 3)
            out.append(self._req(sb))
        return out

    def _req(self, sb: SymbolBook) -> str:
        return json.dumps({"req": self._ch(sb), "id": f"req{next(self._ids)}"})

    async def resync_symbol(self, sb: SymbolBook) -> None:
        sb.sync.phase = BRIDGING
        self.count("snapshot_requests")
        self.send(self._req(sb))

    def resync(self, sb: SymbolBook, reason: str) -> None:
        self._drop(sb)
        super().resync(sb, reason)

    def _drop(self, sb: SymbolBook) -> None:
        sb.book.clear()
        sb.seq = -1
        sb.sync.phase = AWAIT_SNAPSHOT
        sb.sync.pending.clear()  # the update that showed the gap was not buffered

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            m = decode_frame(data)
        except (OSError, EOFError, zlib.error, ValueError) as e:
            self.frame_error(f"gzip/json: {e}", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        if "ping" in m:
            self.count("pings")
            self.send(json.dumps({"pong": m["ping"]}))
            return
        ch = m.get("ch") or m.get("rep")
        if isinstance(ch, str):
            parts = ch.split(".")
            sb = self.by_wire.get(parts[1]) if len(parts) == 4 else None
            if sb is None:
                self.count("ignored")  # trades and other channels of a recording
            elif parts[2] == "mbp" and "rep" in m:
                self._on_snapshot(sb, m, recv_ns, data)
            elif parts[2] == "mbp":
                self._on_update(sb, m, recv_ns, data)
            elif parts[2] == "depth" and parts[3] == "step0":
                self._on_full_book(sb, m, recv_ns, data)
            else:
                self.count("ignored")
        elif m.get("status") == "ok":
            self.count("sub_acks")
        elif m.get("status") == "error":
            self.count("venue_errors")
            log.warning("htx: %s: %s", m.get("err-code"), m.get("err-msg"))
        else:
            self.frame_error("no channel", data)

    def _on_update(self, sb: SymbolBook, m: dict, recv_ns: int, data: Any) -> None:
        t = m.get("tick")
        seq = t.get("seqNum") if isinstance(t, dict) else None
        prev = t.get("prevSeqNum") if isinstance(t, dict) else None
        if seq.__class__ is not int or prev.__class__ is not int:
            self.frame_error("bad mbp ids", data)
            return
        ts = _ms(m.get("ts"))
        x = sb.sync
        if x.phase is not SYNCED:
            # Buffered in every phase short of SYNCED, not only once the req is
            # out: the bridge drops what the snapshot holds, so the result does
            # not depend on when the (rate-limited) req left, live or replayed.
            if bridge.push(x.pending, bridge.Pending(prev, seq, (t, ts)), self.max_buffer):
                self.count("buffer_overflow")
            return
        if prev != sb.seq:
            self.count("gaps")
            self.resync(sb, f"gap: prevSeqNum {prev} after seqNum {sb.seq}")
            return
        if self._apply(sb, t, seq, data):
            self.publish(sb, recv_ns, ts, seq)

    def _apply(self, sb: SymbolBook, t: dict, seq: int, data: Any) -> bool:
        try:
            sb.book.apply_sides(_rows(t.get("bids")), _rows(t.get("asks")))
        except _BAD_ROW as e:
            self.frame_error(f"bad update: {e}", data, sb)
            return False
        sb.seq = seq
        return True

    def _on_snapshot(self, sb: SymbolBook, m: dict, recv_ns: int, data: Any) -> None:
        d = m.get("data")
        if m.get("status") != "ok" or not isinstance(d, dict) or d.get("seqNum").__class__ is not int:
            self.count("snapshot_errors")
            log.warning("htx: snapshot for %s refused: %s", sb.vsym, str(m)[:200])
            return
        x = sb.sync
        if x.phase is SYNCED:
            self.count("ignored")  # an answer we no longer need
            return
        snap = d["seqNum"]
        plan = bridge.bridge(snap, x.pending, exact=True)
        if plan.outcome is bridge.Outcome.TOO_OLD or (
                plan.kept and plan.kept[0].first != snap):
            self.count("snapshot_too_old")
            x.pending[:] = plan.kept
            x.phase = BRIDGING
            self.send(self._req(sb))  # rule 3: ask again, keep the buffer
            return
        if plan.outcome is bridge.Outcome.GAP:
            self.count("gaps")
            x.pending[:] = plan.kept[plan.gap_at:]
            x.phase = BRIDGING
            self.send(self._req(sb))
            return
        try:
            sb.book.load(_rows(d.get("bids")), _rows(d.get("asks")))
        except _BAD_ROW as e:
            self.count("snapshot_errors")
            self.frame_error(f"bad snapshot: {e}", data, sb)
            return
        sb.seq = snap
        x.pending.clear()
        x.phase = SYNCED
        self.count("snapshots")
        ts = 0
        for p in plan.kept:
            t, ts = p.msg
            if not self._apply(sb, t, p.last, data):
                return
        self.set_state(sb, BookState.LIVE, "")
        self.publish(sb, recv_ns, ts, sb.seq)

    def _on_full_book(self, sb: SymbolBook, m: dict, recv_ns: int, data: Any) -> None:
        t = m.get("tick")
        try:
            sb.book.load(_rows(t["bids"]), _rows(t["asks"]))
        except (*_BAD_ROW, TypeError) as e:
            self.frame_error(f"bad depth.step0 book: {e}", data, sb)
            return
        sb.sync.phase = SYNCED
        self.count("full_books")
        self.set_state(sb, BookState.LIVE, "")
        v = t.get("version")
        sb.seq = v if v.__class__ is int else -1
        self.publish(sb, recv_ns, _ms(m.get("ts")), sb.seq)


def _ms(v: Any) -> int:
    return v * 1_000_000 if v.__class__ is int else 0
