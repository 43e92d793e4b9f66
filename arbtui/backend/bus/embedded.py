"""In-process fan-out: no serialization, bounded inboxes, counted drops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any

from arbtui.backend.bus.base import Bus, Subscription


class EmbeddedBus(Bus):
    kind = "embedded"

    def __init__(self, queue_size: int = 10_000) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, list[Subscription]] = {}
        self.published: dict[str, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for subs in self._subs.values():
            for s in subs:
                s.close()

    def publish(self, topic: str, key: str, msg: Any) -> None:
        self.published[topic] = self.published.get(topic, 0) + 1
        for s in self._subs.get(topic, ()):
            s.put(msg)

    def subscribe(self, topic: str, name: str, *, maxsize: int | None = None,
                  coalesce: Callable[[Any], Hashable] | None = None,
                  wake: asyncio.Event | None = None) -> Subscription:
        sub = Subscription(topic, name, maxsize or self.queue_size, coalesce, wake)
        self._subs.setdefault(topic, []).append(sub)
        return sub

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "state": "up",
            "published": dict(self.published),
            "subscriptions": {
                f"{s.topic}/{s.name}": {"depth": len(s), "dropped": s.dropped,
                                      "superseded": s.superseded, "delivered": s.delivered}
                for subs in self._subs.values() for s in subs
            },
        }
