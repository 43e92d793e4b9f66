"""Kafka-side logic that needs no broker: rebalance reset in the engine, --since
parsing, wire encoding, the base-asset partitioner."""

from __future__ import annotations

import time

import pytest

from arbtui import model
from arbtui.backend.bus.base import BusError
from arbtui.backend.bus.kafka import base_partitioner, decode, encode
from arbtui.backend.engine import Engine
from arbtui.config import load
from arbtui.roles import parse_since


def q(venue: str, symbol: str, bid: float, ask: float) -> model.Quote:
    return model.Quote(venue=venue, symbol=symbol, bid=bid, bid_size=5.0, ask=ask, ask_size=5.0,
                       bids=[(bid, 5.0)], asks=[(ask, 5.0)], bid_px=str(bid), bid_qty="5",
                       ask_px=str(ask), ask_qty="5", recv_ts_ns=time.time_ns())


def test_forget_symbols_closes_moved_bases_and_keeps_accepting_quotes():
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

    eng._forget_symbols({"BTC-USDT"}, "partition moved to another detector")
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


def test_partition_follows_the_base_asset():
    parts = list(range(12))
    p = {s: base_partitioner(s.encode(), parts, parts)
         for s in ("BTC-USD", "BTC-USDT", "BTC-USDC", "ETH-USD", "ETH-USDT")}
    assert p["BTC-USD"] == p["BTC-USDT"] == p["BTC-USDC"]
    assert p["ETH-USD"] == p["ETH-USDT"]
    spread = {base_partitioner(f"C{i}-USD".encode(), parts, parts) for i in range(100)}
    assert len(spread) == 12


def test_authorization_errors_name_the_missing_permission():
    # No ACL-enforcing broker runs here (tansu has none): this checks the mapping
    # from Kafka's authorization errors to the status the operator sees.
    from aiokafka import errors as ke

    from arbtui.backend.bus import OPPORTUNITIES
    from arbtui.backend.bus.kafka import KafkaBus, _missing_permission

    cfg = load(None, use_user=False)
    cfg.bus.kind = "kafka"
    k = cfg.bus.kafka
    assert _missing_permission(ke.GroupAuthorizationFailedError(), k) == f"READ on Group:{k.group_id}"
    assert _missing_permission(ke.TopicAuthorizationFailedError(), k, "t").startswith("Topic:t")
    assert _missing_permission(ke.KafkaConnectionError(), k) is None
    bus = KafkaBus(cfg.bus)
    bus._delivery_failed(OPPORTUNITIES, ke.TopicAuthorizationFailedError())
    st = bus.stats()
    assert st["state"] == "unauthorized"
    assert st["missing_permissions"] == [f"Topic:{k.topic_opportunities} (WRITE)"]
    assert st["delivery_errors"] == {OPPORTUNITIES: 1}
