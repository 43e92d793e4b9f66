"""Record from the loopback simulator with the live adapters, replay the file, compare.

The simulator speaks each venue's real protocol on 127.0.0.1; ``record_session``
runs the live adapters against it with the recorder tap on. The replay must
reproduce, top of book for top of book, what the live adapters produced.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from replay_fixtures import bad_counters, default_cfg, replay_cli, replay_inprocess

from arbtui import symbols as symmod
from arbtui.backend.feeds import available
from arbtui.backend.record import record_session
from arbtui.backend.recording import read_all
from arbtui.backend.sim.server import Simulator, venue_classes

SYMBOLS = ["BTC-USD", "ETH-USD"]
VENUES = [v for v in ("binance", "coinbase", "kraken", "bybit", "okx", "gemini")
          if v in available() and v in venue_classes()]
RECORD_S = 3.0


def _top_filter(quotes) -> list[tuple]:
    """Live quotes -> one entry per change of a book's top (what --print-quotes prints)."""
    last: dict = {}
    out = []
    for q in quotes:
        top = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        if last.get((q.venue, q.symbol)) == top:
            continue
        last[(q.venue, q.symbol)] = top
        out.append((q.venue, q.symbol, *top, q.recv_ts_ns / 1e9))
    return out


def _printed(rows) -> list[tuple]:
    return [(q["venue"], q["symbol"], q["bid"], q["bid_size"], q["ask"], q["ask_size"],
             q["recv_ts"]) for q in rows]


async def _record(out: Path, venues: list[str], seconds: float = RECORD_S, *,
                  sim: Simulator | None = None) -> tuple[list, object]:
    cfg = default_cfg()
    own = sim is None
    if own:
        sim = Simulator(venues, SYMBOLS, seed=11, tick_ms=50.0, dislocation_rate=2.0,
                        dislocation_bps=30.0)  # lively: the calibrated demo is quieter
        await sim.start()
    live: list = []
    try:
        urls = {v: sim.urls()[v] for v in venues}
        # Binance's simulator serves exchangeInfo: its map comes from the recorded
        # instrument list; the others use the simulator's spelling.
        maps = {v: symmod.sim_symbol_map(v, SYMBOLS) for v in venues if v != "binance"}
        res = await record_session(cfg, venues, SYMBOLS, seconds, str(out), urls=urls,
                                   symbol_maps=maps, on_quote=live.append)
    finally:
        if own:
            await asyncio.wait_for(sim.stop(), 10)
    return live, res


@pytest.fixture(scope="module")
def sim_recording(tmp_path_factory):
    """One 3 s session of every venue that has both a simulator and an adapter."""
    if not VENUES:
        pytest.skip("no venue has both a simulator and an adapter yet")
    out = tmp_path_factory.mktemp("rec") / "sim.jsonl.zst"
    live, res = asyncio.run(asyncio.wait_for(_record(out, VENUES), 60))
    return out, live, res


async def test_replayed_quotes_equal_the_live_ones(sim_recording):
    path, live, res = sim_recording
    header, lines, damage = read_all(path)
    assert damage is None
    assert header["format"] == 2 and header["exchange"] in ("MULTI", VENUES[0].upper())
    assert {ln.venue for ln in lines} == set(VENUES)
    # Binance's instrument list and REST snapshots were recorded as http lines.
    urls = [ln.url for ln in lines if ln.t == "http"]
    assert any(u.endswith("/api/v3/exchangeInfo") for u in urls)
    assert any("/api/v3/depth?" in u for u in urls)

    expected = _top_filter(live)
    assert {e[0] for e in expected} == set(VENUES), "every venue went live while recording"
    run = await replay_inprocess([path])
    got = _printed(run.quotes)
    # Book by book, the replay publishes exactly the live tops, in the same order.
    # Across books the live interleaving is compared only up to what scheduling
    # decided live: a Binance book completed by its REST snapshot is published when
    # the adapter's task resumed after the answer, which on a loaded machine can be
    # after frames of other books that arrived meanwhile; the replay delivers the
    # answer at its recorded arrival, before those frames.
    def per_book(rows):
        out: dict = {}
        for r in rows:
            out.setdefault(r[:2], []).append(r[:6])
        return out

    assert per_book(got) == per_book(expected)
    assert len(got) == len(expected)
    # Quotes from a frame carry its exact receive time; a book completed by its REST
    # snapshot carries the snapshot's recorded arrival, taken just before the live
    # adapter stamped it (by more on a loaded machine).
    exact = 0
    for g, e in zip(sorted(got), sorted(expected)):
        assert abs(g[6] - e[6]) < 0.25, (g, e)
        exact += abs(g[6] - e[6]) < 1e-6
    assert exact >= len(got) - 4
    moved = sum(g[:6] != e[:6] for g, e in zip(got, expected))
    assert moved <= 8, f"{moved} quotes published in another order than live"
    for f in run.feeds:
        assert bad_counters(f) == {}, (f.venue, f.status().counters)
    # Every recorded frame was fed to an adapter.
    eng = run.engine
    assert eng.lines_done == eng.lines_total
    assert sum(c.frames for c in eng.conns) == sum(res.frames.values())


