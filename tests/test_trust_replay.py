"""Issue 12 through the real path: small two-venue recordings written here,
replayed through the Gemini and Bybit adapters, the detector and its sweep on
replay time (tests/trust_fixtures.py). Hand-computed answers.

Counter-example: Bybit asks (100, 1), (100.2, 50); Gemini bids (100.5, 1),
(100.41, 50); 10 + 10 bps taker fees.
    first unit:  100.5 * 0.999 - 100 * 1.001 = 0.2995 on 100.1      -> 29.92 bps
    next units:  100.41 * 0.999 - 100.2 * 1.001 = 0.00939 on 100.3002 -> 0.936 bps
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from replay_fixtures import replay_inprocess
from test_trust_units import pair
from trust_fixtures import TwoVenueRecording, trust_cfg

from arbtui.backend.edge import marginal_bps

ASKS = [(100.0, 1.0), (100.2, 50.0)]  # bybit, we buy here
BIDS = [(100.5, 1.0), (100.41, 50.0)]  # gemini, we sell here
TOP = 0.2995 / 100.1 * 1e4  # 29.92 bps
DEEP = 0.00939 / 100.3002 * 1e4  # 0.936 bps


def counter_example(path, *, until: float = 1.0, gemini_live: bool = True):
    r = TwoVenueRecording(path)
    r.bybit(0.1, [(99.0, 5.0)], ASKS, snapshot=True)
    r.gemini_book(0.2, BIDS, [(101.5, 5.0)])
    t = 0.5
    while t <= until:
        if gemini_live:
            r.gemini_heartbeat(t)  # Gemini: connection heartbeats only, no per-book frames
        r.bybit_pong(t + 0.05)
        t += 0.5
    return r


async def events_of(path, cfg) -> list[dict]:
    run = await replay_inprocess([path], cfg=cfg)
    return run.events


@pytest.mark.parametrize(("thr", "size", "net", "limited"), [
    (2.0, 1.0, TOP, "threshold"),  # the depth at 0.94 bps is below the 2 bps hurdle
    (0.5, 51.0, (0.2995 + 50 * 0.00939) / (100.1 + 50 * 100.3002) * 1e4, "depth"),
    (-5.0, 51.0, (0.2995 + 50 * 0.00939) / (100.1 + 50 * 100.3002) * 1e4, "depth"),
])
async def test_counter_example_is_reported_at_its_threshold(tmp_path, thr, size, net, limited):
    path = counter_example(tmp_path / "c.jsonl.zst").close()
    evs = await events_of(path, trust_cfg(thr))
    opened = [e for e in evs if e["event"] == "opened"]
    assert len(opened) == 1, evs
    o = opened[0]
    assert (o["buy_venue"], o["sell_venue"], o["symbol"]) == ("bybit", "gemini", "BTC-USDT")
    assert o["size"] == pytest.approx(size)
    assert o["net_bps"] == pytest.approx(net)
    assert o["top_net_bps"] == pytest.approx(TOP)
    assert o["limited_by"] == limited and o["min_net_bps"] == thr
    # the one evaluation behind it: the levels walked, fees, flat cost
    assert [tuple(x) for x in o["buy_book"]] == ASKS and [tuple(x) for x in o["sell_book"]] == BIDS
    assert (o["buy_fee_bps"], o["sell_fee_bps"], o["flat_cost"]) == (10.0, 10.0, 0.0)
    assert o["profit"] == pytest.approx(size * o["sell_vwap"] * 0.999 - size * o["buy_vwap"] * 1.001)
    assert not [e for e in evs if e["event"] == "closed"]  # quiet tops, live feeds: still open


async def test_above_the_top_units_edge_nothing_opens(tmp_path):
    path = counter_example(tmp_path / "c.jsonl.zst").close()
    assert await events_of(path, trust_cfg(30.0)) == []


async def test_negative_threshold_reports_a_losing_pair_end_to_end(tmp_path):
    """``detector.min_net_bps = -5`` does what it says: a pair netting -3 bps opens."""
    r = TwoVenueRecording(tmp_path / "n.jsonl.zst")
    r.bybit(0.1, [(99.0, 5.0)], [(100.0, 2.0)], snapshot=True)
    # 100.17 * 0.999 - 100.1 = -0.03017 on 100.1 -> -3.01 bps
    r.gemini_book(0.2, [(100.17, 1.0)], [(101.5, 5.0)])
    path = r.close()
    evs = await events_of(path, trust_cfg(-5.0))
    assert [e["event"] for e in evs] == ["opened"]
    assert evs[0]["net_bps"] == pytest.approx((100.17 * 0.999 - 100.1) / 100.1 * 1e4)
    assert evs[0]["size"] == pytest.approx(1.0)
    assert await events_of(path, trust_cfg(0.0)) == []


async def test_quiet_top_on_a_live_book_keeps_its_window_open(tmp_path):
    """Neither top moves for 5 s (> max_quote_age_ms = 2 s) while both connections
    prove themselves (Gemini heartbeats, Bybit pongs): the window stays open until
    the edge really goes."""
    r = counter_example(tmp_path / "q.jsonl.zst", until=5.0)
    r.gemini_book(5.2, [(100.5, 0.0), (100.41, 0.0), (99.9, 1.0)], [])  # the bids leave
    r.bybit_pong(5.5)
    evs = await events_of(r.close(), trust_cfg(2.0, max_quote_age_ms=2000.0))
    assert [e["event"] for e in evs] == ["opened", "closed"], evs
    c = evs[1]
    assert c["reason"] == "edge gone"
    assert c["lifetime_ms"] == pytest.approx(5000.0)  # opened at 0.2 s, closed at 5.2 s


async def test_silent_feed_closes_its_window_within_max_quote_age(tmp_path):
    """Gemini goes silent after its book (no frames, no heartbeats) while Bybit
    keeps talking: the window closes as stale within max_quote_age_ms."""
    path = counter_example(tmp_path / "s.jsonl.zst", until=5.0, gemini_live=False).close()
    evs = await events_of(path, trust_cfg(2.0, max_quote_age_ms=2000.0))
    assert [e["event"] for e in evs] == ["opened", "closed"], evs
    c = evs[1]
    assert c["reason"].startswith("gemini book stale"), c["reason"]
    # the last proof of the Gemini book is its frame at 0.2 s: closed once 2 s have
    # passed, at the first sweep (replay time) after that
    assert 2000.0 < c["lifetime_ms"] <= 2600.0


def test_the_cli_replay_reports_the_counter_example_at_two_thresholds(tmp_path):
    """``arbtui replay FILE --max --no-ui``: what an operator (or a maintainer's
    held-out check) runs. Fees and the threshold come from a config file."""
    import json

    from replay_fixtures import replay_cli

    path = counter_example(tmp_path / "c.jsonl.zst", until=3.0).close()
    for thr, size in ((2.0, 1.0), (0.5, 51.0)):
        conf = tmp_path / f"t{thr}.toml"
        conf.write_text(f"""
