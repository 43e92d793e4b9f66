"""``enter``: one opportunity in full — the levels, the fee math and the fills.

Everything shown about the edge comes from ONE evaluation: the row's latest
event carries the levels it walked, its fees, rate, flat cost and threshold, and
the size, VWAPs and profit they gave (``model.Opportunity``). Nothing is
recomputed from another book or from today's config.
"""

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
from arbtui.model import OppEvent
from arbtui.ui.widgets.opportunity_log import OppRow


def book_table(row: OppRow, levels: int = 10) -> Table:
    """The levels of the row's latest evaluation; those its walk took are bold."""
    o = row.last
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
        used_a = a is not None and o.size > 0 and a[0] <= o.buy_limit
        used_b = b is not None and o.size > 0 and b[0] >= o.sell_limit
        t.add_row(Text(fmt_sz(a[1]) if a else "", "bold" if used_a else "dim"),
                  Text(fmt_px(a[0]) if a else "", "bold red" if used_a else "red"), "│",
                  Text(fmt_px(b[0]) if b else "", "bold green" if used_b else "green"),
                  Text(fmt_sz(b[1]) if b else "", "bold" if used_b else "dim"))
    if n == 0:
        t.add_row("", "(books not captured)", "", "", "")
    return t


def fee_math(row: OppRow) -> Text:
    """The edge.py formula with the numbers of the row's latest evaluation filled in."""
    o = row.last
    q, fa, fb, rate, flat = o.size, o.buy_fee_bps, o.sell_fee_bps, o.rate or 1.0, o.flat_cost
    ask, bid = o.buy_vwap, o.sell_vwap * rate  # the sell VWAP in the buy leg's currency
    ccy = f" {o.quote_ccy}" if o.quote_ccy else ""
    cost = q * ask * (1 + fa / 1e4)
    proceeds = q * bid * (1 - fb / 1e4)
    t = Text()
    t.append(f"buy   {q:.6g} @ VWAP {o.buy_vwap:.8g} on {o.buy_venue} (levels up to "
             f"{o.buy_limit:.8g}), taker fee {fa:g} bps\n")
    t.append(f"      cost     = size·vwap·(1+fee) = {cost:,.4f}{ccy}\n", "red")
    conv = f" × rate {rate:.6g}" if rate != 1.0 else ""
    t.append(f"sell  {q:.6g} @ VWAP {o.sell_vwap:.8g}{conv} on {o.sell_venue} (levels down to "
             f"{o.sell_limit:.8g}), taker fee {fb:g} bps\n")
    t.append(f"      proceeds = size·vwap·(1−fee) = {proceeds:,.4f}{ccy}\n", "green")
    t.append(f"      flat cost = {flat:,.4f}\n", "dim")
    if q > 0 and ask > 0:
        t.append(f"profit = proceeds − cost − flat = "
                 f"{net_profit(ask, bid, q, fa, fb, flat):+,.4f}{ccy}\n", "bold")
        t.append(f"gross  = (vwap_s−vwap_b)/vwap_b = {gross_bps(ask, bid):+.2f} bps\n")
        t.append(f"net    = profit/cost          = "
                 f"{net_bps(ask, bid, fa, fb, size=q, flat_cost=flat):+.2f} bps\n", "bold")
    t.append(f"top    = best ask {o.buy_price:.8g} / bid {o.sell_price:.8g}: "
             f"{o.top_net_bps:+.2f} bps net per unit\n")
    t.append(f"size   = depth whose marginal net edge ≥ {o.min_net_bps:+.2f} bps "
             f"(limited by {o.limited_by or '—'})", "dim")
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


def detail_renderable(row: OppRow, now_ns: int) -> Group:
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
    when = ("at detection" if o.event is OppEvent.OPENED else "that last held before closing"
            if o.event is OppEvent.CLOSED else f"at {fmt_clock(o.ts_ns, millis=True)} UTC")
    return Group(head, Text(f"\nlevels of the evaluation {when}", "bold underline"),
                 book_table(row), Text("\nfee math (arbtui/backend/edge.py)", "bold underline"),
                 fee_math(row), Text("\nfills", "bold underline"), fills_table(row))


def latency_budget(row: OppRow, catch: dict[str, Any] | None, width: int = 90) -> Group:
    """The pair's p_catch and EV, and its catch probability vs round-trip latency (the
    detector's ``backend.catch`` curves, ``EngineState.extra["catch"]``) as a plotext curve."""
    o = row.last
    head = Text()
    if o.p_catch is not None:
        head.append(f"p_catch {o.p_catch:.2f} · EV {o.ev or 0.0:+.4f} {o.quote_ccy} "
                    f"({o.ev_bps or 0.0:+.2f} bps)\n", "bold")
    pair = f"{o.buy_venue}>{o.sell_venue}"
    c = (catch or {}).get("pairs", {}).get(pair)
    if c is None:
        head.append(f"latency budget {pair}: no closed windows of this pair yet (prior only)",
                    "dim")
        return Group(head)
    import plotext as plt

    grid = [L for L in catch["grid_ms"] if L <= 300]  # type: ignore[index]
    head.append(f"latency budget {pair}: P(catch) by round trip, {c['windows']} windows; "
                f"this pair's configured round trip {c['round_trip_ms']:g} ms")
    plt.clear_figure()
    plt.theme("clear")
    plt.plotsize(width, 12)
    plt.plot(grid, c["p_catch"][:len(grid)], marker="braille", label="P(catch)")
    plt.plot(grid, c["survival"][:len(grid)], marker="braille", label="survival")
    plt.vline(c["round_trip_ms"])
    plt.ylim(0, 1)
    plt.xlabel("round trip ms")
    return Group(head, Text(plt.uncolorize(plt.build())))


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
            yield Static(detail_renderable(self.row, now))
            state = getattr(getattr(self.app, "dashboard", None), "last_state", None)
            catch = getattr(state, "extra", {}).get("catch") if state is not None else None
            yield Static(Group(Text("\nlatency budget (arbtui/backend/catch.py)",
                                    "bold underline"), latency_budget(self.row, catch)))

    def action_close(self) -> None:
        self.dismiss(None)
