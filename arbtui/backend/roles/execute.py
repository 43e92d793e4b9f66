"""The execute role: opportunities -> simulated orders -> fills, and the wallet state.

It runs an ``Executor`` (paper wallets, IOC orders, PnL) on the bus. It keeps
its OWN latest quote and book state per venue+symbol from the quote and
status topics, so it works the same in-process and as a separate process on
Kafka, and an order's fill reads the book as it is at arrival: both
subscriptions are drained right before each fill.

Whenever its free balances change (an order reserves, a fill settles,
execution is switched) it publishes a ``WalletState`` on the wallets topic,
which every detector sizes from; on Kafka it also re-states it every 5 s for
detectors that start later. The executor runs even while execution is off,
so switching it on acts at once.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Any

from arbtui.backend.bus import FILLS, OPPORTUNITIES, QUOTES, STATUS, WALLETS, Bus
from arbtui.backend.bus.base import quote_key
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.detector import canonical_symbol
from arbtui.backend.executor import Executor, Order
from arbtui.backend.roles.base import Role
from arbtui.backend.roles.control import finite, flag
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.config import MAX_BPS
from arbtui.model import BookState, BookStatus, Fill, Opportunity, Quote

#: How often the wallet state is re-stated on Kafka (seconds).
RESTATE_S = 5.0
#: The bus key of wallet states (one stream, not per symbol).
WALLET_KEY = "wallets"


class ExecuteRole(Role):
    name = "execute"

    def __init__(self, executor: Executor, bus: Bus,
                 on_fill: Callable[[Fill], None] | None = None, *,
                 sup: Supervisor | None = None, clock: Clock = LIVE) -> None:
        """``on_fill`` sees every fill published (the engine's event ring). Without a
        supervisor the role is driven by hand (``step``), as the tests do. Orders wait
        for their arrival on ``clock`` (the one the executor's timestamps come from):
        in a replay, on recorded time, so fills do not depend on how fast it runs."""
        self.ex = executor
        self.clock = clock
        self.bus = bus
        self.on_fill = on_fill
        self.sup = sup
        self.books: dict[tuple[str, str], Quote] = {}
        self.book_state: dict[tuple[str, str], BookState] = {}
        self._heap: list[tuple[int, int, Order]] = []
        self._wake = asyncio.Event()
        self._quotes = bus.subscribe(QUOTES, "executor", coalesce=quote_key)
        self._status = bus.subscribe(STATUS, "executor")
        self._opps = bus.subscribe(OPPORTUNITIES, "executor", wake=self._wake)
        self._wallets_dirty = True
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        assert self.sup is not None, "ExecuteRole.start needs a supervisor"
        self._tasks = [self.sup.spawn("executor", self.run)]
        if self.bus.kind == "kafka":
            self._tasks.append(self.sup.spawn("executor:restate", self._restate_loop))

    async def stop(self) -> None:
        self.stopping = True
        self._wake.set()
        if self.sup is not None:
            await self.sup.cancel(self._tasks)
        self._tasks = []

    # ------------------------------------------------------------------ the loop

    def _drain_books(self) -> None:
        for st in self._status.drain():
            if isinstance(st, BookStatus):
                k = (st.venue, canonical_symbol(st.venue, st.symbol))
                self.book_state[k] = st.state
                if st.state is not BookState.LIVE:
                    self.books.pop(k, None)
        for q in self._quotes.drain():
            k = (q.venue, canonical_symbol(q.venue, q.symbol))
            if self.book_state.get(k, BookState.LIVE) is BookState.LIVE:
                self.books[k] = q

    def _send(self, orders: list[Order]) -> None:
        for o in orders:
            heapq.heappush(self._heap, (o.arrive_ns, o.id, o))
        if orders:
            self._wallets_dirty = True  # reservations changed the free balances
            self._wake.set()

    def step(self) -> None:
        """Process everything due now: new opportunities, then arrived orders; then
        publish the wallet state if a balance or reservation changed."""
        for opp in self._opps.drain():
            if isinstance(opp, Opportunity):
                self._send(self.ex.on_opportunity(opp))
        now = self.ex.clock()
        while self._heap and self._heap[0][0] <= now:
            _, _, o = heapq.heappop(self._heap)
            self._drain_books()
            k = (o.venue, o.symbol)
            book = self.books.get(k)
            live = book is not None and self.book_state.get(k, BookState.LIVE) is BookState.LIVE
            fills, follow = self.ex.on_arrival(o, book, live)
            self._wallets_dirty = True
            for f in fills:
                self.bus.publish(FILLS, f.symbol, f)
                if self.on_fill is not None:
                    self.on_fill(f)
            self._send(follow)
        if self._wallets_dirty:
            self.publish_wallets()

    def publish_wallets(self) -> None:
        self._wallets_dirty = False
        self.bus.publish(WALLETS, WALLET_KEY, self.ex.wallet_state())

    async def run(self) -> None:
        while not self.stopping:
            # Drain books every turn (not only at arrivals) so the status inbox never
            # overflows while execution is off.
            self._drain_books()
            self.step()
            timeout = 0.25
            if self._heap:
                # Capped: under replay the clock is virtual and may run faster than wall time.
                timeout = min(0.25, max(0.0, (self._heap[0][0] - self.ex.clock()) / 1e9))
            if timeout > 0 and not len(self._opps):
                self._wake.clear()
                await self.clock.wait(self._wake, timeout)
            else:
                await asyncio.sleep(0)

    async def _restate_loop(self) -> None:
        while not self.stopping:
            await self.clock.sleep(RESTATE_S)
            self.publish_wallets()

    # ------------------------------------------------------------------ commands

    def set_enabled(self, enabled: bool) -> None:
        self.ex.set_enabled(enabled)
        self.publish_wallets()  # detectors stop (or start) sizing to the wallets at once

    def set_threshold(self, min_net_bps: float) -> None:
        self.ex.set_threshold(min_net_bps)

    def apply_control(self, cmd: str, args: dict[str, Any]) -> None:
        """A control-topic command this role owns (``roles.control.OWNERS``)."""
        if cmd == "execution":
            on = flag(args)
            self.ex.cfg.enabled = on  # what this process's own status line reports
            self.set_enabled(on)
        elif cmd == "exec_threshold":
            self.set_threshold(finite(args, "min_net_bps", -MAX_BPS, MAX_BPS))
        else:
            raise ValueError(f"{cmd}: not an executor command")

    def control_state(self) -> dict[str, Any]:
        return {"enabled": self.ex.enabled, "min_net_bps": self.ex.cfg.min_net_bps}

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """Wallets, PnL, counters (``Executor.snapshot``: new JSON-ready dicts)."""
        return self.ex.snapshot()
