"""End-to-end latency (local receive -> detection) and sustained throughput.

Variants, all fed the same seeded stream (``load.Market``) at the same offered
load, one message = one quote:

- ``floor-queue``   bare ``asyncio.Queue`` producer -> consumer, no detection
                    (the in-process floor under ``embedded``);
- ``embedded``      arbtui: Coinbase adapter (parse -> book -> Quote) ->
                    EmbeddedBus -> the engine's detector loop, one process;
- ``floor-kafka``   bare aiokafka pipe: batched ``send``, ``getmany``, no
                    detection (the floor under ``kafka``);
- ``kafka``         arbtui: adapter -> KafkaBus in a feed process -> broker ->
                    KafkaBus -> engine detector loop in a detect process;
- ``baseline``      the tutorial design (benchmarks/baseline) on the same broker.

Pacing: one task per venue hands each message to its variant at its scheduled
time (open loop); ``recv_ns`` is the moment the message is handed over (the
"local receive"). How late that was against the schedule is reported as
``lag`` — a variant whose ingest cannot keep up shows a growing lag. Latency
samples are taken only after the warm-up.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing as mp
import os
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from benchmarks import load
from benchmarks.stats import pct

# ---------------------------------------------------------------------- specs


@dataclass
class Spec:
    variant: str
    venues: int = 2
    symbols: int = 2
    rate: float | None = 1000.0  # offered quotes/s; None = saturation (as fast as possible)
    window_s: float = 3.0
    warmup_s: float = 0.5
    fetch_max_wait_ms: int | None = None  # Kafka variants: override the consumer setting
    #: "frames": venue frames through the Coinbase adapter (the full path);
    #: "quotes": ready Quotes straight onto the bus (bus + detector only).
    source: str = "frames"
    #: ``kafka`` only: feed processes, the venues dealt out among them (venue i to
    #: process i mod feeds), as a deployment runs a feed process near each venue.
    feeds: int = 1


@dataclass
class Result:
    variant: str
    venues: int
    symbols: int
    offered: float | None
    sent: int = 0
    ingest_rate: float = 0.0  # messages/s handed to the variant (producer side)
    processed_rate: float = 0.0  # quotes/s through detection (consumer side)
    evaluated_rate: float = float("nan")  # of those, evaluated (the rest superseded: coalesced)
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    p999_ms: float = float("nan")
    samples: int = 0
    opp_p50_ms: float = float("nan")  # quote receive -> opportunity event emitted
    opp_p99_ms: float = float("nan")
    opp_events: int = 0
    lag_p99_ms: float = float("nan")  # producer side: handed over late vs schedule
    lag_max_ms: float = float("nan")
    arrival_p99_ms: float = float("nan")  # scheduled arrival -> detection (where measurable)
    coalesced: int = 0
    lost: int = 0  # never reached the detector (sent - processed - coalesced)
    sent_after_warm: int = 0
    behind: bool = False
    notes: list[str] = field(default_factory=list)
    #: Why this variant was not run here (empty when it ran); nothing else is measured then.
    not_run: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------- stream cache

_cache: dict[tuple, Any] = {}


def stream(nv: int, ns: int, n: int) -> tuple[load.Market, list[load.Msg], dict]:
    """The seeded stream for (venues, symbols), generated once per process."""
    key = (nv, ns)
    have = _cache.get(key)
    if have is None or len(have[1]) < n:
        m = load.Market(nv, ns, seed=7)
        snaps = {vi: load.coinbase_snapshot_frames(m, vi, 1) for vi in range(nv)}
        msgs = m.stream(n)
        have = (m, msgs, {"snapshots": snaps})
        _cache[key] = have
    return have


def rendered(nv: int, ns: int, n: int, kind: str) -> list:
    m, msgs, extra = stream(nv, ns, n)
    got = extra.get(kind)
    if got is None or len(got) < n:
        if kind == "frames":
            # The per-connection sequence number is filled in at send time.
            got = []
            for mm in msgs:
                t = load.coinbase_frame(m, mm, 0)
                a, b = t.split('"sequence_num":0', 1)
                got.append((a + '"sequence_num":', b))
        elif kind == "quotes":
            got = [load.quote_of(m, mm) for mm in msgs]
        elif kind == "quote_bytes":
            from arbtui.model import to_json

            got = [to_json(load.quote_of(m, mm)) for mm in msgs]
        elif kind == "trades":
            got = []
            for i, mm in enumerate(msgs):
                t = load.baseline_trade(m, mm, i)
                a, b = t.split('"T":1764100800000', 1)
                got.append((a + '"T":', b))
        else:
            raise ValueError(kind)
        extra[kind] = got
    return got


def n_needed(spec: Spec, sat_cap: int) -> int:
    if spec.rate is None:
        return sat_cap
    return int(spec.rate * (spec.window_s + spec.warmup_s)) + 10


# ---------------------------------------------------------------------- pacing


class Pacer:
    """Open-loop generator: per-venue tasks hand messages over on schedule."""

    def __init__(self, spec: Spec, n: int, t0_ns: int) -> None:
        self.spec = spec
        self.n = n
        self.t0 = t0_ns
        self.period = 0 if spec.rate is None else int(1e9 / spec.rate)
        self.warm_idx = 0 if spec.rate is None else int(spec.warmup_s * spec.rate)
        # The warm-up is a time: a producer that falls behind still leaves it (and
        # its lag is then measured) even if it never reaches message warm_idx.
        self.warm_at = self.due(self.warm_idx)
        self.lags: list[int] = []
        self.sent = 0
        self.t_warm = 0
        self.t_end = 0
        self.sent_at_warm = 0
        self.on_warm: Callable[[int], None] | None = None
        self.deadline = t0_ns + int((spec.window_s + spec.warmup_s) * 1e9)

    def due(self, i: int) -> int:
        return self.t0 + i * self.period

    def _warm(self, now: int) -> None:
        """At the first message handed over after the warm-up; ``now`` is its receive time."""
        if not self.t_warm:
            self.t_warm = now
            self.sent_at_warm = self.sent
            if self.on_warm is not None:
                self.on_warm(now)

    async def run_sync(self, nv: int, handle: Callable[[int, int, int], None],
                       venues: list[int] | None = None) -> None:
        """``handle(vi, i, recv_ns)`` for each message i (global index), non-blocking;
        only the messages of ``venues`` (default all)."""
        vis = range(nv) if venues is None else venues
        await asyncio.gather(*(self._venue_sync(vi, nv, handle) for vi in vis))
        self.t_end = time.time_ns()

    async def _venue_sync(self, vi: int, nv: int, handle) -> None:
        i = vi
        n = self.n
        sat = self.period == 0
        lags = self.lags
        burst = 64 if sat else 1
        while i < n:
            now = time.time_ns()
            if sat and now > self.deadline:
                break
            due = self.due(i)
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            k = 0
            # Paced: yield after every message, so the detector (same loop) sees each
            # one as it lands. Saturation: everything due is read in runs of 64, like
            # frames waiting in a socket buffer.
            while i < n and k < burst:
                due = self.due(i)
                if due > now:
                    break
                if now >= self.warm_at:
                    lags.append(now - due)
                    self._warm(now)
                handle(vi, i, now)
                self.sent += 1
                i += nv
                k += 1
                now = time.time_ns()
            await asyncio.sleep(0)

    async def run_async(self, nv: int, handle) -> None:
        """``await handle(vi, i, recv_ns)``: one message at a time per venue (baseline)."""
        await asyncio.gather(*(self._venue_async(vi, nv, handle) for vi in range(nv)))
        self.t_end = time.time_ns()

    async def _venue_async(self, vi: int, nv: int, handle) -> None:
        i = vi
        sat = self.period == 0
        while i < self.n:
            now = time.time_ns()
            if now > self.deadline and (sat or now > self.deadline + 2_000_000_000):
                # A producer that falls far behind stops offering after the window + 2 s.
                break
            due = self.due(i)
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                continue
            if now >= self.warm_at:
                self.lags.append(now - due)
                self._warm(now)
            await handle(vi, i, now)
            self.sent += 1
            i += nv


def _lag_stats(res: Result, lags: list[int]) -> None:
    if lags:
        res.lag_p99_ms = pct(lags, 99)[0]
        res.lag_max_ms = max(lags) / 1e6


def _lat_stats(res: Result, lat) -> None:
    res.samples = len(lat)
    res.p50_ms, res.p99_ms, res.p999_ms = pct(lat, 50, 99, 99.9)


# ---------------------------------------------------------------------- arbtui pieces


def bench_config(venue_names: list[str], fetch_max_wait_ms: int | None = None):
    """Default config; bench venues get a 1 bps taker fee so windows clear the net threshold."""
    from arbtui import config as configmod

    cfg = configmod.load(None, use_user=False)
    cfg.venues = {v: configmod.VenueConfig(taker_fee_bps=1.0, depth=1000) for v in venue_names}
    if fetch_max_wait_ms is not None:
        cfg.bus.kafka.fetch_max_wait_ms = fetch_max_wait_ms
    return cfg


class FeedSide:
    """The feed role: one Coinbase adapter per synthetic venue, or ready quotes."""

    def __init__(self, m: load.Market, emit: Callable, mode: str, on_state=None) -> None:
        self.m = m
        self.mode = mode
        self.emit = emit
        self.seq = [1 + len(m.symbols)] * len(m.venues)
        self.feeds = []
        if mode == "frames":
            from arbtui.backend.feeds import feed_class

            cls = feed_class("coinbase")
            for vi, v in enumerate(m.venues):
                f = cls(list(m.symbols), emit, depth=1000, quote_depth=load.QUOTE_DEPTH,
                        symbol_map={s: s for s in m.symbols})
                # Each synthetic venue is a Coinbase-format connection relabelled, so
                # its quotes carry their own venue name.
                f.venue = v
                if on_state is not None:
                    f.on_book_state = on_state
                self.feeds.append(f)

    def sync(self, snaps: dict[int, list[str]]) -> None:
        if self.mode != "frames":
            return
        from arbtui.model import BookState

        now = time.time_ns()
        for vi, f in enumerate(self.feeds):
            sub = ('{{"channel":"subscriptions","client_id":"","timestamp":"2026-11-25T20:00:00Z",'
                   '"sequence_num":0,"events":[{{"subscriptions":{{"level2":{}}}}}]}}'.format(str(list(self.m.symbols)).replace("'", '"')))
            f.feed_frame(sub, now)
            for fr in snaps[vi]:
                f.feed_frame(fr, now)
            bad = [sb.symbol for sb in f.books.values() if sb.state is not BookState.LIVE]
            if bad:
                raise RuntimeError(f"coinbase adapter did not go LIVE from the snapshot frames: "
                                   f"{bad[:3]} ({f.books[bad[0]].reason}); counters {f.counters}")


# ---------------------------------------------------------------------- in-process variants


async def run_floor_queue(spec: Spec, sat_cap: int) -> Result:
    n = n_needed(spec, sat_cap)
    quotes = rendered(spec.venues, spec.symbols, n, "quotes")
    res = Result("floor-queue", spec.venues, spec.symbols, spec.rate)
    q: asyncio.Queue = asyncio.Queue()
    lat: list[int] = []
    done = 0
    warm = [1 << 62]
    t_last = 0

    async def consumer() -> None:
        nonlocal done, t_last
        while True:
            item = await q.get()
            if item is None:
                return
            if item.recv_ts_ns >= warm[0]:
                t_last = time.time_ns()
                lat.append(t_last - item.recv_ts_ns)
                done += 1

    t0 = time.time_ns() + 50_000_000
    pacer = Pacer(spec, n, t0)

    def on_warm(now: int) -> None:
        warm[0] = now

    pacer.on_warm = on_warm

    def handle(vi: int, i: int, now: int) -> None:
        qq = quotes[i]
        qq.recv_ts_ns = now
        q.put_nowait(qq)

    task = asyncio.get_running_loop().create_task(consumer())
    await pacer.run_sync(spec.venues, handle)
    q.put_nowait(None)
    await asyncio.wait_for(task, 30)
    t_done = time.time_ns()
    res.sent = pacer.sent
    res.sent_after_warm = pacer.sent - pacer.sent_at_warm
    dt = max(1, pacer.t_end - pacer.t_warm) / 1e9
    res.ingest_rate = (pacer.sent - pacer.sent_at_warm) / dt
    res.processed_rate = done / (max(1, (t_last or t_done) - pacer.t_warm) / 1e9)
    _lat_stats(res, lat)
    _lag_stats(res, pacer.lags)
    _judge(res, spec)
    return res


class _EngineProbe:
    """Hooks on an Engine used as the detect role.

    Wraps the detector's entry point (``on_quotes`` — the engine hands it each
    drained batch — or ``on_quote`` on engines without it) to take the same
    sample the engine takes (receive -> batch evaluated), but only for quotes
    received after the warm-up: a backlog from before it is neither timed nor
    counted. Opportunity events are timed in ``record_event``.
    """

    def __init__(self, engine, probe_symbol: str | None = None,
                 ready: asyncio.Event | None = None) -> None:
        from arbtui.model import OppEvent

        self.engine = engine
        self.lat: list[int] = []
        self.opp_lat: list[int] = []
        self.warm_ns = 1 << 62  # nothing counts until warm()
        self.evaluated = 0
        self.t_last = 0
        self.base_dropped = 0
        from arbtui.model import live_ns

        det = engine.detector
        name = "on_quotes" if hasattr(det, "on_quotes") else "on_quote"
        orig = getattr(det, name)
        lat = self.lat

        def entry(arg):
            out = orig(arg)
            done = time.time_ns()
            batch = arg if isinstance(arg, list) else [arg]
            w = self.warm_ns
            n = 0
            for q in batch:
                # From the frame that produced it: a liveness refresh (model.AGES_RULE)
                # re-sends unchanged levels with their old recv time and a new live time,
                # as the detect role's own latency figure reads it (roles/detect.py).
                t = live_ns(q)
                if t >= w:
                    lat.append(done - t)
                    n += 1
                elif probe_symbol is not None and q.symbol == probe_symbol and ready is not None:
                    ready.set()
            if n:
                self.evaluated += n
                self.t_last = done
            return out

        setattr(det, name, entry)
        orig_rec = engine.record_event
        opened = (OppEvent.OPENED, OppEvent.UPDATED)
        opp_lat = self.opp_lat

        def record_event(e) -> None:
            if getattr(e, "event", None) in opened and e.quote_recv_ts_ns >= self.warm_ns:
                opp_lat.append(time.time_ns() - e.quote_recv_ts_ns)
            orig_rec(e)

        engine.record_event = record_event

    def dropped(self) -> int:
        """Quotes that reached the detector's inbox and were never evaluated: superseded
        by a newer one of the same venue+symbol, or shed by a full inbox (the bus counts
        the two apart since issue 14; this probe wants both)."""
        subs = self.engine.bus.stats().get("subscriptions", {})
        return sum(int(st.get("dropped", 0)) + int(st.get("superseded", 0))
                   for name, st in subs.items() if "quote" in name)

    def counts(self) -> tuple[int, int]:
        """(evaluated since warm-up, superseded since warm-up)."""
        return self.evaluated, self.dropped() - self.base_dropped

    def warm(self, at_ns: int | None = None) -> None:
        self.base_dropped = self.dropped()
        self.warm_ns = at_ns if at_ns is not None else time.time_ns()

    def pending(self) -> int:
        subs = self.engine.bus.stats().get("subscriptions", {})
        return sum(int(st.get("depth", 0)) for n, st in subs.items() if "quote" in n)


async def run_embedded(spec: Spec, sat_cap: int) -> Result:
    from arbtui.backend.bus.embedded import EmbeddedBus
    from arbtui.backend.engine import Engine

    mode = spec.source
    n = n_needed(spec, sat_cap)
    m, _, extra = stream(spec.venues, spec.symbols, n)
    payload = rendered(spec.venues, spec.symbols, n, mode)
    res = Result("embedded", spec.venues, spec.symbols, spec.rate)
    cfg = bench_config(m.venues)
    bus = EmbeddedBus(cfg.bus.queue_size)
    eng = Engine(cfg, mode="live", bus=bus, roles=("detect",))
    probe = _EngineProbe(eng)
    await eng.start()
    # As `arbtui --no-ui` runs it (arbtui.headless.run_headless); ARBTUI_BENCH_ROLE_GC=0
    # measures CPython's default collector instead.
    gc_restore = None
    if os.environ.get("ARBTUI_BENCH_ROLE_GC", "1") == "1":
        from arbtui.backend.gcpolicy import tune_gc

        gc_restore = tune_gc()
        res.notes.append("headless GC policy (arbtui.backend.gcpolicy)")
    gc_seen = _GcPauses()
    try:
        side = FeedSide(m, eng.publish_quote, mode, on_state=eng.publish_state)
        side.sync(extra["snapshots"])
        await asyncio.sleep(0.05)
        t0 = time.time_ns() + 50_000_000
        pacer = Pacer(spec, n, t0)

        def on_warm(now: int) -> None:
            probe.warm(now)
            gc_seen.start()

        pacer.on_warm = on_warm
        nv = spec.venues
        if mode == "frames":
            feeds = side.feeds
            seqs = side.seq

            def handle(vi: int, i: int, now: int) -> None:
                a, b = payload[i]
                s = seqs[vi]
                seqs[vi] = s + 1
                feeds[vi].feed_frame(f"{a}{s}{b}", now)
        else:
            on_quote = eng.publish_quote

            def handle(vi: int, i: int, now: int) -> None:
                qq = payload[i]
                qq.recv_ts_ns = now
                on_quote(qq)

        await pacer.run_sync(nv, handle)
        deadline = time.monotonic() + 5
        while probe.pending() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        t_done = time.time_ns()
        res.notes.append(gc_seen.stop())
        ev, dr = probe.counts()
        sent = pacer.sent - pacer.sent_at_warm
        res.sent = pacer.sent
        res.sent_after_warm = sent
        dt = max(1, (probe.t_last or t_done) - pacer.t_warm) / 1e9
        res.ingest_rate = sent / max(1, pacer.t_end - pacer.t_warm) * 1e9
        res.processed_rate = (ev + dr) / dt
        res.evaluated_rate = ev / dt
        res.coalesced = dr
        if mode == "frames":
            errs = sum(f.counters.get("frame_errors", 0) + f.counters.get("resyncs", 0)
                       for f in side.feeds)
            if errs:
                res.notes.append(f"adapter frame_errors+resyncs={errs}")
        _lat_stats(res, probe.lat)
        if probe.opp_lat:
            res.opp_p50_ms, res.opp_p99_ms = pct(probe.opp_lat, 50, 99)
        res.opp_events = len(probe.opp_lat)
        _lag_stats(res, pacer.lags)
        _judge(res, spec)
        return res
    finally:
        gc_seen.stop()
        if gc_restore is not None:
            gc_restore()
        await eng.stop()


class _GcPauses:
    """The cyclic collector's runs inside the measured window (a young collection of the
    tens of thousands of objects a starting session keeps, the books' snapshot levels and
    the filling event ring, is 10-60 ms: its quotes wait that long), named in the notes so
    a p99 is read with them."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self._t = 0
        self._on = False

    def _cb(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t = time.perf_counter_ns()
        else:
            self.pauses.append((info["generation"], (time.perf_counter_ns() - self._t) / 1e6))

    def start(self) -> None:
        if not self._on:
            self._on = True
            gc.callbacks.append(self._cb)

    def stop(self) -> str:
        if self._on:
            self._on = False
            gc.callbacks.remove(self._cb)
        if not self.pauses:
            return "GC collections in the window: 0"
        return (f"GC collections in the window: {len(self.pauses)} (generations "
                f"{','.join(str(g) for g, _ in self.pauses)}; longest "
                f"{max(ms for _, ms in self.pauses):.1f} ms)")


def _judge(res: Result, spec: Spec) -> None:
    """Behind = ingest or detection sustained < 95 % of the offered load, or input lag > 100 ms."""
    if spec.rate is None:
        return
    if (res.processed_rate < 0.95 * spec.rate or res.ingest_rate < 0.95 * spec.rate
            or (res.lag_max_ms == res.lag_max_ms and res.lag_max_ms > 100)):
        res.behind = True


# ---------------------------------------------------------------------- Kafka variants
# The detect side runs in its own process (as `arbtui detect` / the tutorial's
# consumer script would); the feed side runs in this one. A probe message is
# sent until the consumer has seen one, so the group join (seconds on tansu)
# is over before the clock starts.

PROBE_SYMBOL = "PROBE-USD"


def _consumer_proc(conn, variant: str, bootstrap: str, params: dict) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        out = asyncio.run(_consumer_main(conn, variant, bootstrap, params))
    except Exception as e:  # noqa: BLE001 - report any failure to the parent
        import traceback

        out = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"}
    conn.send(("result", out))
    conn.close()


async def _recv(conn, timeout: float):
    loop = asyncio.get_running_loop()
    ok = await loop.run_in_executor(None, conn.poll, timeout)
    if not ok:
        raise TimeoutError("no message from the other side")
    return conn.recv()


async def _consumer_main(conn, variant: str, bootstrap: str, params: dict) -> dict:
    ready = asyncio.Event()
    lat: list[int] = []
    arrival: list[int] = []
    # Only messages received locally at or after warm_ns are timed and counted (a
    # backlog from the warm-up is not); warm_ns arrives with "start".
    state = {"count": 0, "warm_ns": 1 << 62, "t_last": 0}

    if variant == "baseline":
        from benchmarks.baseline import consumer as bc

        def on_done(tick: dict, found: int) -> None:
            now = time.time_ns()
            if tick["symbol"] == "PROBEUSD":
                ready.set()
                return
            recv = int(tick["local_ts"] * 1e9)
            if recv < state["warm_ns"]:
                return
            state["count"] += 1
            state["t_last"] = now
            lat.append(now - recv)
            arrival.append(now - tick["timestamp"] * 1_000_000)

        det = bc.SpreadDetector(on_done)
        cons = bc.make_consumer(bootstrap, params["topic"])
        await cons.start()
        task = asyncio.get_running_loop().create_task(bc.run(cons, det))
        counts = lambda: (state["count"], 0)
        pending = lambda: 0
        opp_lat: list[int] = []

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await cons.stop()

        extra = lambda: {"opportunities": det.opportunities}

    elif variant == "floor-kafka":
        from aiokafka import AIOKafkaConsumer, TopicPartition

        cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=params["fetch_max_wait_ms"],
                                fetch_min_bytes=1, max_partition_fetch_bytes=1 << 20)
        await cons.start()
        parts = cons.partitions_for_topic(params["topic"]) or set()
        while not parts:
            await cons._client.force_metadata_update()
            parts = cons.partitions_for_topic(params["topic"]) or set()
        tps = [TopicPartition(params["topic"], p) for p in parts]
        cons.assign(tps)
        await cons.seek_to_end(*tps)
        unpack = struct.Struct("<q").unpack_from

        async def loop_() -> None:
            while True:
                batch = await cons.getmany(timeout_ms=1000, max_records=10_000)
                now = time.time_ns()
                w = state["warm_ns"]
                for recs in batch.values():
                    for r in recs:
                        if r.key == b"PROBE":
                            ready.set()
                            continue
                        recv = unpack(r.value)[0]
                        if recv >= w:
                            state["count"] += 1
                            state["t_last"] = now
                            lat.append(now - recv)

        task = asyncio.get_running_loop().create_task(loop_())
        counts = lambda: (state["count"], 0)
        pending = lambda: 0
        opp_lat = []

        async def stop() -> None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await cons.stop()

        extra = dict

    else:  # arbtui kafka: the real engine detect role on a KafkaBus
        from arbtui.backend.bus import make_bus
        from arbtui.backend.engine import Engine

        cfg = bench_config(params["venues"], params["fetch_max_wait_ms"])
        cfg.bus.kind = "kafka"
        _kafka_cfg(cfg, bootstrap, params["suffix"])
        bus = make_bus(cfg)
        eng = Engine(cfg, mode="live", bus=bus, roles=("detect",))
        probe = _EngineProbe(eng, PROBE_SYMBOL, ready)
        if os.environ.get("ARBTUI_BENCH_TRACE"):
            _trace_detect(bus, probe)
        await eng.start()
        if params.get("tune_gc"):
            from arbtui.backend.gcpolicy import tune_gc

            tune_gc()  # as `arbtui detect` does (arbtui.headless.run_headless)
        lat = probe.lat
        counts = probe.counts
        pending = probe.pending
        opp_lat = probe.opp_lat

        async def stop() -> None:
            await eng.stop()

        extra = lambda: {"bus": eng.bus.stats()}

    conn.send(("listening", None))
    # Handshake: the parent sends probes until we say we saw one.
    while True:
        try:
            await asyncio.wait_for(ready.wait(), 0.05)
            break
        except TimeoutError:
            if conn.poll():
                msg = conn.recv()
                if msg[0] == "abort":
                    await stop()
                    return {"error": "aborted before ready"}
    conn.send(("ready", None))
    msg = await _recv(conn, 60)
    assert msg[0] == "start", msg
    warm_ns = msg[1]
    state["warm_ns"] = warm_ns
    if variant == "kafka":
        probe.warm(warm_ns)

        async def base_at_warm() -> None:
            # Supersessions are counted from the warm-up on, like the evaluations.
            await asyncio.sleep(max(0.0, (warm_ns - time.time_ns()) / 1e9))
            probe.base_dropped = probe.dropped()

        btask = asyncio.get_running_loop().create_task(base_at_warm())
    msg = await _recv(conn, 600)
    assert msg[0] == "done", msg
    sent_after_warm, drain_s = msg[1], msg[2]
    if variant == "kafka":
        await btask
    # Drain: until everything sent after the warm-up was processed, or no progress.
    deadline = time.monotonic() + drain_s
    last, last_t = -1, time.monotonic()
    while time.monotonic() < deadline:
        c = sum(counts())
        if c >= sent_after_warm and not pending():
            break
        if c != last:
            last, last_t = c, time.monotonic()
        elif time.monotonic() - last_t > 2.0:
            break
        await asyncio.sleep(0.005)
    t_done = time.time_ns()
    ev, dr = counts()
    t_last = (probe.t_last if variant == "kafka" else state["t_last"]) or t_done
    out = {
        "processed": ev + dr, "coalesced": dr,
        # From the warm-up to the last quote detected (not the idle drain after it).
        "elapsed_s": max(1_000_000, t_last - state["warm_ns"]) / 1e9,
        "lat": np.asarray(lat, dtype=np.int64).tobytes(),
        "arrival": np.asarray(arrival, dtype=np.int64).tobytes(),
        "opp": np.asarray(opp_lat, dtype=np.int64).tobytes(),
        "extra": extra(),
    }
    if variant == "kafka" and getattr(probe, "dump", None) is not None:
        probe.dump()
    await stop()
    return out


