"""Bitfinex, Crypto.com and HTX: record a session from their loopback simulators
with the live adapters, replay the file, and get the same quotes top for top
(in process and through the real ``arbtui record --demo`` / ``arbtui replay``
commands). HTX's gzip binary frames are recorded as their bytes (base64,
``enc: b64``) and gunzipped by the same adapter code in replay. Recordings of
books we do not speak are refused by name.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from replay_fixtures import (
    REPO,
    bad_counters,
    default_cfg,
    quote_top_changes,
    replay_cli,
    replay_inprocess,
)

from arbtui import symbols as symmod
from arbtui.backend.record import record_session
from arbtui.backend.recording import RecordingWriter, read_all, venue_of_exchange
from arbtui.backend.replay.plan import ReplayPlan
from arbtui.backend.sim.server import Simulator

VENUES = ["bitfinex", "cryptocom", "htx"]
SYMBOLS = ["BTC-USDT", "ETH-USDT"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "venues3.jsonl.zst"

    async def go():
        sim = Simulator(VENUES, SYMBOLS, seed=13, tick_ms=50.0, dislocation_rate=2.0)
        await sim.start()
        live: list = []
        try:
            # Faults while recording: the replay must resync exactly as live did.
            res_task = asyncio.ensure_future(record_session(
                default_cfg(), VENUES, SYMBOLS, 3.5, str(out), urls=sim.urls(),
                symbol_maps={v: symmod.sim_symbol_map(v, SYMBOLS) for v in VENUES},
                on_quote=live.append))
            await asyncio.sleep(1.5)
            sim.venues["bitfinex"].inject("checksum")
            sim.venues["cryptocom"].inject("gap")
            sim.venues["htx"].inject("gap")
            await asyncio.sleep(0.8)
            sim.venues["bitfinex"].inject("gap")
            res = await res_task
        finally:
            await asyncio.wait_for(sim.stop(), 10)
        return live, res

    live, res = asyncio.run(asyncio.wait_for(go(), 60))
    return out, live, res


async def test_replay_matches_live_top_for_top(recorded):
    path, live, res = recorded
    _, lines, damage = read_all(path)
    assert damage is None
    # Exchange ids come from the registry and map back to our venues.
    assert {venue_of_exchange(ln.conn.split(".")[0]) for ln in lines} == set(VENUES)
    sent = [ln.data for ln in lines if ln.t == "send"]
    assert any('"flags": 196608' in s for s in sent)  # SEQ_ALL + OB_CHECKSUM asked
    assert any("SNAPSHOT_AND_UPDATE" in s for s in sent)
    # HTX frames: binary on the wire, bytes again when read back (gzip magic).
    htx = [ln.data for ln in lines if ln.t == "recv" and ln.conn.startswith("HTX.")]
    assert htx and all(isinstance(d, bytes) and d[:2] == b"\x1f\x8b" for d in htx)
    expected = quote_top_changes(live)
    assert {e[0] for e in expected} == set(VENUES), "every venue went live while recording"
    run = await replay_inprocess([path])
    got = [(q["venue"], q["symbol"], q["bid"], q["bid_size"], q["ask"], q["ask_size"])
           for q in run.quotes]
    assert got == expected
    counters: dict[str, dict] = {}
    for f in run.feeds:
        counters.setdefault(f.venue, {}).update(f.status().counters)
    # The injected faults were seen and handled in replay exactly as live.
    assert counters["bitfinex"].get("checksum_mismatch", 0) >= 1
    assert counters["bitfinex"].get("gaps", 0) >= 1 and counters["cryptocom"].get("gaps", 0) >= 1
    assert counters["htx"].get("gaps", 0) >= 1
    assert counters["bitfinex"].get("checksums", 0) >= 10
    for f in run.feeds:
        assert not {k: v for k, v in bad_counters(f).items()
                    if k not in ("gaps", "resyncs", "checksum_mismatch")}, (f.venue, f.status().counters)
    eng = run.engine
    assert eng.lines_done == eng.lines_total
    assert sum(c.frames for c in eng.conns) == sum(res.frames.values())


def test_record_demo_then_replay_cli(tmp_path):
    out = tmp_path / "demo.jsonl.zst"
    r = subprocess.run(
        [sys.executable, "-m", "arbtui", "record", "--demo", "--venues", ",".join(VENUES),
         "--symbols", ",".join(SYMBOLS), "--duration", "2.5", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    header = read_all(out)[0]
    assert header["format"] == 2
    p = replay_cli([out], "--max", "--print-quotes")
    assert p.returncode == 0, p.stderr[-2000:]
    rows = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    seen = {(q["venue"], q["symbol"]) for q in rows if "bid" in q}
    assert seen == {(v, s) for v in VENUES for s in SYMBOLS}
    assert all(q["bid"] < q["ask"] for q in rows if "bid" in q)


def _write(path, exchange: str, lines: list[tuple[str, str]]) -> None:
    w = RecordingWriter(path, exchange)
    conn = f"{exchange}.ws.0"
    w.connect(conn, "wss://example.invalid/")
    for t, data in lines:
        if t == "send":
            w.send(conn, "wss://example.invalid/", data)
        else:
            w.recv(conn, data)
    w.close()


def test_bitfinex_raw_book_recording_is_refused_by_name(tmp_path):
    path = tmp_path / "raw.jsonl.zst"
    _write(path, "BITFINEX", [
        ("send", json.dumps({"event": "subscribe", "channel": "book", "symbol": "tBTCUSD",
                             "prec": "R0", "len": "25"})),
        ("recv", "[1,[[123,100.5,0.1]],1]")])
    plan = ReplayPlan([str(path)])
    (c,) = plan.conns
    assert c.skip and "R0" in c.skip and "not spoken" in c.skip, c.skip


def test_cryptofeed_exchange_id_maps_to_cryptocom():
    assert venue_of_exchange("CRYPTO.COM") == "cryptocom"
    assert venue_of_exchange("CRYPTO") == "cryptocom"  # the conn-id prefix of "CRYPTO.COM.ws.1"
    assert venue_of_exchange("CRYPTOCOM") == "cryptocom"
