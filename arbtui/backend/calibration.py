"""Calibration of ``p_catch``: the simulated executor is the ground truth.

For every executed opportunity the journal keeps the predicted ``p_catch`` and
whether it was caught (``CAUGHT_RULE``): ``CatchOutcomes`` follows the event
stream (OPENED opportunities, then their two leg fills) and judges each trade
when both legs are in. ``CatchJournal`` turns a journal batch into rows: one
``catch_outcomes`` row per executed opportunity and, when the detector runs in
the same process, one ``catch_windows`` row per window the model finished
watching (the history later sessions of the same mode learn from). The summary
helpers (``reliability``, ``wilson``, ``brier``) are what ``arbtui report`` and a
sweep show.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from arbtui.backend.catch import CatchModel
from arbtui.backend.catch_history import WindowRecord, encode_path
from arbtui.model import Fill, OppEvent, Opportunity

#: Predicted-probability buckets of the reliability table.
RELIABILITY_EDGES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True, slots=True)
class CatchOutcome:
    """One executed opportunity: what was predicted and what the fills said."""

    opp_id: str
    symbol: str
    buy_venue: str
    sell_venue: str
    p_catch: float
    caught: bool
    net_bps: float  # realized, at the fill VWAPs, after fees and flat cost (nan: no match)
    threshold_bps: float
    why: str
    ts_ns: int


CAUGHT_RULE = (
    "caught = both IOC legs filled their whole requested quantity (status 'filled') and "
    "the net edge realized at the two fill VWAPs, after both fees and flat_cost, is at "
    "least execution.min_net_bps")


class CatchOutcomes:
    """The simulated executor's verdict on each prediction (``CAUGHT_RULE``).

    Fed the event stream in order (OPENED opportunities with a ``p_catch``, then
    the leg fills); yields a ``CatchOutcome`` when both legs of an executed
    opportunity are in. Opportunities never traded are forgotten after
    ``max_pending``."""

    def __init__(self, threshold: Callable[[], float], max_pending: int = 20_000) -> None:
        self.threshold = threshold
        self.max_pending = max_pending
        self._opened: OrderedDict[str, Opportunity] = OrderedDict()
        self._legs: dict[str, Fill] = {}

    def add(self, e: Opportunity | Fill) -> CatchOutcome | None:
        if isinstance(e, Opportunity):
            if e.event is OppEvent.OPENED and e.p_catch is not None:
                self._opened[e.id] = e
                if len(self._opened) > self.max_pending:
                    old, _ = self._opened.popitem(last=False)
                    self._legs.pop(old, None)
            return None
        if e.kind != "leg" or e.opp_id not in self._opened:
            return None
        other = self._legs.pop(e.opp_id, None)
        if other is None:
            self._legs[e.opp_id] = e
            return None
        opp = self._opened.pop(e.opp_id)
        b, s = (e, other) if e.side == "buy" else (other, e)
        return judge(opp, b, s, self.threshold())


def judge(opp: Opportunity, b: Fill, s: Fill, thr: float) -> CatchOutcome:
    """``CAUGHT_RULE`` applied to one executed opportunity's two leg fills."""
    m = min(b.filled, s.filled)
    net = math.nan
    if m > 0 and b.vwap > 0:
        cost = m * b.vwap + b.fee * (m / b.filled)
        proceeds = (m * s.vwap - s.fee * (m / s.filled)) * (opp.rate or 1.0)
        net = (proceeds - cost - opp.flat_cost) / cost * 1e4
    why = ""
    for f in (b, s):
        if f.status != "filled":
            why = f"{f.side} {f.status}"
            break
    if not why and not net >= thr:
        why = f"net {net:.2f} < {thr:g} bps"
    return CatchOutcome(opp.id, opp.symbol, opp.buy_venue, opp.sell_venue,
                        float(opp.p_catch or 0.0), not why, net, thr, why or "caught",
                        max(b.ts_ns, s.ts_ns))


class CatchJournal:
    """The journal writer's part: rows for ``catch_windows`` and ``catch_outcomes``
    from one batch of events (called on the writer thread only)."""

    def __init__(self, mode: str, threshold: Callable[[], float],
                 model: CatchModel | None = None) -> None:
        """``model``: the detector's, when it runs in this process; its finished windows
        become ``catch_windows`` rows (history for later sessions). A journal in a process
        without a detector (Kafka roles) writes the calibration rows only: the windows'
        books are watched where the detector runs."""
        self.mode = mode
        self.model = model
        if model is not None:
            model.keep_closed = True
        self.outcomes = CatchOutcomes(threshold)

    def rows(self, batch: Iterable[Any], session: int) -> tuple[list[tuple], list[tuple]]:
        outs: list[tuple] = []
        m = self.mode
        recs: list[WindowRecord] = []
        if self.model is not None:
            closed = self.model.closed
            while closed:
                recs.append(closed.popleft())  # deque: safe against the engine's thread
        for e in batch:
            if isinstance(e, (Opportunity, Fill)):
                o = self.outcomes.add(e)
                if o is not None:
                    outs.append((session, m, o.ts_ns, o.opp_id, o.symbol, o.buy_venue,
                                 o.sell_venue, o.p_catch, int(o.caught),
                                 None if math.isnan(o.net_bps) else o.net_bps,
                                 o.threshold_bps, o.why))
        wins = [(session, m, r.ts_ns, r.symbol, r.buy_venue, r.sell_venue, r.excess_bps,
                 r.lifetime_ms, encode_path(r.buy_path), encode_path(r.sell_path),
                 r.watched_ms) for r in recs]
        return wins, outs


def reliability(preds: list[tuple[float, bool]]) -> list[dict[str, Any]]:
    """Predicted-probability buckets -> count, mean predicted, observed rate and its
    95 % Wilson interval (the counts' binomial noise)."""
    edges = RELIABILITY_EDGES
    acc: list[list] = [[0, 0.0, 0] for _ in range(len(edges) + 1)]
    for p, c in preds:
        a = acc[bisect.bisect_right(edges, p) if p < 1.0 else len(edges)]
        a[0] += 1
        a[1] += p
        a[2] += int(c)
    out = []
    lo_edges = (0.0, *edges)
    hi_edges = (*edges, 1.0)
    for (n, sp, k), lo, hi in zip(acc, lo_edges, hi_edges, strict=True):
        w_lo, w_hi = wilson(k, n)
        out.append({"bucket": f"{lo:.1f}-{hi:.1f}", "n": n,
                    "predicted": sp / n if n else None, "observed": k / n if n else None,
                    "caught": k, "ci95": [w_lo, w_hi] if n else None,
                    "within_noise": (w_lo <= sp / n <= w_hi) if n else None})
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    ph = k / n
    d = 1 + z * z / n
    c = (ph + z * z / (2 * n)) / d
    h = z * math.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def brier(preds: list[tuple[float, bool]]) -> float | None:
    if not preds:
        return None
    return sum((p - c) ** 2 for p, c in preds) / len(preds)