def _trace_detect(bus, probe) -> None:
    """ARBTUI_BENCH_TRACE=DIR: per fetched quote record (fetch return time, its newest
    publish time, quotes in it) and per quote evaluated (done, live time, publish
    time, refresh?), written to DIR/detect.npz when the run ends."""
    recs: list[tuple[int, int, int]] = []
    put = bus._put_quotes

    def traced(b, subs, r, ks, now):
        recs.append((now, b.pub_ts_ns, len(b.items)))
        return put(b, subs, r, ks, now)

    bus._put_quotes = traced
    evals: list[tuple[int, int, int, int, int, int]] = []
    det = probe.engine.detector
    inner = det.on_quotes

    def entry(batch):
        start = time.time_ns()
        out = inner(batch)
        done = time.time_ns()
        for q in batch:
            evals.append((done, max(q.recv_ts_ns, q.live_ts_ns), q.pub_ts_ns,
                          int(q.live_ts_ns > q.recv_ts_ns), start, zlib.crc32(q.venue.encode())))
        return out

    det.on_quotes = entry

    def dump() -> None:
        d = os.environ["ARBTUI_BENCH_TRACE"]
        np.savez(os.path.join(d, "detect.npz"), recs=np.asarray(recs, dtype=np.int64),
                 evals=np.asarray(evals, dtype=np.int64))

    probe.dump = dump


