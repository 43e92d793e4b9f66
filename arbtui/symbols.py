"""Normalized symbols (``BASE-QUOTE``), venue symbol formats, quote-currency groups.

Normalized symbols are our own format, so splitting one on "-" is exact. Venue
symbols are never split: ``BTCUSDT`` could be BTC-USDT or BTCU-SDT. A venue's
map comes from its instrument list (base/quote fields), with the adapter's
static table (``arbtui.venues``) as the offline fallback; the reverse map is
derived from it.
"""

from __future__ import annotations

from arbtui import venues


def split(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("-")
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
    return {s: venue_symbol(venue, s) for s in symbols}


def group_of(ccy: str, groups: list[list[str]]) -> int | None:
    for i, g in enumerate(groups):
        if ccy in g:
            return i
    return None
