"""``s``: enable/disable symbols (acts on the engine at once) and pick the focused one."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection


class SymbolPickerScreen(ModalScreen[str | None]):
    """Checked = enabled for detection. ``f``/``enter`` focuses the highlighted symbol."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,s,q", "close", "Close", key_display="esc"),
        Binding("f,enter", "focus_symbol", "Focus", key_display="enter", priority=True),
    ]
    DEFAULT_CSS = """
    SymbolPickerScreen { align: center middle; }
    SymbolPickerScreen > Vertical {
        width: 44; height: auto; max-height: 90%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    SymbolPickerScreen SelectionList { height: auto; max-height: 20; border: none; }
    SymbolPickerScreen Label { color: $text-muted; width: 1fr; height: auto; }
    """

    def __init__(self, symbols: list[str], disabled: set[str], focused: str,
                 apply: Callable[[str, bool], None]) -> None:
        super().__init__()
        self.symbols = symbols
        self.off = set(disabled)
        self.focus_sym = focused
        self.apply = apply

    def _prompt(self, s: str) -> str:
        return f"{s}  ◀ focused" if s == self.focus_sym else s

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "symbols"
            box.border_subtitle = "space toggle · enter focus · esc close"
            yield SelectionList[str](
                *(Selection(self._prompt(s), s, s not in self.off) for s in self.symbols),
                id="symbol-list",
            )
            yield Label("checked = detected; unchecked symbols leave detection at once")

    def on_mount(self) -> None:
        sl = self.query_one(SelectionList)
        sl.focus()
        if self.focus_sym in self.symbols:
            sl.highlighted = self.symbols.index(self.focus_sym)

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self._reconcile()

    def _reconcile(self) -> None:
        """Apply every check-box change to the engine (also on close, so a toggle whose
        message is still queued when the screen is dismissed is not lost)."""
        selected = set(self.query_one(SelectionList).selected)
        for s in self.symbols:
            now_disabled = s not in selected
            if now_disabled != (s in self.off):
                self.apply(s, not now_disabled)
                if now_disabled:
                    self.off.add(s)
                else:
                    self.off.discard(s)

    def action_focus_symbol(self) -> None:
        sl = self.query_one(SelectionList)
        if sl.highlighted is None:
            return
        value = sl.get_option_at_index(sl.highlighted).value
        self._reconcile()
        self.dismiss(value)

    def action_close(self) -> None:
        self._reconcile()
        self.dismiss(None)
