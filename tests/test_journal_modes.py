"""Demo, live and replay journals are apart, and every session says its mode (issue 15).

A demo with execution on used to write the live ``journal.sqlite``, and ``arbtui report``
then showed its simulated profit as if it were real. Now a demo writes
``demo-journal.sqlite``, a replay its own file, every session row records its mode, an
older journal is migrated in place (its sessions become ``unknown``, never ``live``), and
the report shows live sessions unless told otherwise.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from arbtui import config as configmod
from arbtui.backend.engine import Engine
from arbtui.backend.journal import (
    Journal,
    connect,
    default_path,
    resolve_path,
    session_modes,
)
from arbtui.commands.report import build, render
from arbtui.model import Fill

T0 = 1_700_000_000 * 10**9


def fill(i: int, pnl: float) -> Fill:
    return Fill(opp_id=f"o{i}", venue="kraken", symbol="BTC-USD", side="sell", requested=1.0,
                filled=1.0, vwap=100.0, fee=0.0, ts_ns=T0 + i, status="filled", pnl=pnl,
                pnl_ccy="USD", fee_ccy="USD")


def write(path, mode: str, pnl: float, i: int) -> int:
    j = Journal(path, flush_ms=5, mode=mode)
    j.append(fill(i, pnl))
    j.close()
    return j.session


V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE opportunities (
    seq INTEGER PRIMARY KEY, session INTEGER, ts_ns INTEGER, event TEXT, opp_id TEXT,
    symbol TEXT, sell_symbol TEXT, buy_venue TEXT, sell_venue TEXT, gross_bps REAL,
    net_bps REAL, size REAL, buy_vwap REAL, sell_vwap REAL, profit REAL, quote_ccy TEXT,
    lifetime_ms REAL, peak_net_bps REAL, peak_profit REAL, suspect INTEGER, reason TEXT,
    body BLOB);
CREATE TABLE fills (
    seq INTEGER PRIMARY KEY, session INTEGER, ts_ns INTEGER, opp_id TEXT, venue TEXT,
    symbol TEXT, side TEXT, kind TEXT, requested REAL, filled REAL, vwap REAL, fee REAL,
    fee_ccy TEXT, status TEXT, reason TEXT, pnl REAL, pnl_ccy TEXT, body BLOB);
INSERT INTO meta VALUES ('schema', '1');
INSERT INTO fills (session, ts_ns, opp_id, venue, symbol, side, kind, requested, filled, vwap,
                   fee, fee_ccy, status, reason, pnl, pnl_ccy, body)
    VALUES (111, 5, 'old', 'kraken', 'BTC-USD', 'sell', 'leg', 1, 1, 100, 0, 'USD', 'filled',
            '', 1266.159, 'USD', x'7b7d');
"""


def test_default_files_per_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_path() == tmp_path / "arbtui" / "journal.sqlite"
    assert default_path("live") == tmp_path / "arbtui" / "journal.sqlite"
    assert default_path("demo") == tmp_path / "arbtui" / "demo-journal.sqlite"
    assert resolve_path("", "demo") == default_path("demo")
    # A configured path is shared by every mode; the sessions say which was which.
    assert resolve_path(str(tmp_path / "x.sqlite"), "demo") == tmp_path / "x.sqlite"


def test_every_session_row_records_its_mode(tmp_path):
    path = tmp_path / "j.sqlite"
    s_live = write(path, "live", 1.0, 1)
    s_demo = write(path, "demo", 50.0, 2)
    con = sqlite3.connect(path)
    assert session_modes(con) == {s_live: "live", s_demo: "demo"}
    (pid,) = con.execute("SELECT pid FROM sessions WHERE session = ?", (s_demo,)).fetchone()
    assert pid == os.getpid()


