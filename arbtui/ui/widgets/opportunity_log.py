"""The opportunity log: one row per opportunity, keyed by its id.

Events arrive in batches (the dashboard drains ``engine.events_since`` once per
sample). A batch folds every event into its row record and drops that row's
cached line; only rows whose record changed are rendered again, at fixed column
widths (a width that follows its content would make every update re-measure and re-lay out
the whole log; one write per event would re-render the log per event). Rows beyond the
line cap go oldest-first.

What a row keeps is kept lean on purpose: every object the dashboard holds on
to is walked by each full (generation 2) garbage collection, which stops every
thread, the engine's too. Rows holding ten Rich ``Text`` cells each and a cached
``Strip`` for every row ever shown (a Strip carries seven caches) made the log
~100 k of the heap's ~200 k tracked objects, and a full collection took 170-300
ms under load (benchmarks/ui.py --trace): a key press that met one waited that
long. Now a row holds plain strings (untracked by the collector), and strips
are cached only for the rows on screen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from arbtui.fmt import fmt_bps, fmt_clock, fmt_lifetime, fmt_money, fmt_sz
from arbtui.model import Fill, OppEvent, Opportunity

#: (key, label, width). Markers first so they survive a narrow terminal.
#: Each width includes one trailing blank, so the columns fit 80 terminal columns.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("mk", "M", 3),
    ("time", "Time", 9),
    ("sym", "Symbol", 9),
    ("buy", "Buy@", 9),
    ("sell", "Sell@", 9),
    ("gross", "Gross", 7),
    ("net", "Net", 7),
    ("profit", "Profit", 9),
    ("life", "Life", 7),
    ("size", "Size", 9),
)


#: One rendered cell: (text, style). Plain strings, so a row is no work for the GC.
Cell = tuple[str, str]


@dataclass(slots=True)
class OppRow:
    first: Opportunity  # the OPENED event: it carries both book sides at detection
    last: Opportunity
    fills: list[Fill] = field(default_factory=list)
    closed: bool = False
    life: str = ""  # the lifetime cell as last rendered; tick() re-renders when it moves

    def markers(self) -> str:
        m = ""
        if self.fills:
            statuses = {f.status for f in self.fills}
            sides = {f.side for f in self.fills if f.filled > 0}
            if statuses == {"filled"} and sides == {"buy", "sell"}:
                m += "E"  # executed: both legs filled in full
            elif sides:
                m += "P"  # partial: a leg short or missing
            else:
                m += "X"  # every leg rejected
        if self.last.suspect:
            m += "!"
        return m

    def lifetime_ms(self, now_ns: int) -> float:
        if self.closed:
            return self.last.lifetime_ms
        return max(0.0, (now_ns - self.first.opened_ts_ns) / 1e6)


def edge_style(row: OppRow, min_net: float, exec_net: float) -> str:
    """Colored by net edge: above the execution threshold bright, above detection green."""
    net = row.last.net_bps
    if row.last.suspect:
        style = "magenta"
    elif net >= exec_net:
        style = "bold green"
    elif net >= min_net:
        style = "green"
    else:
        style = "yellow"
    return f"{style} dim" if row.closed else style


class OpportunityLog(ScrollView, can_focus=True):
    """Line-API log: each row is rendered to a ``Strip`` once per change and cached.

    Textual's DataTable keys its cell cache on a table-wide update counter, so one
    ``update_cell`` re-renders every visible cell: ~55 ms a frame at 30 rows under
    load (benchmarks/ui.py). Here a changed row costs one row render, scrolling
    costs nothing, and line 0 is a fixed column header.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
    ]
    DEFAULT_CSS = """
    OpportunityLog { height: 1fr; scrollbar-size-horizontal: 0; }
    """

    def __init__(self, cap: int = 2000, **kw: Any) -> None:
        super().__init__(**kw)
        self.cap = cap
        self.rows_by_id: dict[str, OppRow] = {}
        self.order: list[str] = []
        self.cursor = 0
        self.min_net = 0.0
        self.exec_net = 0.0
        self._strips: dict[str, Strip] = {}
        self._header: Strip | None = None
        self.width_total = sum(w for _, _, w in COLUMNS)

    @property
    def row_count(self) -> int:
        return len(self.order)

    # ------------------------------------------------------------------ data

    def apply_events(self, events: list[Any], now_ns: int) -> int:
        """Fold a batch of Opportunity/Fill events in; returns how many rows were added."""
        at_end = self.cursor >= len(self.order) - 1
        added = 0
        for ev in events:
            if isinstance(ev, Opportunity):
                row = self.rows_by_id.get(ev.id)
                if row is None:
                    # An UPDATED/CLOSED whose OPENED fell out of the engine's ring still gets a row.
                    row = OppRow(first=ev, last=ev)
                    self.rows_by_id[ev.id] = row
                    self.order.append(ev.id)
                    added += 1
                else:
                    row.last = ev
                if ev.event is OppEvent.CLOSED:
                    row.closed = True
                self._strips.pop(ev.id, None)
            elif isinstance(ev, Fill):
                row = self.rows_by_id.get(ev.opp_id)
                if row is not None:
                    row.fills.append(ev)
                    self._strips.pop(ev.opp_id, None)
        excess = len(self.order) - self.cap
        if excess > 0:
            for rid in self.order[:excess]:
                self.rows_by_id.pop(rid, None)
                self._strips.pop(rid, None)
            del self.order[:excess]
            self.cursor = max(0, self.cursor - excess)
        if added and at_end:
            self.cursor = len(self.order) - 1
        if added or excess > 0:
            self._resize()
            self._ensure_visible()
        if events:
            self.refresh()
        return added

    def tick(self, now_ns: int) -> None:
        """Live lifetimes for open rows (a handful), at the chart cadence."""
        changed = False
        for rid, row in self.rows_by_id.items():
            if not row.closed and _life(row, now_ns) != row.life:
                self._strips.pop(rid, None)
                changed = True
        if changed:
            self.refresh()

    def restyle(self, min_net: float, exec_net: float, now_ns: int) -> None:
        """Thresholds changed: recolor every row (rare, operator-driven)."""
        if (min_net, exec_net) == (self.min_net, self.exec_net):
            return
        self.min_net, self.exec_net = min_net, exec_net
        self._strips.clear()
        self.refresh()

    def clear_log(self) -> None:
        self.rows_by_id.clear()
        self.order.clear()
        self._strips.clear()
        self.cursor = 0
        self._resize()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def selected(self) -> OppRow | None:
        if not self.order:
            return None
        return self.rows_by_id.get(self.order[min(self.cursor, len(self.order) - 1)])

    # ------------------------------------------------------------------ cursor

    def action_cursor(self, step: int) -> None:
        self._move(self.cursor + step)

    def action_page(self, step: int) -> None:
        self._move(self.cursor + step * max(1, self.size.height - 2))

    def action_cursor_to(self, index: int) -> None:
        self._move(index if index >= 0 else len(self.order) - 1)

    def on_click(self, event: Any) -> None:
        if event.y >= 1:
            self._move(int(self.scroll_offset.y) + event.y - 1)

    def _move(self, index: int) -> None:
        if not self.order:
            return
        self.cursor = max(0, min(len(self.order) - 1, index))
        self._ensure_visible()
        self.refresh()

    def _ensure_visible(self) -> None:
        rows_visible = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + rows_visible:
            self.scroll_to(y=self.cursor - rows_visible + 1, animate=False)

    def _resize(self) -> None:
        # Changing virtual_size costs a whole-screen layout pass; grow it in steps of
        # 64 rows so a steady stream of new rows pays that once per 64, not per frame.
        rows = len(self.order) + 1
        height = max(64, -(-rows // 64) * 64) if rows > self.size.height else rows
        if self.virtual_size.height != height or self.virtual_size.width != self.width_total:
            self.virtual_size = Size(self.width_total, height)

    # ------------------------------------------------------------------ rendering

    def on_mount(self) -> None:
        self._resize()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if y == 0:
            if self._header is None:
                hdr = Text(no_wrap=True)
                for key, label, w in COLUMNS:
                    left = key in ("mk", "time", "sym", "buy", "sell")
                    hdr.append(label.ljust(w) if left else label.rjust(w - 1) + " ", "bold")
                self._header = self._strip(hdr)
            return self._header.crop_extend(0, width, Style()).apply_style(self.rich_style)
        idx = int(self.scroll_offset.y) + y - 1
        if idx >= len(self.order):
            return Strip.blank(width, self.rich_style)
        rid = self.order[idx]
        strip = self._strips.get(rid)
        if strip is None:
            row = self.rows_by_id[rid]
            cells = self._cells(row, self.app_clock())
            row.life = cells[LIFE][0]
            line = Text(no_wrap=True)
            for text, style in cells:
                line.append(text, style)
            if len(self._strips) >= 2 * self.size.height + 8:
                self._evict_offscreen()
            strip = self._strips[rid] = self._strip(line)
        # Pad with a real style: a None style breaks the monochrome (NO_COLOR) filter.
        strip = strip.crop_extend(0, width, Style()).apply_style(self.rich_style)
        if idx == self.cursor:
            strip = strip.apply_style(self._cursor_style())
        return strip

    def _evict_offscreen(self) -> None:
        """Keep cached strips only for rows in view: a row scrolled away is re-rendered
        (one row, cheap) if it comes back, instead of being held until it leaves the log."""
        top = int(self.scroll_offset.y)
        keep = self.order[top:top + self.size.height]
        self._strips = {rid: self._strips[rid] for rid in keep if rid in self._strips}

    def _cursor_style(self) -> Style:
        # Reverse video reads in monochrome (NO_COLOR) as well as in colour.
        return Style(reverse=True, bold=self.has_focus)

    def _strip(self, text: Text) -> Strip:
        segments = list(text.render(self.app.console))
        return Strip(segments, text.cell_len)

    def app_clock(self) -> int:
        return getattr(self.app, "clock", time.time_ns)()

    # ------------------------------------------------------------------ cells

    def _cells(self, row: OppRow, now_ns: int) -> tuple[Cell, ...]:
        """The row's cells in ``COLUMNS`` order."""
        o = row.last
        st = edge_style(row, self.min_net, self.exec_net)
        dim = "dim" if row.closed else ""
        return (
            (row.markers().ljust(3), "bold magenta" if o.suspect else "bold"),
            (fmt_clock(row.first.opened_ts_ns or o.ts_ns).ljust(9), dim),
            (o.symbol[:8].ljust(9), dim),
            (o.buy_venue[:8].ljust(9), dim),
            (o.sell_venue[:8].ljust(9), dim),
            (fmt_bps(o.gross_bps, 6) + " ", dim),
            (fmt_bps(o.net_bps, 6) + " ", st),
            (fmt_money(o.profit, 8) + " ", st),
            (_life(row, now_ns), dim),
            (fmt_sz(o.size, 8) + " ", dim),
        )


LIFE = [k for k, _, _ in COLUMNS].index("life")


def _life(row: OppRow, now_ns: int) -> str:
    return fmt_lifetime(row.lifetime_ms(now_ns)).rjust(6) + " "
