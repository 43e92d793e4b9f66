"""What one replay with execution produced, counted as ``arbtui report`` counts a
journal: a sweep cell's numbers are the numbers a single replay reports.

``Outcome.add`` sees every opportunity and fill event in the order the engine
recorded them (the journal's order), so sums come out bit-identical to the
report's sums over the journal rows.
"""

from __future__ import annotations

from typing import Any

from arbtui.model import Fill, OppEvent, Opportunity


class Outcome:
    def __init__(self) -> None:
        self.opp_ids: set[str] = set()
        self.opportunity_events = 0
        self.fills = 0
        self.by_status: dict[str, int] = {}
        self.traded: set[str] = set()
        self.realized_pnl: dict[str, float] = {}
        self.fees: dict[str, float] = {}
        self.detected: dict[str, float] = {}
        self._opened: dict[str, tuple[float, float, str]] = {}

    def add(self, e: Opportunity | Fill) -> None:
        if isinstance(e, Fill):
            self._fill(e)
        elif isinstance(e, Opportunity):
            self.opportunity_events += 1
            self.opp_ids.add(e.id)
            if e.event is OppEvent.OPENED:
                self._opened[e.id] = (e.size, e.profit, e.quote_ccy)

    def _fill(self, f: Fill) -> None:
        self.fills += 1
        self.traded.add(f.opp_id)
        self.by_status[f.status] = self.by_status.get(f.status, 0) + 1
        o = self._opened.get(f.opp_id)
        if o is not None and f.kind == "leg" and f.side == "buy" and o[0]:
            size, profit, ccy = o
            self.detected[ccy or "?"] = self.detected.get(ccy or "?", 0.0) + profit * f.requested / size
        if f.fee:
            c = f.fee_ccy or "?"
            self.fees[c] = self.fees.get(c, 0.0) + f.fee
        if f.pnl_ccy:
            self.realized_pnl[f.pnl_ccy] = self.realized_pnl.get(f.pnl_ccy, 0.0) + f.pnl

    def as_dict(self) -> dict[str, Any]:
        """The fields ``report.build`` has under the same names."""
        return {
            "opportunities": len(self.opp_ids),
            "opportunity_events": self.opportunity_events,
            "trades": len(self.traded),
            "fills": self.fills,
            "by_status": dict(sorted(self.by_status.items())),
            "realized_pnl": dict(self.realized_pnl),
            "fees": dict(self.fees),
            "detected_profit_traded": dict(self.detected),
            "latency_loss": {c: self.detected[c] - self.realized_pnl.get(c, 0.0)
                             for c in sorted(self.detected)},
        }
