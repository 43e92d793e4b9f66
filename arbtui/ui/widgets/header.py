"""One-line status header: the shared health facts (arbtui.health) plus focus, pause, clock.

Fields are laid out in priority order and the low-priority ones are dropped
first when the terminal is narrow, so the execution state and the threshold are
visible even at 80 columns.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from arbtui.backend.roles.control import commands_text, threshold_text
from arbtui.fmt import fmt_clock
from arbtui.health import BAD, OK, WARN, health_facts, health_fields
from arbtui.health import mode_label as _mode_label
from arbtui.ui.widgets.live_text import LiveText

_TONE = {OK: "green", WARN: "yellow", BAD: "bold red"}
_KEY_STYLE = {"mode": "bold reverse", "min_net_bps": "bold cyan", "pnl": "bold"}


def mode_label(state: Any) -> str:
    """LIVE / DEMO / VIEW, or REPLAY ×speed (``max`` unpaced; ``done`` once finished)."""
    return _mode_label(state.mode, state.extra or {})


def header_text(state: Any, *, now_ns: int, width: int, focused: str, paused: bool,
                execution: bool | None = None, facts: dict[str, Any] | None = None) -> Text:
    """Build the header for ``width`` columns (the least important fields are left out first).

    The health fields come from ``arbtui.health`` -- the same facts the headless
    status line writes; only the focused symbol, the log pause and the clock are the
    dashboard's own. ``execution`` overrides the state's flag (kept for old callers).
    """
    f = dict(facts if facts is not None else health_facts(state))
    if execution is not None:
        f["execution"] = execution
    # (priority, text, style); lower priority number = kept longer.
    fields: list[tuple[int, str, str]] = []
    # A viewer's threshold is what the detectors acknowledge they apply (control topic),
    # with a command in flight shown as pending and one nobody acked as UNACKED.
    ctl = (state.extra or {}).get("control")
    for prio, key, text, tone in health_fields(f):
        if key == "min_net_bps" and isinstance(ctl, dict):
            text, tone = threshold_text(ctl)
            tone = {"warn": WARN, "bad": BAD}.get(tone, "")
            if tone == BAD:
                prio = 0
        style = _KEY_STYLE.get(key, "")
        if key == "execution":
            style = "bold green" if f["execution"] else "bold"
        elif tone in _TONE:
            style = _TONE[tone]
        fields.append((prio, text, style))
    fields.insert(3, (1, focused or "—", "bold"))
    if isinstance(ctl, dict):
        text, tone = commands_text(ctl)
        if text:
            fields.append((0 if tone == "bad" else 1, text, _TONE.get(
                {"warn": WARN, "bad": BAD}.get(tone, ""), "")))
    fields += [
        (4, "LOG PAUSED" if paused else "", "bold yellow"),
        # In a replay the clock is the recording's time: context for everything shown.
        (1 if f["mode"] == "REPLAY" else 4, f"{fmt_clock(now_ns)} UTC", "dim"),
    ]
    # Most important first: a fault (priority raised in arbtui.health) moves forward.
    fields = sorted((f for f in fields if f[1]), key=lambda f: f[0])
    sep = " │ "
    # Greedy by priority: a long field that does not fit leaves room for shorter,
    # less important ones instead of hiding everything after it.
    kept: list[tuple[int, str, str]] = []
    used = -len(sep)
    for prio, text, style in fields:
        room = width - used - len(sep)
        if len(text) > room and prio == 0 and room >= 8:
            text = text[: room - 1] + "…"  # a fault is shown clipped rather than not at all
        if len(text) <= room:
            kept.append((prio, text, style))
            used += len(sep) + len(text)
    out = Text(no_wrap=True, overflow="ellipsis")
    for i, (_, t, st) in enumerate(kept):
        if i:
            out.append(sep, "dim")
        out.append(t, st)
    out.truncate(width, overflow="ellipsis")
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
