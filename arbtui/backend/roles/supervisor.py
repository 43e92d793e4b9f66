"""Keeps role loops running: a crash is logged, counted by name and the loop restarted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from arbtui.backend.clock import LIVE, Clock

log = logging.getLogger("arbtui.engine")


class Supervisor:
    """Spawns role loops as tasks on the running loop and restarts them when they fail.

    ``failures`` (name -> count) is shown on the status line and in the
    dashboard header: a role that keeps crashing is never silent. A loop that
    returns normally is done; one that raises is restarted after 0.5 s,
    doubling up to 30 s. Every role loop checks ``stopping`` (all roles) and its own
    role's ``stopping`` (set by that role's ``stop``).
    """

    def __init__(self, clock: Clock = LIVE) -> None:
        self.clock = clock
        self.failures: dict[str, int] = {}
        self.tasks: list[asyncio.Task] = []
        self.stopping = False

    def count_failure(self, name: str) -> None:
        self.failures[name] = self.failures.get(name, 0) + 1

    def spawn(self, name: str, fn: Callable[[], Awaitable[None]]) -> asyncio.Task:
        async def supervised() -> None:
            delay = 0.5
            while not self.stopping:
                try:
                    await fn()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.count_failure(name)
                    log.exception("role %s failed; restarting in %.1fs", name, delay)
                    await self.clock.sleep(delay)
                    delay = min(delay * 2, 30.0)

        t = asyncio.get_running_loop().create_task(supervised(), name=name)
        self.tasks.append(t)
        return t

    @staticmethod
    async def cancel(tasks: Iterable[asyncio.Task]) -> None:
        """Cancel ``tasks`` and wait until each has finished."""
        tasks = list(tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Stop everything still running (roles normally cancel their own loops first)."""
        self.stopping = True
        await self.cancel(self.tasks)
