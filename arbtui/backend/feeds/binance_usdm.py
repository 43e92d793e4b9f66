"""Binance USD-M perpetual futures (docs/protocols.md#binance-usdm).

The spot adapter (``binance.py``) with the USD-M rules where they differ:

- Streams ``<sym>@depth@100ms`` (diffs) and ``<sym>@markPrice@1s`` (funding,
  mark and index) on ``fstream.binance.com``; no bookTicker cross-check
  (USD-M's bookTicker carries its own id sequence).
- Continuity is USD-M's ``pu``: every depth event names the ``u`` of the event
  before it, and ``pu`` must equal the ``u`` we applied last. ``U`` itself
  may jump (USD-M ids are not contiguous per symbol), so the spot rule
  ``U <= id + 1`` would raise false gaps.
- The REST snapshot is ``/fapi/v1/depth`` (limits 5..1000, its own weights);
  bridging keeps events with ``u > lastUpdateId`` whose first one straddles the
  snapshot (``pu <= lastUpdateId < u``), then chains them exactly by ``pu``
  (``bridge.py`` with ``exact=True``).
- Quantities are base units (contract size 1 base): no conversion.
- ``markPriceUpdate``: ``r`` funding rate, ``T`` next funding time (ms), ``p``
  mark, ``i`` index, ``E`` event time -> ``model.Funding`` (8 h interval:
  the stream does not say; ``/fapi/v1/fundingInfo`` lists the symbols that differ).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import msgspec

from arbtui import venues
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import SymbolBook
from arbtui.backend.feeds.binance import BinanceFeed
from arbtui.model import Funding

log = logging.getLogger("arbtui.feeds.binance_usdm")
_SPEC = venues.get("binance-usdm")
_decode = msgspec.json.decode

#: ``/fapi/v1/depth`` accepts only these limits.
LIMITS = (5, 10, 20, 50, 100, 500, 1000)


class BinanceUsdmFeed(BinanceFeed):
    venue: ClassVar[str] = _SPEC.name
    depth_path: ClassVar[str] = "/fapi/v1/depth"
    bridge_exact: ClassVar[bool] = True
    max_depth: ClassVar[int | None] = 1000
    #: markPrice arrives every second per symbol: a minute of nothing is a dead socket.
    stale_after_s: ClassVar[float] = 30.0
    #: USD-M funding settles every 8 h unless ``fundingInfo`` says otherwise.
    funding_interval_h: ClassVar[float] = 8.0

    @staticmethod
    def snapshot_limit_for(depth: int) -> int:
        for lim in LIMITS:
            if depth <= lim:
                return lim
        return LIMITS[-1]

    @staticmethod
    def snapshot_weight(limit: int) -> int:
        """REST weight of ``GET /fapi/v1/depth`` by ``limit`` (USD-M docs)."""
        if limit <= 50:
            return 2
        if limit <= 100:
            return 5
        if limit <= 500:
            return 10
        return 20

    def pending_of(self, ev: dict) -> bridge.Pending:
        pu = ev.get("pu")
        # An event without pu cannot be chained: -2 never equals an id, so the
        # bridge refuses it as a gap instead of guessing.
        return bridge.Pending(pu if isinstance(pu, int) else -2, ev["u"], ev)

    def gap_in(self, sb: SymbolBook, ev: dict) -> str | None:
        pu = ev.get("pu")
        x = sb.sync
        if x.straddle:
            # First event after a snapshot that no buffered event followed: it must
            # straddle the snapshot id (pu <= lastUpdateId < u; u > id is checked
            # before): nothing between the snapshot and it can be missing. From the
            # next one on, pu chains exactly.
            x.straddle = False
            if isinstance(pu, int) and pu <= sb.seq:
                return None
            return f"gap: first event after snapshot {sb.seq} starts at pu={pu}"
        if pu != sb.seq:
            return f"gap: pu={pu} after id {sb.seq}"
        return None

    def streams(self) -> list[str]:
        out = []
        for sb in self.books.values():
            v = sb.vsym.lower()
            out += [f"{v}@depth@100ms", f"{v}@markPrice@1s"]
        return out

    # ------------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """USD-M ``exchangeInfo`` -> {``BASE-QUOTE-PERP``: symbol}: PERPETUAL contracts
        in TRADING only (quarterly ``BTCUSDT_250627`` futures are not perps)."""
        info = _decode(body)
        out: dict[str, str] = {}
        for s in info.get("symbols", []):
            if s.get("contractType") != "PERPETUAL" or s.get("status") != "TRADING":
                continue
            base, quote = s.get("baseAsset"), s.get("quoteAsset")
            if base and quote and s.get("symbol"):
                out[f"{base}-{quote}-PERP"] = s["symbol"]
        return out

    # ------------------------------------------------------------------ funding

    def on_event(self, e: Any, ev: dict, recv_ns: int, data: Any) -> bool:
        if e != "markPriceUpdate":
            return False
        sb = self._sb_for(ev, data)
        if sb is None:
            return True
        try:
            f = Funding(venue=self.venue, symbol=sb.symbol, rate=float(ev["r"]),
                        interval_h=self.funding_interval_h,
                        next_funding_ts_ns=int(ev["T"]) * 1_000_000,
                        mark=float(ev["p"]), index=float(ev["i"]),
                        ts_ns=int(ev.get("E") or 0) * 1_000_000, recv_ts_ns=recv_ns)
        except (KeyError, TypeError, ValueError) as exc:
            self.frame_error(f"markPriceUpdate: {exc}", data)
            return True
        self.publish_funding(f)
        return True
