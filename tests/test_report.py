"""`arbtui report` over a journal with known contents, as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from detector_fixtures import MS, Clock, dcfg, mkq

from arbtui.backend.detector import Detector
from arbtui.backend.journal import Journal
from arbtui.commands.report import ReportError, parse_since
from arbtui.model import Fill

T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z


def make_journal(path) -> list:
    clock = Clock(T0)
    d = Detector(dcfg(), {"kraken": 0.0, "gemini": 0.0, "okx": 0.0}, clock=clock)
    evs: list = []
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    # window 1: kraken>gemini, net 100 bps, lives 40 ms
    evs += d.on_quote(mkq("gemini", "BTC-USD", [(101.0, 1.0)], [(102, 1)], recv=clock.t))
    clock.t += 40 * MS
    evs += d.on_quote(mkq("gemini", "BTC-USD", [(99.5, 1.0)], [(102, 1)], recv=clock.t))
    # window 2: kraken>okx, net 30 bps then 50 bps peak, lives 700 ms
    evs += d.on_quote(mkq("okx", "BTC-USD", [(100.3, 2.0)], [(103, 1)], recv=clock.t))
    clock.t += 300 * MS
    d.on_quote(mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0)], recv=clock.t))
    evs += d.on_quote(mkq("okx", "BTC-USD", [(100.5, 2.0)], [(103, 1)], recv=clock.t))
    clock.t += 400 * MS
    evs += d.on_quote(mkq("okx", "BTC-USD", [(99.0, 2.0)], [(103, 1)], recv=clock.t))
    fills = [
        Fill(opp_id=evs[0].id, venue="kraken", symbol="BTC-USD", side="buy", requested=1,
             filled=1, vwap=100, fee=0.0, ts_ns=T0 + 5 * MS, status="filled", fee_ccy="USD"),
        Fill(opp_id=evs[0].id, venue="gemini", symbol="BTC-USD", side="sell", requested=1,
             filled=1, vwap=101, fee=0.0, ts_ns=T0 + 9 * MS, status="filled", fee_ccy="USD",
             pnl=1.0, pnl_ccy="USD", reason="matched"),
        Fill(opp_id="x", venue="kraken", symbol="BTC-USD", side="buy", requested=1,
             filled=0.5, vwap=100, fee=0.05, ts_ns=T0 + 600 * MS, status="partial",
             fee_ccy="USD"),
        Fill(opp_id="x", venue="okx", symbol="BTC-USD", side="sell", requested=1, filled=0,
             vwap=0, fee=0, ts_ns=T0 + 610 * MS, status="rejected", fee_ccy="USD",
             reason="one-legged: kept +0.5 BTC on kraken", pnl=0.0, pnl_ccy="USD"),
    ]
    j = Journal(path, flush_ms=10)
    for e in evs + fills:
        j.append(e)
    j.close()
    return evs


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arbtui", "report", *argv], capture_output=True,
                          text=True, timeout=60, check=False, env=dict(os.environ, NO_COLOR="1"))


def test_report_json_numbers(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    evs = make_journal(path)
    assert [e.event.value for e in evs] == ["opened", "closed", "opened", "updated", "closed"]
    r = run("--journal", str(path), "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["opportunities"] == 2 and rep["opportunity_events"] == 5
    assert rep["per_venue_pair"]["kraken>gemini"]["median_lifetime_ms"] == pytest.approx(40.0)
    assert rep["per_venue_pair"]["kraken>okx"]["median_lifetime_ms"] == pytest.approx(700.0)
    # peaks: (101-100)/100 = 100 bps; okx peak (100.5-100)/100 = 50 bps
    assert rep["per_venue_pair"]["kraken>gemini"]["max_peak_net_bps"] == pytest.approx(100.0)
    assert rep["per_venue_pair"]["kraken>okx"]["max_peak_net_bps"] == pytest.approx(50.0)
    assert rep["per_symbol"]["BTC-USD"]["opportunities"] == 2
    ne = rep["net_edge_bps"]
    assert ne["counts"][ne["buckets"].index("20-50bps")] == 1
    assert ne["counts"][ne["buckets"].index("50-100bps")] == 1
    lt = rep["lifetime_ms"]
    assert lt["counts"][lt["buckets"].index("10-50ms")] == 1
    assert lt["counts"][lt["buckets"].index("500-1000ms")] == 1
    ex = rep["executions"]
    assert (ex["fills"], ex["trades"], ex["one_legged"]) == (4, 2, 1)
    assert ex["by_status"] == {"filled": 2, "partial": 1, "rejected": 1}
    assert ex["fees"] == {"USD": pytest.approx(0.05)}
    assert rep["realized_pnl"] == {"USD": 1.0}
    assert [v for _, v in rep["pnl_series"]["USD"]] == [1.0, 1.0]


def test_report_text_with_charts_and_since(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    make_journal(path)
    r = run("--journal", str(path), "--width", "80")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for s in ("OPPORTUNITIES 2", "kraken>gemini", "kraken>okx", "EXECUTIONS trades 2",
              "REALIZED PnL +1.0000 USD", "peak NET edge per opportunity",
              "opportunity lifetime", "realized PnL over time (USD)"):
        assert s in out, s
    assert "\x1b[" not in out  # NO_COLOR / not a tty: no escape codes
    # everything in the journal is from 2023: a recent window is empty
    r = run("--journal", str(path), "--since", "1h", "--json")
    assert json.loads(r.stdout)["opportunities"] == 0
    r = run("--journal", str(path), "--since", "2023-11-14T22:13:20.300", "--json")
    assert json.loads(r.stdout)["opportunities"] == 1  # only window 2 has rows after that


def test_report_errors(tmp_path) -> None:
    r = run("--journal", str(tmp_path / "missing.sqlite"))
    assert r.returncode == 2 and "no journal at" in r.stderr
    (tmp_path / "junk.sqlite").write_bytes(b"not sqlite at all" * 100)
    r = run("--journal", str(tmp_path / "junk.sqlite"))
    assert r.returncode == 2 and "not a readable arbtui journal" in r.stderr
    r = run("--journal", str(tmp_path / "missing.sqlite"), "--since", "yesterday")
    assert r.returncode == 2 and "--since 'yesterday'" in r.stderr
    with pytest.raises(ReportError):
        parse_since("5 parsecs")
    assert parse_since("2h", now_s=10_000.0) == int((10_000 - 7200) * 1e9)


def test_report_histograms_label_every_bucket() -> None:
    """Each bucket is a row of its own: label, bar, count, so no label is thinned away."""
    from arbtui.backend.detector import LIFETIME_BUCKETS_MS
    from arbtui.commands.report import NET_BUCKETS_BPS, _bucket_labels, render

    lt_labels = _bucket_labels(LIFETIME_BUCKETS_MS, "ms")
    ne_labels = _bucket_labels(NET_BUCKETS_BPS, "bps")
    # the tallest lifetime bucket is 250-500ms, the one plotext used to leave unlabelled
    lt_counts = [i + 1 for i in range(len(lt_labels))]
    lt_counts[lt_labels.index("250-500ms")] = 99
    ne_counts = [0, 3, 0, 7, 1, 0, 0, 0, 2]
    empty = {"n": 0, "min": None, "p50": None, "p90": None, "max": None}
    rep = {
        "journal": "x", "first_ts_ns": None, "last_ts_ns": None, "sessions": 1,
        "opportunity_events": 1, "opportunities": 1, "suspect": 0, "per_symbol": {},
        "per_venue_pair": {}, "realized_pnl": {}, "pnl_series": {},
        "executions": {"trades": 0, "fills": 0, "by_status": {}, "one_legged": 0, "partial": 0,
                       "unwinds": 0, "by_venue": {}, "fees": {}},
        "net_edge_bps": {**empty, "n": 13, "buckets": ne_labels, "counts": ne_counts},
        "lifetime_ms": {**empty, "n": 150, "buckets": lt_labels, "counts": lt_counts},
    }
    for width in (60, 80, 120):
        out = render(rep, width=width, color=False, charts=True)
        lines = out.splitlines()
        for title, labels, counts in (
                ("opportunity lifetime (closed windows)", lt_labels, lt_counts),
                ("peak NET edge per opportunity (bps, after fees)", ne_labels, ne_counts)):
            i = lines.index(title)
            rows = lines[i + 1:i + 1 + len(labels)]
            for row, lab, c in zip(rows, labels, counts, strict=True):
                head, _, tail = row.partition("│")
                assert head.strip() == lab, (width, row)
                assert tail.split()[-1] == str(c) if c else tail.strip() == "0", (width, row)
                assert len(row) <= width, (width, row)
            bars = [r.count("█") for r in rows]
            assert bars.index(max(bars)) == counts.index(max(counts))
            assert all((b > 0) == (c > 0) or c * 10 < max(counts) for b, c in zip(bars, counts))
