"""Keeping the log readable: rate-limited warnings and aiokafka's own noise thinned."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("arbtui.kafka")


class LogBudget:
    """At most ``burst`` log lines, refilled at ``rate`` per second: a flood of bad
    records must be visible without drowning the log."""

    def __init__(self, rate: float = 1.0, burst: float = 10.0) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.fetcher",
                     "aiokafka.consumer.group_coordinator", "aiokafka.producer.sender",
                     "aiokafka.producer.producer", "aiokafka.consumer.consumer")


class ThinLogs(logging.Filter):
    """Let each distinct message template through at most once per ``period`` seconds."""

    def __init__(self, period: float = 30.0) -> None:
        super().__init__()
        self.period = period
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if str(record.msg).startswith("Unable connect to"):
            # Startup prints its own one line; outages are reported by the health loop.
            self.suppressed += 1
            return False
        key = (record.name, str(record.msg))
        now = time.monotonic()
        if now - self.last.get(key, -1e9) < self.period:
            self.suppressed += 1
            return False
        if len(self.last) > 1000:
            self.last.clear()
        self.last[key] = now
        return True


THIN_LOGS = ThinLogs()


async def quiet_stop(obj: Any, meth: str = "stop") -> None:
    try:
        await asyncio.wait_for(getattr(obj, meth)(), 5)
    except Exception as e:  # noqa: BLE001 - closing after a failure; nothing left to do
        log.debug("kafka: %s.%s failed: %r", type(obj).__name__, meth, e)
