"""``?``: every key, generated from the one keymap the footer and palette use."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from arbtui.backend.edge import THRESHOLD_RULE
from arbtui.model import AGES_RULE
from arbtui.ui.screens.keymap import KEYMAP


def help_table() -> Table:
    t = Table(show_header=True, header_style="bold", box=None, padding=(0, 1), expand=True)
    t.add_column("key", style="bold cyan", no_wrap=True, width=13)
    t.add_column("what it does", ratio=1)
    for k in KEYMAP:
        if k.action.startswith("toggle_venue(") and k.keys != "1":
            continue  # one row "1-9" covers them
        if k.keys == "tab":
            continue  # shown as "tab/]"
        t.add_row(k.display or k.keys, k.help)
    t.add_row("ctrl+p", "Command palette: every action above, searchable")
    t.add_row("↑/↓ pgup/pgdn", "Move in the opportunity log")
    return t


#: What the log's short column heads mean (opportunity_log.COLUMNS).
LOG_LEGEND = ("Log columns: K kind (S spot, B basis, P perp) · P catch probability (— until "
              "estimated) · EV expected value = profit × P · M markers: E executed, P partial, "
              "X rejected, ! suspect. Narrow terminals keep time, symbol, venues, NET, profit, "
              "size and life; the rest come back as the width allows.")


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q,f1", "dismiss", "Close", key_display="esc"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 96; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    HelpScreen Static { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll() as vs:
            vs.border_title = "arbtui keys"
            vs.border_subtitle = "esc / ? to close"
            yield Static(help_table())
            # The same words as README.md and config.toml (tests hold all three to them).
            yield Static(Text(f"Thresholds are NET: edge after both venues' taker fees. "
                              f"{THRESHOLD_RULE}", "dim"))
            yield Static(Text(AGES_RULE, "dim"))
            yield Static(Text(LOG_LEGEND, "dim"))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
