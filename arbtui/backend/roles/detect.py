"""The detect role: quotes, book states and wallet states from the bus -> opportunities.

Everything the detector acts on arrives as a bus message, whether the feeds
and the executor run in this process or in others: quotes (coalesced to the
newest per venue+symbol), book states (a book that leaves LIVE closes what
used it at once), the executor's wallet state (``model.WalletState``: the
free balances the depth walk may size against), and the perp venues' funding
states (``model.Funding``, newest per book: carried by basis and perp windows,
``backend/basis.py``). So one process and Kafka roles size and decide the same.

Each pass applies wallet states, then book states, then the whole quote batch
before any pair is judged (``Detector.on_quotes``). A separate loop sweeps
every 0.1 s for windows whose legs went stale: staleness is the absence of a
quote, so nothing else would close them.

On Kafka: quotes are shared out by base asset across the detectors of one
consumer group, so the conversion books (USDT-USD for USDT) are read outside
the group from just their partitions, by every detector. When a rebalance
moves a partition, the bus calls ``forget`` with its symbols and the detector
starts those base assets clean (the conversion books excepted). Every window
carries this process's ``owner`` id, and the role publishes its open set
(``model.OpenSet``) on (re)connect, after a rebalance and every
``bus.kafka.snapshot_interval_s`` so viewers and journals can reconcile
(``backend.reconcile``); on stop every open window is closed, because no
other process would ever close what this one opened.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from arbtui import symbols as symmod
from arbtui.backend.bus import FUNDING, OPPORTUNITIES, QUOTES, STATUS, WALLETS, Bus
from arbtui.backend.bus.base import Subscription, funding_key, quote_key
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.detector import Detector
from arbtui.backend.metrics import Latency
from arbtui.backend.roles.base import Market, Role
from arbtui.backend.roles.control import finite, flag
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.config import MAX_BPS, MIN_QUOTE_AGE_MS
from arbtui.model import BookState, BookStatus, Funding, OpenSet, Opportunity, WalletState, live_ns

log = logging.getLogger("arbtui.engine")

#: How often open windows are checked for stale legs (seconds).
SWEEP_S = 0.1


def _one(_msg: Any) -> int:
    return 0  # the wallet inbox keeps only the newest state


@dataclass(frozen=True)
class DetectState:
    """What the detector applies and holds, copied out for a dashboard frame."""

    min_net_bps: float
    max_quote_age_ms: float
    disabled_venues: frozenset[str]
    disabled_symbols: frozenset[str]
    fees: Mapping[str, float]
    open: tuple[Opportunity, ...]
    #: counters, blocked comparisons, clock offsets, lifetimes (Detector.status)
    status: Mapping[str, Any]
    #: whether sizes are capped by wallets received on the bus
    sized_to_wallets: bool


class DetectRole(Role):
    name = "detect"

    def __init__(self, detector: Detector, bus: Bus, sup: Supervisor, *,
                 on_event: Callable[[Opportunity], None], market: Market | None = None,
                 latency: Latency | None = None, owner: str = "", host: str = "",
                 started_ns: int = 0, snapshot_interval_s: float = 2.0,
                 clock: Clock = LIVE) -> None:
        """``on_event`` sees every event this role publishes (the engine's event ring);
        ``market``, when given, records the quotes this role reads (a process whose
        feeds run elsewhere); ``latency`` takes receive -> evaluated per quote.
        ``owner`` (with the process's ``host`` and ``started_ns``) names this detector
        process on Kafka: set, every window carries it and open sets are published."""
        self.detector = detector
        self.bus = bus
        self.sup = sup
        self.on_event = on_event
        self.market = market
        self.latency = latency if latency is not None else Latency()
        self.owner = owner
        self.host = host
        self.started_ns = started_ns
        self.snapshot_interval_s = snapshot_interval_s
        self.clock = clock
        self.wallets: WalletState | None = None
        #: The conversion books' base assets: read by every detector, kept through rebalances.
        self.rate_bases = frozenset(symmod.base_of(c.book)
                                    for c in detector.cfg.conversions.values() if c.book)
        self._wallet_sub: Subscription | None = None
        self._snap_seq = 0
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.stopping = False
        # Subscribed here, not in the loop: a quote published once start() returned is
        # seen, and a loop the supervisor restarts keeps the same inboxes.
        bus = self.bus
        self._wake = wake = asyncio.Event()
        self._quotes = bus.subscribe(QUOTES, "detector", coalesce=quote_key, wake=wake)
        self._status = bus.subscribe(STATUS, "detector", wake=wake)
        # Perp venue state (funding, mark, index): newest per book; it decorates basis
        # and perp windows and never opens or closes one (backend/basis.py).
        self._funding = bus.subscribe(FUNDING, "detector", coalesce=funding_key, wake=wake)
        self._quotes.on_reset = self.forget  # a Kafka rebalance moved these symbols
        # The conversion books live in ONE base asset's partition, but every detector
        # process needs them: on Kafka they are read outside the consumer group.
        self._rates = (bus.subscribe_rates(set(self.rate_bases), wake=wake)  # type: ignore[attr-defined]
                       if self.rate_bases and bus.kind == "kafka" else None)
        self.follow_wallets()
        self._tasks = [self.sup.spawn("detector", self._loop),
                       self.sup.spawn("sweeper", self._sweep_loop)]

    async def stop(self) -> None:
        if self._tasks and self.bus.kind == "kafka" and self.owner:
            # Published before the bus drains, so viewers and executors see them.
            # (Without an owner, a replay: its one process keeps its windows as the
            # embedded bus does, and the replay's last lines do not depend on the bus.)
            self.emit(self.detector.close_all("detector stopped"))
            self.publish_open_set("stopping")
        self.stopping = True
        await self.sup.cancel(self._tasks)
        self._tasks = []

    def follow_wallets(self) -> None:
        """Subscribe to the executor's wallet states (``start`` does; a driver that
        calls the detector itself, like replay, calls this and ``apply_wallets``)."""
        if self._wallet_sub is None:
            self._wallet_sub = self.bus.subscribe(WALLETS, "detector", coalesce=_one)

    def apply_wallets(self) -> None:
        """Size from the newest wallet state received, if one arrived."""
        sub = self._wallet_sub
        if sub is not None and len(sub):
            for ws in sub.drain():
                if isinstance(ws, WalletState):
                    self.wallets = ws
            ws = self.wallets
            self.detector.balances = ws.cap if ws is not None and ws.enabled else None

    async def _loop(self) -> None:
        wake, quotes, status, rates = self._wake, self._quotes, self._status, self._rates
        funding = self._funding
        det = self.detector
        lat = self.latency
        market = self.market
        sup = self.sup
        clock = self.clock
        while not (self.stopping or sup.stopping):
            if (not len(quotes) and not len(status) and not (rates and len(rates))
                    and not len(funding)):
                # Nothing queued: the catch model's deferred work, one unit at a time
                # (catch.CatchModel.idle), so a window's bookkeeping is not on a quote's path.
                if det.catch is not None and det.catch.idle(det.clock()):
                    await asyncio.sleep(0)
                    continue
                if not await clock.wait(wake, 0.25):
                    self.apply_wallets()  # sized right before the next quote, not at it
                    continue
            wake.clear()
            self.apply_wallets()
            for f in funding.drain():
                if isinstance(f, Funding):
                    det.on_funding(f)
            for st in status.drain():
                if isinstance(st, BookStatus):
                    if market is not None and st.state is not BookState.LIVE:
                        market.drop(st.venue, st.symbol)
                    self.emit(det.on_book_state(st))
            batch = quotes.drain()
            if rates is not None and len(rates):
                # First, and only if newer than what the detector has: the group inbox
                # may carry the same quotes when this process owns their partition.
                # Newer by liveness: a refresh of a quiet conversion book keeps its
                # top's recv time and must still reach the detector (model.AGES_RULE).
                have = det.quotes
                fresh = [q for q in rates.drain()
                         if (old := have.get(q.symbol, {}).get(q.venue)) is None
                         or live_ns(old) < live_ns(q)]
                batch = fresh + batch
            if batch:
                if market is not None:
                    market.add_batch(batch)
                # The whole batch is applied before any pair is judged, so a venue's
                # new price never meets another's price superseded in the same batch.
                events = det.on_quotes(batch)
                done = clock.now_ns()
                for q in batch:
                    lat.add(done - live_ns(q))  # a liveness refresh keeps its top's recv time
                if events:
                    self.emit(events)
            await asyncio.sleep(0)

    async def _sweep_loop(self) -> None:
        next_snap, seen_state, seen_rebalances = 0.0, "", 0
        bus: Any = self.bus
        clock = self.clock
        while not (self.stopping or self.sup.stopping):
            await clock.sleep(SWEEP_S)
            self.emit(self.detector.sweep())
            if self.owner:
                # Periodically, on (re)connect, and after a rebalance (a detector that
                # took partitions over announces what it has open).
                state, reb = bus.state, bus.rebalances
                why = ("connected" if state == "up" and seen_state != "up" else
                       "rebalance" if reb != seen_rebalances else
                       "periodic" if clock.monotonic() >= next_snap else "")
                seen_state, seen_rebalances = state, reb
                if why and state == "up":
                    self.publish_open_set(why)
                    next_snap = clock.monotonic() + self.snapshot_interval_s

    def emit(self, events: list[Opportunity]) -> None:
        owner = self.owner
        for e in events:
            if owner:
                e.owner = owner
            self.bus.publish(OPPORTUNITIES, e.symbol, e)
            self.on_event(e)

    def publish_open_set(self, why: str) -> None:
        """This detector's open windows, for consumers to reconcile against."""
        self._snap_seq += 1
        det = self.detector
        opens = [msgspec.structs.replace(o.opp, owner=self.owner, buy_book=[], sell_book=[])
                 for o in det.open.values()]
        self.bus.publish(OPPORTUNITIES, "open-set", OpenSet(
            owner=self.owner, host=self.host, started_ns=self.started_ns,
            seq=self._snap_seq, ts_ns=det.clock(), why=why, open=opens))

    # ------------------------------------------------------------------ commands

    def forget(self, symbols: set[str], reason: str) -> None:
        """Another detector process owns (or owned meanwhile) these symbols: close what
        was open on their base assets and start them clean (``Detector.forget_bases``)."""
        # Partitions follow the base asset (BTC-USD and BTC-USDT travel together).
        # The conversion books keep coming from the rates inbox, whoever owns them.
        bases = {symmod.base_of(s) for s in symbols} - self.rate_bases
        if not bases:
            return
        self.emit(self.detector.forget_bases(bases, reason))
        if self.market is not None:
            self.market.drop_bases(bases)
        log.info("detector: symbols of %s reset (%s)", ", ".join(sorted(bases)), reason)

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        self.emit(self.detector.set_venue_enabled(venue, enabled))

    def set_symbol_enabled(self, symbol: str, enabled: bool) -> None:
        self.emit(self.detector.set_symbol_enabled(symbol, enabled))

    def set_threshold(self, min_net_bps: float) -> None:
        self.emit(self.detector.set_threshold(min_net_bps))

    def set_max_quote_age(self, ms: float) -> None:
        """Quotes older than this stop counting; the sweep closes windows that relied on them."""
        self.detector.cfg.max_quote_age_ms = ms
        self.emit(self.detector.sweep())

    # ------------------------------------------------------------------ control (bus)

    def apply_control(self, cmd: str, args: dict[str, Any]) -> None:
        """A control-topic command this role owns (``roles.control.OWNERS``); ValueError
        names what is wrong with one it cannot apply."""
        if cmd == "threshold":
            self.set_threshold(finite(args, "min_net_bps", -MAX_BPS, MAX_BPS))
        elif cmd == "max_quote_age":
            self.set_max_quote_age(finite(args, "ms", MIN_QUOTE_AGE_MS - 1e-9, math.inf))
        elif cmd in ("venue", "symbol"):
            name = args.get(cmd)
            if not isinstance(name, str) or not name:
                raise ValueError(f"{cmd} = {name!r}: needs a {cmd} name")
            (self.set_venue_enabled if cmd == "venue" else self.set_symbol_enabled)(
                name, flag(args))
        else:
            raise ValueError(f"{cmd}: not a detector command")

    def control_state(self) -> dict[str, Any]:
        """The settings this detector applies, as its acks state them."""
        d = self.detector
        return {"min_net_bps": d.cfg.min_net_bps, "max_quote_age_ms": d.cfg.max_quote_age_ms,
                "disabled_venues": sorted(d.disabled_venues),
                "disabled_symbols": sorted(d.disabled_symbols)}

    # ------------------------------------------------------------------ state

    def state(self) -> DetectState:
        d = self.detector
        return DetectState(
            min_net_bps=d.cfg.min_net_bps, max_quote_age_ms=d.cfg.max_quote_age_ms,
            disabled_venues=frozenset(d.disabled_venues),
            disabled_symbols=frozenset(d.disabled_symbols), fees=dict(d.fees),
            # copies: the open window's own Opportunity keeps changing in place
            open=tuple(msgspec.structs.replace(o.opp) for o in d.open.values()),
            status=d.status(), sized_to_wallets=d.balances is not None)
