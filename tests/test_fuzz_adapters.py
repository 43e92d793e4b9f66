"""Fuzz every adapter's frame handling with mutated REAL frames.

Frames come from two real sources: each venue's loopback simulator (captured
off a live WebSocket session, so every registered adapter is covered) and the public
recordings in ../shared/recordings (Binance, Coinbase, OKX). Hypothesis picks
which frames to damage and how: truncation, flipped bytes, NaN/Infinity/huge/
negative numbers, wrong JSON types, emptied books.

What must hold after every frame: nothing escapes the adapter (no background
task dies), a frame that is not even JSON is counted as a frame error, no LIVE
book is crossed or holds an invalid level, and every published quote is sane.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import math
import random
import re
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbtui.backend.feeds import available, feed_class
from arbtui.backend.sim.server import Simulator
from arbtui.model import BookState, Quote
from arbtui.symbols import sim_symbol_map

SYMS = ["BTC-USD", "ETH-USD"]
PERP_SYMS = ["BTC-USDT-PERP", "ETH-USDT-PERP"]


def syms_for(venue: str) -> list[str]:
    """Spot venues quote SYMS, perp venues their perpetuals."""
    from arbtui import venues

    return PERP_SYMS if venues.get(venue).is_perp else SYMS
RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"
VENUES = available()  # every registered venue (arbtui.venues)

_NUM = re.compile(r'"(-?\d+\.\d+)"|(?<=[:\[,])(-?\d+\.\d+)(?=[,\]}])')
_POISON = ['"NaN"', '"Infinity"', '"-Infinity"', '"-1.5"', '"1e400"', '""', '"abc"', "null",
           "[]", "{}", "-3", "1e400", '"0"', "true"]


def _path_key(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return u.path + "?" + "&".join(sorted(u.query.split("&")))


async def _capture(venue: str, seconds: float = 1.5) -> tuple[list[str | bytes], dict[str, str]]:
    """Real frames of one live session against the venue's simulator."""
    syms = syms_for(venue)
    sim = Simulator([venue], syms, seed=11, tick_ms=20)
    await sim.start()
    url, rest = sim.urls()[venue]
    frames: list[str | bytes] = []
    https: dict[str, str] = {}
    feed = feed_class(venue)(syms, lambda q: None, url=url, rest_url=rest, depth=50,
                             symbol_map=sim_symbol_map(venue, syms))
    orig = feed.feed_frame

    def tap(data, ns):
        frames.append(data)
        orig(data, ns)

    async def http(u: str) -> str:
        def get() -> str:
            with urllib.request.urlopen(u, timeout=5) as r:
                return r.read().decode()

        body = await asyncio.to_thread(get)
        https[_path_key(u)] = body
        return body

    feed.feed_frame = tap
    feed.http_get_impl = http
    task = asyncio.create_task(feed.run())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
            feed.books and all(sb.state is BookState.LIVE for sb in feed.books.values())):
        await asyncio.sleep(0.05)
    await asyncio.sleep(seconds)
    await feed.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await sim.stop()
    return frames, https


@pytest.fixture(scope="module")
def captured() -> dict[str, tuple[list, dict]]:
    async def all_venues():
        # Concurrently: each capture is a fixed 1.5 s of wall time, 15 venues in turn
        # cost the suite ~25 s.
        return dict(zip(VENUES, await asyncio.gather(*(_capture(v) for v in VENUES)),
                        strict=True))

    return asyncio.run(all_venues())


def mutate(frame: str, kind: int, rng: random.Random) -> str:
    if kind == 0 and len(frame) > 2:  # truncated frame
        return frame[: rng.randrange(1, len(frame) - 1)]
    if kind == 1:  # flipped byte
        i = rng.randrange(len(frame))
        return frame[:i] + chr((ord(frame[i]) ^ (1 << rng.randrange(7))) or 1) + frame[i + 1:]
    nums = list(_NUM.finditer(frame))
    if kind == 2 and nums:  # poisoned number: NaN, Infinity, negative, huge, wrong type
        m = rng.choice(nums)
        return frame[: m.start()] + rng.choice(_POISON) + frame[m.end():]
    if kind == 3:  # emptied arrays (empty books / updates)
        return re.sub(r"\[\[[^\]]*\](?:,\[[^\]]*\])*\]", "[]", frame)
    if kind == 4:  # JSON of the wrong shape entirely
        return rng.choice(["[]", "{}", "null", '"x"', "123", '{"data": 5}', '{"events": [null]}'])
    return frame


