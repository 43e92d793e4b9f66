"""``arbtui replay --print-quotes``: one JSON line per top-of-book change."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

import msgspec

from arbtui.model import BookState, BookStatus, Quote


class QuotePrinter:
    """One JSON line per change of a book's TOP of book (``publish`` emits on any
    change in the top N levels; deeper changes are filtered here)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last: dict[tuple[str, str], tuple[str, str, str, str]] = {}
        self.lines = 0
        self.broken = False  # the reader went away (``| head``)
        self.on_broken: Callable[[], None] | None = None
        self._enc = msgspec.json.Encoder()

    def on_quote(self, q: Quote) -> None:
        key = (q.venue, q.symbol)
        top = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        if self.last.get(key) == top:
            return
        self.last[key] = top
        rec = {"venue": q.venue, "symbol": q.symbol, "bid": q.bid_px, "bid_size": q.bid_qty,
               "ask": q.ask_px, "ask_size": q.ask_qty, "recv_ts": q.recv_ts_ns / 1e9,
               "seq": q.seq}
        if self.broken:
            return
        try:
            self.out.write(self._enc.encode(rec).decode() + "\n")
        except BrokenPipeError:
            # Raised inside an adapter's publish it would count as a bad frame: stop instead.
            self.broken = True
            if self.on_broken is not None:
                self.on_broken()
            return
        self.lines += 1

    def on_state(self, st: BookStatus) -> None:
        # A book that left LIVE and came back prints its first top again.
        if st.state is not BookState.LIVE:
            self.last.pop((st.venue, st.symbol), None)
