"""OKX v5 perpetual swaps (docs/protocols.md#okx-swap).

The spot adapter (``okx.py``) on ``BTC-USDT-SWAP`` style instIds: the same
``books`` rules (snapshot, ``prevSeqId`` chain, CRC32 checksum over the top 25
levels when non-zero, REST bridge when no snapshot comes), plus:

- **Sizes are contracts.** The book keeps the venue's own strings (the
  checksum is defined over them); every published quote is converted to base
  units by the instrument table (``arbtui.venues``: ``ctVal`` 0.01 BTC for
  BTC-USDT-SWAP; inverse BTC-USD-SWAP contracts are 100 USD each, i.e.
  ``100 / price`` BTC). An instrument list whose ``ctVal``/``ctType`` differs
  from the table is refused for that instrument: a wrong contract size would
  misstate every size by a factor.
- **Venue state** from three more channels, merged per symbol into one
  ``model.Funding``: ``funding-rate`` (``fundingRate`` for the period that
  settles at ``fundingTime``; ``nextFundingTime`` - ``fundingTime`` is the
  interval), ``mark-price`` (``markPx``) and ``index-tickers`` on the
  underlying index (``BTC-USDT``: ``idxPx``). Published once all are known,
  then on every update.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any, ClassVar

from arbtui import venues
from arbtui.backend.feeds.okx import OkxFeed
from arbtui.model import Funding, Quote

log = logging.getLogger("arbtui.feeds.okx_swap")
_SPEC = venues.get("okx-swap")

#: Venue-state channels subscribed beside ``books``.
STATE_CHANNELS = ("funding-rate", "mark-price", "index-tickers")


def base_quote(inst: venues.Instrument, q: Quote, prev: Quote | None = None,
               prev_raw: Quote | None = None) -> Quote:
    """``q`` with every size in base units (``Instrument.base_levels``; the top's
    strings are those floats written out). ``prev``/``prev_raw``: the
    last conversion and its input; a liveness refresh (the SAME level lists as
    ``prev_raw``) reuses ``prev``'s lists, so consumers still see them unchanged."""
    if inst.unit:
        return q
    if prev is not None and prev_raw is not None and q.bids is prev_raw.bids \
            and q.asks is prev_raw.asks:
        bid_qty, ask_qty, bids, asks = prev.bid_qty, prev.ask_qty, prev.bids, prev.asks
        bs, as_ = prev.bid_size, prev.ask_size
    else:
        bids = inst.base_levels(q.bids)
        asks = inst.base_levels(q.asks)
        bs, as_ = bids[0][1], asks[0][1]
        bid_qty, ask_qty = venues.decimal_text(bs), venues.decimal_text(as_)
    return Quote(venue=q.venue, symbol=q.symbol, bid=q.bid, bid_size=bs, ask=q.ask,
                 ask_size=as_, bids=bids, asks=asks, bid_px=q.bid_px, bid_qty=bid_qty,
                 ask_px=q.ask_px, ask_qty=ask_qty, venue_ts_ns=q.venue_ts_ns,
                 recv_ts_ns=q.recv_ts_ns, seq=q.seq, pub_ts_ns=q.pub_ts_ns,
                 live_ts_ns=q.live_ts_ns, live_venue_ts_ns=q.live_venue_ts_ns)


