"""Fixed-width number formatting for the dashboard.

Every cell the dashboard redraws at ``ui.refresh_hz`` is formatted to a fixed
width here, so a changing price never changes a column width (Textual issue
#6457: width recomputation in the hot path costs more than the data itself),
and so a cell is only redrawn when its formatted string actually changed.
Pure functions; no Textual import.
"""

from __future__ import annotations

import math
import time

PX_W = 10
SZ_W = 8
AGE_W = 5


def px_decimals(p: float) -> int:
    """Decimals shown for a price: one symbol's prices share a magnitude, so columns line up."""
    a = abs(p)
    if a >= 1000:
        return 2
    if a >= 10:
        return 3
    if a >= 1:
        return 4
    return 6


def fmt_px(p: float | None, width: int = PX_W) -> str:
    if p is None or not math.isfinite(p):
        return "—".rjust(width)
    dec = px_decimals(p)
    s = f"{p:.{dec}f}"
    while len(s) > width and dec > 0:
        dec -= 1
        s = f"{p:.{dec}f}"
    return s.rjust(width)


def fmt_sz(q: float | None, width: int = SZ_W) -> str:
    if q is None or not math.isfinite(q):
        return "—".rjust(width)
    a = abs(q)
    if a >= 1e6:
        s = f"{q / 1e6:.1f}M"
    elif a >= 1e4:
        s = f"{q / 1e3:.1f}k"
    elif a >= 100:
        s = f"{q:.1f}"
    else:
        # As many decimals as fit: 0.51234 in 8, 0.512 in 5.
        dec = max(0, min(4, width - len(str(int(a))) - 1 - (1 if q < 0 else 0)))
        s = f"{q:.{dec}f}"
    return s.rjust(width)[-width:]


def fmt_age_ms(ms: float | None, width: int = AGE_W) -> str:
    if ms is None:
        return "—".rjust(width)
    if ms < 0:
        ms = 0.0
    if ms < 1000:
        s = f"{ms:.0f}ms"
    elif ms < 60_000:
        s = f"{ms / 1000:.1f}s"
    elif ms < 3_600_000:
        s = f"{ms / 60_000:.0f}m"
    else:
        s = f"{ms / 3_600_000:.0f}h"
    return s.rjust(width)


def fmt_bps(b: float | None, width: int = 7) -> str:
    if b is None or not math.isfinite(b):
        return "—".rjust(width)
    return f"{b:+.1f}".rjust(width)


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def fmt_rate(r: float) -> str:
    if r >= 10_000:
        return f"{r / 1000:.0f}k"
    if r >= 1000:
        return f"{r / 1000:.1f}k"
    return f"{r:.0f}"


def fmt_money(x: float | None, width: int = 9) -> str:
    if x is None or not math.isfinite(x):
        return "—".rjust(width)
    a = abs(x)
    if a >= 1e6:
        s = f"{x / 1e6:+.2f}M"
    elif a >= 1e4:
        s = f"{x / 1e3:+.1f}k"
    else:
        s = f"{x:+.2f}"
    return s.rjust(width)


def fmt_uptime(s: float) -> str:
    s = int(max(0, s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{sec:02d}"


def fmt_clock(ns: int, millis: bool = False) -> str:
    """UTC wall clock: trading boxes and venue timestamps are UTC."""
    t = time.gmtime(ns / 1e9)
    s = time.strftime("%H:%M:%S", t)
    if millis:
        s += f".{(ns // 1_000_000) % 1000:03d}"
    return s


def fmt_lifetime(ms: float) -> str:
    if ms < 10_000:
        return f"{ms / 1000:.2f}s"
    if ms < 600_000:
        return f"{ms / 1000:.0f}s"
    return f"{ms / 60_000:.0f}m"