def _trace_feed(bus) -> Callable[[], None]:
    """ARBTUI_BENCH_TRACE=DIR: per quote record sent (send called, send returned,
    acknowledged, newest publish time, quotes in it) -> DIR/feed.npz."""
    from arbtui.backend.bus.kafka.wire import decode

    rows: list[list[int]] = []
    prod = bus._producer
    send = prod.send

    async def traced(topic, value, **kw):
        t0 = time.time_ns()
        fut = await send(topic, value, **kw)
        t1 = time.time_ns()
        msg, _ = decode(value)
        row = [t0, t1, 0, getattr(msg, "pub_ts_ns", 0), len(getattr(msg, "items", ()))]
        rows.append(row)
        fut.add_done_callback(lambda f, row=row: row.__setitem__(2, time.time_ns()))
        return fut

    prod.send = traced

    def dump() -> None:
        d = os.environ["ARBTUI_BENCH_TRACE"]
        np.savez(os.path.join(d, "feed.npz"), rows=np.asarray(rows, dtype=np.int64))

    return dump


def _kafka_cfg(cfg, bootstrap: str, suffix: str) -> None:
    k = cfg.bus.kafka
    k.bootstrap_servers = bootstrap
    # Every topic_* key (funding, control, and any added later): one left with its
    # configured name would be shared with a live deployment or another run.
    for name in [f for f in k.__struct_fields__ if f.startswith("topic_")]:
        setattr(k, name, getattr(k, name) + suffix)
    k.group_id = k.group_id + suffix + f".{os.getpid()}"


