"""``python -m benchmarks [--quick] [--only NAME ...]`` (also ``arbtui bench ...``).

Benchmarks (``--only`` takes any of them, comma separated):
  parse     adapter parse + book on the real recordings and a simulator recording
  detector  Detector.on_quote vs the baseline scan, 2x2 and 5x50
  embedded  end to end on the embedded bus, with the bare asyncio.Queue floor
  kafka     end to end on a fresh broker: bare aiokafka pipe, arbtui KafkaBus, baseline
  memory    RSS over time at 5 k quotes/s (10 min in the full run) and book memory
  ui        the dashboard under 20 k quotes/s: key -> screen, detection with/without UI
  peer      arbtui's adapters beside cryptofeed's feed classes on the same recorded
            frames (needs the `peer` extra; skipped with one line without it)
  targets   only the points the four speed targets are judged on (not in the full run)
The report (markdown) goes to stdout; ``--json`` keeps every raw figure,
``--append FILE`` appends the report to a file and ``--record`` writes it to a new
date-named file in benchmarks/results/ (BENCHMARKS.md summarises those files).
A variant that cannot run here (no broker; no snappy codec for the baseline) is
reported as not run, with the reason, and the rest is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks import stats

ALL = ("parse", "detector", "embedded", "kafka", "memory", "ui", "peer")
#: Runnable with --only but not part of the default full run (it repeats points of it).
EXTRA = ("targets",)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Plan:
    def __init__(self, quick: bool, repeats: int | None) -> None:
        self.quick = quick
        self.repeats = repeats or (1 if quick else 3)
        self.micro_repeats = 3 if quick else 5
        self.sim_seconds = 2.0 if quick else 5.0
        self.sizes = [(2, 2), (5, 50)]
        self.loads = [1000.0, 5000.0, 20000.0, None]
        self.window = 1.0 if quick else 3.0
        self.kafka_window = 2.0 if quick else 3.0
        self.sat_cap = 40_000 if quick else 200_000
        self.mem_seconds = 5.0 if quick else 600.0
        # quick keeps a latency point and saturation per size: the whole --quick run
        # has to stay under 2 minutes.
        self.embedded_loads = [5000.0, None] if quick else self.loads
        if quick:
            self.kafka_runs = [(2, 2, 1000.0, None), (5, 50, None, None)]
        else:
            # Each Kafka point costs a fresh broker and a group join (~5 s on tansu),
            # so 2x2 gets the latency point and saturation only.
            self.kafka_runs = ([(2, 2, 1000.0, None), (2, 2, None, None)]
                               + [(5, 50, r, None) for r in self.loads]
                               + [(2, 2, 1000.0, 2), (2, 2, 1000.0, 10)])


# ---------------------------------------------------------------------- runners


def bench_parse(plan: Plan, out: dict) -> list[str]:
    from benchmarks import micro

    _log("parse: recordings + simulator ...")
    rows = micro.parse_recordings(plan.micro_repeats, plan.sim_seconds)
    syn = micro.parse_synthetic_coinbase(5_000 if plan.quick else 50_000, plan.micro_repeats)
    out["parse"] = {"rows": rows, "synthetic_coinbase": syn}
    md = ["### Parse + book (one core, time inside `feed_frame` only)", "",
          ("| source | venue | frames | all frames msg/s | µs/frame | book-update frames | "
          "update msg/s | errors/resyncs |"), "|---|---|---|---|---|---|---|---|"]
    if not micro.recordings():
        md.insert(1, "_Real recordings not found (../shared/recordings): skipped._")
    for r in rows:
        md.append(f"| {r['source']} | {r['venue']} | {r['frames']} | "
                  f"{stats.fmt(stats.spread(r['msgs_per_s']))} | "
                  f"{stats.fmt(stats.spread(r['us_per_msg']))} | {r['upd_frames']} | "
                  f"{stats.fmt(stats.spread(r['upd_per_s']))} | {r['errors']}/{r['resyncs']} |")
    md.append(f"| synthetic l2 updates ({syn['levels_per_frame']:.2f} levels/frame) | coinbase | "
              f"{syn['frames']} | {stats.fmt(stats.spread(syn['msgs_per_s']))} | "
              f"{stats.fmt(stats.spread([1e6 / x for x in syn['msgs_per_s']]))} | "
              f"{syn['frames']} | {stats.fmt(stats.spread(syn['msgs_per_s']))} | 0/0 |")
    return md


def bench_detector(plan: Plan, out: dict) -> list[str]:
    from benchmarks import micro

    _log("detector ...")
    n = 10_000 if plan.quick else 50_000
    res = [micro.detector_cost(nv, ns, n, plan.micro_repeats) for nv, ns in plan.sizes]
    out["detector"] = res
    return ["### Detector cost per quote (one core, same quotes)", ""] + bench_detector_table(res)


def bench_detector_table(res: list[dict]) -> list[str]:
    md = [("| venues × symbols | arbtui `Detector.on_quote` µs | arbtui quotes/s | "
          "baseline scan µs/msg | baseline msgs/s | arbtui events | baseline reports |"),
          "|---|---|---|---|---|---|---|"]
    for r in res:
        a, b = stats.spread(r["arbtui_us"]), stats.spread(r["baseline_us"])
        md.append(f"| {r['venues']} × {r['symbols']} | {stats.fmt(a)} | "
                  f"{stats.fmt(stats.spread([1e6 / x for x in r['arbtui_us']]))} | "
                  f"{stats.fmt(b)} | {stats.fmt(stats.spread([1e6 / x for x in r['baseline_us']]))}"
                  f" | {r['arbtui_events']} | {r['baseline_reports']} |")
    return md


def _e2e_runs(specs, repeats: int, sat_cap: int) -> list:
    from benchmarks import e2e

    results = []
    for spec in specs:
        for k in range(repeats):
            t = time.monotonic()
            try:
                r = asyncio.run(e2e.run(spec, sat_cap))
            except Exception as ex:  # noqa: BLE001 - one failed run must not lose the rest
                r = e2e.Result(spec.variant, spec.venues, spec.symbols, spec.rate)
                r.notes.append(f"FAILED: {type(ex).__name__}: {str(ex)[:300]}")
                r.behind = True
            if r.not_run:
                _log(f"  {spec.variant:12s} {spec.venues}x{spec.symbols:<3d}: not run: {r.not_run}")
                results.append((spec, r))
                break  # the reason holds for every repeat
            r.notes.append(f"fetch_max_wait_ms={spec.fetch_max_wait_ms}"
                           if spec.fetch_max_wait_ms is not None else "")
            results.append((spec, r))
            _log(f"  {spec.variant:12s} {spec.venues}x{spec.symbols:<3d} "
                 f"{'sat' if spec.rate is None else int(spec.rate):>6} #{k + 1}: "
                 f"in {r.ingest_rate:,.0f}/s det {r.processed_rate:,.0f}/s "
                 f"p50 {r.p50_ms:.3f} p99 {r.p99_ms:.3f} ms behind={r.behind} "
                 f"({time.monotonic() - t:.1f}s)")
    return results


def _not_run(results) -> dict[str, str]:
    """variant -> why it was not run here (first reason given)."""
    out: dict[str, str] = {}
    for spec, r in results:
        if r.not_run:
            out.setdefault(spec.variant, r.not_run)
    return out


def _e2e_table(results) -> list[str]:
    groups: dict[tuple, list] = defaultdict(list)
    order: list[tuple] = []
    skipped = _not_run(results)
    results = [(s, r) for s, r in results if not r.not_run]
    for spec, r in results:
        key = (spec.variant, spec.venues, spec.symbols, spec.rate, spec.fetch_max_wait_ms,
               spec.source, spec.feeds)
        if key not in groups:
            order.append(key)
        groups[key].append(r)
    md = [("| variant | V×S | offered/s | ingest/s | through detection/s | evaluated/s | p50 ms | "
           "p99 ms | p99.9 ms | opp p99 ms | input lag p99 ms | kept up | runs | notes |"),
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key in order:
        rs = groups[key]
        variant, nv, ns, rate, fmw, source, feeds = key

        def f(name: str, rs: list = rs) -> str:
            return stats.fmt(stats.spread([getattr(r, name) for r in rs]))

        notes = sorted({n for r in rs for n in r.notes if n and not n.startswith("ready after")
                        and not n.startswith("broker:")})
        behind = sum(r.behind for r in rs)
        kept = "yes" if not behind else ("no" if behind == len(rs) else f"{len(rs) - behind}/{len(rs)}")
        if rate is None:
            kept = "(saturation)"
        name = variant + (f" (fmw {fmw})" if fmw is not None else "")
        if source == "quotes" and variant in ("embedded", "kafka"):
            name += " [ready quotes]"
        if feeds > 1:
            name += f" [{feeds} feed processes]"
        md.append(f"| {name} | {nv}×{ns} | {'sat' if rate is None else f'{rate:,.0f}'} | "
                  f"{f('ingest_rate')} | {f('processed_rate')} | {f('evaluated_rate')} | "
                  f"{f('p50_ms')} | {f('p99_ms')} | "
                  f"{f('p999_ms')} | {f('opp_p99_ms')} | {f('lag_p99_ms')} | {kept} | {len(rs)} | "
                  f"{'; '.join(notes)[:400]} |")
    if skipped:
        md.append("")
        md += [f"_Not run here: `{v}` — {why}._" for v, why in skipped.items()]
    return md


def bench_embedded(plan: Plan, out: dict) -> list[str]:
    from benchmarks.e2e import Spec

    _log("embedded ...")
    warm = 0.3 if plan.quick else 0.5
    specs = [Spec(v, nv, ns, rate, plan.window, warm)
             for nv, ns in plan.sizes for rate in plan.embedded_loads
             for v in ("floor-queue", "embedded")]
    # The same engine fed ready quotes: bus + detector alone, without the adapter.
    specs += [Spec("embedded", nv, ns, None, plan.window, warm, source="quotes")
              for nv, ns in (plan.sizes[1:] if plan.quick else plan.sizes)]
    if not plan.quick:  # latency of bus + detector alone at the 5 k/s target point
        specs += [Spec("embedded", nv, ns, 5000.0, plan.window, warm, source="quotes")
                  for nv, ns in plan.sizes]
    results = _e2e_runs(specs, plan.repeats, plan.sat_cap)
    out["embedded"] = [dict(r.as_dict(), spec=vars(s)) for s, r in results]
    return ["### End to end, embedded bus (one process)", ""] + _e2e_table(results)


def bench_kafka(plan: Plan, out: dict) -> list[str]:
    from benchmarks import broker, e2e
    from benchmarks.e2e import Spec

    why = broker.available()
    if why:
        out["kafka"] = {"skipped": why}
        return ["### End to end, Kafka", "", f"_Skipped: {why}_"]
    _log("kafka ...")
    specs, not_run = kafka_specs(plan)
    results = _e2e_runs(specs, plan.repeats, plan.sat_cap)
    for variant, why in not_run.items():
        _log(f"  {variant}: not run: {why}")
        results.append((Spec(variant), e2e.Result(variant, 0, 0, None, not_run=why)))
    out["kafka"] = [dict(r.as_dict(), spec=vars(s)) for s, r in results if not r.not_run]
    out["not_run"] = {**out.get("not_run", {}), **_not_run(results)}
    return ["### End to end, Kafka (fresh tansu broker per run, loopback)", ""] + _e2e_table(results)


def kafka_specs(plan: Plan) -> tuple[list, dict[str, str]]:
    """The Kafka runs of this plan, and the variants left out here with the reason."""
    from benchmarks import e2e
    from benchmarks.e2e import Spec

    not_run: dict[str, str] = {}
    why = e2e.baseline_unavailable()
    if why:
        not_run["baseline"] = why
    specs = []
    for nv, ns, rate, fmw in plan.kafka_runs:
        for v in ("floor-kafka", "kafka", "baseline"):
            if v in not_run or (fmw is not None and v == "baseline"):
                continue
            specs.append(Spec(v, nv, ns, rate, plan.kafka_window, 0.5, fmw))
    if not plan.quick:
        specs.append(Spec("kafka", 5, 50, None, plan.kafka_window, 0.5, source="quotes"))
    return specs, not_run


def bench_memory(plan: Plan, out: dict) -> list[str]:
    from benchmarks import memory, micro

    _log(f"memory: {plan.mem_seconds:.0f} s at 5 k/s ...")
    r = memory.rss_in_subprocess(5000.0, plan.mem_seconds)
    bm = micro.book_memory(1000)
    out["memory"] = {"rss": r, "book": bm}
    return ["### Memory", "",
            (f"- RSS at 5 k quotes/s, 5 venues × 50 symbols, {r['seconds']:.0f} s "
            f"({r['sent']:,} messages, achieved {r['achieved_rate']:,.0f}/s): start "
            f"{r['rss_start_mb']:.1f} MB, after warm-up {r['rss_after_warmup_mb']:.1f} MB, end "
            f"{r['rss_end_mb']:.1f} MB, max {r['rss_max_mb']:.1f} MB; growth after warm-up "
            f"{r['growth_after_warmup_mb']:+.2f} MB ({r['growth_mb_per_min']:+.2f} MB/min)."),
            (f"- One book at depth {bm['depth']} per side ({bm['levels']} levels): "
            f"{bm['bytes'] / 1024:.0f} KiB ({bm['bytes_per_level']:.0f} B/level, tracemalloc).")]


def bench_ui(plan: Plan, out: dict) -> list[str]:
    from benchmarks import ui

    _log("ui ...")
    runs, seconds, warm = (1, 1.5, 0.5) if plan.quick else (3, 8.0, 2.0)
    res: dict[str, dict[str, list[float]]] = {}
    keys: list[int] = []
    for _ in range(runs):
        for with_ui in (False, True):
            o = asyncio.run(ui.measure(with_ui, 20_000.0, seconds, warm))
            d = res.setdefault("engine + dashboard" if with_ui else "engine alone",
                               {"p50": [], "p99": [], "offered": [], "detected": []})
            p50, p99 = stats.pct(o["detect_ns"], 50, 99)
            d["p50"].append(p50)
            d["p99"].append(p99)
            d["offered"].append(o["offered_qps"])
            d["detected"].append(o["detected_qps"])
            keys += [k for k in o["keys_ns"] if k >= 0]
    out["ui"] = {"variants": res, "keys_ns": keys}
    md = [("### Dashboard under load (benchmarks/ui.py: 3 venues × 4 symbols, ready quotes, "
          f"20 k/s offered, {seconds:g} s per run after {warm:g} s warm-up, {runs} run(s))"), "",
          "| variant | offered/s | detector evaluated/s | detect p50 ms | detect p99 ms |",
          "|---|---|---|---|---|"]
    for name, d in res.items():
        md.append(f"| {name} | {stats.fmt(stats.spread(d['offered']))} | "
                  f"{stats.fmt(stats.spread(d['detected']))} | "
                  f"{stats.fmt(stats.spread(d['p50']))} | {stats.fmt(stats.spread(d['p99']))} |")
    if keys:
        k50, k99 = stats.pct(keys, 50, 99)
        md += ["", (f"Key press → screen (threshold `+`/`-`, until the header shows it and the next "
                   f"frame is written): n={len(keys)}, p50 {k50:.1f} ms, p99 {k99:.1f} ms, "
                   f"max {max(keys) / 1e6:.1f} ms.")]
    return md


#: Warm-up (s) of the embedded 5 k/s target points: past the startup's GC transient.
STEADY_WARMUP_S = 10.0


def bench_targets(plan: Plan, out: dict) -> list[str]:
    """Only the points the four speed targets are judged on (issue 19), alternated:
    detector 5x50; embedded 5x50 at 5 k/s; Kafka 5x50 at 1 k/s and at saturation
    with the baseline. A few minutes instead of the full run's half hour."""
    from benchmarks import broker, micro
    from benchmarks.e2e import Spec

    _log("targets: detector 5x50 ...")
    n = 10_000 if plan.quick else 50_000
    out["detector"] = [micro.detector_cost(5, 50, n, plan.micro_repeats)]
    md = ["### The four targets' points (issue 19)", ""] + bench_detector_table(out["detector"])
    warm = 0.3 if plan.quick else 0.5
    # The 5 k/s points are a running session's p99: measured once the startup is over
    # (the engine's 10 000-event ring fills in ~9 s at this load; until then the young
    # GC collections of what a starting session keeps, 10-60 ms each, land on quotes).
    # The window's notes name any collection that still falls in it.
    steady = warm if plan.quick else STEADY_WARMUP_S
    # Saturation without Kafka too: it shows what bounds the Kafka figure (the feed
    # process's adapter when both saturate at about the same rate).
    specs = [Spec("embedded", 5, 50, 5000.0, plan.window, steady),
             Spec("embedded", 5, 50, 5000.0, plan.window, steady, source="quotes"),
             Spec("embedded", 5, 50, None, plan.window, warm)]
    _log("targets: embedded 5x50 at 5 k/s and saturation ...")
    res = _alternated(specs, plan)
    out["embedded"] = [dict(r.as_dict(), spec=vars(s)) for s, r in res]
    md += ["", "#### Embedded", ""] + _e2e_table(res)
    why = broker.available()
    if why:
        out["kafka"] = {"skipped": why}
        return md + ["", f"_Kafka skipped: {why}_"]
    _log("targets: kafka 5x50 at 1 k/s and saturation, with the baseline ...")
    specs, not_run = [], {}
    from benchmarks import e2e

    base_why = e2e.baseline_unavailable()
    for rate in (1000.0, None):
        # At 1 k/s the bare aiokafka pipe on the same broker and load is the floor the
        # p99 is read against; at saturation the baseline is the divisor.
        for v in ("kafka", "baseline") if rate is None else ("floor-kafka", "kafka"):
            if v == "baseline" and base_why:
                not_run["baseline"] = base_why
                continue
            specs.append(Spec(v, 5, 50, rate, plan.kafka_window, 0.5))
    # The deployment's shape (a feed process near each venue): the venues dealt out to
    # two feed processes, beside the one-process row the target has been judged on.
    specs.append(Spec("kafka", 5, 50, None, plan.kafka_window, 0.5, feeds=2))
    res = _alternated(specs, plan)
    for variant, w in not_run.items():
        res.append((Spec(variant), e2e.Result(variant, 0, 0, None, not_run=w)))
    out["kafka"] = [dict(r.as_dict(), spec=vars(s)) for s, r in res if not r.not_run]
    out["not_run"] = {**out.get("not_run", {}), **_not_run(res)}
    return md + ["", "#### Kafka (fresh tansu broker per run, loopback)", ""] + _e2e_table(res)


