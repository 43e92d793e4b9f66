"""Small two-venue recordings written by the tests of issue 12 (threshold rule,
liveness), replayed through the real adapters, detector and executor.

Gemini (l2_updates, connection heartbeats, no venue timestamps) sells and Bybit
(snapshot + deltas, pongs, venue timestamps) buys, both on BTC-USDT so no
conversion is involved. Times are seconds on the recording's own clock.
"""

from __future__ import annotations

import json
from pathlib import Path

from arbtui.backend.recording import RecordingWriter

T0 = 1_700_000_000.0  # recording time of the first line, unix seconds
GEMINI_URL = "wss://api.gemini.com/v2/marketdata"
BYBIT_URL = "wss://stream.bybit.com/v5/public/spot"


def _lv(levels: list[tuple[float, float]]) -> list[list[str]]:
    return [[repr(float(p)), repr(float(q))] for p, q in levels]


class TwoVenueRecording:
    """Gemini BTC-USDT and Bybit BTC-USDT in one file (one connection each)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.w = RecordingWriter(path, "GEMINI", {})
        self.u = 0
        self.w.connect("GEMINI.ws.1", GEMINI_URL, T0)
        self.w.send("GEMINI.ws.1", GEMINI_URL, json.dumps(
            {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": ["BTCUSDT"]}]}), T0)
        self.w.connect("BYBIT.ws.1", BYBIT_URL, T0)
        self.w.send("BYBIT.ws.1", BYBIT_URL, json.dumps(
            {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}), T0)

    # gemini: the first l2_updates is the full book; later ones change levels
    def gemini_book(self, t: float, bids: list[tuple[float, float]],
                    asks: list[tuple[float, float]]) -> None:
        ch = [["buy", p, q] for p, q in _lv(bids)] + [["sell", p, q] for p, q in _lv(asks)]
        self.w.recv("GEMINI.ws.1", json.dumps(
            {"type": "l2_updates", "symbol": "BTCUSDT", "changes": ch}), T0 + t)

    def gemini_heartbeat(self, t: float) -> None:
        self.w.recv("GEMINI.ws.1", json.dumps({"type": "heartbeat", "timestamp": int((T0 + t) * 1e3)}),
                    T0 + t)

    # bybit: a snapshot, then deltas numbered u = 2, 3, ...
    def bybit(self, t: float, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
              snapshot: bool = False) -> None:
        self.u = 1 if snapshot else self.u + 1
        self.w.recv("BYBIT.ws.1", json.dumps({
            "topic": "orderbook.50.BTCUSDT", "type": "snapshot" if snapshot else "delta",
            "ts": int((T0 + t) * 1e3),
            "data": {"s": "BTCUSDT", "b": _lv(bids), "a": _lv(asks), "u": self.u,
                     "seq": 1000 + self.u}}), T0 + t)

    def bybit_pong(self, t: float) -> None:
        self.w.recv("BYBIT.ws.1", json.dumps({"success": True, "ret_msg": "pong", "op": "ping"}),
                    T0 + t)

    def close(self) -> Path:
        self.w.close()
        return self.path


def trust_cfg(min_net_bps: float = 2.0, *, max_quote_age_ms: float = 2000.0,
              execution: bool = False, exec_min_net_bps: float = 5.0):
    """Defaults, with 10 bps taker fees on both venues and nothing else in the way."""
    from replay_fixtures import default_cfg

    cfg = default_cfg()
    for v in ("gemini", "bybit"):
        cfg.venues[v].taker_fee_bps = 10.0
        cfg.venues[v].symbols = ["BTC-USDT"]
    d = cfg.detector
    d.min_net_bps = min_net_bps
    d.max_quote_age_ms = max_quote_age_ms
    d.min_notional = 10.0
    d.max_notional = 1e9
    d.max_plausible_bps = 1000.0
    cfg.execution.enabled = execution
    cfg.execution.min_net_bps = exec_min_net_bps
    return cfg
