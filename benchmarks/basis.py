"""Detector µs per quote with perpetual books beside spot (issue 18).

``python -m benchmarks.basis [--quotes N] [--repeats R]`` prints a markdown table:
``Detector.on_quote`` over the ``benchmarks.load.Market(V, S, seed=5)`` stream (the
detector benchmark's market, ``micro.detector_cost``), in two shapes per V x S:

- spot: every venue quotes the S spot symbols (the existing benchmark);
- perp: the last ``P`` venues are perp venues: the same books, quoted under
  ``<symbol>-PERP``, so each spot quote also meets its perp books (basis: buy spot,
  sell perp) and perp quotes meet the other perp venues (perp vs perp) and the
  spot books. Same quotes, same prices, same fees (1 bps, ``e2e.bench_config``).

As in ``results/2026-12-06-detector-trust.md``: the detector's clock is fixed at the
quotes' receive time (under load a wall clock lets quotes go stale mid-run, so runs
would measure different work) and the figure is CPU time of this thread
(``time.thread_time_ns``) per quote, wall time beside it (mostly machine load).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time

from benchmarks import load

SHAPES = ((5, 50, 2), (12, 50, 4))  # venues, symbols, perp venues in the perp shape


def cost(nv: int, ns: int, n_perp: int, n: int, repeats: int) -> dict:
    import msgspec

    from arbtui.backend.detector import Detector
    from benchmarks.e2e import bench_config

    m = load.Market(nv, ns, seed=5)
    msgs = m.stream(n)
    quotes = [load.quote_of(m, mm) for mm in msgs]
    perp_venues = set(m.venues[nv - n_perp:]) if n_perp else set()
    if perp_venues:
        quotes = [msgspec.structs.replace(q, symbol=q.symbol + "-PERP")
                  if q.venue in perp_venues else q for q in quotes]
    cfg = bench_config(m.venues)
    fees = {v: 1.0 for v in m.venues}
    now = time.time_ns()
    for q in quotes:
        q.recv_ts_ns = now
    cpu, wall = [], []
    kinds: dict[str, int] = {}
    for _ in range(repeats):
        det = Detector(cfg.detector, fees, clock=lambda: now)
        on_quote = det.on_quote
        kinds = {}
        gc.collect()
        t0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        for q in quotes:
            for e in on_quote(q):
                kinds[e.kind] = kinds.get(e.kind, 0) + 1
        cpu.append((time.thread_time_ns() - t0) / n / 1e3)
        wall.append((time.perf_counter_ns() - w0) / n / 1e3)
    return {"venues": nv, "symbols": ns, "perp_venues": n_perp, "quotes": n, "cpu_us": cpu,
            "wall_us": wall, "events": kinds}


def table(rows: list[dict]) -> str:
    out = ["| V × S | shape | CPU µs/quote min | median | wall median | events by kind |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        shape = (f"perp: {r['venues'] - r['perp_venues']} spot + {r['perp_venues']} perp venues"
                 if r["perp_venues"] else f"spot: {r['venues']} spot venues")
        ev = ", ".join(f"{k} {v}" for k, v in sorted(r["events"].items())) or "none"
        out.append(f"| {r['venues']}×{r['symbols']} | {shape} | {min(r['cpu_us']):.2f} | "
                   f"**{statistics.median(r['cpu_us']):.2f}** | "
                   f"{statistics.median(r['wall_us']):.2f} | {ev} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.basis")
    p.add_argument("--quotes", type=int, default=50_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1, help="spot/perp alternate per round")
    a = p.parse_args()
    rows: dict[tuple, dict] = {}
    for _ in range(a.rounds):
        for nv, ns, npv in SHAPES:
            for k in (0, npv):
                r = cost(nv, ns, k, a.quotes, a.repeats)
                key = (nv, ns, k)
                if key in rows:
                    rows[key]["cpu_us"] += r["cpu_us"]
                    rows[key]["wall_us"] += r["wall_us"]
                else:
                    rows[key] = r
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print(table(list(rows.values())))


if __name__ == "__main__":
    main()
