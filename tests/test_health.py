"""The headless status line and the dashboard header show the same health facts (issue 8).

Both are built from ``arbtui.health.health_facts``; these tests check that the
header renders the status record's values (not a second computation), that a
Kafka outage / missing ACL and a restarted role reach both, and that the header
still fits 80 columns when they do.
"""

from __future__ import annotations

import asyncio
import dataclasses

import msgspec

from arbtui import config
from arbtui.backend.engine import Engine, EngineState
from arbtui.headless import status_record
from arbtui.health import health_facts, health_fields, venue_word
from arbtui.model import BookState, VenueStatus
from arbtui.ui.widgets.header import header_text

KAFKA_ERR = "KafkaConnectionError: Unable to bootstrap from [('127.0.0.1', 19092, <AddressFamily.AF_INET: 2>)]"


def _kafka(state: str, reason: str = "", down_for_s: float | None = None,
           missing: list[str] | None = None) -> dict:
    return {"state": state, "reason": reason, "down_for_s": down_for_s, "outages": 1,
            "missing_permissions": missing or [], "in_flight": 0, "dropped": {"quotes": 4},
            "delivery_errors": {}, "bad_records": {}, "consumed": {}, "assigned_partitions": [],
            "rebalances": 0, "log_resets": 0, "last_error": reason, "hop_p50_ms": None,
            "hop_p99_ms": None}


def _state(kafka: dict, failures: dict[str, int]) -> EngineState:
    """The shape ``Engine.snapshot`` returns for a Kafka-bus engine (see Engine.snapshot)."""
    bus = {"kind": "kafka", "state": kafka["state"], "reason": kafka["reason"],
           "down_for_s": kafka["down_for_s"], "missing_permissions": kafka["missing_permissions"],
           "dropped": kafka["dropped"],
           "subscriptions": {"quotes/detector": {"depth": 0, "dropped": 3, "delivered": 10}}}
    venues = {
        "binance": VenueStatus(venue="binance", state=BookState.LIVE, msg_rate=40.0),
        "okx": VenueStatus(venue="okx", state=BookState.STALE, reason="no message for 3.2 s",
                           connected=True, last_msg_ns=1),
    }
    return EngineState(
        mode="VIEW", bus=bus, uptime_s=3723.4, venues=venues, quotes={}, open_opportunities=[],
        quotes_per_s=1234.0, detect_p50_ms=0.12, detect_p99_ms=0.85, min_net_bps=2.5,
        execution_enabled=True, event_seq=0,
        extra={"kafka": kafka, "role_failures": failures,
               "executor": {"pnl": -3.2, "pnl_ccy": "USD"}})


def _header(st: EngineState, width: int, facts: dict | None = None) -> str:
    return header_text(st, now_ns=0, width=width, focused="BTC-USD", paused=False,
                       facts=facts).plain


def test_header_shows_exactly_the_status_line_values():
    st = _state(_kafka("down", KAFKA_ERR, 12.4), {"detect": 2})
    # The line as it is written to stdout and read back by a consumer.
    rec = msgspec.json.decode(msgspec.json.encode(status_record(st)))
    facts = health_facts(st)
    # Every shared fact is on the status line with the same value...
    for k, v in msgspec.json.decode(msgspec.json.encode(facts)).items():
        assert rec[k] == v, k
    # ... and every header field rendered from the line's values is in the header.
    wide = _header(st, 400)
    from_record = {k: rec[k] for k in facts}
    for _, key, text, _ in health_fields(from_record):
        assert text in wide, (key, text, wide)
    # The values themselves (so a field both sides silently dropped would fail):
    assert rec["bus"]["kind"] == "kafka" and rec["bus"]["state"] == "down"
    assert rec["bus"]["down_for_s"] == 12.4 and rec["bus"]["reason"] == KAFKA_ERR
    assert rec["bus"]["drops"] == 7  # 3 subscriber-queue drops + 4 shed by the producer
    assert rec["bus"]["drops_by_topic"] == {"quotes": 7}
    assert rec["role_failures"] == {"detect": 2}
    assert rec["venues_live"] == 1 and rec["venues_total"] == 2
    assert rec["venues_not_live"] == {"okx": {"state": "STALE", "reason": "no message for 3.2 s",
                                              "word": "STALE", "why": "no message for 3.2 s"}}
    assert rec["pnl"] == -3.2 and rec["execution"] is True and rec["uptime_s"] == 3723.4
    for part in ("VIEW", "EXEC ON", "thr +2.5bps", "kafka DOWN 12s", "KafkaConnectionError: Unable",
                 "restarts detect×2", "LIVE 1/2 okx STALE", "1.2k q/s", "det 0.12/0.85ms",
                 "PnL -3.20 USD", "quotes shed 7", "open 0", "up 01:02:03"):
        assert part in wide, (part, wide)
    # Older consumers' keys are still there (kafka section, per-venue detail).
    assert rec["kafka"]["state"] == "down" and rec["venues"]["okx"]["state"] == "STALE"


