"""Summaries of repeated runs, and the facts every result is stamped with."""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def pct(samples_ns, *ps: float) -> list[float]:
    """Percentiles of nanosecond samples, in milliseconds (nan when empty)."""
    if len(samples_ns) == 0:
        return [float("nan")] * len(ps)
    arr = np.asarray(samples_ns, dtype=np.int64)
    return [float(v) / 1e6 for v in np.percentile(arr, ps)]


def spread(values: list[float]) -> dict[str, float]:
    """Median and spread (min, max) of one figure over repeated runs."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def fmt(s: dict[str, float], unit: str = "", digits: int = 3) -> str:
    if s["n"] == 0:
        return "n/a"
    m = s["median"]
    if s["n"] == 1:
        return f"{_num(m, digits)}{unit}"
    return f"{_num(m, digits)}{unit} [{_num(s['min'], digits)}–{_num(s['max'], digits)}]"


def _num(v: float, digits: int) -> str:
    if math.isnan(v):
        return "nan"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             check=False, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--",
                                "arbtui"], check=False, capture_output=True, text=True, timeout=5)
        c = out.stdout.strip() or "unknown"
        return c + ("+dirty(arbtui/)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "cpu": cpu, "cores": str(os.cpu_count()),
        "python": platform.python_version(), "platform": platform.platform(),
        "loadavg": load, "commit": git_commit(),
    }