[venues.gemini]
taker_fee_bps = 10.0
[venues.bybit]
taker_fee_bps = 10.0
[detector]
min_net_bps = {thr}
max_notional = 1e9
[journal]
enabled = false
""")
        r = replay_cli([path], "--max", "--no-ui", "--config", str(conf))
        assert r.returncode == 0, r.stderr
        evs = [json.loads(x) for x in r.stdout.splitlines()]
        opps = [e for e in evs if e["type"] == "opportunity"]
        assert [e["event"] for e in opps] == ["opened"], opps
        o = opps[0]
        assert o["size"] == pytest.approx(size) and o["top_net_bps"] == pytest.approx(TOP)
        assert o["buy_levels"] == [list(lv) for lv in ASKS[:int(size > 1) + 1]]
        status = [e for e in evs if e["type"] == "status"][-1]
        ages = status["venues"]["gemini"]["books"]["BTC-USDT"]
        # the top last changed at 0.2 s; the book was proven live up to the end (3 s)
        assert ages["top_age_ms"] > ages["live_age_ms"] + 2000


# --------------------------------------------------------------------- the rule as a property,
# through the real path: each example is a recording replayed through both adapters.



@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(pair())
def test_replayed_pairs_whose_top_clears_the_threshold_are_reported(sc) -> None:
    """Any direction whose top-of-book marginal net edge clears the threshold, with the
    top unit's notional above min_notional, is reported by a replay; and everything
    reported obeys the rule."""
    (a_bids, a_asks), (b_bids, b_asks), (fa, fb), thr, min_notional = sc
    with tempfile.TemporaryDirectory(prefix="arbtui-trust-") as d:
        r = TwoVenueRecording(Path(d) / "p.jsonl.zst")
        r.bybit(0.1, a_bids, a_asks, snapshot=True)
        r.gemini_book(0.2, b_bids, b_asks)
        r.bybit_pong(0.5)
        cfg = trust_cfg(thr)
        cfg.venues["bybit"].taker_fee_bps, cfg.venues["gemini"].taker_fee_bps = fa, fb
        cfg.detector.min_notional = min_notional
        evs = asyncio.run(events_of(r.close(), cfg))
    opened = {(e["buy_venue"], e["sell_venue"]): e for e in evs if e["event"] == "opened"}
    for (bv, asks, fbuy), (sv, bids, fsell) in (
            (("bybit", a_asks, fa), ("gemini", b_bids, fb)),
            (("gemini", b_asks, fb), ("bybit", a_bids, fa))):
        top = marginal_bps(asks[0][0], bids[0][0], fbuy, fsell)
        top_q = min(asks[0][1], bids[0][1])
        if top > thr + 1e-9 and top_q * asks[0][0] > min_notional:
            event("a direction clears the threshold")
            assert (bv, sv) in opened, (bv, sv, top, thr, evs)
            assert opened[(bv, sv)]["size"] >= top_q * (1 - 1e-12)
        if (bv, sv) in opened:
            o = opened[(bv, sv)]
            assert o["net_bps"] >= thr and o["size"] * o["buy_vwap"] >= min_notional
            assert top >= thr - 1e-9
