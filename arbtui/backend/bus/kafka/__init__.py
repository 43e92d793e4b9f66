"""The Kafka transport (aiokafka) behind the same ``Bus`` interface as the embedded bus.

One concept per module:

- ``wire``: the record format (tagged, versioned JSON; msgpack quotes; batches)
- ``partitioning``: a message's partition is its base asset's
- ``connection``: ``[bus.kafka]`` -> client kwargs, errors -> one operator line
- ``admin``: creating missing topics
- ``producer``: the outbox and the sender task
- ``consumer``: the consumer group (detector quotes) and the groupless reader
- ``inbox``: the detector's lazily decoding quote inbox
- ``logs``: rate-limited warnings, aiokafka's noise thinned
- ``bus``: ``KafkaBus`` itself: lifecycle, health, counters
"""

from arbtui.backend.bus.kafka.bus import KafkaBus
from arbtui.backend.bus.kafka.connection import client_kwargs, missing_permission
from arbtui.backend.bus.kafka.consumer import GROUP_SUBSCRIBERS
from arbtui.backend.bus.kafka.inbox import QuoteInbox
from arbtui.backend.bus.kafka.partitioning import base_partitioner
from arbtui.backend.bus.kafka.wire import decode, decode_quote, encode, encode_batch, unpack

__all__ = ["GROUP_SUBSCRIBERS", "KafkaBus", "QuoteInbox", "base_partitioner", "client_kwargs",
           "decode", "decode_quote", "encode", "encode_batch", "missing_permission", "unpack"]
