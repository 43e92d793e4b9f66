"""Spot-perp basis and perp-vs-perp windows: the detector's extension (issue 18).

Three kinds of window (``model.Opportunity.kind``), one rule (``edge.THRESHOLD_RULE``):

- ``spot``: the same spot symbol bought on one venue and sold on another (the
  detector's own pair index, unchanged);
- ``perp``: the same perpetual symbol and contract (``BASE-QUOTE-PERP``, linear, the
  same settlement currency: the venue's instrument table, ``arbtui.venues``) bought on
  one venue and sold on another. Each perp symbol and contract has an index of its own
  (``index_base``), so the detector runs its spot machinery over them unchanged, and a
  spot quote never meets a perp book in the spot loop;
- ``basis``: spot ``BASE-QUOTE`` bought on venue A, ``BASE-QUOTE-PERP`` sold on
  venue B (B may be A's own derivatives venue) when that perp is linear and settled in
  QUOTE (``linear_in_quote``). Only that direction: selling spot
  would need base we do not hold. ``evaluate`` below finds these pairs and hands
  each to the detector's ``_eval`` (``detector_windows``), so sizing, the hurdle,
  staleness, lifecycle and events are the spot ones; ``decorate`` adds the basis, funding and carry
  (``edge.basis_bps``/``edge.carry_apr`` state the formulas).

A spot symbol's group and its perp's group are linked (``detector_index.Group.partner``)
when the second of them appears, so a spot-only run pays one attribute test per quote.
Funding (``model.Funding``, from the perp feeds) is venue state: kept here per perp
book, copied onto the windows that use it, never a reason to open or close one.

Execution model (``executor.py``): a perp sell opens a SHORT position held as a
negative balance of the asset named by the perp symbol itself (``instrument_assets``), fully
collateralized (1x) by the perp venue's settlement-currency wallet; no funding is
booked and nothing is ever liquidated (``docs/architecture.md``, "Basis").
"""

from __future__ import annotations

from typing import Any

from arbtui import symbols as symmod
from arbtui import venues
from arbtui.backend.edge import basis_bps, carry_apr, mid
from arbtui.model import Funding, Opportunity

#: The detector passes itself in (this module sits below it: no import, no cycle).
Detector = Any

PERP_SUFFIX = "-PERP"


def is_perp(symbol: str) -> bool:
    return symbol.endswith(PERP_SUFFIX)


def perp_of(spot: str) -> str:
    return spot + PERP_SUFFIX


def spot_of(perp: str) -> str:
    return perp[: -len(PERP_SUFFIX)]


def partner(symbol: str) -> str:
    """A spot symbol's perp, a perp's spot symbol."""
    return spot_of(symbol) if is_perp(symbol) else perp_of(symbol)


def instrument_assets(symbol: str) -> tuple[str, str]:
    """(what a position is held in, the quote/settlement currency).

    Spot ``BTC-USDT`` -> (BTC, USDT). Perp ``BTC-USDT-PERP`` -> (BTC-USDT-PERP, USDT):
    a perp position is not BTC in a wallet, it is a signed contract position in base
    units, named by its symbol; margin, fees and PnL are in the settlement currency.
    """
    if is_perp(symbol):
        return symbol, symmod.quote_of(spot_of(symbol))
    return symmod.split(symbol)


def contract(venue: str, symbol: str) -> tuple[str, str]:
    """(linear | inverse, settlement currency) of a perp book, from the venue's instrument
    table (``arbtui.venues``); a venue outside the registry (tests) is linear in the quote."""
    quote = symmod.quote_of(spot_of(symbol))
    try:
        inst = venues.get(venue).instrument(symbol)
    except KeyError:
        return "linear", quote
    return inst.kind, inst.settle or quote


def linear_in_quote(venue: str, symbol: str) -> bool:
    """A perp a basis trade may short: linear, settled in its spot leg's quote currency
    (an inverse perp's PnL is in the base asset: a different trade, not modelled)."""
    return contract(venue, symbol) == ("linear", symmod.quote_of(spot_of(symbol)))


def index_base(venue: str, symbol: str) -> str:
    """The detector's pair-index key: a spot symbol's base asset (BTC-USD meets BTC-USDT
    through a conversion); for a perp its own symbol and contract: perps meet only the same
    symbol, contract type and settlement currency (a linear BTC-USD-PERP never meets an
    inverse one, nor BTC-USDT-PERP), and never a spot book in the spot loop. Inverse perps
    meet nothing: their PnL is in the base asset, which execution does not model."""
    if not is_perp(symbol):
        return symmod.base_of(symbol)
    kind, settle = contract(venue, symbol)
    if kind != "linear":
        return f"{symbol} {kind} {venue}"
    return f"{symbol} {kind} {settle}"


def kind_of(buy_perp: bool, sell_perp: bool) -> str:
    if buy_perp:
        return "perp"  # (perp buy + spot sell is never evaluated)
    return "basis" if sell_perp else "spot"


def short_cap(margin: float | None, bid: float, fee_factor: float) -> float | None:
    """Base units a fully collateralized (1x) short may open: the free settlement
    currency over the best bid times (1 + fee). The walk sells at that bid or lower,
    so the true margin of the size is at most this: the cap errs small, never large."""
    if margin is None:
        return None
    if not bid > 0:
        return 0.0
    return margin / (bid * fee_factor)


