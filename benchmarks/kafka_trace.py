"""Where a quote's time goes on the Kafka path, stage by stage (issue 19).

``ARBTUI_BENCH_TRACE=DIR`` makes a ``kafka`` run of ``benchmarks/e2e.py`` write two
files: ``DIR/feed.npz`` (per quote record the feed process sent: send called, send
returned, acknowledged, the newest quote's publish time, quotes in it) and
``DIR/detect.npz`` (per quote record the detect process fetched: the time the
consumer handed it out and its newest publish time; per quote evaluated: done,
its live time, its publish time, whether it was a liveness refresh, when its
batch's ``Detector.on_quotes`` started). Records are
matched across the processes by their newest publish time (one wall clock: both
processes run on this host).

    ARBTUI_BENCH_TRACE=/tmp/t python -m benchmarks --only kafka ...   # or e2e.run(Spec(...))
    python -m benchmarks.kafka_trace /tmp/t

prints percentiles per stage for the last ``--window`` seconds of the run.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def _row(name: str, ms: np.ndarray) -> str:
    if not len(ms):
        return f"| {name} | 0 | | | | |"
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return f"| {name} | {len(ms)} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {ms.max():.2f} |"


def stages(d: str, window_s: float = 3.0) -> list[str]:
    """The stage table (markdown) of one traced run in directory ``d``."""
    feed = np.load(os.path.join(d, "feed.npz"))["rows"]
    det = np.load(os.path.join(d, "detect.npz"))
    recs, ev = det["recs"], det["evals"]
    w = ev[:, 0].max() - int(window_s * 1e9)
    ev = ev[ev[:, 1] >= w]
    feed = feed[feed[:, 3] >= w]
    recs = recs[recs[:, 1] >= w]
    ms = 1e6
    out = ["| stage | n | p50 ms | p90 ms | p99 ms | max ms |", "|---|---|---|---|---|---|"]
    lat = (ev[:, 0] - ev[:, 1]) / ms
    out.append(_row("frame (live time) -> evaluated: all", lat))
    out.append(_row("  quotes whose levels changed", lat[ev[:, 3] == 0]))
    out.append(_row("  liveness refreshes", lat[ev[:, 3] == 1]))
    out.append(_row("frame -> published (adapter, feed role)", (ev[:, 2] - ev[:, 1]) / ms))
    out.append(_row("published -> send called (outbox, sender task)",
                    (feed[:, 0] - feed[:, 3]) / ms))
    out.append(_row("send called -> returned (aiokafka batch)", (feed[:, 1] - feed[:, 0]) / ms))
    acked = feed[feed[:, 2] > 0]
    out.append(_row("send returned -> acknowledged (broker)", (acked[:, 2] - acked[:, 1]) / ms))
    sent = {int(r[3]): r for r in feed}
    ack_fetch, send_fetch = [], []
    for t, pub, _ in recs:
        r = sent.get(int(pub))
        if r is not None:
            send_fetch.append((t - r[1]) / ms)
            if r[2]:
                ack_fetch.append((t - r[2]) / ms)
    out.append(_row("send returned -> handed out by the consumer", np.asarray(send_fetch)))
    out.append(_row("acknowledged -> handed out by the consumer", np.asarray(ack_fetch)))
    disp = {int(pub): t for t, pub, _ in recs}
    hand = np.asarray([(e[0] - disp[int(e[2])]) / ms for e in ev if int(e[2]) in disp])
    out.append(_row("handed out -> evaluated (inbox, detector loop)", hand))
    if ev.shape[1] > 4:
        for r, what in ((0, "changed"), (1, "refreshes")):
            e = ev[ev[:, 3] == r]
            out.append(_row(f"  {what}: published -> batch evaluation starts",
                            (e[:, 4] - e[:, 2]) / ms))
            out.append(_row(f"  {what}: their batch's Detector.on_quotes", (e[:, 0] - e[:, 4]) / ms))
    out.append("")
    out.append(f"{len(feed)} records sent with {int(feed[:, 4].sum())} quotes; "
               f"{len(recs)} records handed out; {len(ev)} quotes evaluated")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--window", type=float, default=3.0, help="seconds at the end of the run")
    a = ap.parse_args()
    print("\n".join(stages(a.dir, a.window)))


if __name__ == "__main__":
    main()
