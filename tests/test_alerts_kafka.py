"""``arbtui alerts``: the alerts role as its own process on a real Kafka-protocol broker,
posting to a real local webhook server (issue 17)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
from kafka_broker import kafka_broker, kafka_config, kafka_toml, topic_prefix  # noqa: F401
from test_alerts import hooks, opp  # noqa: F401

from arbtui.backend.bus import OPPORTUNITIES
from arbtui.backend.bus.kafka import KafkaBus

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.kafka


async def test_the_alerts_role_process_reads_the_topics_and_posts(tmp_path, kafka_broker,  # noqa: F811
                                                                  hooks) -> None:  # noqa: F811
    prefix = topic_prefix()
    alerts = f'[alerts]\nwebhooks = ["{hooks.url("/ok")}"]\nopportunity_min_net_bps = 5.0\n'
    cfg_path = tmp_path / "alerts.toml"
    cfg_path.write_text(kafka_toml(kafka_broker.bootstrap, prefix, extra=alerts))
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"),
               XDG_STATE_HOME=str(tmp_path / "state"), PYTHONPATH=str(ROOT))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbtui", "alerts", "--config", str(cfg_path), "--duration", "60",
        "--status-interval", "0.5", cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    pub = KafkaBus(kafka_config(kafka_broker.bootstrap, prefix).bus)
    await pub.start()
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + 45
        # The same window again and again until the process has joined the topics:
        # one alert per window, so however many copies it reads, one POST.
        while not hooks.got.get("/ok"):
            assert loop.time() < end and proc.returncode is None, "no alert from arbtui alerts"
            pub.publish(OPPORTUNITIES, "BTC-USD", opp(1, net=12.5))
            await asyncio.sleep(0.3)
        pub.publish(OPPORTUNITIES, "ETH-USD", opp(2, symbol="ETH-USD", net=1.0))  # below
        await asyncio.sleep(1.0)
    finally:
        await pub.stop()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    [rec] = hooks.got["/ok"]
    assert (rec["rule"], rec["subject"]) == ("opportunity", "BTC-USD kraken>gemini")
    assert rec["data"]["net_bps"] == 12.5 and rec["data"]["id"] == opp(1).id
    status = [json.loads(ln) for ln in out.decode().splitlines()
              if ln.startswith('{"type":"status"')]
    a = status[-1]["alerts"]
    assert a["sent"] == 1 and a["failing"] == 0 and a["rules"] == ["opportunity"]
    assert a["webhooks"][0]["target"] == f"http://127.0.0.1:{hooks.port}"


def test_arbtui_alerts_without_webhooks_exits_2(tmp_path) -> None:
    import subprocess

    p = tmp_path / "k.toml"
    p.write_text(kafka_toml("127.0.0.1:9", "x"))
    r = subprocess.run([sys.executable, "-m", "arbtui", "alerts", "--config", str(p)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
                       env=dict(os.environ, XDG_CONFIG_HOME=str(tmp_path)))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "[alerts] webhooks is empty" in r.stderr and r.stdout == ""
