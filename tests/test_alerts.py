"""Webhook alerts against a real HTTP server on 127.0.0.1 (issue 17).

The server is aiohttp's, in the test's own event loop: ``/ok`` answers 200 and
records the JSON body, ``/fail`` answers 500, ``/hang`` accepts the request and
never answers, ``/bot<token>/sendMessage`` stands in for Telegram. The roles run
on the real embedded bus; the detector is the real one.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from detector_fixtures import Clock, dcfg, mkq
from polling import until

from arbtui import config
from arbtui.backend.alerts import Alert, Alerter, HttpPoster, Webhook, payload
from arbtui.backend.bus import FILLS, OPPORTUNITIES, STATUS
from arbtui.backend.bus.embedded import EmbeddedBus
from arbtui.backend.clock import Clock as LiveClock
from arbtui.backend.clock import VirtualClock
from arbtui.backend.engine import Engine
from arbtui.backend.roles import AlertsRole, Supervisor
from arbtui.config import AlertsConfig
from arbtui.health import health_facts, health_fields
from arbtui.model import BookState, BookStatus, Fill, OppEvent, Opportunity

S = 1_000_000_000
ASKS_A = [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)]
BIDS_B = [(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)]


class FixedClock(LiveClock):
    """The live clock's waits and sleeps, with the time at ``clock.t`` (settable)."""

    def __init__(self, clock: Clock) -> None:
        self.now_ns = lambda: clock.t  # type: ignore[method-assign]


class Hooks:
    """The local webhook server: what each path received, and how it answers."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict]] = {}
        self.hits: dict[str, int] = {}
        self.hanging = 0
        self.release = asyncio.Event()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, req: web.Request) -> web.Response:
        path = req.path
        self.hits[path] = self.hits.get(path, 0) + 1
        body = await req.read()
        if path == "/fail":
            return web.Response(status=500, text="boom")
        if path == "/flaky" and self.hits[path] <= 2:
            return web.Response(status=503, text="busy")
        if path == "/slow-down" and self.hits[path] == 1:
            return web.Response(status=429, headers={"Retry-After": "0.05"})
        if path == "/bad-request":
            return web.Response(status=400, text="invalid_payload")
        if path == "/hang":
            self.hanging += 1
            try:
                await self.release.wait()  # never answers while the test runs
            finally:
                self.hanging -= 1
            return web.Response(status=200)
        self.got.setdefault(path, []).append(json.loads(body))
        return web.Response(status=200, text="ok")


@pytest.fixture
async def hooks():
    h = Hooks()
    app = web.Application()
    app.router.add_post("/{tail:.*}", h.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    h.port = site._server.sockets[0].getsockname()[1]
    yield h
    h.release.set()
    await runner.cleanup()


def opp(i: int, *, symbol: str = "BTC-USD", buy: str = "kraken", sell: str = "gemini",
        net: float = 20.0, event: OppEvent = OppEvent.OPENED, **kw) -> Opportunity:
    return Opportunity(id=f"{symbol}:{buy}>{sell}:{i}", event=event, symbol=symbol,
                       buy_venue=buy, sell_venue=sell, buy_price=100.0, sell_price=100.3,
                       gross_bps=net + 20, net_bps=net, buy_fee_bps=10, sell_fee_bps=10,
                       size=0.5, profit=net * 0.005, quote_ccy="USD", **kw)


async def start_role(cfg: AlertsConfig, clock=None) -> tuple[AlertsRole, EmbeddedBus, Supervisor]:
    bus, sup = EmbeddedBus(1000), Supervisor()
    role = AlertsRole(cfg, bus, sup, clock=clock or LiveClock())
    await bus.start()
    await role.start()
    return role, bus, sup


async def stop_role(role: AlertsRole, bus: EmbeddedBus, sup: Supervisor) -> None:
    await role.stop()
    await sup.stop()
    await bus.stop()


# --------------------------------------------------------------------------------- tests


async def test_an_opportunity_alert_reaches_the_webhook_as_json(hooks, tmp_path) -> None:
    """The whole path in one engine: quotes -> the real detector -> opportunities topic ->
    the alerts role -> POST; the record carries that window's numbers."""
    cfg = config.load(use_user=False)
    cfg.venues["kraken"].taker_fee_bps = 10.0
    cfg.venues["gemini"].taker_fee_bps = 10.0
    cfg.detector = dcfg()
    cfg.journal.enabled = False
    cfg.alerts.webhooks = [hooks.url("/ok")]
    cfg.alerts.opportunity_min_net_bps = 10.0
    clock = Clock()
    eng = Engine(cfg, roles=("detect", "alerts"), bus=EmbeddedBus(1000), clock=FixedClock(clock))
    await eng.start()
    try:
        eng.bus.publish("quotes", "BTC-USD", mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A,
                                                 recv=clock.t))
        eng.bus.publish("quotes", "BTC-USD", mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)],
                                                 recv=clock.t))
        await until(lambda: hooks.got.get("/ok"), 10, "the alert posted", every=0.005)
        o = next(e for _, e in eng.events if isinstance(e, Opportunity))
        [rec] = hooks.got["/ok"]
        assert rec["source"] == "arbtui" and rec["rule"] == "opportunity"
        assert rec["state"] == "firing" and rec["subject"] == "BTC-USD kraken>gemini"
        d = rec["data"]
        assert d["id"] == o.id and d["net_bps"] == pytest.approx(o.net_bps) and o.net_bps > 10.0
        assert d["size"] == pytest.approx(o.size) and d["profit"] == pytest.approx(o.profit)
        # every event carries the catch model's estimate (backend/catch.py); no book dump
        assert d["p_catch"] == pytest.approx(o.p_catch) and 0 <= o.p_catch <= 1
        assert d["ev"] == pytest.approx(o.ev) and "buy_book" not in d
        assert f"NET {o.net_bps:+.1f} bps" in rec["text"]
        # the server holds the POST before the client has read the 200 and counted it sent
        await until(lambda: eng.snapshot().extra["alerts"]["webhooks"][0]["sent"], 10,
                    "the webhook's answer counted", every=0.005)
        st = eng.snapshot()
        [h] = st.extra["alerts"]["webhooks"]
        assert (h["state"], h["sent"], h["target"]) == ("ok", 1, f"http://127.0.0.1:{hooks.port}")
        facts = health_facts(st)
        assert facts["alerts"]["sent"] == 1 and facts["alerts"]["failing"] == 0
    finally:
        await eng.stop()


