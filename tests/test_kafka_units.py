"""Kafka-side logic that needs no broker: rebalance reset in the engine, --since
parsing, wire encoding, the base-asset partitioner."""

from __future__ import annotations

import time

import msgspec
import pytest

from arbtui import model
from arbtui.backend.bus.base import BusError
from arbtui.backend.bus.kafka import base_partitioner, decode, encode
from arbtui.backend.engine import Engine
from arbtui.commands.roles import parse_since
from arbtui.config import load


def q(venue: str, symbol: str, bid: float, ask: float) -> model.Quote:
    return model.Quote(venue=venue, symbol=symbol, bid=bid, bid_size=5.0, ask=ask, ask_size=5.0,
                       bids=[(bid, 5.0)], asks=[(ask, 5.0)], bid_px=str(bid), bid_qty="5",
                       ask_px=str(ask), ask_qty="5", recv_ts_ns=time.time_ns())


def test_forget_closes_moved_bases_and_keeps_accepting_quotes():
    cfg = load(None, use_user=False)
    eng = Engine(cfg, roles=("detect",))
    det = eng.detector
    for e in det.on_quote(q("binance", "BTC-USDT", 100.0, 100.01)) + \
            det.on_quote(q("bybit", "BTC-USDT", 100.6, 100.61)) + \
            det.on_quote(q("binance", "ETH-USDT", 10.0, 10.001)) + \
            det.on_quote(q("bybit", "ETH-USDT", 10.06, 10.061)):
        eng.record_event(e)
    assert {k[0] for k in det.open} == {"BTC-USDT", "ETH-USDT"}
    seq = eng.event_seq

    eng.detect.forget({"BTC-USDT"}, "partition moved to another detector")
    closed = [e for _, e in eng.events_since(seq)]
    assert closed and all(e.event is model.OppEvent.CLOSED and e.symbol == "BTC-USDT"
                          and "partition moved" in e.reason for e in closed)
    assert {k[0] for k in det.open} == {"ETH-USDT"}  # other bases untouched
    assert "BTC-USDT" not in det.quotes or not det.quotes["BTC-USDT"]
    # Starting clean is not "not LIVE": the next quotes are used again.
    ev = det.on_quote(q("binance", "BTC-USDT", 100.0, 100.01)) + \
        det.on_quote(q("bybit", "BTC-USDT", 100.6, 100.61))
    assert [e.event for e in ev] == [model.OppEvent.OPENED]


def test_parse_since():
    now = 1_700_000_000.0
    assert parse_since("15m", now) == int((now - 900) * 1000)
    assert parse_since("2h", now) == int((now - 7200) * 1000)
    assert parse_since("2026-01-31T14:00:00+00:00") == 1769868000000
    with pytest.raises(BusError, match="--since 'yesterday'"):
        parse_since("yesterday")


def test_wire_encoding_is_tagged_versioned_json():
    quote = q("kraken", "BTC-USD", 1.0, 2.0)
    raw = encode(quote)
    assert raw.startswith(b'{"type":"quote","venue":"kraken"') and raw.endswith(b'"v":1}')
    back, why = decode(raw)
    assert why == "" and isinstance(back, model.Quote)
    assert all(getattr(back, f) == getattr(quote, f) for f in model.Quote.__struct_fields__
               if f not in ("bids", "asks"))
    assert [tuple(x) for x in back.bids] == quote.bids
    assert encode(back) == raw  # a decoded record re-encodes identically
    assert decode(b"{") == (None, "malformed")
    assert decode(raw.replace(b'"v":1}', b'"v":2}')) == (None, "wrong_version")
    with pytest.raises(TypeError):
        encode({"not": "a struct"})


