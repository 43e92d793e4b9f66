"""Net edge over time for the focused symbol, one line per venue pair, threshold drawn.

Values come from ``arbtui.backend.edge.net_bps`` — the one formula the
detector uses — applied to the latest quotes at each sample. plotext's
``build()`` re-renders the whole chart (tens of ms), so the dashboard calls
``redraw`` at most twice a second and only while the chart is visible; each widget
owns its ``Plot`` (textual-plotext's per-widget instance), never plotext's module-level
global figure, which two charts would otherwise share.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from textual_plotext import PlotextPlot

from arbtui.backend.edge import net_bps

MAX_LINES = 4  # more pairs than this is unreadable in a terminal chart


class SpreadChart(PlotextPlot):
    DEFAULT_CSS = """
    SpreadChart { height: 1fr; min-height: 8; border: round $primary-darken-2; }
    """

    def __init__(self, maxlen: int = 240, period_s: float = 0.5, **kw: Any) -> None:
        super().__init__(**kw)
        self.symbol = ""
        self.maxlen = maxlen
        self.period_ns = int(period_s * 1e9)
        self.series: dict[tuple[str, str], deque[tuple[int, float]]] = {}
        self.last_ns: int | None = None
        self.dirty = True
        self._drawn_threshold: float | None = None
        self.border_title = "net edge (bps)"

    def sample(self, symbol: str, quotes: dict[tuple[str, str], Any], fees: dict[str, float],
               now_ns: int) -> None:
        if symbol != self.symbol:
            self.symbol = symbol
            self.series.clear()
            self.last_ns = None
            self.dirty = True
            self.border_title = f"net edge {symbol} (bps)"
        if self.last_ns is not None and now_ns - self.last_ns < self.period_ns:
            return
        self.last_ns = now_ns
        books = {v: q for (v, s), q in quotes.items() if s == symbol}
        for a, qa in books.items():
            for b, qb in books.items():
                if a == b or qa.ask <= 0:
                    continue
                net = net_bps(qa.ask, qb.bid, fees.get(a, 0.0), fees.get(b, 0.0))
                buf = self.series.get((a, b))
                if buf is None:
                    buf = self.series[(a, b)] = deque(maxlen=self.maxlen)
                buf.append((now_ns, net))
                self.dirty = True

    def redraw(self, threshold: float, now_ns: int) -> None:
        if not self.dirty and threshold == self._drawn_threshold:
            return
        self._drawn_threshold = threshold
        self.dirty = False
        plt = self.plt
        plt.clear_data()
        # The pairs closest to the threshold are the ones the operator watches.
        pairs = sorted(self.series.items(), key=lambda kv: -kv[1][-1][1])[:MAX_LINES]
        for (a, b), buf in sorted(pairs):
            xs = [(t - now_ns) / 1e9 for t, _ in buf]
            ys = [v for _, v in buf]
            plt.plot(xs, ys, label=f"{a[:4]}>{b[:4]}", marker="braille")
        plt.horizontal_line(threshold, color="red")
        if not pairs:
            plt.title("waiting for two venues")
        else:
            plt.title("")
        plt.xlabel("s")
        self.refresh()
