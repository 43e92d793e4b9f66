"""Issue 12: the Kafka path gives the same events as the embedded path on the same
replay, liveness included.

A two-venue recording (tests/trust_fixtures.py) is replayed through the real
adapters; every quote they publish (top changes AND liveness refreshes) goes
through an embedded bus and through a KafkaBus on a real broker (both quote
encodings), and a detector on each side, clocked by the quotes' liveness time
and swept after each quote, must emit byte-identical events. The scenario needs
liveness to be right: the window outlives max_quote_age_ms on refreshes alone
and closes only once Gemini goes silent, so a hop that lost ``live_ts_ns`` would
close it seconds early.
"""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from kafka_broker import kafka_broker, kafka_config, topic_prefix  # noqa: F401
from test_trust_replay import counter_example
from trust_fixtures import trust_cfg

from arbtui.backend.bus import QUOTES
from arbtui.backend.bus.embedded import EmbeddedBus
from arbtui.backend.bus.kafka import KafkaBus
from arbtui.backend.detector import Detector
from arbtui.model import Quote, live_ns

pytestmark = pytest.mark.kafka


def detect(quotes: list[Quote], cfg) -> list[bytes]:
    t = [0]
    det = Detector(cfg.detector, {v: vc.taker_fee_bps for v, vc in cfg.venues.items()},
                   clock=lambda: t[0])
    out = []
    for q in quotes:
        t[0] = live_ns(q)
        out += det.on_quote(q)
        out += det.sweep()
    return [msgspec.json.encode(e) for e in out]


async def collect(sub, n: int, timeout: float = 20.0) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got += await sub.get_batch(0.2)
    return got


@pytest.mark.parametrize("quote_format", ["msgpack", "json"])
async def test_kafka_and_embedded_paths_give_the_same_events(tmp_path, kafka_broker,  # noqa: F811
                                                             quote_format):
    r = counter_example(tmp_path / "k.jsonl.zst", until=4.0)  # gemini heartbeats to 4 s
    for i in range(8):  # then only Bybit talks, to 8 s
        r.bybit_pong(4.5 + i * 0.5)
    cfg = trust_cfg(2.0, max_quote_age_ms=2000.0)
    produced: list[Quote] = []


    def keep(q: Quote) -> None:
        produced.append(msgspec.structs.replace(q))  # as published, before anyone touches it

    run_cfg = trust_cfg(2.0, max_quote_age_ms=2000.0)
    from arbtui.backend.replay import ReplayEngine

    eng = ReplayEngine(run_cfg, [str(r.close())], speed=0.0)
    eng.quote_listeners.append(keep)
    await eng.start()
    try:
        assert await eng.wait_finished(60)
    finally:
        await eng.stop()
    refreshes = [q for q in produced if q.live_ts_ns > q.recv_ts_ns]
    assert len(refreshes) >= 10, "the scenario must carry liveness refreshes"

    emb = EmbeddedBus(cfg.bus.queue_size)
    esub = emb.subscribe(QUOTES, "viewer")
    for q in produced:
        emb.publish(QUOTES, q.symbol, q)
    via_embedded = esub.drain()

    prefix = topic_prefix()
    kcfg = kafka_config(kafka_broker.bootstrap, prefix,
                        kafka_extra=f'quote_format = "{quote_format}"')
    pub, view = KafkaBus(kcfg.bus), KafkaBus(kcfg.bus)
    await pub.start()
    await view.start()
    try:
        ksub = view.subscribe(QUOTES, "viewer")
        await asyncio.wait_for(view.free_ready.wait(), 15)
        for q in produced:
            pub.publish(QUOTES, q.symbol, q)
        via_kafka = await collect(ksub, len(produced))
    finally:
        await asyncio.wait_for(pub.stop(), 10)
        await asyncio.wait_for(view.stop(), 10)
    assert len(via_kafka) == len(produced)
    # the liveness fields survive the hop, in either encoding
    assert [(q.recv_ts_ns, q.live_ts_ns, q.live_venue_ts_ns) for q in via_kafka] == \
        [(q.recv_ts_ns, q.live_ts_ns, q.live_venue_ts_ns) for q in produced]

    a = detect(via_embedded, cfg)
    b = detect(via_kafka, cfg)
    assert b == a
    evs = [msgspec.json.decode(e) for e in a]
    assert [e["event"] for e in evs] == ["opened", "closed"]
    assert evs[1]["reason"].startswith("gemini book stale")
    # open from 0.2 s; Gemini's last proof is its heartbeat at 4.0 s: closed past 6 s
    assert 5800.0 <= evs[1]["lifetime_ms"] <= 6400.0
    # the same replay's own detector opened the same window
    assert [(e.event.value, e.size) for _, e in eng.events][:1] == [("opened", 1.0)]

