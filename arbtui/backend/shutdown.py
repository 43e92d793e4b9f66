"""The stop signal the long-running commands (headless, record, replay) wait on."""

from __future__ import annotations

import asyncio
import signal


def stop_event(duration: float | None = None) -> asyncio.Event:
    """An Event set on SIGINT/SIGTERM, or ``duration`` seconds from now.

    Handling the signals, instead of letting KeyboardInterrupt unwind the loop,
    lets the command shut down in order: feeds stopped, files flushed, a last
    status line written. Call it inside the running loop.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # no handlers off the main thread / on Windows: Ctrl-C raises KeyboardInterrupt
    if duration:
        loop.call_later(duration, stop.set)
    return stop
