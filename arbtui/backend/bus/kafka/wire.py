"""The Kafka wire format: what a record value is, how it is encoded and decoded.

msgspec JSON with a ``type`` tag and schema version ``v``, readable with kcat;
the quotes topic is msgpack with the same fields unless ``quote_format =
"json"`` (readers detect the format). A record carries SEVERAL messages
(per-record client and broker work, not per-message work, is what limits a
Kafka pipe at tens of thousands of quotes/s):
``{"type":"quotes","keys":[[venue,symbol],...],"items":[quote,...]}`` on the
quotes topic, ``{"type":"batch","items":[tagged message,...]}`` on the others.
Single tagged messages (``{"type":"quote",...}``) are still accepted.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Union

import msgspec

from arbtui import model
from arbtui.backend.bus.base import (
    CONTROL,
    FILLS,
    FUNDING,
    OPPORTUNITIES,
    QUOTES,
    STATUS,
    WALLETS,
)

# Tagged subclasses of the model Structs: decoding yields instances that ARE
# model.Quote etc. (isinstance holds), so consumers cannot tell the transports apart.


class Quote(model.Quote, tag="quote", tag_field="type"):
    pass


class Opportunity(model.Opportunity, tag="opportunity", tag_field="type"):
    pass


class Fill(model.Fill, tag="fill", tag_field="type"):
    pass


class OpenSet(model.OpenSet, tag="open_set", tag_field="type"):
    pass


class BookStatus(model.BookStatus, tag="book_status", tag_field="type"):
    pass


class VenueStatus(model.VenueStatus, tag="venue_status", tag_field="type"):
    pass


class WalletState(model.WalletState, tag="wallet_state", tag_field="type"):
    pass


class Funding(model.Funding, tag="funding", tag_field="type"):
    pass


class Control(model.Control, tag="control", tag_field="type"):
    pass


class ControlAck(model.ControlAck, tag="control_ack", tag_field="type"):
    pass


WIRE = (Quote, Opportunity, Fill, BookStatus, VenueStatus, OpenSet, WalletState, Funding,
        Control, ControlAck)
#: model class (and wire subclass) -> the JSON prefix that opens its object with the tag.
PREFIX: dict[type, bytes] = {}
for _w in WIRE:
    PREFIX[_w.__mro__[1]] = b'{"type":"' + _w.__struct_config__.tag.encode() + b'",'


class QuoteBatch(msgspec.Struct, tag="quotes", tag_field="type"):
    """Many quotes in one Kafka record: per-record client and broker work, not
    per-quote work, is what limits a Kafka pipe at tens of thousands of quotes/s.

    ``keys[i]`` is ``[venue, symbol]`` of ``items[i]``. Items stay undecoded
    (``Raw``) until a consumer needs them: a coalescing inbox keeps the newest
    item per key undecoded and decodes only what its reader drains, so a quote
    superseded before the detector got to it is never decoded at all.
    ``pub_ts_ns`` is the newest item's publish time (the feed -> consumer hop).
    """

    keys: list[tuple[str, str]]
    items: list[msgspec.Raw]
    pub_ts_ns: int = 0
    v: int = model.SCHEMA_VERSION


class Batch(msgspec.Struct, tag="batch", tag_field="type"):
    """Opportunities, fills and status changes several to a record: each item is
    one tagged message exactly as a single record would carry it."""

    items: list[Union[WIRE]]  # noqa: UP007 - msgspec wants a Union
    v: int = model.SCHEMA_VERSION


class _QuoteBatchOut(msgspec.Struct, tag="quotes", tag_field="type"):
    """QuoteBatch as written (decoded items in, one encoder call)."""

    keys: list[tuple[str, str]]
    items: list[model.Quote]
    pub_ts_ns: int = 0
    v: int = model.SCHEMA_VERSION


_ANY = Union[(QuoteBatch, Batch, *WIRE)]
_DECODER = msgspec.json.Decoder(_ANY)
_MP_DECODER = msgspec.msgpack.Decoder(_ANY)
_QUOTE = msgspec.json.Decoder(model.Quote)
_MP_QUOTE = msgspec.msgpack.Decoder(model.Quote)
_ENCODER = msgspec.json.Encoder()
_MP_ENCODER = msgspec.msgpack.Encoder()
_OPEN_BRACE = 0x7B  # a JSON record/item starts with "{"; a msgpack one with a map header

#: What may legally arrive on each logical topic; anything else is a bad record
#: (an Opportunity on the quotes topic would crash the detector otherwise).
ALLOWED: dict[str, tuple[type, ...]] = {
    QUOTES: (model.Quote,),
    OPPORTUNITIES: (model.Opportunity, model.OpenSet),
    FILLS: (model.Fill,),
    STATUS: (model.BookStatus, model.VenueStatus),
    WALLETS: (model.WalletState,),
    FUNDING: (model.Funding,),
    CONTROL: (model.Control, model.ControlAck),
}


class _Head(msgspec.Struct):
    """Just enough of a record to tell 'other schema version' from 'garbage'."""

    v: int = -1


_HEAD = msgspec.json.Decoder(_Head)
_MP_HEAD = msgspec.msgpack.Decoder(_Head)


def encode(msg: Any) -> bytes:
    """Struct -> tagged JSON bytes. Model instances get the tag spliced in (no copy)."""
    if isinstance(msg, WIRE):
        return _ENCODER.encode(msg)
    prefix = PREFIX.get(type(msg))
    if prefix is None:
        raise TypeError(f"cannot put {type(msg).__name__} on the Kafka bus")
    return prefix + _ENCODER.encode(msg)[1:]


_B_OPEN = b'{"type":"batch","items":['
_V_CLOSE = b',"v":' + str(model.SCHEMA_VERSION).encode() + b"}"


def encode_batch(topic: str, msgs: list[Any], quote_format: str = "json") -> bytes:
    """Several messages of one logical topic -> ONE record value (see QuoteBatch/Batch).

    Quotes can be written as msgpack (``bus.kafka.quote_format``): most of a quote
    is its 2 x 10 levels of floats, and formatting floats as JSON text is half the
    cost of producing a quote; msgpack writes them as 9 binary bytes each."""
    if topic == QUOTES:
        out = _QuoteBatchOut([(q.venue, q.symbol) for q in msgs], msgs, msgs[-1].pub_ts_ns)
        return (_MP_ENCODER if quote_format == "msgpack" else _ENCODER).encode(out)
    return b"".join((_B_OPEN, b",".join([encode(m) for m in msgs]), b"]", _V_CLOSE))


def decode(value: bytes | None) -> tuple[Any, str]:
    """bytes (JSON or msgpack) -> (Struct, "") or (None, why) where why is
    malformed/wrong_version. The Struct is a single message or a QuoteBatch/Batch."""
    if not value:
        return None, "malformed"
    js = value[0] == _OPEN_BRACE
    try:
        msg = (_DECODER if js else _MP_DECODER).decode(value)
    except msgspec.DecodeError:
        try:
            v = (_HEAD if js else _MP_HEAD).decode(value).v
        except msgspec.DecodeError:
            return None, "malformed"
        return None, ("wrong_version" if v not in (-1, model.SCHEMA_VERSION) else "malformed")
    if msg.v != model.SCHEMA_VERSION:
        return None, "wrong_version"
    return msg, ""


def decode_quote(raw: Any) -> tuple[model.Quote | None, str]:
    """One QuoteBatch item (JSON or msgpack, as its record was) -> (Quote, "") or (None, why)."""
    try:
        q = (_QUOTE if memoryview(raw)[0] == _OPEN_BRACE else _MP_QUOTE).decode(raw)
    except (msgspec.DecodeError, IndexError):
        return None, "malformed"
    if q.v != model.SCHEMA_VERSION:
        return None, "wrong_version"
    return q, ""


def unpack(value: bytes | None) -> tuple[list[Any], str]:
    """A record value -> (every message in it, decoded, in order) or ([], why): for
    tools and tests that read the topics without a KafkaBus."""
    msg, why = decode(value)
    if msg is None:
        return [], why
    if isinstance(msg, QuoteBatch):
        out = []
        for raw in msg.items:
            q, why = decode_quote(raw)
            if q is None:
                return [], why
            out.append(q)
        return out, ""
    if isinstance(msg, Batch):
        return list(msg.items), ""
    return [msg], ""


def dedup_key(m: Any) -> Hashable | None:
    """What makes a reliable message unique, for consumers that must see it once
    (a record retried after a lost acknowledgement arrives twice); None = no key."""
    # A redelivery is the same message field for field; two events of one window
    # can share a timestamp (one detector batch), so the key carries what they differ in.
    t = type(m)
    if t is Opportunity or t is model.Opportunity:
        return ("o", m.id, m.event, m.ts_ns, m.net_bps, m.size, m.reason, m.suspect)
    if t is Fill or t is model.Fill:
        return ("f", m.opp_id, m.venue, m.side, m.kind, m.ts_ns, m.filled, m.vwap, m.status)
    if t is OpenSet or t is model.OpenSet:
        return ("s", m.owner, m.seq)
    if t is Control or t is model.Control:
        return ("c", m.id)
    if t is ControlAck or t is model.ControlAck:
        return ("a", m.control_id, m.role, m.owner, m.ts_ns)
    return None
