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
                    "aiokafka.producer.producer", "aiokafka.consumer.consumer",
                    "aiokafka.consumer.subscription_state", "aiokafka.producer.message_accumulator")

#: aiokafka's lines that only restate "the broker is unreachable / the group is
#: re-forming": the bus says that itself, once per transition, with the outage's
#: length and counts (``broker unreachable``, ``broker reachable again``,
#: ``delivery ... failing`` / ``recovered``, ``group ... assigned``).
TRANSIENT = ("Unable connect to", "Unable to update metadata", "Failed fetch messages",
             "Got error produce response", "HeartbeatRequest", "Heartbeat send request failed",
             "Heartbeat failed", "Marking the coordinator dead", "Group Coordinator Request failed",
             "Unable to request metadata", "Failed to send request", "KafkaConnectionError",
             "NodeNotReadyError", "RequestTimedOutError", "NotCoordinatorForGroupError",
             "CoordinatorNotAvailableError", "UnknownTopicOrPartitionError",
             "NotLeaderForPartitionError", "LeaderNotAvailableError", "OffsetCommit failed")


class ThinLogs(logging.Filter):
    """aiokafka's warnings and errors, filtered to what an operator needs: the ones
    that only restate an outage the bus already reports are dropped (counted in
    ``suppressed``); any other message template passes at most once per ``period``."""

    def __init__(self, period: float = 30.0) -> None:
        super().__init__()
        self.period = period
        self.last: dict[tuple[str, str], float] = {}
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: judge the template
            text = str(record.msg)
        if any(m in text for m in TRANSIENT):
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


def quiet_aiokafka() -> None:
    """Install the filter; aiokafka's INFO chatter (group joins, subscriptions) is left
    out unless the operator asked for DEBUG: the bus logs assignments itself."""
    for name in AIOKAFKA_LOGGERS:
        lg = logging.getLogger(name)
        if THIN_LOGS not in lg.filters:
            lg.addFilter(THIN_LOGS)
    top = logging.getLogger("aiokafka")
    if top.level == logging.NOTSET and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        top.setLevel(logging.WARNING)


THIN_LOGS = ThinLogs()


async def quiet_stop(obj: Any, meth: str = "stop") -> None:
    try:
        await asyncio.wait_for(getattr(obj, meth)(), 5)
    except Exception as e:  # noqa: BLE001 - closing after a failure; nothing left to do
        log.debug("kafka: %s.%s failed: %r", type(obj).__name__, meth, e)
