"""Bus transports: ``embedded`` (default) and ``kafka``."""

from arbtui.backend.bus.base import (
    CONTROL,
    FILLS,
    FUNDING,
    OPPORTUNITIES,
    QUOTES,
    STATUS,
    WALLETS,
    Bus,
    Subscription,
)

__all__ = ["CONTROL", "FILLS", "FUNDING", "OPPORTUNITIES", "QUOTES", "STATUS", "WALLETS", "Bus",
           "Subscription",
           "make_bus"]


def make_bus(cfg) -> Bus:
    """Build the transport named by ``[bus] kind``; Kafka is imported only when asked for."""
    if cfg.bus.kind == "kafka":
        from arbtui.backend.bus.kafka import KafkaBus

        return KafkaBus(cfg.bus)
    from arbtui.backend.bus.embedded import EmbeddedBus

    return EmbeddedBus(cfg.bus.queue_size)
