"""``arbtui record`` as a real process (against the built-in simulator), then ``arbtui replay``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from replay_fixtures import REPO, replay_cli

from arbtui.backend.recording import RecordingError, RecordingReader, read_all


def _env(tmp_path) -> dict:
    env = dict(os.environ)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")  # defaults only
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def _record(tmp_path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arbtui", "record", *args], capture_output=True,
                          text=True, timeout=timeout, env=_env(tmp_path), cwd=str(REPO),
                          check=False)


def test_record_one_venue_then_replay(tmp_path):
    out = tmp_path / "bn.jsonl.zst"
    r = _record(tmp_path, "--demo", "--venues", "binance", "--symbols", "BTC-USD",
                "--duration", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout == ""
    header, lines, damage = read_all(out)
    assert damage is None
    assert header["exchange"] == "BINANCE" and header["format"] == 2
    assert header["config"]["venues"]["binance"]["symbol_map"] == {"BTC-USD": "BTCUSD"}
    kinds = {ln.t for ln in lines}
    assert {"connect", "recv", "http"} <= kinds
    assert all(ln.conn.startswith("BINANCE.") for ln in lines)
    rp = replay_cli([out], "--max", "--print-quotes")
    assert rp.returncode == 0, rp.stderr[-2000:]
    quotes = [json.loads(x) for x in rp.stdout.splitlines()]
    assert quotes and {q["symbol"] for q in quotes} == {"BTC-USD"}
    ts = [ln.ts for ln in lines if ln.t in ("recv", "http")]
    assert all(min(ts) <= q["recv_ts"] <= max(ts) for q in quotes)


def test_record_several_venues_into_one_file(tmp_path):
    out = tmp_path / "multi.jsonl.zst"
    r = _record(tmp_path, "--demo", "--venues", "kraken,okx", "--duration", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    header, lines, _ = read_all(out)
    assert header["exchange"] == "MULTI" and header["exchanges"] == ["KRAKEN", "OKX"]
    assert {ln.venue for ln in lines} == {"kraken", "okx"}
    rp = replay_cli([out], "--max", "--print-quotes")
    assert rp.returncode == 0, rp.stderr[-2000:]
    assert {json.loads(x)["venue"] for x in rp.stdout.splitlines()} == {"kraken", "okx"}


def test_sigterm_stops_recording_with_a_whole_file(tmp_path):
    out = tmp_path / "t.jsonl.zst"
    p = subprocess.Popen([sys.executable, "-m", "arbtui", "record", "--demo", "--venues", "okx",
                          "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=_env(tmp_path), cwd=str(REPO))
    try:
        deadline = time.monotonic() + 30
        frames = 0
        while frames < 5:  # wait until frames are flushed to disk
            assert time.monotonic() < deadline, "no frames recorded"
            assert p.poll() is None, p.stderr.read().decode()[-2000:]
            time.sleep(0.2)
            try:
                frames = sum(1 for ln in RecordingReader(out) if ln.t == "recv")
            except RecordingError:
                frames = 0
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert rc == 0
    _, lines, damage = read_all(out)
    assert damage is None  # closed cleanly: the zstd frame is complete
    assert sum(1 for ln in lines if ln.t == "recv") >= frames


def test_record_rejects_unknown_venue_and_bad_symbol(tmp_path):
    r = _record(tmp_path, "--venues", "mtgox", "--out", str(tmp_path / "x.zst"))
    assert r.returncode == 2 and "mtgox" in r.stderr
    r = _record(tmp_path, "--venues", "binance", "--symbols", "btcusd", "--out",
                str(tmp_path / "x.zst"))
    assert r.returncode == 2 and "BASE-QUOTE" in r.stderr
    assert not (tmp_path / "x.zst").exists()
