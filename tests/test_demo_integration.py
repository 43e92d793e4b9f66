"""The demo engine end to end over real loopback WebSockets, and the headless CLI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from arbtui import config
from arbtui.backend.engine import Engine
from arbtui.commands.demo import simulator
from arbtui.model import BookState, OppEvent, Opportunity

ROOT = Path(__file__).resolve().parents[1]


async def test_demo_engine_finds_opportunities_within_10s(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = config.load(use_user=False)
    # The calibrated demo opens a few windows a minute; this test wants one in seconds.
    cfg.sim.dislocation_rate = 3.0
    cfg.sim.dislocation_bps = 20.0
    engine = Engine(cfg, mode="demo", sim=simulator(cfg))
    await engine.start()
    try:
        deadline = time.monotonic() + 10
        opened: list[Opportunity] = []
        while time.monotonic() < deadline and not opened:
            await asyncio.sleep(0.2)
            opened = [e for _, e in engine.events
                      if isinstance(e, Opportunity) and e.event is OppEvent.OPENED]
        st = engine.snapshot()
        live = [v for v, s in st.venues.items() if s.state is BookState.LIVE]
        assert len(live) >= 2, {v: (s.state, s.reason) for v, s in st.venues.items()}
        assert {v for v, _ in st.quotes} >= set(live)
        assert opened, "no opportunity within 10 s"
        o = opened[0]
        # buy leg is the cheaper ask, sell leg the richer bid, and net is after both fees
        assert o.buy_venue != o.sell_venue and o.sell_price > o.buy_price
        assert o.net_bps >= cfg.detector.min_net_bps and o.net_bps < o.gross_bps
    finally:
        await engine.stop()


def test_headless_cli_json_lines_and_sigterm(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path))
    lively = tmp_path / "lively.toml"  # the calibrated demo is quieter than 6 s allow
    lively.write_text("[sim]\ndislocation_rate = 3.0\ndislocation_bps = 20.0\n")
    p = subprocess.Popen([sys.executable, "-m", "arbtui", "--demo", "--no-ui", "--duration", "10",
                          "--config", str(lively)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    time.sleep(6)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    lines = [ln for ln in out.splitlines() if ln.strip()]
    recs = [json.loads(ln) for ln in lines]  # every stdout line is valid JSON
    assert all(isinstance(r, dict) and "type" in r for r in recs)
    assert any(r["type"] == "status" for r in recs)
    assert any(r["type"] == "opportunity" for r in recs), err[-2000:]
    status = [r for r in recs if r["type"] == "status"][-1]
    assert set(status["venues"]) >= {"binance", "coinbase"}


@pytest.mark.slow
def test_headless_duration_exits_0(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path), XDG_STATE_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "arbtui", "--demo", "--no-ui", "--duration", "4"],
                       check=False, capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    for ln in r.stdout.splitlines():
        json.loads(ln)
