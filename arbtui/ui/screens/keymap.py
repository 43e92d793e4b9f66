"""The dashboard's keys, in one table.

The footer (``widgets/keybar.py``), the ``?`` help screen and the command palette are
all generated from ``KEYMAP``, so the three can never disagree.
"""

from __future__ import annotations

from typing import NamedTuple

from textual.binding import Binding

from arbtui.ui.widgets.keybar import Item


class Key(NamedTuple):
    keys: str  # Textual key names, comma separated
    action: str
    short: str  # footer label
    help: str  # help screen / command palette text
    display: str = ""  # how the key is written for people
    show: bool = True
    priority: bool = False


KEYMAP: tuple[Key, ...] = (
    Key("q", "app.quit", "Quit", "Quit (stops the engine cleanly: feeds, detector, bus)", "q"),
    Key("question_mark,f1", "help", "Help", "Show this help", "?"),
    Key("1", "toggle_venue(1)", "Venue", "Toggle venue 1-9 on/off: a disabled venue leaves detection at once",
        "1-9"),
    *(Key(str(i), f"toggle_venue({i})", f"Venue {i}", f"Toggle venue {i}", str(i), show=False)
      for i in range(2, 10)),
    Key("s", "symbols", "Symbols", "Symbol picker: enable/disable symbols, choose the focused one", "s"),
    Key("right_square_bracket", "next_symbol(1)", "Next sym",
        "Focus the next symbol (depth ladder, spread chart)", "tab/]"),
    # tab on its own, hidden: Screen's own tab binding sits first in the footer's order.
    Key("tab", "next_symbol(1)", "Next sym", "Focus the next symbol", "tab", show=False),
    Key("left_square_bracket", "next_symbol(-1)", "Prev sym", "Focus the previous symbol", "[",
        show=False),
    Key("plus,equals_sign", "threshold(0.5)", "Thr+", "Raise the NET threshold by 0.5 bps", "+"),
    Key("minus", "threshold(-0.5)", "Thr-", "Lower the NET threshold by 0.5 bps", "-"),
    Key("t", "thresholds", "Thresholds",
        "Edit thresholds precisely: min NET bps, max quote age, execution threshold", "t"),
    Key("x", "execution", "Exec", "Toggle simulated execution (state shown in the header)", "x"),
    Key("space", "pause", "Pause", "Pause / resume the opportunity log (events keep counting)", "space"),
    Key("c", "clear", "Clear", "Clear the opportunity log", "c"),
    Key("enter", "detail", "Detail", "Detail of the selected opportunity: books, fee math, fills",
        "enter"),
    Key("ctrl+s", "save", "Save", "Save toggles and thresholds to the user config", "ctrl+s"),
    Key("g", "charts", "Charts", "Show / hide the latency and spread charts", "g"),
    Key("o", "sort", "Sort",
        "Sort the opportunity log by time or by EV (expected value: profit x catch "
        "probability; rows without an estimate last)", "o"),
)

#: What the footer keeps when the terminal is too narrow for every key, most important
#: first (the footer shows them in KEYMAP order; ``?`` lists all of them).
FOOTER_PRIORITY: tuple[str, ...] = (
    "app.quit", "help", "execution", "thresholds", "threshold(0.5)",
    "pause", "detail", "sort", "symbols", "toggle_venue(1)", "next_symbol(1)", "charts",
    "clear", "save",
)


def bindings() -> list[Binding]:
    return [Binding(k.keys, k.action, k.short, show=k.show, key_display=k.display or None,
                    priority=k.priority) for k in KEYMAP]


PALETTE = Item("^p", "palette", "app.command_palette")
SHORT_KEYS = {"ctrl+s": "^s"}  # as Textual's footer writes ctrl+p


def footer_items() -> list[Item]:
    """Every footer key in KEYMAP order (one per action; + and - as one), then the palette."""
    seen: set[str] = set()
    out: list[Item] = []
    for k in KEYMAP:
        if not k.show or k.action in seen:
            continue
        seen.add(k.action)
        if k.action == "threshold(-0.5)":
            continue  # one item "+/- Thr" for the pair
        if k.action == "threshold(0.5)":
            out.append(Item("+/-", "Thr", k.action))
            continue
        out.append(Item(SHORT_KEYS.get(k.display, k.display or k.keys), k.short, k.action))
    out.append(PALETTE)
    return out