def baseline_unavailable() -> str | None:
    """None if the baseline can run here, else why not.

    The tutorial's producer compresses with snappy, and aiokafka refuses to build
    a snappy producer without the ``cramjam`` package (RuntimeError at
    construction). Running the baseline uncompressed would no longer be the
    tutorial, so without the codec the baseline is reported as not run.
    """
    from aiokafka import codec

    if codec.has_snappy():
        return None
    return ("the baseline producer compresses with snappy (the tutorial's setting) and "
            "aiokafka needs the cramjam package for it; install it (it is in the dev extra: "
            "pip install -e '.[dev]')")



def _feed_handler(side: FeedSide, payload: list, mode: str, publish_quote: Callable):
    """The pacer's ``handle`` for one feed process: a frame into its venue's adapter,
    or a ready quote onto the bus."""
    if mode == "frames":
        feeds, seqs = side.feeds, side.seq

        def handle_sync(vi: int, i: int, now: int) -> None:
            a, c = payload[i]
            s = seqs[vi]
            seqs[vi] = s + 1
            feeds[vi].feed_frame(f"{a}{s}{c}", now)
    else:
        def handle_sync(vi: int, i: int, now: int) -> None:
            qq = payload[i]
            qq.recv_ts_ns = now
            publish_quote(qq)
    return handle_sync


