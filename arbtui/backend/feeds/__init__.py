"""Venue adapters, one module per venue, all shaped like ``base.VenueFeed``."""

from __future__ import annotations

import importlib

from arbtui.backend.feeds.base import VenueFeed

_MODULES = {
    "binance": "BinanceFeed",
    "coinbase": "CoinbaseFeed",
    "kraken": "KrakenFeed",
    "bybit": "BybitFeed",
    "okx": "OkxFeed",
    "gemini": "GeminiFeed",
}


def feed_class(venue: str) -> type[VenueFeed]:
    """The adapter class for ``venue`` (imported on demand)."""
    mod = importlib.import_module(f"arbtui.backend.feeds.{venue}")
    return getattr(mod, _MODULES[venue])


def available() -> list[str]:
    out = []
    for v in _MODULES:
        try:
            feed_class(v)
        except (ModuleNotFoundError, AttributeError):
            continue
        out.append(v)
    return out