async def test_slack_and_telegram_shapes(hooks) -> None:
    for fmt, path in (("slack", "/slack"), ("telegram", "/botTOKEN/sendMessage")):
        cfg = AlertsConfig(webhooks=[hooks.url(path)], format=fmt, telegram_chat_id="-1001234",
                           opportunity_min_net_bps=5.0)
        role, bus, sup = await start_role(cfg)
        try:
            bus.publish(OPPORTUNITIES, "BTC-USD", opp(1, p_catch=0.62, ev=0.06))
            await until(lambda p=path: hooks.got.get(p), 10, f"{fmt} posted", every=0.005)
        finally:
            await stop_role(role, bus, sup)
        [body] = hooks.got[path]
        if fmt == "slack":
            assert set(body) == {"text"}
        else:
            assert set(body) == {"chat_id", "text", "disable_web_page_preview"}
            assert body["chat_id"] == "-1001234"
        assert body["text"].startswith("arbtui opportunity: ")
        assert "NET +20.0 bps" in body["text"] and "p_catch 0.62" in body["text"]


async def test_rate_limited_and_deduplicated_per_rule(hooks) -> None:
    """20 windows -> 3 posts: one per pair within the cooldown, at most ``burst`` per
    rule; each held-back one counted, and the next post says how many."""
    clock = Clock(1_000 * S)
    cfg = AlertsConfig(webhooks=[hooks.url("/ok")], opportunity_min_net_bps=5.0,
                       cooldown_s=300.0, burst=3, per_minute=1.0)
    role, bus, sup = await start_role(cfg, FixedClock(clock))
    try:
        for i in range(5):  # the same pair reopening: one alert, 4 deduplicated
            for ev in (OppEvent.OPENED, OppEvent.UPDATED, OppEvent.UPDATED, OppEvent.CLOSED):
                bus.publish(OPPORTUNITIES, "BTC-USD", opp(i, event=ev))
        for i, sym in enumerate(f"C{k}-USD" for k in range(10)):  # 10 pairs: 2 tokens left
            bus.publish(OPPORTUNITIES, sym, opp(100 + i, symbol=sym))
        bus.publish(OPPORTUNITIES, "BTC-USD", opp(999, net=4.0, symbol="LOW-USD"))  # below
        await until(lambda: role.seen == 5 * 4 + 10 + 1, 10, "all evaluated", every=0.005)
        await until(lambda: len(hooks.got.get("/ok", [])) == 3, 10, "three posts", every=0.005)
        st = role.state()
        assert st["deduplicated"] == {"opportunity": 4}
        assert st["rate_limited"] == {"opportunity": 8} and st["suppressed"] == 12
        assert [(r["subject"], r["suppressed"]) for r in hooks.got["/ok"]] == [
            ("BTC-USD kraken>gemini", 0), ("C0-USD kraken>gemini", 4),  # the 4 reopenings
            ("C1-USD kraken>gemini", 0)]
        # A minute later the bucket holds one token: the next alert goes, saying what was held.
        clock.t += 60 * S
        bus.publish(OPPORTUNITIES, "ETH-USD", opp(500, symbol="ETH-USD"))
        await until(lambda: len(hooks.got["/ok"]) == 4, 10, "the fourth post", every=0.005)
        last = hooks.got["/ok"][-1]
        assert last["subject"] == "ETH-USD kraken>gemini" and last["suppressed"] == 8
        assert payload(Alert("opportunity", "s", "t", 0, suppressed=8), "slack") == {
            "text": "arbtui opportunity: t (+8 more held back)"}
        assert hooks.hits == {"/ok": 4}
    finally:
        await stop_role(role, bus, sup)


