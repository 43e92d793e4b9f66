"""Operator control over the bus (issue 14): commands from a ``--role view`` console on the
control topic, applied by the roles that own them, acknowledged with what they applied.

The Kafka test runs the roles as separate engines (each its own KafkaBus, its own
consumers) against a real Kafka-protocol broker (tests/kafka_broker.py, or
$ARBTUI_TEST_KAFKA): a demo feed, a detector, an executor and a viewer. The Pilot test
presses ``+`` in a view-mode dashboard and checks what was posted on the control topic.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from kafka_broker import kafka_broker, kafka_config, topic_prefix  # noqa: F401
from polling import until

from arbtui.backend.bus import CONTROL, FILLS
from arbtui.backend.bus.embedded import EmbeddedBus
from arbtui.backend.engine import Engine
from arbtui.backend.roles.control import ControlDesk, threshold_text
from arbtui.model import Control, ControlAck, Fill, OppEvent, Opportunity

# ----------------------------------------------------------------------------- units


class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def monotonic(self) -> float:
        return self.t

    def now_ns(self) -> int:
        return int(self.t * 1e9)


def test_desk_pending_until_every_detector_acks_mixed_thresholds_and_unacked():
    clock = _Clock()
    desk = ControlDesk("view/1/1", clock=clock, timeout_s=5.0)
    for owner, thr in (("h/1/1", 2.0), ("h/2/1", 3.0)):
        desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner=owner,
                               applied={"min_net_bps": thr}))
    # An old statement (history read with --since) says nothing about now.
    desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner="h/0/1",
                           applied={"min_net_bps": 9.0}, ts_ns=clock.now_ns() - 60 * 10**9))
    assert desk.summary()["detectors"] == 2
    # Two detectors that disagree: the header says so instead of picking one.
    assert threshold_text(desk.summary()) == ("thr mixed 2.0/3.0", "warn")
    ctl = desk.new("threshold", {"min_net_bps": 2.5})
    desk.sent(ctl)
    assert desk.settings({})["min_net_bps"] == 2.5  # a second + starts from the pending value
    text, _ = threshold_text(desk.summary())
    assert text == "thr mixed 2.0/3.0 → +2.5 pending"
    desk.on_ack(ControlAck(control_id=ctl.id, cmd="threshold", role="detect", owner="h/1/1",
                           applied={"min_net_bps": 2.5}))
    assert [p["id"] for p in desk.summary()["pending"]] == [ctl.id]  # one of two acked
    desk.on_ack(ControlAck(control_id=ctl.id, cmd="threshold", role="detect", owner="h/2/1",
                           applied={"min_net_bps": 2.5}))
    assert desk.summary()["pending"] == []
    assert threshold_text(desk.summary()) == ("thr +2.5bps", "")
    # Nobody answers this one: after the timeout it is shown as UNACKED, not dropped.
    lost = desk.new("threshold", {"min_net_bps": 4.0})
    desk.sent(lost)
    clock.t += 5.1
    desk.sweep()
    text, tone = threshold_text(desk.summary())
    assert "+4.0 UNACKED" in text and tone == "bad"
    # A refused command says why.
    bad = desk.new("execution", {"enabled": "yes"})
    desk.sent(bad)
    desk.on_ack(ControlAck(control_id=bad.id, cmd="execution", role="execute", owner="h/3/1",
                           ok=False, error="enabled = 'yes': needs true or false"))
    assert desk.summary()["rejected"][-1]["error"].startswith("execute: enabled")


async def test_one_process_applies_commands_through_the_agent_and_acks_on_the_bus():
    """Embedded bus: a command is applied at once by the local role that owns it (the
    dashboard shows it in the next frame), published, and acknowledged on the bus."""
    from arbtui import config as configmod

    cfg = configmod.load(use_user=False)
    eng = Engine(cfg, mode="live", bus=EmbeddedBus(), roles=("detect",))
    sub = eng.bus.subscribe(CONTROL, "test")
    eng.set_threshold(7.5)
    assert eng.detector.cfg.min_net_bps == 7.5 and eng.snapshot().min_net_bps == 7.5
    ctl, ack = sub.drain()
    assert isinstance(ctl, Control) and ctl.cmd == "threshold" and ctl.args == {"min_net_bps": 7.5}
    assert isinstance(ack, ControlAck) and ack.control_id == ctl.id and ack.ok
    assert ack.role == "detect" and ack.applied["min_net_bps"] == 7.5
    eng.set_threshold(float("nan"))  # refused with a reason, the threshold kept
    (_, ack) = sub.drain()
    assert not ack.ok and "min_net_bps" in ack.error and eng.detector.cfg.min_net_bps == 7.5
    eng.set_symbol_enabled("ETH-USD", False)
    (_, ack) = sub.drain()
    assert ack.ok and ack.applied["disabled_symbols"] == ["ETH-USD"]
    assert eng.snapshot().disabled_symbols == {"ETH-USD"}
    eng.set_execution(True)  # no executor in this process: nobody acks, the flag is kept
    assert [type(m) for m in sub.drain()] == [Control] and eng.snapshot().execution_enabled


def test_agent_applies_once_per_id_only_for_the_roles_that_own_the_command():
    from arbtui.backend.roles import Supervisor
    from arbtui.backend.roles.control import ControlAgent, VenueSwitch

    bus = EmbeddedBus()
    agent = ControlAgent(bus, Supervisor(), "h/1/1")
    seen: list[tuple[str, bool]] = []
    agent.register(VenueSwitch("alerts", lambda v, on: seen.append((v, on))))
    off = Control(id="v#1", cmd="venue", args={"venue": "kraken", "enabled": False})
    (ack,) = agent.apply(off)
    assert ack.role == "alerts" and ack.applied == {"disabled_venues": ["kraken"]}
    assert agent.apply(off) == []  # a redelivery is not applied twice
    assert agent.apply(Control(id="t#1", cmd="threshold", args={"min_net_bps": 1.0})) == []
    assert agent.apply(Control(id="v#2", cmd="venue", owner="other/2/2",
                               args={"venue": "okx", "enabled": False})) == []
    assert seen == [("kraken", False)]


def _state(thr: float, off: tuple[str, ...] = ()) -> dict:
    return {"min_net_bps": thr, "max_quote_age_ms": 2000.0, "disabled_venues": list(off),
            "disabled_symbols": []}


def test_desk_resends_the_operators_last_command_to_a_role_instance_started_after_it():
    clock = _Clock()
    desk = ControlDesk("view/1/1", clock=clock)
    desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner="h/1/1",
                           applied=_state(1.0)))
    thr = desk.new("threshold", {"min_net_bps": 1.5})
    desk.sent(thr)
    off = desk.new("venue", {"venue": "kraken", "enabled": False})
    desk.sent(off)
    ex = desk.new("execution", {"enabled": True})
    desk.sent(ex)
    assert desk.on_ack(ControlAck(control_id=thr.id, cmd="threshold", role="detect",
                                  owner="h/1/1", applied=_state(1.5))) == []
    # A detector that starts now runs its config's 1.0 with kraken on: it gets both.
    out = desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner="h/2/1",
                                 applied=_state(1.0)))
    assert [(c.cmd, c.args, c.owner, c.target, c.resend_of, c.ts_ns) for c in out] == [
        ("threshold", {"min_net_bps": 1.5}, "h/2/1", "detect", thr.id, thr.ts_ns),
        ("venue", {"venue": "kraken", "enabled": False}, "h/2/1", "detect", off.id, off.ts_ns)]
    ids = [c.id for c in out] + [thr.id, off.id, ex.id]
    assert len(set(ids)) == len(ids)  # fresh ids: an agent's de-duplication keeps working
    # Only on the first statement: its next one (before the re-send lands) is no trigger.
    assert desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner="h/2/1",
                                  applied=_state(1.0))) == []
    # One that already runs the operator's settings gets nothing.
    assert desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner="h/3/1",
                                  applied=_state(1.5, ("kraken",)))) == []
    # The executor's setting goes to a new executor; a feed process that does not run the
    # venue states nothing about it, one that runs it gets the toggle.
    (c,) = desk.on_ack(ControlAck(control_id="", cmd="status", role="execute", owner="h/4/1",
                                  applied={"enabled": False, "min_net_bps": 5.0}))
    assert (c.cmd, c.args, c.target) == ("execution", {"enabled": True}, "execute")
    assert desk.on_ack(ControlAck(control_id="", cmd="status", role="feed", owner="h/5/1",
                                  applied={"venues": ["binance"], "disabled_venues": []})) == []
    (c,) = desk.on_ack(ControlAck(control_id="", cmd="status", role="feed", owner="h/6/1",
                                  applied={"venues": ["kraken"], "disabled_venues": []}))
    assert c.args == {"venue": "kraken", "enabled": False} and c.target == "feed"
    # Another viewer's newer command (read from the topic) is the one that holds now;
    # history read with --since, one process's own, and re-sends are not.
    desk.on_control(Control(id="view/2/1#1", cmd="threshold", args={"min_net_bps": 2.0},
                            sender="view/2/1", ts_ns=clock.now_ns()))
    desk.on_control(Control(id="view/2/1#0", cmd="threshold", args={"min_net_bps": 7.0},
                            ts_ns=clock.now_ns() - 60 * 10**9))
    desk.on_control(Control(id="view/2/1#2", cmd="threshold", args={"min_net_bps": 8.0},
                            owner="h/1/1", ts_ns=clock.now_ns()))
    desk.on_control(Control(id="view/3/1#1", cmd="threshold", args={"min_net_bps": 9.0},
                            resend_of="view/3/1#0", ts_ns=clock.now_ns()))
    out = desk.on_ack(ControlAck(control_id="", cmd="status", role="detect", owner="h/7/1",
                                 applied=_state(1.0, ("kraken",))))
    assert [(c.cmd, c.args, c.resend_of) for c in out] == [
        ("threshold", {"min_net_bps": 2.0}, "view/2/1#1")]
    # A refused command is no setting to hold.
    bad = desk.new("max_quote_age", {"ms": float("nan")})
    desk.sent(bad)
    desk.on_ack(ControlAck(control_id=bad.id, cmd="max_quote_age", role="detect",
                           owner="h/1/1", ok=False, error="ms = nan"))
    assert not [c for c in desk.on_ack(ControlAck(
        control_id="", cmd="status", role="detect", owner="h/8/1",
        applied=_state(2.0, ("kraken",)))) if c.cmd == "max_quote_age"]
    assert desk.summary()["resent"] == 5


def test_agent_applies_a_resend_only_over_older_settings():
    """A re-send never undoes a newer command: not one that overtook it on the topic,
    and not a second viewer's copy of the same re-send."""
    from arbtui.backend.roles import Supervisor
    from arbtui.backend.roles.control import ControlAgent, VenueSwitch

    agent = ControlAgent(EmbeddedBus(), Supervisor(), "h/2/1", publish=False)
    seen: list[tuple[str, bool]] = []
    agent.register(VenueSwitch("alerts", lambda v, on: seen.append((v, on))))

    def venue(cid: str, on: bool, ts: int, resend_of: str = "", name: str = "kraken"):
        return Control(id=cid, cmd="venue", args={"venue": name, "enabled": on}, ts_ns=ts,
                       owner="h/2/1" if resend_of else "", target="alerts" if resend_of else "",
                       resend_of=resend_of)

    # Started after "kraken off" (t=10): the re-send applies over the config's setting.
    (ack,) = agent.apply(venue("a#5", False, 10, "a#1"))
    assert ack.ok and ack.applied == {"disabled_venues": ["kraken"]}
    # A second viewer re-sends the same command: nothing newer, nothing applied twice.
    assert agent.apply(venue("b#9", False, 10, "a#1")) == []
    # The operator's newer "kraken on" (t=20), then a re-send of "off" that lost the race.
    agent.apply(venue("a#6", True, 20))
    assert agent.apply(venue("a#7", False, 10, "a#1")) == []
    assert seen == [("kraken", False), ("kraken", True)] and agent.stale_resends == 2
    # Per setting: an older re-send for another venue still applies.
    (ack,) = agent.apply(venue("a#8", False, 5, "a#2", name="okx"))
    assert ack.applied == {"disabled_venues": ["okx"]}


