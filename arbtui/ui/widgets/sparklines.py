"""Latency sparklines: per-venue feed latency, end-to-end detection latency, quotes/s.

Samples are taken on the dashboard's chart cadence (<= 2 Hz) into bounded
deques keyed by the dashboard clock: a sample is only taken when the clock has
moved on by at least ``period_s``, so a frozen clock (snapshot tests) gives
exactly one sample and a deterministic picture.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from textual.containers import Horizontal, Vertical
from textual.widgets import Sparkline

from arbtui.fmt import fmt_ms, fmt_rate
from arbtui.ui.widgets.live_text import LiveText


class Series:
    """A bounded, clock-gated sample buffer."""

    def __init__(self, maxlen: int = 120, period_s: float = 0.5) -> None:
        self.data: deque[float] = deque(maxlen=maxlen)
        self.period_ns = int(period_s * 1e9)
        self.last_ns: int | None = None

    def add(self, now_ns: int, value: float | None) -> bool:
        if value is None:
            return False
        if self.last_ns is not None and now_ns - self.last_ns < self.period_ns:
            return False
        self.last_ns = now_ns
        self.data.append(float(value))
        return True


class _Row(Horizontal):
    """One line: label (fixed width, so the sparkline never shifts) then the sparkline."""

    DEFAULT_CSS = """
    _Row { height: 1; }
    _Row > LiveText { height: 1; width: 21; }
    _Row > Sparkline { height: 1; width: 1fr; }
    """

    def __init__(self, title: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.title = title
        self.series = Series()
        self._label = LiveText(title)
        self._spark = Sparkline([], summary_function=max)
        self._last_label = ""

    def compose(self):
        yield self._label
        yield self._spark

    def set_label(self, text: str) -> None:
        if text != self._last_label:
            self._last_label = text
            self._label.set_text(text)

    def push(self) -> None:
        # A new list object: Textual reactives fire only when the assigned value compares
        # unequal, so refilling the same list in place would never repaint.
        self._spark.data = list(self.series.data)


class LatencySparks(Vertical):
    DEFAULT_CSS = """
    LatencySparks { height: auto; border: round $primary-darken-2; padding: 0 1; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: dict[str, _Row] = {}
        self._dirty = True
        self.border_title = "feed latency · detection · rate"

    def compose(self):
        self.rows["_detect"] = _Row("det p99 —", id="spark-detect")
        self.rows["_qps"] = _Row("quotes/s —", id="spark-qps")
        yield self.rows["_detect"]
        yield self.rows["_qps"]

    def sample(self, state: Any, now_ns: int, venues: list[str], render: bool) -> None:
        """Record one sample; push to the widgets only when ``render`` (visible)."""
        changed = False
        for v in venues:
            row = self.rows.get(f"v:{v}")
            if row is None:
                row = _Row(f"{v[:8]} —", id=f"spark-{v}")
                self.rows[f"v:{v}"] = row
                self.mount(row, before=self.rows["_detect"])
            st = state.venues.get(v)
            lat = st.feed_latency_ms if st is not None else None
            if row.series.add(now_ns, lat if lat is not None else None):
                changed = True
            if render:
                row.set_label(f"{v[:8]:<8} {fmt_ms(lat):>5}ms")
        det = self.rows["_detect"]
        if det.series.add(now_ns, state.detect_p99_ms):
            changed = True
        qps = self.rows["_qps"]
        if qps.series.add(now_ns, state.quotes_per_s):
            changed = True
        if render:
            det.set_label(f"det p99 {fmt_ms(state.detect_p99_ms):>5}ms")
            qps.set_label(f"quotes/s {fmt_rate(state.quotes_per_s):>6}")
        self._dirty = self._dirty or changed
        if render and self._dirty:
            self._dirty = False
            for row in self.rows.values():
                row.push()
