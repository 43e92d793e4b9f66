"""A consumer's set of open windows, kept honest by the detectors' open-set snapshots.

On Kafka an opportunity window is owned by one detector process (its
``owner``). Its OPENED and CLOSED events travel as reliable messages, but a
consumer can still be left holding a window nobody will close: the owner was
killed before it could close it, the reliable outbox overflowed in a long
outage, or the consumer itself started after the window opened. So every
detector publishes an ``OpenSet`` periodically, on (re)connect and after a
rebalance, and every consumer that keeps windows (the viewer, the execute
role's journal) reconciles against it:

- a window its owner's snapshot no longer lists, although it opened before that
  snapshot was taken, is closed with ``closed at detector (event lost)``; it must
  be missing from two snapshots in a row, because a snapshot and the CLOSED event
  it overtook may travel on different partitions;
- the windows of an owner silent for ``owner_timeout_s`` while the bus is up are
  closed with ``owner lost``; when a newer detector process appears on the same
  host while the old one is silent, they close at once with ``detector restarted``;
- windows a snapshot lists that the consumer never saw open are added;
- a snapshot taken before this consumer started (history read with ``--since``)
  or older than a few intervals (a partition re-read after an outage) is ignored:
  out of order with the events it would judge, it proves nothing; a fresh one
  follows within an interval;
- an id once closed is never reopened: a late OPENED/UPDATED for it (a retried
  record arriving after the snapshot that closed it) is ignored.

Windows without an owner (one process, the embedded bus) are never reconciled.
The caller passes the times in (monotonic seconds for silence, the wall-clock ns
stamped on synthesized CLOSED events), so replay and live run the same code.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import msgspec

from arbtui.model import OpenSet, OppEvent, Opportunity

LOST_EVENT = "closed at detector (event lost)"
OWNER_LOST = "owner lost"
RESTARTED = "detector restarted"

_CLOSED_MEMORY = 100_000  # ids remembered as closed (far more than ever open at once)


@dataclass
class _Owner:
    host: str = ""
    started_ns: int = 0
    last_seen: float = 0.0  # monotonic s: last snapshot or event from it
    last_seq: int = -1
    missing: set[str] = field(default_factory=set)  # ids absent from its last snapshot


class OpenWindows:
    def __init__(self, owner_timeout_s: float = 8.0, snapshot_interval_s: float = 2.0,
                 not_before_ns: int = 0) -> None:
        self.owner_timeout_s = owner_timeout_s
        self.snapshot_interval_s = snapshot_interval_s
        self.open: dict[str, Opportunity] = {}
        self.owners: dict[str, _Owner] = {}
        self.reconciled: dict[str, int] = {}  # synthesized closes, by reason
        self.learned = 0  # windows first seen in a snapshot (their OPENED never arrived)
        self.ignored_late = 0  # events for ids already closed
        self.stale_snapshots = 0
        self._stale_ns = int(max(5.0, 2.5 * snapshot_interval_s) * 1e9)
        self.not_before_ns = not_before_ns  # snapshots taken before this are history
        self._closed: set[str] = set()
        self._closed_order: deque[str] = deque()

    # ------------------------------------------------------------------ inputs

    def on_event(self, o: Opportunity, now: float) -> bool:
        """Apply one event; False if it must be ignored (its window is already closed)."""
        if o.id in self._closed:
            self.ignored_late += 1
            return False
        if o.owner:
            self._owner(o.owner, now)
        if o.event is OppEvent.CLOSED:
            self.open.pop(o.id, None)
            self._remember_closed(o.id)
        else:
            self.open[o.id] = o
        return True

    def on_snapshot(self, s: OpenSet, now: float, wall_ns: int) -> list[Opportunity]:
        """Reconcile against one owner's open set; returns the CLOSED events synthesized."""
        if s.ts_ns < self.not_before_ns or wall_ns - s.ts_ns > self._stale_ns:
            self.stale_snapshots += 1
            return []
        ow = self.owners.get(s.owner)
        out: list[Opportunity] = []
        if ow is None:
            ow = self.owners[s.owner] = _Owner(host=s.host, started_ns=s.started_ns)
            # A newer process on the same host while an older one is silent: a restart.
            for name, other in list(self.owners.items()):
                if (name != s.owner and other.host == s.host and other.started_ns < s.started_ns
                        and now - other.last_seen > 1.5 * self.snapshot_interval_s):
                    out += self._close_owner(name, RESTARTED, wall_ns)
        if s.seq <= ow.last_seq:
            return out  # an older snapshot overtaken by a newer one
        ow.last_seq = s.seq
        ow.last_seen = now
        listed = {o.id for o in s.open}
        missing = {i for i, o in self.open.items()
                   if o.owner == s.owner and i not in listed and o.opened_ts_ns <= s.ts_ns}
        for i in missing & ow.missing:
            out.append(self._close(self.open[i], LOST_EVENT, wall_ns))
        ow.missing = missing - ow.missing
        for o in s.open:
            if o.id not in self.open and o.id not in self._closed:
                self.open[o.id] = o
                self.learned += 1
        return out

    def sweep(self, now: float, up_since: float | None, wall_ns: int) -> list[Opportunity]:
        """Close the windows of owners silent for owner_timeout_s while the bus was up
        (``up_since`` None = the bus is down now: nobody can be judged)."""
        if up_since is None:
            return []
        out: list[Opportunity] = []
        for name, ow in list(self.owners.items()):
            if now - max(ow.last_seen, up_since) > self.owner_timeout_s:
                out += self._close_owner(name, OWNER_LOST, wall_ns)
        return out

    # ------------------------------------------------------------------ helpers

    def _owner(self, name: str, now: float) -> _Owner:
        ow = self.owners.get(name)
        if ow is None:
            ow = self.owners[name] = _Owner()
        ow.last_seen = now
        return ow

    def _close_owner(self, name: str, reason: str, wall_ns: int) -> list[Opportunity]:
        self.owners.pop(name, None)
        return [self._close(o, reason, wall_ns) for o in list(self.open.values())
                if o.owner == name]

    def close(self, o: Opportunity, reason: str, wall_ns: int) -> Opportunity:
        """Close one window now (its CLOSED event, with the reason)."""
        return self._close(o, reason, wall_ns)

    def _close(self, o: Opportunity, reason: str, wall_ns: int) -> Opportunity:
        self.open.pop(o.id, None)
        self._remember_closed(o.id)
        self.reconciled[reason] = self.reconciled.get(reason, 0) + 1
        return msgspec.structs.replace(
            o, event=OppEvent.CLOSED, reason=reason, ts_ns=wall_ns,
            lifetime_ms=max(0.0, (wall_ns - o.opened_ts_ns) / 1e6) if o.opened_ts_ns else 0.0,
            buy_book=[], sell_book=[])

    def _remember_closed(self, i: str) -> None:
        if i in self._closed:
            return
        self._closed.add(i)
        self._closed_order.append(i)
        if len(self._closed_order) > _CLOSED_MEMORY:
            self._closed.discard(self._closed_order.popleft())

    def stats(self) -> dict:
        return {"open": len(self.open), "open_ids": sorted(self.open)[:500],
                "owners": sorted(self.owners),
                "reconciled": dict(self.reconciled), "learned": self.learned,
                "ignored_late": self.ignored_late, "stale_snapshots": self.stale_snapshots}