class OkxSwapFeed(OkxFeed):
    venue: ClassVar[str] = _SPEC.name

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        self.instruments = {s: _SPEC.instrument(s) for s in self.books}
        # The books hold contracts (the checksum is over the venue's strings);
        # everything published leaves through this conversion.
        self._emit_contracts = emit
        self.emit = self._emit_base
        #: index instId (the underlying, ``BTC-USDT``) -> our symbols on it
        self._by_index: dict[str, list[str]] = {}
        for s in self.books:
            self._by_index.setdefault(venues.underlying(s), []).append(s)
        self._state: dict[str, dict[str, Any]] = {s: {} for s in self.books}
        #: symbol -> (last converted quote, the quote it was converted from)
        self._last: dict[str, tuple[Quote, Quote]] = {}

    def _emit_base(self, q: Quote) -> None:
        prev = self._last.get(q.symbol)
        out = base_quote(self.instruments[q.symbol], q, *(prev or (None, None)))
        self._last[q.symbol] = (out, q)
        self._emit_contracts(out)

    # ------------------------------------------------------------ symbols

    @staticmethod
    def parse_instruments(body: str) -> dict[str, str]:
        """``instType=SWAP`` list -> {``BASE-QUOTE-PERP``: instId} (``uly`` is the
        underlying), live swaps whose contract matches the instrument table only."""
        out: dict[str, str] = {}
        doc = json.loads(body)
        for r in (doc.get("data") if isinstance(doc, dict) else None) or []:
            if not isinstance(r, dict) or r.get("instType") != "SWAP":
                continue
            uly, inst = r.get("uly") or r.get("instFamily"), r.get("instId")
            if not (uly and inst) or r.get("state") not in (None, "", "live"):
                continue
            norm = f"{uly.upper()}-PERP"
            want = _SPEC.contracts.get(norm)
            if want is None:
                continue  # no contract size we can vouch for: never guess one
            try:
                same = (Decimal(str(r.get("ctVal"))) == Decimal(want.ct_val)
                        and r.get("ctType") == want.kind)
            except ArithmeticError:
                same = False
            if not same:
                log.warning("okx-swap: %s is ctVal=%s %s on the venue but %s %s in the "
                            "instrument table; skipped", inst, r.get("ctVal"), r.get("ctType"),
                            want.ct_val, want.kind)
                continue
            out[norm] = inst
        return out

    # ------------------------------------------------------------ outbound

    def _state_args(self) -> list[dict[str, str]]:
        args: list[dict[str, str]] = []
        for sb in self.books.values():
            args += [{"channel": "funding-rate", "instId": sb.vsym},
                     {"channel": "mark-price", "instId": sb.vsym}]
        args += [{"channel": "index-tickers", "instId": i} for i in self._by_index]
        return args

    def subscribe_messages(self) -> list[str]:
        msgs = super().subscribe_messages()
        extra = json.dumps({"op": "subscribe", "args": self._state_args()}, separators=(",", ":"))
        self._note_ops(1)
        return msgs + [extra]

    # ------------------------------------------------------------ venue state

    def on_channel(self, arg: dict, m: dict, recv_ns: int, data: str) -> bool:
        ch = arg.get("channel")
        if ch not in STATE_CHANNELS:
            return False
        rows = m.get("data")
        if not isinstance(rows, list) or not rows or not isinstance(rows[0], dict):
            self.frame_error(f"{ch}: no data", data)
            return True
        row = rows[-1]
        inst = arg.get("instId")
        if ch == "index-tickers":
            syms = self._by_index.get(inst) or []
        else:
            sb = self.by_vsym.get(inst)
            syms = [sb.symbol] if sb is not None else []
        if not syms:
            self.count("ignored_msgs")
            return True
        try:
            if ch == "funding-rate":
                upd = {"rate": float(row["fundingRate"]),
                       "next_ms": int(row["fundingTime"])}
                nxt = row.get("nextFundingTime")
                if nxt:
                    upd["interval_h"] = (int(nxt) - upd["next_ms"]) / 3_600_000
            elif ch == "mark-price":
                upd = {"mark": float(row["markPx"])}
            else:
                upd = {"index": float(row["idxPx"])}
            ts = int(row.get("ts") or 0) * 1_000_000
        except (KeyError, TypeError, ValueError) as e:
            self.frame_error(f"{ch}: {e}", data)
            return True
        for s in syms:
            st = self._state[s]
            st.update(upd)
            if all(k in st for k in ("rate", "next_ms", "mark", "index")):
                ih = st.get("interval_h")
                self.publish_funding(Funding(
                    venue=self.venue, symbol=s, rate=st["rate"],
                    interval_h=ih if ih and ih > 0 else 8.0,
                    next_funding_ts_ns=st["next_ms"] * 1_000_000, mark=st["mark"],
                    index=st["index"], ts_ns=ts, recv_ts_ns=recv_ns))
        return True
