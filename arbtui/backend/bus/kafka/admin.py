"""Topic administration: create what is missing, with the configured layout."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from arbtui.backend.bus.base import BusError
from arbtui.backend.bus.kafka.connection import explain
from arbtui.backend.bus.kafka.logs import log, quiet_stop


async def ensure_topics(kw: dict[str, Any], k: Any, topics: Iterable[str], auth: list[str]) -> None:
    """Create missing topics with the configured partitions/replication."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**kw, request_timeout_ms=5000)
    try:
        try:
            await asyncio.wait_for(admin.start(), 10)
            existing = set(await asyncio.wait_for(admin.list_topics(), 10))
        except Exception as e:  # noqa: BLE001 - unreachable/unauthorized: one line
            raise BusError(explain(e, k, "connect")) from None
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        try:
            resp = await asyncio.wait_for(admin.create_topics(
                [NewTopic(t, k.partitions, k.replication) for t in missing]), 15)
        except Exception as e:  # noqa: BLE001
            raise BusError(explain(e, k, f"create topics {', '.join(missing)}")) from None
        for topic, code, message in [(t[0], t[1], t[2] if len(t) > 2 else "")
                                     for t in resp.topic_errors]:
            if code in (0, 36):  # 36 TOPIC_ALREADY_EXISTS: another role won the race
                continue
            if code in (29, 31):  # TOPIC_/CLUSTER_AUTHORIZATION_FAILED
                need = f"CREATE on Topic:{topic} (or Cluster)"
                auth.append(need)
                raise BusError(f"kafka {k.bootstrap_servers}: topic {topic} is missing "
                               f"and this principal may not create it: needs {need}")
            raise BusError(f"kafka {k.bootstrap_servers}: cannot create topic {topic}: "
                           f"error {code} {message or ''}".rstrip())
        log.info("kafka: created topics %s (%d partitions, replication %d)",
                 ", ".join(missing), k.partitions, k.replication)
    finally:
        await quiet_stop(admin, "close")
