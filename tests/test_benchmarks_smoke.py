"""The benchmark harness measures what it claims (correctness only, never speed).

Speed is measured by ``python -m benchmarks`` and recorded in benchmarks/results/
(summarised in BENCHMARKS.md); nothing here asserts a timing.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

# benchmarks/ is a top-level package of the repository, not of the installed arbtui.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import e2e, load
from benchmarks.baseline.consumer import SpreadDetector


def test_market_stream_is_a_valid_book_stream():
    # Every message moves the top of one venue's book and never crosses it, so
    # one message is one quote for every variant.
    m = load.Market(3, 4, seed=1)
    msgs = m.stream(3000)
    assert {mm.venue for mm in msgs} == {0, 1, 2}
    for mm in msgs:
        q = load.quote_of(m, mm)
        assert q.bid < q.ask
        assert mm.updates
    # Deterministic: the same seed gives the same stream.
    again = load.Market(3, 4, seed=1).stream(3000)
    assert [a.updates for a in again] == [b.updates for b in msgs]


def test_coinbase_adapter_accepts_the_synthetic_frames():
    m = load.Market(2, 2, seed=2)
    snaps = {vi: load.coinbase_snapshot_frames(m, vi, 1) for vi in range(2)}
    got = []
    side = e2e.FeedSide(m, got.append, "frames")
    side.sync(snaps)  # raises unless every book went LIVE
    msgs = m.stream(400)
    for mm in msgs:
        s = side.seq[mm.venue]
        side.seq[mm.venue] = s + 1
        side.feeds[mm.venue].feed_frame(load.coinbase_frame(m, mm, s), 1)
    for f in side.feeds:
        assert f.counters.get("frame_errors", 0) == 0, f.counters
        assert f.counters.get("resyncs", 0) == 0, f.counters
    # The adapter's last quote of each book equals the generator's top of book.
    last_msg = {(m.venues[mm.venue], m.symbols[mm.symbol]): mm for mm in msgs}
    last_quote = {(q.venue, q.symbol): q for q in got}
    for key, q in last_quote.items():
        mm = last_msg[key]
        assert (q.bid_px, q.ask_px) == (mm.bids[0][0], mm.asks[0][0])


def test_baseline_detector_scans_every_symbol():
    seen = []
    d = SpreadDetector(lambda tick, found: seen.append(found))
    for ex, sym, px in [("a", "X", 100.0), ("b", "X", 100.1), ("a", "Y", 10.0), ("b", "Y", 10.0)]:
        d.on_message(json.dumps({"exchange": ex, "symbol": sym, "price": px}).encode())
    # 100 -> 100.1 is 10 bps (reported on every later message, the full scan);
    # Y never spreads.
    assert seen == [0, 1, 1, 1]


def test_embedded_e2e_run_counts_every_quote():
    spec = e2e.Spec("embedded", 2, 2, rate=2000.0, window_s=0.4, warmup_s=0.1)
    r = asyncio.run(asyncio.wait_for(e2e.run(spec, 5000), 60))
    assert r.sent == e2e.n_needed(spec, 5000)
    assert r.samples > 0 and r.p50_ms == r.p50_ms  # measured, not nan
    assert r.p50_ms <= r.p99_ms <= r.p999_ms
    # Everything handed over after the warm-up reached the detector (evaluated
    # or superseded by a newer quote of the same venue+symbol).
    assert r.processed_rate > 0
    assert not any(n.startswith("FAILED") for n in r.notes)


def test_floor_queue_latency_is_measured_per_message():
    spec = e2e.Spec("floor-queue", 2, 2, rate=2000.0, window_s=0.3, warmup_s=0.1)
    r = asyncio.run(asyncio.wait_for(e2e.run(spec, 5000), 60))
    # Exactly one sample per message received from the warm-up on, none before it.
    assert r.samples == r.sent_after_warm
    assert 0 < r.sent_after_warm < r.sent


def test_arbtui_bench_dispatches_from_any_directory(tmp_path):
    import subprocess

    # Run from elsewhere: the suite is found in the checkout, and its own argument
    # check answers (exit 2, names the choices), not "not available in this build".
    p = subprocess.run([sys.executable, "-m", "arbtui", "bench", "--only", "nosuch"],
                       check=False, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert "unknown benchmark(s) nosuch" in p.stderr
    assert "parse, detector, embedded, kafka, memory, ui" in p.stderr


# ---------------------------------------------------------------- a missing snappy codec
# The README installs `.[dev]`; before cramjam was a dev dependency, the baseline's snappy
# producer could not be built, its runs measured 0/s and the targets table divided by it.


@pytest.fixture
def no_snappy(monkeypatch):
    """aiokafka as installed without cramjam: its own codec check says no snappy."""
    from aiokafka import codec

    monkeypatch.setattr(codec, "cramjam", None)
    assert not codec.has_snappy()


def test_baseline_unavailable_matches_aiokafka_refusal(no_snappy):
    from benchmarks.baseline import producer as bp

    why = e2e.baseline_unavailable()
    assert why and "snappy" in why and "cramjam" in why
    # The reason is aiokafka's real refusal, not a guess: the tutorial producer
    # cannot be built without the codec.
    async def build():
        bp.make_producer("127.0.0.1:9")  # aiokafka builds producers inside a loop

    with pytest.raises(RuntimeError, match="Compression library for snappy not found"):
        asyncio.run(build())


def test_baseline_available_with_the_dev_install():
    # cramjam is in the dev extra, so the README's install runs the baseline.
    import cramjam  # noqa: F401 - a dev dependency: missing means a broken install, not a skip

    from benchmarks.baseline import producer as bp

    assert e2e.baseline_unavailable() is None

    async def build():
        p = bp.make_producer("127.0.0.1:9")  # constructing does not connect
        await p.stop()

    asyncio.run(build())


def test_baseline_run_without_codec_is_reported_not_measured(no_snappy):
    # Returns at once, before any broker is started: nothing was measured.
    spec = e2e.Spec("baseline", 2, 2, rate=None, window_s=0.5, warmup_s=0.1)
    r = asyncio.run(asyncio.wait_for(e2e.run(spec, 1000), 10))
    assert "cramjam" in r.not_run
    assert r.sent == 0 and r.samples == 0


def test_kafka_plan_without_codec_drops_only_the_baseline(no_snappy):
    from benchmarks.__main__ import Plan, kafka_specs

    specs, not_run = kafka_specs(Plan(quick=True, repeats=None))
    variants = {s.variant for s in specs}
    assert variants == {"floor-kafka", "kafka"}
    assert "cramjam" in not_run["baseline"]


def test_kafka_plan_with_codec_runs_the_baseline():
    import cramjam  # noqa: F401 - a dev dependency: missing means a broken install, not a skip

    from benchmarks.__main__ import Plan, kafka_specs

    specs, not_run = kafka_specs(Plan(quick=True, repeats=None))
    assert not_run == {}
    assert {s.variant for s in specs} == {"floor-kafka", "kafka", "baseline"}


def _kafka_row(variant, nv, ns, rate, processed, p99, notes=(), fmw=None):
    r = e2e.Result(variant, nv, ns, rate, processed_rate=processed, evaluated_rate=processed / 2,
                   p99_ms=p99, notes=list(notes))
    spec = e2e.Spec(variant, nv, ns, rate, fetch_max_wait_ms=fmw)
    return dict(r.as_dict(), spec=vars(spec))


def _arbtui_rows():
    return [_kafka_row("kafka", 5, 50, None, 70_000.0, 50.0),
            _kafka_row("kafka", 5, 50, 1000.0, 999.0, 9.0),
            _kafka_row("floor-kafka", 5, 50, 1000.0, 999.0, 7.0)]


def _target(rows, name):
    hit = [r for r in rows if r.startswith(f"| {name}")]
    assert len(hit) == 1, rows
    return hit[0]


def test_targets_without_a_baseline_say_why_and_judge_the_rest():
    from benchmarks.__main__ import targets

    why = "the baseline producer compresses with snappy ... cramjam"
    md = targets({"kafka": _arbtui_rows(), "not_run": {"baseline": why}})
    row = _target(md, "Kafka sustained ≥ 50× baseline at 5×50")
    assert "70,000/s" in row and "baseline not measured" in row and "cramjam" in row
    assert row.endswith("| n/a |")  # neither met nor missed: there is nothing to compare
    # What does not need the baseline is still judged.
    assert _target(md, "Kafka p99 at 1 k/s ≤ 10 ms (5×50)").endswith("| met |")
    assert "1.29×" in _target(md, "Kafka p99 at 1 k/s ≤ 1.5× bare pipe (5×50)")


def test_targets_never_divide_by_a_baseline_that_measured_nothing():
    from benchmarks.__main__ import targets

    # The failure as reported in issue 15: the baseline's runs failed and left 0/s.
    failed = _kafka_row("baseline", 5, 50, None, 0.0, float("nan"),
                        notes=["FAILED: RuntimeError: Compression library for snappy not found"])
    zero = _kafka_row("baseline", 5, 50, None, 0.0, float("nan"))
    for base in (failed, zero):
        md = targets({"kafka": _arbtui_rows() + [base]})
        row = _target(md, "Kafka sustained ≥ 50× baseline at 5×50")
        assert "baseline not measured" in row and row.endswith("| n/a |")


def test_targets_leave_out_failed_runs():
    from benchmarks.__main__ import targets

    ok = _kafka_row("baseline", 5, 50, None, 1_400.0, 10.0)
    failed = _kafka_row("baseline", 5, 50, None, 0.0, float("nan"), notes=["FAILED: TimeoutError"])
    md = targets({"kafka": _arbtui_rows() + [ok, failed]})
    # 70,000 / 1,400 = 50.0: the failed run's 0/s is not in the median.
    assert _target(md, "Kafka sustained ≥ 50× baseline at 5×50").endswith(
        "= 50.0× (25.0× evaluated) | met |")


def test_kafka_table_lists_a_variant_that_did_not_run():
    from benchmarks.__main__ import _e2e_table

    spec = e2e.Spec("kafka", 5, 50, None)
    ran = e2e.Result("kafka", 5, 50, None, processed_rate=1.0)
    skipped = e2e.Result("baseline", 5, 50, None, not_run="no codec (cramjam)")
    md = _e2e_table([(spec, ran), (e2e.Spec("baseline", 5, 50, None), skipped)])
    assert sum(line.startswith("| kafka |") for line in md) == 1
    assert not any(line.startswith("| baseline |") for line in md)
    assert "_Not run here: `baseline` — no codec (cramjam)._" in md


def test_record_path_is_date_and_commit_named(tmp_path, monkeypatch):
    import benchmarks.__main__ as bm

    monkeypatch.setattr(bm, "RESULTS", tmp_path)
    m = {"date_utc": "2026-11-25 23:50:51", "commit": "a83c8f2"}
    p = bm.record_path(m, quick=False)
    assert p == tmp_path / "2026-11-25-2350-a83c8f2.md"
    p.write_text("x")
    assert bm.record_path(m, quick=False).name == "2026-11-25-2350-a83c8f2-2.md"
    dirty = {"date_utc": "2026-12-06 03:40:00", "commit": "69bf776+dirty(arbtui/)"}
    assert bm.record_path(dirty, quick=True).name == "2026-12-06-0340-69bf776-dirty-quick.md"


def test_kafka_benchmark_report_names_the_baseline_it_could_not_run(no_snappy):
    from benchmarks import broker
    from benchmarks.__main__ import Plan, bench_kafka, targets

    if broker.available():
        pytest.skip(broker.available())
    plan = Plan(quick=True, repeats=None)
    plan.kafka_runs = []  # no measured points: only what the report says about the plan
    out: dict = {}
    md = bench_kafka(plan, out)
    assert out["kafka"] == []
    assert "cramjam" in out["not_run"]["baseline"]
    assert any(line.startswith("_Not run here: `baseline` — ") and "snappy" in line for line in md)
    assert targets(out) == []  # nothing measured, nothing judged, no error
