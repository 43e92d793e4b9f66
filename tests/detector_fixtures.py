"""Helpers shared by the detector / executor / journal tests (issue 4)."""

from __future__ import annotations

from arbtui.config import DetectorConfig
from arbtui.model import Quote

MS = 1_000_000  # ns


def mkq(venue: str, symbol: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]],
        recv: int = 0, vts: int = 0) -> Quote:
    return Quote(venue=venue, symbol=symbol, bid=bids[0][0] if bids else 0.0,
                 bid_size=bids[0][1] if bids else 0.0, ask=asks[0][0] if asks else 0.0,
                 ask_size=asks[0][1] if asks else 0.0, bids=list(bids), asks=list(asks),
                 bid_px=str(bids[0][0]) if bids else "", bid_qty=str(bids[0][1]) if bids else "",
                 ask_px=str(asks[0][0]) if asks else "", ask_qty=str(asks[0][1]) if asks else "",
                 recv_ts_ns=recv, venue_ts_ns=vts)


class Clock:
    """A settable clock in ns, injected into the detector/executor for determinism."""

    def __init__(self, t: int = 1_000 * MS) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def dcfg(**kw) -> DetectorConfig:
    base = {"min_net_bps": 2.0, "max_quote_age_ms": 2000.0, "max_plausible_bps": 300.0, "flat_cost": 0.0,
                "min_notional": 0.0, "max_notional": 1e12, "max_level_share": 1.0}
    base.update(kw)
    return DetectorConfig(**base)
