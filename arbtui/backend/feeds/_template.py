"""Skeleton of the seventh venue's adapter. Copy it to ``feeds/<venue>.py``.

Not registered and never imported by arbtui itself (tests import it to keep it
valid). A new venue is three pieces, nothing else:

1. this adapter module, filled in below;
2. a simulator module ``backend/sim/<venue>.py`` (``backend/sim/_template.py``
   is its skeleton) speaking the venue's wire format on a loopback socket, with
   the shared faults (drop, silence, malformed, crossed) and whichever the
   venue's protocol can reveal (gap, checksum, ...);
3. one ``VenueSpec`` entry in ``arbtui/venues.py``: name, exchange id,
   wire symbol format, endpoints, default fee, offline symbol table,
   ``"module:Class"`` of the adapter and simulator, and ``detects`` (which
   simulator fault the adapter catches, with which counter).

The registry entry is what makes the venue known: config validation, the
dashboard, ``arbtui record``/``replay``, the simulator and
``tests/test_adapter_contract.py`` all read it. Then write the venue's rules
into ``docs/protocols.md`` (sequence, checksum, snapshot, keepalive, resync,
API version, where the code enforces each).

The rules every adapter keeps (the contract test checks them):

- Apply a WHOLE message with one ``Book.apply`` (side-labelled levels) or
  ``Book.apply_sides`` (bids and asks listed apart) call, then ``publish``
  once; never publish a half-applied message.
- Decide from the venue's own integrity rule (sequence, checksum) whether the
  message follows the book; if not, drop the book and ``self.resync(sb, why)``
  (rate-limited, ONE book, not the connection) and count why (``self.count``).
- A frame you cannot parse: ``self.frame_error(reason, data)``; pass ``sb``
  when it may have touched a book (that book is then resynced). Never raise:
  ``feed_frame`` counts anything that escapes as a frame error anyway.
- Keep per-book bookkeeping in ``sb.sync`` (``feeds/sync.py``): subclass
  ``BookSync`` for extra fields and name it in ``sync_state``. A venue whose
  stream carries only changes syncs with ``feeds/bridge.py``.
- Compare times with ``self.clock_ns()`` and frame receive times, never the
  wall clock (replay runs the same code on recording time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.template")

_decode = msgspec.json.decode


@dataclass(slots=True, eq=False)
class TemplateSync(BookSync):
    """Per-book fields the venue needs beyond ``BookSync`` (phase, pending, resub,
    crossed_since); delete it if there are none."""

    #: e.g. the venue's second counter, a subscription id, a checksum mode.
    channel_id: int | None = None


class TemplateFeed(VenueFeed):
    # Endpoints and the offline symbol table come from the registry entry named by
    # ``venue`` (VenueFeed.__init_subclass__). The template has no entry, so one
    # example row keeps it constructible; a real adapter drops this line.
    venue: ClassVar[str] = "template"
    STATIC_SYMBOLS: ClassVar[dict[str, str]] = {"BTC-USDT": "BTCUSDT"}
    #: Cap books at the levels the venue's book channel carries (None: no cap).
    max_depth: ClassVar[int | None] = None
    sync_state: ClassVar[type[BookSync]] = TemplateSync
    #: The venue's documented limits (say where each comes from).
    max_frame: ClassVar[int] = 4 * 2 ** 20  # largest snapshot frame, with room
    keepalive_s: ClassVar[float | None] = 20.0  # client ping period, or None
    stale_after_s: ClassVar[float] = 30.0  # no frame at all this long -> reconnect
    send_rate: ClassVar[float] = 5.0  # outbound frames per second the venue allows

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """The instrument list -> {``BASE-QUOTE``: venue symbol}, from the venue's
        own base/quote fields (never by splitting the venue symbol), spot and
        tradable only."""
        raise NotImplementedError

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Which normalized symbols a recorded connection subscribed (for replay)."""
        out: list[str] = []
        for m in cls.sent_objects(sent_frames):
            for vsym in m.get("symbols") or []:  # the venue's subscribe shape
                norm = vsym_to_norm.get(vsym)
                if norm and norm not in out:
                    out.append(norm)
        return out

    # ------------------------------------------------------------ outbound

    def subscribe_messages(self) -> list[str]:
        """Subscribe frames, batched to the venue's per-request limits."""
        vsyms = [sb.vsym for sb in self.books.values()]
        return [msgspec.json.encode({"op": "subscribe", "symbols": vsyms}).decode()]

    def keepalive_message(self) -> str | None:
        return '{"op":"ping"}'

    async def resync_symbol(self, sb: SymbolBook) -> None:
        """Refresh ONE book. Unsubscribe + subscribe on the same socket:
        ``self.resubscribe_book(sb, [unsub, sub], token)``; a REST snapshot: start
        the bridge (see binance.py). Default (not overridden): reconnect."""
        await super().resync_symbol(sb)

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
        if m.get("op") == "pong":
            self.count("pongs")
            return
        sb = self.by_vsym.get(m.get("symbol"))
        if sb is None:
            self.count("unknown_symbol")
            return
        self._on_book(sb, m, recv_ns, data)

    def _on_book(self, sb: SymbolBook, m: dict, recv_ns: int, data: Any) -> None:
        x = sb.sync
        snap = m.get("type") == "snapshot"
        seq = m.get("seq")
        if not isinstance(seq, int):
            self.frame_error("no sequence", data, sb)
            return
        if not snap:
            if x.phase is not SYNCED:
                self.count("updates_before_snapshot")  # legal right after subscribing
                return
            if seq != sb.seq + 1:  # the venue's own continuity rule
                self.count("gaps")
                self._drop(sb)
                self.resync(sb, f"gap: {seq} after {sb.seq}")
                return
        book = sb.book
        try:
            if snap:
                book.clear()
                self.count("snapshots")
            book.apply_sides(m.get("bids") or (), m.get("asks") or ())
        except (BookError, IndexError, TypeError) as e:
            self._drop(sb)
            self.frame_error(f"bad level: {e}", data, sb)
            return
        sb.seq = seq
        if snap:
            x.phase = SYNCED
            self.set_state(sb, BookState.LIVE, "snapshot")
        ts = m.get("ts")
        self.publish(sb, recv_ns, ts * 1_000_000 if isinstance(ts, int) else 0, seq)

    def _drop(self, sb: SymbolBook) -> None:
        """Stop trusting the book at once: later frames of the broken stream are
        ignored until a snapshot rebuilds it."""
        sb.book.clear()
        sb.seq = -1
        sb.sync.phase = AWAIT_SNAPSHOT
