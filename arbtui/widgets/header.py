"""One-line status header: mode, bus, uptime, quotes/s, detection latency, PnL, execution.

Fields are laid out in priority order and the low-priority ones are dropped
first when the terminal is narrow, so the execution state and the threshold are
visible even at 80 columns.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from arbtui.widgets.fmt import fmt_clock, fmt_money, fmt_ms, fmt_rate, fmt_uptime
from arbtui.widgets.live_text import LiveText


def mode_label(state: Any) -> str:
    """LIVE / DEMO / VIEW, or REPLAY ×speed (``max`` unpaced; ``done`` once finished)."""
    mode = state.mode
    if mode != "REPLAY":
        return mode
    rp = (state.extra or {}).get("replay")
    if not isinstance(rp, dict):
        return mode
    speed = rp.get("speed")
    label = f"REPLAY ×{speed:g}" if isinstance(speed, (int, float)) else f"REPLAY {speed or ''}".strip()
    return label + (" done" if rp.get("finished") else "")


def bus_label(bus: dict[str, Any]) -> tuple[str, str]:
    kind = bus.get("kind", "?")
    st = bus.get("state", "")
    style = "green" if st in ("up", "connected", "ok") else ("yellow" if st else "")
    return (f"{kind} {st}".strip(), style)


def pnl_of(extra: dict[str, Any]) -> tuple[float | None, str]:
    """Simulated realized PnL and its currency, when an executor reports one number."""
    ex = extra.get("executor")
    src = ex if isinstance(ex, dict) else extra
    v = src.get("pnl")
    if isinstance(v, (int, float)):
        return float(v), str(src.get("pnl_ccy") or "")
    return None, ""


def header_text(state: Any, *, now_ns: int, width: int, focused: str, paused: bool,
                execution: bool) -> Text:
    """Build the header for ``width`` columns (fields dropped right-to-left by priority)."""
    bus, bus_style = bus_label(state.bus or {})
    pnl, ccy = pnl_of(state.extra or {})
    p50, p99 = state.detect_p50_ms, state.detect_p99_ms
    # (priority, text, style); lower priority number = kept longer.
    fields: list[tuple[int, str, str]] = [
        (0, f" {mode_label(state)} ", "bold reverse"),
        (0, "EXEC ON" if execution else "EXEC OFF", "bold green" if execution else "bold"),
        (0, f"thr {state.min_net_bps:+.1f}bps", "bold cyan"),
        (1, focused or "—", "bold"),
        (1, f"{fmt_rate(state.quotes_per_s)} q/s", ""),
        (2, f"det {fmt_ms(p50)}/{fmt_ms(p99)}ms", ""),
        (2, f"PnL {fmt_money(pnl, 0).strip()} {ccy}".rstrip() if pnl is not None else "", "bold"),
        (3, f"bus {bus}", bus_style),
        (3, f"up {fmt_uptime(state.uptime_s)}", ""),
        (4, "LOG PAUSED" if paused else "", "bold yellow"),
        (4, f"{fmt_clock(now_ns)} UTC", "dim"),
    ]
    fields = [f for f in fields if f[1]]
    sep = " │ "
    for cut in (5, 4, 3, 2, 1):
        kept = [f for f in fields if f[0] < cut]
        total = sum(len(t) for _, t, _ in kept) + len(sep) * (len(kept) - 1)
        if total <= width:
            break
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, (_, t, st) in enumerate(kept):
        if i:
            out.append(sep, "dim")
        out.append(t, st)
    return out


class HeaderBar(LiveText):
    """Repainted only when its text changes; never triggers a layout pass (one line)."""

    DEFAULT_CSS = """
    HeaderBar { height: 1; dock: top; background: $panel; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__("", **kw)
        self._last: tuple | None = None

    def show(self, text: Text) -> None:
        if self.set_text(text):
            self._last = (text.plain, tuple(text.spans))
