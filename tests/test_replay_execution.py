"""Replay with execution on is the live engine on recorded time: the same files and
config give the same opportunities AND fills, whatever the pace."""

from __future__ import annotations

import pytest
from replay_fixtures import exec_recording as shared_exec_recording
from replay_fixtures import execution_cfg, replay_inprocess


@pytest.fixture(scope="module")
def exec_recording(tmp_path_factory):
    return shared_exec_recording(tmp_path_factory)


def _split(events):
    fills = [e for e in events if "side" in e]
    opps = [e for e in events if "side" not in e]
    return opps, fills


async def test_fills_are_identical_at_max_twice_and_paced(exec_recording):
    a = await replay_inprocess([exec_recording], cfg=execution_cfg())
    b = await replay_inprocess([exec_recording], cfg=execution_cfg())
    paced = await replay_inprocess([exec_recording], cfg=execution_cfg(), speed=5.0)
    opps, fills = _split(a.events)
    assert len(opps) > 10 and len(fills) > 10
    assert a.events == b.events
    assert a.events == paced.events
    # The run covers the cases that depend on timing and wallets, so equality above
    # means something for each of them.
    statuses = {(f["status"], f["kind"]) for f in fills}
    assert ("partial", "leg") in statuses or ("partial", "unwind") in statuses, statuses
    assert ("rejected", "leg") in statuses, statuses
    reasons = " | ".join(f["reason"] for f in fills)
    assert "one-legged" in reasons
    counters = a.engine.executor.counters
    # Wallets bound the sizes: the detector sizes from the executor's wallet states
    # (wallets topic), so a size limited by a balance is as good a witness as the
    # executor having to skip or exhaust one itself.
    limited = {o.get("limited_by") for o in opps}
    assert (counters["skipped_size"] > 0 or "balance exhausted" in reasons
            or limited & {"base_balance", "quote_balance"}), (counters, reasons, limited)
    assert a.engine.executor.snapshot() == b.engine.executor.snapshot() == \
        paced.engine.executor.snapshot()
    # Fill times are on recorded time: after the order was sent, by at least the latency.
    for f in fills:
        if f["kind"] == "leg":
            assert f["ts_ns"] - f["sent_ts_ns"] >= 5_000_000


async def test_a_detector_error_is_counted_by_its_role_not_as_a_bad_frame(exec_recording):
    from arbtui.backend.replay import ReplayEngine

    eng = ReplayEngine(execution_cfg(), [str(exec_recording)], speed=0)
    calls = {"n": 0}
    real = eng.detector.on_quotes

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("detector bug")
        return real(batch)

    eng.detector.on_quotes = flaky
    await eng.start()
    try:
        assert await eng.wait_finished(60)
    finally:
        await eng.stop()
    assert eng.failures.get("detector") == 1
    for f in eng.conn_feeds:
        c = f.status().counters
        assert not c.get("frame_errors") and not c.get("task_errors"), (f.venue, c)


def _lines(stdout: str, *types: str) -> list[str]:
    import json

    return [ln for ln in stdout.splitlines() if json.loads(ln)["type"] in types]


def test_cli_execution_lines_are_byte_identical_and_end_with_the_report(exec_recording, tmp_path):
    import json

    from replay_fixtures import replay_cli

    conf = tmp_path / "exec.toml"
    conf.write_text('[detector]\nmin_net_bps = 1.0\nmax_notional = 500000.0\n'
                    '[execution]\nmin_net_bps = 1.0\njitter_ms = 20.0\none_leg_policy = "unwind"\n'
                    '[execution.latency_ms]\nkraken = 150.0\n')
    journal = tmp_path / "replay.sqlite"
    fast = replay_cli([exec_recording], "--max", "--no-ui", "--execution", "--config", str(conf),
                      "--journal", str(journal))
    paced = replay_cli([exec_recording], "--speed", "5", "--no-ui", "--execution",
                       "--config", str(conf))
    assert fast.returncode == 0, fast.stderr
    assert paced.returncode == 0, paced.stderr
    a = _lines(fast.stdout, "opportunity", "fill")
    assert a == _lines(paced.stdout, "opportunity", "fill")
    fills = [json.loads(x) for x in _lines(fast.stdout, "fill")]
    assert fills and any(f["status"] != "filled" for f in fills)
    last = json.loads(fast.stdout.splitlines()[-1])
    assert last["type"] == "report" and last["journal"] == str(journal)
    assert last["executions"]["fills"] == len(fills)
    pnl = sum(f["pnl"] for f in fills if f["pnl_ccy"] == "USD")
    assert abs(last["realized_pnl"]["USD"] - pnl) < 1e-6
    assert abs(sum(p["USD"] for p in last["realized_pnl_by_venue_pair"].values()) - pnl) < 1e-6
    assert last["latency_loss"]["USD"] == pytest.approx(
        last["detected_profit_traded"]["USD"] - last["realized_pnl"]["USD"])
    assert last["executions"]["fees"]["USD"] > 0


def test_replay_refuses_to_write_the_live_journal(exec_recording, tmp_path):
    from replay_fixtures import replay_cli

    conf = tmp_path / "live.toml"
    live = tmp_path / "live.sqlite"
    conf.write_text(f'[journal]\npath = "{live}"\n')
    r = replay_cli([exec_recording], "--max", "--no-ui", "--config", str(conf),
                   "--journal", str(live))
    assert r.returncode == 2 and "live journal" in r.stderr
    assert not live.exists()
