"""Replay on the Kafka bus (issue 13): the same roles over a real broker (tansu, or
$ARBTUI_TEST_KAFKA), on private topics, with a delivery barrier per step, print the
same opportunity and fill lines, byte for byte, as a replay on the embedded bus.

``ARBTUI_TEST_REPLAY_KAFKA=long`` adds a paced (--speed 5) Kafka replay and a second
Kafka run of the same files.
"""

from __future__ import annotations

import asyncio
import json
import os

import msgspec
import pytest
from kafka_broker import kafka_broker, kafka_toml, topic_prefix  # noqa: F401
from replay_fixtures import RECORDINGS, default_cfg, execution_cfg, replay_cli
from replay_fixtures import exec_recording as shared_exec_recording

from arbtui.backend.bus.base import BusError
from arbtui.backend.replay import ReplayEngine

pytestmark = pytest.mark.kafka

LONG = os.environ.get("ARBTUI_TEST_REPLAY_KAFKA", "") == "long"

#: execution_cfg() as a config file: a slow venue (one-legged legs, unwinds), jitter,
#: small wallets (sizes capped by balances), sizes that walk the book (partials).
EXEC_TOML = """
[detector]
min_net_bps = 1.0
max_notional = 500000.0

[execution]
enabled = true
min_net_bps = 1.0
jitter_ms = 20.0
one_leg_policy = "unwind"
max_notional = 500000.0

[execution.latency_ms]
coinbase = 5.0
kraken = 150.0
okx = 40.0

[execution.wallets.kraken]
base = 0.02
quote = 1500.0

[execution.wallets.okx]
base = 0.5
quote = 400.0
"""


@pytest.fixture(scope="module")
def exec_recording(tmp_path_factory):
    return shared_exec_recording(tmp_path_factory)


def _lines(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines()
            if json.loads(ln)["type"] in ("opportunity", "fill")]


