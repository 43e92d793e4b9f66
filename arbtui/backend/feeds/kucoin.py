"""KuCoin spot: the ``/market/level2`` increment topic bridged to a REST snapshot
(docs/protocols.md, "KuCoin").

Connecting takes a token first: ``POST /api/v1/bullet-public`` returns the
endpoint, a temporary token and the ``pingInterval`` (``resolve_url``). The
connection is usable only after the venue's ``welcome`` frame, so the
subscribe frames are sent then, not at connect.

Book integrity is KuCoin's own calibration rule, per symbol:

1. Buffer ``trade.l2update`` messages; fetch
   ``GET /api/v1/market/orderbook/level2_100`` (``sequence``: the id the
   snapshot is current to).
2. Drop buffered messages with ``sequenceEnd <= sequence``; the first kept
   must start at or before ``sequence + 1`` (``feeds/bridge.py``, overlaps
   legal) or the snapshot is older than the buffer: fetch again.
3. From then on each message must satisfy ``sequenceStart <= last + 1`` and
   ``sequenceEnd > last``. A later start is a gap: THAT symbol re-snapshots.
4. Inside a message each change row carries its own sequence: a row at or
   below the book's id is already in it and is skipped (the overlap case);
   a row with price ``"0"`` carries no level, only its sequence.

The public snapshot has 100 levels per side, so the book is capped there.
KuCoin closes a connection after 24 h (token lifetime): reconnect first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import urllib.parse
import urllib.request
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.kucoin")
_SPEC = venues.get("kucoin")
_decode = msgspec.json.decode

_TOPIC = "/market/level2:"
#: KuCoin: at most 100 symbols per topic subscription.
_PER_TOPIC = 100
#: Levels per side of the public REST snapshot.
_SNAPSHOT_LEVELS = 100


class _Sync:
    """Where one book stands: buffering for a snapshot, or following the stream."""

    __slots__ = ("hold", "pending", "task")

    def __init__(self) -> None:
        self.pending: list[bridge.Pending] = []
        self.task: asyncio.Task | None = None
        #: A gap was seen: buffer, but wait for the rate-limited resync to fetch.
        self.hold = False


class KucoinFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    default_url: ClassVar[str] = _SPEC.ws_url
    default_rest: ClassVar[str] = _SPEC.rest_url
    instruments_path: ClassVar[str] = _SPEC.instruments_path
    max_frame: ClassVar[int] = 2 ** 22
    #: The bullet answer's ``pingInterval`` (18 s in 2025) replaces this per connection.
    keepalive_s: ClassVar[float | None] = 18.0
    #: Pings are answered with pongs, so silence this long is a dead link.
    stale_after_s: ClassVar[float] = 40.0
    #: The token (and so the connection) lives 24 h.
    max_conn_life_s: ClassVar[float | None] = 23.5 * 3600
    #: KuCoin limits client messages to 100 per 10 s per connection.
    send_rate: ClassVar[float] = 5.0
    #: Messages buffered per book while its snapshot is in flight.
    max_buffer: ClassVar[int] = 5000
    #: How long a book waits for its first update before fetching anyway.
    first_event_wait_s: ClassVar[float] = 1.0
    STATIC_SYMBOLS: ClassVar[dict[str, str]] = dict(_SPEC.static_symbols)

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        for sb in self.books.values():
            sb.book.depth = min(sb.book.depth, _SNAPSHOT_LEVELS)
        self._sync: dict[str, _Sync] = {s: _Sync() for s in self.books}
        self._ids = itertools.count(1)
        self._custom_url = bool(self.url) and self.url != self.default_url

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``/api/v2/symbols`` -> {BASE-QUOTE: symbol}, trading pairs only."""
        out: dict[str, str] = {}
        for r in json.loads(body).get("data") or []:
            if not isinstance(r, dict) or not r.get("enableTrading", True):
                continue
            base, quote, sym = r.get("baseCurrency"), r.get("quoteCurrency"), r.get("symbol")
            if base and quote and sym:
                out[f"{base.upper()}-{quote.upper()}"] = sym
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Symbols of the ``/market/level2`` topics a recorded session subscribed.
        Other book topics (``/spotMarket/level2Depth50``...) are full top-N
        snapshots of another shape: refused by name, never misread."""
        out: list[str] = []
        other: list[str] = []
        for m in cls.sent_objects(sent_frames):
            topic = m.get("topic")
            if m.get("type") != "subscribe" or not isinstance(topic, str):
                continue
            if topic.startswith(_TOPIC):
                for v in topic[len(_TOPIC):].split(","):
                    n = vsym_to_norm.get(v)
                    if n and n not in out:
                        out.append(n)
            elif "level2" in topic:
                other.append(topic.partition(":")[0])
        if not out and other:
            raise ValueError(f"KuCoin book topic {other[0]} is not spoken here "
                             f"(only {_TOPIC.rstrip(':')} increments)")
        return out

    # ------------------------------------------------------------ connection

    async def resolve_url(self) -> str:
        """``bullet-public``: the endpoint, a 24 h token and the ping interval."""
        url = f"{self.rest_url}/api/v1/bullet-public"

        def _post() -> str:
            req = urllib.request.Request(url, data=b"", method="POST",
                                         headers={"User-Agent": "arbtui"})
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.read().decode()

        doc = json.loads(await asyncio.to_thread(_post))
        data = doc.get("data") or {}
        token = data.get("token")
        servers = data.get("instanceServers") or []
        if doc.get("code") != "200000" or not token or not servers:
            raise ConnectionError(f"kucoin bullet-public refused: {str(doc)[:200]}")
        srv = servers[0]
        ping_ms = srv.get("pingInterval")
        if isinstance(ping_ms, int) and ping_ms > 0:
            self.keepalive_s = ping_ms / 1000.0
        base = self.url if self._custom_url else str(srv.get("endpoint") or self.default_url)
        q = urllib.parse.urlencode({"token": token, "connectId": f"arbtui{next(self._ids)}"})
        return f"{base}{'&' if '?' in base else '?'}{q}"

    def subscribe_messages(self) -> list[str]:
        return []  # sent on ``welcome``: KuCoin ignores frames sent before it

    def _subscribe_frames(self) -> list[str]:
        vs = [sb.vsym for sb in self.books.values()]
        return [json.dumps({"id": str(next(self._ids)), "type": "subscribe",
                            "topic": _TOPIC + ",".join(vs[i:i + _PER_TOPIC]),
                            "privateChannel": False, "response": True})
                for i in range(0, len(vs), _PER_TOPIC)]

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return json.dumps({"id": str(next(self._ids)), "type": "ping"})

    def reset_books(self, state: BookState, reason: str) -> None:
        super().reset_books(state, reason)
        for s, st in self._sync.items():
            if st.task is not None:
                st.task.cancel()
            self._sync[s] = _Sync()

    async def resync_symbol(self, sb: SymbolBook) -> None:
        self._sync[sb.symbol].hold = False
        self._ensure_sync(sb)

    def resync(self, sb: SymbolBook, reason: str) -> None:
        # Every way out of LIVE (gap, crossed, bad frame) drops the book at once.
        self._drop(sb)
        super().resync(sb, reason)

    def _drop(self, sb: SymbolBook) -> None:
        sb.book.clear()
        sb.seq = -1
        st = self._sync[sb.symbol]
        st.pending.clear()
        st.hold = True

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
        kind = m.get("type")
        if kind == "message":
            if m.get("subject") == "trade.l2update" and isinstance(m.get("data"), dict):
                self._on_update(m["data"], recv_ns, data)
            else:
                self.count("ignored")
        elif kind == "welcome":
            self.count("welcomes")
            for f in self._subscribe_frames():
                self.send(f)
            for sb in self.books.values():
                self._ensure_sync(sb)
        elif kind == "pong":
            self.count("pongs")
        elif kind == "ack":
            self.count("sub_acks")
        elif kind == "error":
            self.count("venue_errors")
            log.warning("kucoin: venue error %s: %s", m.get("code"), m.get("data"))
        elif kind is None:
            self.frame_error("no type", data)
        else:
            self.count("ignored")

    def _on_update(self, d: dict, recv_ns: int, data) -> None:
        sb = self.by_vsym.get(d.get("symbol"))
        if sb is None:
            self.count("unknown_symbol")
            return
        start, end, ch = d.get("sequenceStart"), d.get("sequenceEnd"), d.get("changes")
        if (not isinstance(start, int) or not isinstance(end, int) or start > end
                or not isinstance(ch, dict)):
            self.frame_error("bad l2update ids/changes", data)
            return
        if sb.seq < 0:
            st = self._sync[sb.symbol]
            if bridge.push(st.pending, bridge.Pending(start - 1, end, d), self.max_buffer):
                self.count("buffer_overflow")
            self._ensure_sync(sb)
            return
        if end <= sb.seq:
            self.count("stale_updates")  # already in the book (snapshot overlap)
            return
        if start > sb.seq + 1:
            self.count("gaps")
            self.resync(sb, f"gap: sequenceStart {start} after {sb.seq}")
            return
        if not self._apply(sb, d, data):
            return
        self.publish(sb, recv_ns, _ms(d.get("time")), sb.seq)

    def _apply(self, sb: SymbolBook, d: dict, data) -> bool:
        """One message on top of the book (rule 4). False: the book was dropped."""
        book, last = sb.book, sb.seq
        try:
            ch = d["changes"]
            for is_bid, rows in ((True, ch.get("bids") or ()), (False, ch.get("asks") or ())):
                for px, qty, seq in rows:
                    if int(seq) <= last or px == "0":
                        continue
                    book.set(is_bid, px, qty)
        except (BookError, KeyError, TypeError, ValueError, AttributeError) as e:
            self.frame_error(f"bad change: {e}", data, sb)  # half-applied: resync
            return False
        book.truncate()
        sb.seq = d["sequenceEnd"]
        return True

    # ------------------------------------------------------------ snapshot bridge

    def _ensure_sync(self, sb: SymbolBook) -> None:
        st = self._sync[sb.symbol]
        if st.hold or st.task is not None or sb.seq >= 0:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        st.task = self.spawn(self._snapshot_loop(sb, st))

    async def _snapshot_loop(self, sb: SymbolBook, st: _Sync) -> None:
        try:
            delay = 0.5
            while self._sync.get(sb.symbol) is st:
                for _ in range(int(self.first_event_wait_s / 0.02)):
                    if st.pending:
                        break
                    await asyncio.sleep(0.02)
                url = f"{self.rest_url}/api/v1/market/orderbook/level2_100?symbol={sb.vsym}"
                try:
                    d = _decode(await self.http_get(url))["data"]
                    snap_id = int(d["sequence"])  # a string on the wire
                    bids, asks = d["bids"], d["asks"]
                except Exception as e:  # noqa: BLE001 - network or venue error: retry
                    self.count("snapshot_errors")
                    log.warning("kucoin: snapshot %s failed: %r", sb.vsym, e)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                self.count("snapshots")
                if self._sync.get(sb.symbol) is not st or self._install(sb, st, snap_id, bids, asks, d):
                    return
                await asyncio.sleep(0.1)
        finally:
            if st.task is asyncio.current_task():
                st.task = None

    def _install(self, sb: SymbolBook, st: _Sync, snap_id: int, bids, asks, d: dict) -> bool:
        """Rules 2-3 on the buffer, synchronously. True when done (LIVE or dropped)."""
        plan = bridge.bridge(snap_id, st.pending, exact=False)
        if plan.outcome is bridge.Outcome.TOO_OLD:
            self.count("snapshot_too_old")
            st.pending[:] = plan.kept
            return False
        if plan.outcome is bridge.Outcome.GAP:
            self.count("gaps")
            st.pending[:] = plan.kept[plan.gap_at:]
            return False
        try:
            sb.book.load(bids, asks)
        except (BookError, TypeError, ValueError, IndexError) as e:
            self.count("snapshot_errors")
            log.warning("kucoin: bad snapshot for %s: %s", sb.vsym, e)
            sb.book.clear()
            return False
        sb.book.truncate()
        sb.seq = snap_id
        st.pending.clear()
        for p in plan.kept:
            if not self._apply(sb, p.msg, None):
                return True  # dropped and resync requested
        self.set_state(sb, BookState.LIVE, "")
        last = plan.kept[-1].msg if plan.kept else d
        self.publish(sb, self.clock_ns(), _ms(last.get("time")), sb.seq)
        return True


def _ms(v: Any) -> int:
    return v * 1_000_000 if isinstance(v, int) else 0
