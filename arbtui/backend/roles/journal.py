"""The journal role: every opportunity event and fill on the bus -> SQLite.

It reads the opportunities and fills topics with deep inboxes (100 000 each:
the journal is the record, so it must not be the reader that drops) and
appends to ``backend.journal.Journal``, whose writer thread commits in
batches. A journal that cannot be opened is logged and counted as a role
failure (shown on the status line); everything else keeps running. On stop
the inboxes are drained once more and the journal flushed and closed.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from typing import Any

from arbtui.backend.bus import FILLS, OPPORTUNITIES, Bus
from arbtui.backend.journal import Journal, resolve_path
from arbtui.backend.roles.base import Role
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.config import JournalConfig

log = logging.getLogger("arbtui.engine")


class JournalRole(Role):
    name = "journal"

    def __init__(self, cfg: JournalConfig, bus: Bus, sup: Supervisor) -> None:
        self.cfg = cfg
        self.bus = bus
        self.sup = sup
        self.journal: Journal | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        path = resolve_path(self.cfg.path)
        try:
            self.journal = Journal(path, self.cfg.flush_ms)
        except (OSError, sqlite3.Error) as e:
            log.error("journal off: cannot open %s: %s", path, e)
            self.sup.count_failure("journal")
            return
        self._task = self.sup.spawn("journal", self._loop)

    async def _loop(self) -> None:
        journal = self.journal
        assert journal is not None
        wake = asyncio.Event()
        subs = [self.bus.subscribe(OPPORTUNITIES, "journal", maxsize=100_000, wake=wake),
                self.bus.subscribe(FILLS, "journal", maxsize=100_000, wake=wake)]
        try:
            while not self.sup.stopping:
                if not any(len(s) for s in subs):
                    try:
                        await asyncio.wait_for(wake.wait(), 0.25)
                    except TimeoutError:
                        continue
                wake.clear()
                for s in subs:
                    for e in s.drain():
                        journal.append(e)
        finally:
            for s in subs:
                for e in s.drain():
                    journal.append(e)

    async def stop(self) -> None:
        if self._task is not None:
            await self.sup.cancel([self._task])
            self._task = None
        if self.journal is not None:
            self.journal.close()

    def state(self) -> dict[str, Any] | None:
        """Path, appended/written counts, errors (a new dict), or None when not open."""
        return self.journal.stats() if self.journal is not None else None
