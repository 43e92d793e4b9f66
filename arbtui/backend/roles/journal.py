"""The journal role: every opportunity event and fill on the bus -> SQLite.

It reads the opportunities and fills topics with deep inboxes (100 000 each:
the journal is the record, so it must not be the reader that drops) and
appends to ``backend.journal.Journal``, whose writer thread commits in
batches. A journal that cannot be opened is logged and counted as a role
failure (shown on the status line); everything else keeps running. On stop
the inboxes are drained once more and the journal flushed and closed.

With ``windows`` (an ``OpenWindows``; Kafka) the events are reconciled
against the detectors' open-set snapshots: a window its owner no longer has
open (an event lost in an outage, a detector killed) gets a CLOSED row with
the reason, and a late event for a window already closed is skipped, so the
journal never keeps an id opened without a close. At start, what the journal
holds as opened but never closed (a killed predecessor's) joins that
reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbtui.backend.bus import FILLS, OPPORTUNITIES, Bus
from arbtui.backend.journal import Journal, resolve_path
from arbtui.backend.reconcile import OpenWindows
from arbtui.backend.roles.base import Role
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.config import JournalConfig
from arbtui.model import OpenSet, Opportunity

log = logging.getLogger("arbtui.engine")


class JournalRole(Role):
    name = "journal"

    def __init__(self, cfg: JournalConfig, bus: Bus, sup: Supervisor, *,
                 windows: OpenWindows | None = None,
                 up_since: Callable[[], float | None] = lambda: None,
                 on_reconciled: Callable[[Opportunity], None] | None = None,
                 mode: str = "live", catch: Any = None) -> None:
        """``on_reconciled`` sees each CLOSED the reconciliation wrote (the engine's ring);
        ``mode`` (live/demo/replay) picks the default file and is recorded with the session;
        ``catch`` (a ``backend.calibration.CatchJournal``) adds the catch_* rows."""
        self.cfg = cfg
        self.mode = mode
        self.bus = bus
        self.sup = sup
        self.windows = windows
        self.up_since = up_since
        self.on_reconciled = on_reconciled
        self.journal: Journal | None = None
        self.catch = catch
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        path = resolve_path(self.cfg.path, self.mode)
        try:
            self.journal = Journal(path, self.cfg.flush_ms, mode=self.mode)
        except (OSError, sqlite3.Error) as e:
            log.error("journal off: cannot open %s: %s", path, e)
            self.sup.count_failure("journal")
            return
        self.journal.catch = self.catch
        # Subscribed here (see DetectRole.start): nothing published after start() is missed.
        self._wake = wake = asyncio.Event()
        self._subs = [self.bus.subscribe(OPPORTUNITIES, "journal", maxsize=100_000, wake=wake),
                      self.bus.subscribe(FILLS, "journal", maxsize=100_000, wake=wake)]
        if self.windows is not None:
            self._recover()
        self._task = self.sup.spawn("journal", self._loop)

    def _recover(self) -> None:
        """What a killed predecessor left open is reconciled like the rest (its owner's
        snapshots or silence close it); a window with no owner (one process) has nobody
        left to close it."""
        journal, windows = self.journal, self.windows
        assert journal is not None and windows is not None
        now, wall = time.monotonic(), time.time_ns()
        for o in journal.unclosed():
            if o.owner:
                windows.on_event(o, now)
            else:
                c = windows.close(o, "owner lost", wall)
                journal.append(c)
                if self.on_reconciled is not None:
                    self.on_reconciled(c)

    async def _loop(self) -> None:
        journal = self.journal
        assert journal is not None
        windows = self.windows
        wake, subs = self._wake, self._subs

        def reconciled(closes: list[Opportunity]) -> None:
            for c in closes:
                journal.append(c)
                if self.on_reconciled is not None:
                    self.on_reconciled(c)

        def take(events: list) -> None:
            now, wall = time.monotonic(), time.time_ns()
            for e in events:
                if isinstance(e, OpenSet):
                    if windows is not None:
                        reconciled(windows.on_snapshot(e, now, wall))
                    continue
                if windows is not None and isinstance(e, Opportunity) \
                        and not windows.on_event(e, now):
                    continue
                journal.append(e)

        next_sweep = 0.0
        try:
            # It runs until stop() cancels it (its last drain is in the finally): it must
            # not quit when the process starts stopping, while the executor, running
            # until its own cancellation, can still publish a last fill.
            while not self.stopping:
                if not any(len(s) for s in subs):
                    try:
                        await asyncio.wait_for(wake.wait(), 0.25)
                    except TimeoutError:
                        pass  # on to the reconcile sweep
                wake.clear()
                for s in subs:
                    take(s.drain())
                if windows is not None and time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + 0.5
                    reconciled(windows.sweep(time.monotonic(), self.up_since(), time.time_ns()))
        finally:
            for s in subs:
                take(s.drain())

    async def stop(self) -> None:
        self.stopping = True
        if self._task is not None:
            await self.sup.cancel([self._task])
            self._task = None
        if self.journal is not None:
            self.journal.close()

    @property
    def path(self) -> Path | None:
        """The journal file, or None when it is not open (off, or it could not be opened)."""
        return self.journal.path if self.journal is not None else None

    def state(self) -> dict[str, Any] | None:
        """Path, appended/written counts, errors (a new dict), or None when not open."""
        return self.journal.stats() if self.journal is not None else None
