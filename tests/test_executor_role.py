"""ExecuteRole on the real embedded bus: fills read the book as it is at ARRIVAL."""

from __future__ import annotations

import pytest
from detector_fixtures import MS, Clock, dcfg, mkq

from arbtui.backend.bus import FILLS, OPPORTUNITIES, QUOTES, STATUS
from arbtui.backend.bus.embedded import EmbeddedBus
from arbtui.backend.detector import Detector
from arbtui.backend.executor import Executor
from arbtui.backend.roles.execute import ExecuteRole
from arbtui.config import ExecutionConfig, WalletConfig
from arbtui.model import BookState, BookStatus

FEES = {"kraken": 0.0, "gemini": 0.0}


def setup():
    clock = Clock()
    bus = EmbeddedBus(1000)
    cfg = ExecutionConfig(enabled=True, min_net_bps=1.0,
                          latency_ms={"kraken": 40.0, "gemini": 10.0},
                          wallets={"kraken": WalletConfig(base=0.0, quote=10_000.0),
                                   "gemini": WalletConfig(base=5.0, quote=0.0)})
    ex = Executor(cfg, FEES, clock=clock)
    fills = []
    role = ExecuteRole(ex, bus, on_fill=fills.append)
    out = bus.subscribe(FILLS, "test")
    det = Detector(dcfg(), FEES, clock=clock)
    ka = mkq("kraken", "BTC-USD", [(99.0, 1.0)], [(100.0, 1.0), (100.4, 1.0)], recv=clock.t)
    gb = mkq("gemini", "BTC-USD", [(101.0, 2.0)], [(101.5, 1.0)], recv=clock.t)
    for q in (ka, gb):
        bus.publish(QUOTES, q.symbol, q)
        for e in det.on_quote(q):
            bus.publish(OPPORTUNITIES, e.symbol, e)
    role.step()
    assert len(role._heap) == 2  # both legs in flight
    return clock, bus, role, fills, out


def test_fill_uses_the_book_at_arrival_not_at_detection() -> None:
    clock, bus, role, fills, out = setup()
    # Before gemini's order lands (+10 ms) its bid drops to 100.7 x 0.5: the
    # sell IOC (limit 101.0) finds nothing at or above its limit.
    bus.publish(QUOTES, "BTC-USD", mkq("gemini", "BTC-USD", [(100.7, 0.5)], [(101.5, 1.0)]))
    clock.t += 10 * MS
    role.step()
    assert [(f.venue, f.status, f.filled) for f in fills] == [("gemini", "rejected", 0.0)]
    # kraken's book at +40 ms still has both ask levels: the buy fills 2 @ 100.2 avg
    clock.t += 30 * MS
    role.step()
    assert [(f.venue, f.status) for f in fills][1] == ("kraken", "filled")
    assert fills[1].filled == pytest.approx(2.0) and fills[1].vwap == pytest.approx(100.2)
    assert "one-legged: kept +2 BTC on kraken" in fills[1].reason
    assert [f.venue for f in out.drain()] == ["gemini", "kraken"]  # published on FILLS


def test_no_fill_when_the_book_left_live_before_arrival() -> None:
    clock, bus, role, fills, _ = setup()
    bus.publish(STATUS, "BTC-USD", BookStatus(venue="gemini", symbol="BTC-USD",
                                              state=BookState.RESYNC, reason="gap"))
    clock.t += 40 * MS
    role.step()
    g = next(f for f in fills if f.venue == "gemini")
    assert g.status == "rejected" and "no LIVE BTC-USD book on gemini" in g.reason
    k = next(f for f in fills if f.venue == "kraken")
    assert k.status == "filled"
    # quotes are not used again until the feed reports the book LIVE
    bus.publish(QUOTES, "BTC-USD", mkq("gemini", "BTC-USD", [(101.0, 2.0)], [(101.5, 1.0)]))
    role._drain_books()
    assert ("gemini", "BTC-USD") not in role.books