async def test_view_dashboard_plus_posts_a_control_and_leaves_no_local_detector_changed():
    """Pilot: ``+`` in a view-mode dashboard posts a threshold command on the control
    topic (what was posted is asserted), changes nothing locally, shows it pending, and
    shows the detector's acknowledged value once the ack arrives."""
    import ui_fixtures

    from arbtui.ui.app import ArbApp

    cfg = ui_fixtures.make_cfg()
    eng = Engine(cfg, mode="view", bus=EmbeddedBus(), roles=())
    posted = eng.bus.subscribe(CONTROL, "test")
    app = ArbApp(eng, cfg, clock=ui_fixtures.Clock())
    async with app.run_test(size=(140, 40)) as pilot:
        # A detector elsewhere states its threshold (as it does on start and periodically).
        eng.bus.publish(CONTROL, "control", ControlAck(
            control_id="", cmd="status", role="detect", owner="h/9/1",
            applied={"min_net_bps": 3.0, "disabled_venues": [], "disabled_symbols": []}))
        await until(lambda: eng.snapshot().extra["control"]["detectors"] == 1, 5, "status")
        app.dashboard.sample(force=True)
        assert "thr +3.0bps" in app.dashboard.header_widget.plain
        await pilot.press("plus")
        msgs = [m for m in posted.drain() if isinstance(m, Control)]
        assert [(m.cmd, m.args) for m in msgs] == [("threshold", {"min_net_bps": 3.5})]
        assert eng.detector.cfg.min_net_bps == cfg.detector.min_net_bps  # not applied here
        app.dashboard.sample(force=True)
        assert "thr +3.0bps → +3.5 pending" in app.dashboard.header_widget.plain
        eng.bus.publish(CONTROL, "control", ControlAck(
            control_id=msgs[0].id, cmd="threshold", role="detect", owner="h/9/1",
            applied={"min_net_bps": 3.5, "disabled_venues": [], "disabled_symbols": []}))
        await until(lambda: not eng.snapshot().extra["control"]["pending"], 5, "ack")
        app.dashboard.sample(force=True)
        plain = app.dashboard.header_widget.plain
        assert "thr +3.5bps" in plain and "pending" not in plain
        await pilot.press("x")  # execution: sent to the executors, not applied here
        msgs = [m for m in posted.drain() if isinstance(m, Control)]
        assert [(m.cmd, m.args) for m in msgs] == [("execution", {"enabled": True})]
        # Venue panels in config order, whatever order the feeds' statements arrive in.
        from arbtui.backend.bus import STATUS
        from arbtui.model import BookState, VenueStatus

        dash = app.dashboard
        for v in ("kraken", "binance"):
            eng.bus.publish(STATUS, v, VenueStatus(venue=v, state=BookState.LIVE, msg_rate=9.0))
            await until(lambda v=v: v in eng.snapshot().venues, 5, f"{v} status")
            dash.sample(force=True)
            await pilot.pause()
        assert [p.id for p in dash.venues_box.children] == ["venue-binance", "venue-kraken"]
        await app.action_quit()


