"""Issue 12 at the unit level: the threshold rule as a property, the executor's
sizing by the same rule, liveness in the detector and in the feed base, the
values that are refused, and the docs stating the rules in the same words."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from detector_fixtures import MS, Clock, dcfg, mkq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from arbtui.backend.detector import Detector
from arbtui.backend.edge import THRESHOLD_RULE, marginal_bps
from arbtui.backend.executor import Executor
from arbtui.backend.feeds.base import LIVE_REFRESH_NS
from arbtui.backend.feeds.gemini import GeminiFeed
from arbtui.config import MIN_QUOTE_AGE_MS, ConversionConfig, ExecutionConfig, WalletConfig
from arbtui.model import AGES_RULE, BookState, OppEvent

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------- the rule, as a property

px = st.floats(min_value=50.0, max_value=150.0, allow_nan=False).map(lambda x: round(x, 2))
qty = st.floats(min_value=0.01, max_value=20.0, allow_nan=False).map(lambda x: round(x, 3))


@st.composite
def side(draw, ascending: bool):
    top = draw(px)
    n = draw(st.integers(1, 4))
    steps = [draw(st.sampled_from((0.01, 0.1, 0.5, 2.0))) for _ in range(n - 1)]
    levels, p = [(top, draw(qty))], top
    for s in steps:
        p = round(p + s if ascending else p - s, 2)
        if p > 0:
            levels.append((p, draw(qty)))
    return levels


@st.composite
def pair(draw):
    bids_a = side(ascending=False)
    a_bids, b_bids = draw(bids_a), draw(side(ascending=False))
    a_asks = draw(side(ascending=True).filter(lambda x: True))
    b_asks = draw(side(ascending=True))
    # books are never crossed in themselves
    a_asks = [(p, q) for p, q in a_asks if p > a_bids[0][0]] or [(round(a_bids[0][0] + 0.01, 2), 1.0)]
    b_asks = [(p, q) for p, q in b_asks if p > b_bids[0][0]] or [(round(b_bids[0][0] + 0.01, 2), 1.0)]
    fees = (draw(st.sampled_from((0.0, 1.0, 10.0, 25.0))), draw(st.sampled_from((0.0, 2.5, 10.0))))
    thr = draw(st.sampled_from((-5.0, 0.0, 2.0, 10.0, 40.0)))
    min_notional = draw(st.sampled_from((0.0, 10.0, 100.0, 500.0)))
    return (a_bids, a_asks), (b_bids, b_asks), fees, thr, min_notional


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair())
def test_every_pair_whose_top_clears_the_threshold_is_reported(sc) -> None:
    """Any direction whose top-of-book marginal net edge clears the threshold, with
    the top unit's notional above min_notional, is reported; and everything
    reported obeys the rule (edge.THRESHOLD_RULE)."""
    (a_bids, a_asks), (b_bids, b_asks), (fa, fb), thr, min_notional = sc
    clock = Clock()
    d = Detector(dcfg(min_net_bps=thr, min_notional=min_notional, max_plausible_bps=1e4),
                 {"kraken": fa, "gemini": fb}, clock=clock)
    out = d.on_quote(mkq("kraken", "BTC-USD", a_bids, a_asks, recv=clock.t))
    out += d.on_quote(mkq("gemini", "BTC-USD", b_bids, b_asks, recv=clock.t))
    opened = {(o.buy_venue, o.sell_venue): o for o in out if o.event is OppEvent.OPENED}
    for (bv, asks, fbuy), (sv, bids, fsell) in (
            (("kraken", a_asks, fa), ("gemini", b_bids, fb)),
            (("gemini", b_asks, fb), ("kraken", a_bids, fa))):
        top = marginal_bps(asks[0][0], bids[0][0], fbuy, fsell)
        top_q = min(asks[0][1], bids[0][1])
        if top > thr + 1e-9 and top_q * asks[0][0] > min_notional:
            event("a direction clears the threshold")
            assert (bv, sv) in opened, (bv, sv, top, thr)
            o = opened[(bv, sv)]
            assert o.size >= top_q * (1 - 1e-12)  # at least the whole first chunk
            assert o.top_net_bps == pytest.approx(top)
        if (bv, sv) in opened:
            o = opened[(bv, sv)]
            assert o.net_bps >= thr and o.size * o.buy_vwap >= min_notional
            assert top >= thr - 1e-9  # nothing opens whose first unit misses the hurdle


# ----------------------------------------------------------------- execution, same rule

ASKS_A = [(100.0, 1.0), (100.5, 2.0), (102.0, 5.0)]
BIDS_B = [(101.5, 1.5), (101.0, 1.0), (100.0, 10.0)]


def test_execution_is_sized_by_the_same_hurdle() -> None:
    """Detector at 2 bps: 2.5 units (79.52 bps average). Execution at 80 bps takes
    only the 129.72 bps first unit: 1 @ 100.0 / 101.5; at 130 bps nothing."""
    clock = Clock()
    d = Detector(dcfg(), {"kraken": 10.0, "gemini": 10.0}, clock=clock)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], ASKS_A, recv=clock.t))
    (opp,) = d.on_quote(mkq("gemini", "BTC-USD", BIDS_B, [(101.6, 1.0)], recv=clock.t))
    assert opp.size == pytest.approx(2.5)
    cfg = ExecutionConfig(enabled=True, min_net_bps=80.0, latency_ms={}, max_notional=1e9,
                          wallets={"kraken": WalletConfig(base=0.0, quote=1e6),
                                   "gemini": WalletConfig(base=10.0, quote=0.0)})
    ex = Executor(cfg, {"kraken": 10.0, "gemini": 10.0}, clock=clock)
    buy, sell = ex.on_opportunity(opp)
    assert buy.qty == pytest.approx(1.0) and sell.qty == pytest.approx(1.0)
    assert (buy.limit, sell.limit) == (100.0, 101.5)
    ex.set_threshold(130.0)
    assert ex.on_opportunity(opp) == [] and ex.counters["skipped_threshold"] == 1


# ----------------------------------------------------------------- liveness in the detector


def test_quiet_conversion_book_stays_usable_while_live() -> None:
    """A USDT-USD book whose top never moves, refreshed by its feed: the rate holds;
    once the refreshes stop, it blocks within max_age_ms."""
    clock = Clock()
    conv = {"USDT": ConversionConfig(book="USDT-USD", venue="kraken", max_age_ms=500.0)}
    d = Detector(dcfg(quote_groups=[["USD", "USDT"]], conversions=conv),
                 {"kraken": 0.0, "binance": 0.0}, clock=clock)
    usdt = mkq("kraken", "USDT-USD", [(0.9899, 1e6)], [(0.9901, 1e6)], recv=clock.t)
    d.on_quote(usdt)
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    (o,) = d.on_quote(mkq("binance", "BTC-USDT", [(102.0, 1.0)], [(103, 1)], recv=clock.t))
    assert o.rate == pytest.approx(0.99)
    for _ in range(8):  # 2 s of refreshes, 250 ms apart: same levels, newer liveness
        clock.t += 250 * MS
        usdt2 = mkq("kraken", "USDT-USD", [(0.9899, 1e6)], [(0.9901, 1e6)], recv=usdt.recv_ts_ns)
        usdt2.bids, usdt2.asks, usdt2.live_ts_ns = usdt.bids, usdt.asks, clock.t
        assert d.on_quote(usdt2) == []
        # the BTC books are refreshed too (their feeds are live)
        for v, s, b, a in (("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)]),
                           ("binance", "BTC-USDT", [(102.0, 1.0)], [(103, 1)])):
            q = mkq(v, s, b, a, recv=1_000 * MS)
            q.live_ts_ns = clock.t
            d.on_quote(q)
        assert d.sweep() == [] and len(d.open) == 1
    assert d.blocked_comparisons() == []
    clock.t += 501 * MS  # the conversion feed went silent
    (c,) = d.sweep()
    assert "USDT-USD on kraken not live for 501 ms" in c.reason


def test_min_quote_age_is_twice_the_refresh_cadence() -> None:
    assert MIN_QUOTE_AGE_MS * 1e6 == 2 * LIVE_REFRESH_NS


# ----------------------------------------------------------------- liveness in the feed base


def test_feed_republishes_an_unchanged_book_while_its_connection_talks() -> None:
    got: list = []
    f = GeminiFeed(["BTC-USD", "ETH-USD"], got.append, quote_depth=1)
    t = 10**18
    f.feed_frame('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100","1"],'
                 '["sell","101","1"]]}', t)
    assert len(got) == 1 and got[0].live_ts_ns == got[0].recv_ts_ns == t
    # Gemini sends connection heartbeats only: they prove every LIVE book on it
    f.feed_frame('{"type":"heartbeat"}', t + 100 * MS)  # within the cadence: nothing
    assert len(got) == 1
    f.feed_frame('{"type":"heartbeat"}', t + 300 * MS)
    assert len(got) == 2
    r = got[1]
    # same levels (the very lists), same top time, newer liveness
    assert r.bids is got[0].bids and r.asks is got[0].asks
    assert (r.recv_ts_ns, r.live_ts_ns) == (t, t + 300 * MS)
    # a change below the quoted depth (1 level) is a frame for this book: a refresh
    f.feed_frame('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","99","5"]]}',
                 t + 600 * MS)
    assert len(got) == 3 and got[2].bids is got[0].bids and got[2].live_ts_ns == t + 600 * MS
    # a change of the top is a new quote, whose two times agree again
    f.feed_frame('{"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","100.5","1"]]}',
                 t + 700 * MS)
    assert got[3].bid == 100.5 and got[3].recv_ts_ns == got[3].live_ts_ns == t + 700 * MS
    # a book that is not LIVE is never refreshed, whatever the connection says
    f.books["BTC-USD"].state = BookState.RESYNC
    f.feed_frame('{"type":"heartbeat"}', t + 2000 * MS)
    assert len(got) == 4
    assert f.counters["live_refreshes"] == 2


def _quiet_books(n: int, gap_ms: int, seconds: float) -> tuple[dict, list[int]]:
    """n quiet books on one Gemini connection whose frames come every gap_ms:
    publish times per book, and how many books each frame re-published."""
    syms = [f"C{i}-USD" for i in range(n)]
    got: list = []
    f = GeminiFeed(syms, got.append, quote_depth=1, symbol_map={s: s.replace("-", "") for s in syms})
    t = 10**18
    for s in syms:
        vs = s.replace("-", "")
        f.feed_frame(f'{{"type":"l2_updates","symbol":"{vs}","changes":[["buy","100","1"],'
                     '["sell","101","1"]]}', t)
    per_frame = []
    for k in range(1, int(seconds * 1000 / gap_ms)):
        before = len(got)
        f.feed_frame('{"type":"heartbeat"}', t + k * gap_ms * MS)
        per_frame.append(len(got) - before)
    times: dict = {}
    for q in got:
        times.setdefault(q.symbol, []).append(q.live_ts_ns)
    return times, per_frame


def test_connection_refreshes_are_spread_and_still_within_twice_the_cadence() -> None:
    """A busy connection's quiet books are re-published each at its own phase (a burst
    of every quiet book at once queued behind itself on the Kafka path), each still at
    least LIVE_REFRESH_NS and under 2 x LIVE_REFRESH_NS after its last publish; a
    connection whose frames are far apart refreshes every due book at once, as before."""
    times, per_frame = _quiet_books(40, 5, 3.0)
    gaps = [b - a for ts in times.values() for a, b in itertools.pairwise(ts)]
    assert len(times) == 40 and min(len(ts) for ts in times.values()) >= 7
    assert min(gaps) >= LIVE_REFRESH_NS and max(gaps) < 2 * LIVE_REFRESH_NS
    assert max(per_frame) <= 20  # all 40 at once before the phases
    times, per_frame = _quiet_books(40, 300, 3.0)
    gaps = {b - a for ts in times.values() for a, b in itertools.pairwise(ts)}
    assert gaps == {300 * MS} and set(per_frame) == {40}


# ----------------------------------------------------------------- refused values


def _arbtui(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp / "c"), XDG_STATE_HOME=str(tmp / "s"))
    return subprocess.run([sys.executable, "-m", "arbtui", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=str(REPO), check=False)


@pytest.mark.parametrize(("args", "needle"), [
    (("--no-ui", "--demo", "--duration", "-1"), "--duration -1: allowed: a number of seconds > 0"),
    (("--no-ui", "--demo", "--duration", "0"), "--duration 0: allowed"),
    (("replay", "nothing.jsonl.zst", "--speed", "0"), "--speed 0: allowed: > 0"),
    (("replay", "nothing.jsonl.zst", "--speed", "-2"), "--speed -2: allowed: > 0"),
    (("record", "--demo", "--duration", "-1", "--out", "x.jsonl.zst"), "--duration -1: allowed"),
    (("feed", "--demo", "--status-interval", "0"), "--status-interval 0: allowed: >= 0.1"),
])
def test_flag_values_that_would_not_do_what_they_say_are_refused(tmp_path, args, needle):
    r = _arbtui(*args, tmp=tmp_path)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(("toml", "key"), [
    ("[execution]\nmin_net_bps = -1.0\n", "execution.min_net_bps"),
    ("[headless]\nstatus_interval_s = 0.0\n", "headless.status_interval_s"),
])
def test_config_values_that_would_not_do_what_they_say_exit_2(tmp_path, toml, key):
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    r = _arbtui("--no-ui", "--demo", "--duration", "1", "--config", str(p), tmp=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and f"'{key}'" in lines[0], r.stderr


# ----------------------------------------------------------------- the same words everywhere


def _words(text: str) -> str:
    return " ".join(text.replace("#", " ").replace(">", " ").split())


@pytest.mark.parametrize("rule", [THRESHOLD_RULE, AGES_RULE])
def test_readme_config_and_help_state_the_rules_in_the_same_words(rule):
    assert _words(rule) in _words((REPO / "README.md").read_text())
    assert _words(rule) in _words((REPO / "config.toml").read_text())
    from arbtui.backend import edge

    if rule is THRESHOLD_RULE:
        assert _words(rule) in _words(edge.__doc__)


async def test_help_screen_shows_both_rules():
    from textual.app import App
    from textual.widgets import Static

    from arbtui.ui.screens.help import HelpScreen

    class _A(App):
        async def on_mount(self) -> None:
            await self.push_screen(HelpScreen())

    app = _A()
    async with app.run_test(size=(100, 60)) as pilot:
        await pilot.pause()
        text = " ".join(str(s.render()) for s in app.screen.query(Static))
    assert _words(THRESHOLD_RULE) in _words(text) and _words(AGES_RULE) in _words(text)
