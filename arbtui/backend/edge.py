"""The one net-edge formula. Every number shown or acted on comes from here.

Buy on venue A at its ask, sell on venue B at its bid, ``size`` base units:

    buy_cost  = size * ask * (1 + fee_a)          # what leaves the quote wallet
    proceeds  = size * bid * (1 - fee_b)          # what arrives in the quote wallet
    profit    = proceeds - buy_cost - flat_cost   # in the quote currency
    net_bps   = profit / buy_cost * 10_000        # bps of the buy cost
    gross_bps = (bid - ask) / ask * 10_000        # before fees and costs

Fees are taker fees in bps, charged in the quote currency on both legs. When
the two legs quote in different currencies, ``bid`` is the sell venue's price
already converted into the buy venue's currency (``rate`` below), so profit is
always in the BUY leg's quote currency.

The threshold rule (``detector.min_net_bps`` to report, ``execution.min_net_bps``
to trade; README and config.toml say the same):

    A NET threshold is a per-unit hurdle. The size of an opportunity is the
    depth whose marginal net edge (after both taker fees and the conversion
    rate) is at least the threshold, within every cap (max_notional, wallet
    balances, max_level_share). An opportunity opens when that size is
    positive, its notional is at least min_notional, and its net edge after
    flat_cost is still at least the threshold. Simulated execution sizes the
    same way with execution.min_net_bps.

A unit is taken when ``bid * rate * (1 - fee_b) >= ask * ((1 + fee_a) * (1 +
threshold / 10_000))``: its marginal net edge, ``(bid * rate * (1 - fee_b)) /
(ask * (1 + fee_a)) - 1`` in bps, is at least the threshold. ``walk`` applies
that test chunk by chunk; the detector's pair index and its top-of-book check
apply the very same products (``hurdle``), so no shortcut can disagree with it.

Worked example (the case that made this the rule): asks (100, 1), (100.2, 50);
bids (100.5, 1), (100.41, 50); fees 10 + 10 bps; threshold 2 bps.

    top unit:  100.5 * 0.999 = 100.3995 vs 100 * 1.001 = 100.1
               marginal 0.2995 -> 0.2995 / 100.1 = 29.92 bps >= 2: taken (1 unit)
    next unit: 100.41 * 0.999 = 100.30959 vs 100.2 * 1.001 = 100.3002
               marginal 0.00939 -> 0.94 bps < 2: not taken; it would still
               earn, so ``limited_by = "threshold"``
    size 1, notional 100, profit 0.2995, net 29.92 bps >= 2: reported.

Taking every unit that nets at least 0 instead would buy 51 units at an
average 1.5 bps and report nothing at 2 bps: a thin, rich top in front of
deep, barely profitable depth is the common real case, and the hurdle keeps
it. More worked examples live in tests/test_edge.py.

The basis formula (issue 18; ``basis`` kind). Buy SPOT on venue A at its ask
(symbol ``BASE-QUOTE``) and sell the PERPETUAL on venue B at its bid (symbol
``BASE-QUOTE-PERP``; B may be A's own derivatives venue): the two legs are the
spot formula above with the perp's bid as ``bid`` and B's taker fee as
``fee_b``, walked and sized by the SAME per-unit hurdle (``walk``, the
threshold rule below). Perp sizes are in base units, so a unit bought is a
unit shorted. On top of the spot numbers a basis window carries:

    basis_bps  = (perp_mid - spot_mid) / spot_mid * 10_000   # perp over spot
    carry_apr  = funding_rate * (24 / interval_h) * 365      # fraction per year

``perp_mid``/``spot_mid`` are the two books' best bid/ask midpoints (the basis
as quoted, independent of which side we take; the executable one is
``top_gross_bps``). ``funding_rate`` is the perp's current funding rate per
interval as a fraction, ``interval_h`` the hours between fundings. Sign: longs
pay shorts when the rate is positive, so the short perp of this trade RECEIVES
``funding_rate * notional`` each interval: a positive ``carry_apr`` is income.
Funding is shown, not booked: the edge, size and profit above are the two
taker legs only (funding compounds only while the position is held).

Perp vs perp (``perp`` kind): the spot formula, unchanged, applied to two
venues' books of the same perp symbol (same contract type and settlement
currency). Its carry is what the pair earns per year: short on B receives B's
rate, long on A pays A's, ``carry_apr = apr(B) - apr(A)``, and ``funding_rate``
is the net per interval ``rate_B - rate_A`` (same-interval venues; with
different intervals the APR is still exact, the per-interval net is B's
interval).
"""

from __future__ import annotations

import math

import msgspec

