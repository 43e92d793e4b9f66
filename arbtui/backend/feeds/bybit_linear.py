"""Bybit v5 linear (USDT-margined) perpetuals (docs/protocols.md#bybit-linear).

The spot adapter (``bybit.py``) on the ``/v5/public/linear`` endpoint: the same
``orderbook.{depth}.{symbol}`` snapshot/delta rules (``u`` + 1 per delta, ``u == 1``
is a service restart, ``seq`` only increases), linear's depths (1, 50, 200, 500),
quantities in base units, plus the ``tickers.{symbol}`` topic for venue state:
a ``snapshot`` then ``delta`` messages that carry only the fields that changed,
so the adapter keeps the merged fields per symbol and publishes a
``model.Funding`` (``fundingRate``, ``nextFundingTime``, ``markPrice``,
``indexPrice``; ``fundingIntervalHour`` when the venue sends it, else 8 h)
once all four are known.
"""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.feeds.bybit import BybitFeed
from arbtui.model import Funding

log = logging.getLogger("arbtui.feeds.bybit_linear")
_SPEC = venues.get("bybit-linear")

#: Linear/inverse book depths (1: 10 ms; 50: 20 ms; 200 and 500: 100 ms).
DEPTHS = (1, 50, 200, 500)
_FIELDS = ("fundingRate", "nextFundingTime", "markPrice", "indexPrice")


class BybitLinearFeed(BybitFeed):
    venue: ClassVar[str] = _SPEC.name
    category: ClassVar[str] = "linear"
    depths: ClassVar[tuple[int, ...]] = DEPTHS

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        #: symbol -> the tickers fields merged so far (deltas carry only changes)
        self._tickers: dict[str, dict[str, Any]] = {}

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """instruments-info (linear) -> {``BASE-QUOTE-PERP``: symbol}: LinearPerpetual
        contracts in Trading only (dated LinearFutures are not perps)."""
        doc = json.loads(body)
        if doc.get("retCode", 0) != 0:
            raise ValueError(f"instruments-info error: {doc.get('retMsg')}")
        res = doc.get("result") or {}
        if res.get("category") != "linear":
            raise ValueError(f"not a linear instrument list: category={res.get('category')}")
        out: dict[str, str] = {}
        for it in res.get("list") or []:
            if not isinstance(it, dict) or it.get("contractType") != "LinearPerpetual":
                continue
            sym, base, quote = it.get("symbol"), it.get("baseCoin"), it.get("quoteCoin")
            if (isinstance(sym, str) and isinstance(base, str) and isinstance(quote, str)
                    and it.get("status", "Trading") == "Trading"):
                out[f"{base}-{quote}-PERP"] = sym
        return out

    def extra_topics(self) -> list[str]:
        return [f"tickers.{sb.vsym}" for sb in self.books.values()]

    def on_topic(self, topic: str, msg: dict, recv_ns: int, data: Any) -> bool:
        if not topic.startswith("tickers."):
            return False
        body = msg.get("data")
        sb = self.by_vsym.get(topic[len("tickers."):])
        if sb is None or not isinstance(body, dict):
            if sb is None:
                self.count("unknown_topic")
            else:
                self.frame_error("tickers: no data object", data)
            return True
        cur = self._tickers.setdefault(sb.symbol, {})
        if msg.get("type") == "snapshot":
            cur.clear()
        cur.update({k: v for k, v in body.items() if v not in (None, "")})
        if not all(k in cur for k in _FIELDS):
            return True
        try:
            ts = msg.get("ts")
            f = Funding(venue=self.venue, symbol=sb.symbol, rate=float(cur["fundingRate"]),
                        interval_h=float(cur.get("fundingIntervalHour") or 8.0),
                        next_funding_ts_ns=int(cur["nextFundingTime"]) * 1_000_000,
                        mark=float(cur["markPrice"]), index=float(cur["indexPrice"]),
                        ts_ns=int(ts) * 1_000_000 if isinstance(ts, int) else 0,
                        recv_ts_ns=recv_ns)
        except (TypeError, ValueError) as e:
            for k in body:  # the bad field must not stick: wait for its next value
                cur.pop(k, None)
            self.frame_error(f"tickers: {e}", data)
            return True
        self.publish_funding(f)
        return True
