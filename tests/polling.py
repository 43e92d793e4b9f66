"""Waiting in async tests: poll a condition until it holds, or fail saying what never
happened (one helper for every test file; no timing is asserted, the timeout only
bounds how long a broken run hangs)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def until(pred: Callable[[], Any], timeout: float = 15.0, what: str = "condition", *,
                every: float = 0.05, detail: Callable[[], Any] | None = None,
                sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Any:
    """Poll ``pred()`` every ``every`` seconds and return its first truthy value; after
    ``timeout`` seconds raise ``AssertionError("timed out after {timeout}s waiting for
    {what}")``, with ``detail()`` appended (e.g. the bus's counters) to show why.

    ``pred`` is checked once more at the deadline, so a slow box that wakes late still
    sees a condition that came true meanwhile. ``sleep`` is what waits between polls:
    ``pilot.pause`` in a Textual test, so the app processes its messages meanwhile."""
    end = asyncio.get_running_loop().time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if asyncio.get_running_loop().time() >= end:
            why = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{why}")
        await sleep(every)
