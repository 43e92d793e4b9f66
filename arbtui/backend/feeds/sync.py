"""Typed per-book sync state: where one venue+symbol book stands against the
venue's stream (``SymbolBook.sync``), instead of string keys in a dict.

``BookState`` (model.py) is what the rest of arbtui sees (SYNCING, LIVE, ...);
``SyncPhase`` is the adapter's own bookkeeping of HOW it gets a trustworthy
book: waiting for the first snapshot, waiting for a snapshot after a resync,
bridging a REST snapshot with buffered updates, or following the stream.

Venues whose only re-snapshot is unsubscribe + subscribe on the same socket
(Kraken, Bybit) need no phase of their own: the book is trusted exactly while
it is LIVE, and ``resub`` names the resubscribe in flight.

An adapter whose venue needs more per-book fields subclasses ``BookSync``
(a slotted dataclass, so a misspelt field is an error, not a new key) and
names it in ``VenueFeed.sync_state``. Every reset builds a fresh instance.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from arbtui.backend.feeds.bridge import Pending


class SyncPhase(enum.Enum):
    #: Since (re)connecting nothing is trusted; the venue's first book message
    #: (or, for REST-bridged venues, the bridge) makes the book.
    NEW = "new"
    #: The book was dropped (gap, checksum, crossed, bad frame): only a fresh
    #: snapshot may rebuild it, updates meanwhile are ignored or buffered.
    AWAIT_SNAPSHOT = "await_snapshot"
    #: Updates are buffered while a REST snapshot is fetched (``bridge.py``).
    BRIDGING = "bridging"
    #: The book follows the stream message by message.
    SYNCED = "synced"


# Module constants: an Enum member read through its class costs ~60 ns, and
# these are compared once per book message.
NEW = SyncPhase.NEW
AWAIT_SNAPSHOT = SyncPhase.AWAIT_SNAPSHOT
BRIDGING = SyncPhase.BRIDGING
SYNCED = SyncPhase.SYNCED


@dataclass(slots=True, eq=False)
class BookSync:
    phase: SyncPhase = NEW
    #: Updates buffered for a REST-snapshot bridge (Binance, OKX when its
    #: in-band snapshot is missing); bounded by the adapter.
    pending: list[Pending] = field(default_factory=list)
    #: Token of the resubscribe in flight (``VenueFeed.resubscribe_book``), so
    #: a late ack or deadline of an older attempt can be told apart.
    resub: Any = None
    #: Receive time at which the book was first seen crossed (``withhold_crossed``).
    crossed_since: int | None = None
