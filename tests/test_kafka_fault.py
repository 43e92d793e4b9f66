"""The broker dies mid-run and comes back: roles reconnect by themselves.

Runs on its own fresh tansu broker (this module kills it); skipped against an
external cluster (ARBTUI_TEST_KAFKA), which a test must not kill. tansu keeps
its log in memory, so the restarted broker is empty: the roles must also
re-create the topics and re-join the group on their own.
"""

from __future__ import annotations

import sqlite3
import time
from functools import partial

import pytest
from kafka_broker import EXTERNAL, kafka_broker, kafka_toml, topic_prefix  # noqa: F401
from kafka_procs import Procs, wait_for
from polling import until

pytestmark = [pytest.mark.kafka,
              pytest.mark.skipif(bool(EXTERNAL), reason="never kill an external cluster")]


@pytest.fixture
def procs(tmp_path):
    ps = Procs(tmp_path)
    yield ps
    ps.close()


def test_broker_killed_and_restarted_roles_reconnect(tmp_path, procs, kafka_broker):  # noqa: F811
    prefix = topic_prefix()
    cfg = tmp_path / "k.toml"
    journal = tmp_path / "journal.sqlite"
    cfg.write_text(kafka_toml(kafka_broker.bootstrap, prefix, extra=f"""
[headless]
status_interval_s = 0.5
[journal]
path = "{journal}"
flush_ms = 20.0
"""))
    common = ["--config", str(cfg), "--duration", "120"]
    view = procs.start("view", "--role", "view", "--no-ui", *common)
    det = procs.start("detect", "detect", *common)
    wait_for(lambda: len(det.kafka().get("assigned_partitions") or []) == 12, 40,
             "detector assigned", [view, det])
    exe = procs.start("execute", "execute", *common)  # owns the durable journal
    feed = procs.start("feed", "feed", "--demo", *common)
    everyone = [view, det, exe, feed]
    wait_for(lambda: len(view.events()) >= 3, 60, "opportunities before the outage", everyone)
    time.sleep(2.0)  # an up period long enough to hold events well before the kill

    kill_ns = time.time_ns()
    kafka_broker.kill()
    # Every role shows the outage in its status line, and none of them dies.
    for p in everyone:
        wait_for(lambda p=p: p.kafka().get("state") == "down", 20, f"{p.name} shows the outage",
                 everyone)
    assert all(p.kafka()["outages"] >= 1 for p in everyone)
    time.sleep(1.0)

    kafka_broker.start()
    up_ns = time.time_ns()
    for p in everyone:
        wait_for(lambda p=p: p.kafka().get("state") == "up", 40, f"{p.name} back up", everyone)
    # Counted from when the group has surely re-formed (tansu joins take ~5 s).
    settled_ns = up_ns + 5_000_000_000
    wait_for(lambda: len([e for e in view.events() if e["ts_ns"] > settled_ns]) >= 3, 60,
             "opportunities after the restart reach the viewer", everyone)
    time.sleep(2.5)
    stop_ns = time.time_ns()
    rcs = {p.name: p.stop() for p in (feed, det, exe, view)}
    assert rcs == {"feed": 0, "detect": 0, "execute": 0, "view": 0}
    assert "Traceback" not in det.stderr() + feed.stderr() + view.stderr() + exe.stderr()

    seen = [(e["id"], e["event"], e["ts_ns"]) for e in view.events()]
    assert len(seen) == len(set(seen)), "an opportunity event was duplicated"
    first_seen = min(ts for _, _, ts in seen)
    emitted = [(e["id"], e["event"], e["ts_ns"]) for e in det.events()]
    # While the broker was up (before the kill, and once it was back and the group
    # settled), every event the detector emitted reached the viewer.
    up_periods = [k for k in emitted if first_seen <= k[2] < kill_ns - 1_000_000_000
                  or settled_ns <= k[2] < stop_ns - 2_000_000_000]
    assert up_periods
    missing = set(up_periods) - set(seen)
    assert not missing, f"{len(missing)} of {len(up_periods)} events lost: {sorted(missing)[:3]}"
    # The same holds for the durable journal the execute role writes from the topics.
    with sqlite3.connect(journal) as db:
        rows = db.execute("SELECT opp_id, event, ts_ns FROM opportunities").fetchall()
    journaled = [tuple(r) for r in rows]
    assert len(journaled) == len(set(journaled)), "an opportunity was journaled twice"
    lost = set(up_periods) - set(journaled)
    assert not lost, f"{len(lost)} of {len(up_periods)} events missing from the journal"


async def test_records_the_broker_acknowledged_then_lost_are_sent_again(kafka_broker):  # noqa: F811
    """tansu keeps its log in memory: killed, it loses records it had acknowledged
    but nobody had read. The producer finds that out after the outage and sends
    its recent reliable records again (issue 14: no fill lost)."""

    from aiokafka import AIOKafkaConsumer
    from kafka_broker import kafka_config

    from arbtui import model
    from arbtui.backend.bus import FILLS
    from arbtui.backend.bus.kafka import KafkaBus, unpack

    prefix = topic_prefix()
    cfg = kafka_config(kafka_broker.bootstrap, prefix, kafka_extra='on_unreachable = "retry"')
    bus = KafkaBus(cfg.bus)
    await bus.start()

    fills = [model.Fill(opp_id=f"o{i}", venue="kraken", symbol="BTC-USD", side="buy",
                        requested=1.0, filled=1.0, vwap=100.0, fee=0.1, ts_ns=i + 1,
                        status="filled") for i in range(20)]
    wait = partial(until, every=0.1, detail=bus.stats)  # the bus's counters say why
    try:
        await wait(lambda: bus.stats()["state"] == "up", 30, "connected")
        for f in fills:
            bus.publish(FILLS, f.symbol, f)
        await wait(lambda: bus.stats()["delivered"].get(FILLS) == 20, 20, "acknowledged")
        kafka_broker.kill()  # nobody read them: the in-memory log goes with the broker
        await wait(lambda: bus.stats()["state"] == "down", 20, "the outage")
        kafka_broker.start()
        await wait(lambda: bus.stats()["replayed"].get(FILLS) == 20, 40, "the replay")
        await wait(lambda: bus.stats()["delivered"].get(FILLS) == 40, 30, "re-delivered")
    finally:
        await bus.stop()
    c = AIOKafkaConsumer(f"{prefix}.fills", bootstrap_servers=kafka_broker.bootstrap,
                         group_id=None, auto_offset_reset="earliest")
    await c.start()
    got = []
    try:
        for _ in range(20):
            for recs in (await c.getmany(timeout_ms=250)).values():
                for r in recs:
                    got += unpack(r.value)[0]
            if len(got) >= 20:
                break
    finally:
        await c.stop()
    assert sorted(f.opp_id for f in got) == sorted(f.opp_id for f in fills)
