"""A real Kafka outage reaches the dashboard header and the status line the same way.

The engine runs on a real Kafka-protocol broker (tansu, this module's own: it
is killed here); skipped against an external cluster (ARBTUI_TEST_KAFKA).
"""

from __future__ import annotations

import asyncio

import pytest
from kafka_broker import EXTERNAL, kafka_broker, kafka_toml, topic_prefix  # noqa: F401
from polling import until

from arbtui import config as configmod
from arbtui.backend.engine import Engine
from arbtui.headless import status_record
from arbtui.ui.widgets.header import header_text

pytestmark = [pytest.mark.kafka,
              pytest.mark.skipif(bool(EXTERNAL), reason="never kill an external cluster")]


async def test_broker_outage_in_header_and_status_line(tmp_path, monkeypatch, kafka_broker):  # noqa: F811
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = tmp_path / "k.toml"
    path.write_text(kafka_toml(kafka_broker.bootstrap, topic_prefix()))
    cfg = configmod.load(path, use_user=False)
    cfg.journal.enabled = False
    engine = Engine(cfg, mode="view", roles=())
    await asyncio.wait_for(engine.start(), 30)
    try:
        await until(lambda: engine.snapshot().bus.get("state") == "up", 30, "bus up", every=0.1)
        st = engine.snapshot()
        assert "kafka up" in header_text(st, now_ns=0, width=400, focused="", paused=False).plain
        kafka_broker.kill()
        await until(lambda: engine.snapshot().bus.get("state") == "down", 30, "outage seen",
                    every=0.1)
        await asyncio.sleep(1.2)  # so down_for_s is at least 1
        st = engine.snapshot()
        rec = status_record(st)
        b = rec["bus"]
        assert b["kind"] == "kafka" and b["state"] == "down" and b["reason"]
        assert b["down_for_s"] >= 1
        narrow = header_text(st, now_ns=0, width=80, focused="BTC-USD", paused=False).plain
        assert len(narrow) <= 80 and "kafka DOWN " in narrow, narrow
        # The number shown is the status line's down_for_s, rounded.
        assert f"kafka DOWN {b['down_for_s']:.0f}s" in narrow, (narrow, b)
        wide = header_text(st, now_ns=0, width=400, focused="BTC-USD", paused=False).plain
        assert " ".join(b["reason"].split())[:20] in wide, (wide, b["reason"])
    finally:
        await asyncio.wait_for(engine.stop(), 30)
