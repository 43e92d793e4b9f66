"""Catchability (issue 17): the p_catch model, its prior, the executor's min_p_catch /
min_ev, the journal's calibration rows and the report section, on a replay with
execution of a simulator recording made here (and the shared recordings when present)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import msgspec
import pytest
from replay_fixtures import execution_cfg, record_sim

from arbtui import config as configmod
from arbtui.backend import calibration, catch, catch_history
from arbtui.backend.executor import Executor
from arbtui.config import ExecutionConfig
from arbtui.model import Fill, OppEvent, Opportunity, Quote


def _opp(i: int, event=OppEvent.OPENED, net=10.0, size=1.0, t_ms=0.0, **kw) -> Opportunity:
    base = {"id": f"o{i}", "event": event, "symbol": "BTC-USD", "buy_venue": "okx",
            "sell_venue": "kraken", "buy_price": 100.0, "sell_price": 100.2, "gross_bps": 20.0,
            "net_bps": net, "buy_fee_bps": 0, "sell_fee_bps": 0, "size": size, "profit": 2.0,
            "opened_ts_ns": 0, "ts_ns": int(t_ms * 1e6), "lifetime_ms": t_ms,
            "buy_book": [(100.0, 1.0)], "sell_book": [(100.2, 1.0)], "buy_limit": 100.0,
            "sell_limit": 100.2}
    base.update(kw)
    return Opportunity(**base)


def _quote(venue, ask=100.0, bid=100.2, t_ms=0.0, size=1.0) -> Quote:
    return Quote(venue=venue, symbol="BTC-USD", bid=bid, bid_size=size, ask=ask, ask_size=size,
                 bids=[(bid, size)], asks=[(ask, size)], bid_px=str(bid), bid_qty="1",
                 ask_px=str(ask), ask_qty="1", recv_ts_ns=int(t_ms * 1e6))


def _hist(n, life, hb, hs=None):
    """``n`` windows whose buy leg filled for ``hb`` ms and sell leg for ``hs``."""
    return [catch.WindowRecord("okx", "kraken", "BTC-USD", 5.0, life, catch_history.held_path(hb),
                               catch_history.held_path(hb if hs is None else hs)) for _ in range(n)]


def test_cold_start_is_the_stated_prior_and_history_replaces_it():
    cfg = ExecutionConfig(min_net_bps=5.0, latency_ms={"okx": 50.0, "kraken": 50.0})
    m = catch.CatchModel(cfg)
    o = _opp(1)
    m.opened(o, None, None)
    # no history: the stated prior 0.5 ** (L / half-life) at the slower leg's L = 50 ms
    assert o.p_catch == pytest.approx(0.5 ** (50 / catch_history.PRIOR_HALF_LIFE_MS))
    assert o.ev == pytest.approx(o.profit * o.p_catch)
    assert o.ev_bps == pytest.approx(o.net_bps * o.p_catch)
    # 200 windows of this pair whose legs stopped holding within 10 ms: ~0
    o2 = _opp(2)
    catch.CatchModel(cfg, _hist(200, 8.0, 8.0)).opened(o2, None, None)
    assert o2.p_catch < 0.03
    # ... legs that held 1 s: ~1; one leg that fails at 20 ms is enough to miss
    o3, o4 = _opp(3), _opp(4)
    catch.CatchModel(cfg, _hist(200, 1000.0, 1000.0)).opened(o3, None, None)
    catch.CatchModel(cfg, _hist(200, 1000.0, 1000.0, 20.0)).opened(o4, None, None)
    assert o3.p_catch > 0.97 and o4.p_catch < 0.03
    # per leg: the buy leg arrives after 5 ms, the sell leg after 50: a buy book that
    # holds 30 ms is caught
    cfg.latency_ms["okx"] = 5.0
    o5 = _opp(5)
    catch.CatchModel(cfg, _hist(200, 1000.0, 30.0, 1000.0)).opened(o5, None, None)
    assert o5.p_catch > 0.97
    # jitter: arrival uniform over 50..150 ms against a sell leg holding 100 ms: ~1/2
    cfg.jitter_ms = 100.0
    o6 = _opp(6)
    catch.CatchModel(cfg, _hist(400, 1000.0, 1000.0, 100.0)).opened(o6, None, None)
    assert o6.p_catch == pytest.approx(0.5, abs=0.03)


def test_feed_latency_adds_to_the_round_trip():
    cfg = ExecutionConfig(latency_ms={"okx": 20.0, "kraken": 20.0})
    m = catch.CatchModel(cfg)

    def q(venue, delay_ms):
        return Quote(venue=venue, symbol="BTC-USD", bid=1, bid_size=1, ask=1, ask_size=1,
                     bids=[], asks=[], bid_px="1", bid_qty="1", ask_px="1", ask_qty="1",
                     venue_ts_ns=1_000_000_000, recv_ts_ns=1_000_000_000 + int(delay_ms * 1e6))
    assert m.feed_ms(q("okx", 3.0)) == 0.0  # the first sample is the floor (clock offset)
    assert m.feed_ms(q("okx", 33.0)) == pytest.approx(30.0)  # median of (3, 33): upper
    assert m.feed_ms(q("okx", 13.0)) == pytest.approx(10.0)  # median of 3, 13, 33
    assert m.feed_ms(q("okx", 500.0)) == pytest.approx(30.0)  # one late frame: a sample
    o = _opp(1)
    m.opened(o, q("okx", 33.0), q("kraken", 0.0))
    assert m._by_id["o1"].lb == pytest.approx(50.0) and m._by_id["o1"].ls == 20.0


def test_the_model_watches_each_leg_past_the_close():
    cfg = ExecutionConfig(min_net_bps=5.0, latency_ms={"okx": 20.0, "kraken": 30.0})
    m = catch.CatchModel(cfg)
    m.keep_closed = True
    o = _opp(1, net=20.0)
    m.opened(o, None, None)
    assert set(m.watched) == {("okx", "BTC-USD"), ("kraken", "BTC-USD")}
    x = m._by_id["o1"]
    assert x.horizon == catch.WATCH_ROUND_TRIPS * 30.0 + catch.WATCH_MIN_MS  # 110 ms
    m.book(("okx", "BTC-USD"), _quote("okx", ask=100.0, t_ms=10))  # still at the limit
    # the window closes (say our own order took the balance): its books are still watched
    m.event(o, OppEvent.CLOSED, int(20e6))
    m.book(("okx", "BTC-USD"), _quote("okx", ask=100.05, t_ms=30))  # past the buy limit
    m.book(("kraken", "BTC-USD"), _quote("kraken", bid=100.2, size=0.5, t_ms=45))  # too thin
    m.book(("okx", "BTC-USD"), _quote("okx", ask=99.99, t_ms=60))  # back inside the limit
    m.book(("okx", "BTC-USD"), _quote("okx", ask=101.0, t_ms=115))  # past the horizon
    assert not m.closed
    m.opened(_opp(2, net=20.0, opened_ts_ns=int(120e6)), None, None)  # time passes
    r = m.closed.popleft()
    assert r.lifetime_ms == 20.0 and r.watched_ms == x.horizon == 110.0
    assert r.buy_path == ((0.0, True), (30.0, False), (60.0, True))
    assert r.sell_path == ((0.0, True), (45.0, False))
    assert ("okx", "BTC-USD") in m.watched and m.stats.windows == 1  # o2 is watched now
    # what the record teaches: the buy leg fillable at 20 ms and again from 60 ms
    H = catch.CatchStats()
    H.add(r)
    assert H.estimate("okx", "kraken", None, 20.0, 40.0) > H.estimate("okx", "kraken", None,
                                                                      40.0, 40.0)
    # below the execution threshold at the opening: the executor sends nothing, so nothing
    # can be caught, and the window is no history for the ones that are traded
    o4 = _opp(4, net=4.0, opened_ts_ns=int(3000e6), sell_book=[(100.04, 1.0)],
              sell_price=100.04, sell_limit=100.04)
    m.opened(o4, None, None)
    m.event(o4, OppEvent.CLOSED, int(3050e6))
    assert o4.p_catch == 0.0 and o4.ev == 0.0 and "o4" not in m._by_id
    assert not [r for r in m.closed if r.ts_ns == int(3000e6)]


def test_caught_rule():
    o = _opp(1, p_catch=0.5, flat_cost=0.0)

    def leg(side, status, filled, vwap):
        return Fill(opp_id="o1", venue="okx", symbol="BTC-USD", side=side, requested=1.0,
                    filled=filled, vwap=vwap, fee=0.0, ts_ns=1, status=status)
    ok = calibration.judge(o, leg("buy", "filled", 1.0, 100.0), leg("sell", "filled", 1.0, 100.2),
                           5.0)
    assert ok.caught and ok.net_bps == pytest.approx(20.0)
    thin = calibration.judge(o, leg("buy", "filled", 1.0, 100.0),
                             leg("sell", "filled", 1.0, 100.04), 5.0)
    assert not thin.caught and thin.why.startswith("net 4.00 < 5")
    part = calibration.judge(o, leg("buy", "partial", 0.5, 100.0),
                             leg("sell", "filled", 1.0, 100.2), 5.0)
    assert not part.caught and part.why == "buy partial"
    tr = calibration.CatchOutcomes(lambda: 5.0)
    assert tr.add(o) is None
    assert tr.add(leg("sell", "filled", 1.0, 100.2)) is None
    assert tr.add(leg("buy", "filled", 1.0, 100.0)).caught


def test_executor_min_p_catch_and_min_ev():
    cfg = ExecutionConfig(enabled=True, min_net_bps=1.0, min_p_catch=0.5)
    ex = Executor(cfg, {"okx": 0.0, "kraken": 0.0}, clock=lambda: 0)
    o = _opp(1, buy_book=[(100.0, 1.0)], sell_book=[(100.2, 1.0)], buy_vwap=100.0,
             sell_vwap=100.2)
    assert ex.on_opportunity(o) == [] and ex.counters["skipped_catch"] == 1  # no estimate
    assert ex.on_opportunity(_opp(2, p_catch=0.4, buy_vwap=100.0, sell_vwap=100.2)) == []
    assert len(ex.on_opportunity(_opp(3, p_catch=0.6, buy_vwap=100.0, sell_vwap=100.2))) == 2
    # a fresh wallet: profit 0.2 x 0.6 = 0.12 < min_ev 0.15
    ex = Executor(ExecutionConfig(enabled=True, min_net_bps=1.0, min_ev=0.15),
                  {"okx": 0.0, "kraken": 0.0}, clock=lambda: 0)
    assert ex.on_opportunity(_opp(4, p_catch=0.6, buy_vwap=100.0, sell_vwap=100.2)) == []
    assert ex.counters["skipped_catch"] == 1
    assert len(ex.on_opportunity(_opp(5, p_catch=0.9, buy_vwap=100.0, sell_vwap=100.2))) == 2


@pytest.mark.parametrize(("key", "value", "allowed"), [
    ("min_p_catch", 1.5, "a probability"), ("min_p_catch", -0.1, "a probability"),
    ("min_ev", -1.0, "must be >= 0")])
def test_config_errors_name_the_key(key, value, allowed):
    raw = configmod._read_toml(configmod.default_config_path())
    raw["execution"][key] = value
    with pytest.raises(configmod.ConfigError) as e:
        configmod.validate(raw)
    assert f"key 'execution.{key}' = {value!r}" in str(e.value) and allowed in str(e.value)


async def _replay_with_journal(files, journal: Path):
    from arbtui.backend.replay import ReplayEngine

    cfg = execution_cfg()
    cfg.journal.enabled = True
    eng = ReplayEngine(cfg, [str(f) for f in files], speed=0, journal_path=str(journal))
    await eng.start()
    try:
        assert await eng.wait_finished(120)
    finally:
        await eng.stop()
    return eng


def _check_report(journal: Path):
    from arbtui.commands import report

    r = report.build(journal)
    c = r["catch"]
    text = report.render(r, color=False, charts=True, width=90)
    assert "CATCHABILITY" in text and "Brier 0." in text and "reliability" in text
    assert "mean pred" in text
    assert "LATENCY BUDGET" in text and "latency budget: P(catch)" in text
    return c


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("catch")
    rec = record_sim(d / "sim.jsonl.zst")
    journal = d / "j.sqlite"
    eng = asyncio.run(_replay_with_journal([rec], journal))
    return eng, journal, rec


def test_demo_replay_events_carry_p_catch_and_report_is_calibrated(demo):
    eng, journal, _rec = demo
    opps = [e for _, e in eng.events if isinstance(e, Opportunity)]
    assert opps and all(e.p_catch is not None and 0 <= e.p_catch <= 1 for e in opps)
    assert all(e.ev == pytest.approx(e.profit * e.p_catch) for e in opps)
    c = _check_report(journal)
    assert c["executed"] >= 20, c["executed"]
    assert c["windows"] > c["executed"] / 2
    assert 0 <= c["brier"] <= 1
    # Calibration in the large: the observed catches lie within 3.5 standard deviations of
    # the sum of the predictions (independent Bernoulli trials: sd = sqrt(sum p(1-p))).
    # Measured over 14 recordings: z spread with sd ~1.1 around -0.7 (max |z| 2.24); a
    # recording made while the machine is loaded shifts the market the model learns within
    # 5 s, hence 3.5, not 3. A model off by half (say 0.5 for a 0.25 rate, 60 trades) is at
    # |z| ~ 5.
    assert abs(c["z"]) <= 3.5, c
    # Per populated bucket (n >= 5), the mean prediction lies inside the observed rate's
    # 99.9 % Wilson interval (z = 3.29), in all buckets but at most one. A fresh recording
    # each run, ~6 buckets each: a perfect model would miss a 95 % interval somewhere in
    # about a quarter of the runs; one 99.9 % miss is allowed for the model's own
    # imperfection on a recording made under load. A model off by much misses several
    # (and |z| above).
    misses = []
    for b in c["reliability"]:
        if b["n"] >= 5:
            lo, hi = calibration.wilson(b["caught"], b["n"], z=3.29)
            if not lo <= b["predicted"] <= hi:
                misses.append(b)
    assert len(misses) <= 1, (misses, c["reliability"])
    # The dashboard's latency budget: a curve per pair on the grid, probabilities.
    curves = eng.catch.curves()
    assert curves["pairs"]
    for v in curves["pairs"].values():
        assert len(v["p_catch"]) == len(curves["grid_ms"])
        assert all(0 <= p <= 1 for p in v["p_catch"] + v["survival"])


def test_the_model_is_not_a_constant(demo):
    """A model that always says the base rate would pass calibration in the large: the
    predictions must spread across buckets."""
    _eng, journal, _rec = demo
    c = _check_report(journal)
    assert sum(1 for b in c["reliability"] if b["n"]) >= 3
    assert not math.isnan(c["predicted_caught"])


def test_shared_recordings_report(tmp_path):
    """The shared real recordings hold one venue each, recorded years apart: no two books
    can form a window, so nothing is executed. The report still prints the section, and
    says so instead of inventing a score."""
    from replay_fixtures import recording

    rec = recording("OKX.jsonl.zst")
    journal = tmp_path / "j.sqlite"
    asyncio.run(_replay_with_journal([rec], journal))
    from arbtui.commands import report

    r = report.build(journal)
    text = report.render(r, color=False, charts=False)
    assert r["catch"]["executed"] == 0 and r["catch"]["brier"] is None
    assert "CATCHABILITY executed 0" in text and "Brier —" in text
    assert "nothing to calibrate yet" in text


async def test_detail_screen_draws_the_pairs_latency_budget():
    import ui_fixtures
    from rich.console import Console
    from textual.widgets import Static

    from arbtui.ui.screens.detail import DetailScreen, latency_budget

    app, eng, _clock = ui_fixtures.make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ui_fixtures.seed_market(eng)
        app.dashboard.sample(force=True)
        row = app.dashboard.log_widget.selected()
        assert row is not None and row.last.p_catch is not None
        b, s = row.last.buy_venue, row.last.sell_venue
        for i in range(50):  # windows of this pair whose buy legs filled for 20..69 ms
            eng.catch.stats.add(catch.WindowRecord(b, s, "BTC-USD", 5.0, 100.0,
                                                   catch_history.held_path(20.0 + i),
                                                   catch_history.held_path(500.0)))
        app.dashboard.sample(force=True)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
        assert len(app.screen.query(Static)) == 2  # the evaluation, then the latency budget
        curves = app.dashboard.last_state.extra["catch"]
        c = curves["pairs"][f"{b}>{s}"]
        assert c["windows"] == 50
        # P(catch) falls from ~1 (both legs arrive in 5 ms) to ~0 past 70 ms
        grid = curves["grid_ms"]
        assert c["p_catch"][grid.index(5)] > 0.9 and c["p_catch"][grid.index(100)] < 0.1
        con = Console(width=100, record=True)
        con.print(latency_budget(row, curves))
        text = con.export_text()
        assert f"latency budget {b}>{s}: P(catch) by round trip, 50 windows" in text
        assert "round trip ms" in text and f"p_catch {row.last.p_catch:.2f}" in text


def test_history_comes_from_earlier_sessions_of_the_same_mode(tmp_path):
    from arbtui.backend.engine import Engine
    from arbtui.backend.journal import Journal

    path = tmp_path / "j.sqlite"
    for mode, n in (("demo", 3), ("live", 5)):
        model = catch.CatchModel(ExecutionConfig())
        j = Journal(path, flush_ms=5, mode=mode)
        j.catch = calibration.CatchJournal(mode, lambda: 5.0, model)
        for i in range(n):
            model.closed.append(catch.WindowRecord("okx", "kraken", "BTC-USD", 5.0, 10.0 + i,
                                                   catch_history.held_path(5.0),
                                                   ((0.0, True), (7.0, False), (9.5, True)),
                                                   300.0, i))
        j.append(_opp(i))  # the writer takes the model's windows with each batch
        assert j.flush()
        j.close()
    demo = catch_history.load_windows(path, "demo")
    assert [r.lifetime_ms for r in demo] == [10.0, 11.0, 12.0]
    assert demo[0].sell_path == ((0.0, True), (7.0, False), (9.5, True))
    assert demo[0].watched_ms == 300.0
    assert len(catch_history.load_windows(path, "live")) == 5
    assert catch_history.load_windows(tmp_path / "none.sqlite", "demo") == []
    # the report's --mode limits the catch section to that mode's sessions
    from arbtui.commands import report

    assert report.build(path, mode="demo")["catch"]["windows"] == 3
    assert report.build(path, mode="live")["catch"]["windows"] == 5
    assert report.build(path, mode="all")["catch"]["windows"] == 8
    cfg = configmod.load(use_user=False)
    cfg.journal.path = str(path)
    assert Engine(cfg, mode="demo", roles=("detect",)).catch.history_windows == 3
    assert Engine(cfg, mode="live", roles=("detect",)).catch.history_windows == 5
    # a replay learns only from its own recorded windows: the same files, the same p_catch
    assert Engine(cfg, mode="replay", roles=("detect",)).catch.history_windows == 0


def test_a_sweep_cell_reports_the_same_calibration(demo):
    """A sweep cell counts in memory what the journal's catch_outcomes hold for one replay
    of the same file and config (the replay is deterministic)."""
    from arbtui.commands import sweep

    _eng, journal, rec = demo
    cfg = execution_cfg()
    raw = msgspec.to_builtins(cfg)
    cell = sweep.run_cell([str(rec)], raw)
    from arbtui.commands import report_catch

    c = report_catch.build(journal)
    got = cell["catch"]
    assert (got["executed"], got["caught"]) == (c["executed"], c["caught"])
    assert got["brier"] == pytest.approx(c["brier"])
    table = sweep.render_table([{**cell, "k": 1}], ["k"])
    assert "caught/pred" in table and f"{got['caught']}/{got['predicted']:.1f}" in table


class _SlowModel(catch.CatchModel):
    """The reference watcher (the first implementation): every distinct quote of a watched
    book checked for every window watching it, the path recorded at each quote's time."""

    def book(self, key, q):
        bw = self.watched.get(key)
        if bw is None:
            return
        if bw.q is not None and bw.q.asks is q.asks and bw.q.bids is q.bids:
            return
        bw.q = q
        for wid in bw.ids:
            x = self._by_id[wid]
            ms = (q.recv_ts_ns - x.opened_ns) / 1e6
            if ms >= x.horizon:
                continue
            ms = max(ms, 0.0)
            if key == x.buy_key:
                leg = x.buy
                ok = catch._asks_hold(q.asks or [(q.ask, q.ask_size)], leg.limit, leg.need)
            else:
                leg = x.sell
                ok = catch._bids_hold(q.bids or [(q.bid, q.bid_size)], leg.limit, leg.need)
            if ok is not leg.ok:
                leg.ok = ok
                leg.path.append((ms, ok))

    def _settle(self, leg, bw):
        leg.done = True


