"""The Prometheus collector: queue drops and superseded quotes apart, and the Kafka
producer's delivery outcomes by topic (issue 14)."""

from __future__ import annotations

import pytest

pytest.importorskip("prometheus_client")

from arbtui.backend.engine import EngineState
from arbtui.backend.prometheus import EngineCollector


class _Fixed(EngineCollector):
    def __init__(self, st: EngineState) -> None:
        super().__init__(None, None)
        self.st = st

    def _snapshot(self) -> EngineState:
        return self.st


def test_superseded_dropped_and_lost_are_separate_series():
    bus = {"kind": "kafka", "state": "up",
           "subscriptions": {"quotes/detector": {"depth": 2, "dropped": 1, "superseded": 40}},
           "published": {"quotes": 100, "opportunities": 7}, "superseded": {"quotes": 9},
           "dropped": {"quotes": 3}, "retried": {"opportunities": 2},
           "lost": {"opportunities": 1}, "delivered": {"opportunities": 6}}
    st = EngineState(mode="LIVE", bus=bus, uptime_s=1.0, venues={}, quotes={},
                     open_opportunities=[], quotes_per_s=0.0, detect_p50_ms=None,
                     detect_p99_ms=None, min_net_bps=2.0, execution_enabled=False, event_seq=0)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in _Fixed(st).collect() for s in fam.samples}
    assert samples[("arbtui_queue_dropped_total", (("queue", "quotes/detector"),))] == 1
    assert samples[("arbtui_queue_superseded_total", (("queue", "quotes/detector"),))] == 40
    k = {lab: v for (n, lab), v in samples.items() if n == "arbtui_kafka_messages_total"}
    assert k[(("outcome", "lost"), ("topic", "opportunities"))] == 1
    assert k[(("outcome", "superseded"), ("topic", "quotes"))] == 9
    assert k[(("outcome", "retried"), ("topic", "opportunities"))] == 2
    assert k[(("outcome", "published"), ("topic", "quotes"))] == 100
