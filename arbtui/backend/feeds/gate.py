"""Gate spot (API v4): ``spot.order_book_update`` bridged to the REST book
(docs/protocols.md#gate).

Of Gate's v4 book channels this speaks ``spot.order_book_update`` (payload
``[PAIR, "100ms"]``), the one public recordings of real Gate traffic use, so
the book builder can be checked against the venue's own bytes. Per pair:

1. Buffer the updates; fetch ``GET /api/v4/spot/order_book?currency_pair=..
   &limit=100&with_id=true``: its ``id`` is the update id the book is current to.
2. Drop buffered updates with ``u <= id``; the first kept must contain
   ``id + 1`` (``U <= id + 1 <= u``), else the snapshot is older than the
   buffer: fetch again (``feeds/bridge.py``, ``rest_synced.py``).
3. Then each update must start at or before the book's id + 1 and end after
   it; ``U > id + 1`` is a gap: THAT pair alone re-snapshots.
4. Sizes are absolute; ``"0"`` removes the level. Since 2025 the channel also
   sends ``full: true`` messages at irregular times: they replace the book and
   its id outright.

Keepalive: an application ``spot.ping`` every 10 s (answered ``spot.pong``).
Recordings of the newer ``spot.obu`` or the top-N ``spot.order_book``
channels, or of API v3 (``depth.subscribe``), are refused by name on replay.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.feeds.base import SymbolBook
from arbtui.backend.feeds.rest_synced import RestSyncedFeed
from arbtui.backend.feeds.sync import SYNCED

log = logging.getLogger("arbtui.feeds.gate")
_SPEC = venues.get("gate")
_decode = msgspec.json.decode

_CHANNEL = "spot.order_book_update"
_OTHER_CHANNELS = ("spot.obu", "spot.order_book")
#: Levels per side asked of the REST snapshot (the book is capped there).
_SNAPSHOT_LEVELS = 100


class _Result(msgspec.Struct, gc=False):
    s: str
    U: int
    u: int
    b: list[tuple[str, str]] = []
    a: list[tuple[str, str]] = []
    t: int | None = None
    full: bool = False


class _Update(msgspec.Struct, gc=False):
    """A ``spot.order_book_update`` update in the documented shape (levels as two
    strings, integer ids and time); the typed decode accepts nothing else."""

    channel: str
    event: str
    result: _Result


#: Nearly every frame is an incremental update of a synced book. Decoded into
#: structs in one pass it skips the generic path's dicts, ``get``s and
#: ``isinstance`` checks. Any frame this refuses (another shape, a full book, a
#: book not synced, bad ids) takes the generic path, whose checks and error
#: reports are the rule (test_feed_gate checks both paths agree).
_update_decoder = msgspec.json.Decoder(_Update)
#: Off only in tests comparing the two paths.
TYPED_UPDATE = True


def _apply_typed(sb: SymbolBook, r: _Result) -> None:
    """``GateFeed.apply_change`` for the typed struct."""
    sb.book.apply_sides(r.b, r.a)


class GateFeed(RestSyncedFeed):
    venue: ClassVar[str] = _SPEC.name
    max_depth: ClassVar[int | None] = _SNAPSHOT_LEVELS
    max_frame: ClassVar[int] = 2 ** 22
    #: Gate's own client sends ``spot.ping`` every 10 s.
    keepalive_s: ClassVar[float | None] = 10.0
    #: Updates come every 100 ms on a moving book and pings are answered.
    stale_after_s: ClassVar[float] = 30.0
    send_rate: ClassVar[float] = 10.0

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``/api/v4/spot/currency_pairs`` -> {BASE-QUOTE: id}, tradable pairs only."""
        out: dict[str, str] = {}
        for r in json.loads(body):
            if not isinstance(r, dict) or r.get("trade_status") not in (None, "tradable"):
                continue
            base, quote, pid = r.get("base"), r.get("quote"), r.get("id")
            if base and quote and pid:
                out[f"{base.upper()}-{quote.upper()}"] = pid
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        out: list[str] = []
        other: str | None = None
        for m in cls.sent_objects(sent_frames):
            ch = m.get("channel")
            if str(m.get("method") or "").startswith("depth."):
                other = "API v3 depth.subscribe"
            if m.get("event") != "subscribe":
                continue
            if ch in _OTHER_CHANNELS:
                other = ch
            if ch != _CHANNEL:
                continue
            payload = m.get("payload") or []
            n = vsym_to_norm.get(payload[0]) if payload and isinstance(payload[0], str) else None
            if n and n not in out:
                out.append(n)
        if not out and other:
            raise ValueError(f"Gate {other} recordings are not spoken here (only {_CHANNEL})")
        return out

    # ------------------------------------------------------------ outbound

    def _request(self, channel: str, event: str | None, payload: list | None) -> str:
        m: dict[str, Any] = {"time": self.clock_ns() // 1_000_000_000, "channel": channel}
        if event is not None:
            m["event"] = event
            m["payload"] = payload
        return json.dumps(m)

    def subscribe_messages(self) -> list[str]:
        # One pair per request: the payload is [pair, interval].
        return [self._request(_CHANNEL, "subscribe", [sb.vsym, "100ms"]) for sb in self.books.values()]

    async def on_open(self) -> None:
        self.start_syncing()

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return self._request("spot.ping", None, None)

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        if (TYPED_UPDATE and data.__class__ is str and '"update"' in data
                and type(self).apply_change is GateFeed.apply_change):
            try:
                m = _update_decoder.decode(data)
            except msgspec.DecodeError:  # also ValidationError: another shape
                m = None
            if m is not None and self._on_update_typed(m, recv_ns, data):
                return
        try:
            m = _decode(data)
        except msgspec.DecodeError as e:
            self.frame_error(f"json: {e}", data)
            return
        if not isinstance(m, dict):
            self.frame_error("not an object", data)
            return
        ch, ev = m.get("channel"), m.get("event")
        if ch == _CHANNEL and ev == "update":
            r = m.get("result")
            if not isinstance(r, dict):
                self.frame_error("update without result", data)
                return
            self._on_update(r, recv_ns, data)
        elif ch == "spot.pong":
            self.count("pongs")
        elif m.get("error"):
            self.count("venue_errors")
            log.warning("gate: venue error on %s %s: %s", ch, ev, m["error"])
        elif ev in ("subscribe", "unsubscribe"):
            self.count(f"{ev}_acks")
        elif ch is None:
            self.frame_error("no channel", data)
        else:
            self.count("ignored")  # trades, tickers, candles sharing the connection

    def _on_update(self, r: dict, recv_ns: int, data) -> None:
        sb = self.by_vsym.get(r.get("s"))
        if sb is None:
            self.count("unknown_symbol")
            return
        first, last = r.get("U"), r.get("u")
        bids, asks = r.get("b") or [], r.get("a") or []
        if not isinstance(last, int) or not isinstance(bids, list) or not isinstance(asks, list):
            self.frame_error("bad ids/levels", data)
            return
        ts = r.get("t")
        ts_ns = ts * 1_000_000 if isinstance(ts, int) else 0
        if r.get("full"):
            self.replace_book(sb, last, bids, asks, ts_ns, recv_ns, data)  # rule 4
            return
        if not isinstance(first, int) or first > last:
            self.frame_error("bad U/u", data)
            return
        self.on_change(sb, first - 1, last, r, ts_ns, recv_ns, data)  # rules 1-3

    def _on_update_typed(self, m: _Update, recv_ns: int, data: str) -> bool:
        """``_on_update`` for a typed incremental update of a SYNCED book, handed to the
        same ``on_synced_change`` (rules 2-3); False: the generic
        path must handle this frame."""
        r = m.result
        if m.channel != _CHANNEL or m.event != "update" or r.full:
            return False
        sb = self.by_vsym.get(r.s)
        if sb is None or sb.sync.phase is not SYNCED:
            return False
        last = r.u
        first = r.U - 1
        if first >= last:  # U > u: the generic path reports it
            return False
        ts = r.t
        self.on_synced_change(sb, first, last, r, ts * 1_000_000 if ts is not None else 0,
                              recv_ns, data, _apply_typed)
        return True

    def apply_change(self, sb: SymbolBook, r: dict) -> None:
        sb.book.apply_sides(r.get("b"), r.get("a"))

    # ------------------------------------------------------------ snapshot

    def snapshot_urls(self, sb: SymbolBook) -> list[str]:
        return [(f"{self.rest_url}/api/v4/spot/order_book?currency_pair={sb.vsym}"
                 f"&limit={_SNAPSHOT_LEVELS}&with_id=true")]

    def parse_snapshot(self, body: str) -> tuple[int, list, list, int]:
        d = _decode(body)
        ts = d.get("update") or d.get("current")
        return int(d["id"]), d["bids"], d["asks"], ts * 1_000_000 if isinstance(ts, int) else 0