@pytest.mark.parametrize(("nv", "gap_us", "jitter"), [(4, 100, 0.0), (3, 1700, 20.0)])
def test_grid_sampled_watcher_gives_the_reference_answers(nv, gap_us, jitter):
    """The watcher samples each leg's book only at the grid latencies the model reads: the
    same p_catch / ev on every event, the same counts from every window, as the reference
    that checks every quote (quotes 0.1 ms apart: many per grid step; 1.7 ms: steps
    skipped between quotes)."""
    from arbtui.backend.detector import Detector
    from benchmarks import load
    from benchmarks.e2e import bench_config

    m = load.Market(nv, 6, seed=7)
    quotes = [load.quote_of(m, mm) for mm in m.stream(4000)]
    for i, q in enumerate(quotes):
        q.recv_ts_ns = 10**15 + i * gap_us * 1000
    cfg = bench_config(m.venues)
    out = {}
    for cls in (catch.CatchModel, _SlowModel):
        clock = [0]
        det = Detector(cfg.detector, {v: 1.0 for v in m.venues}, clock=lambda c=clock: c[0])
        ex = ExecutionConfig(jitter_ms=jitter, latency_ms={m.venues[0]: 7.0, m.venues[1]: 33.0})
        det.catch = model = cls(ex)
        model.keep_closed = True
        evs = []
        for q in quotes:
            clock[0] = q.recv_ts_ns
            evs += [(e.id, e.event, e.p_catch, e.ev) for e in det.on_quote(q)]
        recs = [(r.ts_ns, r.lifetime_ms, r.watched_ms,
                 catch_history.grid_flags(r.buy_path, catch.bisect.bisect_right(catch.L_GRID_MS,
                                                                     r.watched_ms)),
                 catch_history.grid_flags(r.sell_path, catch.bisect.bisect_right(catch.L_GRID_MS,
                                                                      r.watched_ms)))
                for r in model.closed]
        out[cls] = evs, recs
    fast, slow = out[catch.CatchModel], out[_SlowModel]
    assert len(slow[1]) > 50 and len({p for *_, p, _ in slow[0]}) > 5  # windows, answers vary
    assert any(not all(f) for r in slow[1] for f in r[3:])  # legs that stopped filling
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]