def test_wallet_state_travels_the_wire_on_its_own_topic():
    from arbtui.backend.bus.base import WALLETS
    from arbtui.backend.bus.kafka import KafkaBus, encode_batch, unpack
    from arbtui.backend.bus.kafka.wire import ALLOWED

    ws = model.WalletState(enabled=True, free={"gemini": {"BTC": 1.25}},
                           initial={"kraken": (0.0, 1e9)}, default=(1.0, 100_000.0), ts_ns=7)
    raw = encode(ws)
    assert raw.startswith(b'{"type":"wallet_state",')
    back, why = decode(raw)
    assert why == "" and isinstance(back, model.WalletState)
    assert msgspec.structs.asdict(back) == msgspec.structs.asdict(ws)
    assert back.cap("gemini", "BTC", "base") == 1.25 and back.cap("kraken", "USD", "quote") == 1e9
    assert back.cap("okx", "USDT", "quote") == 100_000.0
    both, why = unpack(encode_batch(WALLETS, [ws, ws]))
    assert why == "" and [msgspec.structs.asdict(w) for w in both] == [msgspec.structs.asdict(ws)] * 2
    assert ALLOWED[WALLETS] == (model.WalletState,)
    cfg = load(None, use_user=False)
    assert KafkaBus(cfg.bus).names[WALLETS] == cfg.bus.kafka.topic_wallets == "arbtui.wallets"


def test_partition_follows_the_base_asset():
    parts = list(range(12))
    p = {s: base_partitioner(s.encode(), parts, parts)
         for s in ("BTC-USD", "BTC-USDT", "BTC-USDC", "ETH-USD", "ETH-USDT")}
    assert p["BTC-USD"] == p["BTC-USDT"] == p["BTC-USDC"]
    assert p["ETH-USD"] == p["ETH-USDT"]
    spread = {base_partitioner(f"C{i}-USD".encode(), parts, parts) for i in range(100)}
    assert len(spread) == 12


def test_authorization_errors_name_themissing_permission():
    # No ACL-enforcing broker runs here (tansu has none): this checks the mapping
    # from Kafka's authorization errors to the status the operator sees.
    from aiokafka import errors as ke

    from arbtui.backend.bus import OPPORTUNITIES
    from arbtui.backend.bus.kafka import KafkaBus, missing_permission

    cfg = load(None, use_user=False)
    cfg.bus.kind = "kafka"
    k = cfg.bus.kafka
    assert missing_permission(ke.GroupAuthorizationFailedError(), k) == f"READ on Group:{k.group_id}"
    assert missing_permission(ke.TopicAuthorizationFailedError(), k, "t").startswith("Topic:t")
    assert missing_permission(ke.KafkaConnectionError(), k) is None
    bus = KafkaBus(cfg.bus)
    bus._delivery_failed(OPPORTUNITIES, ke.TopicAuthorizationFailedError())
    st = bus.stats()
    assert st["state"] == "unauthorized"
    assert st["missing_permissions"] == [f"Topic:{k.topic_opportunities} (WRITE)"]
    assert st["delivery_errors"] == {OPPORTUNITIES: 1}


def test_batch_envelopes_carry_many_messages_per_record():
    from arbtui.backend.bus import OPPORTUNITIES, QUOTES, STATUS
    from arbtui.backend.bus.kafka import encode_batch, unpack

    quotes = [q("binance", "BTC-USD", 100.0 + i, 101.0 + i) for i in range(5)]
    raw = encode_batch(QUOTES, quotes)
    assert raw.startswith(b'{"type":"quotes","keys":[["binance","BTC-USD"],')
    back, why = unpack(raw)
    assert why == "" and [x.bid for x in back] == [x.bid for x in quotes]
    assert all(type(x) is model.Quote for x in back)
    st = [model.BookStatus(venue="a", symbol="BTC-USD", state=model.BookState.STALE, reason="x"),
          model.VenueStatus(venue="a", state=model.BookState.LIVE)]
    back, why = unpack(encode_batch(STATUS, st))
    assert why == "" and [type(x).__mro__[1] for x in back] == [model.BookStatus, model.VenueStatus]
    assert back[0].state is model.BookState.STALE
    opp = model.Opportunity(id="i", event=model.OppEvent.OPENED, symbol="BTC-USD", buy_venue="a",
                            sell_venue="b", buy_price=1.0, sell_price=2.0, gross_bps=1.0,
                            net_bps=1.0, buy_fee_bps=0.0, sell_fee_bps=0.0, ts_ns=1)
    back, why = unpack(encode_batch(OPPORTUNITIES, [opp, opp]))
    assert why == "" and [x.id for x in back] == ["i", "i"]
    # The envelope carries the schema version too.
    assert raw.endswith(b'"v":1}')
    assert decode(raw[:-len(b'"v":1}')] + b'"v":7}') == (None, "wrong_version")
    assert unpack(raw[:-5]) == ([], "malformed")