async def test_replay_is_deterministic_and_speed_independent(sim_recording):
    path, _, _ = sim_recording
    cfg = default_cfg()
    cfg.detector.min_net_bps = -1000.0  # every venue pair is an "opportunity": many events
    a = await replay_inprocess([path], cfg=cfg)
    cfg = default_cfg()
    cfg.detector.min_net_bps = -1000.0
    b = await replay_inprocess([path], cfg=cfg)
    cfg = default_cfg()
    cfg.detector.min_net_bps = -1000.0
    paced = await replay_inprocess([path], speed=20.0, cfg=cfg)
    assert len(a.events) > 10
    assert {e["event"] for e in a.events} >= {"opened", "updated"}
    assert a.events == b.events == paced.events
    assert a.quotes == b.quotes == paced.quotes
    # Event times are replay times: inside the recording's span.
    ts = [ln.ts for ln in read_all(path)[1]]
    assert all(min(ts) <= e["ts_ns"] / 1e9 <= max(ts) + 0.2 for e in a.events)


async def test_several_files_merge_by_time(tmp_path):
    pair = [v for v in ("binance", "kraken", "okx") if v in VENUES][:2]
    if len(pair) < 2:
        pytest.skip("needs two simulated venues")
    # lively on purpose: the pair's fee hurdle is tens of bps and the recording 2 s long
    sim = Simulator(pair, SYMBOLS, seed=5, tick_ms=50.0, dislocation_rate=4.0,
                    dislocation_bps=80.0)
    await sim.start()
    try:
        fa, fb = tmp_path / f"{pair[0]}.jsonl.zst", tmp_path / f"{pair[1]}.jsonl.zst"
        (live_a, _), (live_b, _) = await asyncio.wait_for(asyncio.gather(
            _record(fa, [pair[0]], 2.0, sim=sim), _record(fb, [pair[1]], 2.0, sim=sim)), 30)
    finally:
        await asyncio.wait_for(sim.stop(), 10)
    assert read_all(fa)[0]["exchange"] == pair[0].upper()  # single-venue file, like cryptofeed's
    cfg = default_cfg()
    cfg.detector.min_net_bps = -1000.0
    both = await replay_inprocess([fb, fa], cfg=cfg)
    got = _printed(both.quotes)
    ts = [g[6] for g in got]
    assert ts == sorted(ts)  # one timeline across the files
    for v, live in ((pair[0], live_a), (pair[1], live_b)):
        mine = [g[:6] for g in got if g[0] == v]
        assert mine == [e[:6] for e in _top_filter(live)]
    # Cross-venue detection works across files.
    assert any({e["buy_venue"], e["sell_venue"]} == set(pair) for e in both.events)


def test_truncated_recording_replays_up_to_the_damage_and_reports_where(sim_recording, tmp_path):
    path, _, _ = sim_recording
    full = replay_cli([path], "--max", "--print-quotes")
    assert full.returncode == 0, full.stderr[-2000:]
    raw = path.read_bytes()
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(raw[: int(len(raw) * 0.6)])
    part = replay_cli([cut], "--max", "--print-quotes")
    assert part.returncode == 3, part.stderr[-2000:]
    assert f"{cut}: stopped at line" in part.stderr and "truncated" in part.stderr
    full_q = full.stdout.splitlines()
    part_q = part.stdout.splitlines()
    assert 0 < len(part_q) < len(full_q)
    assert part_q == full_q[: len(part_q)]
    assert all(json.loads(x)["venue"] for x in part_q)  # stdout stays pure JSON quotes


def test_headless_replay_reports_events_and_status_then_exits(sim_recording, tmp_path):
    path, _, _ = sim_recording
    cfgp = tmp_path / "c.toml"
    cfgp.write_text("[detector]\nmin_net_bps = -1000.0\n")
    r = replay_cli([path], "--max", "--no-ui", "--config", str(cfgp))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    status = [x for x in rows if x["type"] == "status"]
    opps = [x for x in rows if x["type"] == "opportunity"]
    assert status and status[-1]["mode"] == "REPLAY"
    assert status[-1]["replay"]["finished"] is True
    assert set(status[-1]["venues"]) == set(VENUES)
    assert all(v["state"] == "LIVE" for v in status[-1]["venues"].values())
    assert opps and {o["event"] for o in opps} >= {"opened"}


def test_missing_or_bad_file_is_a_one_line_error(tmp_path):
    r = replay_cli([tmp_path / "nope.jsonl.zst"], "--max", "--print-quotes")
    assert r.returncode == 2 and "cannot open" in r.stderr and r.stdout == ""
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\n")
    r = replay_cli([bad], "--max", "--print-quotes")
    assert r.returncode == 2 and "header" in r.stderr and r.stdout == ""


async def test_file_grouped_by_connection_replays_like_the_time_ordered_one(sim_recording,
                                                                            tmp_path):
    """cryptofeed's converter writes a file connection by connection (not in time order);
    replay must merge the connections by time and give the same result."""
    from arbtui.backend.recording import RecordingWriter

    path, _, _ = sim_recording
    header, lines, _ = read_all(path)
    by_conn: dict[str, list] = {}
    for ln in lines:
        by_conn.setdefault(ln.conn, []).append(ln)
    grouped = tmp_path / "grouped.jsonl.zst"
    with RecordingWriter(grouped, header["exchange"], header["config"]) as w:
        for conn in sorted(by_conn, reverse=True):  # not even in first-seen order
            for ln in by_conn[conn]:
                if ln.t == "recv":
                    w.recv(conn, ln.data, ln.ts)
                elif ln.t == "send":
                    w.send(conn, ln.addr, ln.data, ln.ts)
                elif ln.t == "connect":
                    w.connect(conn, ln.addr, ln.ts)
                else:
                    w.http(conn, ln.url, ln.data, ln.ts)
    a = await replay_inprocess([path])
    b = await replay_inprocess([grouped])
    assert a.engine.plan.ordered == [True] and b.engine.plan.ordered == [False]
    assert a.quotes == b.quotes and a.quotes