async def test_a_failing_webhook_never_stalls_detection(hooks, tmp_path) -> None:
    """A hanging endpoint and a 500 endpoint beside a good one: the detector emits every
    event in order, one at a time, while a request hangs; the good endpoint gets every
    alert; the failing ones retry within bounds, overflow is counted, health says so."""
    cfg = config.load(use_user=False)
    cfg.venues["kraken"].taker_fee_bps = 10.0
    cfg.venues["gemini"].taker_fee_bps = 10.0
    cfg.detector = dcfg()
    cfg.journal.enabled = False
    a = cfg.alerts
    a.webhooks = [hooks.url("/hang"), hooks.url("/fail"), hooks.url("/ok")]
    a.opportunity_min_net_bps = 10.0
    a.cooldown_s, a.burst, a.per_minute = 0.0, 1000, 6000.0
    a.timeout_s, a.retries, a.backoff_s, a.queue_size = 0.3, 2, 0.05, 3
    clock = Clock()
    eng = Engine(cfg, roles=("detect", "alerts"), bus=EmbeddedBus(1000), clock=FixedClock(clock))
    await eng.start()
    n = 25
    try:
        top = mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t)
        eng.bus.publish("quotes", "BTC-USD", top)
        for i in range(n):
            # Each step waits for its event before the next quote: if anything on the
            # event loop blocked on a webhook, this is where it would stop.
            clock.t += 1_000_000
            eng.bus.publish("quotes", "BTC-USD", mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)],
                                                     recv=clock.t))
            await until(lambda k=2 * i + 1: len(eng.events) == k, 10, f"window {i} opened",
                        every=0.005)
            clock.t += 1_000_000
            eng.bus.publish("quotes", "BTC-USD", mkq("gemini", "BTC-USD", [(99.5, 1.0)],
                                                     [(101.6, 1.0)], recv=clock.t))
            await until(lambda k=2 * i + 2: len(eng.events) == k, 10, f"window {i} closed",
                        every=0.005)
            if i == 0:
                await until(lambda: hooks.hanging, 10, "the first request hanging", every=0.005)
        events = [e for _, e in eng.events]
        assert [e.event for e in events] == [OppEvent.OPENED, OppEvent.CLOSED] * n
        assert len({e.id for e in events}) == n
        assert hooks.hanging >= 1  # all of that happened while a request hung
        await until(lambda: len(hooks.got.get("/ok", [])) == n, 10, "every alert on /ok",
                    every=0.005)
        assert [r["data"]["id"] for r in hooks.got["/ok"]] == [e.id for e in events[::2]]
        hang, fail, _ok = eng.alerts.webhooks
        await until(lambda: hang.failed >= 1 and fail.failed >= 2, 10, "failures given up",
                    every=0.005)
        st = eng.snapshot().extra["alerts"]
        by = {h["target"]: h for h in st["webhooks"]}
        assert len(by) == 1  # one host: the label never shows the path
        h_hang, h_fail, h_ok = st["webhooks"]
        assert h_ok["state"] == "ok" and h_ok["sent"] == n and h_ok["dropped"] == 0
        for h, w in ((h_hang, hang), (h_fail, fail)):
            assert h["state"] == "failing" and h["sent"] == 0
            # every alert was either tried, given up, still queued, or dropped (counted)
            assert h["dropped"] > 0
            assert h["failed"] + h["queued"] + h["dropped"] == n
            # at most 1 + retries attempts per alert taken off the queue
            assert w.attempts <= (1 + a.retries) * (h["failed"] + 1)
        assert h_fail["last_error"].startswith("HTTP 500")
        assert "timed out" in h_hang["last_error"]
        for path, w in (("/fail", fail), ("/hang", hang)):  # the server saw them (one in flight)
            assert 0 <= w.attempts - hooks.hits[path] <= 1
        fields = {k: (p, t, tone) for p, k, t, tone in health_fields(health_facts(eng.snapshot()))}
        prio, text, tone = fields["alerts"]
        # a fault: priority 0, so the header keeps it (clipped) even at 80 columns
        assert (prio, tone) == (0, "bad") and text.startswith("alerts FAIL 2/3")
    finally:
        await eng.stop()


