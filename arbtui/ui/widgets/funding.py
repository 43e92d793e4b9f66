"""Funding and basis per perp book (issue 18), shown only while perps are quoted.

One line per (perp symbol, venue): the funding rate per interval, the time to the
next funding, the annualized carry a SHORT receives (``edge.carry_apr``: rate x
intervals a year), the basis of the perp over spot (``edge.basis_bps``: perp mid
over the median spot mid of the underlying across the venues quoting it), and the
venue's own premium (mark over index). The funding rows (latest ``model.Funding``
per perp book) come from the engine's market (``EngineState.extra["funding"]``: its
perp feeds, or the funding topic in a viewer), else its detector's status; the prices
from the frame's quotes. Pure functions build the text; the widget shows it.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

from rich.text import Text

from arbtui.backend.edge import basis_bps, carry_apr, mid
from arbtui.ui.widgets.live_text import LiveText

PERP_SUFFIX = "-PERP"


def funding_rows(extra: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The funding rows of a frame (``EngineState.extra``): what this process's market
    holds (``funding``: its perp feeds, or the funding topic in a viewer), else what its
    detector holds; [] when there are none."""
    extra = extra or {}
    rows = extra.get("funding")
    if not isinstance(rows, list):
        det = extra.get("detector")
        rows = det.get("funding") if isinstance(det, Mapping) else None
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def spot_mids(quotes: Mapping[tuple[str, str], Any]) -> dict[str, float]:
    """Median mid of each spot symbol across the venues quoting it (two-sided books)."""
    mids: dict[str, list[float]] = {}
    for (_v, s), q in quotes.items():
        if not s.endswith(PERP_SUFFIX) and q.bid > 0 and q.ask > 0:
            mids.setdefault(s, []).append(mid(q.bid, q.ask))
    return {s: statistics.median(m) for s, m in mids.items()}


def _until(ns: int, now_ns: int) -> str:
    if not ns:
        return "—"
    s = max(0, (ns - now_ns) // 1_000_000_000)
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s % 60:02d}s"


def funding_text(rows: list[Mapping[str, Any]], quotes: Mapping[tuple[str, str], Any],
                 now_ns: int) -> Text:
    """The panel: a header line, then one line per perp book with a quote or funding."""
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"{'perp':<14}{'venue':<13}{'funding':>14}{'next':>8}{'carry/yr':>10}"
               f"{'basis bps':>10}{'prem bps':>9}", "dim")
    books: dict[tuple[str, str], Mapping[str, Any]] = {(r["symbol"], r["venue"]): r for r in rows}
    for (v, s) in quotes:
        if s.endswith(PERP_SUFFIX):
            books.setdefault((s, v), {})
    spot = spot_mids(quotes)
    for (s, v), r in sorted(books.items()):
        out.append("\n")
        out.append(f"{s[:13]:<14}", "bold")
        out.append(f"{v[:12]:<13}")
        rate, ih = r.get("rate"), r.get("interval_h") or 0.0
        if isinstance(rate, (int, float)):
            per = f"/{ih:g}h" if ih else ""
            out.append(f"{f'{rate * 100:+.4f}%{per}':>14}", "green" if rate >= 0 else "red")
            out.append(f"{_until(int(r.get('next_funding_ts_ns') or 0), now_ns):>8}")
            apr = carry_apr(rate, ih)
            out.append(f"{apr * 100:>+9.2f}%", "green" if apr >= 0 else "red")
        else:
            out.append(f"{'—':>14}{'—':>8}{'—':>10}", "dim")
        q = quotes.get((v, s))
        u = spot.get(s[: -len(PERP_SUFFIX)])
        if q is not None and u and q.bid > 0 and q.ask > 0:
            out.append(f"{basis_bps(u, mid(q.bid, q.ask)):>+10.1f}")
        else:
            out.append(f"{'—':>10}", "dim")
        mark, index = r.get("mark") or 0.0, r.get("index") or 0.0
        out.append(f"{(mark - index) / index * 1e4:>+9.1f}" if mark > 0 and index > 0
                   else f"{'—':>9}", "" if mark > 0 and index > 0 else "dim")
    return out


class FundingPanel(LiveText):
    DEFAULT_CSS = """
    FundingPanel { height: auto; max-height: 40%; border: round $primary-darken-2; padding: 0 1; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__("", **kw)
        self.border_title = "funding · basis (perp over spot) · carry a short receives"
        self.display = False

    def show(self, extra: Mapping[str, Any] | None, quotes: Mapping[tuple[str, str], Any],
             now_ns: int) -> bool:
        """Render; hidden (returns False) while no perp book is quoted or funded."""
        rows = funding_rows(extra)
        has = bool(rows) or any(s.endswith(PERP_SUFFIX) for (_v, s) in quotes)
        if self.display != has:
            self.display = has
        if has:
            self.set_text(funding_text(rows, quotes, now_ns))
        return has