async def _topics(bootstrap: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _left(bootstrap: str, prefix: str) -> set[str]:
    """Topics named with ``prefix`` still listed (Apache Kafka deletes asynchronously:
    a deleted topic may be listed for a moment)."""
    for _ in range(50):
        left = {t for t in await _topics(bootstrap) if t.startswith(prefix)}
        if not left:
            break
        await asyncio.sleep(0.2)
    return left


def test_cli_lines_are_byte_identical_on_kafka_and_embedded(exec_recording, tmp_path,
                                                            kafka_broker):  # noqa: F811
    prefix = topic_prefix()
    conf = tmp_path / "kafka.toml"
    conf.write_text(kafka_toml(kafka_broker.bootstrap, prefix, extra=EXEC_TOML))
    emb = replay_cli([exec_recording], "--max", "--no-ui", "--config", str(conf),
                     "--bus", "embedded")
    kaf = replay_cli([exec_recording], "--max", "--no-ui", "--config", str(conf))
    assert emb.returncode == 0, emb.stderr
    assert kaf.returncode == 0, kaf.stderr
    a, b = _lines(emb.stdout), _lines(kaf.stdout)
    assert a == b
    # The run covers the cases that depend on timing and wallets, so equality above
    # means something for each of them.
    events = [json.loads(x) for x in a]
    fills = [e for e in events if e["type"] == "fill"]
    opps = [e for e in events if e["type"] == "opportunity"]
    assert len(opps) > 10 and len(fills) > 10
    statuses = {(f["status"], f["kind"]) for f in fills}
    assert ("partial", "leg") in statuses or ("partial", "unwind") in statuses, statuses
    assert ("rejected", "leg") in statuses, statuses
    assert "one-legged" in " | ".join(f["reason"] for f in fills)
    assert {o.get("limited_by") for o in opps} & {"base_balance", "quote_balance"}
    # The report counted the same journal rows on both buses.
    rep = [json.loads(x) for x in (emb.stdout, kaf.stdout) for x in x.splitlines()[-1:]]
    assert rep[0]["type"] == rep[1]["type"] == "report"
    assert rep[0]["realized_pnl"] == rep[1]["realized_pnl"]
    assert rep[0]["executions"] == rep[1]["executions"]
    # Every opportunity event and fill reached the executor and journal over the broker.
    status = [json.loads(x) for x in kaf.stdout.splitlines() if '"type":"status"' in x][-1]
    consumed = status["kafka"]["consumed"]
    assert consumed["opportunities"] == len(opps) and consumed["fills"] == len(fills), consumed
    assert consumed["quotes"] > len(opps) and consumed["wallets"] > 0, consumed
    assert not status["kafka"]["dropped"] and not status["kafka"]["bad_records"]
    # The Kafka run went over the broker, on its own topics, and removed them; the
    # configured (live) topics were never created, let alone written.
    assert "delivery rounds" in kaf.stderr and "deleted" in kaf.stderr, kaf.stderr
    assert "delivery rounds" not in emb.stderr
    assert not asyncio.run(_left(kafka_broker.bootstrap, prefix))


@pytest.mark.skipif(not LONG, reason="ARBTUI_TEST_REPLAY_KAFKA=long: two more Kafka replays")
async def test_kafka_twice_and_paced_equal_embedded(exec_recording, kafka_broker):  # noqa: F811
    prefix = topic_prefix()

    def cfg():
        c = execution_cfg()
        c.bus.kafka.bootstrap_servers = kafka_broker.bootstrap
        c.bus.kafka.topic_quotes = f"{prefix}.quotes"
        return c

    async def run(kind: str, speed: float = 0.0):
        eng = ReplayEngine(cfg(), [str(exec_recording)], speed=speed, bus_kind=kind)
        await eng.start()
        try:
            assert await eng.wait_finished(300), "replay did not finish"
            assert eng.error is None, eng.error
            return [msgspec.json.encode(e) for _, e in eng.events], eng.executor.snapshot()
        finally:
            await eng.stop()

    a = await run("embedded")
    assert a[0] and a == await run("kafka") == await run("kafka", speed=5.0)


async def test_shared_recordings_replay_the_same_on_kafka(kafka_broker):  # noqa: F811
    files = sorted(str(p) for p in RECORDINGS.glob("*.jsonl.zst")) if RECORDINGS.is_dir() else []
    if not files:
        pytest.skip(f"real recordings folder {RECORDINGS} is absent or empty")

    async def run(kind: str):
        c = default_cfg()
        c.execution.enabled = True
        c.bus.kafka.bootstrap_servers = kafka_broker.bootstrap
        eng = ReplayEngine(c, files, speed=0, bus_kind=kind)
        await eng.start()
        try:
            assert await eng.wait_finished(120)
            assert eng.error is None, eng.error
            out = ([msgspec.json.encode(e) for _, e in eng.events], eng.quotes_out,
                   eng.lines_done)
        finally:
            await eng.stop()
        return (*out, eng.bus.stats())  # after stop: the topics' deletion is in it

    a = await run("embedded")
    b = await run("kafka")
    assert a[:3] == b[:3]
    st = b[3]
    # Everything published went over the broker and came back, nothing was shed.
    assert b[1] > 500 and st["consumed"]["quotes"] == st["published"]["quotes"] == b[1]
    # (The control topic also carries what the engine says as it stops, after the end.)
    data = {t: n for t, n in st["published"].items() if t != "control"}
    assert {t: st["consumed"].get(t, 0) for t in data} == data, (st["consumed"], data)
    assert st["replay"]["rounds"] >= b[1] // 2 and st["replay"]["topics_deleted"] is True
    assert not st["dropped"] and not st["lost"] and not st["bad_records"]


async def test_kafka_config_bus_override_and_unreachable_cluster(exec_recording):
    cfg = execution_cfg()
    cfg.bus.kind = "kafka"
    cfg.bus.kafka.bootstrap_servers = "127.0.0.1:1"
    # --bus embedded: the Kafka config is not contacted at all.
    eng = ReplayEngine(cfg, [str(exec_recording)], speed=0, bus_kind="embedded")
    assert eng.bus.kind == "embedded"
    # Kafka unreachable: one operator line, no replay on some other bus.
    eng = ReplayEngine(cfg, [str(exec_recording)], speed=0)
    assert eng.bus.kind == "kafka"
    with pytest.raises(BusError, match="cannot connect"):
        await eng.start()
    await eng.stop()


def test_private_config_renames_every_topic_and_keeps_the_cluster():
    from arbtui.backend.replay.kafka import private_bus_config

    bcfg = default_cfg().bus
    bcfg.kafka.fetch_max_wait_ms = 100
    bcfg.kafka.acks = 0
    p = private_bus_config(bcfg, "RID").kafka
    k = bcfg.kafka
    names = [f for f in k.__struct_fields__ if f.startswith("topic_")]
    assert len(names) >= 5
    for f in names:
        assert getattr(p, f) == f"{getattr(k, f)}.replay-RID"
    assert p.group_id == f"{k.group_id}.replay-RID"
    assert p.bootstrap_servers == k.bootstrap_servers and p.security_protocol == k.security_protocol
    assert p.partitions == 1 and p.fetch_max_wait_ms == 1 and p.acks == 1
    assert k.topic_quotes == "arbtui.quotes"  # the configured one is not changed


async def test_broker_lost_mid_replay_fails_it_with_the_reason(exec_recording, tmp_path):
    """A round that cannot complete ends the replay with what it waited for; it never
    hangs and never goes on with half-delivered steps."""
    from kafka_broker import EXTERNAL, Broker

    if EXTERNAL:
        pytest.skip("kills the broker: only with the tests' own tansu")
    broker = Broker(tmp_path)
    broker.start()
    try:
        cfg = execution_cfg()
        cfg.bus.kafka.bootstrap_servers = broker.bootstrap
        eng = ReplayEngine(cfg, [str(exec_recording)], speed=1.0, bus_kind="kafka")
        await eng.start()
        try:
            for _ in range(100):  # until a few rounds went over the broker
                if eng.bus.rounds > 20:
                    break
                await asyncio.sleep(0.05)
            assert eng.bus.rounds > 20
            broker.kill()
            assert await eng.wait_finished(60), "the replay hung on a dead broker"
            assert eng.error and "delivery round incomplete" in eng.error, eng.error
            assert eng.lines_done < eng.lines_total
        finally:
            await eng.stop()
        assert eng.bus.topics_deleted is False
    finally:
        broker.stop()
