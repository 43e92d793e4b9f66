"""``arbtui sweep``: a bad grid is refused before any work; a cell's numbers are those
of the single replay it stands for."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from replay_fixtures import REPO, exec_recording, replay_cli

CONF = ('[detector]\nmin_net_bps = 1.0\nmax_notional = 500000.0\n'
        '[execution]\nmin_net_bps = 1.0\njitter_ms = 20.0\none_leg_policy = "unwind"\n'
        '[execution.latency_ms]\nkraken = 150.0\n')


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    return exec_recording(tmp_path_factory)  # recorded once per session, shared


def sweep(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="arbtui-sweep-test-") as home:
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(Path(home) / "config")
        env["XDG_STATE_HOME"] = str(Path(home) / "state")
        return subprocess.run([sys.executable, "-m", "arbtui", "sweep", *args],
                              capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(REPO), check=False)


@pytest.mark.parametrize(("grid", "named"), [
    ("detector.bogus=1,2", "detector.bogus"),
    ("detector.min_net_bps=2,abc", "detector.min_net_bps"),
    ("execution.latency_ms.nyse=5", "nyse"),
    ("detector.max_level_share=0.5,2", "detector.max_level_share"),
    ("execution.one_leg_policy=keep,hold", "execution.one_leg_policy"),
])
def test_a_bad_grid_is_refused_naming_the_key_before_any_replay(grid, named, tmp_path):
    out = tmp_path / "out.json"
    r = sweep("/nonexistent/never-read.jsonl.zst", "--grid", "detector.min_net_bps=1,2",
              "--grid", grid, "--out", str(out))
    assert r.returncode == 2
    assert named in r.stderr and "Traceback" not in r.stderr
    assert "cells" not in r.stderr and not out.exists()


def test_one_cell_equals_the_single_replay_it_stands_for(rec, tmp_path):
    conf = tmp_path / "exec.toml"
    conf.write_text(CONF)
    out = tmp_path / "cells.json"
    r = sweep(str(rec), "--config", str(conf), "--grid", "detector.min_net_bps=1,4",
              "--grid", "execution.latency_ms.okx=5,60", "--workers", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    cells = json.loads(out.read_text())
    assert len(cells) == 4
    pnl = [c["realized_pnl"]["USD"] for c in cells]
    assert pnl == sorted(pnl, reverse=True)  # the table order: best PnL first
    assert "detector.min_net_bps" in r.stdout and "4/4 cells" in r.stderr
    cell = next(c for c in cells if c["detector.min_net_bps"] == 4
                and c["execution.latency_ms.okx"] == 60)
    assert cell["fills"] > 0
    single_conf = tmp_path / "single.toml"
    single_conf.write_text(CONF.replace("min_net_bps = 1.0\nmax_notional",
                                        "min_net_bps = 4\nmax_notional") + "okx = 60\n")
    rep = replay_cli([rec], "--max", "--no-ui", "--execution", "--config", str(single_conf),
                     "--journal", str(tmp_path / "single.sqlite"))
    assert rep.returncode == 0, rep.stderr
    report = json.loads(rep.stdout.splitlines()[-1])
    assert report["type"] == "report"
    assert cell["opportunities"] == report["opportunities"]
    assert cell["opportunity_events"] == report["opportunity_events"]
    assert cell["fills"] == report["executions"]["fills"]
    assert cell["trades"] == report["executions"]["trades"]
    assert cell["by_status"] == report["executions"]["by_status"]
    assert cell["realized_pnl"] == pytest.approx(report["realized_pnl"], rel=1e-12)
    assert cell["fees"] == pytest.approx(report["executions"]["fees"], rel=1e-12)
    assert cell["latency_loss"] == pytest.approx(report["latency_loss"], rel=1e-12)
    # The same grid again, one worker, CSV: the same numbers (deterministic).
    out_csv = tmp_path / "cells.csv"
    r2 = sweep(str(rec), "--config", str(conf), "--grid", "detector.min_net_bps=1,4",
               "--grid", "execution.latency_ms.okx=5,60", "--workers", "1", "--out", str(out_csv))
    assert r2.returncode == 0, r2.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert [float(x["realized_pnl.USD"]) for x in rows] == pnl
    assert r2.stdout == r.stdout
