"""The plain detector the pair index is checked against (tests only).

``ReferenceDetector`` evaluates both directions of every pair of books of a
quote's base asset and walks depth afresh every time: no max/min prefilter,
no fee-adjusted-top pruning, no walk reuse. ``tests/test_detector_index.py``
feeds it and the product ``Detector`` the same inputs and requires the same
events byte for byte; the product carries none of this code.
"""

from __future__ import annotations

from arbtui.backend.detector import Detector
from arbtui.backend.detector_index import Leg
from arbtui.model import Opportunity, Quote


class ReferenceDetector(Detector):
    def on_quote(self, q: Quote) -> list[Opportunity]:
        leg = self._apply(q)
        if leg is None:
            return []
        out: list[Opportunity] = []
        self._eval_pairs(leg, self.clock(), out, None)
        return out

    def _eval_pairs(self, a: Leg, now: int, out: list[Opportunity], seen: set | None) -> None:
        """Both directions of every pair between ``a`` and the other venues' books of
        the same base asset (what the index must reproduce exactly)."""
        av = a.venue
        for x in a.base.legs:
            if x.venue == av or x.venue in self.disabled_venues or x.sym in self.disabled_symbols:
                continue
            if seen is not None:
                pk = (a.uid, x.uid) if a.uid < x.uid else (x.uid, a.uid)
                if pk in seen:
                    continue
                seen.add(pk)
            if x.grp is a.grp:
                q, oq, sym = a.q, x.q, a.sym
                # Exact shortcut: with a gross LOSS either way, a threshold >= 0 (fees
                # and the hurdle only make it worse) and nothing open for this pair,
                # neither direction can open or close.
                if (self._thr >= 0 and oq.bid < q.ask and q.bid < oq.ask
                        and (sym, av, x.venue, sym) not in self.open
                        and (sym, x.venue, av, sym) not in self.open):
                    continue
                trig = max(q.recv_ts_ns, oq.recv_ts_ns)
                self._eval(a, x, 1.0, now, out, trig)
                self._eval(x, a, 1.0, now, out, trig)
            else:
                self._eval_cross(a, x, now, out)

    def _eval(self, bl: Leg, sl: Leg, *args) -> None:
        super()._eval(bl, sl, *args)
        d = bl.dirs.get(sl)
        if d is not None:
            d.w = None  # a fresh walk every time: never reuse the last one