def _alternated(specs: list, plan: Plan) -> list:
    """Repeat k of every spec, then repeat k + 1: load that comes and goes on a shared
    machine then falls on every variant alike."""
    res: list = []
    skip: set[str] = set()
    for _ in range(plan.repeats):
        for r in _e2e_runs([s for s in specs if s.variant not in skip], 1, plan.sat_cap):
            res.append(r)
            if r[1].not_run:
                skip.add(r[0].variant)
    return res


def bench_peer(plan: Plan, out: dict) -> list[str]:
    from benchmarks import peer

    why = peer.available()
    if why:
        out["peer"] = {"skipped": why}
        _log(f"peer: skipped: {why}")
        return ["### Peer: cryptofeed on the same frames", "", f"_Skipped: {why}_"]
    seconds = 3.0 if plan.quick else 20.0
    _log(f"peer: recordings + simulator ({seconds:g} s), {plan.micro_repeats} alternated "
         "repeats ...")
    res = peer.run(plan.micro_repeats, seconds)
    out["peer"] = res
    return ["### Peer: cryptofeed on the same frames (one core, handler time only)", ""] \
        + peer.table(res)


RUNNERS = {"parse": bench_parse, "detector": bench_detector, "embedded": bench_embedded,
           "kafka": bench_kafka, "memory": bench_memory, "ui": bench_ui, "peer": bench_peer,
           "targets": bench_targets}