#: The rule as the README, config.toml and the help screen state it (tests hold
#: them to these words).
THRESHOLD_RULE = (
    'A NET threshold is a per-unit hurdle. The size of an opportunity is the depth '
    'whose marginal net edge (after both taker fees and the conversion rate) is at '
    'least the threshold, within every cap (max_notional, wallet balances, '
    'max_level_share). An opportunity opens when that size is positive, its notional '
    'is at least min_notional, and its net edge after flat_cost is still at least the'
    ' threshold. Simulated execution sizes the same way with execution.min_net_bps.'
)


def gross_bps(ask: float, bid: float) -> float:
    return (bid - ask) / ask * 1e4


def net_profit(ask: float, bid: float, size: float, fee_a_bps: float, fee_b_bps: float,
               flat_cost: float = 0.0) -> float:
    return size * bid * (1 - fee_b_bps / 1e4) - size * ask * (1 + fee_a_bps / 1e4) - flat_cost


def net_bps(ask: float, bid: float, fee_a_bps: float, fee_b_bps: float, *,
            size: float = 1.0, flat_cost: float = 0.0) -> float:
    cost = size * ask * (1 + fee_a_bps / 1e4)
    return net_profit(ask, bid, size, fee_a_bps, fee_b_bps, flat_cost) / cost * 1e4


def marginal_profit(ask: float, bid: float, fee_a_bps: float, fee_b_bps: float) -> float:
    """Profit of one more base unit bought at ``ask`` and sold at ``bid`` (no flat cost).

    ``net_profit(ask, bid, 1.0, fee_a_bps, fee_b_bps)`` written out (size 1 and
    flat cost 0 change no bit), one call cheaper: the detector asks it per pair.
    """
    return bid * (1 - fee_b_bps / 1e4) - ask * (1 + fee_a_bps / 1e4)


def hurdle(min_net_bps: float) -> float:
    """The factor a unit's fee-adjusted ask is multiplied by before it is compared
    with its fee-adjusted, converted bid: ``1 + threshold / 10_000``.

    A unit is taken iff ``bid * rate * (1 - fee_b) >= ask * ((1 + fee_a) * hurdle)``
    (the fee factor times the hurdle first, exactly so everywhere: the detector keeps
    that product per book).
    """
    return 1 + min_net_bps / 1e4


def marginal_bps(ask: float, bid: float, fee_a_bps: float, fee_b_bps: float) -> float:
    """Net edge of one more unit, in bps of its cost (``top_net_bps`` at the best
    ask and bid). ``bid`` already converted into the buy leg's currency."""
    return marginal_profit(ask, bid, fee_a_bps, fee_b_bps) / (ask * (1 + fee_a_bps / 1e4)) * 1e4


class Walk(msgspec.Struct, gc=False):
    """The depth-aware size and what it earns. Prices in each venue's own currency.

    (A msgspec Struct rather than a dataclass: built in C, the detector makes one per
    depth walk; only floats and a string, so no reference cycle to track.)"""

    size: float = 0.0  # base units
    buy_vwap: float = 0.0  # buy venue currency
    sell_vwap: float = 0.0  # sell venue currency
    buy_worst: float = 0.0  # highest ask level touched: the buy IOC limit
    sell_worst: float = 0.0  # lowest bid level touched: the sell IOC limit
    notional: float = 0.0  # size * buy_vwap, before fees, buy currency
    profit: float = 0.0  # buy currency, net of fees and flat cost
    gross_bps: float = 0.0  # at the VWAPs (sell converted)
    net_bps: float = 0.0  # at the VWAPs, net of fees and flat cost
    #: What ended the size: threshold (the next unit still earned, but less than
    #: the threshold) | edge (the next unit would not earn) | depth | max_notional
    #: | quote_balance | base_balance
    limited_by: str = ""


#: Float dust below which a remaining level or cap counts as used up.
_EPS = 1e-12


