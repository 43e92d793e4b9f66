"""KuCoin spot: the ``/market/level2`` increment topic bridged to a REST snapshot
(docs/protocols.md#kucoin).

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
from arbtui.backend.feeds.base import SymbolBook
from arbtui.backend.feeds.rest_synced import RestSyncedFeed
from arbtui.backend.feeds.sync import SYNCED

log = logging.getLogger("arbtui.feeds.kucoin")
_SPEC = venues.get("kucoin")
_decode = msgspec.json.decode

_TOPIC = "/market/level2:"
#: KuCoin: at most 100 symbols per topic subscription.
_PER_TOPIC = 100
#: Levels per side of the public REST snapshot.
_SNAPSHOT_LEVELS = 100


class _Changes(msgspec.Struct, gc=False):
    bids: list[tuple[str, str, str]] = []
    asks: list[tuple[str, str, str]] = []


class _L2(msgspec.Struct, gc=False):
    symbol: str
    sequenceStart: int
    sequenceEnd: int
    changes: _Changes
    time: int | None = None


class _L2Message(msgspec.Struct, gc=False):
    """A ``trade.l2update`` in the documented shape (rows ``[px, size, seq]`` as
    strings, integer ids and time); the typed decode accepts nothing else."""

    type: str
    subject: str
    data: _L2


#: Nearly every frame is an l2update of a synced book. Decoded into structs in one
#: pass it skips the generic path's dicts, ``get``s and ``isinstance`` checks. Any
#: frame this refuses (another shape, a book not synced, bad ids) takes the generic
#: path, whose checks and error reports are the rule (test_feed_kucoin checks both
#: paths agree).
_l2_decoder = msgspec.json.Decoder(_L2Message)
#: Off only in tests comparing the two paths.
TYPED_L2 = True


def _apply_typed(sb: SymbolBook, d: _L2) -> None:
    """``KucoinFeed.apply_change`` (rule 4) for the typed struct: rows at or below the
    book's sequence are already in it; price "0" is no level."""
    last = sb.seq
    ch = d.changes
    # Plain loops, not comprehensions: on 3.11 each comprehension is a function
    # built and called per side, per frame.
    bids = []
    for r in ch.bids:
        if int(r[2]) > last and r[0] != "0":
            bids.append(r)
    asks = []
    for r in ch.asks:
        if int(r[2]) > last and r[0] != "0":
            asks.append(r)
    sb.book.apply_sides(bids, asks)


class KucoinFeed(RestSyncedFeed):
    venue: ClassVar[str] = _SPEC.name
    max_depth: ClassVar[int | None] = _SNAPSHOT_LEVELS
    max_frame: ClassVar[int] = 2 ** 22
    #: The bullet answer's ``pingInterval`` (18 s in 2025) replaces this per connection.
    keepalive_s: ClassVar[float | None] = 18.0
    #: Pings are answered with pongs, so silence this long is a dead link.
    stale_after_s: ClassVar[float] = 40.0
    #: The token (and so the connection) lives 24 h.
    max_conn_life_s: ClassVar[float | None] = 23.5 * 3600
    #: KuCoin limits client messages to 100 per 10 s per connection.
    send_rate: ClassVar[float] = 5.0

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
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

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        if (TYPED_L2 and data.__class__ is str and '"trade.l2update"' in data
                and type(self).apply_change is KucoinFeed.apply_change):
            try:
                m = _l2_decoder.decode(data)
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
            self.start_syncing()
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
        # Rule 3 (and the buffer of rule 1) in RestSyncedFeed.on_change.
        self.on_change(sb, start - 1, end, d, _ms(d.get("time")), recv_ns, data)

    def _on_update_typed(self, m: _L2Message, recv_ns: int, data: str) -> bool:
        """``_on_update`` for a typed l2update of a SYNCED book, handed to the same
        ``on_synced_change`` (rules 3-4); False: the generic path
        must handle this frame."""
        d = m.data
        if m.type != "message" or m.subject != "trade.l2update":
            return False
        sb = self.by_vsym.get(d.symbol)
        if sb is None or sb.sync.phase is not SYNCED:
            return False
        first, end = d.sequenceStart - 1, d.sequenceEnd
        if first >= end:  # start > end: the generic path reports it
            return False
        self.on_synced_change(sb, first, end, d, _ms(d.time), recv_ns, data, _apply_typed)
        return True

    def apply_change(self, sb: SymbolBook, d: dict) -> None:
        """Rule 4: one message's rows on top of the book, in one apply."""
        last = sb.seq
        ch = d["changes"]
        # A row at or below the book's sequence is already in it; price "0" is no level.
        bids = [r for r in ch.get("bids") or () if int(r[2]) > last and r[0] != "0"]
        asks = [r for r in ch.get("asks") or () if int(r[2]) > last and r[0] != "0"]
        sb.book.apply_sides(bids, asks)

    # ------------------------------------------------------------ snapshot

    def snapshot_urls(self, sb: SymbolBook) -> list[str]:
        # The public 100-level book. The full-depth v3 book needs an API key
        # today; sessions recorded by other tools (cryptofeed, 2021) used it,
        # so it is the second choice and replay finds those answers.
        return [f"{self.rest_url}/api/v1/market/orderbook/level2_100?symbol={sb.vsym}",
                f"{self.rest_url}/api/v3/market/orderbook/level2?symbol={sb.vsym}"]

    def parse_snapshot(self, body: str) -> tuple[int, list, list, int]:
        d = _decode(body)["data"]
        return int(d["sequence"]), d["bids"], d["asks"], _ms(d.get("time"))  # sequence: a string


def _ms(v: Any) -> int:
    return v * 1_000_000 if isinstance(v, int) else 0