def _have(*xs: float) -> bool:
    return all(not math.isnan(x) for x in xs)


def _ratio(a: float, b: float) -> float | None:
    """a / b when both were measured and b is positive (a rate of 0/s was not measured)."""
    if not _have(a, b) or b <= 0:
        return None
    return a / b


def _failed(r: dict) -> bool:
    return bool(r.get("not_run")) or any(str(n).startswith("FAILED") for n in r.get("notes", ()))


#: Spec fields added later, as rows recorded before them read.
_SPEC_DEFAULTS = {"feeds": 1}


def _med(rows: list[dict], field: str, **match) -> float:
    """Median of one figure over the matching runs; failed runs measured nothing."""
    vals = [r[field] for r in rows if not _failed(r)
            and all(r.get("spec", {}).get(k, r.get(k, _SPEC_DEFAULTS.get(k))) == v
                    for k, v in match.items())]
    return stats.spread(vals)["median"]


def targets(out: dict) -> list[str]:
    """The issue's targets, judged from this run's medians (only those measured)."""
    rows: list[tuple[str, str, str]] = []

    def add(name: str, measured: str, ok: bool | None) -> None:
        rows.append((name, measured, "n/a" if ok is None else ("met" if ok else "**missed**")))

    k = out.get("kafka")
    if isinstance(k, list):
        base_why = (out.get("not_run") or {}).get("baseline")
        for nv, ns in ((2, 2), (5, 50)):
            for feeds in (1, 2):
                arb = _med(k, "processed_rate", variant="kafka", venues=nv, symbols=ns, rate=None,
                           source="frames", feeds=feeds)
                ev = _med(k, "evaluated_rate", variant="kafka", venues=nv, symbols=ns, rate=None,
                          source="frames", feeds=feeds)
                base = _med(k, "processed_rate", variant="baseline", venues=nv, symbols=ns, rate=None)
                name = f"Kafka sustained ≥ 50× baseline at {nv}×{ns} (saturation)"
                if feeds > 1:
                    if not _have(arb):
                        continue
                    name += f", {feeds} feed processes"
                x, xev = _ratio(arb, base), _ratio(ev, base)
                if x is not None:
                    add(name, f"{arb:,.0f}/s through detection ({ev:,.0f}/s evaluated) vs baseline "
                        f"{base:,.0f}/s = {x:.1f}×"
                        + (f" ({xev:.1f}× evaluated)" if xev is not None else ""),
                        x >= 50 if (nv, ns) == (5, 50) else None)
                elif _have(arb):
                    # Never judged against a baseline that was not measured.
                    add(name, f"{arb:,.0f}/s through detection; baseline not measured ("
                        + (f"not run: {base_why}" if base_why else "its runs failed or measured 0/s")
                        + ")", None)
        for nv, ns in ((2, 2), (5, 50)):
            p = _med(k, "p99_ms", variant="kafka", venues=nv, symbols=ns, rate=1000.0,
                     fetch_max_wait_ms=None)
            f = _med(k, "p99_ms", variant="floor-kafka", venues=nv, symbols=ns, rate=1000.0,
                     fetch_max_wait_ms=None)
            if _have(p):
                add(f"Kafka p99 at 1 k/s ≤ 10 ms ({nv}×{ns})", f"{p:.1f} ms", p <= 10)
            pf = _ratio(p, f)
            if pf is not None:
                add(f"Kafka p99 at 1 k/s ≤ 1.5× bare pipe ({nv}×{ns})",
                    f"{p:.1f} vs {f:.1f} ms = {pf:.2f}×", pf <= 1.5)
    e = out.get("embedded")
    if isinstance(e, list):
        for nv, ns in ((2, 2), (5, 50)):
            for src, label in (("frames", "adapter → detector"), ("quotes", "ready quotes")):
                p = _med(e, "p99_ms", variant="embedded", venues=nv, symbols=ns, rate=5000.0,
                         source=src)
                if _have(p):
                    add(f"Embedded p99 ≤ 0.5 ms at 5 k/s ({nv}×{ns}, {label})", f"{p:.3f} ms",
                        p <= 0.5)
    d = out.get("detector")
    if d:
        for r in d:
            us = stats.spread(r["arbtui_us"])["median"]
            add(f"Detector ≤ 2 µs per quote ({r['venues']}×{r['symbols']})", f"{us:.1f} µs",
                us <= 2 if (r["venues"], r["symbols"]) == (5, 50) else None)
    pr = out.get("parse")
    if pr:
        for r in pr["rows"]:
            if r["venue"] == "coinbase" and r["upd_per_s"]:
                v = stats.spread(r["upd_per_s"])["median"]
                add(f"Parse ≥ 300 k Coinbase l2 updates/s/core ({r['source']})", f"{v:,.0f}/s",
                    v >= 300_000)
        v = stats.spread(pr["synthetic_coinbase"]["msgs_per_s"])["median"]
        add("Parse ≥ 300 k Coinbase l2 updates/s/core (synthetic 1–2 level updates)",
            f"{v:,.0f}/s", v >= 300_000)
    u = out.get("ui")
    if u and u.get("keys_ns"):
        k99 = stats.pct(u["keys_ns"], 99)[0]
        add("UI key → screen ≤ 100 ms at 20 k/s (p99)", f"{k99:.0f} ms", k99 <= 100)
        v = u["variants"]
        if "engine alone" in v and "engine + dashboard" in v:
            a = stats.spread(v["engine alone"]["p99"])["median"]
            b = stats.spread(v["engine + dashboard"]["p99"])["median"]
            add("Detection p99 unchanged with the dashboard (within noise)",
                f"{a:.2f} ms alone vs {b:.2f} ms with UI", b <= max(2 * a, a + 0.5))
    mem = out.get("memory")
    if mem:
        r = mem["rss"]
        # Flatness needs minutes: a --quick run (seconds) still fills its rings.
        add(f"Memory flat and ≤ 250 MB ({r['seconds']:.0f} s at 5 k/s)",
            f"max {r['rss_max_mb']:.0f} MB, {r['growth_mb_per_min']:+.2f} MB/min after warm-up",
            (r["rss_max_mb"] <= 250 and abs(r["growth_after_warmup_mb"]) <= 5)
            if r["seconds"] >= 120 else None)
    pe = out.get("peer")
    if isinstance(pe, dict) and pe.get("rows"):
        for r in pe["rows"]:
            a, c = stats.spread(r["arbtui"])["median"], stats.spread(r["defaults"])["median"]
            x = _ratio(a, c)
            if x is None:
                continue
            need = 3.0 if r["venue"] == "coinbase" else 1.5
            add(f"Ahead of cryptofeed (defaults) ≥ {need:g}×: {r['venue']}, {r['source']}",
                f"{x:.2f}× ({a:,.0f} vs {c:,.0f} update frames/s)", x >= need)
    if not rows:
        return []
    return (["### Targets (this run's medians)", "", "| target | measured | |", "|---|---|---|"]
            + [f"| {a} | {b} | {c} |" for a, b, c in rows] + [""])


