"""Bybit v5 public **spot** order book adapter (``orderbook.{depth}.{SYMBOL}``).

Gap detection is Bybit's own (docs/protocols.md#bybit): per topic, each delta's ``u``
must be the previous ``u + 1``; any ``snapshot`` — or any message with
``u == 1``, which means Bybit's book service restarted and the message is a
full book — resets the book; ``seq`` (the cross sequence) must keep
increasing. Anything else resubscribes that topic only (cryptofeed never
checks ``u``).

Bybit spot and linear perps share symbol strings (``BTCUSDT``), so only the
spot endpoint feeds these books and the symbol map comes from
``instruments-info?category=spot``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import BookError
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.bybit")
_SPEC = venues.get("bybit")

#: Spot book depths (1: 10 ms snapshots; 50: 20 ms; 200: 100 ms; 1000: 200 ms).
DEPTHS = (1, 50, 200, 1000)
#: Spot allows at most 10 args per subscribe request.
MAX_ARGS = 10
#: The whole ``args`` of one connection must stay under 21,000 characters.
MAX_ARGS_CHARS = 21_000

_decoder = msgspec.json.Decoder()


class _DeltaData(msgspec.Struct, gc=False):
    u: int
    b: list[tuple[str, str]] = []
    a: list[tuple[str, str]] = []
    #: UNSET when absent (the generic path's default); null is refused, as there.
    s: str | msgspec.UnsetType = msgspec.UNSET
    seq: int | None = None


class _Delta(msgspec.Struct, gc=False):
    """An ``orderbook`` delta in the documented shape (levels as two strings,
    integer ids and times); the typed decode accepts nothing else."""

    topic: str
    type: str
    data: _DeltaData
    ts: int | None = None
    cts: int | None = None


#: Nearly every frame is an ``orderbook`` delta of a LIVE book. Decoded into
#: structs in one pass it skips the generic path's dicts, ``get``s and per-level
#: type checks. Any frame this refuses (another shape, a snapshot, u=1, a book not
#: LIVE or resyncing, another depth) takes the generic path, whose checks and
#: error reports are the rule (test_feed_bybit checks both paths agree).
_delta_decoder = msgspec.json.Decoder(_Delta)
#: Off only in tests comparing the two paths.
TYPED_DELTA = True
_LIVE = BookState.LIVE


def sub_depth(depth: int, depths: tuple[int, ...] = DEPTHS) -> int:
    for d in depths:
        if depth <= d:
            return d
    return depths[-1]


def _topic_depth(topic: str) -> tuple[int, str] | None:
    """``orderbook.200.BTCUSDT`` -> (200, "BTCUSDT"); the topic is Bybit's own
    dotted grammar, and the symbol part is looked up, never split further."""
    parsed = _topics.get(topic, _UNPARSED)
    if parsed is _UNPARSED:
        parts = topic.split(".")
        if len(parts) != 3 or parts[0] != "orderbook" or not parts[1].isdigit():
            parsed = None
        else:
            parsed = int(parts[1]), parts[2]
        if len(_topics) >= 4096:
            _topics.clear()
        _topics[topic] = parsed
    return parsed


#: topic -> ``_topic_depth(topic)``: every book frame names its topic, and a
#: connection has a handful. Bounded by clearing.
_topics: dict[str, tuple[int, str] | None] = {}
_UNPARSED = object()


@dataclass(slots=True, eq=False)
class BybitSync(BookSync):
    #: Depth of the topic this book follows (replays may hold several per symbol).
    depth: int | None = None
    #: Last cross sequence ``seq`` (must keep increasing); ``SymbolBook.seq`` is ``u``.
    xseq: int | None = None


class BybitFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_frame: ClassVar[int] = 4 * 2 ** 20  # depth-1000 snapshots are ~60 kB
    #: Bybit: send ``{"op":"ping"}`` every 20 s or the server drops the socket.
    keepalive_s: ClassVar[float | None] = 20.0
    #: A pong arrives every 20 s even on a quiet book; 30 s of nothing is dead.
    stale_after_s: ClassVar[float] = 30.0
    send_rate: ClassVar[float] = 10.0
    sync_state: ClassVar[type[BookSync]] = BybitSync
    #: The offline table is the registry's (``arbtui.venues``).
    #: The v5 category this adapter's endpoint serves, and its book depths.
    category: ClassVar[str] = "spot"
    depths: ClassVar[tuple[int, ...]] = DEPTHS

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.sub_depth = sub_depth(self.depth, self.depths)
        for sb in self.books.values():
            sb.book.depth = self.sub_depth
        self._req = 0
        # The typed path inlines ``_on_book``'s delta rules: a subclass with its own
        # keeps the generic path.
        self._typed_delta = type(self)._on_book is BybitFeed._on_book

    def topic(self, sb: SymbolBook, depth: int | None = None) -> str:
        return f"orderbook.{depth or self.sub_depth}.{sb.vsym}"

    # ------------------------------------------------------------ instruments

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """instruments-info (spot) -> {normalized: symbol} from baseCoin/quoteCoin.

        A body for another category is refused: linear ``BTCUSDT`` is a perp.
        """
        doc = json.loads(body)
        if doc.get("retCode", 0) != 0:
            raise ValueError(f"instruments-info error: {doc.get('retMsg')}")
        res = doc.get("result") or {}
        if res.get("category", "spot") != "spot":
            raise ValueError(f"not a spot instrument list: category={res.get('category')}")
        out: dict[str, str] = {}
        for it in res.get("list") or []:
            if not isinstance(it, dict):
                continue
            sym, base, quote = it.get("symbol"), it.get("baseCoin"), it.get("quoteCoin")
            if not (isinstance(sym, str) and isinstance(base, str) and isinstance(quote, str)):
                continue
            if it.get("status", "Trading") != "Trading":
                continue
            out[f"{base}-{quote}"] = sym
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Normalized symbols of the spot ``orderbook`` topics a recording subscribed.

        Connections to another category (linear, inverse, option) carry the same
        symbol strings for other products and yield nothing.
        """
        path = url.split("?", 1)[0].rstrip("/")
        cat = path.rsplit("/", 1)[-1]
        if cat in ("spot", "linear", "inverse", "option") and cat != cls.category:
            return []
        out: list[str] = []
        for msg in cls.sent_objects(sent_frames):
            if msg.get("op") != "subscribe":
                continue
            for arg in msg.get("args") or []:
                td = _topic_depth(arg) if isinstance(arg, str) else None
                if td is None:
                    continue
                norm = vsym_to_norm.get(td[1])
                if norm is None:
                    log.warning("bybit: no instrument for %s; skipped", td[1])
                    continue
                if norm not in out:
                    out.append(norm)
        return out

    # ------------------------------------------------------------ outbound

    def _op(self, op: str, args: list[str], req_id: str | None = None) -> str:
        msg: dict[str, Any] = {"op": op, "args": args}
        if req_id:
            msg["req_id"] = req_id
        return json.dumps(msg, separators=(",", ":"))

    def extra_topics(self) -> list[str]:
        """Topics beside the books (linear: ``tickers.{symbol}`` for funding)."""
        return []

    def on_topic(self, topic: str, msg: dict, recv_ns: int, data: Any) -> bool:
        """A non-book topic of this adapter's (``extra_topics``); True when handled."""
        return False

    def subscribe_messages(self) -> list[str]:
        topics = [self.topic(sb) for sb in self.books.values()] + self.extra_topics()
        total = sum(len(t) + 3 for t in topics)
        if total > MAX_ARGS_CHARS:
            self.count("args_over_limit")
            log.error("bybit: %d chars of topics exceed the %d per-connection limit",
                      total, MAX_ARGS_CHARS)
        return [self._op("subscribe", topics[i:i + MAX_ARGS])
                for i in range(0, len(topics), MAX_ARGS)]

    def keepalive_message(self) -> str | None:
        self.count("pings")
        return '{"op":"ping"}'

    async def resync_symbol(self, sb: SymbolBook) -> None:
        # Bybit has no per-topic re-snapshot request: unsubscribe and subscribe
        # the one topic. The req_id lets a rejection ack name the book (_on_ack).
        self._req += 1
        rid = f"resync-{self._req}"
        t = self.topic(sb, sb.sync.depth)
        self.resubscribe_book(
            sb, [self._op("unsubscribe", [t]), self._op("subscribe", [t], rid)], rid)

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        if TYPED_DELTA and self._typed_delta and data.__class__ is str and '"delta"' in data:
            try:
                m = _delta_decoder.decode(data)
            except msgspec.DecodeError:  # also ValidationError: another shape
                m = None
            if m is not None and self._on_delta_typed(m, recv_ns, data):
                return
        try:
            msg = _decoder.decode(data)
        except msgspec.DecodeError as e:
            self.frame_error(f"undecodable: {e}", data)
            return
        if not isinstance(msg, dict):
            self.frame_error("not an object", data)
            return
        topic = msg.get("topic")
        if isinstance(topic, str):
            if topic.startswith("orderbook."):
                self._on_book(msg, topic, recv_ns, data)
            elif self.on_topic(topic, msg, recv_ns, data):
                pass
            else:
                self.count("other_topics")
            return
        op = msg.get("op")
        if op == "ping" or msg.get("ret_msg") == "pong":
            self.count("pongs")
        elif op in ("subscribe", "unsubscribe"):
            self._on_ack(msg, op)
        elif op is not None:
            self.count("other_ops")
        else:
            self.frame_error("unknown message", data)

    def _on_ack(self, msg: dict, op: str) -> None:
        rid = msg.get("req_id")
        if msg.get("success"):
            return
        self.count(f"{op}_errors")
        ret = str(msg.get("ret_msg", ""))
        log.warning("bybit: %s rejected: %s", op, ret)
        if op != "subscribe":
            return
        for sb in self.books.values():
            # The spot ack names no topic unless it failed; then ret_msg does.
            if (rid and sb.sync.resub == rid) or self.topic(sb) in ret:
                self.set_state(sb, sb.state, f"subscribe rejected: {ret}")

    def _on_delta_typed(self, m: _Delta, recv_ns: int, data: str) -> bool:
        """``_on_book`` for a typed delta (not u=1) of a LIVE book on its subscribed
        depth, the same rules in the same order; False: the generic path must
        handle this frame."""
        body = m.data
        u = body.u
        if m.type != "delta" or u == 1 or not m.topic.startswith("orderbook."):
            return False
        td = _topic_depth(m.topic)
        sb = self.by_vsym.get(td[1]) if td else None
        if sb is None or sb.resync_pending or sb.state is not _LIVE:
            return False
        x = sb.sync
        if td[0] != x.depth or (body.s is not msgspec.UNSET and body.s != sb.vsym):
            return False
        if u != sb.seq + 1:
            self.count("gaps")
            self.resync(sb, f"u gap: expected {sb.seq + 1}, got {u}")
            return True
        seq = body.seq
        last_seq = x.xseq
        if seq is not None and isinstance(last_seq, int) and seq <= last_seq:
            self.count("seq_regressions")
            self.resync(sb, f"seq went back: {last_seq} -> {seq}")
            return True
        try:
            sb.book.apply_sides(body.b, body.a)
        except (BookError, IndexError, TypeError, KeyError) as e:
            self.frame_error(f"orderbook level: {e}", data, sb)
            return True
        sb.seq = u
        if seq is not None:
            x.xseq = seq
        self.publish(sb, recv_ns, (m.cts or m.ts or 0) * 1_000_000, u)
        return True

    def _on_book(self, msg: dict, topic: str, recv_ns: int, data: Any) -> None:
        td = _topic_depth(topic)
        sb = self.by_vsym.get(td[1]) if td else None
        if sb is None:
            self.count("unknown_topic")
            return
        depth = td[0]
        body = msg.get("data")
        typ = msg.get("type")
        if not isinstance(body, dict) or typ not in ("snapshot", "delta"):
            self.frame_error("orderbook: bad type/data", data)
            return
        u, seq = body.get("u"), body.get("seq")
        if not isinstance(u, int) or isinstance(u, bool):
            self.frame_error("orderbook: no integer u", data)
            return
        if sb.resync_pending:  # a resubscribe is queued; its snapshot will follow
            self.count("ignored_during_resync")
            return
        snap = typ == "snapshot" or u == 1
        x = sb.sync
        cur = x.depth
        if depth != cur:
            # One book per symbol follows one topic: the subscribed depth live; in a
            # replay that recorded several depths of a symbol, the deepest one.
            if not snap or (cur is not None and depth < cur):
                self.count("other_depth_ignored")
                return
            x.depth = depth
            sb.book.depth = depth
        if body.get("s", sb.vsym) != sb.vsym:
            self.frame_error("orderbook: symbol differs from topic", data, sb)
            return
        if not snap:
            if sb.state is not BookState.LIVE:
                self.count("deltas_before_snapshot")
                return
            if u != sb.seq + 1:
                self.count("gaps")
                self.resync(sb, f"u gap: expected {sb.seq + 1}, got {u}")
                return
            last_seq = x.xseq
            if isinstance(seq, int) and isinstance(last_seq, int) and seq <= last_seq:
                self.count("seq_regressions")
                self.resync(sb, f"seq went back: {last_seq} -> {seq}")
                return
        elif u == 1 and typ != "snapshot":
            self.count("service_restarts")
        book = sb.book
        try:
            bids = body.get("b") or ()
            asks = body.get("a") or ()
            for side in (bids, asks):
                for lv in side:
                    # Bybit sends strings; a number would lose its literal digits.
                    if lv[0].__class__ is not str or lv[1].__class__ is not str:
                        raise BookError(f"level not [str, str]: {lv!r}")
            if snap:
                book.clear()
                self.count("snapshots")
            # Bybit keeps exactly N levels itself; the depth cap only guards it.
            book.apply_sides(bids, asks)
        except (BookError, IndexError, TypeError, KeyError) as e:
            self.frame_error(f"orderbook level: {e}", data, sb)
            return
        sb.seq = u
        if isinstance(seq, int):
            x.xseq = seq
        if snap:
            self.set_state(sb, BookState.LIVE, "snapshot" if u != 1 else "service restart (u=1)")
        ts = msg.get("cts") or msg.get("ts") or 0
        self.publish(sb, recv_ns, int(ts) * 1_000_000 if isinstance(ts, int) else 0, u)
