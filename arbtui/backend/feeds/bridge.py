"""The REST-snapshot bridge, shared by the venues whose stream carries only
changes (Binance always; OKX when its in-band snapshot does not come).

The rule (docs/protocols.md, "Bridging a REST snapshot"): buffer the stream's
updates from before the snapshot is requested; when it arrives (with the venue
id it is current to), drop the buffered updates it already contains; the
first one kept must start at or before the snapshot's id (else the snapshot is
older than everything we hold: fetch another); each later one must continue
the one before it. Then the kept updates are applied on top of the snapshot.

Ids are normalized per venue into ``Pending(first, last)``: the update moves
the book from venue id ``first`` to ``last``. Binance: ``first = U - 1``,
``last = u``, and overlaps are legal (``U <= last + 1``). OKX: ``first =
prevSeqId``, ``last = seqId``, and the chain is exact (``prevSeqId == last``).
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple


class Pending(NamedTuple):
    """One buffered update: from venue id ``first`` to ``last``; ``msg`` is the
    venue's own message, applied by the adapter once the bridge holds."""

    first: int
    last: int
    msg: Any


class Outcome(enum.Enum):
    #: The snapshot and the kept updates form one unbroken chain.
    OK = "ok"
    #: The first update kept starts after the snapshot: an older snapshot than
    #: the buffer (or a hole right at it). Fetch another; keep the buffer.
    TOO_OLD = "too_old"
    #: Two kept updates do not chain: the buffer itself lost something.
    GAP = "gap"


class Plan(NamedTuple):
    outcome: Outcome
    kept: list[Pending]
    #: With GAP: index in ``kept`` of the first update that does not chain.
    gap_at: int = -1


def push(pending: list[Pending], item: Pending, limit: int) -> bool:
    """Buffer ``item``. True when the buffer was full and restarted (bounded
    memory; a snapshot that old would be refused anyway)."""
    over = len(pending) >= limit
    if over:
        pending.clear()
    pending.append(item)
    return over


def bridge(snap_id: int, pending: list[Pending], *, exact: bool) -> Plan:
    """Judge a snapshot current to ``snap_id`` against the buffered updates.

    ``exact``: each update must start exactly where the previous ended (OKX);
    otherwise it may overlap it but not skip past it (Binance)."""
    kept = [p for p in pending if p.last > snap_id]
    if kept and kept[0].first > snap_id:
        return Plan(Outcome.TOO_OLD, kept)
    last = snap_id
    for i, p in enumerate(kept):
        if i and (p.first != last if exact else p.first > last):
            return Plan(Outcome.GAP, kept, i)
        last = p.last
    return Plan(Outcome.OK, kept)
