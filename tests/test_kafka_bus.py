"""KafkaBus against a real Kafka-protocol broker (tansu, or ARBTUI_TEST_KAFKA)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka_broker import free_port, kafka_broker, kafka_config, topic_prefix  # noqa: F401
from polling import until

from arbtui import model
from arbtui.backend.bus import FILLS, OPPORTUNITIES, QUOTES, STATUS
from arbtui.backend.bus.base import BusError
from arbtui.backend.bus.kafka import KafkaBus, encode

pytestmark = pytest.mark.kafka


def quote(venue: str, symbol: str, bid: float, ask: float, **kw) -> model.Quote:
    return model.Quote(venue=venue, symbol=symbol, bid=bid, bid_size=1.0, ask=ask, ask_size=1.0,
                       bids=[(bid, 1.0)], asks=[(ask, 1.0)], bid_px=str(bid), bid_qty="1",
                       ask_px=str(ask), ask_qty="1", recv_ts_ns=kw.pop("recv", time.time_ns()),
                       **kw)


def opp(symbol: str = "BTC-USD") -> model.Opportunity:
    return model.Opportunity(id=f"{symbol}:a>b:1", event=model.OppEvent.OPENED, symbol=symbol,
                             buy_venue="a", sell_venue="b", buy_price=100.0, sell_price=101.0,
                             gross_bps=100.0, net_bps=80.0, buy_fee_bps=10.0, sell_fee_bps=10.0,
                             ts_ns=time.time_ns())


async def collect(sub, n: int, timeout: float = 15.0) -> list:
    out: list = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += await sub.get_batch(0.2)
    return out


@pytest.fixture
async def buses(kafka_broker):  # noqa: F811
    made: list[KafkaBus] = []

    async def make(prefix: str, **kw) -> KafkaBus:
        bus = KafkaBus(kafka_config(kafka_broker.bootstrap, prefix, **kw).bus)
        await bus.start()
        made.append(bus)
        return bus

    yield make
    for b in made:
        await asyncio.wait_for(b.stop(), 10)


@pytest.mark.parametrize("quote_format", ["msgpack", "json"])
async def test_roundtrip_keeps_types_timestamps_and_keys_by_symbol(buses, kafka_broker,  # noqa: F811
                                                                   quote_format):
    prefix = topic_prefix()
    pub = await buses(prefix, kafka_extra=f'quote_format = "{quote_format}"')
    view = await buses(prefix)
    wake = asyncio.Event()
    subs = {t: view.subscribe(t, "viewer", wake=wake) for t in (QUOTES, OPPORTUNITIES, FILLS, STATUS)}
    await asyncio.wait_for(view.free_ready.wait(), 15)

    # Two quote currencies per base: the detector pairs BTC-USD with BTC-USDT.
    symbols = [f"S{i}-{ccy}" for i in range(12) for ccy in ("USD", "USDT")]
    sent = []
    for i, s in enumerate(symbols):
        for v in ("binance", "coinbase"):
            q = quote(v, s, 100.0 + i, 100.5 + i, venue_ts_ns=111, seq=i, pub_ts_ns=time.time_ns())
            sent.append(q)
            pub.publish(QUOTES, s, q)
    pub.publish(OPPORTUNITIES, "BTC-USD", opp())
    pub.publish(FILLS, "BTC-USD", model.Fill(opp_id="x", venue="a", symbol="BTC-USD", side="buy",
                                             requested=1, filled=1, vwap=100, fee=0.1, ts_ns=1,
                                             status="filled"))
    pub.publish(STATUS, "BTC-USD", model.BookStatus(venue="a", symbol="BTC-USD",
                                                    state=model.BookState.STALE, reason="x"))
    got_q = await collect(subs[QUOTES], len(sent))
    assert len(got_q) == len(sent)
    assert all(isinstance(q, model.Quote) for q in got_q)
    # Timestamps survive the hop (per-stage latency across processes needs them).
    by = {(q.venue, q.symbol): q for q in got_q}
    for q in sent:
        r = by[(q.venue, q.symbol)]
        assert (r.recv_ts_ns, r.pub_ts_ns, r.venue_ts_ns, r.seq, r.bid) == \
               (q.recv_ts_ns, q.pub_ts_ns, q.venue_ts_ns, q.seq, q.bid)
    (o,) = await collect(subs[OPPORTUNITIES], 1)
    assert isinstance(o, model.Opportunity) and o.event is model.OppEvent.OPENED
    (f,) = await collect(subs[FILLS], 1)
    assert isinstance(f, model.Fill) and f.status == "filled"
    (st,) = await collect(subs[STATUS], 1)
    assert isinstance(st, model.BookStatus) and st.state is model.BookState.STALE
    s = pub.stats()
    await until(lambda: pub.stats()["delivered"].get(QUOTES) == len(sent), what="acks")
    assert s["kind"] == "kafka" and s["state"] == "up" and not pub.stats()["delivery_errors"]
    assert view.stats()["hop_p50_ms"] is not None

    # On the wire: several quotes per record (a "quotes" envelope), each record in the
    # partition of its quotes' BASE asset (both venues, both quote currencies), keyed by
    # a base asset that Kafka's default murmur2 partitioner maps to that same partition;
    # tagged, with the schema version; msgpack or JSON (kcat-readable) as configured.
    import msgspec
    from aiokafka.partitioner import murmur2

    def untyped(value: bytes) -> dict:
        assert (value[:1] == b"{") == (quote_format == "json")
        return json.loads(value) if quote_format == "json" else msgspec.msgpack.decode(value)

    raw = AIOKafkaConsumer(f"{prefix}.quotes", bootstrap_servers=kafka_broker.bootstrap,
                           auto_offset_reset="earliest", group_id=None)
    await raw.start()
    try:
        recs = []
        deadline = time.monotonic() + 10
        while sum(len(untyped(r.value)["items"]) for r in recs) < len(sent) \
                and time.monotonic() < deadline:
            for rs in (await raw.getmany(timeout_ms=200)).values():
                recs += rs
    finally:
        await raw.stop()
    parts: dict[str, set[int]] = {}
    on_wire = []
    for r in recs:
        d = untyped(r.value)
        assert d["type"] == "quotes" and d["v"] == model.SCHEMA_VERSION
        assert [tuple(k) for k in d["keys"]] == [(i["venue"], i["symbol"]) for i in d["items"]]
        assert (murmur2(r.key) & 0x7FFFFFFF) % 12 == r.partition
        for i in d["items"]:
            assert i["v"] == model.SCHEMA_VERSION
            on_wire.append((i["venue"], i["symbol"], i["seq"]))
            parts.setdefault(i["symbol"].split("-")[0], set()).add(r.partition)
    assert sorted(on_wire) == sorted((q.venue, q.symbol, q.seq) for q in sent)
    assert len(recs) < len(sent)  # batched
    assert set(parts) == {s.split("-")[0] for s in symbols}
    assert all(len(p) == 1 for p in parts.values())
    assert len({p for ps in parts.values() for p in ps}) > 1  # symbols spread over partitions


async def test_bad_records_are_counted_and_skipped(buses, kafka_broker, caplog):  # noqa: F811
    prefix = topic_prefix()
    view = await buses(prefix)
    sub = view.subscribe(QUOTES, "viewer")
    await asyncio.wait_for(view.free_ready.wait(), 15)
    good = quote("binance", "BTC-USD", 100.0, 101.0)
    wrong_v = encode(good).replace(b'"v":1}', b'"v":99}')
    prod = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await prod.start()
    try:
        t = f"{prefix}.quotes"
        for v in (b"not json at all", b'{"type":"quote","venue":"x"}', wrong_v, encode(opp()),
                  b'{"type":"martian","v":1}', encode(good)):
            await prod.send(t, v, key=b"BTC-USD")
        await prod.flush()
    finally:
        await prod.stop()
    got = await collect(sub, 1)
    await asyncio.sleep(0.3)
    got += sub.drain()
    assert len(got) == 1 and got[0].bid == 100.0
    assert view.stats()["bad_records"] == {"malformed": 3, "wrong_version": 1, "wrong_type": 1}
    assert "skipped malformed record" in caplog.text


async def test_viewer_can_start_from_a_time(buses, kafka_broker):  # noqa: F811
    prefix = topic_prefix()
    pub = await buses(prefix)  # creates the topics
    t0 = int(time.time() * 1000) - 1000
    # The history goes in one record per batch: tansu (0.6) answers ListOffsets
    # "latest" with the last BATCH's base offset + 1, not the log end, so records
    # batched together would wrongly appear "after the end" there. Real Kafka is exact.
    prod = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    await prod.start()
    try:
        for i in range(10):
            await prod.send_and_wait(f"{prefix}.opportunities", encode(opp(f"S{i}-USD")),
                                     key=f"S{i}-USD".encode())
    finally:
        await prod.stop()

    live = await buses(prefix)  # default: start at the end, sees nothing old
    live_sub = live.subscribe(OPPORTUNITIES, "viewer")
    past = await buses(prefix)
    past.start_from(t0)
    past_sub = past.subscribe(OPPORTUNITIES, "viewer")
    await asyncio.wait_for(live.free_ready.wait(), 15)
    got = await collect(past_sub, 10)
    assert sorted(o.symbol for o in got) == sorted(f"S{i}-USD" for i in range(10))
    pub.publish(OPPORTUNITIES, "NEW-USD", opp("NEW-USD"))
    fresh = await collect(live_sub, 1)
    assert [o.symbol for o in fresh] == ["NEW-USD"]


async def test_group_rebalance_splits_partitions_and_resets_moved_symbols(buses):
    prefix = topic_prefix()
    pub = await buses(prefix)
    a = await buses(prefix)
    resets: list[set[str]] = []
    qa = a.subscribe(QUOTES, "detector")
    qa.on_reset = lambda syms, why: resets.append(set(syms))
    await until(lambda: len(a.stats()["assigned_partitions"]) == 12, 30, "first detector assigned")
    symbols = [f"S{i}-USD" for i in range(24)]
    for s in symbols:
        pub.publish(QUOTES, s, quote("binance", s, 1.0, 2.0))
    got = await collect(qa, len(symbols))
    assert {q.symbol for q in got} == set(symbols)

    b = await buses(prefix)
    qb = b.subscribe(QUOTES, "detector")
    await until(lambda: a.stats()["assigned_partitions"] and b.stats()["assigned_partitions"]
                and len(a.stats()["assigned_partitions"]) + len(b.stats()["assigned_partitions"])
                == 12, 40, "both detectors assigned")
    pa, pb = set(a.stats()["assigned_partitions"]), set(b.stats()["assigned_partitions"])
    assert not pa & pb
    # The first detector forgot exactly the symbols whose partitions moved away.
    assert resets, "no reset after losing partitions"
    moved = set().union(*resets)
    assert moved and moved < set(symbols)

    for s in symbols:
        pub.publish(QUOTES, s, quote("coinbase", s, 1.0, 2.0))
    ga = await collect(qa, 1, 5)
    gb = await collect(qb, 1, 5)
    deadline = time.monotonic() + 10
    while len(ga) + len(gb) < len(symbols) and time.monotonic() < deadline:
        ga += await qa.get_batch(0.1)
        gb += await qb.get_batch(0.1)
    sa, sb = {q.symbol for q in ga}, {q.symbol for q in gb}
    assert sa | sb == set(symbols) and not sa & sb  # each symbol to exactly one detector
    assert sa == set(symbols) - moved


async def test_unreachable_broker_is_one_clear_error():
    cfg = kafka_config(f"127.0.0.1:{free_port()}", topic_prefix())
    bus = KafkaBus(cfg.bus)
    with pytest.raises(BusError) as ei:
        await asyncio.wait_for(bus.start(), 30)
    msg = str(ei.value)
    assert "\n" not in msg and "cannot connect" in msg and cfg.bus.kafka.bootstrap_servers in msg


async def test_unreachable_with_retry_shows_retry_state_and_never_blocks_publish():
    cfg = kafka_config(f"127.0.0.1:{free_port()}", topic_prefix(),
                       kafka_extra='on_unreachable = "retry"\nmax_in_flight = 100')
    bus = KafkaBus(cfg.bus)
    await asyncio.wait_for(bus.start(), 5)
    try:
        await until(lambda: bus.stats()["state"] == "retrying", 20, "retry state")
        assert "cannot connect" in bus.stats()["reason"]
        for i in range(500):
            bus.publish(QUOTES, "BTC-USD", quote("binance", "BTC-USD", 1.0, 2.0, seq=i))
        s = bus.stats()
        # One venue+symbol: the queue coalesces to its newest quote (superseded, not dropped).
        assert s["in_flight"] <= 100 and not s["dropped"]
        assert s["superseded"][QUOTES] + s["in_flight"] == 500
        for i in range(300):  # distinct symbols: nothing to coalesce, the oldest are shed
            bus.publish(QUOTES, f"C{i}-USD", quote("binance", f"C{i}-USD", 1.0, 2.0, seq=i))
        s = bus.stats()
        assert s["in_flight"] == 100 and s["dropped"][QUOTES] >= 200
        assert s["superseded"][QUOTES] + s["dropped"][QUOTES] + s["in_flight"] == 800
        # Opportunity events are never shed by the quotes' bound: kept for delivery.
        for i in range(150):
            bus.publish(OPPORTUNITIES, "BTC-USD", opp())
        s = bus.stats()
        assert s["reliable_in_flight"] == 150 and s["lost"] == {}
    finally:
        await asyncio.wait_for(bus.stop(), 10)


def test_secrets_come_from_env_and_never_show(monkeypatch):
    from arbtui.backend.bus.kafka import client_kwargs

    cfg = kafka_config("127.0.0.1:1", topic_prefix(), kafka_extra="""
