"""The catch model's deferred work (``CatchModel.idle``, run by the detect role between
batches) changes no answer: the same p_catch / ev / ev_bps on every event, the same
journal rows (``closed``) and the same counts, bit for bit, as the model that does all
of it on the quote path."""

from __future__ import annotations

import numpy as np
import pytest

from arbtui.backend import catch
from arbtui.backend.detector import Detector
from arbtui.config import ExecutionConfig
from arbtui.model import OppEvent


class _Counting(catch.CatchModel):
    """Counts the UPDATED estimates made while windows retired by ``idle`` wait for
    ``_retire`` (the case a naive deferral would get wrong)."""

    staged_reads = 0

    def event(self, p, ev, now_ns):
        if ev is OppEvent.UPDATED and any(r is not None for _, r, _ in self._staged):
            self.staged_reads += 1
        super().event(p, ev, now_ns)


def _run(quotes, venues, idle: str, jitter: float):
    from benchmarks.e2e import bench_config

    cfg = bench_config(venues)
    clock = [0]
    det = Detector(cfg.detector, {v: 1.0 for v in venues}, clock=lambda c=clock: c[0])
    ex = ExecutionConfig(jitter_ms=jitter, latency_ms={venues[0]: 7.0, venues[1]: 33.0})
    det.catch = model = _Counting(ex)
    model.keep_closed = True
    evs = []
    for i, q in enumerate(quotes):
        clock[0] = q.recv_ts_ns
        evs += [(e.id, e.event, e.p_catch, e.ev, e.ev_bps) for e in det.on_quote(q)]
        if idle == "drain":
            while model.idle(clock[0]):
                pass
        elif idle == "some" and i % 3 == 0:
            model.idle(clock[0])  # one unit now and then: work is left for the quote path
    st = model.stats
    tables = {("all",): st.all, **st.pairs, **st.cells}
    counts = {k: (t.num.copy(), t.den.copy(), t.alive.copy(), t.closed, t.n)
              for k, t in tables.items()}
    return evs, list(model.closed), counts, model


@pytest.mark.parametrize(("gap_us", "jitter"), [(100, 0.0), (900, 15.0)])
def test_idle_work_gives_the_same_answers_and_counts(gap_us, jitter):
    from benchmarks import load

    m = load.Market(4, 6, seed=11)
    quotes = [load.quote_of(m, mm) for mm in m.stream(5000)]
    for i, q in enumerate(quotes):
        q.recv_ts_ns = 10**15 + i * gap_us * 1000
    ref = _run(quotes, m.venues, "none", jitter)
    assert len(ref[1]) > 100 and len({e[2] for e in ref[0]}) > 5  # windows; answers vary
    for mode in ("drain", "some"):
        got = _run(quotes, m.venues, mode, jitter)
        assert got[0] == ref[0]  # every event's p_catch, ev, ev_bps
        assert got[1] == ref[1]  # the journal's windows, in the same order
        assert got[2].keys() == ref[2].keys()
        for k, (num, den, alive, closed, n) in ref[2].items():
            g = got[2][k]
            assert np.array_equal(g[0], num) and np.array_equal(g[1], den), k
            assert np.array_equal(g[2], alive) and (g[3], g[4]) == (closed, n), k
        if mode == "drain":
            # idle did retire windows, and UPDATED estimates happened while some
            # waited in _staged (their counts must not be read yet)
            assert got[3].staged_reads > 0


def test_flag_array_is_grid_flags():
    from arbtui.backend.catch_history import L_GRID_MS, _flag_array, grid_flags

    k = len(L_GRID_MS)
    paths = [((0.0, True),), ((0.0, True), (7.5, False)), ((0.0, False), (5.0, True)),
             ((0.0, True), (3.0, False), (3.0, True), (250.0, False), (2000.0, True)),
             ((0.0, True), (40.0, False), (20.0, True))]  # out of order: the reference loop
    for p in paths:
        for kk in (1, 20, k):
            assert list(_flag_array(p, kk)) == grid_flags(p, kk), (p, kk)
