"""Gemini market data v2 ``l2`` channel (docs/protocols.md#gemini).

v2 has no sequence numbers and no checksum, so a lost message cannot be
detected directly. What this adapter relies on instead:

- The first ``l2_updates`` per symbol after connecting is the full book; any
  message that carries ``trades``/``auction_events`` is a full book too (a
  snapshot mid-stream) and replaces the book rather than being merged into it.
  (cryptofeed instead guesses "snapshot" from an empty local bid side.)
- Heartbeats every 5 s: no frame at all for ``stale_after_s`` -> every book
  STALE and reconnect (base watchdog).
- Crossed-book check. Gemini runs auctions, but auction orders are reported as
  ``auction_events``, not as continuous-book levels, so a crossed l2 book is
  almost surely a desync. It is withheld at once (leaves LIVE) and resynced if
  it does not uncross within ``crossed_grace_s``.
- Periodic refresh: ``refresh_every_s`` reconnects, which re-sends every full
  book and bounds how long an undetectable gap can live.

Per-symbol resync: unsubscribe + subscribe that symbol and accept only a
message carrying ``trades``/``auction_events`` (a full book) as the reset.
Whether Gemini re-sends the full book on a re-subscribe on the same connection
is not documented, so if none arrives within ``resubscribe_timeout_s`` the
adapter falls back to reconnecting.

Symbols: ``/v1/symbols/details/all`` with ``product_type``; ``…PERP`` swaps
share base/quote with spot (BTCUSDCPERP is BTC/USDC), so rows are keyed by
(product_type, base, quote) and only ``spot`` rows map
(cryptofeed ignores ``product_type`` and maps BTC-USDC to the perp).
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.gemini")
_SPEC = venues.get("gemini")
_decode = msgspec.json.decode

_SIDES = {"buy": True, "sell": False}
_UNSET = msgspec.UNSET


# gc=False: strings and lists only, never cycles (see coinbase.py).
class _Change(msgspec.Struct, array_like=True, gc=False):
    """One ``["buy"|"sell", price, quantity]`` change, named as ``Book.apply`` reads it."""

    side: str
    px: str
    qty: str


class _L2Updates(msgspec.Struct, gc=False):
    """An ``l2_updates`` message decoded in one pass (nearly every frame we get).
    Anything else (heartbeats, trades, a malformed change) fails here and takes
    the untyped path, whose error handling is the rule."""

    type: str
    symbol: str
    changes: list[_Change]
    # Present (with any value) = a full book (module doc).
    trades: msgspec.Raw | msgspec.UnsetType = _UNSET
    auction_events: msgspec.Raw | msgspec.UnsetType = _UNSET


_l2_decoder = msgspec.json.Decoder(_L2Updates)
#: ``_finish``'s short way for a LIVE, uncrossed book; off only in tests comparing paths.
FAST_FINISH = True
_LIVE = BookState.LIVE


class GeminiFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    #: Full books of ~5,000 levels per symbol plus 100 trades; 8 MiB is ample.
    max_frame: ClassVar[int] = 2 ** 23
    keepalive_s: ClassVar[float | None] = None  # the venue sends heartbeats; nothing to send
    #: Heartbeat every 5 s [rec]: two missed means the connection is dead.
    stale_after_s: ClassVar[float] = 10.0
    #: Older docs: 12 public WS requests per minute [uncertain]; pace well below.
    send_rate: ClassVar[float] = 1.0
    #: Checked by our own crossed logic, never by base ``publish`` (see module doc).
    allow_crossed: ClassVar[bool] = True
    crossed_grace_s: ClassVar[float] = 2.0
    #: Reconnect this often to refresh every book (no gap detection on v2).
    refresh_every_s: ClassVar[float] = 900.0
    #: Wait this long for a full book after a per-symbol re-subscribe.
    resubscribe_timeout_s: ClassVar[float] = 5.0
    #: The offline table is the registry's (``arbtui.venues``).

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The base watchdog's proactive reconnect is our periodic refresh.
        self.max_conn_life_s = self.refresh_every_s

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """Symbol details (a list, or one object) -> {``BASE-QUOTE``: v2 symbol}, spot only."""
        doc = json.loads(body)
        rows = doc if isinstance(doc, list) else [doc]
        keyed: dict[tuple[str, str, str], str] = {}
        for r in rows:
            if not isinstance(r, dict):
                continue
            sym, base, quote = r.get("symbol"), r.get("base_currency"), r.get("quote_currency")
            ptype = str(r.get("product_type") or "").lower()
            if not (sym and base and quote and ptype):
                continue  # without product_type a row could be a perp: never guess
            if str(r.get("status") or "open").lower() == "closed":
                continue
            keyed[(ptype, base.upper(), quote.upper())] = sym.upper()
        return {f"{b}-{q}": s for (t, b, q), s in keyed.items() if t == "spot"}

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Normalized symbols of the ``l2`` subscriptions in a recorded session."""
        out: list[str] = []
        for m in cls.sent_objects(sent_frames):
            if m.get("type") != "subscribe":
                continue
            for sub in m.get("subscriptions") or []:
                if not isinstance(sub, dict) or sub.get("name") != "l2":
                    continue
                for s in sub.get("symbols") or []:
                    norm = vsym_to_norm.get(str(s).upper())
                    if norm and norm not in out:
                        out.append(norm)
        return out

    # ------------------------------------------------------------ outbound

    def _request(self, kind: str, sbs: list[SymbolBook]) -> str:
        return json.dumps({"type": kind, "subscriptions": [
            {"name": "l2", "symbols": [sb.vsym for sb in sbs]}]}, separators=(",", ":"))

    def subscribe_messages(self) -> list[str]:
        # v2 carries every symbol on one connection in one request.
        return [self._request("subscribe", list(self.books.values()))] if self.books else []

    async def resync_symbol(self, sb: SymbolBook) -> None:
        self._unsync(sb)
        ws = self._ws
        self.count("resubscribes")
        self.send(self._request("unsubscribe", [sb]))
        self.send(self._request("subscribe", [sb]))
        await self.clock.sleep(self.resubscribe_timeout_s)
        if sb.sync.phase is not SYNCED and ws is not None and self._ws is ws:
            self.count("resubscribe_timeouts")
            self.request_reconnect(f"resync {sb.symbol}: no full book after re-subscribe")

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            msg = _l2_decoder.decode(data)
        except ValueError:  # msgspec.DecodeError/ValidationError, and bytes that are not UTF-8
            msg = None
        if msg is not None and msg.type == "l2_updates":
            sb = self.by_vsym.get(msg.symbol)
            if sb is None:
                self.count("ignored_msgs")
                return
            full = msg.trades is not _UNSET or msg.auction_events is not _UNSET
            self._on_l2(sb, msg.changes, full, recv_ns, data)
            return
        try:
            m = _decode(data)  # msgspec: same types as json.loads, ~2x faster per frame
        except ValueError:  # msgspec.DecodeError, and bytes that are not UTF-8
            self.frame_error("not JSON", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        t = m.get("type")
        if t == "heartbeat":
            self.count("heartbeats")
            return
        if t != "l2_updates":
            if t == "error" or ("reason" in m and t is None):
                self.count("venue_errors")
                log.warning("gemini: venue error: %s", str(m)[:200])
                for sb in self.books.values():
                    if sb.sync.phase is not SYNCED:
                        self.set_state(sb, sb.state, f"venue error: {str(m)[:80]}")
            else:
                self.count("ignored_msgs")  # trade, candles, auction_* messages
            return
        sb = self.by_vsym.get(m.get("symbol"))
        if sb is None:
            self.count("ignored_msgs")
            return
        # The typed decode refused it: the changes are malformed (not a list of
        # [side, price, quantity] strings), so the book is no longer the venue's.
        changes = m.get("changes")
        if not isinstance(changes, list):
            self._bad(sb, "l2_updates without changes", data)
        else:
            self._bad(sb, "bad change: not [side, price, quantity] strings", data)

    def _on_l2(self, sb: SymbolBook, changes: list[_Change], full: bool, recv_ns: int,
               data: Any) -> None:
        x = sb.sync
        if x.phase is not SYNCED:
            # After connecting, the first message is the full book. After a
            # per-symbol re-subscribe, only a marked full book may reset it:
            # unmarked changes may be leftovers of the old subscription.
            if x.phase is AWAIT_SNAPSHOT and not full:
                self.count("ignored_while_resync")
                return
            full = True
        if full:
            if x.phase is SYNCED:
                self.count("snapshots_midstream")
            sb.book.clear()
            sb.sync = x = BookSync()
            self.count("snapshots")
        try:
            sb.book.apply(changes, _SIDES)
        except (BookError, KeyError) as e:
            self._bad(sb, f"bad change: {e!r}", data)
            return
        x.phase = SYNCED
        self._finish(sb, recv_ns)

    # ------------------------------------------------------------ state

    def _unsync(self, sb: SymbolBook) -> None:
        # From now until the (possibly rate-limited) re-subscribe delivers a
        # full book, unmarked changes must not be mistaken for the first message.
        sb.book.clear()
        sb.sync = BookSync(phase=AWAIT_SNAPSHOT)
        sb.last_top = None

    def _bad(self, sb: SymbolBook, reason: str, data: Any) -> None:
        self._unsync(sb)
        self.frame_error(reason, data, sb)

    def _finish(self, sb: SymbolBook, recv_ns: int) -> None:
        """After a WHOLE message: crossed check, LIVE transition, publish (no venue ts, no seq)."""
        if FAST_FINISH and sb.sync.crossed_since is None and sb.state is _LIVE \
                and not sb.book.crossed():
            # The common message: a LIVE book that was not withheld and is not crossed
            # now, where withhold_crossed would only say so (one call less a frame).
            self.publish(sb, recv_ns)
            return
        crossed = self.withhold_crossed(sb, recv_ns, "crossed book withheld")
        if crossed == "desync":
            self._unsync(sb)
            self.resync(sb, "crossed book")
        if crossed:
            return
        if sb.state is not BookState.LIVE:
            self.set_state(sb, BookState.LIVE, "in sync")
        self.publish(sb, recv_ns)