async def test_viewer_venue_health_order_pnl_and_a_silent_feed(monkeypatch):
    """The viewer's own bookkeeping on the embedded bus: venue health from the feeds'
    statements in config order, PnL from fills by currency, and a feed process that
    went silent shown STALE instead of its last rate."""
    from arbtui.backend.bus import STATUS
    from arbtui.backend.roles import Market, Supervisor, ViewRole
    from arbtui.backend.roles import view as viewmod
    from arbtui.model import BookState, VenueStatus

    bus, sup = EmbeddedBus(), Supervisor()
    role = ViewRole(bus, sup, market=Market(), on_event=lambda e: None,
                    venue_order=("binance", "coinbase", "kraken"))
    await role.start()
    try:
        for v in ("kraken", "binance"):  # arrival order is not the panel order
            bus.publish(STATUS, v, VenueStatus(venue=v, state=BookState.LIVE, connected=True,
                                               msg_rate=40.0, feed_latency_ms=1.5))
        for pnl, ccy in ((2.0, "USD"), (0.0, "USD"), (1.5, "USD")):
            bus.publish(FILLS, "BTC-USD", Fill(opp_id="o", venue="binance", symbol="BTC-USD",
                                               side="sell", requested=1, filled=1, vwap=1,
                                               fee=0, ts_ns=1, status="filled", pnl=pnl,
                                               pnl_ccy=ccy))
        await until(lambda: role.fills == 3, 5, "fills read")
        st = role.venue_statuses()
        assert list(st) == ["binance", "kraken"] and st["kraken"].msg_rate == 40.0
        assert role.pnl()["pnl"] == 3.5 and role.pnl()["pnl_ccy"] == "USD"
        monkeypatch.setattr(viewmod, "FEED_SILENT_S", 0.0)
        await asyncio.sleep(0.01)
        st = role.venue_statuses()["kraken"]
        assert st.state is BookState.STALE and st.msg_rate == 0.0
        assert "no status from its feed" in st.reason
    finally:
        await role.stop()
        await sup.stop()