@pytest.mark.parametrize(("key", "value"), [
    ("execution.min_p_catch", 0.5), ("execution.min_ev", 1.0),
    ("alerts.opportunity_min_p_catch", 0.5), ("alerts.opportunity_min_ev", 0.0)])
def test_catch_off_refuses_thresholds_on_its_numbers(key, value):
    raw = configmod._read_toml(configmod.default_config_path())
    raw["detector"]["catch"] = False
    configmod.validate(raw)  # off alone is fine
    table, _, k = key.partition(".")
    raw.setdefault(table, {})[k] = value
    with pytest.raises(configmod.ConfigError) as e:
        configmod.validate(raw)
    assert f"key '{key}' = {value!r}" in str(e.value) and "detector.catch = true" in str(e.value)
    raw["detector"]["catch"] = "no"
    with pytest.raises(configmod.ConfigError) as e:
        configmod.validate(raw)
    assert "detector.catch" in str(e.value)


def test_catch_off_means_no_model_and_no_estimates():
    from arbtui.backend.detector import Detector
    from arbtui.backend.engine import Engine
    from benchmarks import load
    from benchmarks.e2e import bench_config

    cfg = configmod.load(use_user=False)
    cfg.detector.catch = False
    eng = Engine(cfg, mode="demo", roles=("detect",))
    assert eng.catch is None and eng.detector.catch is None
    m = load.Market(3, 4, seed=7)
    bcfg = bench_config(m.venues)
    for on in (False, True):
        bcfg.detector.catch = on
        det = Detector(bcfg.detector, {v: 1.0 for v in m.venues}, clock=lambda: 0)
        det.catch = catch.model_for(bcfg)
        opps = [e for mm in m.stream(1500) for e in det.on_quote(load.quote_of(m, mm))]
        assert opps
        assert all((e.p_catch is not None) is on and (e.ev is not None) is on for e in opps)