def walk(asks: list[tuple[float, float]], bids: list[tuple[float, float]],
         fee_a_bps: float, fee_b_bps: float, *, min_net_bps: float = 0.0,
         flat_cost: float = 0.0, rate: float = 1.0, max_notional: float = math.inf,
         max_quote: float = math.inf, max_base: float = math.inf,
         level_share: float = 1.0) -> Walk:
    """Walk the buy venue's asks and the sell venue's bids together.

    Takes every chunk whose marginal unit clears the threshold (sell price
    converted by ``rate``, times (1 - fee_b), at least ask times (1 + fee_a)
    times ``hurdle(min_net_bps)``) and stops at the first that does not: the
    per-unit hurdle of the module docstring. Caps: ``max_notional`` on the buy
    notional before fees, ``max_quote`` on the buy cost including the fee (buy
    venue quote balance), ``max_base`` on the size (sell venue base balance),
    and ``level_share`` of each visible level. ``flat_cost`` lowers the profit
    and net edge, never the size: the caller checks the result against the
    threshold again (the "net edge after flat_cost" part of the rule).
    A NaN price or fee stops the walk ("edge"): no comparison with NaN holds.
    """
    fa = 1 + fee_a_bps / 1e4
    fb = 1 - fee_b_bps / 1e4
    fah = fa * (1 + min_net_bps / 1e4)  # (1 + fee_a) * hurdle(min_net_bps), inlined
    eps, inf = _EPS, math.inf
    na, nb = len(asks), len(bids)
    size = cost_px = proc_px = 0.0
    buy_worst = sell_worst = 0.0
    limited = "depth"
    if na and nb:
        # Hot loop (the detector walks on most quotes of an open window): each
        # level's price x fee factor is computed once, when the walk reaches the
        # level, and the wallet caps are skipped while they cannot bind: with
        # both infinite, a positive finite ask x (1 + fee_a) and a finite
        # remaining ask size, max_base - size and the quote cap are +inf, never
        # <= the chunk. Any other case computes all three caps, in order.
        no_wallet = max_base == inf and max_quote == inf
        i = j = 0
        pa, ra = asks[0]
        ra *= level_share
        pafa = pa * fa
        hpa = pa * fah
        fast = no_wallet and pafa > 0.0 and pafa < inf and ra < inf
        pb, rb = bids[0]
        rb *= level_share
        pbf = pb * rate * fb
        while True:
            if not pbf >= hpa:
                limited = "threshold" if pbf > pafa else "edge"
                break
            q = rb if rb < ra else ra  # noqa: FURB136 -- min(ra, rb) without the call
            if fast:
                c = (max_notional - cost_px) / pa
                if c <= q:
                    # The notional cap ends the walk with this chunk.
                    if c > eps:
                        size += c
                        cost_px += pa * c
                        proc_px += pb * c
                        buy_worst, sell_worst = pa, pb
                    limited = "max_notional"
                    break
            else:
                cap_hit = ""
                c = max_base - size
                if c <= q:
                    q, cap_hit = c, "base_balance"
                c = (max_notional - cost_px) / pa
                if c <= q:
                    q, cap_hit = c, "max_notional"
                c = (max_quote - cost_px * fa) / pafa
                if c <= q:
                    q, cap_hit = c, "quote_balance"
                if cap_hit:
                    if q > eps:
                        size += q
                        cost_px += pa * q
                        proc_px += pb * q
                        buy_worst, sell_worst = pa, pb
                    limited = cap_hit
                    break
            if q > eps:
                size += q
                cost_px += pa * q
                proc_px += pb * q
                buy_worst, sell_worst = pa, pb
                ra -= q
                rb -= q
            # A side out of levels ends the walk at once (nothing after it could
            # change the result).
            if ra <= eps:
                i += 1
                if i == na:
                    break
                pa, ra = asks[i]
                ra *= level_share
                pafa = pa * fa
                hpa = pa * fah
                fast = no_wallet and pafa > 0.0 and pafa < inf and ra < inf
            if rb <= eps:
                j += 1
                if j == nb:
                    break
                pb, rb = bids[j]
                rb *= level_share
                pbf = pb * rate * fb
    if size <= _EPS:
        return Walk(limited_by=limited)
    buy_vwap = cost_px / size
    sell_vwap = proc_px / size
    bid_conv = sell_vwap * rate
    # net_profit(buy_vwap, bid_conv, size, fee_a_bps, fee_b_bps, flat_cost), net_bps(...)
    # and gross_bps(buy_vwap, bid_conv) written out: the same operations on the same
    # values (fa and fb are those functions' fee factors), without three calls per walk
    # and without computing the profit twice.
    profit = size * bid_conv * fb - size * buy_vwap * fa - flat_cost
    nbps = profit / (size * buy_vwap * fa) * 1e4
    # Positional, in field order: size, buy_vwap, sell_vwap, buy_worst, sell_worst,
    # notional, profit, gross_bps, net_bps, limited_by (keywords cost a third more).
    return Walk(size, buy_vwap, sell_vwap, buy_worst, sell_worst, cost_px, profit,
                (bid_conv - buy_vwap) / buy_vwap * 1e4, nbps, limited)


HOURS_PER_YEAR = 24 * 365


def mid(bid: float, ask: float) -> float:
    return (bid + ask) / 2


def basis_bps(spot_mid: float, perp_mid: float) -> float:
    """Perp over spot, in bps of the spot price (module docstring)."""
    return (perp_mid - spot_mid) / spot_mid * 1e4


def carry_apr(funding_rate: float, interval_h: float) -> float:
    """Annualized funding a SHORT perp receives (a long pays it): the rate per
    interval times the intervals in a year; 0 while the interval is unknown."""
    if not interval_h > 0:
        return 0.0
    return funding_rate * (HOURS_PER_YEAR / interval_h)