def _feed_proc(conn, bootstrap: str, params: dict) -> None:
    """A second (third...) feed process of a ``feeds > 1`` kafka run."""
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        out = asyncio.run(_feed_main(conn, bootstrap, params))
    except Exception as e:  # noqa: BLE001 - report any failure to the parent
        import traceback

        out = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc()[-1500:]}"}
    conn.send(("result", out))
    conn.close()


async def _feed_main(conn, bootstrap: str, params: dict) -> dict:
    """As the parent's feed side: its own KafkaBus and adapters for its venues, paced
    on the same schedule (same t0) as every other feed process."""
    from arbtui.backend.bus import make_bus
    from arbtui.backend.engine import Engine

    spec = Spec(**params["spec"])
    nv, ns, n = spec.venues, spec.symbols, params["n"]
    m, _, extra = stream(nv, ns, n)
    payload = rendered(nv, ns, n, spec.source)
    gc.collect()
    gc.freeze()
    cfg = bench_config(m.venues, params["fetch_max_wait_ms"])
    cfg.bus.kind = "kafka"
    _kafka_cfg(cfg, bootstrap, params["suffix"])
    bus = make_bus(cfg)
    feng = Engine(cfg, mode="live", bus=bus, roles=("feed",))
    await bus.start()
    try:
        side = FeedSide(m, feng.publish_quote, spec.source, on_state=feng.publish_state)
        side.sync(extra["snapshots"])
        if params.get("tune_gc"):
            from arbtui.backend.gcpolicy import tune_gc

            tune_gc()
        handle = _feed_handler(side, payload, spec.source, feng.publish_quote)
        conn.send(("ready", None))
        msg = await _recv(conn, 120)
        if msg[0] != "start":
            return {"error": f"expected start, got {msg[0]}"}
        pacer = Pacer(spec, n, msg[1])
        await pacer.run_sync(nv, handle, venues=params["venues"])
        st = bus.stats()
    finally:
        await bus.stop()
    return {"after": pacer.sent - pacer.sent_at_warm, "sent": pacer.sent,
            "t_warm": pacer.t_warm, "t_end": pacer.t_end,
            "lags": np.asarray(pacer.lags, dtype=np.int64).tobytes(),
            "published": st["published"].get("quotes", 0),
            "records": st["records"].get("quotes", 0)}


