"""The role interface and the process's picture of the market."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from arbtui import symbols as symmod
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.metrics import Rate
from arbtui.model import Funding, Quote


class Role(ABC):
    """One stage of the pipeline: ``start``, ``stop``, ``state`` (see the package docstring)."""

    name: ClassVar[str]
    #: Set by ``stop`` BEFORE it cancels the role's loops, and checked by every loop each
    #: turn: on CPython 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives
    #: in the turn its awaitable completes, and the loop must still end.
    stopping: bool = False

    @abstractmethod
    async def start(self) -> None:
        """Subscribe and spawn the role's loops; returns once it runs."""

    @abstractmethod
    async def stop(self) -> None:
        """Cancel the role's loops and release what it holds. Idempotent."""

    @abstractmethod
    def state(self) -> Any:
        """An immutable sample (frozen dataclass, Struct copies, or plain new dicts)."""


class Market:
    """The latest LIVE quote per (venue, symbol) this process has seen, and the quote rate.

    Written by the first role that sees quotes in the process (the feed role
    when it runs here, else the detect or view role, which read them off the
    bus); a book that leaves LIVE is dropped at once so no one shows a price
    its feed no longer trusts.
    """

    def __init__(self, clock: Clock = LIVE) -> None:
        self.latest: dict[tuple[str, str], Quote] = {}
        #: The latest perp venue state per (venue, perp symbol) (the funding topic).
        self.funding: dict[tuple[str, str], Funding] = {}
        self.rate = Rate(clock)

    def add(self, q: Quote) -> None:
        self.latest[(q.venue, q.symbol)] = q
        self.rate.add()

    def add_batch(self, batch: list[Quote]) -> None:
        latest = self.latest
        for q in batch:
            latest[(q.venue, q.symbol)] = q
        self.rate.add(len(batch))

    def add_funding(self, f: Funding) -> None:
        self.funding[(f.venue, f.symbol)] = f

    def drop(self, venue: str, symbol: str) -> None:
        self.latest.pop((venue, symbol), None)

    def drop_venue(self, venue: str) -> None:
        for k in [k for k in self.latest if k[0] == venue]:
            del self.latest[k]

    def drop_bases(self, bases: set[str]) -> None:
        for k in [k for k in self.latest if symmod.base_of(k[1]) in bases]:
            del self.latest[k]
