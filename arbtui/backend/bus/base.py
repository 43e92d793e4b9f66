"""The bus interface every transport implements.

Publishers call ``publish`` (never blocks, never awaits a round trip); a role
that consumes a topic gets a ``Subscription`` and drains it in batches. The
embedded bus and the Kafka bus both hand out the same ``Subscription`` type, so
the detector and executor do not know which transport they run on.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

QUOTES = "quotes"
OPPORTUNITIES = "opportunities"
FILLS = "fills"
STATUS = "status"
#: The executor's free balances (model.WalletState), read by every detector.
WALLETS = "wallets"
#: Perp venue state (model.Funding: funding rate, next funding time, mark, index),
#: keyed by the perp symbol; every detector reads all of it (outside the Kafka
#: consumer group, like the rates), coalesced to the newest per venue and symbol.
FUNDING = "funding"
#: Operator commands (model.Control) and the roles' answers (model.ControlAck); every
#: instance of a role reads it (never through a consumer group) and nothing is dropped.
CONTROL = "control"
TOPICS = (QUOTES, OPPORTUNITIES, FILLS, STATUS, WALLETS, FUNDING, CONTROL)


def funding_key(f: Any) -> tuple[str, str]:
    """Coalesce key of a funding inbox: only the newest state per venue and symbol matters."""
    return (f.venue, f.symbol)


class Subscription:
    """A bounded inbox with an explicit overflow policy.

    With ``coalesce`` set, messages sharing a coalesce key replace each other
    (keep the newest quote per venue+symbol: a detector only ever wants the
    latest top of book, and an old one is worse than none). Without it the
    inbox is FIFO and drops the *oldest* message when full. A message replaced
    by a newer one of its key is counted in ``superseded`` (normal, by design);
    one shed because the inbox was full, in ``dropped`` (never mixed).
    """

    def __init__(self, topic: str, name: str, maxsize: int,
                 coalesce: Callable[[Any], Hashable] | None = None,
                 wake: asyncio.Event | None = None) -> None:
        self.topic = topic
        self.name = name
        self.maxsize = maxsize
        self.dropped = 0
        self.superseded = 0
        self.delivered = 0
        self._coalesce = coalesce
        self._latest: dict[Hashable, Any] = {}
        self._fifo: deque[Any] = deque()
        # A role reading several topics shares one ``wake`` event across its
        # subscriptions, so one await covers all of them.
        self._event = wake or asyncio.Event()
        self.closed = False
        #: Set by the consuming role: called with keys (normalized symbols) whose
        #: history it must forget, because a Kafka consumer-group rebalance moved
        #: their partition to or from another process. The embedded bus never calls it.
        self.on_reset: Callable[[set[str], str], None] | None = None
        #: Only these base assets' messages (a Kafka rates inbox); None = all.
        self.bases: frozenset[str] | None = None

    def __len__(self) -> int:
        return len(self._latest) if self._coalesce else len(self._fifo)

    def put(self, msg: Any) -> None:
        if self.closed:
            return
        if self._coalesce is not None:
            k = self._coalesce(msg)
            latest = self._latest
            if k in latest:
                self.superseded += 1
                del latest[k]  # re-insert so arrival order stays roughly fair
            elif len(latest) >= self.maxsize:
                latest.pop(next(iter(latest)))
                self.dropped += 1
            latest[k] = msg
        else:
            if len(self._fifo) >= self.maxsize:
                self._fifo.popleft()
                self.dropped += 1
            self._fifo.append(msg)
        self._event.set()

    def drain(self) -> list[Any]:
        """Everything pending, without waiting."""
        if self._coalesce is not None:
            out = list(self._latest.values())
            self._latest.clear()
        else:
            out = list(self._fifo)
            self._fifo.clear()
        self._event.clear()
        self.delivered += len(out)
        return out

    async def get_batch(self, timeout: float | None = None) -> list[Any]:
        """Wait until something is pending (or ``timeout`` passes), then drain."""
        if not len(self) and not self.closed:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return []
        return self.drain()

    def discard_where(self, pred: Callable[[Any], bool]) -> int:
        """Drop pending messages matching ``pred`` (a revoked partition's quotes
        must not reach the detector after it forgot those symbols)."""
        if self._coalesce is not None:
            gone = [k for k, m in self._latest.items() if pred(m)]
            for k in gone:
                del self._latest[k]
            return len(gone)
        keep = [m for m in self._fifo if not pred(m)]
        n = len(self._fifo) - len(keep)
        self._fifo = deque(keep)
        return n

    def close(self) -> None:
        self.closed = True
        self._event.set()


class BusError(Exception):
    """The transport cannot start (unreachable, unauthorized, misconfigured).

    The message is one line for the operator; the CLI prints it and exits 2.
    """


class Bus(ABC):
    kind: str = "?"

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def publish(self, topic: str, key: str, msg: Any) -> None:
        """Hand ``msg`` to the transport; never blocks. ``key`` is the normalized symbol."""

    @abstractmethod
    def subscribe(self, topic: str, name: str, *, maxsize: int | None = None,
                  coalesce: Callable[[Any], Hashable] | None = None,
                  wake: asyncio.Event | None = None) -> Subscription: ...

    def stats(self) -> dict[str, Any]:
        """Counters the UI and status line show (queue depths, drops, broker state)."""
        return {}


def quote_key(q: Any) -> tuple[str, str]:
    return (q.venue, q.symbol)