async def run_kafka(spec: Spec, sat_cap: int) -> Result:
    from benchmarks import broker as brokermod

    variant = spec.variant
    nv, ns = spec.venues, spec.symbols
    n = n_needed(spec, sat_cap)
    m, _, extra = stream(nv, ns, n)
    res = Result(variant, nv, ns, spec.rate)
    from arbtui import config as configmod

    default_fmw = configmod.load(None, use_user=False).bus.kafka.fetch_max_wait_ms
    fmw = spec.fetch_max_wait_ms if spec.fetch_max_wait_ms is not None else default_fmw
    if variant == "baseline":
        payload = rendered(nv, ns, n, "trades")
    elif variant == "floor-kafka":
        payload = rendered(nv, ns, n, "quote_bytes")
    else:
        mode = spec.source
        payload = rendered(nv, ns, n, mode)
    ctx = mp.get_context("spawn")
    async with brokermod.fresh_broker() as b:
        res.notes.append(f"broker: {b.kind}")
        parent, child = ctx.Pipe()
        params = {"venues": m.venues, "fetch_max_wait_ms": fmw, "suffix": b.suffix}
        producer_stop: Callable | None = None
        feed_procs: list = []  # (process, pipe) of the feed processes beyond this one
        trace_dump: Callable | None = None
        gc_restore: Callable | None = None
        if variant == "baseline":
            from benchmarks.baseline import producer as bp

            topic = b.topic(bp.TOPIC)
            # The tutorial let the broker auto-create its topic: one partition.
            await brokermod.create_topics(b, {bp.TOPIC: 1})
            params["topic"] = topic
            prod = bp.make_producer(b.bootstrap)
            await prod.start()
            producer_stop = prod.stop
            names = m.venues

            async def handle(vi: int, i: int, now: int) -> None:
                a, c = payload[i]
                due = pacer.due(i)
                await bp.handle_message(prod, names[vi], f"{a}{due // 1_000_000}{c}", topic,
                                        local_ts=now / 1e9)

            async def probe() -> None:
                await bp.handle_message(prod, "probe", '{"s":"PROBEUSD","p":"1","q":"1","T":0}',
                                        topic)
            res.notes.append("baseline consumer fetch_max_wait_ms=10 (its own setting)")
        elif variant == "floor-kafka":
            from aiokafka import AIOKafkaProducer

            from arbtui.config import KafkaConfig

            kc = KafkaConfig()
            parts = kc.partitions
            await brokermod.create_topics(b, {"bench.pipe": parts})
            topic = b.topic("bench.pipe")
            params["topic"] = topic
            prod = AIOKafkaProducer(bootstrap_servers=b.bootstrap, acks=kc.acks,
                                    linger_ms=kc.linger_ms, max_batch_size=kc.max_batch_size)
            await prod.start()
            producer_stop = prod.stop
            pack = struct.Struct("<q").pack
            keys = [s.encode() for s in m.symbols]
            msgs = stream(nv, ns, n)[1]
            send = prod.send

            async def handle(vi: int, i: int, now: int) -> None:
                # Batched: await only the hand-over to the batch, never the broker ack.
                await send(topic, pack(now) + payload[i], key=keys[msgs[i].symbol])

            async def probe() -> None:
                await prod.send_and_wait(topic, b"\0" * 8, key=b"PROBE")
            res.notes.append(f"acks={kc.acks} linger_ms={kc.linger_ms} "
                             f"max_batch_size={kc.max_batch_size} partitions={parts} "
                             f"fetch_max_wait_ms={fmw}")
        else:
            from arbtui.backend.bus import QUOTES, make_bus
            from arbtui.backend.engine import Engine

            cfg = bench_config(m.venues, fmw)
            cfg.bus.kind = "kafka"
            _kafka_cfg(cfg, b.bootstrap, b.suffix)
            k = cfg.bus.kafka
            await brokermod.create_topics(b, {t: k.partitions for t in (
                "arbtui.quotes", "arbtui.opportunities", "arbtui.fills", "arbtui.status",
                "arbtui.wallets")})
            bus = make_bus(cfg)
            # The feed role's publish path (Engine.publish_quote) without starting the
            # engine: its feeds would dial the real venues; ours are driven here.
            feng = Engine(cfg, mode="live", bus=bus, roles=("feed",))
            await bus.start()
            producer_stop = bus.stop
            trace_dump = _trace_feed(bus) if os.environ.get("ARBTUI_BENCH_TRACE") else None
            side = FeedSide(m, feng.publish_quote, mode, on_state=feng.publish_state)
            side.sync(extra["snapshots"])
            role_gc = os.environ.get("ARBTUI_BENCH_ROLE_GC", "1") == "1"
            for fk in range(1, spec.feeds):
                # The other feed processes: their venues, their own KafkaBus (producer).
                pc, cc = ctx.Pipe()
                fp = ctx.Process(target=_feed_proc, daemon=True, args=(cc, b.bootstrap, {
                    "spec": vars(spec), "n": n, "fetch_max_wait_ms": fmw, "suffix": b.suffix,
                    "tune_gc": role_gc, "venues": list(range(fk, nv, spec.feeds))}))
                fp.start()
                cc.close()
                feed_procs.append((fp, pc))
            for fp, pc in feed_procs:
                msg = await _recv(pc, 120)
                if msg[0] != "ready":
                    raise RuntimeError(f"feed process: {msg[1].get('error') if msg[0] == 'result' else msg}")
            if spec.feeds > 1:
                res.notes.append(f"{spec.feeds} feed processes, venues dealt out among them "
                                 "(each its own adapters and KafkaBus producer)")
            if role_gc:
                # As `arbtui feed` / `arbtui detect` run (arbtui.headless.run_headless).
                from arbtui.backend.gcpolicy import tune_gc

                gc_restore = tune_gc()
                params["tune_gc"] = True
                res.notes.append("role processes' GC policy (arbtui.backend.gcpolicy)")
            probe_q = load.quote_of(m, stream(nv, ns, n)[1][0])
            probe_q.symbol = PROBE_SYMBOL
            handle_sync = _feed_handler(side, payload, mode, feng.publish_quote)

            async def probe() -> None:
                probe_q.recv_ts_ns = time.time_ns()
                bus.publish(QUOTES, PROBE_SYMBOL, probe_q)
            res.notes.append(f"KafkaBus settings: acks={k.acks} linger_ms={k.linger_ms} "
                             f"compression={k.compression} max_batch_size={k.max_batch_size} "
                             f"partitions={k.partitions} fetch_max_wait_ms={k.fetch_max_wait_ms}")

        proc = ctx.Process(target=_consumer_proc, args=(child, variant, b.bootstrap, params),
                           daemon=True)
        proc.start()
        child.close()
        try:
            msg = await _recv(parent, 60)
            if msg[0] == "result":
                raise RuntimeError(msg[1].get("error"))
            t_hs = time.monotonic()
            while not parent.poll():
                if time.monotonic() - t_hs > 45:
                    raise TimeoutError("consumer never saw the probe (group join?)")
                await probe()
                await asyncio.sleep(0.1)
            msg = parent.recv()
            if msg[0] != "ready":
                raise RuntimeError(str(msg[1].get("error") if msg[0] == "result" else msg))
            res.notes.append(f"ready after {time.monotonic() - t_hs:.1f}s (group join/assignment)")
            t0 = time.time_ns() + 100_000_000
            pacer = Pacer(spec, n, t0)
            warm_ns = pacer.warm_at
            parent.send(("start", warm_ns))
            for _, pc in feed_procs:
                pc.send(("start", t0))
            if variant in ("baseline", "floor-kafka"):
                await pacer.run_async(nv, handle)
            elif spec.feeds > 1:
                await pacer.run_sync(nv, handle_sync, venues=list(range(0, nv, spec.feeds)))
            else:
                await pacer.run_sync(nv, handle_sync)
            after = pacer.sent - pacer.sent_at_warm
            # Ingest per feed process (its quotes after the warm-up over its own span).
            ingest = after / (max(1, pacer.t_end - (pacer.t_warm or t0)) / 1e9)
            lags = list(pacer.lags)
            sent_total = pacer.sent
            for fp, pc in feed_procs:
                msg = await _recv(pc, 120)
                fo = msg[1]
                if "error" in fo:
                    raise RuntimeError(f"feed process: {fo['error']}")
                after += fo["after"]
                sent_total += fo["sent"]
                ingest += fo["after"] / (max(1, fo["t_end"] - (fo["t_warm"] or t0)) / 1e9)
                lags += np.frombuffer(fo["lags"], dtype=np.int64).tolist()
                res.notes.append(f"feed process {fp.pid}: {fo['published']} quotes in "
                                 f"{fo['records']} records")
            parent.send(("done", after, 10.0 if variant == "baseline" else 5.0))
            if variant == "kafka":
                bst = bus.stats()
                if bst.get("records", {}).get(QUOTES):
                    res.notes.append(f"KafkaBus sent {bst['published'].get(QUOTES, 0)} quotes in "
                                     f"{bst['records'][QUOTES]} records")
                dropped_at_producer = sum(bus.stats().get("dropped", {}).values())
                superseded_at_producer = sum(bus.stats().get("superseded", {}).values())
                if dropped_at_producer or superseded_at_producer:
                    res.notes.append(f"KafkaBus at the producer (max_in_flight="
                                     f"{k.max_in_flight}): {superseded_at_producer} quotes "
                                     f"superseded by a newer one, {dropped_at_producer} oldest "
                                     f"dropped")
            if producer_stop is not None:
                await producer_stop()
                producer_stop = None
            if variant == "kafka" and trace_dump is not None:
                trace_dump()
            msg = await _recv(parent, 120)
            if msg[0] != "result":
                raise RuntimeError(f"unexpected {msg[0]}")
            out = msg[1]
            if "error" in out:
                raise RuntimeError(out["error"])
        finally:
            if producer_stop is not None:
                await producer_stop()
            if gc_restore is not None:
                gc_restore()
            for fp, pc in feed_procs:
                fp.join(10)
                if fp.is_alive():
                    fp.kill()
                    fp.join(5)
                pc.close()
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            parent.close()
    res.sent = sent_total
    res.sent_after_warm = after
    res.ingest_rate = ingest
    res.processed_rate = out["processed"] / out["elapsed_s"]
    res.coalesced = max(0, int(out.get("coalesced", 0)))
    res.evaluated_rate = max(0, out["processed"] - res.coalesced) / out["elapsed_s"]
    res.lost = max(0, after - out["processed"])
    _lat_stats(res, np.frombuffer(out["lat"], dtype=np.int64))
    arr = np.frombuffer(out["arrival"], dtype=np.int64)
    if len(arr):
        res.arrival_p99_ms = pct(arr, 99)[0]
    opp = np.frombuffer(out["opp"], dtype=np.int64)
    if len(opp):
        res.opp_p50_ms, res.opp_p99_ms = pct(opp, 50, 99)
    res.opp_events = len(opp)
    _lag_stats(res, lags)
    _judge(res, spec)
    if res.lost and spec.rate:
        res.behind = True
    ex = out.get("extra") or {}
    if "opportunities" in ex:
        res.notes.append(f"baseline reported {ex['opportunities']} spreads >= 5 bps")
    return res


