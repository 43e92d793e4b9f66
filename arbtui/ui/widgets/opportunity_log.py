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

import math
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from arbtui.fmt import fmt_bps, fmt_clock, fmt_lifetime, fmt_money, fmt_px, fmt_sz
from arbtui.model import Fill, OppEvent, Opportunity


@dataclass(frozen=True, slots=True)
class Col:
    """One log column. ``width`` includes one trailing blank."""

    key: str
    label: str
    width: int
    pos: int  # left-to-right place on screen (the table below is in priority order)
    right: bool = False  # numbers are right-aligned
    replaces: str = ""  # a wider form of that column, taken when the room allows


#: THE column priority, most important first. At a given width the log takes the
#: columns in this order, each one that still fits (a wider form replaces its
#: compact one when there is room), so lower-priority columns go first and come
#: back as the width allows; a column is shown whole or not at all. The first
#: seven are kept at every terminal width from 80 to 200 (the dashboard only puts
#: the charts beside the log when they still fit: ``MUST_KEEP``/``needed_width``).
#: ``P`` (catch probability) and ``EV`` rank above gross and the VWAPs: issue 17
#: wants them at 80 columns without hiding NET, profit, size or lifetime.
COLUMNS: tuple[Col, ...] = (
    Col("time", "Time", 9, pos=10),
    Col("sym", "Symbol", 9, pos=20),
    Col("route", "Buy→Sell", 10, pos=40),  # bina→okx: four letters a venue
    Col("net", "Net", 7, pos=60, right=True),
    Col("profit", "Profit", 9, pos=70, right=True),
    Col("size", "Size", 9, pos=80, right=True),
    Col("life", "Life", 7, pos=90, right=True),
    Col("kind", "K", 2, pos=30),  # S spot, B basis, P perp
    Col("p", "P", 5, pos=100, right=True),
    Col("ev", "EV", 9, pos=110, right=True),
    Col("route_full", "Buy → Sell", 20, pos=40, replaces="route"),
    Col("gross", "Gross", 7, pos=50, right=True),
    Col("mk", "M", 3, pos=0),  # E executed, P partial, X rejected, ! suspect
    Col("kind_word", "Kind", 6, pos=30, replaces="kind"),
    Col("buy_vwap", "Buy VWAP", 11, pos=120, right=True),
    Col("sell_vwap", "SellVWAP", 11, pos=130, right=True),
)
BY_KEY = {c.key: c for c in COLUMNS}
SCROLLBAR_W = 1  # the log's vertical scrollbar (DEFAULT_CSS), drawn over the content width
#: Kept at every width the dashboard gives the log: time, symbol, venues, NET, profit, size, life.
MUST_KEEP = ("time", "sym", "route", "net", "profit", "size", "life")
SORTS = ("time", "ev")


def needed_width(upto: str) -> int:
    """Columns the log needs to show every column up to ``upto`` in priority order."""
    keys = [c.key for c in COLUMNS]
    return sum(c.width for c in COLUMNS[: keys.index(upto) + 1] if not c.replaces)


def plan_columns(width: int) -> tuple[Col, ...]:
    """The columns shown in ``width`` cells, in screen order (see ``COLUMNS``)."""
    chosen: dict[str, Col] = {}
    room = width
    for c in COLUMNS:
        if c.replaces:
            old = chosen.get(c.replaces)
            if old is not None and c.width - old.width <= room:
                del chosen[c.replaces]
                chosen[c.key] = c
                room -= c.width - old.width
        elif c.width <= room:
            chosen[c.key] = c
            room -= c.width
        elif c.key in MUST_KEEP:
            break  # never a lower-priority column in place of a must-keep one
    return tuple(sorted(chosen.values(), key=lambda c: c.pos))


def fit(options: tuple[str, ...] | list[str], width: int) -> str:
    """The first of ``options`` (most precise first) that fits ``width``: a number is
    shown whole in less precision, never cut. ``≫`` if none fits (no real value)."""
    for s in options:
        if s and len(s) <= width:
            return s
    return "≫"


def _num_options(x: float | None, kind: str) -> tuple[str, ...]:
    if x is None or not math.isfinite(x):
        return ("—",)
    if kind == "bps":
        return (fmt_bps(x, 0), f"{x:+.0f}", f"{x / 1e3:+.0f}k", f"{x / 1e6:+.0f}M")
    if kind == "money":
        return (fmt_money(x, 0), f"{x:+.0f}", f"{x / 1e3:+.0f}k", f"{x / 1e6:+.0f}M",
                f"{x / 1e9:+.0f}G")
    if kind == "size":
        return (fmt_sz(x, 8).strip() if abs(x) < 1e8 else "", f"{x / 1e6:.0f}M",
                f"{x / 1e9:.0f}G")
    return (fmt_px(x, 10).strip(), f"{x:.0f}", f"{x / 1e6:.0f}M")