def test_an_old_journal_is_migrated_and_its_sessions_are_unknown_not_live(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.close()
    # Read-only (the report never writes): the old file still reads, sessions unknown.
    ro = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert session_modes(ro) == {111: "unknown"}
    ro.close()
    assert build(path, mode="live")["realized_pnl"] == {}
    assert build(path, mode="all")["realized_pnl"] == {"USD": pytest.approx(1266.159)}
    # Opened for writing: migrated in place, once.
    con = connect(path)
    assert con.execute("SELECT session, mode FROM sessions").fetchall() == [(111, "unknown")]
    assert con.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == ("2",)
    con.close()
    s = write(path, "live", 2.0, 3)
    assert session_modes(sqlite3.connect(path)) == {111: "unknown", s: "live"}


def test_a_sessions_table_without_the_mode_column_gains_it(tmp_path):
    path = tmp_path / "v2early.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA + "CREATE TABLE sessions (session INTEGER PRIMARY KEY);"
                      "INSERT INTO sessions VALUES (111);")
    con.close()
    con = connect(path)
    cols = [r[1] for r in con.execute("PRAGMA table_info(sessions)")]
    assert "mode" in cols
    assert con.execute("SELECT mode FROM sessions WHERE session = 111").fetchone() == ("unknown",)


def test_report_shows_live_by_default_and_names_what_it_left_out(tmp_path):
    path = tmp_path / "j.sqlite"
    write(path, "live", 1.0, 1)
    write(path, "demo", 50.0, 2)
    write(path, "replay", 7.0, 3)
    live = build(path, mode="live")
    assert live["realized_pnl"] == {"USD": 1.0} and live["executions"]["fills"] == 1
    assert live["sessions_by_mode"] == {"demo": 1, "live": 1, "replay": 1}
    assert build(path, mode="demo")["realized_pnl"] == {"USD": 50.0}
    assert build(path, mode="replay")["realized_pnl"] == {"USD": 7.0}
    assert build(path, mode="all")["realized_pnl"] == {"USD": 58.0}
    text = render(live, charts=False, color=False)
    assert "mode live   (also in this file: demo 1, replay 1 sessions" in text
    assert "REALIZED PnL +1.0000 USD" in text


def run(tmp_path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1", XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    return subprocess.run([sys.executable, "-m", "arbtui", "report", *argv], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


def test_report_cli_picks_the_file_of_its_mode(tmp_path):
    state = tmp_path / "state" / "arbtui"
    state.mkdir(parents=True)
    write(state / "journal.sqlite", "live", 1.0, 1)
    write(state / "demo-journal.sqlite", "demo", 50.0, 2)
    (state / "replays").mkdir()
    write(state / "replays" / "20261206T000000Z-1.sqlite", "replay", 7.0, 3)
    r = run(tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["mode"] == "live" and rep["realized_pnl"] == {"USD": 1.0}
    rep = json.loads(run(tmp_path, "--mode", "demo", "--json").stdout)
    assert rep["journal"].endswith("demo-journal.sqlite") and rep["realized_pnl"] == {"USD": 50.0}
    rep = json.loads(run(tmp_path, "--mode", "replay", "--json").stdout)
    assert rep["journal"].endswith("20261206T000000Z-1.sqlite") and rep["realized_pnl"] == {
        "USD": 7.0}
    # --journal PATH: every session of that file unless --mode says otherwise.
    demo = str(state / "demo-journal.sqlite")
    assert json.loads(run(tmp_path, "--journal", demo, "--json").stdout)["mode"] == "all"
    assert json.loads(run(tmp_path, "--journal", demo, "--mode", "live", "--json").stdout)[
        "realized_pnl"] == {}
    r = run(tmp_path, "--mode", "bogus")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_report_replay_mode_without_any_replay_says_so(tmp_path):
    r = run(tmp_path, "--mode", "replay")
    assert r.returncode == 2 and "no replay journal under" in r.stderr, r.stderr


async def test_a_demo_engine_writes_the_demo_journal_never_the_live_one(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    cfg = configmod.load(use_user=False)
    cfg.journal.enabled = True
    engine = Engine(cfg, mode="demo", roles=("execute",))
    await engine.start()
    await engine.stop()
    assert (tmp_path / "arbtui" / "demo-journal.sqlite").is_file()
    assert not (tmp_path / "arbtui" / "journal.sqlite").exists()
    con = sqlite3.connect(tmp_path / "arbtui" / "demo-journal.sqlite")
    assert set(session_modes(con).values()) == {"demo"}
    assert con.execute("SELECT count(*) FROM sessions").fetchone() == (1,)
