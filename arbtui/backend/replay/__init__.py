"""Replay recorded sessions through the SAME adapters and book code as live.

One concept per module:

- ``archive``: recorded REST answers and how a request finds its answer;
- ``plan``: the first pass over the files (connections, subscriptions, symbol
  maps) and the time-merged timeline;
- ``driver``: replay time, pacing (``--speed`` / ``--max``) and handing lines to
  the adapters;
- ``engine``: ``ReplayEngine``, the engine whose feeds are the driver's adapters;
- ``printer``: ``--print-quotes`` output; ``status``: several connections, one venue.

The command line (``arbtui replay``) lives in ``arbtui.commands.replay``.
"""

from arbtui.backend.replay.archive import HttpArchive, ReplayHTTPError, url_key
from arbtui.backend.replay.engine import ReplayEngine
from arbtui.backend.replay.printer import QuotePrinter

__all__ = ["HttpArchive", "QuotePrinter", "ReplayEngine", "ReplayHTTPError", "url_key"]
