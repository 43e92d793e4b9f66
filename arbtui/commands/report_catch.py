"""The catchability section of ``arbtui report``: calibration and latency budget.

Calibration: every executed opportunity's predicted ``p_catch`` against what the
simulated executor did with it (``backend.calibration.CAUGHT_RULE``), from the
journal's ``catch_outcomes`` table: a reliability table (predicted bucket ->
observed catch rate, counts, 95 % Wilson interval of the observed rate), the
Brier score overall and per venue pair, and a plotext reliability plot.

Latency budget: per venue pair, the catch probability as a function of the
round-trip latency, from the closed windows in ``catch_windows`` (the same
estimator the detector uses, ``backend.catch.CatchStats``): the number to
decide where to colocate.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

from arbtui.backend.calibration import CAUGHT_RULE, brier, reliability
from arbtui.backend.catch_history import CatchStats, WindowRecord, latency_budget, record_of_row

#: Round-trip latencies (ms) the latency-budget table shows.
BUDGET_MS: tuple[float, ...] = (5, 10, 25, 50, 100, 250, 500, 1000)
#: Pairs drawn in the latency-budget chart (the ones with most windows).
CHART_PAIRS = 6


def build(path: Path, since_ns: int = 0, sessions: list[int] | None = None) -> dict[str, Any]:
    """The section as plain data ({} for a journal without the catch tables), of the
    given ``sessions`` only (None: all; ``report --mode`` picks them)."""
    only = ""
    if sessions is not None:  # integers from the journal's sessions table
        only = f" AND session IN ({','.join(str(int(x)) for x in sessions) or 'NULL'})"
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return {}
    try:
        try:
            outs = con.execute(
                "SELECT buy_venue, sell_venue, p_catch, caught, net_bps FROM catch_outcomes "
                f"WHERE ts_ns >= ?{only} ORDER BY seq", (since_ns,)).fetchall()
            wins = con.execute(
                "SELECT buy_venue, sell_venue, symbol, excess_bps, lifetime_ms, buy_path, "
                f"sell_path, watched_ms, ts_ns FROM catch_windows WHERE ts_ns >= ?{only} "
                "ORDER BY seq",
                (since_ns,)).fetchall()
        except sqlite3.Error:
            return {}  # a journal from before the catch tables
    finally:
        con.close()
    return summarize([(f"{b}>{s}", p, bool(c)) for b, s, p, c, _n in outs],
                     [record_of_row(w) for w in wins])


def summarize(outcomes: list[tuple[str, float, bool]], windows: list[WindowRecord]
              ) -> dict[str, Any]:
    """(pair, predicted, caught) per executed opportunity and the closed windows ->
    the section's data (also what a sweep cell reports)."""
    preds = [(p, c) for _pair, p, c in outcomes]
    by_pair: dict[str, list[tuple[float, bool]]] = {}
    for pair, p, c in outcomes:
        by_pair.setdefault(pair, []).append((p, c))
    n = len(preds)
    k = sum(c for _, c in preds)
    exp = sum(p for p, _ in preds)
    var = sum(p * (1 - p) for p, _ in preds)
    stats = CatchStats()
    for w in windows:
        stats.add(w)
    table = latency_budget(stats, BUDGET_MS)["pairs"]
    curves = latency_budget(stats)
    budget = {pair: {**v, "curve": curves["pairs"][pair]["p_catch"]} for pair, v in table.items()}
    return {
        "rule": CAUGHT_RULE,
        "executed": n,
        "caught": k,
        "predicted_caught": exp,
        # Calibration in the large: observed catches against the sum of the predictions,
        # in standard deviations of that sum (independent Bernoulli trials).
        "z": (k - exp) / math.sqrt(var) if var > 0 else None,
        "brier": brier(preds),
        # What always predicting the observed rate would score: the bar to beat.
        "brier_base_rate": (k / n) * (1 - k / n) if n else None,
        "reliability": reliability(preds),
        "brier_by_pair": {pair: {"n": len(v), "brier": brier(v),
                                 "caught": sum(c for _, c in v),
                                 "predicted": sum(p for p, _ in v)}
                          for pair, v in sorted(by_pair.items())},
        "windows": len(windows),
        "budget_ms": list(BUDGET_MS),
        "grid_ms": curves["grid_ms"],
        "latency_budget": budget,
    }


