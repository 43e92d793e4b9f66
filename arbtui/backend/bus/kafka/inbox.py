"""The detector's coalescing quote inbox that decodes lazily."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from arbtui.backend.bus.base import Subscription
from arbtui.backend.bus.kafka.wire import decode_quote


class QuoteInbox(Subscription):
    """A coalescing quote inbox (newest per venue+symbol) that holds QuoteBatch items
    undecoded and decodes them only when drained: at saturation most quotes are
    superseded in the inbox before the detector gets to them, and decoding them
    (the 10-level float lists especially) would be the consumer's biggest cost."""

    def __init__(self, *a: Any, on_bad: Callable[[str, Any], None], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._on_bad = on_bad

    def put_raw(self, keys: list[tuple[str, str]], items: list[Any]) -> None:
        if self.closed:
            return
        newest = dict(zip(keys, items))  # later items of a key replace earlier ones
        self.superseded += len(items) - len(newest)
        latest = self._latest
        for k, raw in newest.items():
            if k in latest:
                self.superseded += 1
                del latest[k]  # re-insert so arrival order stays roughly fair
            elif len(latest) >= self.maxsize:
                latest.pop(next(iter(latest)))
                self.dropped += 1
            latest[k] = raw
        self._event.set()

    def _decode_pending(self) -> None:
        latest = self._latest
        for k, m in list(latest.items()):
            if type(m) is msgspec.Raw:
                q, why = decode_quote(m)
                if q is None or (q.venue, q.symbol) != k:
                    del latest[k]
                    self._on_bad(why or "malformed", k)
                else:
                    latest[k] = q

    def drain(self) -> list[Any]:
        self._decode_pending()
        return super().drain()

    def discard_where(self, pred: Callable[[Any], bool]) -> int:
        self._decode_pending()  # the predicate reads message fields
        return super().discard_where(pred)
