"""Optional Prometheus endpoint (``[metrics] listen``), off by default.

A custom collector samples ``engine.snapshot()`` at scrape time, so metrics
cost nothing on the hot path. Binds to loopback unless the operator says
otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("arbtui.metrics")


class EngineCollector:
    def __init__(self, engine: Any, loop: Any) -> None:
        self.engine = engine
        self.loop = loop

    def _snapshot(self):
        # Scrapes arrive on the exporter's thread; take the snapshot on the
        # engine's loop so we never iterate dicts the loop is mutating.
        import asyncio

        async def take():
            return self.engine.snapshot()

        return asyncio.run_coroutine_threadsafe(take(), self.loop).result(timeout=5)

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        st = self._snapshot()
        qps = GaugeMetricFamily("arbtui_quotes_per_second", "Quotes published per second")
        qps.add_metric([], st.quotes_per_s)
        yield qps
        rate = GaugeMetricFamily("arbtui_venue_messages_per_second", "Frames per second", labels=["venue"])
        recon = CounterMetricFamily("arbtui_venue_reconnects", "Reconnects", labels=["venue"])
        state = GaugeMetricFamily("arbtui_book_state", "1 for the book's current state",
                                  labels=["venue", "symbol", "state"])
        counters = CounterMetricFamily("arbtui_venue_events", "Gaps, resyncs, frame errors...",
                                       labels=["venue", "kind"])
        for v, vs in st.venues.items():
            rate.add_metric([v], vs.msg_rate)
            recon.add_metric([v], vs.reconnects)
            for sym, ss in vs.symbols.items():
                state.add_metric([v, sym, ss.state.value], 1)
            for k, n in vs.counters.items():
                counters.add_metric([v, k], n)
        yield from (rate, recon, state, counters)
        lat = GaugeMetricFamily("arbtui_detection_latency_ms", "Receive to detection latency",
                                labels=["quantile"])
        for q, val in (("0.5", st.detect_p50_ms), ("0.99", st.detect_p99_ms)):
            if val is not None:
                lat.add_metric([q], val)
        yield lat
        opn = GaugeMetricFamily("arbtui_open_opportunities", "Open opportunities")
        opn.add_metric([], len(st.open_opportunities))
        yield opn
        best = GaugeMetricFamily("arbtui_opportunity_net_bps", "Net edge of open opportunities",
                                 labels=["symbol", "buy", "sell"])
        for o in st.open_opportunities:
            best.add_metric([o.symbol, o.buy_venue, o.sell_venue], o.net_bps)
        yield best
        bus = st.bus
        depth = GaugeMetricFamily("arbtui_queue_depth", "Bus inbox depth", labels=["queue"])
        drops = CounterMetricFamily("arbtui_queue_dropped", "Messages dropped by overflow policy",
                                    labels=["queue"])
        sup = CounterMetricFamily("arbtui_queue_superseded",
                                  "Quotes replaced by a newer one of their venue+symbol (normal)",
                                  labels=["queue"])
        for name, s in bus.get("subscriptions", {}).items():
            depth.add_metric([name], s.get("depth", 0))
            drops.add_metric([name], s.get("dropped", 0))
            sup.add_metric([name], s.get("superseded", 0))
        yield from (depth, drops, sup)
        if bus.get("kind") == "kafka":
            # The producer's delivery policy by topic: lost > 0 is the alarm.
            out = CounterMetricFamily("arbtui_kafka_messages", "Kafka producer messages",
                                      labels=["topic", "outcome"])
            for outcome in ("published", "delivered", "superseded", "dropped", "retried",
                            "lost", "replayed", "duplicates"):
                for topic, n in (bus.get(outcome) or {}).items():
                    out.add_metric([topic, outcome], n)
            yield out
        for k, val in st.extra.items():
            if isinstance(val, (int, float)) and not isinstance(val, bool):
                g = GaugeMetricFamily(f"arbtui_{k}", k)
                g.add_metric([], float(val))
                yield g


def serve(engine: Any, listen: str, loop: Any) -> Any:
    """Start the exporter on ``host:port``; returns the server (or None if unavailable)."""
    try:
        from prometheus_client import start_http_server
        from prometheus_client.core import CollectorRegistry
    except ImportError:
        log.error("metrics.listen is set but prometheus-client is not installed")
        return None
    host, _, port = listen.rpartition(":")
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine, loop))
    server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)
    log.info("metrics on http://%s/metrics", listen)
    return server