def test_kafka_outage_and_role_failure_fit_80_columns():
    st = _state(_kafka("down", KAFKA_ERR, 12.4), {"detect": 2, "feed:okx": 1})
    t = _header(st, 80)
    assert len(t) <= 80
    # The fault outranks the healthy facts: it is what the operator must see first.
    for part in ("EXEC ON", "thr +2.5bps", "kafka DOWN 12s", "restarts detect×2"):
        assert part in t, (part, t)
    rec = status_record(st)
    assert rec["bus"]["down_for_s"] == 12.4 and rec["role_failures"] == {"detect": 2, "feed:okx": 1}


def test_missing_acl_is_named_in_both():
    perm = "Topic:arb.quotes (WRITE)"
    st = _state(_kafka("unauthorized", f"needs {perm}", missing=[perm]), {})
    t = _header(st, 80)
    assert len(t) <= 80 and f"kafka NOAUTH {perm}" in t, t
    rec = status_record(st)
    assert rec["bus"]["state"] == "unauthorized" and rec["bus"]["missing_permissions"] == [perm]


def test_healthy_embedded_bus_is_quiet():
    st = _state(_kafka("up"), {})
    st = dataclasses.replace(
        st, bus={"kind": "embedded", "state": "up", "subscriptions": {"quotes/d": {"dropped": 0}}},
        extra={"role_failures": {}})
    st.venues["okx"] = VenueStatus(venue="okx", state=BookState.LIVE)
    wide = _header(st, 400)
    assert "bus embedded up" in wide and "LIVE 2/2" in wide
    assert "drops" not in wide and "restarts" not in wide and "NOAUTH" not in wide
    rec = status_record(st)
    assert rec["bus"] == {"kind": "embedded", "state": "up", "drops": 0, "drops_by_topic": {},
                          "superseded": 0, "lost": {}}
    assert rec["venues_not_live"] == {} and rec["pnl"] is None


async def test_real_supervisor_restart_reaches_header_and_status_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    engine = Engine(config.load(use_user=False), mode="live", roles=())
    await engine.start()
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("boom")
        done.set()
        await asyncio.sleep(3600)

    try:
        engine._spawn("flaky", flaky)
        await asyncio.wait_for(done.wait(), 10)
        # restarted after each crash, and every crash counted
        assert runs == 3 and engine.failures == {"flaky": 2}
        st = engine.snapshot()
        assert status_record(st)["role_failures"] == {"flaky": 2}
        assert "restarts flaky×2" in _header(st, 80)
    finally:
        await engine.stop()


def test_lost_opportunities_alarm_and_shed_quotes_do_not():
    st = _state(_kafka("up"), {})
    st.bus["dropped"] = {}

    def fields():
        return {key: (p, tone, t) for p, key, t, tone in health_fields(health_facts(st))}

    # 3 quotes shed by the detector's inbox: quotes only, a plain count, no alarm.
    assert fields()["quote_drops"] == (4, "", "quotes shed 3") and "drops" not in fields()
    st.bus["subscriptions"]["opportunities/journal"] = {"depth": 0, "dropped": 2, "delivered": 5}
    # A dropped opportunity event is a real loss: red, first, and it says which.
    assert fields()["drops"] == (0, "bad", "DROPPED opportunities 2")
    assert "DROPPED opportunities 2" in _header(st, 80)
    assert status_record(st)["bus"]["drops_by_topic"] == {"quotes": 3, "opportunities": 2}


