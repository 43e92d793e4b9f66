"""A widget that shows one Rich ``Text`` and repaints only the lines that changed.

Two costs measured under a 20 000 quotes/s load (benchmarks/ui.py) drove this:
``Static.update`` asks for a whole-screen layout pass on every call, and
Textual's generic content pipeline re-renders every line of a widget whenever
any of it changes. A venue panel changes several times a second (quote ages),
but usually in two or three of its lines, and rarely in height. So: the text is
split into lines, each line is rendered to a ``Strip`` once and cached until
that line changes, only changed lines are refreshed, and layout is requested
only when the line count changes.
"""

from __future__ import annotations

from typing import Any

from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget


def _line_key(t: Text) -> tuple:
    return (t.plain, tuple(t.spans), str(t.style))


class LiveText(Widget):
    DEFAULT_CSS = """
    LiveText { height: auto; }
    """

    def __init__(self, text: Text | str = "", **kw: Any) -> None:
        super().__init__(**kw)
        self._key: tuple | None = None
        self._text = Text()
        self._lines: list[Text] = []
        self._line_keys: list[tuple] = []
        self._strips: list[Strip | None] = []
        self.set_text(text)

    def set_text(self, text: Text | str) -> bool:
        """Show ``text``; returns False (and does nothing) when it is unchanged."""
        if not isinstance(text, Text):
            text = Text(text)
        key = (text.plain, tuple(text.spans), str(text.style))
        if key == self._key:
            return False
        self._key = key
        self._text = text
        lines = list(text.split("\n", allow_blank=True)) or [Text()]
        keys = [_line_key(ln) for ln in lines]
        grew = len(lines) != len(self._lines)
        changed = [i for i, k in enumerate(keys)
                   if i >= len(self._line_keys) or self._line_keys[i] != k]
        self._strips = [self._strips[i] if i < len(self._strips) and i not in changed else None
                        for i in range(len(lines))]
        self._lines, self._line_keys = lines, keys
        if not self.is_mounted:
            return True
        if grew:
            self.refresh(layout=True)
        else:
            # Only the changed lines are repainted (regions are content-relative).
            w = self.content_size.width
            for i in changed:
                self.refresh(Region(0, i, w, 1))
        return True

    @property
    def plain(self) -> str:
        return self._text.plain

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return max((ln.cell_len for ln in self._lines), default=0)

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if y >= len(self._lines):
            return Strip.blank(width, self.rich_style)
        strip = self._strips[y]
        if strip is None:
            line = self._lines[y]
            line.no_wrap = True
            segments = list(line.render(self.app.console))
            strip = self._strips[y] = Strip(segments, line.cell_len)
        # The widget's own colours (e.g. muted for a disabled venue) sit under the text's.
        # A None style would break Textual's monochrome filter (NO_COLOR): pad with a style.
        return strip.crop_extend(0, width, Style()).apply_style(self.rich_style)

    def on_resize(self) -> None:
        self._strips = [None] * len(self._lines)
