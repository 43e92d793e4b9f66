"""Prometheus endpoint (``[metrics] listen``), off by default.

A custom collector samples the engine at scrape time, so metrics cost nothing on
the hot path beyond the counts the engine keeps anyway. Names follow Prometheus
conventions: base units (seconds), counters end in ``_total`` and are monotonic
since the process started (use ``rate()`` for per-second values), gauges are
current values. Binds to loopback unless the operator says otherwise.

Everything is read from what the engine already reports: ``snapshot()`` (venue
statuses with their counters, bus and Kafka stats, executor PnL, detector status),
the opportunity/fill event ring (tallied here per pair and per venue and outcome),
and the latency histograms the engine's ``detect_latency`` and each feed keep.

The metric names are listed in ``METRICS``; the Grafana dashboard in
``kafka/grafana/`` may use only these (a test checks it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from arbtui.model import BookState, Fill, OppEvent, Opportunity

log = logging.getLogger("arbtui.metrics")

#: name -> (type, help). Counters are named without ``_total`` here, as the client
#: library wants; the exposition adds it.
METRICS: dict[str, tuple[str, str]] = {
    "arbtui_detection_latency_seconds": (
        "histogram", "Quote receive to opportunity detection, seconds"),
    "arbtui_feed_latency_seconds": (
        "histogram", ("Venue event time to local receive, less the smallest such delay seen "
                     "on the feed (clock offset + fastest path), seconds")),
    "arbtui_quotes": ("counter", "Top-of-book quotes published, by venue"),
    "arbtui_opportunities_opened": ("counter", "Opportunities opened, by venue pair (buy>sell)"),
    "arbtui_fills": ("counter", "Simulated order outcomes, by venue and outcome"),
    "arbtui_book_resyncs": ("counter", "Book resyncs, by venue and reason"),
    "arbtui_bus_dropped": ("counter", ("Messages lost by the bus (an inbox overflowed, the Kafka "
                                      "producer shed or failed them), by topic")),
    "arbtui_bus_superseded": ("counter", ("Quotes replaced by a newer quote of the same book before "
                                         "delivery (conflation by design, not a loss), by topic")),
    "arbtui_kafka_messages": ("counter", ("Kafka producer messages by topic and outcome "
                                         "(published, delivered, superseded, dropped, retried, "
                                         "lost, replayed, duplicates); lost > 0 is the alarm")),
    "arbtui_venue_reconnects": ("counter", "Venue reconnects"),
    "arbtui_venue_events": ("counter", "Venue adapter counters (gaps, checksums, frame errors, ...)"),
    "arbtui_realized_pnl": ("gauge", "Realized PnL of simulated execution, by currency"),
    "arbtui_open_opportunities": ("gauge", "Opportunities open now"),
    "arbtui_opportunity_net_bps": ("gauge", "NET edge of each open opportunity, bps"),
    "arbtui_venue_state": ("gauge", "1 for each venue's current state"),
    "arbtui_book_state": ("gauge", "1 for each book's current state"),
    "arbtui_kafka_state": ("gauge", "1 for the Kafka connection's current state (Kafka bus only)"),
    "arbtui_bus_queue_depth": ("gauge", "Messages waiting in a bus subscription's inbox"),
    "arbtui_uptime_seconds": ("gauge", "Seconds since the engine started"),
}

#: Kafka connection states the bus reports (one series each, 1 for the current one).
KAFKA_STATES = ("connecting", "retrying", "up", "down", "unauthorized", "stopped")
#: The Kafka producer's delivery outcomes the bus counts per topic.
KAFKA_OUTCOMES = ("published", "delivered", "superseded", "dropped", "retried", "lost",
                  "replayed", "duplicates")


class EngineCollector:
    def __init__(self, engine: Any, loop: Any) -> None:
        self.engine = engine
        self.loop = loop
        self._seq = 0
        self._opened: dict[str, int] = {}
        self._fills: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ sampling

    def _tally(self) -> None:
        """Count opportunity and fill events newer than the last scrape (engine loop)."""
        for seq, ev in self.engine.events_since(self._seq):
            self._seq = seq
            if isinstance(ev, Opportunity) and ev.event is OppEvent.OPENED:
                k = f"{ev.buy_venue}>{ev.sell_venue}"
                self._opened[k] = self._opened.get(k, 0) + 1
            elif isinstance(ev, Fill):
                k2 = (ev.venue, ev.status)
                self._fills[k2] = self._fills.get(k2, 0) + 1

    def _sample(self) -> tuple[Any, Any, dict[str, Any], dict[str, int]]:
        """Snapshot, tallies and histograms, taken on the engine's loop: scrapes arrive on
        the exporter's thread, and the engine's dicts are only consistent on its loop."""

        async def take() -> tuple[Any, Any, dict[str, Any], dict[str, int]]:
            st = self.engine.snapshot()
            self._tally()
            lat = getattr(self.engine, "detect_latency", None)
            det = lat.histogram().copy() if lat is not None and hasattr(lat, "histogram") else None
            feeds: dict[str, Any] = {}
            quotes: dict[str, int] = {}
            for f in list(getattr(self.engine, "feeds", {}).values()):
                h = getattr(f, "latency_hist", None)
                if h is not None and h.n:
                    feeds[f.venue] = h.copy()
                if hasattr(f, "quotes_out"):
                    quotes[f.venue] = f.quotes_out
            return st, det, feeds, quotes

        with self._lock:
            return asyncio.run_coroutine_threadsafe(take(), self.loop).result(timeout=5)

    # ------------------------------------------------------------------ exposition

    def describe(self):
        return []  # families are built per scrape; nothing to check at registration

    def collect(self):
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        st, det, feeds, local_quotes = self._sample()

        def fam(name: str, labels: list[str] | None = None):
            kind, doc = METRICS[name]
            cls = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
                   "histogram": HistogramMetricFamily}[kind]
            return cls(name, doc, labels=labels or [])

        h = fam("arbtui_detection_latency_seconds")
        if det is not None:
            h.add_metric([], det.buckets(), det.sum)
        yield h
        h = fam("arbtui_feed_latency_seconds", ["venue"])
        for v, fh in sorted(feeds.items()):
            h.add_metric([v], fh.buckets(), fh.sum)
        yield h

        quotes = fam("arbtui_quotes", ["venue"])
        resyncs = fam("arbtui_book_resyncs", ["venue", "reason"])
        recon = fam("arbtui_venue_reconnects", ["venue"])
        events = fam("arbtui_venue_events", ["venue", "kind"])
        vstate = fam("arbtui_venue_state", ["venue", "state"])
        bstate = fam("arbtui_book_state", ["venue", "symbol", "state"])
        for v, vs in sorted(st.venues.items()):
            # Counted by the feed itself, so only where the feed runs in this process (a
            # Kafka view/detect process serves the venues' states, the feed process these).
            if v in local_quotes:
                quotes.add_metric([v], local_quotes[v])
            recon.add_metric([v], vs.reconnects)
            for k, n in sorted(vs.counters.items()):
                if k.startswith("resyncs."):
                    resyncs.add_metric([v, k.split(".", 1)[1]], n)
                elif k != "resyncs":
                    events.add_metric([v, k], n)
            for s in BookState:
                vstate.add_metric([v, s.value], 1.0 if vs.state is s else 0.0)
            for sym, ss in sorted(vs.symbols.items()):
                bstate.add_metric([v, sym, ss.state.value], 1.0)
        yield from (quotes, resyncs, recon, events, vstate, bstate)

        opened = fam("arbtui_opportunities_opened", ["pair"])
        fills = fam("arbtui_fills", ["venue", "outcome"])
        with self._lock:
            for k, n in sorted(self._opened.items()):
                opened.add_metric([k], n)
            for (v, o), n in sorted(self._fills.items()):
                fills.add_metric([v, o], n)
        yield from (opened, fills)

        opn = fam("arbtui_open_opportunities")
        opn.add_metric([], len(st.open_opportunities))
        best = fam("arbtui_opportunity_net_bps", ["symbol", "buy", "sell"])
        for o in st.open_opportunities:
            best.add_metric([o.symbol, o.buy_venue, o.sell_venue], o.net_bps)
        yield from (opn, best)

        pnl = fam("arbtui_realized_pnl", ["currency"])
        ex = st.extra.get("executor") if isinstance(st.extra, dict) else None
        if isinstance(ex, dict):
            for ccy, val in sorted((ex.get("realized_pnl") or {}).items()):
                pnl.add_metric([ccy], float(val))
        yield pnl

        bus = st.bus or {}
        dropped: dict[str, int] = {}
        superseded: dict[str, int] = {}
        depth = fam("arbtui_bus_queue_depth", ["subscription"])
        for name, s in sorted((bus.get("subscriptions") or {}).items()):
            depth.add_metric([name], s.get("depth", 0))
            topic = name.split("/", 1)[0]
            dropped[topic] = dropped.get(topic, 0) + int(s.get("dropped", 0))
            superseded[topic] = superseded.get(topic, 0) + int(s.get("superseded", 0))
        # Kafka producer, by topic: quotes shed or failed ("dropped"), reliable messages shed
        # at the buffer bound ("lost"), quotes conflated before sending ("superseded").
        for key, into in (("dropped", dropped), ("lost", dropped), ("superseded", superseded)):
            if isinstance(bus.get(key), dict):
                for topic, n in bus[key].items():
                    into[topic] = into.get(topic, 0) + int(n)
        drops = fam("arbtui_bus_dropped", ["topic"])
        for topic, n in sorted(dropped.items()):
            drops.add_metric([topic], n)
        sup = fam("arbtui_bus_superseded", ["topic"])
        for topic, n in sorted(superseded.items()):
            sup.add_metric([topic], n)
        yield from (depth, drops, sup)

        kafka = fam("arbtui_kafka_state", ["state"])
        kmsg = fam("arbtui_kafka_messages", ["topic", "outcome"])
        if bus.get("kind") == "kafka":
            cur = str(bus.get("state", ""))
            for s in sorted({*KAFKA_STATES, cur} - {""}):
                kafka.add_metric([s], 1.0 if s == cur else 0.0)
            for outcome in KAFKA_OUTCOMES:
                for topic, n in sorted((bus.get(outcome) or {}).items()):
                    kmsg.add_metric([topic, outcome], n)
        yield from (kafka, kmsg)

        up = fam("arbtui_uptime_seconds")
        up.add_metric([], st.uptime_s)
        yield up


def serve(engine: Any, listen: str, loop: Any) -> Any:
    """Start the exporter on ``host:port``; returns the server (None if it cannot)."""
    try:
        from prometheus_client import start_http_server
        from prometheus_client.core import CollectorRegistry
    except ImportError:
        log.error("metrics.listen is set but prometheus-client is not importable: "
                  "reinstall arbtui (it is a dependency) or `pip install prometheus-client`")
        return None
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine, loop))
    try:
        server, _thread = start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1",
                                            registry=registry)
    except OSError as e:
        log.error("metrics: cannot listen on %s: %s", listen, e)
        return None
    log.info("metrics on http://%s/metrics", listen)
    return server
