"""Replay throughput, with and without execution: ``python -m benchmarks.replay``.

Each run is ``ReplayEngine(..., speed=0)`` (``arbtui replay --max``) over the
given recordings, in a fresh process state per run: recorded lines (frames,
connects, sends) per second of wall time through the adapters, the bus, the
detector role and, with execution on, the executor role on recorded time.
Journals off (the figure is the engine, not SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from arbtui import config as configmod
from arbtui.backend.replay import ReplayEngine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "recordings"


def _cfg(execution: bool, exec_toml: str | None):
    cfg = configmod.load(exec_toml, use_user=False)
    cfg.journal.enabled = False
    cfg.execution.enabled = execution
    return cfg


async def _one(files: list[str], execution: bool, exec_toml: str | None) -> dict:
    eng = ReplayEngine(_cfg(execution, exec_toml), files, speed=0)
    fills = 0
    record = eng.record_event

    def count(e) -> None:
        nonlocal fills
        fills += type(e).__name__ == "Fill"
        record(e)

    eng.record_event = count  # type: ignore[method-assign]
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    await eng.start()
    await eng.finished.wait()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await eng.stop()
    assert eng.error is None, eng.error
    return {"lines": eng.lines_done, "quotes": eng.quotes_out, "events": eng.event_seq,
            "fills": fills, "wall_s": wall, "cpu_s": cpu, "lines_per_s": eng.lines_done / wall,
            "lines_per_cpu_s": eng.lines_done / cpu if cpu else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.replay")
    p.add_argument("files", nargs="*", help="recordings (default: ../shared/recordings/*.zst)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--config", help="config merged over the defaults (execution settings)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    files = a.files or [str(f) for f in sorted(SHARED.glob("*.jsonl.zst"))]
    out = {}
    for execution in (False, True):
        runs = [asyncio.run(_one(files, execution, a.config)) for _ in range(a.repeats)]
        key = "execution on" if execution else "execution off"
        out[key] = {"runs": runs,
                    "median_lines_per_s": statistics.median(r["lines_per_s"] for r in runs),
                    "median_lines_per_cpu_s": statistics.median(r["lines_per_cpu_s"] for r in runs)}
        r0 = runs[0]
        print(f"{key}: {r0['lines']} lines, {r0['quotes']} quotes, {r0['events']} events, "
              f"{r0['fills']} fills; lines/s median {out[key]['median_lines_per_s']:,.0f} "
              f"[{min(r['lines_per_s'] for r in runs):,.0f}-"
              f"{max(r['lines_per_s'] for r in runs):,.0f}], per CPU-s "
              f"{out[key]['median_lines_per_cpu_s']:,.0f}", file=sys.stderr)
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