def header(plan: Plan, argv: list[str]) -> list[str]:
    m = stats.machine()
    from benchmarks import broker

    return [(f"## Run {m['date_utc']} UTC — commit `{m['commit']}` — "
            f"{'quick' if plan.quick else 'full'}"), "",
            f"- command: `python -m benchmarks {' '.join(argv)}`".rstrip(),
            f"- machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['platform']}",
            f"- load average at start: {m['loadavg']}",
            (f"- broker: {broker.tansu_path() or 'none'} (fresh process per measured run, "
            f"in-memory storage) unless ARBTUI_TEST_KAFKA is set"),
            (f"- repeats per e2e point: {plan.repeats}; micro repeats: {plan.micro_repeats}; "
            f"figures are median [min–max]"), ""]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI smoke: everything in < 2 minutes")
    p.add_argument("--only", action="append", default=[], metavar="NAME",
                   help=f"run only these ({', '.join(ALL + EXTRA)}); repeatable or comma separated")
    p.add_argument("--repeats", type=int, help="repeats per end-to-end point")
    p.add_argument("--json", metavar="PATH", help="write every raw figure here")
    p.add_argument("--append", metavar="FILE", help="append the markdown report to FILE")
    p.add_argument("--record", action="store_true",
                   help="also write the report to benchmarks/results/<date>-<time>-<commit>.md")
    return p


