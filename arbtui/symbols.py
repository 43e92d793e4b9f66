"""Normalized symbols (``BASE-QUOTE``), venue symbol formats, quote-currency groups.

Normalized symbols are our own format, so splitting one on "-" is exact. Venue
symbols are never split: ``BTCUSDT`` could be BTC-USDT or BTCU-SDT. A venue's
map comes from its instrument list (base/quote fields), with the adapter's
static table (``arbtui.venues``) as the offline fallback; the reverse map is
derived from it.
"""

from __future__ import annotations

from arbtui import venues

#: ``BTC-USDT-PERP`` is the perpetual on BTC-USDT (``arbtui.venues``).
is_perp = venues.is_perp
underlying = venues.underlying


def split(symbol: str) -> tuple[str, str]:
    """(base, quote); a perp ``BTC-USDT-PERP`` splits as its underlying (BTC, USDT):
    its sizes are base units and its prices and fees are in the quote currency."""
    base, _, quote = venues.underlying(symbol).partition("-")
    return base, quote


def base_of(symbol: str) -> str:
    return split(symbol)[0]


def quote_of(symbol: str) -> str:
    return split(symbol)[1]


def venue_symbol(venue: str, symbol: str) -> str:
    """Compose the venue's spelling from a normalized symbol (used by the simulator).

    How each venue joins BASE and QUOTE is its registry entry's ``wire_symbol``."""
    return venues.get(venue).compose(symbol)


def sim_symbol_map(venue: str, symbols: list[str]) -> dict[str, str]:
    """The simulator's spelling of the symbols ``venue`` serves (a spot venue
    serves spot symbols, a perp venue ``-PERP`` ones)."""
    spec = venues.get(venue)
    return {s: spec.compose(s) for s in symbols if spec.serves(s)}


def perp_of(symbol: str) -> str:
    """``BTC-USDT`` -> ``BTC-USDT-PERP``."""
    return venues.underlying(symbol) + venues.PERP_SUFFIX


def group_of(ccy: str, groups: list[list[str]]) -> int | None:
    for i, g in enumerate(groups):
        if ccy in g:
            return i
    return None
