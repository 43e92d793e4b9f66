"""The detector's pair index: the books it compares and the directions between them.

Books are indexed by BASE asset (``basis.index_base``: a perp apart from spot): a
quote for BTC-USD on kraken meets every other venue's BTC book whose quote currency
is comparable. Within a base, the books of one canonical symbol form a ``Group``.

Every (venue, symbol) book (``Leg``) keeps its fee-adjusted top of book (ask x (1 +
fee) x hurdle, bid x (1 - fee): the exact products ``edge.walk`` compares), so for
books of the same symbol "can this direction's first unit clear the threshold" is
one float comparison, decided bit for bit as the walk decides it; the group keeps
the same values by slot, for a max/min over all its books at once. A ``Dir`` is one
direction (buy on one book, sell on another): its window key, its last depth walk
and the inputs it was walked on (reused while they are equal), and its open window.

These records are read attribute by attribute on the per-quote path
(``detector.Detector._apply``/``_pairs``, ``detector_windows.Windows._eval``): plain
slotted classes, no properties, no calls.
"""

from __future__ import annotations

import math
from typing import Any

from arbtui import symbols as symmod
from arbtui import venues
from arbtui.backend import basis as basismod
from arbtui.backend.edge import Walk
from arbtui.model import Quote

#: Venue quote currencies that are aliases of another currency's book, not a
#: second book: Coinbase Advanced Trade serves BTC-USDC from the BTC-USD book
#: (same order book, same liquidity), so comparing them would be a fake edge.
#: Declared per venue in the registry (``arbtui.venues``, ``quote_aliases``).
QUOTE_ALIASES: dict[tuple[str, str], str] = {
    (s.name, q): to for s in venues.REGISTRY for q, to in s.quote_aliases.items()}

Key = tuple[str, str, str, str]  # (symbol, buy venue, sell venue, sell symbol)

INF = math.inf


def canonical_symbol(venue: str, symbol: str) -> str:
    """The book a venue's symbol really is (Coinbase BTC-USDC -> BTC-USD)."""
    base, quote = symmod.split(symbol)
    alias = QUOTE_ALIASES.get((venue, quote))
    return f"{base}-{alias}" if alias else symbol


class Group:
    """The books of one canonical symbol: their fee-adjusted tops, by slot."""

    __slots__ = ("eas", "ebs", "legs", "npresent", "partner")

    def __init__(self) -> None:
        self.partner: Group | None = None  # the spot/perp twin group (backend/basis.py)
        self.eas: list[float] = []  # ask x (1 + fee); +inf while the book is absent
        self.ebs: list[float] = []  # bid x (1 - fee); -inf while the book is absent
        self.legs: list[Leg] = []
        self.npresent = 0


class Base:
    """The books of one base asset that hold a LIVE quote, in the order they got it."""

    __slots__ = ("legs", "nsyms")

    def __init__(self) -> None:
        self.legs: dict[Leg, None] = {}
        self.nsyms = 0  # symbols (groups) with at least one book here


class Leg:
    """One venue's book of one canonical symbol."""

    __slots__ = ("asset", "base", "ccy", "dirs", "ea", "eb", "fee", "grp", "key", "live", "ma",
                 "mah", "mb", "notlive", "off", "opens", "perp", "q", "qmap", "slot", "sym", "uid",
                 "venue")

    def __init__(self, venue: str, sym: str, fee: float, base: Base, grp: Group,
                 uid: int, h: float) -> None:
        self.venue = venue
        self.sym = sym
        self.asset, self.ccy = basismod.instrument_assets(sym)
        self.perp = basismod.is_perp(sym)
        self.key = (venue, sym)
        self.fee = fee
        # Exactly edge.walk's factors, so ``bid * mb >= ask * mah`` is the walk's own
        # test of its first unit (mah = (1 + fee) x hurdle, as the walk forms it).
        self.ma = 1 + fee / 1e4
        self.mah = self.ma * h
        self.mb = 1 - fee / 1e4
        self.base = base
        self.grp = grp
        self.slot = len(grp.legs)
        grp.legs.append(self)
        grp.eas.append(INF)
        grp.ebs.append(-INF)
        self.uid = uid
        self.q: Quote | None = None  # the latest LIVE quote, None while absent
        self.live = 0  # model.live_ns(q): when the book was last known good
        #: Detector.book_state of this book is known and not LIVE (kept by on_book_state)
        self.notlive = False
        #: its venue or symbol is disabled (Detector.disabled_*; kept by _set_off)
        self.off = False
        self.qmap: dict[str, Quote] | None = None  # Detector.quotes[sym]
        self.ea = INF  # ask x (1 + fee) x hurdle
        self.eb = -INF  # bid x (1 - fee)
        #: other leg -> number of open windows between the two (either direction).
        self.opens: dict[Leg, int] = {}
        #: sell leg -> the direction buying here and selling there.
        self.dirs: dict[Leg, Dir] = {}


class Dir:
    """One direction (buy on one book, sell on another): its key and last walk."""

    __slots__ = ("asks", "bids", "key", "kind", "o", "params", "w")

    def __init__(self, buy: Leg, sell: Leg) -> None:
        self.key: Key = (buy.sym, buy.venue, sell.venue, sell.sym)
        self.kind = basismod.kind_of(buy.perp, sell.perp)
        #: Detector.open[key] while this direction's window is open, else None (the
        #: per-quote path reads it here instead of hashing the 4-tuple key)
        self.o: Any = None  # detector_windows.Window
        self.asks: list | None = None
        self.bids: list | None = None
        self.params: tuple = ()
        self.w: Walk | None = None