def short_venue(v: str, width: int = 4) -> str:
    """A venue name in ``width`` letters: whole when it fits, else its head and the first
    letter of its market suffix (``binance-usdm`` -> ``binU`` / ``binance·U``), so a perp
    venue never reads as its spot sibling (``bina``)."""
    if len(v) <= width:
        return v
    head, _, tail = v.partition("-")
    if not tail:
        return v[:width]
    if width <= 4:
        return head[: width - 1] + tail[0].upper()
    return head[: width - 2] + "·" + tail[0].upper()


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
    costs nothing, and line 0 is a fixed column header. Which columns show follows
    the width (``plan_columns``); a width change re-renders the rows in view.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "cursor_to(0)", "First", show=False),
        Binding("end", "cursor_to(-1)", "Last", show=False),
    ]
    # A one-cell scrollbar, always reserved in the column plan (``_plan_width``): the
    # columns do not jump when the log first overflows its height.
    DEFAULT_CSS = """
    OpportunityLog { height: 1fr; scrollbar-size-horizontal: 0; scrollbar-size-vertical: 1; }
    """

    def __init__(self, cap: int = 2000, **kw: Any) -> None:
        super().__init__(**kw)
        self.cap = cap
        self.rows_by_id: dict[str, OppRow] = {}
        self.order: list[str] = []  # arrival order (oldest first); evicted from the front
        self.cursor = 0  # index into ``view()``
        self.min_net = 0.0
        self.exec_net = 0.0
        self.sort = "time"
        self._sorted: list[str] | None = None  # ``order`` by EV, rebuilt when rows change
        self._strips: dict[str, Strip] = {}
        self._header: Strip | None = None
        self._plan: tuple[Col, ...] = ()
        self._plan_w = -1

    @property
    def row_count(self) -> int:
        return len(self.order)

    def view(self) -> list[str]:
        """Row ids in display order: arrival, or EV highest first (no estimate last)."""
        if self.sort == "time":
            return self.order
        if self._sorted is None:
            rows = self.rows_by_id

            def key(rid: str) -> tuple[bool, float]:
                ev = rows[rid].last.ev
                return (ev is None, -(ev if ev is not None else 0.0))

            self._sorted = sorted(self.order, key=key)  # stable: ties keep arrival order
        return self._sorted

    # ------------------------------------------------------------------ data

    def apply_events(self, events: list[Any], now_ns: int) -> int:
        """Fold a batch of Opportunity/Fill events in; returns how many rows were added."""
        at_end = self.sort == "time" and self.cursor >= len(self.order) - 1
        selected = self._selected_id() if self.sort != "time" else None
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
            if self.sort == "time":
                self.cursor = max(0, self.cursor - excess)
        if events or excess > 0:
            self._sorted = None
        if self.sort != "time" and events:
            # Sorted by EV, rows move: the cursor stays on the row it was on (a row's
            # cached strip does not depend on its place, so the cache stays valid).
            self._select(selected)
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

    def set_sort(self, sort: str) -> None:
        """``time`` (arrival) or ``ev`` (expected value, highest first); the selected row
        stays selected."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {SORTS}, not {sort!r}")
        if sort == self.sort:
            return
        rid = self._selected_id()
        self.sort = sort
        self._sorted = None
        self._header = None
        self._select(rid)
        self._ensure_visible()
        self.refresh()

    def clear_log(self) -> None:
        self.rows_by_id.clear()
        self.order.clear()
        self._sorted = None
        self._strips.clear()
        self.cursor = 0
        self._resize()
        self.scroll_to(y=0, animate=False)
        self.refresh()

    def selected(self) -> OppRow | None:
        rid = self._selected_id()
        return None if rid is None else self.rows_by_id.get(rid)

    def _selected_id(self) -> str | None:
        view = self.view()
        return view[min(self.cursor, len(view) - 1)] if view else None

    def _select(self, rid: str | None) -> None:
        view = self.view()
        if rid is not None and rid in self.rows_by_id:
            self.cursor = view.index(rid)
        else:
            self.cursor = max(0, min(self.cursor, len(view) - 1))

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
        # Width 0: the columns are planned to the width there is, nothing to scroll sideways.
        if self.virtual_size.height != height or self.virtual_size.width != 0:
            self.virtual_size = Size(0, height)

    # ------------------------------------------------------------------ rendering

    def on_mount(self) -> None:
        self._resize()

    def _plan_width(self) -> int:
        """Cells the columns may use: the content width less the scrollbar's one cell,
        reserved even before it shows (so the plan does not change when it appears)."""
        return max(0, self.size.width - SCROLLBAR_W)

    def columns(self) -> tuple[Col, ...]:
        """The columns shown at the current width (re-planned when the width changes)."""
        w = self._plan_width()
        if w != self._plan_w:
            self._plan_w = w
            self._plan = plan_columns(w)
            self._header = None
            self._strips.clear()
        return self._plan

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        cols = self.columns()
        if y == 0:
            if self._header is None:
                hdr = Text(no_wrap=True)
                for c in cols:
                    label = c.label + ("▼" if c.key == "ev" and self.sort == "ev" else "")
                    hdr.append(label.rjust(c.width - 1) + " " if c.right else label.ljust(c.width),
                               "bold")
                self._header = self._strip(hdr)
            return self._header.crop_extend(0, width, Style()).apply_style(self.rich_style)
        view = self.view()
        idx = int(self.scroll_offset.y) + y - 1
        if idx >= len(view):
            return Strip.blank(width, self.rich_style)
        rid = view[idx]
        strip = self._strips.get(rid)
        if strip is None:
            row = self.rows_by_id[rid]
            now = self.app_clock()
            row.life = _life(row, now)
            line = Text(no_wrap=True)
            for text, style in self._cells(row, now, cols):
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
        keep = self.view()[top:top + self.size.height]
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

    def _cells(self, row: OppRow, now_ns: int, cols: tuple[Col, ...]) -> list[Cell]:
        """The row's cells for ``cols``, each exactly its column's width."""
        st = edge_style(row, self.min_net, self.exec_net)
        return [row_cell(row, c, now_ns, st) for c in cols]


def row_cell(row: OppRow, c: Col, now_ns: int, edge: str = "") -> Cell:
    """One cell: the value whole (``fit``), padded to the column's width less its blank."""
    o = row.last
    dim = "dim" if row.closed else ""
    k = c.key
    w = c.width - 1
    style = dim
    if k == "time":
        text = fmt_clock(row.first.opened_ts_ns or o.ts_ns)
    elif k == "sym":
        text = o.symbol.removesuffix("-PERP")[:w]
    elif k == "route":
        text = f"{short_venue(o.buy_venue)}→{short_venue(o.sell_venue)}"
    elif k == "route_full":
        text = f"{short_venue(o.buy_venue, 9)}→{short_venue(o.sell_venue, 9)}"
    elif k == "kind":
        text = (o.kind or "spot")[:1].upper()
        style = dim if text == "S" else f"bold cyan {dim}".strip()
    elif k == "kind_word":
        text = (o.kind or "spot")[:w]
        style = dim if text == "spot" else f"bold cyan {dim}".strip()
    elif k == "net":
        text, style = fit(_num_options(o.net_bps, "bps"), w), edge
    elif k == "profit":
        text, style = fit(_num_options(o.profit, "money"), w), edge
    elif k == "size":
        text = fit(_num_options(o.size, "size"), w)
    elif k == "life":
        return _life(row, now_ns), dim
    elif k == "p":
        text = "—" if o.p_catch is None else f"{min(1.0, max(0.0, o.p_catch)):.2f}"
    elif k == "ev":
        text = fit(_num_options(o.ev, "money"), w)
    elif k == "gross":
        text = fit(_num_options(o.gross_bps, "bps"), w)
    elif k == "mk":
        text = row.markers()
        style = "bold magenta" if o.suspect else "bold"
    elif k == "buy_vwap":
        text = fit(_num_options(o.buy_vwap or None, "px"), w)
    elif k == "sell_vwap":
        text = fit(_num_options(o.sell_vwap or None, "px"), w)
    else:  # pragma: no cover - every key of COLUMNS is handled above
        text = ""
    text = text[:w]  # names only: every number above was fitted whole already
    return (text.rjust(w) if c.right else text.ljust(w)) + " ", style


def _life(row: OppRow, now_ns: int) -> str:
    w = BY_KEY["life"].width - 1
    ms = row.lifetime_ms(now_ns)
    return fit((fmt_lifetime(ms), f"{ms / 3_600_000:.0f}h", f"{ms / 86_400_000:.0f}d"), w).rjust(w) + " "
