"""The metrics endpoint over HTTP from a demo engine, parsed by prometheus_client's own
parser; the Grafana dashboard may use only names the endpoint serves."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
import urllib.request
from pathlib import Path

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from arbtui import config
from arbtui.backend.engine import Engine, EngineState
from arbtui.backend.metrics import RESYNC_KINDS, Latency, resync_kind
from arbtui.backend.prometheus import METRICS, EngineCollector
from arbtui.commands.demo import simulator
from arbtui.model import Fill, OppEvent, Opportunity

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "kafka" / "grafana" / "dashboards" / "arbtui.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.status == 200
        return r.read().decode()


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fam, name: str | None = None) -> list:
    return [s for s in fam.samples if name is None or s.name == name]


async def test_exposition_parses_and_counts_match_the_engine(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = config.load(use_user=False)
    port = free_port()
    cfg.metrics.listen = f"127.0.0.1:{port}"
    cfg.journal.enabled = False
    cfg.execution.enabled = True
    cfg.sim.dislocation_rate = 3.0  # lively: fills within seconds
    cfg.sim.dislocation_bps = 20.0
    engine = Engine(cfg, mode="demo", sim=simulator(cfg))
    await engine.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await asyncio.sleep(0.3)
            evs = [e for _, e in engine.events]
            if (any(isinstance(e, Fill) for e in evs)
                    and sum(1 for e in evs if isinstance(e, Opportunity)) >= 3
                    and all(f.quotes_out >= 5 for f in engine.feeds.values())):
                break
        text = await asyncio.to_thread(scrape, f"http://127.0.0.1:{port}/metrics")
        evs = [e for _, e in engine.events]
        statuses = engine.venue_statuses()
    finally:
        await engine.stop()

    fams = families(text)
    for name, (kind, _) in METRICS.items():
        assert name in fams, name
        assert fams[name].type == kind, (name, fams[name].type)

    # histograms in seconds: cumulative buckets ending in +Inf == _count
    det = fams["arbtui_detection_latency_seconds"]
    buckets = samples(det, "arbtui_detection_latency_seconds_bucket")
    counts = [s.value for s in buckets]
    assert counts == sorted(counts) and buckets[-1].labels["le"] == "+Inf"
    n = samples(det, "arbtui_detection_latency_seconds_count")[0].value
    assert n == counts[-1] > 0
    assert 0 < samples(det, "arbtui_detection_latency_seconds_sum")[0].value / n < 1.0
    feed = fams["arbtui_feed_latency_seconds"]
    feed_n = {s.labels["venue"]: s.value
              for s in samples(feed, "arbtui_feed_latency_seconds_count")}
    # venues that stamp their events have a feed histogram (one sample per stamped quote)
    assert len(feed_n) >= 2 and set(feed_n) <= set(statuses), feed_n

    # counters: *_total, and the numbers are the engine's
    quotes = {s.labels["venue"]: s.value for s in samples(fams["arbtui_quotes"], "arbtui_quotes_total")}
    assert set(quotes) == set(statuses)
    assert all(quotes[v] > 0 for v in quotes), quotes
    assert all(0 < n <= quotes[v] for v, n in feed_n.items()), (feed_n, quotes)
    for v, f in engine.feeds.items():  # stopped after the scrape: the feed's count is >=
        assert f.quotes_out >= quotes[v]
    opened = {s.labels["pair"]: s.value
              for s in samples(fams["arbtui_opportunities_opened"],
                               "arbtui_opportunities_opened_total")}
    ring_opened = sum(1 for e in evs if isinstance(e, Opportunity) and e.event is OppEvent.OPENED)
    assert 0 < sum(opened.values()) <= ring_opened
    assert all(re.fullmatch(r"[a-z]+>[a-z]+", p) for p in opened), opened
    fills = samples(fams["arbtui_fills"], "arbtui_fills_total")
    assert fills and {s.labels["outcome"] for s in fills} <= {"filled", "partial", "rejected"}
    assert sum(s.value for s in fills) <= sum(1 for e in evs if isinstance(e, Fill))
    dropped = samples(fams["arbtui_bus_dropped"], "arbtui_bus_dropped_total")
    assert {"quotes"} <= {s.labels["topic"] for s in dropped}
    # conflated quotes are superseded, not lost: counted apart
    sup = {s.labels["topic"]: s.value
           for s in samples(fams["arbtui_bus_superseded"], "arbtui_bus_superseded_total")}
    subs = engine.bus.stats()["subscriptions"]
    assert sup.get("quotes", 0) <= sum(v["superseded"] for k, v in subs.items()
                                       if k.startswith("quotes/"))
    for s in samples(fams["arbtui_book_resyncs"], "arbtui_book_resyncs_total"):
        assert s.labels["reason"] in RESYNC_KINDS

    # gauges: one current state per venue, PnL by currency
    for v in statuses:
        cur = [s for s in samples(fams["arbtui_venue_state"])
               if s.labels["venue"] == v and s.value == 1.0]
        assert len(cur) == 1, (v, cur)
    assert {s.labels["currency"] for s in samples(fams["arbtui_realized_pnl"])} >= {"USD"}
    assert samples(fams["arbtui_open_opportunities"])
    assert not samples(fams["arbtui_kafka_state"])  # embedded bus: no Kafka connection


def test_grafana_dashboard_uses_only_served_names() -> None:
    served: set[str] = set()
    for name, (kind, _) in METRICS.items():
        served |= {name} | ({f"{name}_total"} if kind == "counter" else set())
        if kind == "histogram":
            served |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    assert exprs
    used = {m for e in exprs for m in re.findall(r"\barbtui_[a-z0-9_]+", e)}
    assert used, exprs
    assert used <= served, sorted(used - served)
    # counters are only read through rate(); their bare family name is not a series
    for e in exprs:
        for m in re.findall(r"\barbtui_[a-z0-9_]+_total\b", e):
            assert f"rate({m}" in e, e
    # every metric the endpoint serves has a panel, apart from the uptime gauge
    base = {re.sub(r"_(total|bucket|count|sum)$", "", m) for m in used}
    assert set(METRICS) - base <= {"arbtui_uptime_seconds"}, set(METRICS) - base
    prom = (ROOT / "kafka" / "prometheus.yml").read_text()
    for name, (kind, _) in METRICS.items():
        assert (f"{name}_total" if kind == "counter" else name) in prom, name


def test_latency_histogram_counts_every_sample_past_the_window() -> None:
    lat = Latency(maxlen=8, buckets_s=(0.001, 0.01))
    vals = [500_000, 5_000_000, 50_000_000] * 9  # 0.5 ms, 5 ms, 50 ms; 27 > the window of 8
    for v in vals:
        lat.add(v)
    h = lat.histogram()
    assert h.n == 27
    assert h.buckets() == [("0.001", 9), ("0.01", 18), ("+Inf", 27)]
    assert np.isclose(h.sum, sum(vals) / 1e9)
    assert lat.percentiles_ms(50)[0] is not None  # the rolling window still works


def test_resync_reasons_map_to_bounded_labels() -> None:
    cases = {
        "gap: U=5 after id 3": "gap",
        "u gap: expected 4, got 9": "gap",
        "seq went back: 9 -> 4": "gap",
        "REST snapshot 7 not bridged by update 9->12": "gap",
        "checksum mismatch (got 1, venue 2)": "checksum",
        "crossed book": "crossed",
        "bad frame: KeyError 'b'": "bad_frame",
        "no snapshot after resubscribe": "no_snapshot",
        "book silent": "silent",
        "bookTicker mismatch at id 7": "bbo_mismatch",
        "operator asked": "other",
    }
    for reason, kind in cases.items():
        assert resync_kind(reason) == kind, reason
        assert kind in RESYNC_KINDS


class _Fixed(EngineCollector):
    """The collector over a fixed engine state (no engine, no loop)."""

    def __init__(self, st: EngineState) -> None:
        super().__init__(None, None)
        self.st = st

    def _sample(self):
        return self.st, None, {}, {}


def test_superseded_dropped_and_lost_are_separate_series() -> None:
    bus = {"kind": "kafka", "state": "up",
           "subscriptions": {"quotes/detector": {"depth": 2, "dropped": 1, "superseded": 40}},
           "published": {"quotes": 100, "opportunities": 7}, "superseded": {"quotes": 9},
           "dropped": {"quotes": 3}, "retried": {"opportunities": 2},
           "lost": {"opportunities": 1}, "delivered": {"opportunities": 6}}
    st = EngineState(mode="LIVE", bus=bus, uptime_s=1.0, venues={}, quotes={},
                     open_opportunities=[], quotes_per_s=0.0, detect_p50_ms=None,
                     detect_p99_ms=None, min_net_bps=2.0, execution_enabled=False, event_seq=0)
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for fam in _Fixed(st).collect() for s in fam.samples}
    # lost = inbox overflow + producer shed/failed + reliable messages lost; superseded apart
    assert got[("arbtui_bus_dropped_total", (("topic", "quotes"),))] == 1 + 3
    assert got[("arbtui_bus_dropped_total", (("topic", "opportunities"),))] == 1
    assert got[("arbtui_bus_superseded_total", (("topic", "quotes"),))] == 40 + 9
    assert got[("arbtui_bus_queue_depth", (("subscription", "quotes/detector"),))] == 2
    k = {lab: v for (n, lab), v in got.items() if n == "arbtui_kafka_messages_total"}
    assert k[(("outcome", "lost"), ("topic", "opportunities"))] == 1
    assert k[(("outcome", "superseded"), ("topic", "quotes"))] == 9
    assert k[(("outcome", "retried"), ("topic", "opportunities"))] == 2
    assert k[(("outcome", "published"), ("topic", "quotes"))] == 100
    assert got[("arbtui_kafka_state", (("state", "up"),))] == 1.0
    assert got[("arbtui_kafka_state", (("state", "down"),))] == 0.0