def _f(v: float | None, nd: int = 3) -> str:
    return "—" if v is None else f"{v:.{nd}f}"


def render(r: dict[str, Any]) -> list[str]:
    """The section's text lines (tables only)."""
    if not r:
        return []
    lines = ["", (f"CATCHABILITY executed {r['executed']}  caught {r['caught']}  predicted "
                  f"{r['predicted_caught']:.1f}  (z {_f(r['z'], 2)})  Brier {_f(r['brier'])}  "
                  f"(base rate {_f(r['brier_base_rate'])})")]
    lines.append(f"  {r['rule']}")
    lines.append(f"  {'predicted':<10} {'n':>5} {'mean pred':>9} {'observed':>9} "
                 f"{'95% interval':>15}")
    for b in r["reliability"]:
        if not b["n"]:
            continue
        lo, hi = b["ci95"]
        mark = "" if b["within_noise"] else "  outside"
        lines.append(f"  {b['bucket']:<10} {b['n']:>5} {b['predicted']:>9.3f} "
                     f"{b['observed']:>9.3f} {f'{lo:.2f}-{hi:.2f}':>15}{mark}")
    if not r["executed"]:
        lines.append("  (no executed opportunity carried a p_catch: nothing to calibrate yet)")
    else:
        lines.append(f"  {'venue pair (buy>sell)':<22} {'n':>5} {'caught':>6} {'pred':>6} "
                     f"{'Brier':>6}")
        for pair, v in r["brier_by_pair"].items():
            lines.append(f"  {pair:<22} {v['n']:>5} {v['caught']:>6} {v['predicted']:>6.1f} "
                         f"{_f(v['brier']):>6}")
    if r["latency_budget"]:
        head = " ".join(f"{f'{L:g}ms':>6}" for L in r["budget_ms"])
        lines.append(f"LATENCY BUDGET P(catch) by round trip, from {r['windows']} closed windows")
        lines.append(f"  {'venue pair (buy>sell)':<22} {'windows':>7} {head}")
        for pair, v in r["latency_budget"].items():
            ps = " ".join(f"{p:>6.2f}" for p in v["p_catch"])
            lines.append(f"  {pair:<22} {v['windows']:>7} {ps}")
    return lines


def charts(r: dict[str, Any], width: int, color: bool) -> list[str]:
    """The reliability plot and the latency-budget curves (plotext)."""
    if not r:
        return []
    import plotext as plt

    out: list[str] = []
    h = max(10, min(16, width // 7))

    def done() -> None:
        s = plt.build()
        out.append(s if color else plt.uncolorize(s))

    rel = [b for b in r["reliability"] if b["n"]]
    if rel:
        plt.clear_figure()
        plt.theme("pro" if color else "clear")
        plt.plotsize(width, h)
        plt.title("reliability: observed catch rate vs predicted p_catch")
        plt.plot([0, 1], [0, 1], label="perfect", marker="braille")
        plt.scatter([b["predicted"] for b in rel], [b["observed"] for b in rel],
                    label="observed", marker="o")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xlabel("predicted")
        done()
    pairs = list(r["latency_budget"].items())[:CHART_PAIRS]
    if pairs:
        plt.clear_figure()
        plt.theme("pro" if color else "clear")
        plt.plotsize(width, h)
        plt.title("latency budget: P(catch) vs round-trip latency (ms)")
        grid = [L for L in r["grid_ms"] if L <= 300]
        for pair, v in pairs:
            plt.plot(grid, v["curve"][:len(grid)], label=pair, marker="braille")
        plt.ylim(0, 1)
        plt.xlabel("round trip ms")
        done()
    return out