async def test_retry_is_bounded_and_health_recovers(hooks) -> None:
    """5xx and 429 are retried (429 after its Retry-After), a 400 is not; a webhook that
    answers again is ok again."""
    cfg = AlertsConfig(retries=3, backoff_s=0.01, timeout_s=2.0)
    poster = HttpPoster()
    try:
        for path, hits, ok in (("/flaky", 3, True), ("/slow-down", 2, True),
                               ("/bad-request", 1, False)):
            w = Webhook(hooks.url(path), cfg, poster.post)
            task = asyncio.create_task(w.run())
            w.put(b'{"text": "x"}')
            await until(lambda w=w: w.sent + w.failed == 1, 10, path, every=0.005)
            task.cancel()
            assert hooks.hits[path] == hits == w.attempts and w.retries == hits - 1
            st = w.state()
            assert st["state"] == ("ok" if ok else "failing"), st
            assert st["last_error"] == ("" if ok else "HTTP 400 invalid_payload")
    finally:
        await poster.close()


async def test_venue_down_rule_on_the_virtual_clock(hooks) -> None:
    """A book not LIVE for venue_down_s: one alert after that long (virtual time), one
    when it is live again; a flap inside the cooldown is held back and counted."""
    clock = VirtualClock(1_000 * S)
    cfg = AlertsConfig(webhooks=[hooks.url("/ok")], venue_down_s=30.0, cooldown_s=300.0)
    role, bus, sup = await start_role(cfg, clock)

    async def run_to(t: int) -> None:
        while (due := clock.next_due()) is not None and due <= t:
            clock.fire_next()
            for _ in range(3):
                await asyncio.sleep(0)
        clock.advance(t)
        role.process()

    def posts() -> list[tuple[str, str]]:
        return [(r["rule"], r["state"]) for r in hooks.got.get("/ok", [])]

    try:
        t0 = clock.now
        bus.publish(STATUS, "BTC-USD", BookStatus(venue="okx", symbol="BTC-USD",
                                                  state=BookState.STALE, reason="no data",
                                                  ts_ns=t0))
        bus.publish(STATUS, "BTC-USD", BookStatus(venue="kraken", symbol="BTC-USD",
                                                  state=BookState.DISABLED, ts_ns=t0))
        await run_to(t0 + 29 * S)
        assert role.alerter.raised == {}  # 29 s: not yet
        await run_to(t0 + 31 * S)
        await until(lambda: posts() == [("venue_down", "firing")], 10, "firing posted", every=0.005)
        rec = hooks.got["/ok"][0]
        assert rec["subject"] == "okx" and rec["severity"] == "warning"
        assert rec["text"].startswith("okx not live for 3") and "STALE (no data)" in rec["text"]
        assert rec["ts_ns"] == clock.now  # the engine's (virtual) time
        bus.publish(STATUS, "BTC-USD", BookStatus(venue="okx", symbol="BTC-USD",
                                                  state=BookState.LIVE, ts_ns=clock.now))
        role.process()  # at t0 + 31 s, before the loop's next timer moves the clock
        await run_to(t0 + 40 * S)
        await until(lambda: len(posts()) == 2, 10, "resolved posted", every=0.005)
        assert posts()[1] == ("venue_down", "resolved")
        assert "okx live again after 31s" in hooks.got["/ok"][1]["text"]
        # Down again 100 s later, for 35 s: inside the cooldown, held back, no resolve.
        t1 = t0 + 100 * S
        await run_to(t1)
        bus.publish(STATUS, "ETH-USD", BookStatus(venue="okx", symbol="ETH-USD",
                                                  state=BookState.RESYNC, ts_ns=t1))
        await run_to(t1 + 35 * S)
        bus.publish(STATUS, "ETH-USD", BookStatus(venue="okx", symbol="ETH-USD",
                                                  state=BookState.LIVE, ts_ns=t1 + 35 * S))
        await run_to(t1 + 36 * S)
        assert role.state()["deduplicated"] == {"venue_down": 1}
        # Past the cooldown: sent again, saying one was held back.
        t2 = t0 + 400 * S
        await run_to(t2)
        bus.publish(STATUS, "ETH-USD", BookStatus(venue="okx", symbol="ETH-USD",
                                                  state=BookState.SYNCING, ts_ns=t2))
        await run_to(t2 + 31 * S)
        await until(lambda: len(posts()) == 3, 10, "third post", every=0.005)
        assert posts()[2] == ("venue_down", "firing") and hooks.got["/ok"][2]["suppressed"] == 1
        # The operator switches okx off (its feed stops, its books go STALE): no outage,
        # and no resolve for the open episode; back on, its books count from then.
        role.set_venue_enabled("okx", False)
        t3 = clock.now
        bus.publish(STATUS, "BTC-USD", BookStatus(venue="okx", symbol="BTC-USD",
                                                  state=BookState.STALE, ts_ns=t3))
        await run_to(t3 + 300 * S)  # off for 300 s (the cooldown passes meanwhile)
        role.set_venue_enabled("okx", True)
        await run_to(t3 + 320 * S)
        assert role.alerter.raised == {"venue_down": 3}  # nothing new
        await run_to(t3 + 331 * S)  # 31 s after it was switched back on, still not live
        await until(lambda: len(posts()) == 4, 10, "fourth post", every=0.005)
        assert hooks.got["/ok"][3]["text"] in (  # counted from the switch, not the STALE
            f"okx not live for {d}s: BTC-USD STALE, ETH-USD SYNCING" for d in (30, 31))
        assert hooks.hits == {"/ok": 4}
    finally:
        clock.close()
        await stop_role(role, bus, sup)