security_protocol = "SASL_PLAINTEXT"
sasl_mechanism = "SCRAM-SHA-512"
sasl_username = "detect"
sasl_password = "env:ARBTUI_TEST_KAFKA_PW"
""")
    monkeypatch.delenv("ARBTUI_TEST_KAFKA_PW", raising=False)
    with pytest.raises(BusError, match="ARBTUI_TEST_KAFKA_PW is not set"):
        client_kwargs(cfg.bus.kafka)
    monkeypatch.setenv("ARBTUI_TEST_KAFKA_PW", "s3cret-value")
    kw = client_kwargs(cfg.bus.kafka)
    assert kw["sasl_plain_password"] == "s3cret-value" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    bus = KafkaBus(cfg.bus)
    assert "s3cret-value" not in json.dumps(bus.stats(), default=str)


async def test_lz4_compressed_roundtrip(buses):
    pytest.importorskip("cramjam", reason="lz4 needs the arbtui[lz4] extra (cramjam)")
    prefix = topic_prefix()
    pub = await buses(prefix, kafka_extra='compression = "lz4"\nacks = "all"')
    view = await buses(prefix)
    sub = view.subscribe(OPPORTUNITIES, "viewer")
    await asyncio.wait_for(view.free_ready.wait(), 15)
    for i in range(50):
        pub.publish(OPPORTUNITIES, f"S{i}-USD", opp(f"S{i}-USD"))
    got = await collect(sub, 50)
    assert sorted(o.symbol for o in got) == sorted(f"S{i}-USD" for i in range(50))
    assert not pub.stats()["delivery_errors"]


async def test_every_detector_gets_every_funding_state_outside_the_group(buses):
    """Perp venue state (issue 18): the detectors of one consumer group split the
    quotes, but each of them reads ALL of the funding topic (groupless, like the
    conversion rates), whichever quote partitions it owns."""
    from arbtui.backend.bus import FUNDING

    prefix = topic_prefix()
    pub = await buses(prefix)
    a, b = await buses(prefix), await buses(prefix)
    for bus in (a, b):  # the quotes go through the group: each owns some partitions
        bus.subscribe(QUOTES, "detector")
    fa, fb = a.subscribe(FUNDING, "detector"), b.subscribe(FUNDING, "detector")
    await until(lambda: len(a.stats()["assigned_partitions"]) + len(b.stats()["assigned_partitions"])
                == 12 and a.stats()["assigned_partitions"] and b.stats()["assigned_partitions"],
                40, "both detectors assigned")
    await asyncio.wait_for(a.free_ready.wait(), 15)
    await asyncio.wait_for(b.free_ready.wait(), 15)
    syms = [f"P{i}-USDT-PERP" for i in range(8)]
    for i, s in enumerate(syms):
        pub.publish(FUNDING, s, model.Funding(venue="okx-swap", symbol=s, rate=1e-4 * i,
                                              next_funding_ts_ns=i, mark=100.0 + i,
                                              index=99.0 + i))
    got_a = await collect(fa, len(syms))
    got_b = await collect(fb, len(syms))
    assert sorted(f.symbol for f in got_a) == sorted(syms) == sorted(f.symbol for f in got_b)
    assert all(isinstance(f, model.Funding) for f in got_a + got_b)
    assert {f.symbol: f.mark for f in got_a}["P3-USDT-PERP"] == 103.0
    assert a.names[FUNDING] == f"{prefix}.funding" and pub.stats()["delivery_errors"] == {}