def test_quote_inbox_keeps_newest_undecoded_and_decodes_only_what_is_drained():
    from arbtui.backend.bus import QUOTES
    from arbtui.backend.bus.base import quote_key
    from arbtui.backend.bus.kafka import QuoteInbox, encode_batch

    bad: list[tuple[str, object]] = []
    box = QuoteInbox(QUOTES, "detector", 100, quote_key, on_bad=lambda w, k: bad.append((w, k)))

    def put(qs):
        b, why = decode(encode_batch(QUOTES, qs))
        assert why == ""
        box.put_raw(b.keys, b.items)

    put([q("a", "BTC-USD", 1.0, 2.0), q("b", "BTC-USD", 1.5, 2.5), q("a", "BTC-USD", 1.1, 2.1)])
    put([q("a", "ETH-USD", 3.0, 4.0), q("b", "BTC-USD", 1.6, 2.6)])
    assert len(box) == 3 and box.superseded == 2  # a/BTC and b/BTC were superseded
    assert box.dropped == 0  # superseded is not dropped: never mixed
    # Items are still undecoded; a single (already decoded) record coalesces with them.
    box.put(q("a", "ETH-USD", 3.3, 4.4))
    assert box.superseded == 3 and box.dropped == 0
    got = {(x.venue, x.symbol): x.bid for x in box.drain()}
    assert got == {("a", "BTC-USD"): 1.1, ("b", "BTC-USD"): 1.6, ("a", "ETH-USD"): 3.3}
    assert box.delivered == 3 and not bad and box.drain() == []

    # A forged key (item says venue "x") and a broken item are counted, never delivered.
    good = encode_batch(QUOTES, [q("a", "SOL-USD", 5.0, 6.0), q("x", "SOL-USD", 5.0, 6.0)])
    forged = good.replace(b'["x","SOL-USD"]', b'["c","SOL-USD"]')
    b, _ = decode(forged)
    box.put_raw(b.keys, b.items)
    broken = good.replace(b'"venue":"a"', b'"venue":7')
    b, _ = decode(broken)
    box.put_raw(b.keys[:1], b.items[:1])
    assert box.drain() == []
    assert sorted(bad) == [("malformed", ("a", "SOL-USD")), ("malformed", ("c", "SOL-USD"))]

    # A rebalance discards pending quotes by symbol: undecoded ones too.
    put([q("a", "BTC-USD", 1.0, 2.0), q("a", "ETH-USD", 3.0, 4.0)])
    assert box.discard_where(lambda m: m.symbol == "BTC-USD") == 1
    assert [x.symbol for x in box.drain()] == ["ETH-USD"]


def _opp(i: int, event: model.OppEvent = model.OppEvent.OPENED, ts: int = 1) -> model.Opportunity:
    return model.Opportunity(id=f"o{i}", event=event, symbol="BTC-USD", buy_venue="a",
                             sell_venue="b", buy_price=1.0, sell_price=2.0, gross_bps=1.0,
                             net_bps=1.0, buy_fee_bps=0.0, sell_fee_bps=0.0, ts_ns=ts)


def _bus(**kafka):
    from arbtui.backend.bus.kafka import KafkaBus

    cfg = load(None, use_user=False)
    cfg.bus.kind = "kafka"
    for k, v in kafka.items():
        setattr(cfg.bus.kafka, k, v)
    return KafkaBus(cfg.bus)


def test_quotes_coalesce_then_shed_under_pressure_and_reliable_topics_never_do():
    from arbtui.backend.bus import OPPORTUNITIES, QUOTES

    bus = _bus(max_in_flight=4, reliable_buffer=1000)
    for i in range(3):
        bus.publish(QUOTES, "BTC-USD", q("a", "BTC-USD", 100.0 + i, 101.0 + i))
    bus.publish(QUOTES, "BTC-USD", q("b", "BTC-USD", 100.0, 101.0))
    for i in range(50):  # opportunity events while quotes are at their bound
        bus.publish(OPPORTUNITIES, "BTC-USD", _opp(i))
    # At the bound, the queue first coalesces to the newest quote per venue+symbol...
    bus.publish(QUOTES, "BTC-USD", q("c", "BTC-USD", 100.0, 101.0))
    st = bus.stats()
    assert st["superseded"] == {QUOTES: 2} and st["dropped"] == {}
    assert [(m.venue, m.bid) for _, _, m in bus._outq] == [("a", 102.0), ("b", 100.0),
                                                           ("c", 100.0)]
    # ...and only when every queued quote is the newest of its key is the oldest shed.
    bus.publish(QUOTES, "ETH-USD", q("a", "ETH-USD", 10.0, 11.0))
    bus.publish(QUOTES, "ETH-USD", q("b", "ETH-USD", 10.0, 11.0))
    st = bus.stats()
    assert st["superseded"] == {QUOTES: 2} and st["dropped"] == {QUOTES: 1}
    assert [m.venue + m.symbol for _, _, m in bus._outq] == ["bBTC-USD", "cBTC-USD",
                                                             "aETH-USD", "bETH-USD"]
    # No opportunity event was touched by the quotes' pressure.
    assert [m.id for _, _, m in bus._relq] == [f"o{i}" for i in range(50)]
    assert st["lost"] == {} and st["reliable_in_flight"] == 50


