"""Paper wallets and PnL, shown only while the simulated executor reports them.

The executor publishes its summary in ``EngineState.extra`` (key ``executor``,
or flat keys). The shape is read defensively: ``wallets`` {venue: {asset: amount}},
``pnl``/``realized_pnl``, ``fills``, ``drift`` {asset: amount}.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from arbtui.fmt import fmt_money, fmt_sz
from arbtui.ui.widgets.live_text import LiveText


def executor_summary(extra: dict[str, Any]) -> dict[str, Any] | None:
    """The executor's summary, or None while it has nothing to show (off and no fills yet)."""
    ex = extra.get("executor")
    if not isinstance(ex, dict):
        ex = extra if "wallets" in extra else None
    if ex is None or not (ex.get("enabled") or ex.get("fills")):
        return None
    return ex


def wallets_text(ex: dict[str, Any], width: int) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    pnl = ex.get("pnl", ex.get("realized_pnl"))
    fills = ex.get("fills", ex.get("fill_count"))
    out.append("PnL ", "dim")
    out.append(fmt_money(pnl if isinstance(pnl, (int, float)) else None, 0).strip(),
               "bold green" if isinstance(pnl, (int, float)) and pnl >= 0 else "bold red")
    if ex.get("pnl_ccy"):
        out.append(f" {ex['pnl_ccy']}", "dim")
    if isinstance(fills, (int, float)):
        out.append(f"  fills {int(fills)}", "dim")
    elif isinstance(fills, list):
        out.append(f"  fills {len(fills)}", "dim")
    wallets = ex.get("wallets")
    if isinstance(wallets, dict):
        # Two venues per line when there is room: the log above keeps the height.
        per_line = 2 if width >= 84 else 1
        cell = max(30, width // per_line - 1)
        for i, (venue, bal) in enumerate(wallets.items()):
            out.append("\n" if i % per_line == 0 else " ")
            part = Text(f"{str(venue)[:8]:<8}", "bold")
            if isinstance(bal, dict):
                for asset, amt in bal.items():
                    if isinstance(amt, (int, float)):
                        part.append(f" {asset} {fmt_sz(float(amt), 9).strip()}")
            part.truncate(cell, pad=per_line > 1)
            out.append_text(part)
    drift = ex.get("drift", ex.get("inventory_drift"))
    if isinstance(drift, dict) and drift:
        out.append("\n")
        out.append("drift   ", "dim")
        for asset, amt in drift.items():
            if isinstance(amt, (int, float)):
                out.append(f" {asset} {float(amt):+.4f}", "yellow" if amt else "dim")
    return out


class WalletsPanel(LiveText):
    DEFAULT_CSS = """
    WalletsPanel { height: auto; max-height: 45%; border: round $primary-darken-2; padding: 0 1; }
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__("", **kw)
        self.border_title = "wallets"
        self._last: tuple | None = None

    def show(self, extra: dict[str, Any]) -> bool:
        """Render the summary; returns False (and hides) when there is none."""
        ex = executor_summary(extra or {})
        if self.display != (ex is not None):
            self.display = ex is not None
        if ex is None:
            return False
        self.set_text(wallets_text(ex, self.content_size.width or 30))
        return True
