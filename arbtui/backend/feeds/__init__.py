"""Venue adapters, one module per venue, all shaped like ``base.VenueFeed``.

Which class speaks which venue is declared once, in ``arbtui.venues``."""

from __future__ import annotations

from arbtui import venues
from arbtui.backend.feeds.base import VenueFeed


def feed_class(venue: str) -> type[VenueFeed]:
    """The adapter class for ``venue`` (imported on demand from its registry entry)."""
    return venues.get(venue).adapter_class()


def available() -> list[str]:
    """Every registered venue, its adapter imported: a broken adapter module fails
    loudly here instead of silently leaving the venue out."""
    for v in venues.names():
        feed_class(v)
    return list(venues.names())
