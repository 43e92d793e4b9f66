"""The alerts role: opportunities, book states and fills on the bus -> webhook alerts.

It reads the opportunities, status and fills topics (its own inboxes: a slow
webhook can only ever fill ITS queues, never the detector's), runs the
``[alerts]`` rules (``backend.alerts.Alerter``) on the engine's clock, and
hands each alert to one ``Webhook`` per configured endpoint, each delivering
on its own supervised task. Every 0.5 s (on the same clock) it also checks the
rules that need time to pass: a venue not live for N s, the bus down for N s.

It runs inside a one-process engine (dashboard or ``--no-ui``) and alone as
``arbtui alerts`` on Kafka; a feed, detect or execute process never runs it,
so a deployment sends each alert once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from arbtui.backend.alerts import Alert, Alerter, HttpPoster, Post, Webhook, encode
from arbtui.backend.bus import FILLS, OPPORTUNITIES, STATUS, Bus
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.roles.base import Role
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.config import AlertsConfig
from arbtui.model import BookStatus, Fill, Opportunity

log = logging.getLogger("arbtui.alerts")

#: Seconds between checks of the time-based rules (venue down, bus down).
TICK_S = 0.5


class AlertsRole(Role):
    name = "alerts"

    def __init__(self, cfg: AlertsConfig, bus: Bus, sup: Supervisor, *, clock: Clock = LIVE,
                 bus_state: Callable[[], tuple[str, str]] | None = None,
                 post: Post | None = None, io_clock: Clock = LIVE) -> None:
        """``bus_state`` returns the transport's (state, reason); ``post`` replaces the
        HTTP client (default aiohttp); ``io_clock`` times the deliveries (timeouts and
        backoff are about the server: the process clock, also under a virtual one)."""
        self.cfg = cfg
        self.bus = bus
        self.sup = sup
        self.clock = clock
        self.bus_state = bus_state or (lambda: (str(getattr(bus, "state", "up")),
                                                str(getattr(bus, "reason", ""))))
        self.alerter = Alerter(cfg)
        self._poster = HttpPoster() if post is None else None
        post_fn = post or self._poster.post  # type: ignore[union-attr]
        self.io_clock = io_clock
        self.webhooks = [Webhook(u, cfg, post_fn, io_clock) for u in cfg.webhooks]
        self.seen = 0  # bus messages the rules evaluated
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        if not self.alerter.active_rules():
            log.warning("[alerts] has webhooks but no rule is on: nothing will be sent")
        self._wake = wake = asyncio.Event()
        # Subscribed here, before start() returns, so nothing published after it is missed.
        self._subs = [self.bus.subscribe(t, "alerts", wake=wake)
                      for t in (OPPORTUNITIES, STATUS, FILLS)]
        self._tasks = [self.sup.spawn("alerts", self._loop)]
        self._tasks += [self.sup.spawn(f"alerts:{i}", w.run) for i, w in enumerate(self.webhooks)]

    async def stop(self) -> None:
        self.stopping = True
        self._wake.set()
        if self._tasks:
            # What is already raised gets a short, bounded chance to go out (a --duration
            # run's last alerts), then the deliveries are cancelled wherever they are.
            self.process()
            io, end = self.io_clock, self.io_clock.monotonic() + min(2.0, self.cfg.timeout_s)
            while any(w.queue or w.busy for w in self.webhooks) and io.monotonic() < end:
                await io.sleep(0.02)
        await self.sup.cancel(self._tasks)
        self._tasks = []
        if self._poster is not None:
            await self._poster.close()

    def send(self, alerts: list[Alert]) -> None:
        """Queue ``alerts`` on every webhook (never waits: a full queue drops its oldest)."""
        for a in alerts:
            body = encode(a, self.cfg)
            for w in self.webhooks:
                w.put(body)

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        self.alerter.set_venue_enabled(venue, enabled, self.clock.now_ns())

    def process(self) -> None:
        """Evaluate everything pending and the time-based rules, once."""
        al, now = self.alerter, self.clock.now_ns()
        opps, status, fills = self._subs
        out: list[Alert] = []
        for st in status.drain():
            if isinstance(st, BookStatus):
                self.seen += 1
                out += al.on_status(st, now)
        for o in opps.drain():
            if isinstance(o, Opportunity):
                self.seen += 1
                out += al.on_opportunity(o, now)
        for f in fills.drain():
            if isinstance(f, Fill):
                self.seen += 1
                out += al.on_fill(f, now)
        state, reason = self.bus_state()
        out += al.tick(now, state, self.bus.kind, reason)
        self.send(out)

    async def _loop(self) -> None:
        while not (self.stopping or self.sup.stopping):
            if not any(len(s) for s in self._subs):
                await self.clock.wait(self._wake, TICK_S)
            self._wake.clear()
            self.process()
            await asyncio.sleep(0)

    def state(self) -> dict[str, Any]:
        """Rules, counters and each webhook's health (new dicts; URLs reduced to hosts)."""
        hooks = [w.state() for w in self.webhooks]
        return {**self.alerter.stats(), "seen": self.seen, "webhooks": hooks,
                "failing": sum(h["state"] == "failing" for h in hooks),
                "dropped": sum(h["dropped"] for h in hooks),
                "failed": sum(h["failed"] for h in hooks)}
