"""L2 order book keyed by exact decimal, plus the venues' checksum rules.

Every venue sends the *absolute* size at a price level, and 0 deletes it
(PROTOCOLS.md §1). Levels are keyed by ``Decimal`` parsed from the venue's own
string, never by float, and the original strings are kept because Kraken and
OKX define their checksums over the literal digits. ``SortedDict`` keeps each
change O(log n) and best-price access O(1).
"""

from __future__ import annotations

import zlib
from decimal import Decimal, InvalidOperation
from itertools import islice

from sortedcontainers import SortedDict

_LIMIT = Decimal("1e15")


class BookError(ValueError):
    """A level the book refuses (non-numeric, negative, NaN/Infinity)."""


def _parse_level(px: str, qty: str) -> tuple[Decimal, bool]:
    try:
        p = Decimal(px)
        q = Decimal(qty)
    except (InvalidOperation, TypeError, ValueError):
        raise BookError(f"non-numeric level {px!r} {qty!r}") from None
    # "1e400" is a finite Decimal but an infinite float downstream; no real
    # price or size comes anywhere near 1e15, so such a level is corruption.
    if not p.is_finite() or not q.is_finite() or p <= 0 or q < 0 or p > _LIMIT or q > _LIMIT:
        raise BookError(f"invalid level {px!r} {qty!r}")
    return p, q == 0


class Book:
    """One venue+symbol book. ``bids`` and ``asks`` map Decimal price -> (px_str, qty_str).

    ``top_dirty`` says whether a change since ``mark_top(n)`` touched the top n
    levels of either side: most level changes land deeper in the book, and the
    feed then need not rebuild and compare its n-level quote at all.
    """

    __slots__ = ("ask_ceil", "asks", "bid_floor", "bids", "depth", "top_dirty")

    def __init__(self, depth: int = 1000) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self.depth = depth
        self.top_dirty = True
        # n-th best price of each side at the last mark_top(n); None = fewer than
        # n levels, so any change reaches the top.
        self.bid_floor: Decimal | None = None
        self.ask_ceil: Decimal | None = None

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.top_dirty = True

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def set(self, is_bid: bool, px: str, qty: str) -> None:
        """Apply one absolute level. Deleting an unknown level is legal (a no-op)."""
        p, zero = _parse_level(px, qty)
        if is_bid:
            side = self.bids
            f = self.bid_floor
            if f is None or p >= f:
                self.top_dirty = True
        else:
            side = self.asks
            c = self.ask_ceil
            if c is None or p <= c:
                self.top_dirty = True
        if zero:
            side.pop(p, None)
        else:
            side[p] = (px, qty)

    def load(self, bids: list, asks: list) -> None:
        """Replace the book from a snapshot of ``[px_str, qty_str, ...]`` rows."""
        self.clear()
        for row in bids:
            self.set(True, row[0], row[1])
        for row in asks:
            self.set(False, row[0], row[1])

    def truncate(self) -> None:
        """Drop levels past the depth cap (Kraken never sends deletes for them)."""
        d = self.depth
        bids, asks = self.bids, self.asks
        while len(bids) > d:
            p, _ = bids.popitem(0)  # lowest bid is the worst
            if self.bid_floor is None or p >= self.bid_floor:
                self.top_dirty = True
        while len(asks) > d:
            p, _ = asks.popitem(-1)  # highest ask is the worst
            if self.ask_ceil is None or p <= self.ask_ceil:
                self.top_dirty = True

    def mark_top(self, n: int) -> None:
        """Remember the top-n boundary; ``top_dirty`` turns True once a change reaches it."""
        bids, asks = self.bids, self.asks
        self.bid_floor = bids.peekitem(-n)[0] if len(bids) >= n else None
        self.ask_ceil = asks.peekitem(n - 1)[0] if len(asks) >= n else None
        self.top_dirty = False

    # ------------------------------------------------------------------ reads

    def best_bid(self) -> tuple[str, str] | None:
        return self.bids.peekitem(-1)[1] if self.bids else None

    def best_ask(self) -> tuple[str, str] | None:
        return self.asks.peekitem(0)[1] if self.asks else None

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids.peekitem(-1)[0] >= self.asks.peekitem(0)[0])

    def top_bids(self, n: int) -> list[tuple[str, str]]:
        # Iterating the sorted keys and looking values up in the dict is ~3x
        # faster than positional access through SortedDict's values view.
        bids = self.bids
        return [bids[k] for k in islice(reversed(bids), n)]

    def top_asks(self, n: int) -> list[tuple[str, str]]:
        asks = self.asks
        return [asks[k] for k in islice(asks, n)]


# ---------------------------------------------------------------------- checksums


def _kraken_fmt(s: str) -> str:
    # Kraken rule: drop the decimal point, then strip leading zeros. The literal
    # digits matter: "0.00100000" -> "100000" but "0.001" -> "1".
    return s.replace(".", "").lstrip("0")


def kraken_checksum(book: Book) -> int:
    """CRC32 (unsigned) over the top 10 asks ascending then top 10 bids descending."""
    parts = [_kraken_fmt(p) + _kraken_fmt(q) for p, q in book.top_asks(10)]
    parts += [_kraken_fmt(p) + _kraken_fmt(q) for p, q in book.top_bids(10)]
    return zlib.crc32("".join(parts).encode()) & 0xFFFFFFFF


def okx_checksum(book: Book) -> int:
    """CRC32 (signed) over 25 bids/asks interleaved ``bpx:bsz:apx:asz:...``."""
    bids = book.top_bids(25)
    asks = book.top_asks(25)
    parts: list[str] = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    crc = zlib.crc32(":".join(parts).encode()) & 0xFFFFFFFF
    return crc - (1 << 32) if crc >= 1 << 31 else crc
