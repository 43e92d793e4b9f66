"""One panel per venue: connection state, per-symbol top of book, depth ladder.

A venue has a handful of symbols, so a ``Static`` re-rendered from one Rich
``Text`` is cheaper than a DataTable (whose per-cell updates invalidate its row and
width caches) — and it is only
re-rendered when the text actually changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text

from arbtui.fmt import fmt_age_ms, fmt_ms, fmt_px, fmt_rate, fmt_sz
from arbtui.health import venue_word
from arbtui.model import BookState, Quote, VenueStatus, live_ns
from arbtui.ui.widgets.live_text import LiveText

STATE_STYLE = {
    BookState.LIVE: "bold green",
    BookState.SYNCING: "bold yellow",
    BookState.STALE: "bold red",
    BookState.RESYNC: "bold magenta",
    BookState.DISABLED: "bold",
}

BEST_BID = "bold reverse green"
BEST_ASK = "bold reverse red"


@dataclass
class PanelInput:
    """Everything one panel needs for one frame (built by the dashboard each sample)."""

    index: int
    venue: str
    status: VenueStatus | None
    quotes: dict[str, Quote]
    symbols: list[str]
    best_bid: dict[str, float]
    best_ask: dict[str, float]
    focused: str
    now_ns: int
    disabled: bool
    disabled_symbols: set[str]
    max_lines: int  # rows inside the border this panel may use (the dashboard's budget)
    compact: bool = False


#: Connection words (arbtui.health.venue_word): a socket that is down is not a book syncing.
WORD_STYLE = {"NOT CONNECTED": "bold red", "RECONNECTING": "bold red", "CONNECTING": "bold yellow"}
BAD_WORDS = {"STALE", "RESYNC", "NOT CONNECTED", "RECONNECTING"}


def state_word(p: PanelInput) -> str:
    """LIVE / SYNCING / STALE / RESYNC / DISABLED / NOT CONNECTED / RECONNECTING / CONNECTING."""
    if p.disabled:
        return "DISABLED"
    if p.status is None:
        return "LIVE" if p.quotes else "NO DATA"
    return venue_word(p.status)[0]


def state_text(p: PanelInput) -> tuple[str, str]:
    """The state word with its reason: LIVE / SYNCING connecting / STALE 3.2 s / RESYNC gap /
    NOT CONNECTED retry in 9.8s (gaierror) / DISABLED."""
    st = p.status
    if p.disabled:
        return "DISABLED", STATE_STYLE[BookState.DISABLED]
    if st is None:
        return ("LIVE" if p.quotes else "NO DATA"), ("bold green" if p.quotes else "bold yellow")
    word, reason = venue_word(st)
    if word in WORD_STYLE:
        return word + (f" {reason}" if reason else ""), WORD_STYLE[word]
    state = st.state
    if state is BookState.STALE and st.last_msg_ns:
        reason = f"{(p.now_ns - st.last_msg_ns) / 1e9:.1f} s" + (f" ({reason})" if reason else "")
    label = state.value + (f" {reason}" if reason and state is not BookState.LIVE else "")
    return label, STATE_STYLE.get(state, "bold")


#: The symbol column is as wide as the panel's longest symbol within these bounds: a
#: symbol cut at 8 misreads as another one ("DOGE-USDT" as DOGE-USD, "BTC-USDT-PERP" as
#: the spot BTC-USDT), so the price columns give way first.
SYM_MIN, SYM_MAX = 8, 13


def sym_width(symbols: list[str]) -> int:
    return max(SYM_MIN, min(SYM_MAX, max((len(s) for s in symbols), default=0)))


def sym_label(sym: str, sw: int) -> str:
    return sym if len(sym) <= sw else sym[: sw - 1] + "…"


def layout_for(width: int, max_lines: int, n_symbols: int,
               sw: int = SYM_MIN) -> tuple[bool, bool, bool, int]:
    """Decide (wide, header, size_lines, ladder_levels) so the panel fits ``max_lines``.

    Priority when space is short: state line and one line per symbol always; then the
    column header; then a depth ladder of at least 3 levels; then (narrow panels only)
    a sizes line under each symbol; then more ladder levels (up to 5).
    """
    wide = width >= 54 + sw - SYM_MIN
    header = max_lines >= 2 + n_symbols
    rem = max_lines - (1 + n_symbols + (1 if header else 0))
    size_lines = False
    if not wide and rem - n_symbols >= 4:
        size_lines = True
        rem -= n_symbols
    levels = max(0, min(5, rem - 1)) if header else 0
    return wide, header, size_lines, levels


def panel_text(p: PanelInput, width: int) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    label, style = state_text(p)
    out.append(label, style)
    st = p.status
    if st is not None:
        lat = f"lat {fmt_ms(st.feed_latency_ms)}ms" if st.feed_latency_ms is not None else "lat —"
        out.append(f"  rc {st.reconnects}  {lat}  {fmt_rate(st.msg_rate)}/s", "dim")
        errs = sum(st.counters.get(k, 0) for k in ("gaps", "checksum_failures", "frame_errors"))
        if errs:
            out.append(f"  err {errs}", "yellow")
    sw = sym_width(p.symbols)
    wide, header, size_lines, levels = layout_for(width, p.max_lines, len(p.symbols), sw)
    # Narrow panels shrink the price columns before anything wraps (8+1+pw+1+pw+1+5).
    pw = 10 if wide else max(7, min(10, (width - sw - 8) // 2))
    if header:
        out.append("\n")
        if wide:
            out.append(f"{'SYM':<{sw}} {'BID':>{pw}} {'SIZE':>8} {'ASK':>{pw}} {'SIZE':>8} {'AGE':>5}",
                       "dim")
        else:
            out.append(f"{'SYM':<{sw}} {'BID':>{pw}} {'ASK':>{pw}} {'AGE':>5}", "dim")
    for sym in p.symbols:
        out.append("\n")
        q = None if p.disabled else p.quotes.get(sym)
        sym_style = "bold" if sym == p.focused else ""
        if sym in p.disabled_symbols:
            sym_style = "dim strike"
        out.append(f"{sym_label(sym, sw):<{sw}}", sym_style)
        if q is None:
            out.append(f" {'—':>{pw}} ", "dim")
            if wide:
                out.append(f"{'':>8} ")
            out.append(f"{'—':>{pw}}", "dim")
            if size_lines:
                out.append("\n")
            continue
        bid_style = BEST_BID if p.best_bid.get(sym) == q.bid else "green"
        ask_style = BEST_ASK if p.best_ask.get(sym) == q.ask else "red"
        # Two ages (model.AGES_RULE): the top's, and the book's liveness where it differs.
        age = fmt_age_ms((p.now_ns - q.recv_ts_ns) / 1e6 if q.recv_ts_ns else None)
        live = fmt_age_ms((p.now_ns - live_ns(q)) / 1e6) if q.live_ts_ns > q.recv_ts_ns else age
        out.append(" ")
        out.append(fmt_px(q.bid, pw), bid_style)
        if wide:
            out.append(" " + fmt_sz(q.bid_size), "dim")
        out.append(" ")
        out.append(fmt_px(q.ask, pw), ask_style)
        if wide:
            out.append(" " + fmt_sz(q.ask_size), "dim")
        out.append(" " + age, "dim")
        used = sw + 1 + pw + 1 + pw + 1 + len(age) + (18 if wide else 0)
        extra = f" live {live.strip()}"
        if live != age and used + len(extra) <= width:
            # Only when it fits whole: a cut "l" at the panel's edge reads as noise.
            out.append(extra, "dim green")
        if size_lines:
            out.append("\n")
            out.append(f"{'  size':<{sw}} {fmt_sz(q.bid_size, pw)} {fmt_sz(q.ask_size, pw)}", "dim")
    q = None if p.disabled else p.quotes.get(p.focused)
    if levels > 0 and p.focused in p.symbols:
        out.append("\n")
        title = f" depth {p.focused} "
        out.append(title.center(max(len(title), width), "─"), "dim")
        if q is None:
            out.append("\n")
            out.append("no book", "dim")
        else:
            szw = 8 if width >= 40 else max(4, (width - 3 - 2 * pw) // 2)
            for i in range(levels):
                out.append("\n")
                b = q.bids[i] if i < len(q.bids) else None
                a = q.asks[i] if i < len(q.asks) else None
                out.append(fmt_sz(b[1], szw) if b else " " * szw, "dim")
                out.append(" ")
                out.append(fmt_px(b[0], pw) if b else " " * pw, "green")
                out.append("│", "dim")
                out.append(fmt_px(a[0], pw).strip().ljust(pw) if a else " " * pw, "red")
                out.append(" ")
                out.append(fmt_sz(a[1], szw).strip().ljust(szw) if a else "", "dim")
    return out


class VenuePanel(LiveText):
    """A bordered panel for one venue; titled with its toggle key.

    ``-compact`` (many venues on a small terminal) keeps only the top border, which
    still carries the title, to give the rows to prices.
    """

    DEFAULT_CSS = """
    VenuePanel { border: round $primary-darken-1; height: auto; padding: 0 1;
                 text-wrap: nowrap; text-overflow: ellipsis; }
    VenuePanel.-compact { border: none; border-top: round $primary-darken-1; }
    VenuePanel.-disabled { border: round $panel-lighten-2; color: $text-muted; }
    VenuePanel.-disabled.-compact { border: none; border-top: round $panel-lighten-2; }
    VenuePanel.-bad { border: round $error; }
    VenuePanel.-bad.-compact { border: none; border-top: round $error; }
    """

    def __init__(self, venue: str, **kw: Any) -> None:
        super().__init__("", **kw)
        self.venue = venue
        self._last: tuple | None = None

    def show(self, p: PanelInput) -> None:
        width = max(20, self.content_size.width or 36)
        text = panel_text(p, width)
        key = (text.plain, tuple(text.spans), p.index, p.disabled, p.compact)
        if key == self._last:
            return
        self._last = key
        # Titles and classes are reactive and cost a layout pass: set them only on change.
        title = f"{p.index} {p.venue}" if p.index <= 9 else p.venue
        if self.border_title != title:
            self.border_title = title
        sub = state_word(p)
        if self.border_subtitle != sub:
            self.border_subtitle = sub
        bad = p.status is not None and sub in BAD_WORDS
        for flag, cls in ((p.compact, "-compact"), (p.disabled, "-disabled"),
                          (bad and not p.disabled, "-bad")):
            if self.has_class(cls) != flag:
                self.set_class(flag, cls)
        self.set_text(text)
