"""Conversion rates between quote currencies, as the detector sees them.

Two books of different quote currencies are compared only when the currencies
share a declared quote group AND a conversion links them (``[detector.conversions]``:
a live book's mid, or a fixed rate); a missing or stale rate blocks that comparison
with a reason (``Detector.blocked``), never an implicit 1. A rate book is aged by
LIVENESS (``model.AGES_RULE``), like every leg.

``Rates`` is a part of ``detector.Detector`` (a base class); it reads the detector's
``cfg``, ``quotes``, ``blocked`` and ``clock``.
"""

from __future__ import annotations

import math
from typing import Any

from arbtui import symbols as symmod
from arbtui.model import Quote, live_ns


class Rates:
    """Conversions of a ``detector.Detector``: rates, blocked comparisons, their status."""

    cfg: Any
    quotes: dict[str, dict[str, Quote]]
    blocked: dict[tuple[str, str], str]
    clock: Any

    def blocked_comparisons(self) -> list[dict[str, str]]:
        return [{"a": a, "b": b, "reason": r} for (a, b), r in sorted(self.blocked.items())]

    def rates_status(self) -> dict[str, dict]:
        """Each configured conversion as this detector sees it now: its rate, or why none
        (on Kafka every detector process must have every rate, whatever it owns)."""
        now = self.clock()
        out = {}
        for ccy in self.cfg.conversions:
            target, r, why = self._to_target(ccy, now)
            out[ccy] = {"to": target, "rate": r, "reason": why}
        return out

    def _to_target(self, ccy: str, now: int) -> tuple[str, float | None, str]:
        """(target currency, rate ccy->target or None, reason when None)."""
        conv = self.cfg.conversions.get(ccy)
        if conv is None:
            return "", None, f"no conversion configured for {ccy}"
        if not conv.book:
            return conv.to, conv.rate, ""
        target = symmod.quote_of(conv.book)
        q = self.quotes.get(conv.book, {}).get(conv.venue)
        if q is None:
            return target, None, f"{ccy}->{target} rate: no LIVE {conv.book} book on {conv.venue}"
        # Aged by liveness: a USDT-USD book's top is quiet for minutes while its
        # feed is perfectly live; only a silent or invalid book blocks the rate.
        age_ms = (now - live_ns(q)) / 1e6
        if age_ms > conv.max_age_ms:
            return target, None, (f"{ccy}->{target} rate: {conv.book} on {conv.venue} not "
                                  f"live for {age_ms:.0f} ms (max {conv.max_age_ms:.0f})")
        if not (0 < q.bid < math.inf and 0 < q.ask < math.inf):
            # Also NaN/inf (a quote decoded from a foreign producer): an infinite
            # rate would become 0 the other way round and divide by zero.
            return target, None, f"{ccy}->{target} rate: {conv.book} on {conv.venue} has no two-sided book"
        return target, (q.bid + q.ask) / 2, ""

    def rate(self, frm: str, to: str, now: int | None = None) -> tuple[float | None, str]:
        """How many ``to`` one ``frm`` is worth, or (None, reason). Never an implicit 1."""
        if frm == to:
            return 1.0, ""
        now = self.clock() if now is None else now
        tf, rf, why_f = self._to_target(frm, now)
        tt, rt, why_t = self._to_target(to, now)
        if tf == to:
            return (rf, "") if rf is not None else (None, why_f)
        if tt == frm:
            return (1.0 / rt, "") if rt is not None else (None, why_t)
        if tf and tf == tt:
            if rf is None or rt is None:
                return None, why_f if rf is None else why_t
            return rf / rt, ""
        return None, f"no conversion path {frm}->{to} (configure [detector.conversions.{frm}])"

    def _pair_rate(self, sym: str, osym: str, now: int) -> float | None:
        """Rate converting ``osym``'s quote currency into ``sym``'s, or None (and why, in blocked)."""
        ccy, occy = symmod.quote_of(sym), symmod.quote_of(osym)
        groups = self.cfg.quote_groups
        g = symmod.group_of(ccy, groups)
        if g is None or g != symmod.group_of(occy, groups):
            return None  # not declared comparable: not an opportunity, not "blocked"
        r, why = self.rate(occy, ccy, now)
        key = pair_key(sym, osym)
        if r is None:
            self.blocked[key] = why
            return None
        self.blocked.pop(key, None)
        return r


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)
