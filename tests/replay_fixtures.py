"""Helpers shared by the record/replay/conformance tests (not a conftest: explicit imports)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest

from arbtui import config as configmod
from arbtui.backend.replay import QuotePrinter, ReplayEngine

RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"
REPO = Path(__file__).resolve().parents[1]


def recording(name: str) -> Path:
    """A file of ../shared/recordings, or skip the test saying why."""
    p = RECORDINGS / name
    if not RECORDINGS.is_dir():
        pytest.skip(f"real recordings folder {RECORDINGS} is absent (it is never copied into the repo)")
    if not p.is_file():
        pytest.skip(f"recording {p} is absent")
    return p


def default_cfg():
    """Defaults only: a developer's ~/.config/arbtui must not change test results, and
    test replays never write the operator's journal."""
    cfg = configmod.load(use_user=False)
    cfg.journal.enabled = False
    return cfg


class ReplayRun:
    def __init__(self) -> None:
        self.quotes: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.engine: ReplayEngine | None = None
        self.statuses: dict[str, Any] = {}
        self.feeds: list[Any] = []


async def replay_inprocess(files: list[str | Path], *, speed: float = 0.0,
                           timeout: float = 120.0, cfg=None, on_state=None) -> ReplayRun:
    """Replay through ReplayEngine; quotes as --print-quotes would print them."""
    cfg = cfg or default_cfg()
    eng = ReplayEngine(cfg, [str(f) for f in files], speed=speed)
    buf = io.StringIO()
    pr = QuotePrinter(buf)
    eng.quote_listeners.append(pr.on_quote)
    eng.state_listeners.append(pr.on_state)
    if on_state is not None:
        eng.state_listeners.append(on_state)
    run = ReplayRun()
    run.engine = eng
    await eng.start()
    try:
        assert await eng.wait_finished(timeout), "replay did not finish in time"
        assert eng.error is None, eng.error
        run.statuses = eng.venue_statuses()
        run.feeds = list(eng.conn_feeds)
        run.events = [msgspec.to_builtins(e) for _, e in eng.events]
    finally:
        await eng.stop()
    run.quotes = [json.loads(x) for x in buf.getvalue().splitlines()]
    return run


def replay_cli(files: list[str | Path], *extra: str, timeout: float = 180.0
               ) -> subprocess.CompletedProcess:
    """``arbtui replay FILES --max --print-quotes`` in a subprocess (the real CLI)."""
    with tempfile.TemporaryDirectory(prefix="arbtui-replay-test-") as home:
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(Path(home) / "config")  # defaults only
        env["XDG_STATE_HOME"] = str(Path(home) / "state")  # journal and logs stay in here
        cmd = [sys.executable, "-m", "arbtui", "replay", *[str(f) for f in files], *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(REPO), check=False)


def top_changes(quotes: list[dict[str, Any]]) -> list[tuple]:
    return [(q["venue"], q["symbol"], q["bid"], q["bid_size"], q["ask"], q["ask_size"])
            for q in quotes]


BAD_COUNTERS = ("gaps", "crossed", "resyncs", "frame_errors", "checksum_mismatch",
                "checksum_fail", "bbo_mismatch", "seq_regressions", "heartbeat_jumps",
                "task_errors", "snapshot_errors", "replay_http_missing")


def bad_counters(feed) -> dict[str, int]:
    c = feed.status().counters
    return {k: c[k] for k in BAD_COUNTERS if c.get(k)}


# ---------------------------------------------------------------------- execution replays

SIM_SYMBOLS = ["BTC-USD", "ETH-USD"]


def record_sim(out: Path, seconds: float = 5.0, *, venues: list[str] | None = None,
               dislocation_rate: float = 12.0, dislocation_bps: float = 30.0,
               seed: int = 7) -> Path:
    """Record the loopback simulator through the live adapters (many dislocations, and
    large ones: the calibrated default market is quiet, and the execution tests need
    sizes that walk the book into partial fills)."""
    import asyncio

    from arbtui import symbols as symmod
    from arbtui.backend.record import record_session
    from arbtui.backend.sim.server import Simulator

    venues = venues or ["coinbase", "kraken", "okx", "bybit", "gemini"]

    async def run() -> None:
        sim = Simulator(venues, SIM_SYMBOLS, seed=seed, tick_ms=50.0,
                        dislocation_rate=dislocation_rate, dislocation_bps=dislocation_bps)
        await sim.start()
        try:
            urls = {v: sim.urls()[v] for v in venues}
            maps = {v: symmod.sim_symbol_map(v, SIM_SYMBOLS) for v in venues if v != "binance"}
            await record_session(default_cfg(), venues, SIM_SYMBOLS, seconds, str(out),
                                 urls=urls, symbol_maps=maps)
        finally:
            await asyncio.wait_for(sim.stop(), 10)

    asyncio.run(asyncio.wait_for(run(), 60))
    return out


_EXEC_RECORDING: Path | None = None


def exec_recording(tmp_path_factory) -> Path:
    """The simulator session the execution replays use, recorded once per test session
    (``record_sim`` defaults: five seconds of a lively market) and shared by the modules
    that replay it: recording costs seconds, replaying it a fraction."""
    global _EXEC_RECORDING
    if _EXEC_RECORDING is None or not _EXEC_RECORDING.is_file():
        _EXEC_RECORDING = record_sim(tmp_path_factory.mktemp("exec") / "sim.jsonl.zst")
    return _EXEC_RECORDING


def execution_cfg():
    """Execution on, tuned so one replay of a simulator session shows every case:
    a slow venue (one-legged and rejected legs, unwinds), jitter, small wallets
    (sizes capped, balance exhausted) and sizes that walk the book (partials)."""
    from arbtui.config import WalletConfig

    cfg = default_cfg()
    cfg.detector.min_net_bps = 1.0
    cfg.detector.max_notional = 500_000.0
    e = cfg.execution
    e.enabled = True
    e.min_net_bps = 1.0
    e.latency_ms = {"coinbase": 5.0, "kraken": 150.0, "okx": 40.0}
    e.jitter_ms = 20.0
    e.one_leg_policy = "unwind"
    e.max_notional = 500_000.0
    e.wallets = {"kraken": WalletConfig(base=0.02, quote=1500.0),
                 "okx": WalletConfig(base=0.5, quote=400.0)}
    return cfg


def quote_top_changes(quotes) -> list[tuple]:
    """(venue, symbol, bid px, bid qty, ask px, ask qty) at each change of a book's top."""
    last: dict = {}
    out = []
    for q in quotes:
        top = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        if last.get((q.venue, q.symbol)) != top:
            last[(q.venue, q.symbol)] = top
            out.append((q.venue, q.symbol, *top))
    return out