RESULTS = Path(__file__).resolve().parent / "results"


def record_path(machine: dict[str, str], quick: bool) -> Path:
    """benchmarks/results/2026-11-25-2350-a83c8f2[-dirty][-quick].md for a run's stamp."""
    day, clock = machine["date_utc"].split(" ")
    commit = machine["commit"].replace("+dirty(arbtui/)", "-dirty")
    stem = f"{day}-{clock.replace(':', '')[:4]}-{commit}" + ("-quick" if quick else "")
    path, n = RESULTS / f"{stem}.md", 2
    while path.exists():  # two runs in one minute keep both
        path, n = RESULTS / f"{stem}-{n}.md", n + 1
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = build_parser().parse_args(argv)
    only = [x for o in ns.only for x in o.split(",") if x] or list(ALL)
    bad = [x for x in only if x not in ALL + EXTRA]
    if bad:
        print(f"benchmarks: unknown benchmark(s) {', '.join(bad)}; choose from "
              f"{', '.join(ALL + EXTRA)}",
              file=sys.stderr)
        return 2
    # The KafkaBus logs every max_in_flight drop; the counts are in the report instead.
    logging.basicConfig(level=logging.ERROR)
    # aiokafka reports the broker we just stopped as unreachable; not a finding.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    plan = Plan(ns.quick, ns.repeats)
    t0 = time.monotonic()
    out: dict = {"machine": stats.machine(), "quick": ns.quick, "argv": argv}
    md = header(plan, argv)
    for name in only:
        t = time.monotonic()
        md += RUNNERS[name](plan, out) + ["", f"_({name}: {time.monotonic() - t:.0f} s)_", ""]
    md += targets(out)
    md.append(f"Total wall time {time.monotonic() - t0:.0f} s; load average at end: "
              f"{stats.machine()['loadavg']}.")
    text = "\n".join(md) + "\n"
    print(text)
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    if ns.append:
        with open(ns.append, "a") as f:
            f.write("\n" + text)
    if ns.record:
        path = record_path(out["machine"], ns.quick)
        path.parent.mkdir(parents=True, exist_ok=True)
        # A file of its own: the run's heading becomes the title.
        path.write_text("\n".join(s[1:] if s.startswith(("## ", "### ")) else s
                                  for s in text.split("\n")))
        _log(f"recorded: {path}")
    return 0


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    """``arbtui bench [...]``: the same as ``python -m benchmarks [...]``."""
    return main(argv)


if __name__ == "__main__":
    sys.exit(main())
