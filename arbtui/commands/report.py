"""``arbtui report``: what the journal says happened, in the terminal or as JSON.

Reads the SQLite journal (never writes it; it may be open by a running arbtui,
which WAL allows) and summarizes the sessions of one mode (live by default; demo,
replay or all with ``--mode``): opportunities per symbol and venue pair,
net-edge and lifetime distributions, executions, and realized PnL over time,
with plotext charts. ``--json`` prints one JSON document for machines.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import itertools
import json
import os
import re
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from arbtui.backend.detector import LIFETIME_BUCKETS_MS
from arbtui.backend.journal import session_modes
from arbtui.commands import report_catch

#: Upper edges of the net-edge histogram buckets, bps (NET, after fees).
NET_BUCKETS_BPS: tuple[float, ...] = (0, 2, 5, 10, 20, 50, 100, 300)

_DUR = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReportError(Exception):
    pass


def parse_since(text: str, now_s: float | None = None) -> int:
    """``30m``, ``2h``, ``1d``, or an ISO timestamp (UTC when no zone) -> epoch ns."""
    now_s = time.time() if now_s is None else now_s
    m = _DUR.match(text.strip())
    if m:
        return int((now_s - float(m.group(1)) * _UNIT_S[m.group(2)]) * 1e9)
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"--since {text!r}: use a duration like 30m, 2h, 1d or an ISO time "
                          "like 2026-11-25T20:00") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1e9)


def _bucket_labels(edges: tuple[float, ...], unit: str) -> list[str]:
    labels = [f"<={edges[0]:g}{unit}"]
    labels += [f"{a:g}-{b:g}{unit}" for a, b in itertools.pairwise(edges)]
    labels.append(f">{edges[-1]:g}{unit}")
    return labels


def _hist(values: list[float], edges: tuple[float, ...]) -> list[int]:
    h = [0] * (len(edges) + 1)
    for v in values:
        h[bisect.bisect_left(edges, v)] += 1
    return h


def _dist(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "min": None, "p50": None, "p90": None, "max": None, "mean": None}
    s = sorted(values)
    return {"n": len(s), "min": s[0], "p50": statistics.median(s),
            "p90": s[min(len(s) - 1, int(0.9 * len(s)))], "max": s[-1],
            "mean": statistics.fmean(s)}


REPORT_MODES = ("live", "demo", "replay", "all")


def _mode_filter(con: sqlite3.Connection, mode: str) -> tuple[str, dict[str, int], list[int]]:
    """(SQL clause limiting rows to ``mode``'s sessions, sessions per mode in the file,
    the sessions kept). Session ids are integers read from the file itself."""
    modes = session_modes(con)
    per_mode: dict[str, int] = {}
    for m in modes.values():
        per_mode[m] = per_mode.get(m, 0) + 1
    if mode == "all":
        return "", dict(sorted(per_mode.items())), sorted(modes)
    keep = sorted(s for s, m in modes.items() if m == mode)
    return (f" AND session IN ({','.join(str(int(s)) for s in keep) or 'NULL'})",
            dict(sorted(per_mode.items())), keep)


def build(path: Path, since_ns: int = 0, mode: str = "all") -> dict[str, Any]:
    """Everything the report shows, as plain data (the --json document): the sessions of
    ``mode`` (live, demo, replay) in the journal at ``path``, or ``all`` of them."""
    if not path.is_file():
        raise ReportError(f"no journal at {path} (run arbtui with [journal] enabled, or pass "
                          "--journal PATH)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        con.execute("SELECT 1 FROM opportunities LIMIT 1")
        where, per_mode, _kept = _mode_filter(con, mode)
    except sqlite3.Error as e:
        raise ReportError(f"{path}: not a readable arbtui journal ({e})") from None
    # A journal written before opportunity kinds (issue 18) has no kind column (read
    # only here, so it is not migrated): every window in it was a spot window.
    cols = {c[1] for c in con.execute("PRAGMA table_info(opportunities)")}
    kcols = ("o.kind, o.basis_bps, o.carry_apr" if "kind" in cols else
             "'spot', NULL, NULL")
    # The newest row of each opportunity carries its final peak and lifetime.
    rows = con.execute(
        "SELECT o.opp_id, o.symbol, o.sell_symbol, o.buy_venue, o.sell_venue, o.event, "
        "o.net_bps, o.peak_net_bps, o.gross_bps, o.lifetime_ms, o.peak_profit, o.quote_ccy, "
        f"o.suspect, o.ts_ns, {kcols} FROM opportunities o JOIN (SELECT opp_id, max(seq) AS s"
        " FROM opportunities WHERE ts_ns >= ?" + where + " GROUP BY opp_id) last ON o.seq = last.s",
        (since_ns,)).fetchall()
    n_events = con.execute("SELECT count(*) FROM opportunities WHERE ts_ns >= ?" + where,
                           (since_ns,)).fetchone()[0]
    per_symbol: dict[str, dict[str, Any]] = {}
    per_pair: dict[str, dict[str, Any]] = {}
    per_kind: dict[str, dict[str, Any]] = {}
    kind_of: dict[str, str] = {}
    nets: list[float] = []
    lifetimes: list[float] = []
    suspect = 0
    for (oid, sym, ssym, bv, sv, ev, net, peak, _gross, life, pprofit, ccy, sus, _ts, kind,
         bbps, carry) in rows:
        kind_of[oid] = kind
        peak = max(peak or net, net)
        nets.append(peak)
        if sus:
            suspect += 1
        if ev == "closed":
            lifetimes.append(life)
        label = sym if ssym in ("", sym) else f"{sym}/{ssym}"
        for table, key in ((per_symbol, label), (per_pair, f"{bv}>{sv}"), (per_kind, kind)):
            r = table.setdefault(key, {"opportunities": 0, "closed": 0, "peak_net_bps": [],
                                       "lifetime_ms": [], "peak_profit": {}})
            r["opportunities"] += 1
            r["peak_net_bps"].append(peak)
            if ev == "closed":
                r["closed"] += 1
                r["lifetime_ms"].append(life)
            r["peak_profit"][ccy or "?"] = r["peak_profit"].get(ccy or "?", 0.0) + (pprofit or 0.0)
        k = per_kind[kind]
        if bbps is not None:
            k.setdefault("basis_bps", []).append(bbps)
        if carry is not None:
            k.setdefault("carry_apr", []).append(carry)
    for r in per_kind.values():
        # the basis and annualized carry (edge.py) as the windows last showed them
        for col in ("basis_bps", "carry_apr"):
            if col in r:
                xs = r.pop(col)
                r[f"median_{col}"] = statistics.median(xs)
    for table in (per_symbol, per_pair, per_kind):
        for r in table.values():
            pk, lt = r.pop("peak_net_bps"), r.pop("lifetime_ms")
            r["median_peak_net_bps"] = statistics.median(pk) if pk else None
            r["max_peak_net_bps"] = max(pk) if pk else None
            r["median_lifetime_ms"] = statistics.median(lt) if lt else None
    # What the detector expected when each window opened (the executor trades on
    # that event): its size and profit, to compare with what the fills realized.
    opened = {oid: (size, profit, bv, sv, ccy) for oid, size, profit, bv, sv, ccy in con.execute(
        "SELECT opp_id, size, profit, buy_venue, sell_venue, quote_ccy FROM opportunities "
        "WHERE event = 'opened' AND ts_ns >= ?" + where, (since_ns,))}
    fills = con.execute(
        "SELECT ts_ns, opp_id, venue, side, kind, filled, requested, fee, fee_ccy, status, "
        "reason, pnl, pnl_ccy FROM fills WHERE ts_ns >= ?" + where + " ORDER BY ts_ns, seq",
        (since_ns,)).fetchall()
    by_status: dict[str, int] = {}
    by_venue: dict[str, dict[str, int]] = {}
    fees: dict[str, float] = {}
    pnl: dict[str, float] = {}
    series: dict[str, list[tuple[int, float]]] = {}
    one_legged = partial_trades = unwinds = 0
    traded = set()
    pnl_by_pair: dict[str, dict[str, float]] = {}
    pnl_by_kind: dict[str, dict[str, float]] = {}
    expected: dict[str, float] = {}
    for ts, oid, venue, side, kind, _filled, req, fee, fee_ccy, status, reason, p, pccy in fills:
        traded.add(oid)
        o = opened.get(oid)
        if o is not None and kind == "leg" and side == "buy" and o[0]:
            # The detected profit of the part the executor sent (wallets and
            # max_notional may have sized it under the detector's size).
            size, profit, _bv, _sv, occy = o
            expected[occy or "?"] = expected.get(occy or "?", 0.0) + profit * req / size
        by_status[status] = by_status.get(status, 0) + 1
        v = by_venue.setdefault(venue, {"buy": 0, "sell": 0})
        v[side] = v.get(side, 0) + 1
        if fee:
            fees[fee_ccy or "?"] = fees.get(fee_ccy or "?", 0.0) + fee
        if kind == "unwind":
            unwinds += 1
        if reason.startswith("one-legged"):
            one_legged += 1
        elif reason.startswith("partial"):
            partial_trades += 1
        if pccy:
            pnl[pccy] = pnl.get(pccy, 0.0) + p
            series.setdefault(pccy, []).append((ts, pnl[pccy]))
            pair = f"{o[2]}>{o[3]}" if o is not None else "?"
            pp = pnl_by_pair.setdefault(pair, {})
            pp[pccy] = pp.get(pccy, 0.0) + p
            pk = pnl_by_kind.setdefault(kind_of.get(oid, "?"), {})
            pk[pccy] = pk.get(pccy, 0.0) + p
    first = con.execute("SELECT min(ts_ns), max(ts_ns), count(DISTINCT session) FROM "
                        "opportunities WHERE ts_ns >= ?" + where, (since_ns,)).fetchone()
    con.close()
    return {
        "journal": str(path),
        "mode": mode,
        # Every session in the file by mode, so a report of one mode says what it left out.
        "sessions_by_mode": per_mode,
        "since_ns": since_ns,
        "first_ts_ns": first[0],
        "last_ts_ns": first[1],
        "sessions": first[2],
        "opportunity_events": n_events,
        "opportunities": len(rows),
        "suspect": suspect,
        "per_symbol": dict(sorted(per_symbol.items())),
        "per_venue_pair": dict(sorted(per_pair.items())),
        "per_kind": dict(sorted(per_kind.items())),
        "net_edge_bps": {**_dist(nets), "buckets": _bucket_labels(NET_BUCKETS_BPS, "bps"),
                         "counts": _hist(nets, NET_BUCKETS_BPS)},
        "lifetime_ms": {**_dist(lifetimes), "buckets": _bucket_labels(LIFETIME_BUCKETS_MS, "ms"),
                        "counts": _hist(lifetimes, LIFETIME_BUCKETS_MS)},
        "executions": {
            "trades": len(traded), "fills": len(fills), "by_status": by_status,
            "by_venue": by_venue, "one_legged": one_legged, "partial": partial_trades,
            "unwinds": unwinds, "fees": fees,
        },
        "realized_pnl": pnl,
        "realized_pnl_by_venue_pair": dict(sorted(pnl_by_pair.items())),
        "realized_pnl_by_kind": dict(sorted(pnl_by_kind.items())),
        # Detected (at the window's opening, for the quantity sent) minus realized:
        # what order latency, book moves by arrival, one-legged trades and their
        # unwinds cost. Fees are in both sides, so they do not count as lost.
        "detected_profit_traded": expected,
        "latency_loss": {c: expected[c] - pnl.get(c, 0.0) for c in sorted(expected)},
        "pnl_series": {c: [[t, v] for t, v in s] for c, s in series.items()},
        # calibration + latency budget, of the same sessions
        "catch": report_catch.build(path, since_ns, None if mode == "all" else _kept),
    }


# --------------------------------------------------------------------------- rendering


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return str(v)


def _ts(ns: int | None) -> str:
    if not ns:
        return "—"
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def hbars(title: str, labels: list[str], counts: list[int], width: int, color: bool) -> str:
    """A histogram as one row per bucket: label, bar, count.

    plotext's vertical bar chart thins its x labels when they do not fit the width, so
    buckets lost their labels (``250-500ms`` vanished and the tallest bar sat beside
    ``500-1000ms``). A row per bucket labels every bucket at any width, empty ones too, so
    the scale reads the same between reports.
    """
    lw = max(len(lab) for lab in labels)
    cw = max(len(str(c)) for c in counts)
    room = max(1, width - lw - cw - 4)
    top = max(counts) or 1
    rows = [title]
    for lab, c in zip(labels, counts, strict=True):
        n = round(c / top * room)
        bar = "█" * n if n or not c else "▏"  # a non-empty bucket always shows a mark
        pad = " " * (room - len(bar))
        if color and c:
            bar = f"\x1b[36m{bar}\x1b[0m"
        rows.append(f"{lab:>{lw}} │{bar}{pad} {c:>{cw}}")
    return "\n".join(rows)


def _charts(r: dict[str, Any], width: int, color: bool) -> list[str]:
    import plotext as plt

    out: list[str] = []
    h = max(8, min(14, width // 8))

    def build() -> str:
        s = plt.build()
        return s if color else plt.uncolorize(s)

    def setup(title: str) -> None:
        plt.clear_figure()
        plt.theme("pro" if color else "clear")
        plt.plotsize(width, h)
        plt.title(title)

    ne = r["net_edge_bps"]
    if ne["n"]:
        out.append(hbars("peak NET edge per opportunity (bps, after fees)", ne["buckets"],
                         ne["counts"], width, color))
    lt = r["lifetime_ms"]
    if lt["n"]:
        out.append(hbars("opportunity lifetime (closed windows)", lt["buckets"], lt["counts"],
                         width, color))
    for ccy, pts in r["pnl_series"].items():
        if not pts:
            continue
        setup(f"realized PnL over time ({ccy})")
        t0 = pts[0][0]
        plt.plot([(t - t0) / 1e9 for t, _ in pts], [v for _, v in pts], marker="braille")
        plt.xlabel("seconds since first fill")
        out.append(build())
    return out


def render(r: dict[str, Any], *, width: int = 100, color: bool = True, charts: bool = True) -> str:
    lines: list[str] = []
    add = lines.append
    add(f"arbtui report — {r['journal']}")
    others = {m: n for m, n in r.get("sessions_by_mode", {}).items() if m != r.get("mode")}
    if r.get("mode", "all") != "all":
        add(f"mode {r['mode']}" + ("   (also in this file: "
                                   + ", ".join(f"{m} {n}" for m, n in others.items())
                                   + " sessions; --mode all or --mode MODE)" if others else ""))
    elif others:
        add("mode all: " + ", ".join(f"{m} {n}" for m, n in others.items()) + " sessions")
    add(f"window {_ts(r['first_ts_ns'])} .. {_ts(r['last_ts_ns'])}   sessions {r['sessions']}   "
        f"events {r['opportunity_events']}")
    add("")
    add(f"OPPORTUNITIES {r['opportunities']} (suspect {r['suspect']}); edges are NET bps after "
        "both taker fees")

    def table(title: str, rows: dict[str, dict[str, Any]]) -> None:
        add(f"  {title:<22} {'count':>6} {'closed':>6} {'med peak':>9} {'max peak':>9} "
            f"{'med life ms':>11}  sum peak profit")
        for k, v in rows.items():
            prof = ", ".join(f"{a:,.2f} {c}" for c, a in v["peak_profit"].items())
            add(f"  {k:<22} {v['opportunities']:>6} {v['closed']:>6} "
                f"{_fmt(v['median_peak_net_bps']):>9} {_fmt(v['max_peak_net_bps']):>9} "
                f"{_fmt(v['median_lifetime_ms'], 0):>11}  {prof}")

    table("symbol", r["per_symbol"])
    add("")
    table("venue pair (buy>sell)", r["per_venue_pair"])
    add("")
    if set(r.get("per_kind", {})) - {"spot"}:
        # spot, basis (spot bought, perp sold) and perp vs perp side by side, once a
        # journal holds more than spot windows
        table("kind", r["per_kind"])
        for k, v in r["per_kind"].items():
            if "median_basis_bps" in v or "median_carry_apr" in v:
                carry = v.get("median_carry_apr")
                add(f"  {k:<22} median basis {_fmt(v.get('median_basis_bps'))} bps   median "
                    f"carry {_fmt(None if carry is None else carry * 100)} %/yr (funding)")
        add("")
    for name, key, nd in (("net edge bps", "net_edge_bps", 2), ("lifetime ms", "lifetime_ms", 0)):
        d = r[key]
        add(f"  {name:<13} n={d['n']} min {_fmt(d['min'], nd)} p50 {_fmt(d['p50'], nd)} "
            f"p90 {_fmt(d['p90'], nd)} max {_fmt(d['max'], nd)}")
        add("    " + "  ".join(f"{b}:{c}" for b, c in zip(d["buckets"], d["counts"], strict=True)
                               if c))
    e = r["executions"]
    add("")
    add(f"EXECUTIONS trades {e['trades']}  fills {e['fills']}  "
        + "  ".join(f"{k} {v}" for k, v in sorted(e["by_status"].items()))
        + f"  one-legged {e['one_legged']}  partially matched {e['partial']}  unwinds {e['unwinds']}")
    for v, s in sorted(e["by_venue"].items()):
        add(f"  {v:<10} buys {s.get('buy', 0)}  sells {s.get('sell', 0)}")
    if e["fees"]:
        add("  fees paid " + ", ".join(f"{a:,.4f} {c}" for c, a in sorted(e["fees"].items())))
    add("REALIZED PnL " + (", ".join(f"{a:+,.4f} {c}" for c, a in sorted(r["realized_pnl"].items()))
                           or "none"))
    for pair, by_ccy in r.get("realized_pnl_by_venue_pair", {}).items():
        add(f"  {pair:<22} " + ", ".join(f"{a:+,.4f} {c}" for c, a in sorted(by_ccy.items())))
    if set(r.get("realized_pnl_by_kind", {})) - {"spot"}:
        for kind, by_ccy in r["realized_pnl_by_kind"].items():
            add(f"  kind {kind:<17} "
                + ", ".join(f"{a:+,.4f} {c}" for c, a in sorted(by_ccy.items())))
    if r.get("detected_profit_traded"):
        add("DETECTED PROFIT of what was sent "
            + ", ".join(f"{a:+,.4f} {c}" for c, a in sorted(r["detected_profit_traded"].items()))
            + "   lost to latency and book moves "
            + ", ".join(f"{a:+,.4f} {c}" for c, a in sorted(r["latency_loss"].items())))
    lines.extend(report_catch.render(r.get("catch") or {}))
    if charts:
        for c in _charts(r, width, color) + report_catch.charts(r.get("catch") or {}, width, color):
            add("")
            add(c)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- CLI


def journal_for_mode(configured: str, mode: str) -> Path:
    """The file ``report --mode`` reads without ``--journal``: ``[journal] path`` when set
    (every mode shares it then), else the mode's own file; for replay the newest of the
    per-replay journals; for all the live file (where sessions from before modes were
    recorded live)."""
    from arbtui.backend.journal import default_path, resolve_path

    if configured or mode in ("live", "demo", "all"):
        return resolve_path(configured, "live" if mode == "all" else mode)
    replays = sorted((default_path().parent / "replays").glob("*.sqlite"),
                     key=lambda p: p.stat().st_mtime)
    if not replays:
        raise ReportError(f"no replay journal under {default_path().parent / 'replays'} "
                          "(arbtui replay writes one per run; or pass --journal PATH)")
    return replays[-1]


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    p = argparse.ArgumentParser(prog="arbtui report",
                                description="Summarize the opportunity/fill journal")
    p.add_argument("--since", metavar="WHEN", help="30m, 2h, 1d, or an ISO time (UTC)")
    p.add_argument("--journal", metavar="PATH",
                   help="journal file (default: the --mode's own: journal.sqlite for live, "
                        "demo-journal.sqlite for demo, the newest replay journal for replay; "
                        "[journal] path when set)")
    p.add_argument("--mode", choices=REPORT_MODES, default=None,
                   help="which sessions: live (the default), demo, replay or all; with "
                        "--journal the default is all")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--no-charts", action="store_true", help="tables only")
    p.add_argument("--width", type=int, default=0, help="chart width (default: terminal)")
    p.add_argument("--config", metavar="PATH", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    mode = a.mode or ("all" if a.journal else "live")
    if a.journal:
        path = Path(a.journal).expanduser()
    else:
        from arbtui import config as configmod

        try:
            cfg = configmod.load(a.config or getattr(args, "config", None))
        except configmod.ConfigError as e:
            print(f"arbtui: config error: {e}", file=sys.stderr)
            return 2
        try:
            path = journal_for_mode(cfg.journal.path, mode)
        except ReportError as e:
            print(f"arbtui report: {e}", file=sys.stderr)
            return 2
    try:
        since = parse_since(a.since) if a.since else 0
        report = build(path, since, mode)
    except ReportError as e:
        print(f"arbtui report: {e}", file=sys.stderr)
        return 2
    if a.json:
        json.dump(report, sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
        return 0
    width = a.width or min(120, os.get_terminal_size().columns if sys.stdout.isatty() else 100)
    color = (sys.stdout.isatty() and "NO_COLOR" not in os.environ
             and not getattr(args, "no_color", False))
    sys.stdout.write(render(report, width=width, color=color, charts=not a.no_charts))
    return 0