def test_reliable_outbox_bound_is_loud_and_failed_records_are_retried_in_order(caplog):
    from aiokafka import errors as ke

    from arbtui.backend.bus import FILLS, OPPORTUNITIES

    bus = _bus(reliable_buffer=5)
    for i in range(5):
        bus.publish(OPPORTUNITIES, "BTC-USD", _opp(i))
    bus.publish(OPPORTUNITIES, "BTC-USD", _opp(5))  # past the bound: the OLDEST is lost
    st = bus.stats()
    assert st["lost"] == {OPPORTUNITIES: 1}
    assert [m.id for _, _, m in bus._relq] == ["o1", "o2", "o3", "o4", "o5"]
    assert any(r.levelname == "ERROR" and "LOST" in r.getMessage() for r in caplog.records)

    # A failed record goes back to the front of the outbox, in order, and is retried.
    taken, reliable = bus._take()
    assert reliable and [m.id for _, _, m in taken] == ["o1", "o2", "o3", "o4", "o5"]
    bus.publish(FILLS, "BTC-USD", model.Fill(opp_id="o1", venue="a", symbol="BTC-USD",
                                             side="buy", requested=1, filled=1, vwap=1, fee=0,
                                             ts_ns=1, status="filled"))
    caplog.clear()
    for _ in range(3):  # three failures in a row: ONE warning, not three
        bus._failed(True, OPPORTUNITIES, taken[:2], ke.KafkaTimeoutError())
        bus._relq.popleft(), bus._relq.popleft()
    bus._failed(True, OPPORTUNITIES, taken, ke.KafkaTimeoutError())
    assert [type(m).__name__ + ":" + (m.opp_id if isinstance(m, model.Fill) else m.id)
            for _, _, m in bus._relq] == \
        ["Opportunity:o1", "Opportunity:o2", "Opportunity:o3", "Opportunity:o4",
         "Opportunity:o5", "Fill:o1"]
    st = bus.stats()
    assert st["retried"] == {OPPORTUNITIES: 11} and st["delivery_errors"] == {OPPORTUNITIES: 11}
    assert st["lost"] == {OPPORTUNITIES: 1}  # retried messages are not lost ones
    assert bus._retry_at > 0  # the outbox backs off before the next attempt
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "failing" in warnings[0]
    # A failed quote record is not retried: its quotes are dropped (counted).
    bus._failed(False, "quotes", [("quotes", "BTC-USD", q("a", "BTC-USD", 1.0, 2.0))],
                ke.KafkaTimeoutError())
    assert bus.stats()["dropped"] == {"quotes": 1}

    # The first acknowledgement after failures logs ONE recovery line with the counts.
    class Done:
        def cancelled(self):
            return False

        def exception(self):
            return None

        def result(self):
            return type("Md", (), {"topic": "t", "partition": 0, "offset": 7})()

    # ...but only once nothing has failed for a while: right after a broker restart
    # some partitions answer while others still fail (one episode, not several).
    bus._rel_unacked = 1
    bus._on_ack(OPPORTUNITIES, True, [("BTC-USD", _opp(9))], Done())
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    bus._last_fail -= 5.0  # as if 5 s passed without a failure...
    bus.state, bus.up_since = "up", time.monotonic() - 5.0
    bus.check_recovered()  # ...but the broker is back for only 5 s: same episode
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == 1
    bus.up_since -= 5.0
    bus.check_recovered()  # the health loop's once-a-second check
    bus._on_ack(OPPORTUNITIES, True, [], Done())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "recovered" in warnings[1] and "11" in warnings[1]