async def test_pnl_limits_and_one_leg_from_fills(hooks) -> None:
    cfg = AlertsConfig(webhooks=[hooks.url("/ok")], pnl_below=-10.0, pnl_above=20.0,
                       one_leg=True)
    role, bus, sup = await start_role(cfg)

    def fill(pnl: float, reason: str = "matched") -> Fill:
        return Fill(opp_id="o1", venue="kraken", symbol="BTC-USD", side="sell", requested=1.0,
                    filled=1.0, vwap=100.0, fee=0.1, ts_ns=1, status="filled", reason=reason,
                    pnl=pnl, pnl_ccy="USD")

    try:
        for p in (-4.0, -7.0, 5.0, 30.0):  # -4, -11 (loss limit), -6 (back), 24 (target)
            bus.publish(FILLS, "BTC-USD", fill(p))
        bus.publish(FILLS, "BTC-USD", fill(0.0, "one-legged: kept +0.5 BTC on kraken"))
        await until(lambda: len(hooks.got.get("/ok", [])) == 4, 10, "four posts", every=0.005)
        got = [(r["rule"], r["state"], r["data"].get("pnl")) for r in hooks.got["/ok"]]
        assert got == [("pnl_below", "firing", pytest.approx(-11.0)),
                       ("pnl_below", "resolved", pytest.approx(-6.0)),
                       ("pnl_above", "firing", pytest.approx(24.0)),
                       ("one_leg", "firing", None)]
        assert hooks.got["/ok"][0]["severity"] == "critical"
        assert "below the loss limit -10" in hooks.got["/ok"][0]["text"]
        assert "kept +0.5 BTC on kraken" in hooks.got["/ok"][3]["text"]
        assert role.alerter.pnl == {"USD": pytest.approx(24.0)}
    finally:
        await stop_role(role, bus, sup)