# ----------------------------------------------------------------------------- Kafka


@pytest.mark.kafka
async def test_view_commands_applied_and_acked_by_detector_and_executor_over_kafka(
        kafka_broker, tmp_path):  # noqa: F811
    from arbtui.commands.demo import simulator

    prefix = topic_prefix()
    extra = ('[sim]\nvenues = ["kraken", "binance", "coinbase"]\nsymbols = ["BTC-USD"]\n'
             "dislocation_rate = 8.0\ndislocation_bps = 25.0\n")

    def cfg():
        c = kafka_config(kafka_broker.bootstrap, prefix, partitions=2, extra=extra,
                         kafka_extra="snapshot_interval_s = 0.5\nowner_timeout_s = 4.0")
        c.bus.kafka.fetch_max_wait_ms = 5  # tansu waits out the whole fetch_max_wait
        c.journal.enabled = False
        c.execution.enabled = False
        c.detector.min_net_bps = 1.0
        c.execution.min_net_bps = 1.0  # every window is worth a trade: fills come fast
        return c

    engines: list[Engine] = []

    async def start(e: Engine) -> Engine:
        await e.start()
        engines.append(e)
        return e

    try:
        # The detector first: joining the consumer group is the slow part (seconds on tansu).
        det = await start(Engine(cfg(), roles=("detect",)))
        view = await start(Engine(cfg(), mode="view", roles=()))
        await asyncio.wait_for(view.bus.free_ready.wait(), 15)
        exe = await start(Engine(cfg(), roles=("execute",)))
        fcfg = cfg()
        feed = await start(Engine(fcfg, mode="demo", roles=("feed",), sim=simulator(fcfg)))

        def ctl():
            return view.snapshot().extra["control"]

        await until(lambda: ctl()["detectors"] == 1 and ctl()["executors"] == 1
                    and ctl()["feeds"] == 1, 20, "every role states its settings")
        assert ctl()["thresholds"] == [1.0] and ctl()["execution"] == [False]
        await until(lambda: any(isinstance(e, Opportunity) for _, e in view.events), 30,
                    "opportunities reach the viewer")

        # Threshold: pending at once, applied by the detector, acked; later events carry it.
        view.set_threshold(1.5)
        assert [p["cmd"] for p in ctl()["pending"]] == ["threshold"]
        assert view.snapshot().min_net_bps == 1.5
        await until(lambda: not ctl()["pending"], 10, "the threshold ack")
        assert det.detector.cfg.min_net_bps == 1.5 and ctl()["thresholds"] == [1.5]
        assert not ctl()["unacked"] and not ctl()["rejected"]
        acked_at = time.time_ns()
        await until(lambda: [e for _, e in view.events if isinstance(e, Opportunity)
                             and e.event is not OppEvent.CLOSED and e.ts_ns > acked_at], 30,
                    "an event evaluated after the threshold change")
        later = [e for _, e in view.events if isinstance(e, Opportunity)
                 and e.event is not OppEvent.CLOSED and e.ts_ns > acked_at]
        assert {e.min_net_bps for e in later} == {1.5}

        # Execution: applied by the executor, acked, and fills (with PnL) follow.
        view.set_execution(True)
        assert view.snapshot().execution_enabled is True  # pending, shown as requested
        await until(lambda: not ctl()["pending"], 10, "the execution ack")
        assert exe.execute.ex.enabled is True and ctl()["execution"] == [True]
        await until(lambda: (view.snapshot().extra["executor"].get("realized_pnl")), 40,
                    "a completed trade's PnL at the viewer")
        # The viewer's PnL is the executor's own, summed from the fills it read.
        await until(lambda: view.snapshot().extra["executor"]["realized_pnl"]
                    == exe.execute.state()["realized_pnl"], 10, "PnL equal to the executor's")
        assert any(isinstance(e, Fill) for _, e in view.events)

        # A command nobody owns times out visibly instead of hanging as pending.
        desk = view.view.desk
        desk.timeout_s = 0.5
        orphan = desk.new("threshold", {"min_net_bps": 9.0})
        orphan.owner = "nobody/0/0"
        desk.sent(orphan)
        view.bus.publish(CONTROL, "control", orphan)
        await until(lambda: ctl()["unacked"], 5, "the unacked command")
        assert "+9.0 UNACKED" in threshold_text(ctl())[0] and det.detector.cfg.min_net_bps == 1.5

        # Venue health from the feed process: rates and latency, panels in config order.
        await until(lambda: all(view.snapshot().venues.get(v) is not None
                                and view.snapshot().venues[v].msg_rate > 0
                                for v in ("kraken", "binance", "coinbase")), 10,
                    "per-venue message rates at the viewer")
        st = view.snapshot()
        order = [v for v in view.cfg.venues if v in st.venues]
        assert list(st.venues) == order and order != ["kraken", "binance", "coinbase"]
        assert any(vs.feed_latency_ms is not None for vs in st.venues.values())
        assert st.symbols[0] == "BTC-USD"  # the symbol the feed publishes, with data

        # A venue toggle: the detector drops the venue, the feed process stops its feed;
        # both acknowledge, and the viewer shows the venue disabled.
        view.set_venue_enabled("kraken", False)
        assert "kraken" in view.snapshot().disabled_venues  # pending, shown as requested
        await until(lambda: not ctl()["pending"], 10, "the venue ack")
        assert "kraken" in det.detector.disabled_venues
        await until(lambda: desk.of("feed")[0]["disabled_venues"] == ["kraken"], 10, "feed ack")
        assert not feed.feeds["kraken"].enabled and feed.feeds["binance"].enabled
        assert "kraken" in view.snapshot().disabled_venues

        # A stopping role says so: the viewer forgets it at once (no stale threshold).
        engines.remove(det)
        await det.stop()
        await until(lambda: ctl()["detectors"] == 0, 10, "the stopped detector forgotten")
        assert threshold_text(ctl())[0].startswith("thr ? (no detector)")

        # A detector started after the operator's commands runs its config (1.0, kraken
        # on) until the viewer re-sends the last threshold and venue toggle to it alone:
        # no key pressed, it ends up acking the operator's settings.
        resent = desk.resent
        det2 = await start(Engine(cfg(), roles=("detect",)))
        await until(lambda: ctl()["detectors"] == 1 and ctl()["thresholds"] == [1.5]
                    and desk.of("detect")[0]["disabled_venues"] == ["kraken"], 20,
                    "the late detector acking the operator's threshold and venue")
        assert det2.detector.cfg.min_net_bps == 1.5 and "kraken" in det2.detector.disabled_venues
        # Each applied once (a second re-send after a lost statement would be stale).
        assert desk.resent >= resent + 2 and det2.control.applied == 2
        assert threshold_text(ctl())[0].startswith("thr +1.5bps")
        assert not view.bus.stats()["lost"] and FILLS in view.bus.stats()["consumed"]
    finally:
        for e in reversed(engines):
            await asyncio.wait_for(e.stop(), 15)
