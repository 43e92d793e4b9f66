"""The ``--demo`` market: one simulator built from ``[sim]``, shared by every command that
offers ``--demo`` (the dashboard/headless run, the feed role, ``arbtui record``).

The simulator lives up here, not in the engine, so the backend never imports it: a live
process cannot start a fake market by accident, and the import-linter contract
"sim is imported only by commands and tests" can say so.
"""

from __future__ import annotations

from arbtui.backend.sim.server import Simulator
from arbtui.config import Config


def simulator(cfg: Config, *, venues: list[str] | None = None,
              symbols: list[str] | None = None) -> Simulator:
    """An unstarted simulator for ``cfg.sim`` (venues/symbols override the config's lists).

    The engine (or ``arbtui record``) starts it on its own event loop and stops it on the way
    out; the dashboard runs the engine on another thread, so starting it here would bind it to
    the wrong loop.
    """
    s = cfg.sim
    return Simulator(list(venues or s.venues), list(symbols or s.symbols), seed=s.seed,
                     volatility_bps=s.volatility_bps, dislocation_rate=s.dislocation_rate,
                     dislocation_bps=s.dislocation_bps, tick_ms=s.tick_ms, faults=s.faults)
