"""The feed role: venue feeds -> quotes and book states on the bus.

``feed_plan`` says which feeds to build (venue -> endpoints, symbols, depth,
symbol map, enabled): from the config for live venues, or from endpoints the
caller started (the demo simulator hands its loopback URLs in). ``FeedRole``
builds one adapter per venue, runs the enabled ones under the supervisor and
publishes every quote (stamped with its publish time) and every book state
change. On Kafka it also re-states every book's state every 5 s, because
states are published on change only and a detector or viewer that starts
later would otherwise never learn them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from arbtui import symbols as symmod
from arbtui import venues as venmod
from arbtui.backend.bus import FUNDING, QUOTES, STATUS, Bus
from arbtui.backend.clock import LIVE, Clock
from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.roles.base import Market, Role
from arbtui.backend.roles.control import NotOwned, flag
from arbtui.backend.roles.supervisor import Supervisor
from arbtui.config import Config
from arbtui.model import BookState, BookStatus, Funding, Quote, VenueStatus

log = logging.getLogger("arbtui.engine")

#: How often the feed role re-states book states on Kafka (seconds).
RESTATE_S = 5.0
#: How often it publishes each venue's health (model.VenueStatus: message rate, feed
#: latency, reconnects) on Kafka, for viewers in other processes (seconds).
VENUE_STATUS_S = 1.0


def feed_plan(cfg: Config, endpoints: dict[str, tuple[str, str]] | None = None,
              symbols: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """venue -> FeedRole keyword set. With ``endpoints`` (venue -> (ws url, rest url),
    e.g. the simulator's) every listed venue trades ``symbols`` under the simulator's
    symbol names; without, each configured venue as its config says (its symbol
    map is fetched from the venue at start)."""
    plan: dict[str, dict[str, Any]] = {}
    if endpoints is not None:
        syms = list(symbols if symbols is not None else cfg.sim.symbols)
        for v, (url, rest) in endpoints.items():
            vc = cfg.venues.get(v)
            served = [s for s in syms if venmod.get(v).serves(s)]  # spot vs -PERP symbols
            plan[v] = {"symbols": served, "url": url, "rest_url": rest,
                       "depth": vc.depth if vc else 1000,
                       "symbol_map": symmod.sim_symbol_map(v, syms),
                       "enabled": vc.enabled if vc else True}
        return plan
    for v, vc in cfg.venues.items():
        plan[v] = {"symbols": list(vc.symbols), "url": vc.url, "rest_url": vc.rest_url,
                   "depth": vc.depth, "symbol_map": None, "enabled": vc.enabled}
    return plan


def quote_publisher(bus: Bus, market: Market,
                    clock: Clock = LIVE) -> Callable[[Quote], None]:
    """A feed's ``emit``: stamp the quote's publish time, record it in ``market``, publish.

    Built once with everything it touches bound, because it runs for every
    quote: one Python frame per quote (plus the rate count), as few as the
    feed -> bus hop can have.
    """
    latest = market.latest
    count = market.rate.add
    publish = bus.publish
    now = clock.now_ns  # live: wall time, the feed -> bus hop is measured across hosts

    def emit(q: Quote) -> None:
        q.pub_ts_ns = now()
        latest[(q.venue, q.symbol)] = q
        count()
        publish(QUOTES, q.symbol, q)

    return emit


def funding_publisher(bus: Bus, market: Market) -> Callable[[Funding], None]:
    """A perp feed's ``on_funding``: record the venue state in ``market``, publish it
    on the funding topic (keyed by the perp symbol, like its quotes)."""

    def on_funding(f: Funding) -> None:
        market.add_funding(f)
        bus.publish(FUNDING, f.symbol, f)

    return on_funding


def state_publisher(bus: Bus, market: Market) -> Callable[[BookStatus], None]:
    """A feed's ``on_book_state``: publish the change; a book that left LIVE stops
    being shown at once."""

    def on_book_state(st: BookStatus) -> None:
        if st.state is not BookState.LIVE:
            market.drop(st.venue, st.symbol)
        bus.publish(STATUS, st.symbol, st)

    return on_book_state


class FeedRole(Role):
    name = "feed"

    def __init__(self, cfg: Config, bus: Bus, sup: Supervisor, plan: dict[str, dict[str, Any]],
                 *, market: Market, clock: Clock = LIVE) -> None:
        self.cfg = cfg
        self.clock = clock
        self.bus = bus
        self.sup = sup
        self.plan = {v: dict(p) for v, p in plan.items()}
        self.market = market
        self.publish_quote = quote_publisher(bus, market, clock)
        self.publish_state = state_publisher(bus, market)
        self.publish_funding = funding_publisher(bus, market)
        self.feeds: dict[str, VenueFeed] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._restater: asyncio.Task | None = None
        self._venue_stater: asyncio.Task | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        plan = self.plan
        # Live: map symbols from each venue's own instrument list (never by
        # splitting strings), all venues concurrently; None keeps the static table.
        need = [v for v, p in plan.items() if p["symbol_map"] is None and p["enabled"]]
        maps = await asyncio.gather(*(feed_class(v).fetch_symbol_map(plan[v]["rest_url"])
                                      for v in need))
        for v, m in zip(need, maps):
            plan[v]["symbol_map"] = m
        for v, p in plan.items():
            kw = {k: x for k, x in p.items() if k != "enabled"}
            feed = feed_class(v)(emit=self.publish_quote, quote_depth=self.cfg.quote_depth,
                                 clock=self.clock, **kw)
            feed.on_book_state = self.publish_state
            feed.on_funding = self.publish_funding
            self.feeds[v] = feed
            if p["enabled"]:
                self._run(v)
            else:
                feed.enabled = False
        if self.bus.kind == "kafka":
            self._restater = self.sup.spawn("feed:restate", self._restate_loop)
            self._venue_stater = self.sup.spawn("feed:venues", self._venue_status_loop)

    def _run(self, venue: str) -> None:
        self._tasks[venue] = self.sup.spawn(f"feed:{venue}", self.feeds[venue].run)

    async def stop(self) -> None:
        self.stopping = True
        for v, f in self.feeds.items():
            try:
                await asyncio.wait_for(f.stop(), 2)
            except Exception:  # shutting down anyway: a feed that hangs is left behind
                log.debug("feed %s did not stop cleanly", v, exc_info=True)
        tasks = list(self._tasks.values())
        tasks += [t for t in (self._restater, self._venue_stater) if t is not None]
        await self.sup.cancel(tasks)
        self._tasks.clear()

    def disabled_venues(self) -> list[str]:
        """Venues built but not running (off in the config, or switched off)."""
        return [v for v, f in self.feeds.items() if not f.enabled]

    # ------------------------------------------------------------------ hot path

    async def _restate_loop(self) -> None:
        await self.clock.sleep(0.1)
        while not (self.stopping or self.sup.stopping):
            self.restate()
            await self.clock.sleep(RESTATE_S)

    async def _venue_status_loop(self) -> None:
        while not (self.stopping or self.sup.stopping):
            await self.clock.sleep(VENUE_STATUS_S)
            for v, f in self.feeds.items():
                self.bus.publish(STATUS, v, f.status())

    def restate(self) -> None:
        """Publish every book's current state (see the module docstring)."""
        for f in self.feeds.values():
            for sb in f.books.values():
                self.bus.publish(STATUS, sb.symbol, BookStatus(
                    venue=f.venue, symbol=sb.symbol, state=sb.state, reason=sb.reason,
                    ts_ns=sb.since_ns))

    # ------------------------------------------------------------------ commands

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        feed = self.feeds.get(venue)
        if feed is None:
            return
        if enabled and not feed.enabled:
            feed.enabled = True
            self._run(venue)
        elif not enabled and feed.enabled:
            feed.enabled = False
            self.market.drop_venue(venue)
            asyncio.get_running_loop().create_task(feed.stop())

    def apply_control(self, cmd: str, args: dict[str, Any]) -> None:
        """A control-topic venue toggle; a venue this feed process does not run is
        another process's (no ack from here)."""
        if cmd != "venue":
            raise ValueError(f"{cmd}: not a feed command")
        venue = args.get("venue")
        if venue not in self.feeds:
            raise NotOwned(venue)
        self.set_venue_enabled(venue, flag(args))

    def control_state(self) -> dict[str, Any]:
        return {"venues": sorted(self.feeds), "disabled_venues": self.disabled_venues()}

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, VenueStatus]:
        """venue -> its health (``VenueFeed.status`` builds a new Struct each call)."""
        return {v: f.status() for v, f in self.feeds.items()}