def test_rules_skip_estimates_not_made_yet_and_bus_down() -> None:
    """p_catch/EV thresholds skip events the catch model has not estimated (None);
    every threshold set must hold; the bus rule times the outage on the given clock."""
    al = Alerter(AlertsConfig(opportunity_min_net_bps=5.0, opportunity_min_p_catch=0.5,
                              opportunity_min_ev=0.05, bus_down_s=15.0))
    assert al.on_opportunity(opp(1), 0) == []  # p_catch, ev None
    assert al.on_opportunity(opp(2, p_catch=0.4, ev=0.1), 0) == []
    assert al.on_opportunity(opp(3, p_catch=0.6, ev=0.01), 0) == []
    assert al.on_opportunity(opp(4, p_catch=0.6, ev=0.1, suspect=True), 0) == []
    [a] = al.on_opportunity(opp(5, p_catch=0.6, ev=0.1), 0)
    assert a.data["p_catch"] == 0.6 and "EV 0.10 USD" in a.text
    assert al.tick(1 * S, "down", "kafka", "broker gone") == []
    assert al.tick(15 * S, "down", "kafka", "broker gone") == []
    [a] = al.tick(17 * S, "down", "kafka", "broker gone")
    assert (a.rule, a.severity) == ("bus_down", "critical")
    assert a.text == "bus kafka down for 16s: broker gone"
    assert al.tick(18 * S, "down", "kafka") == []  # once per outage
    [r] = al.tick(20 * S, "up", "kafka")
    assert r.state == "resolved" and r.text == "bus kafka up again after 19s"
    assert al.tick(21 * S, "stopped", "kafka") == []  # a stop is not an outage
    assert payload(r, "json")["state"] == "resolved"


@pytest.mark.parametrize("toml, key", [
    ('[alerts]\nformat = "xml"\n', "alerts.format"),
    ('[alerts]\nwebhooks = ["ftp://x"]\n', "alerts.webhooks[0]"),
    ('[alerts]\nwebhooks = ["http://h/x"]\nformat = "telegram"\n', "telegram_chat_id"),
    ("[alerts]\nopportunity_min_p_catch = 1.5\n", "alerts.opportunity_min_p_catch"),
    ("[alerts]\nvenue_down_s = -1.0\n", "alerts.venue_down_s"),
    ("[alerts]\npnl_below = 5.0\npnl_above = 1.0\n", "alerts.pnl_below"),
    ("[alerts]\nburst = 0\n", "alerts.burst"),
    ("[alerts]\nwebhook = []\n", "alerts.webhook"),
])
def test_alerts_config_errors_name_file_key_and_allowed(tmp_path, toml, key) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    with pytest.raises(config.ConfigError) as e:
        config.load(p, use_user=False)
    msg = str(e.value)
    assert str(p) in msg and key in msg and "\n" not in msg
    if key == "alerts.format":
        assert "'json', 'slack', 'telegram'" in msg


def test_a_bad_alerts_key_stops_the_cli_with_one_line_and_exit_2(tmp_path) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    p = tmp_path / "bad.toml"
    p.write_text('[alerts]\nformat = "pagerduty"\n')
    r = subprocess.run([sys.executable, "-m", "arbtui", "--config", str(p), "--no-ui"],
                       capture_output=True, text=True, timeout=60, check=False,
                       cwd=Path(__file__).resolve().parents[1],
                       env=dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg")))
    assert r.returncode == 2 and r.stdout == "" and "Traceback" not in r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "bad.toml" in line and "alerts.format" in line and "'pagerduty'" in line
    assert "'json', 'slack', 'telegram'" in line
