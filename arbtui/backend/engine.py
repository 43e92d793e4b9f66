"""The roles of one process, composed: ``Engine``.

Data flows one way, through the bus: feeds -> "quotes"/"status" -> detector ->
"opportunities" -> executor -> "fills" (and "wallets" back to the detector)
-> journal. Each stage is a role (``backend.roles``: start, stop, state); the
engine builds the ones ``roles`` names, plus the viewer in a process that runs
none of feed/detect/execute (``--role view``), and:

- keeps the event ring (``events`` / ``events_since``): every opportunity
  event and fill this process produced or read, numbered, for the log;
- takes ``snapshot()``: ONE immutable ``EngineState`` per dashboard frame or
  status line, built from the roles' states. The UI and the headless reporter
  read only that; they are never subscribers on the hot path;
- routes operator commands (venue/symbol toggles, thresholds, execution) as
  ``model.Control`` messages (``roles.control``): published on the control topic
  for the roles of other processes, and applied at once by the roles of this one
  that own the setting (a viewer owns none: it sends, and shows what the roles
  acknowledge).

Inputs can be injected: ``bus`` (any ``Bus``), ``sim`` (demo mode: the
simulated market, started and stopped here, whose ``urls()`` the feeds
connect to; the commands layer builds it, the backend never imports the
simulator) and ``clock`` (``backend.clock.Clock``: every role reads time and waits
through it; replay passes a virtual one).

On Kafka the engine also gives its detector an owner id (host/pid/start) and
keeps ``windows`` (``backend.reconcile.OpenWindows``): the open windows as the
viewer and the execute role's journal know them, reconciled against the
detectors' open sets.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from arbtui.backend.basis import funding_rows
from arbtui.backend.bus import CONTROL, FILLS, Bus, make_bus
from arbtui.backend.calibration import CatchJournal
from arbtui.backend.catch import CatchModel, model_for
from arbtui.backend.catch_history import load_windows
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.detector import Detector
from arbtui.backend.executor import Executor
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.metrics import Latency
from arbtui.backend.reconcile import OpenWindows
from arbtui.backend.roles import (
    AlertsRole,
    DetectRole,
    ExecuteRole,
    FeedRole,
    JournalRole,
    Market,
    Supervisor,
    ViewRole,
    feed_plan,
)
from arbtui.backend.roles.control import CONTROL_KEY, ControlAgent, ControlDesk, VenueSwitch
from arbtui.backend.roles.feed import funding_publisher, quote_publisher, state_publisher
from arbtui.config import Config
from arbtui.model import BookStatus, Control, Fill, Opportunity, Quote, VenueStatus

#: The Kafka health fields the status line and header show.
_KAFKA_FIELDS = ("state", "reason", "down_for_s", "outages", "missing_permissions", "in_flight",
                 "superseded", "dropped", "retried", "lost", "replayed", "duplicates",
                 "idempotent",
                 "delivery_errors", "bad_records", "consumed", "assigned_partitions",
                 "rebalances", "log_resets", "last_error", "hop_p50_ms", "hop_p99_ms")


@dataclass(frozen=True)
class EngineState:
    """One immutable sample of the engine, cheap enough to take 10x a second.

    Every container in it is built for this sample (nobody else holds it), so
    the dashboard may keep it while the engine runs on. The fields after
    ``extra`` are what the dashboard's controls and charts need, so it never
    has to read a role's internals.
    """

    mode: str
    bus: Mapping[str, Any]
    uptime_s: float
    venues: Mapping[str, VenueStatus]
    quotes: Mapping[tuple[str, str], Quote]
    open_opportunities: Sequence[Opportunity]
    quotes_per_s: float
    detect_p50_ms: float | None
    detect_p99_ms: float | None
    min_net_bps: float
    execution_enabled: bool
    event_seq: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    max_quote_age_ms: float = 0.0
    execution_min_net_bps: float = 0.0
    disabled_venues: frozenset[str] = frozenset()
    disabled_symbols: frozenset[str] = frozenset()
    #: taker fee bps per venue, as the detector applies them
    fees: Mapping[str, float] = field(default_factory=dict)
    #: the symbols this session trades, in config order
    symbols: tuple[str, ...] = ()
    #: venues with a feed in this process (also the ones switched off)
    feed_venues: tuple[str, ...] = ()
    #: a simulated executor runs in this process (execution can act here)
    executing: bool = False


class Engine:
    def __init__(self, cfg: Config, *, mode: str = "live", bus: Bus | None = None,
                 roles: tuple[str, ...] = ("feed", "detect", "execute"), sim: Any = None,
                 clock: Clock = LIVE) -> None:
        self.cfg = cfg
        #: Every role reads time and waits through this clock (replay: a virtual one).
        self.clock = clock
        self.mode = mode  # live | demo | replay | view
        #: What the journal records this session as (and its default file): the mode,
        #: or "demo" for an execute role trading a simulated market (commands/roles.py).
        self.journal_mode = mode
        self.roles = roles
        self.bus = bus or make_bus(cfg)
        #: demo mode: the simulated market the feeds connect to (start/stop/urls()).
        self.sim: Any = sim
        self._sim_started = False
        self.sup = Supervisor(clock)
        self.market = Market(clock)
        #: Opportunity and fill events, newest last, each with a sequence number.
        self.events: deque[tuple[int, Any]] = deque(maxlen=10_000)
        self.event_seq = 0
        self.detect_latency = Latency()
        #: Publish a quote / book state as a feed in this process does (what the
        #: benchmarks and external drivers feed the engine with).
        self.publish_quote = quote_publisher(self.bus, self.market, clock)
        self.publish_state = state_publisher(self.bus, self.market)
        self.publish_funding = funding_publisher(self.bus, self.market)  # perp venue state
        self.started = time.monotonic()  # process uptime: wall time even in a replay
        self.started_ns = time.time_ns()
        self._metrics_server: Any = None
        # On Kafka every window names the detector process that owns it, and that
        # process publishes its open set (OpenSet) so consumers can reconcile.
        host = socket.gethostname()
        #: This process on the bus: the owner of its windows and the sender/acker of commands.
        self.proc_id = f"{host}/{os.getpid()}/{self.started_ns // 1_000_000}"
        self.owner_id = self.proc_id if self.bus.kind == "kafka" and "detect" in roles else ""
        k = cfg.bus.kafka
        #: Open windows as the consumers here know them (viewer, execute role's journal).
        self.windows = OpenWindows(k.owner_timeout_s, k.snapshot_interval_s,
                                   not_before_ns=self.started_ns)
        fees = {v: vc.taker_fee_bps for v, vc in cfg.venues.items()}
        self.detector = Detector(cfg.detector, fees, clock=clock.now_ns)
        self.catch = self._catch_model()
        self.detector.catch = self.catch
        # The detect role always exists: outside a detecting process it is not started
        # and only holds the threshold the header shows.
        self.detect = DetectRole(
            self.detector, self.bus, self.sup, on_event=lambda e: self.record_event(e),
            # a process whose feeds run elsewhere learns the quotes from the bus
            market=None if "feed" in roles else self.market, latency=self.detect_latency,
            owner=self.owner_id, host=host, started_ns=self.started_ns,
            snapshot_interval_s=k.snapshot_interval_s, clock=clock)
        self.feed: FeedRole | None = None
        #: venue -> its feed (the feed role's, once started)
        self.feeds: dict[str, VenueFeed] = {}
        self.execute: ExecuteRole | None = None
        self.journal: JournalRole | None = None
        self.view: ViewRole | None = None
        #: Applies control commands to this process's roles and acknowledges them.
        self.control = ControlAgent(self.bus, self.sup, self.proc_id, clock=clock,
                                    announce_s=k.snapshot_interval_s,
                                    publish=mode != "replay")
        if "detect" in roles:
            self.control.register(self.detect)
        self._ctl_n = 0
        #: webhook alerts: built in start() when this process is the one that sends them
        self.alerts: AlertsRole | None = None
        if mode == "view" or not roles:
            self.view = ViewRole(self.bus, self.sup, market=self.market,
                                 on_event=lambda e: self.record_event(e),
                                 latency=self.detect_latency, windows=self.windows,
                                 up_since=self._bus_up_since, clock=clock,
                                 desk=ControlDesk(self.proc_id, clock=clock,
                                                  forget_s=k.owner_timeout_s),
                                 venue_order=tuple(cfg.venues))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.bus.start()
        if "feed" in self.roles:
            await self._start_feeds()
        if "detect" in self.roles:
            await self.detect.start()
        if "execute" in self.roles:
            await self._start_executor()
        if self.view is not None:
            await self.view.start()
        if self._sends_alerts():
            self.alerts = AlertsRole(self.cfg.alerts, self.bus, self.sup, clock=self.clock)
            await self.alerts.start()
            # A venue the operator switches off is no outage: the alerts role hears of it
            # like the detector and the feed (from any process's console).
            self.control.register(VenueSwitch("alerts", self.alerts.set_venue_enabled))
        if self.bus.kind == "kafka" and self.mode != "replay":
            # Only another process can send commands; here they are applied directly. A
            # replay's topics are its own (replay/kafka.py): no other process sends there.
            await self.control.start()
        if self.cfg.metrics.listen:
            from arbtui.backend.prometheus import serve

            self._metrics_server = serve(self, self.cfg.metrics.listen, asyncio.get_running_loop())

    def _sends_alerts(self) -> bool:
        """Alerts go out from ONE process: a whole engine in one process, or the
        ``arbtui alerts`` role on Kafka (never a feed/detect/execute process, never a
        viewer or a replay)."""
        whole = {"feed", "detect", "execute"} <= set(self.roles)
        return bool(self.cfg.alerts.webhooks) and self.mode != "replay" and (
            whole or "alerts" in self.roles)

    async def _start_feeds(self) -> None:
        """The feed role (replay overrides this: its driver plays the feeds)."""
        cfg = self.cfg
        endpoints = None
        if self.mode == "demo":
            if self.sim is None:
                raise ValueError("demo mode needs sim= (arbtui.commands.demo.simulator(cfg))")
            await self.sim.start()
            self._sim_started = True
            endpoints = self.sim.urls()
        self.feed = FeedRole(cfg, self.bus, self.sup, feed_plan(cfg, endpoints),
                             market=self.market, clock=self.clock)
        await self.feed.start()
        self.control.register(self.feed)
        self.feeds = self.feed.feeds
        for v in self.feed.disabled_venues():
            self.detector.disabled_venues.add(v)

    async def _start_executor(self) -> None:
        """The simulated executor (paper wallets) and the durable journal."""
        cfg = self.cfg
        fees = {v: vc.taker_fee_bps for v, vc in cfg.venues.items()}
        # The executor reads the engine's clock, so under replay its latencies and
        # fill timestamps live on the same virtual timeline as the quotes; its
        # jitter is seeded so a replay's fills repeat exactly.
        executor = Executor(cfg.execution, fees, min_notional=cfg.detector.min_notional,
                            level_share=cfg.detector.max_level_share,
                            clock=self.clock.now_ns,
                            rng=random.Random(cfg.execution.jitter_seed))
        self.execute = ExecuteRole(executor, self.bus, on_fill=lambda f: self.record_event(f),
                                   sup=self.sup, clock=self.clock)
        await self.execute.start()
        self.control.register(self.execute)
        if cfg.journal.enabled:
            # On Kafka the journal reconciles against the detectors' open sets,
            # so it never keeps a window opened without a close after an outage.
            self.journal = JournalRole(
                cfg.journal, self.bus, self.sup,
                windows=self.windows if self.bus.kind == "kafka" else None,
                up_since=self._bus_up_since, on_reconciled=lambda e: self.record_event(e),
                catch=CatchJournal(self.journal_mode, lambda: cfg.execution.min_net_bps,
                                   self.catch if "detect" in self.roles else None),
                mode=self.journal_mode)
            await self.journal.start()

    def _catch_model(self) -> CatchModel | None:
        """p_catch for every event (backend/catch.py). A live or demo session starts from
        the windows its journal holds for sessions of the same mode; a replay learns only
        from its own recorded windows, so the same files give the same p_catch. None with
        ``[detector] catch = false``."""
        cfg = self.cfg
        history: list = []
        mode = self.journal_mode
        if (cfg.detector.catch and cfg.journal.enabled and mode in ("live", "demo")
                and "detect" in self.roles):
            from arbtui.backend.journal import resolve_path

            history = load_windows(resolve_path(cfg.journal.path, mode), mode)
        return model_for(cfg, history)

    async def stop(self) -> None:
        # Viewers forget this process's roles at once ("stopped"), while the bus delivers.
        await self.control.stop()
        # The detector first: on Kafka it closes its windows while the bus still delivers.
        await self.detect.stop()
        self.sup.stopping = True
        for role in (self.feed, self.execute, self.view, self.alerts):
            if role is not None:
                await role.stop()
        await self.sup.stop()  # anything else spawned under the supervisor
        if self.journal is not None:
            await self.journal.stop()
        await self.bus.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._sim_started:
            await self.sim.stop()

    # ---------------------------------------------- for ReplayEngine (until it composes roles)

    @property
    def _tasks(self) -> list[asyncio.Task]:
        return self.sup.tasks

    @property
    def _stopping(self) -> bool:
        return self.sup.stopping

    @_stopping.setter
    def _stopping(self, value: bool) -> None:
        self.sup.stopping = value

    @property
    def failures(self) -> dict[str, int]:
        return self.sup.failures

    @property
    def latest(self) -> dict[tuple[str, str], Quote]:
        return self.market.latest

    @property
    def quote_rate(self) -> Any:
        return self.market.rate

    @property
    def executor(self) -> Executor | None:
        return self.execute.ex if self.execute is not None else None

    def _spawn(self, name: str, fn: Callable[[], Any]) -> None:
        self.sup.spawn(name, fn)

    def _emit_all(self, events: list[Opportunity]) -> None:
        self.detect.emit(events)

    # ------------------------------------------------------------------ hot path

    def _bus_up_since(self) -> float | None:
        """Monotonic time the bus has been up since (None while it is down)."""
        bus: Any = self.bus
        if bus.kind != "kafka":
            return self.started
        return bus.up_since if bus.state == "up" else None

    def _on_quote(self, q: Quote) -> None:
        """A quote from a feed this engine drives itself (replay's driver)."""
        self.publish_quote(q)

    def _on_book_state(self, st: BookStatus) -> None:
        self.publish_state(st)

    def record_event(self, e: Opportunity | Fill) -> None:
        self.event_seq += 1
        self.events.append((self.event_seq, e))

    # ------------------------------------------------------------------ commands

    def command(self, cmd: str, args: dict[str, Any], target: str = "") -> Control:
        """Send an operator command (``roles.control.OWNERS`` says who applies it): on
        the control topic for the roles of other processes, and applied at once by the
        roles of this one that own it (each acknowledges on the bus)."""
        if self.view is not None:
            ctl = self.view.desk.new(cmd, args, target)
            self.view.desk.sent(ctl)
        else:
            self._ctl_n += 1
            ctl = Control(id=f"{self.proc_id}#{self._ctl_n}", cmd=cmd, args=args, target=target,
                          sender=self.proc_id, ts_ns=self.clock.now_ns())
        if self.mode != "replay":  # a replay's settings are its own dashboard's alone
            self.bus.publish(CONTROL, CONTROL_KEY, ctl)
        self.control.apply(ctl)
        return ctl

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        self.command("venue", {"venue": venue, "enabled": enabled})

    def set_symbol_enabled(self, symbol: str, enabled: bool) -> None:
        self.command("symbol", {"symbol": symbol, "enabled": enabled})

    def set_threshold(self, min_net_bps: float) -> None:
        self.command("threshold", {"min_net_bps": min_net_bps})

    def set_max_quote_age(self, ms: float) -> None:
        self.command("max_quote_age", {"ms": ms})

    def set_execution_threshold(self, min_net_bps: float) -> None:
        if self.view is None:  # the setting of this process (its executor may start later)
            self.cfg.execution.min_net_bps = min_net_bps
        self.command("exec_threshold", {"min_net_bps": min_net_bps})

    def set_execution(self, enabled: bool) -> None:
        if self.view is None:
            self.cfg.execution.enabled = enabled
        self.command("execution", {"enabled": enabled})

    # ------------------------------------------------------------------ sampling

    def venue_statuses(self) -> dict[str, VenueStatus]:
        if self.feed is not None:
            return self.feed.state()
        if self.view is not None:
            return self.view.venue_statuses()
        return {}

    def symbols(self) -> list[str]:
        if self.mode == "demo":
            return list(self.cfg.sim.symbols)
        if self.view is not None and self.market.latest:
            # A viewer trades nothing itself: the symbols the feeds publish (a demo feed's
            # are the simulator's, not the config's), configured ones first.
            seen = {s for _, s in self.market.latest}
            conf = self.cfg.symbols()
            return [s for s in conf if s in seen] + sorted(seen - set(conf))
        return self.cfg.symbols()

    def snapshot(self) -> EngineState:
        p50, p99 = self.detect_latency.percentiles_ms(50, 99)
        det = self.detect.state()
        view = self.view.state() if self.view is not None else None
        detecting = "detect" in self.roles
        extra: dict[str, Any] = {}
        bus = self.bus.stats()
        if self.bus.kind == "kafka":
            extra["kafka"] = {k: bus.get(k) for k in _KAFKA_FIELDS}
            if self.owner_id:
                extra["kafka"]["owner"] = self.owner_id
            w = self.windows
            if w.owners or w.reconciled or w.learned:
                extra["reconcile"] = w.stats()
        if view is not None:
            extra["stage_p50_ms"] = dict(view.stage_p50_ms)
        # A viewer shows what the roles of other processes acknowledge they apply
        # (roles.control), never a detector of its own that nobody runs.
        ctl = self._view_settings(det) if self.view is not None and not detecting else None
        if ctl is not None:
            extra["control"] = self.view.desk.summary()
            extra["executor"] = self.view.pnl()
        if self.execute is not None:
            extra["executor"] = self.execute.state()
        if detecting:
            extra["detector"] = {**det.status, "sized_to_wallets": det.sized_to_wallets}
            # the latency budget per pair (recomputed at most once a second)
            if self.catch is not None:
                extra["catch"] = self.catch.curves(self.clock.monotonic())
        if self.journal is not None and (js := self.journal.state()) is not None:
            extra["journal"] = js
        if self.alerts is not None:
            extra["alerts"] = self.alerts.state()
        if self.market.funding:
            # perp venue state as this process sees it (its feeds, or the funding topic)
            extra["funding"] = funding_rows(self.market.funding.values())
        # Roles the supervisor restarted, by name: shown, never silent.
        extra["role_failures"] = dict(self.sup.failures)
        s = ctl or {
            "min_net_bps": det.min_net_bps, "execution_enabled": self.cfg.execution.enabled,
            "max_quote_age_ms": det.max_quote_age_ms,
            "execution_min_net_bps": self.cfg.execution.min_net_bps,
            "disabled_venues": det.disabled_venues, "disabled_symbols": det.disabled_symbols,
            "executing": self.execute is not None}
        return EngineState(
            mode=self.mode.upper(), bus=bus, uptime_s=time.monotonic() - self.started,
            venues=self.venue_statuses(), quotes=dict(self.market.latest),
            open_opportunities=list(det.open if detecting or view is None else view.open),
            quotes_per_s=self.market.rate.sample(), detect_p50_ms=p50, detect_p99_ms=p99,
            min_net_bps=s["min_net_bps"], execution_enabled=s["execution_enabled"],
            event_seq=self.event_seq, extra=extra, max_quote_age_ms=s["max_quote_age_ms"],
            execution_min_net_bps=s["execution_min_net_bps"],
            disabled_venues=s["disabled_venues"], disabled_symbols=s["disabled_symbols"],
            fees=det.fees, symbols=tuple(self.symbols()),
            feed_venues=tuple(self.feeds), executing=s["executing"])

    def _view_settings(self, det: Any) -> dict[str, Any]:
        """The settings a viewer shows: acknowledged by the roles, pending commands laid
        over, the config's until a role has stated its own."""
        assert self.view is not None
        return self.view.desk.settings({
            "min_net_bps": det.min_net_bps, "max_quote_age_ms": det.max_quote_age_ms,
            "execution_enabled": False, "execution_min_net_bps": self.cfg.execution.min_net_bps,
            "disabled_venues": frozenset(), "disabled_symbols": frozenset()})

    def frame(self, seq: int | None) -> tuple[EngineState, list[tuple[int, Any]]]:
        """One dashboard frame: the snapshot and, unless ``seq`` is None, the events
        after ``seq``."""
        return self.snapshot(), [] if seq is None else self.events_since(seq)

    def events_since(self, seq: int) -> list[tuple[int, Any]]:
        """Events newer than ``seq`` (the ring is bounded; very old ones are gone)."""
        ev = self.events
        if not ev or ev[-1][0] <= seq:
            return []
        start = max(0, len(ev) - (ev[-1][0] - seq))
        return [ev[i] for i in range(start, len(ev))]


__all__ = ["FILLS", "Engine", "EngineState"]
