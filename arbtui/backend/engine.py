"""Wires the roles together and owns their lifecycle.

Data flows one way: feeds -> bus("quotes") -> detector -> bus("opportunities")
-> executor -> bus("fills") -> journal. The UI and the headless reporter call
``snapshot()`` / read ``events`` on a timer; they are never subscribers on the
hot path. Operator controls (venue toggles, thresholds, execution) act on the
engine's roles directly and take effect at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from arbtui import symbols as symmod
from arbtui.backend.bus import FILLS, OPPORTUNITIES, QUOTES, STATUS, Bus, make_bus
from arbtui.backend.bus.base import quote_key
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.detector import Detector
from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.metrics import Latency, Rate
from arbtui.backend.reconcile import OpenWindows
from arbtui.config import Config
from arbtui.model import (
    BookState,
    BookStatus,
    Fill,
    OpenSet,
    OppEvent,
    Opportunity,
    Quote,
    SymbolStatus,
    VenueStatus,
    live_ns,
)

log = logging.getLogger("arbtui.engine")


@dataclass
class EngineState:
    """A read-only sample of the engine, cheap enough to take 10x a second."""

    mode: str
    bus: dict[str, Any]
    uptime_s: float
    venues: dict[str, VenueStatus]
    quotes: dict[tuple[str, str], Quote]
    open_opportunities: list[Opportunity]
    quotes_per_s: float
    detect_p50_ms: float | None
    detect_p99_ms: float | None
    min_net_bps: float
    execution_enabled: bool
    event_seq: int
    extra: dict[str, Any] = field(default_factory=dict)


class Engine:
    def __init__(self, cfg: Config, *, mode: str = "live", bus: Bus | None = None,
                 roles: tuple[str, ...] = ("feed", "detect", "execute"), sim: Any = None,
                 clock: Clock = LIVE) -> None:
        self.cfg = cfg
        #: Every role reads time and waits through this clock (replay: a virtual one).
        self.clock = clock
        self.mode = mode  # live | demo | replay | view
        self.roles = roles
        self.bus = bus or make_bus(cfg)
        #: demo mode: the simulated market the feeds connect to (start/stop/urls()). The
        #: commands layer builds it (arbtui.commands.demo); the backend never imports the
        #: simulator, so a live build cannot reach it by accident (docs/architecture.md).
        self.sim: Any = sim
        self._sim_started = False
        self.feeds: dict[str, VenueFeed] = {}
        fees = {v: vc.taker_fee_bps for v, vc in cfg.venues.items()}
        self.detector = Detector(cfg.detector, fees, clock=clock.now_ns)
        self.executor: Any = None
        self.journal: Any = None
        self.latest: dict[tuple[str, str], Quote] = {}
        #: Opportunity and fill events, newest last, each with a sequence number.
        self.events: deque[tuple[int, Any]] = deque(maxlen=10_000)
        self.event_seq = 0
        self.quote_rate = Rate(clock)
        self.detect_latency = Latency()
        self.started = time.monotonic()  # process uptime: wall time even in a replay
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.failures: dict[str, int] = {}
        self._metrics_server: Any = None
        # On Kafka every window names the detector process that owns it, and that
        # process publishes its open set (OpenSet) so consumers can reconcile.
        self.started_ns = time.time_ns()
        host = socket.gethostname()
        self.owner_id = (f"{host}/{os.getpid()}/{self.started_ns // 1_000_000}"
                         if self.bus.kind == "kafka" and "detect" in roles else "")
        self._host = host
        self._snap_seq = 0
        k = cfg.bus.kafka
        #: Open windows as the consumers here know them (viewer, execute role's journal).
        self.windows = OpenWindows(k.owner_timeout_s, k.snapshot_interval_s)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        await self.bus.start()
        if "feed" in self.roles:
            await self._start_feeds()
        if "detect" in self.roles:
            self._spawn("detector", self._detector_loop)
        if "execute" in self.roles:
            await self._start_executor()
        if self.mode == "view" or not self.roles:
            self._spawn("viewer", self._viewer_loop)
        self._spawn("sweeper", self._sweep_loop)
        if self.cfg.metrics.listen:
            from arbtui.backend.prometheus import serve

            self._metrics_server = serve(self, self.cfg.metrics.listen, asyncio.get_running_loop())

    async def _start_feeds(self) -> None:
        cfg = self.cfg
        plan: dict[str, dict[str, Any]] = {}
        if self.mode == "demo":
            if self.sim is None:
                raise ValueError("demo mode needs sim= (arbtui.commands.demo.simulator(cfg))")
            s = cfg.sim
            await self.sim.start()
            self._sim_started = True
            for v, (url, rest) in self.sim.urls().items():
                vc = cfg.venues.get(v)
                plan[v] = dict(symbols=list(s.symbols), url=url, rest_url=rest,
                               depth=vc.depth if vc else 1000,
                               symbol_map=symmod.sim_symbol_map(v, s.symbols),
                               enabled=vc.enabled if vc else True)
        else:
            for v, vc in cfg.venues.items():
                plan[v] = dict(symbols=list(vc.symbols), url=vc.url, rest_url=vc.rest_url,
                               depth=vc.depth, symbol_map=None, enabled=vc.enabled)
        # Live: map symbols from each venue's own instrument list (never by
        # splitting strings), all venues concurrently; None keeps the static table.
        need = [v for v, p in plan.items() if p["symbol_map"] is None and p["enabled"]]
        maps = await asyncio.gather(*(feed_class(v).fetch_symbol_map(plan[v]["rest_url"])
                                      for v in need))
        for v, m in zip(need, maps):
            plan[v]["symbol_map"] = m
        for v, p in plan.items():
            enabled = p.pop("enabled")
            feed = feed_class(v)(emit=self._on_quote, quote_depth=cfg.quote_depth,
                                 clock=self.clock, **p)
            feed.on_book_state = self._on_book_state
            self.feeds[v] = feed
            if enabled:
                self._spawn(f"feed:{v}", feed.run)
            else:
                feed.enabled = False
                self.detector.disabled_venues.add(v)

    async def _start_executor(self) -> None:
        """The simulated executor (paper wallets) and the durable journal.

        The executor runs even while execution is off, so switching it on acts at
        once; it reads opportunities, quotes and book states from the bus, never
        from the detector, so it runs the same as its own process on Kafka.
        """
        from arbtui.backend.executor import Executor, ExecutorRole

        cfg = self.cfg
        fees = {v: vc.taker_fee_bps for v, vc in cfg.venues.items()}
        # The executor reads the engine's clock, so under replay its latencies and
        # fill timestamps live on the same virtual timeline as the quotes; its
        # jitter is seeded so a replay's fills repeat exactly.
        self.executor = Executor(cfg.execution, fees, min_notional=cfg.detector.min_notional,
                                 level_share=cfg.detector.max_level_share,
                                 clock=self.clock.now_ns,
                                 rng=random.Random(cfg.execution.jitter_seed))
        if "detect" in self.roles:
            # Size opportunities to the paper wallets while execution is on.
            self.detector.balances = self.executor.balance_cap
        self.exec_role = ExecutorRole(self.executor, self.bus, on_fill=self.record_event,
                                      clock=self.clock)
        self._spawn("executor", self.exec_role.run)
        if cfg.journal.enabled:
            import sqlite3

            from arbtui.backend.journal import Journal, resolve_path

            path = resolve_path(cfg.journal.path)
            try:
                self.journal = Journal(path, cfg.journal.flush_ms)
            except (OSError, sqlite3.Error) as e:
                log.error("journal off: cannot open %s: %s", path, e)
                self.failures["journal"] = self.failures.get("journal", 0) + 1
            else:
                journal = self.journal
                # On Kafka the journal reconciles against the detectors' open sets,
                # so it never keeps a window opened without a close after an outage.
                windows = self.windows if self.bus.kind == "kafka" else None
                self._spawn("journal", lambda: journal.run_from_bus(
                    self.bus, stopping=lambda: self._stopping, windows=windows,
                    up_since=self._bus_up_since, on_reconciled=self.record_event))

    def _spawn(self, name: str, fn) -> None:
        """Run a role under a supervisor: a crash is logged, counted and the role restarted."""

        async def supervised() -> None:
            delay = 0.5
            while not self._stopping:
                try:
                    await fn()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a role must never die silently
                    self.failures[name] = self.failures.get(name, 0) + 1
                    log.exception("role %s failed; restarting in %.1fs", name, delay)
                    await self.clock.sleep(delay)
                    delay = min(delay * 2, 30.0)

        self._tasks.append(asyncio.get_running_loop().create_task(supervised(), name=name))

    async def stop(self) -> None:
        if "detect" in self.roles and self.bus.kind == "kafka":
            # Published before the bus drains, so viewers and executors see them.
            self._emit_all(self.detector.close_all("detector stopped"))
            self._publish_open_set("stopping")
        self._stopping = True
        for f in self.feeds.values():
            try:
                await asyncio.wait_for(f.stop(), 2)
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.executor is not None and hasattr(self.executor, "stop"):
            await self.executor.stop()
        if self.journal is not None:
            self.journal.close()
        await self.bus.stop()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        if self._sim_started:
            await self.sim.stop()

    # ------------------------------------------------------------------ hot path

    def _on_quote(self, q: Quote) -> None:
        q.pub_ts_ns = self.clock.now_ns()
        self.latest[(q.venue, q.symbol)] = q
        self.quote_rate.add()
        self.bus.publish(QUOTES, q.symbol, q)

    def _on_book_state(self, st: BookStatus) -> None:
        if st.state is not BookState.LIVE:
            self.latest.pop((st.venue, st.symbol), None)
        self.bus.publish(STATUS, st.symbol, st)

    async def _detector_loop(self) -> None:
        wake = asyncio.Event()
        quotes = self.bus.subscribe(QUOTES, "detector", coalesce=quote_key, wake=wake)
        status = self.bus.subscribe(STATUS, "detector", wake=wake)
        quotes.on_reset = self._forget_symbols  # Kafka rebalance moved these symbols
        det = self.detector
        lat = self.detect_latency
        clock = self.clock
        # The conversion books (USDT-USD for USDT) live in ONE base asset's partition,
        # but every detector process needs them: on Kafka they are read outside the
        # consumer group, from just their partitions.
        self._rate_bases = {symmod.base_of(c.book) for c in self.cfg.detector.conversions.values()
                            if c.book}
        rates = (self.bus.subscribe_rates(self._rate_bases, wake=wake)
                 if self._rate_bases and hasattr(self.bus, "subscribe_rates") else None)
        while not self._stopping:
            if (not len(quotes) and not len(status) and not (rates and len(rates))
                    and not await clock.wait(wake, 0.25)):
                continue
            wake.clear()
            for st in status.drain():
                if isinstance(st, BookStatus):
                    self._emit_all(det.on_book_state(st))
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
                if self.mode == "view" or "feed" not in self.roles:
                    for q in batch:
                        self.latest[(q.venue, q.symbol)] = q
                    self.quote_rate.add(len(batch))
                # The whole batch is applied before any pair is judged, so a venue's
                # new price never meets another's price superseded in the same batch.
                events = det.on_quotes(batch)
                done = clock.now_ns()
                for q in batch:
                    lat.add(done - live_ns(q))  # a liveness refresh keeps its top's recv time
                if events:
                    self._emit_all(events)
            await asyncio.sleep(0)

    def _forget_symbols(self, symbols: set[str], reason: str) -> None:
        """Another detector process owns (or owned meanwhile) these symbols: close what
        we had open on them and start them clean, as if every book had resynced."""
        det = self.detector
        # Partitions follow the base asset (BTC-USD and BTC-USDT travel together), and
        # on_book_state closes every open key (buy sym, buy venue, sell venue, sell sym)
        # that used the forgotten quote.
        # The conversion books keep coming from the rates inbox, whoever owns them.
        bases = {symmod.base_of(s) for s in symbols} - getattr(self, "_rate_bases", set())
        if not bases:
            return
        for sym, by_venue in list(det.quotes.items()):
            if symmod.base_of(sym) not in bases:
                continue
            for v in list(by_venue):
                prev = det.book_state.get((v, sym))
                self._emit_all(det.on_book_state(BookStatus(
                    venue=v, symbol=sym, state=BookState.RESYNC, reason=reason,
                    ts_ns=self.clock.now_ns())))
                # Forget the quote, not the book's real state (the status topic owns it).
                if prev is None:
                    det.book_state.pop((v, sym), None)
                else:
                    det.book_state[(v, sym)] = prev
                if "feed" not in self.roles:
                    self.latest.pop((v, sym), None)
        log.info("detector: symbols of %s reset (%s)", ", ".join(sorted(bases)), reason)

    async def _viewer_loop(self) -> None:
        """``--role view``: everything the dashboard shows, read from the bus topics."""
        wake = asyncio.Event()
        quotes = self.bus.subscribe(QUOTES, "viewer", coalesce=quote_key, wake=wake)
        opps = self.bus.subscribe(OPPORTUNITIES, "viewer", wake=wake)
        fills = self.bus.subscribe(FILLS, "viewer", wake=wake)
        status = self.bus.subscribe(STATUS, "viewer", wake=wake)
        # Per-stage latency across processes: venue->feed receive is the feed's own
        # view; feed receive->bus publish, publish->here, and quote->opportunity.
        self.stage_latency = stages = {"feed": Latency(4096), "bus": Latency(4096),
                                       "detect": Latency(4096)}
        self.view_open = self.windows.open  # reconciled against the detectors' open sets
        self.remote_books: dict[tuple[str, str], BookStatus] = {}
        next_sweep = 0.0
        while not self._stopping:
            if not (len(quotes) or len(opps) or len(fills) or len(status)):
                await self.clock.wait(wake, 0.25)
            wake.clear()
            now = self.clock.now_ns()
            for st in status.drain():
                if isinstance(st, BookStatus):
                    self.remote_books[(st.venue, st.symbol)] = st
                    if st.state is not BookState.LIVE:
                        self.latest.pop((st.venue, st.symbol), None)
            for q in quotes.drain():
                self.latest[(q.venue, q.symbol)] = q
                self.quote_rate.add()
                if q.pub_ts_ns and q.recv_ts_ns:
                    stages["feed"].add(q.pub_ts_ns - live_ns(q))
                    stages["bus"].add(now - q.pub_ts_ns)
            mono = time.monotonic()
            for o in opps.drain():
                if isinstance(o, OpenSet):
                    for c in self.windows.on_snapshot(o, mono, now):
                        self.record_event(c)
                    continue
                if not self.windows.on_event(o, mono):
                    continue  # a late event for a window already closed
                if o.quote_recv_ts_ns and o.event is not OppEvent.CLOSED:
                    stages["detect"].add(o.ts_ns - o.quote_recv_ts_ns)
                    self.detect_latency.add(o.ts_ns - o.quote_recv_ts_ns)
                self.record_event(o)
            for f in fills.drain():
                self.record_event(f)
            if mono >= next_sweep:
                next_sweep = mono + 0.5
                for c in self.windows.sweep(mono, self._bus_up_since(), now):
                    self.record_event(c)
            await asyncio.sleep(0)

    def _bus_up_since(self) -> float | None:
        """Monotonic time the bus has been up since (None while it is down)."""
        if self.bus.kind != "kafka":
            return self.started
        return getattr(self.bus, "up_since", None) if self.bus.state == "up" else None

    def _publish_open_set(self, why: str) -> None:
        """This detector's open windows, for consumers to reconcile against."""
        self._snap_seq += 1
        det = self.detector
        opens = [msgspec.structs.replace(o.opp, owner=self.owner_id, buy_book=[], sell_book=[])
                 for o in det.open.values()]
        self.bus.publish(OPPORTUNITIES, "open-set", OpenSet(
            owner=self.owner_id, host=self._host, started_ns=self.started_ns,
            seq=self._snap_seq, ts_ns=det.clock(), why=why, open=opens))

    async def _sweep_loop(self) -> None:
        next_states = 0.0
        clock = self.clock
        next_snap, seen_state, seen_rebalances = 0.0, "", 0
        while not self._stopping:
            await clock.sleep(0.1)
            if "detect" in self.roles:
                self._emit_all(self.detector.sweep())
                if self.owner_id:
                    # Periodically, on (re)connect, and after a rebalance (a detector that
                    # took partitions over announces what it has open).
                    state, reb = self.bus.state, getattr(self.bus, "rebalances", 0)
                    why = ("connected" if state == "up" and seen_state != "up" else
                           "rebalance" if reb != seen_rebalances else
                           "periodic" if clock.monotonic() >= next_snap else "")
                    seen_state, seen_rebalances = state, reb
                    if why and state == "up":
                        self._publish_open_set(why)
                        next_snap = clock.monotonic() + self.cfg.bus.kafka.snapshot_interval_s
            if self.bus.kind == "kafka" and self.feeds and clock.monotonic() >= next_states:
                # Book states are published on change only; a viewer or detector that
                # starts later learns them from this periodic re-statement.
                next_states = clock.monotonic() + 5.0
                for f in self.feeds.values():
                    for sb in f.books.values():
                        self.bus.publish(STATUS, sb.symbol, BookStatus(
                            venue=f.venue, symbol=sb.symbol, state=sb.state, reason=sb.reason,
                            ts_ns=sb.since_ns))

    def _emit_all(self, events: list[Opportunity]) -> None:
        owner = self.owner_id
        for e in events:
            if owner:
                e.owner = owner
            self.bus.publish(OPPORTUNITIES, e.symbol, e)
            self.record_event(e)

    def record_event(self, e: Opportunity | Fill) -> None:
        self.event_seq += 1
        self.events.append((self.event_seq, e))

    # ------------------------------------------------------------------ controls

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        feed = self.feeds.get(venue)
        self._emit_all(self.detector.set_venue_enabled(venue, enabled))
        if feed is None:
            return
        if enabled and not feed.enabled:
            feed.enabled = True
            self._spawn(f"feed:{venue}", feed.run)
        elif not enabled and feed.enabled:
            feed.enabled = False
            for k in [k for k in self.latest if k[0] == venue]:
                self.latest.pop(k, None)
            asyncio.get_running_loop().create_task(feed.stop())

    def set_symbol_enabled(self, symbol: str, enabled: bool) -> None:
        self._emit_all(self.detector.set_symbol_enabled(symbol, enabled))

    def set_threshold(self, min_net_bps: float) -> None:
        self._emit_all(self.detector.set_threshold(min_net_bps))

    def set_max_quote_age(self, ms: float) -> None:
        """Quotes older than this stop counting; the sweep closes windows that relied on them."""
        self.detector.cfg.max_quote_age_ms = ms
        self._emit_all(self.detector.sweep())

    def set_execution_threshold(self, min_net_bps: float) -> None:
        self.cfg.execution.min_net_bps = min_net_bps
        if self.executor is not None and hasattr(self.executor, "set_threshold"):
            self.executor.set_threshold(min_net_bps)

    def set_execution(self, enabled: bool) -> None:
        self.cfg.execution.enabled = enabled
        if self.executor is not None and hasattr(self.executor, "set_enabled"):
            self.executor.set_enabled(enabled)

    # ------------------------------------------------------------------ sampling

    def venue_statuses(self) -> dict[str, VenueStatus]:
        if not self.feeds and getattr(self, "remote_books", None):
            return self._remote_venue_statuses()
        return {v: f.status() for v, f in self.feeds.items()}

    def _remote_venue_statuses(self) -> dict[str, VenueStatus]:
        """View role: venue health as the feed processes reported it on the status
        topic (book states) plus the quotes seen; worst book state wins."""
        order = [BookState.LIVE, BookState.SYNCING, BookState.STALE, BookState.RESYNC,
                 BookState.DISABLED]
        out: dict[str, VenueStatus] = {}
        for (v, sym), st in self.remote_books.items():
            vs = out.get(v) or out.setdefault(v, VenueStatus(venue=v, state=BookState.LIVE,
                                                             connected=True))
            vs.symbols[sym] = SymbolStatus(state=st.state, reason=st.reason, since_ns=st.ts_ns)
            if order.index(st.state) > order.index(vs.state):
                vs.state, vs.reason = st.state, f"{sym}: {st.reason}"
        for (v, _), q in self.latest.items():
            vs = out.get(v)
            if vs is not None:
                vs.last_msg_ns = max(vs.last_msg_ns, live_ns(q))
        return out

    def symbols(self) -> list[str]:
        if self.mode == "demo":
            return list(self.cfg.sim.symbols)
        return self.cfg.symbols()

    def snapshot(self) -> EngineState:
        p50, p99 = self.detect_latency.percentiles_ms(50, 99)
        return EngineState(
            mode=self.mode.upper(), bus=self.bus.stats(), uptime_s=time.monotonic() - self.started,
            venues=self.venue_statuses(), quotes=dict(self.latest),
            open_opportunities=([o.opp for o in self.detector.open.values()]
                                if "detect" in self.roles or not hasattr(self, "view_open")
                                else list(self.view_open.values())),
            quotes_per_s=self.quote_rate.sample(), detect_p50_ms=p50, detect_p99_ms=p99,
            min_net_bps=self.detector.cfg.min_net_bps,
            execution_enabled=self.cfg.execution.enabled, event_seq=self.event_seq,
            # Roles the supervisor restarted, by name: shown, never silent.
            extra={**self._transport_extra(), **self._execution_extra(),
                   "role_failures": dict(self.failures)},
        )

    def _execution_extra(self) -> dict[str, Any]:
        """Wallets/PnL, detector health (blocked comparisons, clock offsets, lifetimes), journal."""
        out: dict[str, Any] = {}
        if self.executor is not None and hasattr(self.executor, "snapshot"):
            out["executor"] = self.executor.snapshot()
        if "detect" in self.roles:
            out["detector"] = self.detector.status()
        if self.journal is not None and hasattr(self.journal, "stats"):
            out["journal"] = self.journal.stats()
        return out

    def _transport_extra(self) -> dict[str, Any]:
        """Kafka health and cross-process stage latency for the status line / header."""
        out: dict[str, Any] = {}
        b = self.bus.stats() if self.bus.kind == "kafka" else None
        if b is not None:
            out["kafka"] = {k: b.get(k) for k in (
                "state", "reason", "down_for_s", "outages", "missing_permissions", "in_flight",
                "superseded", "dropped", "retried", "lost", "duplicates", "idempotent",
                "delivery_errors", "bad_records", "consumed", "assigned_partitions",
                "rebalances", "log_resets", "last_error",
                "hop_p50_ms", "hop_p99_ms")}
            if self.owner_id:
                out["kafka"]["owner"] = self.owner_id
            w = self.windows
            if w.owners or w.reconciled or w.learned:
                out["reconcile"] = w.stats()
        stages = getattr(self, "stage_latency", None)
        if stages:
            out["stage_p50_ms"] = {k: v.percentiles_ms(50)[0] for k, v in stages.items()}
        return out

    def events_since(self, seq: int) -> list[tuple[int, Any]]:
        """Events newer than ``seq`` (the ring is bounded; very old ones are gone)."""
        ev = self.events
        if not ev or ev[-1][0] <= seq:
            return []
        start = max(0, len(ev) - (ev[-1][0] - seq))
        return [ev[i] for i in range(start, len(ev))]


__all__ = ["Engine", "EngineState", "FILLS"]
