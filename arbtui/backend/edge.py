"""The one net-edge formula. Every number shown or acted on comes from here.

Buy on venue A at its ask, sell on venue B at its bid, ``size`` base units:

    buy_cost  = size * ask * (1 + fee_a)          # what leaves the quote wallet
    proceeds  = size * bid * (1 - fee_b)          # what arrives in the quote wallet
    profit    = proceeds - buy_cost - flat_cost   # in the quote currency
    net_bps   = profit / buy_cost * 10_000        # bps of the buy cost
    gross_bps = (bid - ask) / ask * 10_000        # before fees and costs

Fees are taker fees in bps. Worked examples live in tests/test_edge.py.
"""

from __future__ import annotations


def gross_bps(ask: float, bid: float) -> float:
    return (bid - ask) / ask * 1e4


def net_profit(ask: float, bid: float, size: float, fee_a_bps: float, fee_b_bps: float,
               flat_cost: float = 0.0) -> float:
    return size * bid * (1 - fee_b_bps / 1e4) - size * ask * (1 + fee_a_bps / 1e4) - flat_cost


def net_bps(ask: float, bid: float, fee_a_bps: float, fee_b_bps: float, *,
            size: float = 1.0, flat_cost: float = 0.0) -> float:
    cost = size * ask * (1 + fee_a_bps / 1e4)
    return net_profit(ask, bid, size, fee_a_bps, fee_b_bps, flat_cost) / cost * 1e4