class Checker:
    def __init__(self, venue: str, https: dict[str, str]) -> None:
        self.quotes: list[Quote] = []
        syms = syms_for(venue)
        self.feed = feed_class(venue)(syms, self.quotes.append, url="ws://127.0.0.1:9/",
                                      rest_url="http://127.0.0.1:9",
                                      depth=50, symbol_map=sim_symbol_map(venue, syms))
        self.feed.send = lambda text: None  # no socket: resync requests go nowhere

        async def http(u: str) -> str:
            body = https.get(_path_key(u))
            if body is None:
                raise OSError(f"no captured response for {u}")
            return body

        self.feed.http_get_impl = http

    def frame(self, data: str | bytes, is_json: bool) -> None:
        before = self.feed.counters.get("frame_errors", 0)
        self.feed.feed_frame(data, time.time_ns())
        if not is_json:
            assert self.feed.counters.get("frame_errors", 0) == before + 1, "non-JSON frame not counted"
        self.invariants()

    def invariants(self) -> None:
        f = self.feed
        assert f.counters.get("task_errors", 0) == 0, "a background task died"
        for sb in f.books.values():
            for side in (sb.book.bids, sb.book.asks):
                for p, (ps, qs) in side.items():
                    assert math.isfinite(p) and p > 0 and float(ps) == p
                    assert float(qs) >= 0 and math.isfinite(float(qs))
            if sb.state is BookState.LIVE:
                assert not sb.book.crossed(), f"{f.venue} {sb.symbol}: LIVE book crossed"
        for q in self.quotes:
            assert q.bid < q.ask and q.bid > 0 and q.bid_size > 0 and q.ask_size > 0
            assert all(math.isfinite(x) for x in (q.bid, q.ask, q.bid_size, q.ask_size))


def _is_json(s: str | bytes) -> bool:
    try:
        json.loads(s)
        return True
    except ValueError:
        return s in ("pong", b"pong")  # OKX's keepalive reply is plain text


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_sim_frames_never_escape(venue, captured, data):
    frames, https = captured[venue]
    assert frames, f"no frames captured from the {venue} simulator"
    n = len(frames)
    hits = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 4)), min_size=1, max_size=8))
    seed = data.draw(st.integers(0, 2 ** 16))
    plan = dict(hits)
    rng = random.Random(seed)

    async def run() -> None:
        c = Checker(venue, https)
        for i, fr in enumerate(frames):
            if i in plan:
                # HTX frames are gzip binary: damage the JSON inside, re-compress.
                gz = isinstance(fr, bytes) and fr[:2] == b"\x1f\x8b"
                text = (gzip.decompress(fr) if gz else fr).decode() if isinstance(fr, bytes) else fr
                bad = mutate(text, plan[i], rng)
                c.frame(gzip.compress(bad.encode()) if gz else bad, _is_json(bad))
            c.frame(fr, True)
            if i % 20 == 0:
                await asyncio.sleep(0)  # let resync tasks run, as they would live
        await asyncio.sleep(0.01)
        c.invariants()
        for t in list(c.feed._tasks):
            t.cancel()

    asyncio.run(run())


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="../shared/recordings is absent (real venue sessions)")
@pytest.mark.parametrize("name", ["BINANCE", "COINBASE", "OKX"])
def test_mutated_recordings_replay_without_escape(name, tmp_path):
    """Damage ~5% of the recorded frames and replay through the real replay path."""
    from arbtui import config
    from arbtui.backend.recording import RecordingWriter, read_all
    from arbtui.backend.replay import ReplayEngine

    src = RECORDINGS / f"{name}.jsonl.zst"
    if not src.exists():
        pytest.skip(f"{src} absent")
    header, lines, _ = read_all(src)
    rng = random.Random(5)
    out = tmp_path / f"{name}-mutated.jsonl.zst"
    damaged = 0
    with RecordingWriter(out, header.get("exchange", name), header.get("config")) as w:
        for ln in lines:
            if ln.t == "connect":
                w.connect(ln.conn, ln.addr, ln.ts)
            elif ln.t == "send":
                w.send(ln.conn, ln.addr, ln.data, ln.ts)
            elif ln.t == "http":
                w.http(ln.conn, ln.url, ln.data, ln.ts)
            elif ln.t == "recv":
                data = ln.data
                # the multi-MB Coinbase snapshot stays intact so the run stays short
                if len(data) < 200_000 and rng.random() < 0.05:
                    data = mutate(data, rng.randrange(5), rng)
                    damaged += 1
                w.recv(ln.conn, data, ln.ts)
    assert damaged > 0
    cfg = config.load(use_user=False)

    async def run() -> dict:
        eng = ReplayEngine(cfg, [str(out)], speed=0)
        await eng.start()
        try:
            await eng.wait_finished(timeout=120)
        finally:
            await eng.stop()
        return eng.venue_statuses()

    statuses = asyncio.run(run())
    assert statuses, "replay built no feed"
    for v, s in statuses.items():
        assert s.counters.get("task_errors", 0) == 0, (v, s.counters)
        assert s.counters.get("frame_errors", 0) + s.counters.get("resyncs", 0) > 0, (v, s.counters)
