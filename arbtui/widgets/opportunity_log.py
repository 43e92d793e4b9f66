"""The opportunity log: one row per opportunity, keyed by its id.

Events arrive in batches (the dashboard drains ``engine.events_since`` once per
sample). A batch first folds every event into its row record, then touches
each changed row once: ``update_cell`` only for cells whose formatted string
changed, fixed column widths, never ``update_width`` (TEXTUAL-NOTES D.2). Rows
beyond the line cap are removed oldest-first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from arbtui.model import Fill, OppEvent, Opportunity
from arbtui.widgets.fmt import fmt_bps, fmt_clock, fmt_lifetime, fmt_money, fmt_sz

#: (key, label, width). Markers first so they survive a narrow terminal.
#: Each width includes one trailing blank (cell_padding is 0 so the table fits 80 columns).
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


@dataclass
class OppRow:
    first: Opportunity  # the OPENED event: it carries both book sides at detection
    last: Opportunity
    fills: list[Fill] = field(default_factory=list)
    closed: bool = False
    cells: dict[str, Any] = field(default_factory=dict)

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


class OpportunityLog(DataTable):
    DEFAULT_CSS = """
    OpportunityLog { height: 1fr; }
    """

    def __init__(self, cap: int = 2000, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, cell_padding=0, **kw)
        self.cap = cap
        self.rows_by_id: dict[str, OppRow] = {}
        self.min_net = 0.0
        self.exec_net = 0.0

    def on_mount(self) -> None:
        for key, label, w in COLUMNS:
            self.add_column(label.ljust(w) if key in ("mk", "time", "sym", "buy", "sell")
                            else label.rjust(w - 1) + " ", width=w, key=key)

    # ------------------------------------------------------------------ data

    def apply_events(self, events: list[Any], now_ns: int) -> int:
        """Fold a batch of Opportunity/Fill events in; returns how many rows were added."""
        touched: dict[str, OppRow] = {}
        new: list[str] = []
        for ev in events:
            if isinstance(ev, Opportunity):
                row = self.rows_by_id.get(ev.id)
                if row is None:
                    # An UPDATED/CLOSED whose OPENED fell out of the engine's ring still gets a row.
                    row = OppRow(first=ev, last=ev)
                    self.rows_by_id[ev.id] = row
                    new.append(ev.id)
                else:
                    row.last = ev
                if ev.event is OppEvent.CLOSED:
                    row.closed = True
                touched[ev.id] = row
            elif isinstance(ev, Fill):
                row = self.rows_by_id.get(ev.opp_id)
                if row is not None:
                    row.fills.append(ev)
                    touched[ev.opp_id] = row
        # Drop the oldest records beyond the cap (before touching the table, so a burst
        # larger than the cap never adds rows only to remove them again).
        excess = len(self.rows_by_id) - self.cap
        if excess > 0:
            for rid in list(self.rows_by_id)[:excess]:
                del self.rows_by_id[rid]
                touched.pop(rid, None)
                if rid in self.rows:
                    self.remove_row(rid)
        at_end = self.cursor_row >= self.row_count - 1
        added = 0
        for rid in new:
            row = self.rows_by_id.get(rid)
            if row is None:
                continue
            row.cells = self._cells(row, now_ns)
            self.add_row(*(row.cells[k] for k, _, _ in COLUMNS), key=rid)
            touched.pop(rid, None)
            added += 1
        for rid, row in touched.items():
            self._refresh_row(rid, row, now_ns)
        if added and at_end:
            self.move_cursor(row=self.row_count - 1, animate=False)
        return added

    def tick(self, now_ns: int) -> None:
        """Live lifetimes for open rows (a handful), once per sample."""
        for rid, row in self.rows_by_id.items():
            if not row.closed:
                self._refresh_row(rid, row, now_ns, only=("life",))

    def restyle(self, min_net: float, exec_net: float, now_ns: int) -> None:
        """Thresholds changed: recolor every row (rare, operator-driven)."""
        if (min_net, exec_net) == (self.min_net, self.exec_net):
            return
        self.min_net, self.exec_net = min_net, exec_net
        for rid, row in self.rows_by_id.items():
            self._refresh_row(rid, row, now_ns)

    def clear_log(self) -> None:
        self.rows_by_id.clear()
        self.clear()

    def selected(self) -> OppRow | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except Exception:  # noqa: BLE001 - cursor outside the table after a clear
            return None
        return self.rows_by_id.get(str(key.value))

    # ------------------------------------------------------------------ cells

    def _cells(self, row: OppRow, now_ns: int) -> dict[str, Any]:
        o = row.last
        st = edge_style(row, self.min_net, self.exec_net)
        dim = "dim" if row.closed else ""
        return {
            "mk": Text(row.markers().ljust(3), "bold magenta" if o.suspect else "bold"),
            "time": Text(fmt_clock(row.first.opened_ts_ns or o.ts_ns).ljust(9), dim),
            "sym": Text(o.symbol[:8].ljust(9), dim),
            "buy": Text(o.buy_venue[:8].ljust(9), dim),
            "sell": Text(o.sell_venue[:8].ljust(9), dim),
            "gross": Text(fmt_bps(o.gross_bps, 6) + " ", dim),
            "net": Text(fmt_bps(o.net_bps, 6) + " ", st),
            "profit": Text(fmt_money(o.profit, 8) + " ", st),
            "life": Text(fmt_lifetime(row.lifetime_ms(now_ns)).rjust(6) + " ", dim),
            "size": Text(fmt_sz(o.size, 8) + " ", dim),
        }

    def _refresh_row(self, rid: str, row: OppRow, now_ns: int, only: tuple[str, ...] = ()) -> None:
        cells = self._cells(row, now_ns)
        for k, v in cells.items():
            if only and k not in only:
                continue
            old = row.cells.get(k)
            if old is None or old.plain != v.plain or old.style != v.style:
                row.cells[k] = v
                if rid in self.rows:
                    self.update_cell(rid, k, v)
