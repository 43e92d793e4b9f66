"""The dashboard's footer: its keys on one line, never a label cut.

Textual's ``Footer`` lays its keys out in a horizontal scroll container: when they do not
fit, the last one is cut mid-label and a character of the command-palette key is drawn
past it (``… c Clear enter▏^p palettel`` at 120 columns). This bar is planned, like the
opportunity log's columns: the keys are taken in ``FOOTER_PRIORITY`` order while they fit,
shown in ``KEYMAP`` order, each whole; when some are left out, ``?`` reads "More" (the help
screen lists every key, and ``ctrl+p`` finds every action). A click on a key runs it. The
items come from the keymap (``screens/keymap.footer_items``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

KEY_STYLE = "bold #ffa62b"  # Textual's footer key colour
SEP = "  "
HELP = "help"  # the action whose label turns to "More" when keys are left out


class Item(NamedTuple):
    key: str  # as written for people
    label: str
    action: str


def _w(it: Item) -> int:
    return len(it.key) + 1 + len(it.label)


def plan_footer(items: list[Item], priority: tuple[str, ...], width: int) -> list[Item]:
    """The items shown in ``width`` cells: by ``priority`` while they fit, in ``items`` order."""
    if sum(_w(it) for it in items) + len(SEP) * (len(items) - 1) <= width:
        return items
    rank = {a: i for i, a in enumerate(priority)}
    by_prio = sorted((it for it in items if it.action in rank), key=lambda it: rank[it.action])
    # Something is left out: ``?`` says so ("More"), so plan with that label's width.
    more = {it.action: (it._replace(label="More") if it.action == HELP else it)
            for it in by_prio}
    chosen: set[str] = set()
    used = -len(SEP)
    for it in by_prio:
        w = _w(more[it.action]) + len(SEP)
        if used + w <= width:
            chosen.add(it.action)
            used += w
    return [more[it.action] for it in items if it.action in chosen]


def footer_text(items: list[Item], priority: tuple[str, ...],
                width: int) -> tuple[Text, list[tuple[int, int, str]]]:
    """The bar for ``width`` columns and where each key's item sits: (start, end, action)."""
    out = Text(no_wrap=True)
    spans: list[tuple[int, int, str]] = []
    for i, it in enumerate(plan_footer(items, priority, width)):
        if i:
            out.append(SEP)
        start = out.cell_len
        out.append(it.key, KEY_STYLE)
        out.append(" " + it.label)
        spans.append((start, out.cell_len, it.action))
    return out, spans


class KeyBar(Widget):
    """One line docked at the bottom, planned for the width it is drawn at."""

    DEFAULT_CSS = """
    KeyBar { dock: bottom; height: 1; background: $panel; color: $foreground; }
    """

    def __init__(self, items: list[Item], priority: tuple[str, ...], **kw: Any) -> None:
        super().__init__(**kw)
        self.items = items
        self.priority = priority
        self._text = Text()
        self._spans: list[tuple[int, int, str]] = []
        self._strip: Strip | None = None
        self._planned = -1

    @property
    def plain(self) -> str:
        self._plan(self.content_size.width)
        return self._text.plain

    def _plan(self, width: int) -> None:
        # Planned where it is drawn: the width is the one on screen, whatever order the
        # first layout and resize events came in.
        if width != self._planned:
            self._planned = width
            self._text, self._spans = footer_text(self.items, self.priority, width)
            self._strip = Strip(list(self._text.render(self.app.console)), self._text.cell_len)

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        self._plan(width)
        assert self._strip is not None
        return self._strip.crop_extend(0, width, Style()).apply_style(self.rich_style)

    async def on_click(self, event: Any) -> None:
        for start, end, action in self._spans:
            if start <= event.x < end:
                if action.startswith("app."):
                    await self.app.run_action(action.removeprefix("app."))
                else:
                    await self.screen.run_action(action)
                return