def test_consumer_drops_redelivered_reliable_messages():
    from arbtui.backend.bus import FILLS, OPPORTUNITIES, QUOTES

    bus = _bus()
    o = _opp(1)
    assert bus._first_time(OPPORTUNITIES, o)
    assert not bus._first_time(OPPORTUNITIES, msgspec.structs.replace(o))
    # Same id, another event or time: a different message.
    assert bus._first_time(OPPORTUNITIES, _opp(1, model.OppEvent.CLOSED, ts=2))
    # Two updates of one window in one detector batch share a timestamp: both count.
    assert bus._first_time(OPPORTUNITIES, msgspec.structs.replace(o, net_bps=2.5))
    f = model.Fill(opp_id="o1", venue="a", symbol="BTC-USD", side="buy", requested=1, filled=1,
                   vwap=1, fee=0, ts_ns=5, status="filled")
    assert bus._first_time(FILLS, f) and not bus._first_time(FILLS, f)
    assert bus._first_time(QUOTES, q("a", "BTC-USD", 1.0, 2.0))  # quotes carry no id
    assert bus.stats()["duplicates"] == {OPPORTUNITIES: 1, FILLS: 1}


def test_aiokafka_noise_is_filtered_to_what_an_operator_needs():
    import logging

    from arbtui.backend.bus.kafka.logs import ThinLogs

    f = ThinLogs(period=30.0)

    def rec(msg, *args, level=logging.ERROR):
        return logging.LogRecord("aiokafka.consumer.fetcher", level, "x", 1, msg, args, None)

    # Restating an outage the bus reports itself (once per transition): dropped, counted.
    assert not f.filter(rec("Failed fetch messages from %s: %s", 111,
                            "KafkaConnectionError: Connection at 127.0.0.1:1 closed"))
    assert not f.filter(rec("Unable to update metadata from [111]"))
    assert not f.filter(rec("Heartbeat failed for group %s because it is rebalancing", "g",
                            level=logging.WARNING))
    assert f.suppressed == 3
    # Anything else reaches the log, once per template per period.
    assert f.filter(rec("Unexpected error in sender routine: %s", "boom"))
    assert not f.filter(rec("Unexpected error in sender routine: %s", "boom again"))
    assert f.filter(rec("just chatter", level=logging.INFO))


def test_groupless_consumer_polls_slowly_unless_it_reads_what_must_be_acted_on_at_once():
    """Quiet topics (states, wallets, funding, control, conversion books) are read with
    a long fetch wait (idle polling costs both processes CPU; Apache Kafka answers a fetch
    as soon as data arrives anyway); a viewer's quotes or any opportunity reader keeps
    bus.kafka.fetch_max_wait_ms, and a replay keeps every wait short."""
    from arbtui.backend.bus import CONTROL, FUNDING, OPPORTUNITIES, QUOTES, STATUS, WALLETS
    from arbtui.backend.bus.base import quote_key
    from arbtui.backend.bus.kafka.consumer import QUIET_FETCH_WAIT_MS
    from arbtui.backend.replay.kafka import ReplayKafkaBus

    def detector_reads(bus):
        bus.subscribe(QUOTES, "detector", coalesce=quote_key)  # the group: not groupless
        for t in (STATUS, FUNDING, WALLETS, CONTROL):
            bus.subscribe(t, "detector")
        bus.subscribe_rates({"USDT"})
        return bus

    bus = detector_reads(_bus(fetch_max_wait_ms=5))
    assert QUIET_FETCH_WAIT_MS >= 50 and bus._free_wait() == QUIET_FETCH_WAIT_MS
    bus.subscribe(OPPORTUNITIES, "executor")
    assert bus._free_wait() == 5
    viewer = _bus(fetch_max_wait_ms=5)
    viewer.subscribe(CONTROL, "view")
    assert viewer._free_wait() == QUIET_FETCH_WAIT_MS
    viewer.subscribe(QUOTES, "view", coalesce=quote_key)
    assert viewer._free_wait() == 5
    # A configured wait above the floor is kept as it is.
    assert detector_reads(_bus(fetch_max_wait_ms=200))._free_wait() == 200
    cfg = load(None, use_user=False)
    replay = ReplayKafkaBus(cfg.bus, "unit")
    replay.subscribe(CONTROL, "detector")
    assert replay._free_wait() == 1