RUNNERS = {
    "floor-queue": run_floor_queue,
    "embedded": run_embedded,
    "floor-kafka": run_kafka,
    "kafka": run_kafka,
    "baseline": run_kafka,
}


async def run(spec: Spec, sat_cap: int = 60_000) -> Result:
    # The pre-generated stream is the harness's, not arbtui's: render it first,
    # then freeze it out of the cyclic GC, so a full collection does not scan a
    # million harness objects in the middle of a measured window.
    nv, ns, n = spec.venues, spec.symbols, n_needed(spec, sat_cap)
    if spec.variant == "baseline":
        why = baseline_unavailable()
        if why:
            return Result(spec.variant, nv, ns, spec.rate, not_run=why,
                          notes=[f"not run: {why}"])
    kinds = {"floor-queue": ["quotes"], "floor-kafka": ["quote_bytes"], "baseline": ["trades"]}
    for kind in kinds.get(spec.variant, ["frames" if spec.source == "frames" else "quotes"]):
        rendered(nv, ns, n, kind)
    gc.collect()
    gc.freeze()
    try:
        task = asyncio.get_running_loop().create_task(RUNNERS[spec.variant](spec, sat_cap))
        limit = spec.window_s + spec.warmup_s + 75.0
        done, _ = await asyncio.wait({task}, timeout=limit)
        if not done:
            # A hung run must not hang the suite: say where it hung, then cancel it
            # (its finally blocks stop the clients and the broker).
            import sys

            print(f"benchmarks: {spec.variant} run hung for {limit:.0f} s; tasks:",
                  file=sys.stderr)
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.print_stack(limit=6, file=sys.stderr)
            task.cancel()
            await asyncio.wait({task}, timeout=30)
            raise TimeoutError(f"run hung for {limit:.0f} s (task stacks on stderr)")
        return task.result()
    finally:
        gc.unfreeze()
