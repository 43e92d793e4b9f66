"""The demo market against its calibration (``arbtui/backend/sim/calibration.json``).

The market model is run directly (no sockets; the wire formats are the feed tests'
business) for a few simulated minutes with the default ``[sim]`` knobs, every book's
top levels go through the real ``Detector`` with the default fee table and threshold,
and the distributions are compared with the fitted parameters:

* per-second returns of every venue's mid (seconds without a dislocation): rms within 25 %
  of the fitted volatility
  (6 venues x 2 symbols x 360 s gives thousands of returns, a few % sampling error);
  a two-minute move of BTC stays in tenths of a percent;
* top-of-book spread within a tick (rounding) or 30 % of the fitted one times the venue's
  prior multiplier; level spacing and median level notional within a factor of 2; tops
  change 0.7-2x as often as the recorded ones;
* cross-venue top-of-book gross edge: typical disagreement no wider than the measured
  OKX spot/future basis (the only simultaneous pair recorded), nearly all gross edges
  below the pair's fee hurdle, and some large dislocations all the same;
* opportunities at the default threshold: a few a minute per symbol (1 to 10), with
  lifetimes of hundreds of ms (p50 between 100 and 3000 ms);
* the lively knobs (``dislocation_rate``, ``dislocation_bps``) multiply them, and a seed
  gives one market.

The fit itself (``python tools/fit_market.py``) is rerun on the recordings when
they are present and must reproduce the shipped file's fitted numbers.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from detector_fixtures import MS, Clock, mkq

from arbtui import config as configmod
from arbtui import venues
from arbtui.backend.detector import Detector
from arbtui.backend.sim.market import MarketModel, asset_params, calibration, price_tick
from arbtui.model import OppEvent

SYMBOLS = ["BTC-USD", "ETH-USD"]
#: the venues a default demo simulates
VENUES = list(configmod.load(use_user=False).sim.venues)
TICK_MS = 50.0
RECORDINGS = Path(__file__).resolve().parents[2] / "shared" / "recordings"
TOOLS = Path(__file__).resolve().parents[1] / "tools"


def run_market(seconds: float, *, seed: int = 7, **knobs) -> dict:
    cfg = configmod.load(use_user=False)
    fees = {v: vc.taker_fee_bps for v, vc in cfg.venues.items()}
    m = MarketModel(SYMBOLS, list(VENUES), seed=seed, tick_ms=TICK_MS, **knobs)
    clock = Clock(1_000_000 * MS)
    det = Detector(cfg.detector, fees, clock=clock)
    ticks_per_s = round(1000 / TICK_MS)
    mids: dict[tuple[str, str], list[float]] = {k: [] for k in m.books}
    calm: dict[tuple[str, str], list[bool]] = {k: [] for k in m.books}
    fair: dict[str, list[float]] = {s: [] for s in SYMBOLS}
    spreads: dict[tuple[str, str], list[float]] = {k: [] for k in m.books}
    gaps: dict[str, list[float]] = {s: [] for s in SYMBOLS}
    notionals: dict[str, list[float]] = {s: [] for s in SYMBOLS}
    mid_diff: list[float] = []
    tops: dict = {}
    top_changes = {s: 0 for s in SYMBOLS}
    over_hurdle = pairs_seen = 0
    big = 0
    events = []
    for t in range(int(seconds * ticks_per_s)):
        m.step()
        clock.t += int(TICK_MS * MS)
        prev_tops, tops = tops, {}
        for i, ((v, s), b) in enumerate(sorted(m.books.items())):
            bids = [(float(p), float(q)) for p, q in b.sorted_bids()[:10]]
            asks = [(float(p), float(q)) for p, q in b.sorted_asks()[:10]]
            tops[(v, s)] = (bids[0][0], asks[0][0])
            if prev_tops and prev_tops[(v, s)] != tops[(v, s)]:
                top_changes[s] += 1
            clock.t += 1000  # distinct receive times, same order every run
            events += det.on_quote(mkq(v, s, bids, asks, recv=clock.t))
            if t % ticks_per_s == 0:
                mid = (bids[0][0] + asks[0][0]) / 2
                mids[(v, s)].append(mid)
                calm[(v, s)].append(not any(d.venue == v for d in m.dislocations[s]))
                spreads[(v, s)].append((asks[0][0] - bids[0][0]) / mid * 1e4)
                gaps[s] += [(bids[j][0] - bids[j + 1][0]) / mid * 1e4 for j in range(1, 9)]
                notionals[s] += [p * q for p, q in bids + asks]
        if t % 2 == 0:
            events += det.sweep()
        if t % ticks_per_s == 0:
            for s in SYMBOLS:
                fair[s].append(m.fair[s])
        for s in SYMBOLS:
            for a in VENUES:
                for b in VENUES:
                    if a == b:
                        continue
                    ask_a = tops[(a, s)][1]
                    bid_b = tops[(b, s)][0]
                    gross = (bid_b - ask_a) / ask_a * 1e4
                    pairs_seen += 1
                    if gross >= fees[a] + fees[b]:
                        over_hurdle += 1
                    if gross >= 15.0:
                        big += 1
                    if a < b and t % 4 == 0:
                        ma = sum(tops[(a, s)]) / 2
                        mb = sum(tops[(b, s)]) / 2
                        mid_diff.append(abs(ma - mb) / ma * 1e4)
    opened = [e for e in events if e.event is OppEvent.OPENED]
    closed = [e for e in events if e.event is OppEvent.CLOSED]
    return {"mids": mids, "calm": calm, "fair": fair, "spreads": spreads, "gaps": gaps,
            "notionals": notionals, "mid_diff": mid_diff, "over_hurdle": over_hurdle,
            "pairs_seen": pairs_seen, "big": big, "opened": opened, "closed": closed,
            "minutes": seconds / 60, "books": m.books,
            "top_changes_per_s": {s: n / len(VENUES) / seconds for s, n in top_changes.items()}}


@pytest.fixture(scope="module")
def default_run() -> dict:
    return run_market(360)


def returns_bps(series: list[float], calm: list[bool] | None = None) -> list[float]:
    """Per-second log returns, bps; with ``calm``, only seconds without a dislocation at
    either end."""
    return [math.log(series[i + 1] / series[i]) * 1e4 for i in range(len(series) - 1)
            if calm is None or (calm[i] and calm[i + 1])]


def test_per_second_returns_match_fitted_volatility(default_run) -> None:
    # The recordings hold quiet seconds only, no dislocation: the seconds without one are
    # compared with the fit; the dislocations (a prior) are the tail of all seconds.
    for s in SYMBOLS:
        target = asset_params(s)["vol_bps_per_s"]
        run = default_run
        calm = [x for v in VENUES for x in returns_bps(run["mids"][(v, s)], run["calm"][(v, s)])]
        # rms, as fitted: quotes are sticky, so many quiet seconds have no move at all
        # (the recorded Coinbase BTC-USD sat on one tick for 24 s) and a median says 0
        rms = math.sqrt(statistics.fmean(x * x for x in calm))
        assert rms == pytest.approx(target, rel=0.25), (s, rms, target)
        every = [x for v in VENUES for x in returns_bps(run["mids"][(v, s)])]
        tail = sum(1 for x in every if abs(x) > 5 * target) / len(every)
        # jumps are the exception: ~0.35 dislocations/s per symbol over 6 venues, each
        # beyond 5 sigma for a second or so, is ~6-12 % of a venue's seconds
        assert tail < 0.15, (s, tail)
    # quiet-hour BTC: every two-minute move in tenths of a percent, not percents
    f = default_run["fair"]["BTC-USD"]
    moves = [abs(f[i + 120] / f[i] - 1) * 100 for i in range(0, len(f) - 120, 10)]
    assert max(moves) < 1.0, max(moves)
    assert max(moves) > 0.01  # and it does move


def test_spread_and_depth_profile_match_fit(default_run) -> None:
    priors = calibration()["priors"]
    for s in SYMBOLS:
        par = asset_params(s)
        tick_bps = price_tick(s) / 65000 * 1e4 if s.startswith("BTC") else price_tick(s) / 1900 * 1e4
        for v in VENUES:
            want = par["spread_bps"] * priors["venue_spread_mult"][v]
            got = statistics.median(default_run["spreads"][(v, s)])
            assert abs(got - want) <= max(0.3 * want, 1.01 * tick_bps), (s, v, got, want)
        gap = statistics.median(default_run["gaps"][s])
        assert par["level_gap_bps"] / 2 <= gap <= par["level_gap_bps"] * 2, (s, gap)
        # sticky quotes: a top moves about as often as the recorded ones (sweeps and
        # quotes left too far behind add a little)
        rate = default_run["top_changes_per_s"][s]
        assert par["top_changes_per_s"] * 0.7 <= rate <= par["top_changes_per_s"] * 2, (s, rate)
        notional = statistics.median(default_run["notionals"][s])
        assert par["level_notional_usd"] / 2 <= notional <= par["level_notional_usd"] * 2, (s, notional)


def test_cross_venue_gross_edges_mostly_below_fee_hurdle(default_run) -> None:
    proxy = calibration()["lead_lag_proxy"]
    typical = statistics.median(default_run["mid_diff"])
    # the venues disagree, but typically by less than the spot/future basis wandered
    assert 0.05 < typical <= (proxy["dev_bps_std"] if proxy else 1.5), typical
    share = default_run["over_hurdle"] / default_run["pairs_seen"]
    assert share < 0.005, share  # nearly every gross edge is eaten by the two taker fees
    assert default_run["big"] > 0  # ... yet larger dislocations happen


def test_net_opportunities_a_few_per_minute_with_realistic_lifetimes(default_run) -> None:
    opened, closed = default_run["opened"], default_run["closed"]
    for s in SYMBOLS:
        per_min = sum(1 for e in opened if e.symbol == s) / default_run["minutes"]
        assert 1.0 <= per_min <= 10.0, (s, per_min)
    lifetimes = sorted(e.lifetime_ms for e in closed)
    assert lifetimes, "no opportunity closed"
    assert 100 <= statistics.median(lifetimes) <= 3000, statistics.median(lifetimes)
    peaks = [e.peak_net_bps for e in closed]
    assert statistics.median(peaks) < 20  # most windows are small...
    assert max(peaks) > 10  # ... with an occasional larger one


def test_lively_knob_and_seeded_determinism() -> None:
    quiet = run_market(60, seed=3)
    lively = run_market(60, seed=3, dislocation_rate=2.0, dislocation_bps=20.0)
    assert len(lively["opened"]) >= 3 * max(1, len(quiet["opened"])), (
        len(quiet["opened"]), len(lively["opened"]))
    # same seed, same market; another seed, another market
    a = MarketModel(SYMBOLS, list(VENUES), seed=5)
    b = MarketModel(SYMBOLS, list(VENUES), seed=5)
    c = MarketModel(SYMBOLS, list(VENUES), seed=6)
    for _ in range(200):
        a.step()
        b.step()
        c.step()
    assert a.books == b.books
    assert a.books != c.books


def test_fit_reproduces_shipped_calibration(tmp_path) -> None:
    if not RECORDINGS.is_dir():
        pytest.skip(f"real recordings folder {RECORDINGS} is absent (never copied into the repo)")
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_market", TOOLS / "fit_market.py")
    fit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fit)
    out = tmp_path / "cal.json"
    assert fit.main(["--recordings", str(RECORDINGS), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["model"] == calibration()["model"]


def test_every_simulated_venue_has_its_priors() -> None:
    from arbtui.config import VENUES as ALL

    pri = calibration()["priors"]
    for name in ("venue_lag_ms", "venue_spread_mult", "venue_size_mult"):
        # A perp venue has no recording of its own and takes its exchange's spot prior.
        missing = [v for v in ALL if v not in pri[name]
                   and venues.get(v).spot_venue not in pri[name]]
        assert not missing, (name, missing, "add them in tools/fit_market.py PRIORS and refit")
