"""``ReplayEngine``: the live ``Engine`` whose feed role is the replay driver.

Every recorded WebSocket connection gets its own adapter instance
(``feed_class(venue)``), exactly as a live connection would; the driver
(``driver.py``) hands it the recorded frames on replay time. Everything after
the adapters is the live engine unchanged: quotes and book states go on the
bus, the detector role drains them in batches, the executor role trades on
the opportunities topic, the sweeper closes stale windows, the journal records;
all of them on the engine's clock, which here is the driver's ``VirtualClock``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from arbtui.backend.clock import VirtualClock
from arbtui.backend.engine import Engine, EngineState
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.replay.driver import ReplayDriver
from arbtui.backend.replay.plan import Conn, ReplayPlan
from arbtui.backend.replay.status import merge_status
from arbtui.config import Config
from arbtui.model import BookStatus, Funding, Quote, VenueStatus

log = logging.getLogger("arbtui.replay")


def replay_journal_path() -> Path:
    """A fresh journal for one replay: ``<state>/arbtui/replays/<UTC time>-<pid>.sqlite``."""
    from arbtui.backend.journal import default_path

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return default_path().parent / "replays" / f"{stamp}-{os.getpid()}.sqlite"


class ReplayEngine(Engine):
    """An ``Engine`` (same ``start/stop/snapshot/events_since/feeds/set_*`` surface) whose
    quotes come from recordings. ``mode == "replay"``."""

    def __init__(self, cfg: Config, files: list[str] | str, *, speed: float = 1.0,
                 bus=None, roles: tuple[str, ...] = ("feed", "detect", "execute"),
                 settle_rounds: int = 8, journal_path: str | None = None,
                 bus_kind: str | None = None) -> None:
        """``bus_kind`` ("embedded" | "kafka") overrides ``[bus] kind``; on Kafka the
        replay runs on private topics of the configured cluster (``replay/kafka.py``)."""
        # Replayed opportunities and fills must never mix with a live session's
        # record: the configured journal is the live one, so a replay writes the
        # one it is given, else its own file under the state dir (replay_journal_path).
        cfg.journal.path = journal_path or str(replay_journal_path())
        files = [files] if isinstance(files, str) else list(files)
        # Read and plan now, not in start(): the dashboard asks for symbols() when it
        # builds its widgets, and a missing or unreadable file should fail at once.
        plan = ReplayPlan(files)
        clock = VirtualClock(plan.start_ns)
        kind = bus.kind if bus is not None else (bus_kind or cfg.bus.kind)
        if bus is None and kind == "kafka":
            # The configured cluster, on topics of this run's own (replay/kafka.py):
            # replayed quotes never reach a live deployment's consumers.
            from arbtui.backend.replay.kafka import ReplayKafkaBus

            bus = ReplayKafkaBus(cfg.bus)
        elif bus is None:
            from arbtui.backend.bus.embedded import EmbeddedBus

            bus = EmbeddedBus(cfg.bus.queue_size)
        super().__init__(cfg, mode="replay", bus=bus, roles=roles, clock=clock)
        self.files = files
        self.plan = plan
        self.driver = ReplayDriver(plan, clock, speed=speed, settle_rounds=settle_rounds)
        if hasattr(bus, "barrier"):
            # A networked bus: a step is over once its messages made the round trip
            # and every role handled them (the embedded bus delivers inside publish).
            self.driver.barrier = bus.barrier
            self.driver.before_start = bus.ready
            # One process owns every window of this replay: no owner id (it names a
            # pid and a wall-clock start, and would differ between two runs), so no
            # open-set snapshots either: those reconcile windows across processes.
            self.owner_id = self.detect.owner = ""
        self.speed = self.driver.speed
        self.damage = self.plan.damage
        self.conns = self.plan.conns
        self.conn_feeds = self.driver.feeds
        self.quote_listeners: list[Callable[[Quote], None]] = []
        self.state_listeners: list[Callable[[BookStatus], None]] = []
        self.funding_listeners: list[Callable[[Funding], None]] = []
        self.quotes_out = 0
        for c in self.plan.replayable():
            self._make_feed(c)
        if not self.conn_feeds:
            log.warning("replay: nothing to replay (no connection with a spot book subscription)")

    def _make_feed(self, c: Conn) -> VenueFeed:
        assert c.cls is not None
        vc = self.cfg.venues.get(c.venue or "")
        rest = ""
        arch = self.plan.archives.get(c.venue or "")
        if arch is not None and arch.all:
            u = urllib.parse.urlsplit(arch.all[0].url)
            rest = f"{u.scheme}://{u.netloc}"
        feed = c.cls(list(c.symbols), self._on_quote, url=c.url, rest_url=rest,
                     depth=vc.depth if vc else 1000, quote_depth=self.cfg.quote_depth,
                     symbol_map=c.symbol_map, clock=self.clock)
        feed.on_book_state = self._on_book_state
        feed.on_funding = self._on_funding
        feed.conn_state_reason = "replay: waiting for its first frame"
        if not feed.enabled:
            feed.enabled = True
        self.driver.attach(c, feed)
        self.feeds.setdefault(c.venue or "?", feed)
        return feed

    # ------------------------------------------------------------------ driver facts

    @property
    def now_ns(self) -> int:
        return self.clock.now_ns()

    @property
    def finished(self) -> asyncio.Event:
        return self.driver.finished

    @property
    def error(self) -> str | None:
        return self.driver.error

    @property
    def lines_total(self) -> int:
        return self.driver.lines_total

    @property
    def lines_done(self) -> int:
        return self.driver.lines_done

    @property
    def http_served(self) -> int:
        return self.driver.http_served

    @property
    def http_missing(self) -> int:
        return self.driver.http_missing

    def clock_ns(self) -> int:
        return self.clock.now_ns()

    # ------------------------------------------------------------------ lifecycle

    async def _start_feeds(self) -> None:
        """The feed role: the driver instead of sockets (``Engine.start`` starts the
        detector, executor, sweeper and journal roles as live)."""
        t = asyncio.get_running_loop().create_task(self._run_driver(), name="replay")
        self._tasks.append(t)

    async def _run_driver(self) -> None:
        try:
            await self.driver.run()
        finally:
            self._log_summary()

    async def stop(self) -> None:
        self._stopping = True
        self.driver.stop()
        await super().stop()

    async def wait_finished(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self.finished.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # ------------------------------------------------------------------ hot path

    def _on_quote(self, q: Quote) -> None:
        # Every quote is stamped with replay time: the frame's receive time, or
        # the recorded arrival of the REST answer that completed the book.
        if q.live_ts_ns <= q.recv_ts_ns:  # a liveness refresh keeps its top's time
            q.recv_ts_ns = q.live_ts_ns = self.clock.now
        if q.venue in self.detector.disabled_venues:
            return
        self.quotes_out += 1
        for fn in self.quote_listeners:
            fn(q)
        super()._on_quote(q)

    def _on_funding(self, f: Funding) -> None:
        """A perp venue's funding/mark/index, on the funding topic as live (its
        ``recv_ts_ns`` on replay time)."""
        f.recv_ts_ns = self.clock.now
        for fn in self.funding_listeners:
            fn(f)
        self.publish_funding(f)

    def _on_book_state(self, st: BookStatus) -> None:
        st.ts_ns = self.clock.now
        for fn in self.state_listeners:
            fn(st)
        super()._on_book_state(st)

    # ------------------------------------------------------------------ controls

    def set_venue_enabled(self, venue: str, enabled: bool) -> None:
        # Replay never opens sockets: a disabled venue's frames still build its
        # books (so re-enabling is instant), its quotes just go nowhere.
        self._emit_all(self.detector.set_venue_enabled(venue, enabled))
        for f in self.conn_feeds:
            if f.venue == venue:
                f.enabled = enabled
        if not enabled:
            for k in [k for k in self.latest if k[0] == venue]:
                self.latest.pop(k, None)

    # ------------------------------------------------------------------ sampling

    def symbols(self) -> list[str]:
        out: list[str] = []
        for f in self.conn_feeds:
            for s in f.books:
                if s not in out:
                    out.append(s)
        return out

    def venue_statuses(self) -> dict[str, VenueStatus]:
        by_venue: dict[str, list[VenueFeed]] = {}
        for f in self.conn_feeds:
            by_venue.setdefault(f.venue, []).append(f)
        out: dict[str, VenueStatus] = {}
        for v, fs in by_venue.items():
            sts = [f.status() for f in fs]
            out[v] = sts[0] if len(sts) == 1 else merge_status(v, sts)
        return out

    def snapshot(self) -> EngineState:
        st = super().snapshot()
        st.extra["replay"] = self.progress()
        return st

    def progress(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines_done,
            "lines_total": self.lines_total,
            "replay_ts": self.now_ns / 1e9 if self.now_ns else None,
            "speed": "max" if math.isinf(self.speed) else self.speed,
            "finished": self.finished.is_set(),
            "damage": [str(d) for d in self.damage],
            "error": self.error,
        }

    def summary(self) -> dict[str, Any]:
        conns = []
        for c in self.conns:
            d: dict[str, Any] = {"file": c.path, "conn": c.conn, "venue": c.venue,
                                 "frames": c.frames}
            if c.skip:
                d["skipped"] = c.skip
            else:
                d["symbols"] = c.symbols
                assert c.feed is not None
                st = c.feed.status()
                d["counters"] = st.counters
                d["books"] = {s: ss.state.value for s, ss in st.symbols.items()}
            conns.append(d)
        return {"type": "replay_summary", **self.progress(), "quotes": self.quotes_out,
                "http_served": self.http_served, "http_missing": self.http_missing,
                "opportunity_events": self.event_seq, "connections": conns}

    def _log_summary(self) -> None:
        s = self.summary()
        for c in s["connections"]:
            if "skipped" in c:
                continue
            log.info("replay: %s %s (%s): %d frames, books %s, counters %s", c["file"],
                     c["conn"], c["venue"], c["frames"], c["books"], c["counters"])
        log.info("replay: %d/%d lines, %d quotes, %d opportunity events%s", self.lines_done,
                 self.lines_total, self.quotes_out, self.event_seq,
                 f"; stopped early: {'; '.join(s['damage'])}" if self.damage else "")
