"""The main screen: header, venue panels, opportunity log, sparklines, spread chart, wallets.

The screen SAMPLES the engine at ``ui.refresh_hz`` (``set_interval``); the
engine never posts a UI message per tick: at tens of thousands of quotes a second a
message per quote would cost more than the quotes (docs/architecture.md). Each sample
does all widget updates inside one ``app.batch_update()``; charts are fed at
<= 2 Hz and only drawn while visible; nothing renders while a modal screen
covers the dashboard. Every control acts on the engine first and then forces a
sample, so the effect is on screen within one frame.

The engine is read ONLY through ``engine.frame`` (one immutable
``EngineState`` plus the new events) and changed only through its command
methods (``set_threshold``, ``set_venue_enabled``...): the screen never reads
a role's internals, so the engine can run on another thread or process.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Horizontal, Vertical
from textual.screen import Screen

from arbtui.config import MAX_BPS
from arbtui.model import BookState
from arbtui.ui.screens.keymap import FOOTER_PRIORITY, bindings, footer_items
from arbtui.ui.widgets.funding import FundingPanel
from arbtui.ui.widgets.header import HeaderBar, header_text
from arbtui.ui.widgets.keybar import KeyBar
from arbtui.ui.widgets.opportunity_log import SCROLLBAR_W, OpportunityLog, needed_width
from arbtui.ui.widgets.sparklines import LatencySparks
from arbtui.ui.widgets.spread_chart import SpreadChart
from arbtui.ui.widgets.venue_panel import PanelInput, VenuePanel
from arbtui.ui.widgets.wallets import WalletsPanel

SIDE_W = 46  # the charts column (#side in app.tcss)
LOG_CHROME = 2  # the log's border, left and right
#: Below this many columns the charts give way to the log: beside them the log keeps
#: its columns up to the catch probability (time, symbol, venues, NET, profit, size,
#: life, kind, P; opportunity_log.COLUMNS), whole.
NARROW = SIDE_W + LOG_CHROME + SCROLLBAR_W + needed_width("p")
PANEL_MIN_W = 38


def log_width(term_width: int, charts: bool) -> int:
    """The opportunity log's content width on a ``term_width`` terminal (the CSS layout:
    the charts column beside it or not; tests hold the real widget to this)."""
    return term_width - LOG_CHROME - (SIDE_W if charts else 0)


class DashboardScreen(Screen):
    BINDINGS = bindings()

    def __init__(self, engine: Any, cfg: Any, clock: Callable[[], int], **kw: Any) -> None:
        super().__init__(**kw)
        self.engine = engine
        self.cfg = cfg
        self.clock = clock
        #: The latest frame's state; every control reads the settings it changes here.
        self.last_state: Any = engine.snapshot()
        syms = list(self.last_state.symbols)
        want = cfg.ui.focused_symbol
        self.focus_sym = want if want in syms else (syms[0] if syms else "")
        #: A viewer learns the symbols from the bus: until the operator picks one, the
        #: focus moves to a symbol that has quotes (the configured one may have none).
        self._auto_focus = True
        self.paused = False
        self.seq = 0  # last engine event sequence drained into the log
        self.missed = 0  # events that fell out of the engine ring before we drained them
        self.show_charts: bool | None = None  # None = automatic by width
        self.venue_order: list[str] = []
        self.panels: dict[str, VenuePanel] = {}
        self._panel_symbols: dict[str, list[str]] = {}
        self.ticks = 0
        self._log_title = ""

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Container(id="venues")
        with Horizontal(id="lower"):
            with Vertical(id="left"):
                yield OpportunityLog(cap=self.cfg.ui.log_lines, id="log")
                yield FundingPanel(id="funding")  # shows itself once a perp book is quoted
                yield WalletsPanel(id="wallets")
            with Vertical(id="side"):
                yield LatencySparks(id="sparks")
                yield SpreadChart(id="chart")
        yield KeyBar(footer_items(), FOOTER_PRIORITY, id="keys")

    def on_mount(self) -> None:
        if self.app._exit_renderables:
            return  # the app is already leaving (engine failed to start): build nothing
        self.log_widget = self.query_one(OpportunityLog)
        self.header_widget = self.query_one(HeaderBar)
        self.sparks = self.query_one(LatencySparks)
        self.chart = self.query_one(SpreadChart)
        self.wallets = self.query_one(WalletsPanel)
        self.funding = self.query_one(FundingPanel)
        self.venues_box = self.query_one("#venues", Container)
        self.log_widget.border_title = "opportunities"
        self.log_widget.focus()
        self._relayout()
        self.sample()
        self.set_interval(1.0 / self.cfg.ui.refresh_hz, self.sample, name="dashboard-sample")

    def on_resize(self) -> None:
        if hasattr(self, "venues_box"):  # not before on_mount built the screen
            self._relayout()

    def _relayout(self) -> None:
        w = self.size.width or self.app.size.width
        narrow = w < NARROW
        charts = self.show_charts if self.show_charts is not None else not narrow
        self.set_class(narrow, "-narrow")
        self.set_class(not charts, "-nocharts")
        self.set_class(charts and narrow, "-chartsonly")
        n = max(1, len(self.venue_order))
        cols = max(1, min(n, w // PANEL_MIN_W))
        self.venues_box.styles.grid_size_columns = cols

    def _panel_budget(self) -> tuple[int, bool]:
        """(lines inside one panel, compact?) so all venue panels fit in about half the
        screen height and the opportunity log keeps the rest."""
        h = self.size.height or self.app.size.height or 24
        n = max(1, len(self.venue_order))
        cols = max(1, int(self.venues_box.styles.grid_size_columns or 1))
        grid_rows = -(-n // cols)
        per_panel = (h // 2) // grid_rows
        syms = max((len(p) for p in self._panel_symbols.values()), default=2)
        if per_panel >= 2 + 2 + syms:  # two border rows + state + header + symbols
            return per_panel - 2, False
        return max(1 + syms, per_panel - 1), True

    def charts_visible(self) -> bool:
        return bool(self.query_one("#side").display) and not self.has_class("-nocharts")

    # ------------------------------------------------------------------ sampling

    def sample(self, force: bool = False) -> None:
        """One frame: read the engine once, update what changed."""
        box = getattr(self, "venues_box", None)
        if box is None or not box.is_attached or self.app._exit_renderables:
            return  # shutting down (e.g. the engine failed to start): nothing to draw into
        if self.app.screen is not self and not force:
            return  # a modal covers us; skip the work (Dolphie does the same)
        eng = self.engine
        now = self.clock()
        # A hidden log (charts-only view on a narrow terminal) is not fed; like a
        # paused one it catches up from the engine's event ring when shown again.
        log_shown = not self.has_class("-chartsonly")
        drain = not self.paused and log_shown
        try:
            # On its own thread the engine answers this in one round trip per frame.
            state, evs = eng.frame(self.seq if drain else None)
        except TimeoutError:
            # The engine's loop is stuck (it never should be): say so, keep the last frame.
            self.header_widget.set_text(Text(" ENGINE NOT RESPONDING ", "bold reverse red"))
            return
        self.last_state = state
        rp = state.extra.get("replay") if state.extra else None
        if isinstance(rp, dict) and rp.get("replay_ts"):
            # Replay: quote ages, lifetimes and the clock are on the recording's time.
            now = int(rp["replay_ts"] * 1e9)
        self.ticks += 1
        if self._auto_focus and state.mode == "VIEW" and state.quotes:
            self._focus_with_data(state)
        venues = list(state.venues)
        for (v, _s) in state.quotes:
            if v not in venues:
                venues.append(v)
        exec_thr = state.execution_min_net_bps
        chart_every = max(1, math.ceil(self.cfg.ui.refresh_hz / 2))
        with self.app.batch_update():
            self._sync_panels(venues)
            self._update_header(state, now)
            self._update_panels(state, now)
            self.log_widget.restyle(state.min_net_bps, exec_thr, now)
            if evs:
                self._drain_log(evs, now)
            self._update_log_title(state)
            if force or self.ticks % chart_every == 1 or chart_every == 1:
                # Live lifetimes change every sample; re-rendering those rows at the
                # chart cadence (<= 2 Hz) is plenty for a human.
                if log_shown:
                    self.log_widget.tick(now)
                visible = self.charts_visible() and self.app.screen is self
                self.sparks.sample(state, now, venues, render=visible)
                self.chart.sample(self.focus_sym, state.quotes, state.fees, now)
                if visible:
                    self.chart.redraw(state.min_net_bps, now)
                self.wallets.show(state.extra)
                self.funding.show(state.extra, state.quotes, now)

    def _focus_with_data(self, state: Any) -> None:
        have = {s for _, s in state.quotes}
        if self.focus_sym in have:
            return
        pick = next((s for s in state.symbols if s in have), None)
        if pick is not None:
            self.focus_sym = pick

    def _sync_panels(self, venues: list[str]) -> None:
        if venues == self.venue_order:
            return
        for v in venues:
            if v not in self.panels:
                p = VenuePanel(v, id=f"venue-{v}")
                self.panels[v] = p
                self.venues_box.mount(p)
        for v in list(self.panels):
            if v not in venues:
                self.panels.pop(v).remove()
        # The grid shows panels in mount order: a venue first seen after others (a viewer
        # learns them from the bus) must still take its place in the given order.
        box = self.venues_box
        want = [self.panels[v] for v in venues]
        if [c for c in box.children if c in want] != want:
            for prev, p in itertools.pairwise(want):
                box.move_child(p, after=prev)
            if box.children and box.children[0] is not want[0]:
                box.move_child(want[0], before=0)
        self.venue_order = venues
        self._relayout()

    def _update_header(self, state: Any, now: int) -> None:
        width = self.size.width or self.app.size.width or 80
        self.header_widget.show(header_text(state, now_ns=now, width=width, focused=self.focus_sym,
                                            paused=self.paused))

    def _update_panels(self, state: Any, now: int) -> None:
        best_bid: dict[str, float] = {}
        best_ask: dict[str, float] = {}
        disabled = set(state.disabled_venues)
        for v, st in state.venues.items():
            if st.state is BookState.DISABLED:
                disabled.add(v)
        for (v, s), q in state.quotes.items():
            if v in disabled:
                continue
            if q.bid > best_bid.get(s, -math.inf):
                best_bid[s] = q.bid
            if q.ask < best_ask.get(s, math.inf):
                best_ask[s] = q.ask
        by_venue: dict[str, dict[str, Any]] = {}
        for (v, s), q in state.quotes.items():
            by_venue.setdefault(v, {})[s] = q
        all_syms = state.symbols
        for v in self.venue_order:
            st = state.venues.get(v)
            quotes = by_venue.get(v, {})
            self._panel_symbols[v] = list(st.symbols) if st is not None and st.symbols else (
                [s for s in all_syms if s in quotes] or list(quotes))
        max_lines, compact = self._panel_budget()
        for i, v in enumerate(self.venue_order, start=1):
            self.panels[v].show(PanelInput(
                index=i, venue=v, status=state.venues.get(v), quotes=by_venue.get(v, {}),
                symbols=self._panel_symbols[v], best_bid=best_bid, best_ask=best_ask,
                focused=self.focus_sym, now_ns=now, disabled=v in disabled,
                disabled_symbols=set(state.disabled_symbols), max_lines=max_lines, compact=compact,
            ))

    def _drain_log(self, evs: list[tuple[int, Any]], now: int) -> None:
        if evs[0][0] > self.seq + 1:
            self.missed += evs[0][0] - self.seq - 1
        self.seq = evs[-1][0]
        self.log_widget.apply_events([e for _, e in evs], now)

    def _update_log_title(self, state: Any) -> None:
        n_open = len(state.open_opportunities)
        title = f"opportunities · open {n_open} · ≥{state.min_net_bps:+.1f} bps net"
        if self.log_widget.sort == "ev":
            title += " · by EV"
        if self.paused:
            title += f" · PAUSED +{max(0, state.event_seq - self.seq)} new"
        if self.missed:
            title += f" · {self.missed} not shown (ring overflow)"
        if title != self._log_title:
            self._log_title = title
            self.log_widget.border_title = title

    # ------------------------------------------------------------------ helpers for controls

    def venue_enabled(self, venue: str) -> bool:
        return venue not in self.last_state.disabled_venues

    def _after(self) -> None:
        """Show a control's effect now, not at the next timer tick."""
        self.sample(force=True)

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        from arbtui.ui.screens.help import HelpScreen

        self.app.push_screen(HelpScreen())

    def action_toggle_venue(self, n: int) -> None:
        if n < 1 or n > len(self.venue_order):
            self.notify(f"no venue {n}", severity="warning", timeout=2)
            return
        v = self.venue_order[n - 1]
        on = not self.venue_enabled(v)
        self.engine.set_venue_enabled(v, on)
        self.notify(f"{v} {'enabled' if on else 'DISABLED'}", timeout=2)
        self._after()

    def action_symbols(self) -> None:
        from arbtui.ui.screens.symbols import SymbolPickerScreen

        def apply(symbol: str, enabled: bool) -> None:
            self.engine.set_symbol_enabled(symbol, enabled)

        def done(focused: str | None) -> None:
            if focused:
                self.focus_sym = focused
                self._auto_focus = False
            self._after()

        self.app.push_screen(
            SymbolPickerScreen(list(self.last_state.symbols),
                               set(self.last_state.disabled_symbols), self.focus_sym, apply), done)

    def action_next_symbol(self, step: int = 1) -> None:
        syms = list(self.last_state.symbols)
        if not syms:
            return
        i = syms.index(self.focus_sym) if self.focus_sym in syms else -1
        self.focus_sym = syms[(i + step) % len(syms)]
        self._auto_focus = False
        self._after()

    def action_threshold(self, delta: float) -> None:
        cur = self.last_state.min_net_bps
        new = round(cur + delta, 4)
        if not (-MAX_BPS < new < MAX_BPS):
            self.notify("threshold out of range", severity="warning")
            return
        self.engine.set_threshold(new)
        self._after()

    def action_thresholds(self) -> None:
        from arbtui.ui.screens.thresholds import ThresholdsScreen

        st = self.last_state

        def done(result: dict[str, float] | None) -> None:
            if not result:
                return
            self.apply_thresholds(result)

        self.app.push_screen(ThresholdsScreen(st.min_net_bps, st.max_quote_age_ms,
                                              st.execution_min_net_bps), done)

    def apply_thresholds(self, result: dict[str, float]) -> None:
        eng = self.engine
        eng.set_threshold(result["min_net_bps"])
        eng.set_max_quote_age(result["max_quote_age_ms"])
        eng.set_execution_threshold(result["exec_min_net_bps"])
        self.notify("thresholds applied", timeout=2)
        self._after()

    def action_execution(self) -> None:
        on = not self.last_state.execution_enabled
        self.engine.set_execution(on)
        if self.last_state.mode == "VIEW":
            # Sent on the control topic; the header shows it pending until acknowledged.
            self.notify(f"execution {'ON' if on else 'OFF'} sent to the executors", timeout=2)
        elif on and not self.last_state.executing:
            self.notify("execution flag ON, but no simulated executor runs in this process",
                        severity="warning")
        else:
            self.notify(f"simulated execution {'ON' if on else 'OFF'}", timeout=2)
        self._after()

    def action_pause(self) -> None:
        self.paused = not self.paused
        self._after()

    def action_clear(self) -> None:
        self.log_widget.clear_log()
        self._after()

    def action_detail(self) -> None:
        row = self.log_widget.selected()
        if row is None:
            self.notify("no opportunity selected", severity="warning", timeout=2)
            return
        from arbtui.ui.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(row, self.cfg))

    def action_sort(self) -> None:
        log = self.log_widget
        log.set_sort("ev" if log.sort == "time" else "time")
        self.notify("log sorted by EV (highest first)" if log.sort == "ev"
                    else "log in time order", timeout=2)
        self._after()

    def action_charts(self) -> None:
        cur = self.show_charts if self.show_charts is not None else not self.has_class("-narrow")
        self.show_charts = not cur
        self._relayout()
        self._after()

    def action_save(self) -> None:
        from arbtui.config import ConfigError

        try:
            path = self.app.save_settings()
        except (OSError, ConfigError) as e:
            self.notify(f"save failed: {e}", severity="error", timeout=8)
            return
        self.notify(f"saved to {path}", title="config saved", timeout=6)
