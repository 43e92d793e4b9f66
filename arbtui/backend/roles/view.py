"""The view role (``arbtui --role view``): what a dashboard shows, read from the bus.

It runs no feed, detector or executor; it reads every topic without a
consumer group and keeps: the latest quote per venue+symbol (in the
``Market``), each venue's health as the feed processes report it on the
status topic, the set of open opportunities (``backend.reconcile.OpenWindows``:
OPENED/UPDATED add, CLOSED removes, and the detectors' open sets close what
an owner no longer has, every 0.5 s at the latest), and every opportunity
event, reconciled close and fill for the log (``on_event``).
Per-stage latency across processes comes from the timestamps every message
carries: venue -> feed receive is the feed's own figure; feed receive -> bus
publish, publish -> here, and quote receive -> opportunity are measured here.

It also keeps what a console needs of the other processes: each venue's health
as its feed process states it every second (``model.VenueStatus``: message rate,
feed latency, reconnects), the realized PnL summed from the fills it reads (by
currency, as the executor books it), and, through its ``ControlDesk``
(``roles.control``), the commands it sent and the settings every detector,
executor and feed process acknowledges (the control topic).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from arbtui.backend.bus import CONTROL, FILLS, FUNDING, OPPORTUNITIES, QUOTES, STATUS, Bus
from arbtui.backend.bus.base import funding_key, quote_key
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.metrics import Latency
from arbtui.backend.reconcile import OpenWindows
from arbtui.backend.roles.base import Market, Role
from arbtui.backend.roles.control import CONTROL_KEY, ControlDesk
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.model import (
    BookState,
    BookStatus,
    Control,
    ControlAck,
    Fill,
    OpenSet,
    OppEvent,
    Opportunity,
    SymbolStatus,
    VenueStatus,
    live_ns,
)

#: A feed process states each venue's health every second; silent this long, its last
#: statement is not shown as current (the process may be gone).
FEED_SILENT_S = 5.0

#: Worst last: a venue's state is its worst book's.
_ORDER = [BookState.LIVE, BookState.SYNCING, BookState.STALE, BookState.RESYNC,
          BookState.DISABLED]


@dataclass(frozen=True)
class ViewState:
    open: tuple[Opportunity, ...]
    #: venue -> health from the status topic; empty until a feed process reported
    venues: Mapping[str, VenueStatus]
    #: feed / bus / detect -> p50 ms across processes
    stage_p50_ms: Mapping[str, float | None]


class ViewRole(Role):
    name = "view"

    def __init__(self, bus: Bus, sup: Supervisor, *, market: Market,
                 on_event: Callable[[Any], None], latency: Latency | None = None,
                 windows: OpenWindows | None = None,
                 up_since: Callable[[], float | None] = lambda: None,
                 clock: Clock = LIVE, desk: ControlDesk | None = None,
                 venue_order: tuple[str, ...] = ()) -> None:
        """``latency`` takes quote receive -> opportunity, the detection latency a
        viewer can see; ``up_since`` is the monotonic time the bus is up since (None
        while down): an owner is judged silent only while the bus is up."""
        self.bus = bus
        self.sup = sup
        self.market = market
        self.on_event = on_event
        self.latency = latency if latency is not None else Latency()
        self.stages = {"feed": Latency(4096), "bus": Latency(4096), "detect": Latency(4096)}
        self.windows = windows if windows is not None else OpenWindows()
        self.up_since = up_since
        self.clock = clock
        self.books: dict[tuple[str, str], BookStatus] = {}
        #: venue -> the health its feed process last stated (rates, latency)
        self.feed_status: dict[str, VenueStatus] = {}
        self._feed_heard: dict[str, float] = {}  # venue -> monotonic
        #: venue panels in this order (the config's), venues it does not name after
        self.venue_order = tuple(venue_order)
        #: commands sent from here and the settings the roles acknowledge
        self.desk = desk if desk is not None else ControlDesk("view", clock=clock)
        #: realized PnL by currency and fill count, from the fills read (as the executor books)
        self.realized: dict[str, float] = {}
        self.fills = 0
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        # Subscribed here (see DetectRole.start): nothing published after start() is missed.
        bus = self.bus
        self._wake = wake = asyncio.Event()
        self._subs = (bus.subscribe(QUOTES, "viewer", coalesce=quote_key, wake=wake),
                      bus.subscribe(OPPORTUNITIES, "viewer", wake=wake),
                      bus.subscribe(FILLS, "viewer", wake=wake),
                      bus.subscribe(STATUS, "viewer", wake=wake),
                      bus.subscribe(CONTROL, "viewer", wake=wake))
        # Perp venue state (funding, mark, index): the newest per venue and symbol.
        self._funding = bus.subscribe(FUNDING, "viewer", coalesce=funding_key, wake=wake)
        self._tasks = [self.sup.spawn("viewer", self._loop)]

    async def stop(self) -> None:
        self.stopping = True
        await self.sup.cancel(self._tasks)
        self._tasks = []

    async def _loop(self) -> None:
        wake = self._wake
        quotes, opps, fills, status, control = self._subs
        desk = self.desk
        stages = self.stages
        market = self.market
        windows = self.windows
        clock = self.clock
        next_sweep = 0.0
        while not (self.stopping or self.sup.stopping):
            if not (len(quotes) or len(opps) or len(fills) or len(status) or len(control)):
                await clock.wait(wake, 0.25)  # either way on to the reconcile sweep
            wake.clear()
            now = clock.now_ns()  # live: wall time, compared with other hosts' wall stamps
            for st in status.drain():
                if isinstance(st, BookStatus):
                    self.books[(st.venue, st.symbol)] = st
                    if st.state is not BookState.LIVE:
                        market.drop(st.venue, st.symbol)
                elif isinstance(st, VenueStatus):
                    self.feed_status[st.venue] = st
                    self._feed_heard[st.venue] = clock.monotonic()
            for m in control.drain():
                if isinstance(m, ControlAck):
                    # A role instance first heard running an older setting than the
                    # operator's last command gets that command again (roles.control).
                    for c in desk.on_ack(m):
                        self.bus.publish(CONTROL, CONTROL_KEY, c)
                elif isinstance(m, Control):
                    desk.on_control(m)
            for q in quotes.drain():
                market.add(q)
                if q.pub_ts_ns and q.recv_ts_ns:
                    stages["feed"].add(q.pub_ts_ns - live_ns(q))
                    stages["bus"].add(now - q.pub_ts_ns)
            mono = clock.monotonic()
            for o in opps.drain():
                if isinstance(o, OpenSet):
                    for c in windows.on_snapshot(o, mono, now):
                        self.on_event(c)
                    continue
                if not windows.on_event(o, mono):
                    continue  # a late event for a window already closed
                if o.quote_recv_ts_ns and o.event is not OppEvent.CLOSED:
                    stages["detect"].add(o.ts_ns - o.quote_recv_ts_ns)
                    self.latency.add(o.ts_ns - o.quote_recv_ts_ns)
                self.on_event(o)
            for f in fills.drain():
                if isinstance(f, Fill):
                    self.fills += 1
                    if f.pnl:
                        ccy = f.pnl_ccy or f.fee_ccy
                        self.realized[ccy] = self.realized.get(ccy, 0.0) + f.pnl
                self.on_event(f)
            for fu in self._funding.drain():
                market.add_funding(fu)
            if mono >= next_sweep:
                next_sweep = mono + 0.5
                desk.sweep()
                for c in windows.sweep(mono, self.up_since(), now):
                    self.on_event(c)
            await asyncio.sleep(0)

    def venue_statuses(self) -> dict[str, VenueStatus]:
        """Venue health as the feed processes reported it (their venue statuses for rates
        and latency, book states, worst book state wins) plus the quotes seen, in the
        config's venue order (not arrival order)."""
        out: dict[str, VenueStatus] = {}
        mono = self.clock.monotonic()
        for v, fs in self.feed_status.items():
            # A copy: the message may be the one the feed process holds (embedded bus).
            vs = out[v] = msgspec.structs.replace(fs, symbols=dict(fs.symbols))
            silent = mono - self._feed_heard.get(v, mono)
            if silent > FEED_SILENT_S:
                vs.msg_rate, vs.connected = 0.0, False
                vs.state, vs.reason = BookState.STALE, f"no status from its feed for {silent:.0f}s"
        for (v, sym), st in self.books.items():
            vs = out.get(v) or out.setdefault(v, VenueStatus(venue=v, state=BookState.LIVE,
                                                             connected=True))
            vs.symbols[sym] = SymbolStatus(state=st.state, reason=st.reason, since_ns=st.ts_ns)
            if _ORDER.index(st.state) > _ORDER.index(vs.state):
                vs.state, vs.reason = st.state, f"{sym}: {st.reason}"
        for (v, _), q in self.market.latest.items():
            vs = out.get(v)
            if vs is not None:
                vs.last_msg_ns = max(vs.last_msg_ns, live_ns(q))
        rank = {v: i for i, v in enumerate(self.venue_order)}
        return {v: out[v] for v in sorted(out, key=lambda v: (rank.get(v, len(rank)), v))}

    def pnl(self) -> dict[str, Any]:
        """Realized PnL from the fills read, shaped like the executor's snapshot (one
        number only when there is one currency: USD and USDT are never summed)."""
        ccys = [c for c, v in self.realized.items() if v]
        return {"pnl": self.realized[ccys[0]] if len(ccys) == 1 else (0.0 if not ccys else None),
                "pnl_ccy": ccys[0] if len(ccys) == 1 else ("" if not ccys else "mixed"),
                "realized_pnl": dict(self.realized), "fills": self.fills,
                "source": "fills read by this viewer"}

    def state(self) -> ViewState:
        return ViewState(
            # Decoded (Kafka) or published (embedded) events are never changed after.
            open=tuple(self.windows.open.values()), venues=self.venue_statuses(),
            stage_p50_ms={k: v.percentiles_ms(50)[0] for k, v in self.stages.items()})
