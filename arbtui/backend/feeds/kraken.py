"""Kraken spot WebSocket v2 ``book`` adapter (v1 frames understood for replay).

Kraken has no sequence numbers: the CRC32 over the top 10 levels is the only
way to detect drift (docs/protocols.md#kraken). v2 sends ``price``/``qty`` as JSON
*numbers*, and the checksum is defined over their literal digits (trailing
zeros count), so frames are decoded with a float hook that keeps each number's
literal text, and each level keeps the exact text it arrived with. A mismatch resubscribes that one symbol,
rate-limited, and never tears down the connection (cryptofeed's raise-and-
reconnect drops every pair on the socket).

Kraken does not send ``qty: 0`` for levels that fall out of the subscribed
window, so each side is truncated to the subscribed depth after every message.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.book import Book, BookError, kraken_checksum
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.timestamps import rfc3339_ns
from arbtui.model import BookState, Quote
from arbtui.symbols import venue_symbol

log = logging.getLogger("arbtui.feeds.kraken")
_SPEC = venues.get("kraken")

#: Depths the v2 ``book`` channel accepts.
DEPTHS = (10, 25, 100, 500, 1000)
#: v1 (and REST ``wsname``) spell these assets the legacy way; v2 uses ISO codes.
LEGACY_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}
#: Symbols per subscribe request. Kraken documents no hard cap; batching keeps
#: each request small under its undocumented, dynamic message-rate limit.
SUBSCRIBE_BATCH = 50

def _wire_number(text: str) -> str:
    """msgspec float hook: a JSON number's literal text, trailing zeros kept.

    An exponent form ("1e-7") is written out as a plain decimal, as ``Decimal``
    formatting always did; any other JSON number's text is already exactly
    that. Keeping the text (rather than a ``Decimal`` formatted back later)
    saves two conversions per price and size.
    """
    if "e" in text or "E" in text:
        return format(Decimal(text), "f")
    return text


# Keep the literal digits of JSON numbers: the checksum is over them.
_decoder = msgspec.json.Decoder(float_hook=_wire_number)


def sub_depth(depth: int) -> int:
    """The smallest accepted book depth that covers ``depth`` (1000 at most)."""
    for d in DEPTHS:
        if depth <= d:
            return d
    return DEPTHS[-1]


def num_text(v: Any) -> str:
    """Wire number -> its literal decimal text (``Decimal`` keeps trailing zeros)."""
    if v.__class__ is str:  # a number decoded by _wire_number, or a string on the wire
        return v
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, str):
        return v
    raise BookError(f"not a number: {v!r}")


def _decimals(texts) -> int:
    return max((len(t.partition(".")[2]) for t in texts), default=0)


def fixed_precision_checksum(book: Book) -> int:
    """Kraken's CRC32 with every price and qty written to the pair's fixed
    precision (Kraken's FIX guide method) instead of the literal wire digits.

    The precision is inferred as the most decimals any level of this book
    carries, which is the pair's precision as soon as one level uses it all.
    Only consulted after the literal-digit checksum failed.
    """
    pdp = _decimals(p for p, _ in book.bids.values())
    pdp = max(pdp, _decimals(p for p, _ in book.asks.values()))
    qdp = _decimals(q for _, q in book.bids.values())
    qdp = max(qdp, _decimals(q for _, q in book.asks.values()))

    def fixed_text(levels: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(f"{Decimal(p):.{pdp}f}", f"{Decimal(q):.{qdp}f}") for p, q in levels]

    fixed = Book(book.depth)
    fixed.apply_sides(fixed_text(book.top_bids(10)), fixed_text(book.top_asks(10)))
    return kraken_checksum(fixed)


def v2_name(v1_pair: str) -> str:
    """v1 ``XBT/USD`` -> v2 ``BTC/USD``; the ``/`` is Kraken's explicit separator."""
    base, sep, quote = v1_pair.partition("/")
    if not sep:
        return v1_pair
    return f"{LEGACY_ASSETS.get(base, base)}/{LEGACY_ASSETS.get(quote, quote)}"


class KrakenFeed(VenueFeed):
    venue: ClassVar[str] = _SPEC.name
    max_frame: ClassVar[int] = 4 * 2 ** 20  # a depth-1000 snapshot of a busy pair is ~100 kB
    #: The watchdog asks this often; a ping goes out only after ~10 s of silence
    #: (Kraken sends heartbeats itself; the ping proves the path when they stop).
    keepalive_s: ClassVar[float | None] = 2.5
    idle_ping_s: ClassVar[float] = 10.0
    #: Heartbeats arrive ~1/s, so 15 s of nothing (ping unanswered) is a dead link.
    stale_after_s: ClassVar[float] = 15.0
    send_rate: ClassVar[float] = 5.0
    #: The offline table is the registry's (``arbtui.venues``).

    def __init__(self, symbols: list[str], emit: Callable[[Quote], None], **kw: Any) -> None:
        smap = dict(kw.pop("symbol_map", None) or self.STATIC_SYMBOLS)
        # v2 names are ISO BASE/QUOTE joined by "/", so composing one from a
        # normalized symbol is exact (composition, never parsing).
        for s in symbols:
            smap.setdefault(s, venue_symbol("kraken", s))
        super().__init__(symbols, emit, symbol_map=smap, **kw)
        self.sub_depth = sub_depth(self.depth)
        for sb in self.books.values():
            sb.book.depth = self.sub_depth
        self._req_id = 0
        self.system_status = ""
        self._v1_channels: dict[int, SymbolBook] = {}

    # ------------------------------------------------------------ instruments

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """AssetPairs -> {normalized: v2 symbol}, from each pair's ``wsname``.

        ``wsname`` is v1-style (``XBT/USD``) with an explicit ``/``; the legacy
        asset codes are mapped to v2's ISO codes. Dark-pool pairs (``.d``) are
        not order books anyone can see, so they are skipped.
        """
        doc = json.loads(body)
        if doc.get("error"):
            raise ValueError(f"AssetPairs error: {doc['error']}")
        out: dict[str, str] = {}
        for key, info in (doc.get("result") or {}).items():
            if not isinstance(info, dict):
                continue
            alt = str(info.get("altname", ""))
            if key.endswith(".d") or alt.endswith(".d"):
                continue
            if info.get("status") == "delisted":
                continue
            ws = info.get("wsname")
            if not isinstance(ws, str) or "/" not in ws:
                continue
            v2 = v2_name(ws)
            base, _, quote = v2.partition("/")
            out[f"{base}-{quote}"] = v2
        return out

    @classmethod
    def symbols_from_subscribe(cls, url: str, sent_frames: list[str],
                               vsym_to_norm: dict[str, str]) -> list[str]:
        """Normalized symbols of the ``book`` subscriptions in a recording (v2 or v1)."""
        out: list[str] = []
        for msg in cls.sent_objects(sent_frames):
            names: list[str] = []
            if msg.get("method") == "subscribe":
                p = msg.get("params") or {}
                if p.get("channel") == "book":
                    names = list(p.get("symbol") or [])
            elif msg.get("event") == "subscribe":
                sub = msg.get("subscription") or {}
                if sub.get("name") == "book":
                    names = [v2_name(x) for x in msg.get("pair") or [] if isinstance(x, str)]
            for v in names:
                if not isinstance(v, str):
                    continue
                norm = vsym_to_norm.get(v)
                if norm is None and "/" in v:
                    base, _, quote = v.partition("/")
                    norm = f"{base}-{quote}"
                if norm and norm not in out:
                    out.append(norm)
        return out

    # ------------------------------------------------------------ outbound

    def _next_id(self) -> int:
        self._req_id += 1
        return self._req_id

    def _sub(self, method: str, vsyms: list[str], snapshot: bool = True) -> str:
        params: dict[str, Any] = {"channel": "book", "symbol": vsyms, "depth": self.sub_depth}
        if method == "subscribe":
            params["snapshot"] = snapshot
        return json.dumps({"method": method, "params": params, "req_id": self._next_id()},
                          separators=(",", ":"))

    def subscribe_messages(self) -> list[str]:
        vsyms = [sb.vsym for sb in self.books.values()]
        return [self._sub("subscribe", vsyms[i:i + SUBSCRIBE_BATCH])
                for i in range(0, len(vsyms), SUBSCRIBE_BATCH)]

    def keepalive_message(self) -> str | None:
        if not self.last_msg_ns:
            return None
        if (self.clock_ns() - self.last_msg_ns) / 1e9 < self.idle_ping_s:
            return None
        self.count("pings")
        return json.dumps({"method": "ping", "req_id": self._next_id()})

    async def resync_symbol(self, sb: SymbolBook) -> None:
        # Kraken's own advice: unsubscribe, then subscribe with snapshot:true.
        gen = (sb.sync.resub or 0) + 1
        self.resubscribe_book(sb, [self._sub("unsubscribe", [sb.vsym]),
                                   self._sub("subscribe", [sb.vsym])], gen)

    # ------------------------------------------------------------ inbound

    def on_message(self, data: str | bytes, recv_ns: int) -> None:
        try:
            msg = _decoder.decode(data)
        except msgspec.DecodeError as e:
            self.frame_error(f"undecodable: {e}", data)
            return
        if isinstance(msg, list):
            self._on_v1_data(msg, recv_ns, data)
            return
        if not isinstance(msg, dict):
            self.frame_error("not an object", data)
            return
        channel = msg.get("channel")
        if channel == "book":
            self._on_book(msg, recv_ns, data)
        elif channel == "heartbeat":
            self.count("heartbeats")
        elif channel == "status":
            for d in msg.get("data") or []:
                if isinstance(d, dict) and "system" in d:
                    self.system_status = str(d["system"])
        elif "method" in msg:
            self._on_method(msg, data)
        elif "event" in msg:
            self._on_v1_event(msg)
        elif channel is not None:
            self.count("other_channels")
        elif "error" in msg:
            self.count("venue_errors")
            log.warning("kraken: venue error: %s", msg.get("error"))
        else:
            self.frame_error("unknown message", data)

    def _on_method(self, msg: dict, data: Any) -> None:
        method = msg.get("method")
        if method == "pong":
            self.count("pongs")
            return
        if method not in ("subscribe", "unsubscribe"):
            self.count("other_methods")
            return
        res = msg.get("result") if isinstance(msg.get("result"), dict) else {}
        vsym = res.get("symbol") or msg.get("symbol")
        sb = self.by_vsym.get(vsym) if isinstance(vsym, str) else None
        if not msg.get("success"):
            self.count(f"{method}_errors")
            log.warning("kraken: %s rejected: %s", method, msg.get("error"))
            if sb is not None and method == "subscribe":
                self.set_state(sb, BookState.RESYNC, f"subscribe rejected: {msg.get('error')}")
            return
        if sb is None or res.get("channel", "book") != "book":
            return
        if method == "subscribe":
            if isinstance(res.get("depth"), int):
                sb.book.depth = res["depth"]
            if sb.state is not BookState.LIVE:
                self.set_state(sb, sb.state, "subscribed, awaiting snapshot")

    def _on_book(self, msg: dict, recv_ns: int, data: Any) -> None:
        typ = msg.get("type")
        items = msg.get("data")
        if typ not in ("snapshot", "update") or not isinstance(items, list):
            self.frame_error("book: bad type/data", data)
            return
        for el in items:
            if not isinstance(el, dict):
                self.frame_error("book: element not an object", data)
                continue
            sb = self.by_vsym.get(el.get("symbol"))  # type: ignore[arg-type]
            if sb is None:
                self.count("unknown_symbol")
                continue
            if sb.resync_pending:  # a resubscribe is queued; its snapshot will follow
                self.count("ignored_during_resync")
                continue
            snap = typ == "snapshot"
            if not snap and sb.state is not BookState.LIVE:
                # Updates only make sense on top of a snapshot we hold.
                self.count("updates_before_snapshot")
                continue
            book = sb.book
            try:
                if snap:
                    book.clear()
                    self.count("snapshots")
                # Levels are objects with JSON-number prices: their literal text
                # is the book's key string (the checksum is over those digits).
                book.apply_sides(
                    [(num_text(lv["price"]), num_text(lv["qty"])) for lv in el.get("bids") or ()],
                    [(num_text(lv["price"]), num_text(lv["qty"])) for lv in el.get("asks") or ()])
            except (BookError, KeyError, TypeError) as e:
                self.frame_error(f"book level: {e}", data, sb)
                continue
            # Kraken sends no deletes for levels pushed out of the subscribed
            # window: apply_sides has cut each side to the depth.
            want = el.get("checksum")
            if isinstance(want, int) and not isinstance(want, bool):
                got = kraken_checksum(book)
                if got != want and fixed_precision_checksum(book) == want:
                    # The literal digits lost trailing zeros the venue's checksum
                    # used (docs/protocols.md#kraken: which rule the server applies is
                    # uncertain; ccxt #24461): the book itself is right.
                    self.count("checksum_ok_fixed_precision")
                elif got != want:
                    self.count("checksum_mismatch")
                    self.resync(sb, f"checksum mismatch (got {got}, venue {want})")
                    continue
                else:
                    self.count("checksum_ok")
            elif not snap:
                self.count("missing_checksum")
            if snap:
                self.set_state(sb, BookState.LIVE, "snapshot")
            self.publish(sb, recv_ns, rfc3339_ns(el.get("timestamp")))

    # ------------------------------------------------------------ v1 (replay of old recordings)

    def _on_v1_event(self, msg: dict) -> None:
        ev = msg.get("event")
        if ev == "heartbeat":
            self.count("heartbeats")
        elif ev == "pong":
            self.count("pongs")
        elif ev == "systemStatus":
            self.system_status = str(msg.get("status", ""))
        elif ev == "subscriptionStatus":
            sub = msg.get("subscription") or {}
            sb = self.by_vsym.get(v2_name(str(msg.get("pair", ""))))
            if sb is None or sub.get("name") != "book":
                return
            if msg.get("status") == "subscribed" and isinstance(msg.get("channelID"), int):
                self._v1_channels[msg["channelID"]] = sb
                if isinstance(sub.get("depth"), int):
                    sb.book.depth = sub["depth"]
            elif msg.get("status") == "error":
                self.count("subscribe_errors")
        else:
            self.count("other_events")

    def _on_v1_data(self, msg: list, recv_ns: int, data: Any) -> None:
        # [channelID, {...}(, {...}), "book-<depth>", "<pair>"]
        if len(msg) < 4 or not isinstance(msg[-1], str) or not isinstance(msg[-2], str):
            self.frame_error("v1: bad array frame", data)
            return
        chan_name, pair = msg[-2], msg[-1]
        if not chan_name.startswith("book"):
            self.count("other_channels")
            return
        sb = self.by_vsym.get(v2_name(pair))
        if sb is None:
            self.count("unknown_symbol")
            return
        _, _, d = chan_name.partition("-")
        if d.isdigit():
            sb.book.depth = int(d)
        parts = [p for p in msg[1:-2] if isinstance(p, dict)]
        book = sb.book
        snap = any("as" in p or "bs" in p for p in parts)
        if not snap and sb.state is not BookState.LIVE:
            self.count("updates_before_snapshot")
            return
        want = None
        venue_ts = 0.0
        try:
            if snap:
                book.clear()
                self.count("snapshots")
            bids: list = []
            asks: list = []
            for p in parts:
                for key, side in (("as", asks), ("bs", bids), ("a", asks), ("b", bids)):
                    for lv in p.get(key) or ():
                        # v1 sends strings: the raw text IS the checksum input.
                        side.append(lv)
                        if len(lv) > 2:
                            venue_ts = max(venue_ts, float(lv[2]))
                if "c" in p:
                    want = int(p["c"])
            book.apply_sides(bids, asks)
        except (BookError, IndexError, TypeError, ValueError) as e:
            self.frame_error(f"v1 level: {e}", data, sb)
            return
        if want is not None:
            got = kraken_checksum(book)
            if got != want:
                self.count("checksum_mismatch")
                self.resync(sb, f"checksum mismatch (got {got}, venue {want})")
                return
            self.count("checksum_ok")
        if snap:
            self.set_state(sb, BookState.LIVE, "snapshot")
        self.publish(sb, recv_ns, int(venue_ts * 1e9))
