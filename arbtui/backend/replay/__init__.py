"""Replay recorded sessions through the SAME adapters and book code as live.

One concept per module:

- ``archive``: recorded REST answers and how a request finds its answer;
- ``plan``: the first pass over the files (connections, subscriptions, symbol
  maps) and the time-merged timeline;
- ``driver``: moves the ``VirtualClock`` (``backend/clock.py``) through the
  recording, paces it (``--speed`` / ``--max``) and hands lines to the adapters;
- ``engine``: ``ReplayEngine``, the live engine whose feed role is the driver;
- ``kafka``: replay on the Kafka bus: private topics per run, a delivery barrier per step;
- ``outcome``: what a replay with execution produced, counted like ``arbtui report``;
- ``printer``: ``--print-quotes`` output; ``status``: several connections, one venue.

The command lines (``arbtui replay``, ``arbtui sweep``) live in ``arbtui.commands``.
"""

from arbtui.backend.replay.archive import HttpArchive, ReplayHTTPError, url_key
from arbtui.backend.replay.engine import ReplayEngine
from arbtui.backend.replay.printer import QuotePrinter

__all__ = ["HttpArchive", "QuotePrinter", "ReplayEngine", "ReplayHTTPError", "url_key"]
