"""``[bus.kafka]`` -> aiokafka client kwargs, and Kafka errors -> one operator line."""

from __future__ import annotations

import ssl
from typing import Any

from arbtui.backend.bus.base import BusError


def client_kwargs(k: Any) -> dict[str, Any]:
    """aiokafka connection/security kwargs from ``[bus.kafka]``.

    Raises BusError for a misconfiguration; the password is resolved from
    ``env:VAR`` here and never stored anywhere that is logged or shown.
    """
    from arbtui.config import resolve_secret

    kw: dict[str, Any] = {"bootstrap_servers": k.bootstrap_servers.split(","),
                          "client_id": k.client_id, "security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        try:
            ctx = ssl.create_default_context(cafile=k.ssl_cafile or None)
            if k.ssl_certfile:
                ctx.load_cert_chain(k.ssl_certfile, k.ssl_keyfile or None)
        except (OSError, ssl.SSLError) as e:
            raise BusError(f"kafka: bus.kafka.ssl_*: cannot load certificates: {e}") from None
        kw["ssl_context"] = ctx
    if k.security_protocol.startswith("SASL"):
        if not k.sasl_mechanism:
            raise BusError(f"kafka: bus.kafka.sasl_mechanism must be set for {k.security_protocol}")
        password = resolve_secret(k.sasl_password)
        if k.sasl_password.startswith("env:") and not password:
            raise BusError(f"kafka: bus.kafka.sasl_password: environment variable "
                           f"{k.sasl_password[4:]} is not set")
        kw.update(sasl_mechanism=k.sasl_mechanism, sasl_plain_username=k.sasl_username,
                  sasl_plain_password=password)
    return kw


def missing_permission(err: BaseException, k: Any, topic: str = "") -> str | None:
    """Name the ACL a Kafka authorization error means, or None if it is not one."""
    from aiokafka import errors as ke

    if isinstance(err, ke.TopicAuthorizationFailedError):
        return f"Topic:{topic or '?'} (READ/WRITE/DESCRIBE)"
    if isinstance(err, ke.GroupAuthorizationFailedError):
        return f"READ on Group:{k.group_id}"
    if isinstance(err, ke.ClusterAuthorizationFailedError):
        return "Cluster (CREATE/DESCRIBE_CONFIGS)"
    name = type(err).__name__
    if "Authorization" in name or "Authentication" in name or "Sasl" in name:
        return f"{name}: {err}"
    return None


def explain(e: BaseException, k: Any, what: str) -> str:
    """One line for the operator: what failed, and the likely cause."""
    perm = missing_permission(e, k)
    if perm:
        return f"kafka {k.bootstrap_servers}: not authorized to {what}: needs {perm}"
    from aiokafka.errors import KafkaConnectionError

    name = type(e).__name__
    if isinstance(e, (KafkaConnectionError, TimeoutError, OSError)):
        return (f"kafka {k.bootstrap_servers}: cannot {what}: no broker answered "
                f"({name}; check bus.kafka.bootstrap_servers and that the cluster is up)")
    msg = str(e).removeprefix(f"{name}: ") or name
    return f"kafka {k.bootstrap_servers}: cannot {what}: {name}: {msg}"