def test_journal_write_failure_is_an_alarm():
    st = _state(_kafka("up"), {})
    st.bus["dropped"] = {}
    st.bus["subscriptions"] = {}
    assert "JOURNAL" not in _header(st, 400)
    st.extra["journal"] = {"path": "/x", "appended": 9, "written": 4, "pending": 0, "dropped": 5,
                           "errors": 1, "last_error": "database or disk is full"}
    t = _header(st, 80)
    assert "JOURNAL LOST 5 database or disk" in t, t
    assert status_record(st)["journal"] == {"lost": 5, "errors": 1,
                                            "last_error": "database or disk is full"}


def test_a_venue_that_never_connected_reads_not_connected_not_syncing():
    # What a live feed reports without network: SYNCING, socket down, no message ever.
    why = "reconnecting in 14.3s (gaierror: [Errno -2] Name or service not known)"
    down = {v: VenueStatus(venue=v, state=BookState.SYNCING, reason=why, connected=False,
                           reconnects=2) for v in ("binance", "coinbase", "kraken")}
    st = dataclasses.replace(_state(_kafka("up"), {}), venues=down)
    assert venue_word(down["binance"]) == ("NOT CONNECTED", "gaierror, retry 14s")
    t = _header(st, 120)
    assert "LIVE 0/3 3 NOT CONNECTED" in t and "SYNCING" not in t, t
    # One that had data and lost its socket is reconnecting; the first attempt is connecting.
    gone = VenueStatus(venue="okx", state=BookState.STALE, reason=why, connected=False,
                       last_msg_ns=5, reconnects=1)
    assert venue_word(gone)[0] == "RECONNECTING"
    first = VenueStatus(venue="okx", state=BookState.SYNCING, reason="connecting")
    assert venue_word(first) == ("CONNECTING", "")
    st = dataclasses.replace(st, venues={"htx": down["binance"], "okx": gone})
    assert "LIVE 0/2 htx NOT CONNECTED okx RECONNECTING" in _header(st, 400)
    # Too long for the header's venues field: counted instead of cut.
    st = dataclasses.replace(st, venues={"binance": down["binance"], "okx": gone})
    assert "LIVE 0/2 1 NOT CONNECTED 1 RECONNECTING" in _header(st, 400)
    # Connected and waiting for a snapshot: that is SYNCING.
    syncing = VenueStatus(venue="okx", state=BookState.SYNCING, reason="BTC-USD: snapshot",
                          connected=True)
    assert venue_word(syncing) == ("SYNCING", "BTC-USD: snapshot")


def test_lost_reliable_messages_are_loud_and_superseded_quotes_are_not_drops():
    st = _state(_kafka("up"), {})
    st.bus["dropped"] = {}
    st.bus["superseded"] = {"quotes": 40}
    st.bus["subscriptions"]["quotes/detector"] = {"depth": 0, "dropped": 0, "superseded": 9,
                                                  "delivered": 10}
    rec = status_record(st)
    assert rec["bus"]["superseded"] == 49 and rec["bus"]["drops"] == 0
    assert "drops" not in _header(st, 400) and "DROPPED" not in _header(st, 400)
    # Counted and shown as superseded (last to get room), never as a drop.
    assert "superseded 49" in _header(st, 400) and "superseded" not in _header(st, 80)
    # The reliable outbox hit its bound: shown first, in red, even at 80 columns.
    st.bus["lost"] = {"opportunities": 2}
    fields = {key: (p, tone) for p, key, _t, tone in health_fields(health_facts(st))}
    assert fields["lost"] == (0, "bad")
    assert "LOST opportunities 2" in _header(st, 80)
    assert status_record(st)["bus"]["drops_by_topic"] == {"opportunities": 2}
