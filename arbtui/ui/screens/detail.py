"""``enter``: one opportunity in full — both book sides at detection, the fee math, the fills."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from arbtui.backend.edge import gross_bps, net_bps, net_profit
from arbtui.fmt import fmt_clock, fmt_lifetime, fmt_px, fmt_sz
from arbtui.ui.widgets.opportunity_log import OppRow


def book_table(row: OppRow, levels: int = 10) -> Table:
    o = row.first
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    t.add_column(f"{o.buy_venue} ask size", justify="right")
    t.add_column(f"{o.buy_venue} ask (buy)", justify="right", style="red")
    t.add_column("│", style="dim")
    t.add_column(f"{o.sell_venue} bid (sell)", justify="right", style="green")
    t.add_column(f"{o.sell_venue} bid size", justify="right")
    n = min(levels, max(len(o.buy_book), len(o.sell_book)))
    for i in range(n):
        a = o.buy_book[i] if i < len(o.buy_book) else None
        b = o.sell_book[i] if i < len(o.sell_book) else None
        t.add_row(fmt_sz(a[1]) if a else "", fmt_px(a[0]) if a else "", "│",
                  fmt_px(b[0]) if b else "", fmt_sz(b[1]) if b else "")
    if n == 0:
        t.add_row("", "(books not captured)", "", "", "")
    return t


def fee_math(row: OppRow, flat_cost: float) -> Text:
    """The edge.py formula with this opportunity's numbers filled in."""
    o = row.last
    ask, bid, q = o.buy_price, o.sell_price, o.size
    fa, fb = o.buy_fee_bps, o.sell_fee_bps
    cost = q * ask * (1 + fa / 1e4)
    proceeds = q * bid * (1 - fb / 1e4)
    profit = net_profit(ask, bid, q, fa, fb, flat_cost)
    t = Text()
    t.append(f"buy   {q:.6g} @ {ask:.8g} on {o.buy_venue}, taker fee {fa:g} bps\n")
    t.append(f"      cost     = size·ask·(1+fee) = {cost:,.4f}\n", "red")
    t.append(f"sell  {q:.6g} @ {bid:.8g} on {o.sell_venue}, taker fee {fb:g} bps\n")
    t.append(f"      proceeds = size·bid·(1−fee) = {proceeds:,.4f}\n", "green")
    t.append(f"      flat cost = {flat_cost:,.4f}\n", "dim")
    t.append(f"profit = proceeds − cost − flat = {profit:+,.4f}\n", "bold")
    t.append(f"gross  = (bid−ask)/ask        = {gross_bps(ask, bid):+.2f} bps\n")
    if q > 0 and ask > 0:
        t.append(f"net    = profit/cost          = "
                 f"{net_bps(ask, bid, fa, fb, size=q, flat_cost=flat_cost):+.2f} bps", "bold")
    return t


def fills_table(row: OppRow) -> Table | Text:
    if not row.fills:
        return Text("no fills (simulated execution off, below the execution threshold, or pending)",
                    "dim")
    t = Table(box=None, padding=(0, 1), header_style="bold")
    for c in ("time", "venue", "side", "requested", "filled", "vwap", "fee", "status", "reason"):
        t.add_column(c)
    for f in row.fills:
        t.add_row(fmt_clock(f.ts_ns, millis=True), f.venue, f.side, f"{f.requested:.6g}",
                  f"{f.filled:.6g}", f"{f.vwap:.8g}", f"{f.fee:.4f}", f.status, f.reason)
    return t


def detail_renderable(row: OppRow, flat_cost: float, now_ns: int) -> Group:
    o = row.last
    head = Text()
    head.append(f"{o.symbol}  buy {o.buy_venue} → sell {o.sell_venue}\n", "bold")
    head.append(f"opened {fmt_clock(row.first.opened_ts_ns, millis=True)} UTC · "
                f"{'closed' if row.closed else 'open'} · lifetime "
                f"{fmt_lifetime(row.lifetime_ms(now_ns))}")
    if row.closed and o.reason:
        head.append(f" ({o.reason})", "dim")
    head.append(f"\nnet {o.net_bps:+.2f} bps (peak {o.peak_net_bps:+.2f}) · gross {o.gross_bps:+.2f} bps"
                f" · size {o.size:.6g} · profit {o.profit:+.4f} (peak {o.peak_profit:+.4f})")
    if o.suspect:
        head.append(f"\nSUSPECT: {o.reason or 'implausible edge'}", "bold magenta")
    return Group(head, Text("\nbooks at detection", "bold underline"), book_table(row),
                 Text("\nfee math (arbtui/backend/edge.py)", "bold underline"),
                 fee_math(row, flat_cost), Text("\nfills", "bold underline"), fills_table(row))


class DetailScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter,q", "close", "Close", key_display="esc")]
    DEFAULT_CSS = """
    DetailScreen { align: center middle; }
    DetailScreen > VerticalScroll {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    DetailScreen Static { width: 1fr; height: auto; }
    """

    def __init__(self, row: OppRow, cfg: Any, now_ns: int | None = None) -> None:
        super().__init__()
        self.row = row
        self.cfg = cfg
        self.now_ns = now_ns

    def compose(self) -> ComposeResult:
        now = self.now_ns if self.now_ns is not None else getattr(self.app, "clock", lambda: 0)()
        with VerticalScroll() as vs:
            vs.border_title = "opportunity"
            vs.border_subtitle = "esc to close"
            yield Static(detail_renderable(self.row, self.cfg.detector.flat_cost, now))

    def action_close(self) -> None:
        self.dismiss(None)
