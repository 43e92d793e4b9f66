"""Venue adapters, one module per venue, all shaped like ``base.VenueFeed``.

Which class speaks which venue is declared once, in ``arbtui.venues``."""

from __future__ import annotations

from arbtui import venues
from arbtui.backend.feeds.base import VenueFeed


def feed_class(venue: str) -> type[VenueFeed]:
    """The adapter class for ``venue`` (imported on demand from its registry entry)."""
    return venues.get(venue).adapter_class()


def available() -> list[str]:
    out = []
    for v in venues.names():
        try:
            feed_class(v)
        except (ModuleNotFoundError, AttributeError):
            continue
        out.append(v)
    return out