def link(groups: dict, symbol: str, group) -> None:
    """A new group appeared for ``symbol``: link it with its spot/perp partner's."""
    other = groups.get(partner(symbol))
    if other is not None:
        group.partner = other
        other.partner = group


class Basis:
    """Funding per perp book, and the basis pairs of one detector."""

    def __init__(self) -> None:
        #: (venue, perp symbol) -> the newest Funding
        self.funding: dict[tuple[str, str], Funding] = {}
        #: perp book key -> may a basis trade short it (``linear_in_quote``, cached)
        self._shortable: dict[tuple[str, str], bool] = {}

    # ------------------------------------------------------------------ inputs

    def on_funding(self, det: Detector, f: Funding) -> None:
        """Keep the newest funding of a perp book and copy it onto the open windows
        that use that book (it never opens or closes a window: it is not part of
        the threshold rule, only of what the window is worth if held)."""
        key = (f.venue, f.symbol)
        old = self.funding.get(key)
        if old is not None and (old.ts_ns, old.recv_ts_ns) > (f.ts_ns, f.recv_ts_ns):
            return  # an older message (Kafka redelivery): keep the newer one
        self.funding[key] = f
        for o in det.open.values():
            p = o.opp
            if p.kind != "spot" and f.venue in (p.buy_venue, p.sell_venue):
                self.carry(p, o.buy, o.sell)

    # ------------------------------------------------------------------ pairs

    def evaluate(self, det: Detector, leg, now: int, out: list[Opportunity],
                 seen: set | None) -> None:
        """Every basis direction between ``leg`` and its partner group's books: buy
        the spot book, sell the perp book, when its first unit can clear the
        threshold (the very products ``edge.walk`` compares, kept per book by the
        detector) or a window between them is open."""
        pg = leg.grp.partner
        if not pg.npresent:
            return
        is_open = det.open
        perp = leg.perp
        for x in pg.legs:
            if x.q is None or x.off:  # absent, or its venue or symbol disabled
                continue
            spot, short = (x, leg) if perp else (leg, x)
            can = not (short.eb < spot.ea)  # _eval's first test, as the pair index forms it
            if not can and short not in spot.opens:
                continue
            ok = self._shortable.get(short.key)
            if ok is None:
                ok = self._shortable[short.key] = linear_in_quote(short.venue, short.sym)
            if not ok:
                continue
            if seen is not None:
                pk = (leg.uid, x.uid) if leg.uid < x.uid else (x.uid, leg.uid)
                if pk in seen:
                    continue
                seen.add(pk)
            if can or (spot.sym, spot.venue, short.venue, short.sym) in is_open:
                det._eval(spot, short, 1.0, now, out,
                          max(spot.q.recv_ts_ns, short.q.recv_ts_ns))

    def decorate(self, p: Opportunity, buy, sell) -> None:
        """Basis, funding and carry of a basis or perp window (``edge.py`` formulas),
        from the books of the evaluation ``p`` carries (the legs' current quotes: the
        detector calls this right after evaluating them) and the latest funding."""
        if p.kind == "basis":
            bq, sq = buy.q, sell.q
            if bq is not None and sq is not None:
                p.basis_bps = basis_bps(mid(bq.bid, bq.ask), mid(sq.bid, sq.ask))
        self.carry(p, buy, sell)

    def carry(self, p: Opportunity, buy, sell) -> None:
        """Funding and carry only (a new funding state changes nothing else)."""
        fs = self.funding.get((sell.venue, sell.sym))
        if p.kind == "basis":
            if fs is not None:
                p.funding_rate, p.funding_interval_h = fs.rate, fs.interval_h
                p.next_funding_ts_ns = fs.next_funding_ts_ns
                p.carry_apr = carry_apr(fs.rate, fs.interval_h)
            return
        # perp vs perp: short on the sell venue receives its rate, long on the buy
        # venue pays its own.
        fb = self.funding.get((buy.venue, buy.sym))
        if fs is None and fb is None:
            return
        rs, ih = (fs.rate, fs.interval_h) if fs is not None else (0.0, fb.interval_h)
        rb, ihb = (fb.rate, fb.interval_h) if fb is not None else (0.0, ih)
        p.funding_rate, p.funding_interval_h = rs - rb, ih
        p.next_funding_ts_ns = fs.next_funding_ts_ns if fs is not None else fb.next_funding_ts_ns
        p.carry_apr = carry_apr(rs, ih) - carry_apr(rb, ihb)

    def rows(self) -> list[dict]:
        """Per perp book: its funding as last received (``funding_rows``)."""
        return funding_rows(self.funding.values())


def funding_rows(states) -> list[dict]:
    """``model.Funding`` states as JSON-ready rows, by venue and symbol, with the carry a
    short receives (``edge.carry_apr``): the dashboard's funding panel and status lines."""
    return [{"venue": f.venue, "symbol": f.symbol, "rate": f.rate, "interval_h": f.interval_h,
             "next_funding_ts_ns": f.next_funding_ts_ns, "mark": f.mark, "index": f.index,
             "carry_apr": carry_apr(f.rate, f.interval_h)}
            for f in sorted(states, key=lambda f: (f.venue, f.symbol))]
