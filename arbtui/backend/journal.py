"""Durable journal of opportunity events and fills: SQLite in WAL mode.

The hot path only appends to an in-memory deque (O(1), no I/O, no encoding).
A writer THREAD wakes every ``flush_ms``, encodes the batch and commits it in
one transaction, so a disk stall never blocks the event loop. In WAL mode a
committed transaction is in the -wal file before ``commit`` returns, and a
killed process loses nothing the OS already has: after ``kill -9`` at most the
batch not yet committed (about ``flush_ms`` plus one write) is lost, and the
next open replays the WAL, so the file is always readable. ``synchronous =
NORMAL`` trades durability against POWER loss (not process death) for
throughput, which is the right trade for a research journal.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from arbtui.model import Fill, Opportunity

log = logging.getLogger("arbtui.journal")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS opportunities (
    seq INTEGER PRIMARY KEY, session INTEGER, ts_ns INTEGER, event TEXT, opp_id TEXT,
    symbol TEXT, sell_symbol TEXT, buy_venue TEXT, sell_venue TEXT, gross_bps REAL,
    net_bps REAL, size REAL, buy_vwap REAL, sell_vwap REAL, profit REAL, quote_ccy TEXT,
    lifetime_ms REAL, peak_net_bps REAL, peak_profit REAL, suspect INTEGER, reason TEXT,
    body BLOB, kind TEXT NOT NULL DEFAULT 'spot', basis_bps REAL, carry_apr REAL);
CREATE INDEX IF NOT EXISTS opportunities_ts ON opportunities (ts_ns);
CREATE TABLE IF NOT EXISTS fills (
    seq INTEGER PRIMARY KEY, session INTEGER, ts_ns INTEGER, opp_id TEXT, venue TEXT,
    symbol TEXT, side TEXT, kind TEXT, requested REAL, filled REAL, vwap REAL, fee REAL,
    fee_ccy TEXT, status TEXT, reason TEXT, pnl REAL, pnl_ccy TEXT, body BLOB);
CREATE INDEX IF NOT EXISTS fills_ts ON fills (ts_ns);
CREATE TABLE IF NOT EXISTS sessions (
    session INTEGER PRIMARY KEY, mode TEXT NOT NULL DEFAULT 'unknown', started_ns INTEGER,
    pid INTEGER);
""" + """
CREATE TABLE IF NOT EXISTS catch_windows (
    seq INTEGER PRIMARY KEY, session INTEGER, mode TEXT, ts_ns INTEGER, symbol TEXT,
    buy_venue TEXT, sell_venue TEXT, excess_bps REAL, lifetime_ms REAL, buy_path TEXT,
    sell_path TEXT, watched_ms REAL);
CREATE TABLE IF NOT EXISTS catch_outcomes (
    seq INTEGER PRIMARY KEY, session INTEGER, mode TEXT, ts_ns INTEGER, opp_id TEXT,
    symbol TEXT, buy_venue TEXT, sell_venue TEXT, p_catch REAL, caught INTEGER,
    net_bps REAL, threshold_bps REAL, why TEXT);
"""  # catch_*: the history and calibration of backend/catch.py (CatchJournal writes them)

#: What a session was: ``arbtui report`` shows live by default. ``unknown``: a session
#: written before the journal recorded modes (a demo then wrote the live journal).
MODES = ("live", "demo", "replay")
UNKNOWN = "unknown"
SCHEMA_VERSION = "2"  # 2: the sessions table with each session's mode

_OPP_SQL = ("INSERT INTO opportunities (session, ts_ns, event, opp_id, symbol, sell_symbol, "
            "buy_venue, sell_venue, gross_bps, net_bps, size, buy_vwap, sell_vwap, profit, "
            "quote_ccy, lifetime_ms, peak_net_bps, peak_profit, suspect, reason, body, "
            "kind, basis_bps, carry_apr) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_CATCH_WIN_SQL = ("INSERT INTO catch_windows (session, mode, ts_ns, symbol, buy_venue, "
                  "sell_venue, excess_bps, lifetime_ms, buy_path, sell_path, watched_ms) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?)")
_CATCH_OUT_SQL = ("INSERT INTO catch_outcomes (session, mode, ts_ns, opp_id, symbol, buy_venue, "
                  "sell_venue, p_catch, caught, net_bps, threshold_bps, why) "
                  "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")
_FILL_SQL = ("INSERT INTO fills (session, ts_ns, opp_id, venue, symbol, side, kind, requested, "
             "filled, vwap, fee, fee_ccy, status, reason, pnl, pnl_ccy, body) "
             "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


#: The default journal file per mode: a demo never writes the live journal (issue 15).
#: A replay writes a fresh file of its own (``backend.replay.engine.replay_journal_path``).
FILE_FOR_MODE = {"live": "journal.sqlite", "demo": "demo-journal.sqlite"}


def default_path(mode: str = "live") -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "arbtui" / FILE_FOR_MODE.get(mode, FILE_FOR_MODE["live"])


def resolve_path(path: str, mode: str = "live") -> Path:
    """``[journal] path`` if set (every mode then shares it; sessions say which was which),
    else the mode's own file under the state dir."""
    return Path(path).expanduser() if path else default_path(mode)


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a journal database in WAL mode with its schema."""
    con = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.executescript(SCHEMA)
    migrate(con)
    con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
    con.commit()
    _add_opp_columns(con)
    return con


def migrate(con: sqlite3.Connection) -> None:
    """Bring a journal written by an older arbtui up to this schema, in place.

    Version 1 had no sessions table (``SCHEMA`` just created it) and a sessions table
    of an early version 2 may lack ``mode``; the sessions its rows name are entered
    as ``unknown``: nothing says whether they were live or demo, and guessing "live"
    would put old demo profits into the live report (issue 15's false PnL).
    """
    cols = {r[1] for r in con.execute("PRAGMA table_info(sessions)")}
    if "mode" not in cols:
        con.execute(f"ALTER TABLE sessions ADD COLUMN mode TEXT NOT NULL DEFAULT '{UNKNOWN}'")
    if "started_ns" not in cols:
        con.execute("ALTER TABLE sessions ADD COLUMN started_ns INTEGER")
    if "pid" not in cols:
        con.execute("ALTER TABLE sessions ADD COLUMN pid INTEGER")
    (version,) = con.execute("SELECT coalesce(max(value), '1') FROM meta WHERE key = 'schema'"
                             ).fetchone()
    if version != SCHEMA_VERSION:
        for table in ("opportunities", "fills"):
            con.execute(f"INSERT OR IGNORE INTO sessions (session, mode, started_ns) "
                        f"SELECT session, '{UNKNOWN}', min(ts_ns) FROM {table} GROUP BY session")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))


def session_modes(con: sqlite3.Connection) -> dict[int, str]:
    """Every session of a journal -> its mode (``unknown`` where none was recorded). Works
    on a read-only connection to a file that was never migrated."""
    out: dict[int, str] = {}
    for table in ("opportunities", "fills"):
        for (sid,) in con.execute(f"SELECT DISTINCT session FROM {table}"):
            out[sid] = UNKNOWN
    try:
        rows = con.execute("SELECT session, mode FROM sessions").fetchall()
    except sqlite3.OperationalError:
        rows = []  # a version 1 journal, opened read-only: no sessions table yet
    for sid, mode in rows:
        out[sid] = mode or UNKNOWN
    return out


#: Columns added after the first schema (issue 18: opportunity kinds), appended to an
#: older journal's table when it is opened for writing; its rows were all spot windows.
_ADDED_OPP_COLUMNS = (("kind", "TEXT NOT NULL DEFAULT 'spot'"), ("basis_bps", "REAL"),
                      ("carry_apr", "REAL"))


def _add_opp_columns(con: sqlite3.Connection) -> None:
    have = {r[1] for r in con.execute("PRAGMA table_info(opportunities)")}
    with con:
        for col, decl in _ADDED_OPP_COLUMNS:
            if col not in have:
                con.execute(f"ALTER TABLE opportunities ADD COLUMN {col} {decl}")


class Journal:
    def __init__(self, path: str | Path, flush_ms: float = 50.0, *, mode: str = "live",
                 max_pending: int = 200_000) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_s = flush_ms / 1000.0
        self.session = time.time_ns()
        self.mode = mode
        self._pending: deque[Opportunity | Fill] = deque(maxlen=max_pending)
        self.max_pending = max_pending
        self.appended = 0
        self.written = 0
        self.dropped = 0  # pending overflow: the writer fell that far behind
        self.errors = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._idle = threading.Condition()
        # Open on the caller's thread so a bad path fails loudly at start, not later.
        self._con = connect(self.path)
        with self._con:
            self._con.execute("INSERT OR REPLACE INTO sessions (session, mode, started_ns, pid) "
                              "VALUES (?,?,?,?)", (self.session, mode, self.session, os.getpid()))
        #: ``backend.calibration.CatchJournal`` (set by the journal role before events flow):
        #: the catch_windows / catch_outcomes rows of each batch. None: not written.
        self.catch: Any = None
        self._thread = threading.Thread(target=self._run, name="arbtui-journal", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hot path

    def append(self, item: Opportunity | Fill) -> None:
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
        self._pending.append(item)
        self.appended += 1

    # ------------------------------------------------------------------ writer

    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            self._flush_once()
        self._flush_once()
        try:
            self._con.close()
        except sqlite3.Error:
            pass

    def _flush_once(self) -> None:
        pend = self._pending
        batch: list[Any] = []
        while pend:
            try:
                batch.append(pend.popleft())
            except IndexError:
                break
        if batch:
            enc = msgspec.json.encode
            s = self.session
            opps, fills = [], []
            for e in batch:
                if isinstance(e, Opportunity):
                    opps.append((s, e.ts_ns, e.event.value, e.id, e.symbol,
                                 e.sell_symbol or e.symbol, e.buy_venue, e.sell_venue,
                                 e.gross_bps, e.net_bps, e.size, e.buy_vwap, e.sell_vwap,
                                 e.profit, e.quote_ccy, e.lifetime_ms, e.peak_net_bps,
                                 e.peak_profit, int(e.suspect), e.reason, enc(e), e.kind,
                                 e.basis_bps if e.kind == "basis" else None,
                                 e.carry_apr if e.kind != "spot" else None))
                elif isinstance(e, Fill):
                    fills.append((s, e.ts_ns, e.opp_id, e.venue, e.symbol, e.side, e.kind,
                                  e.requested, e.filled, e.vwap, e.fee, e.fee_ccy, e.status,
                                  e.reason, e.pnl, e.pnl_ccy, enc(e)))
            cwins, couts = self.catch.rows(batch, s) if self.catch is not None else ((), ())
            try:
                with self._con:
                    if opps:
                        self._con.executemany(_OPP_SQL, opps)
                    if fills:
                        self._con.executemany(_FILL_SQL, fills)
                    if cwins:
                        self._con.executemany(_CATCH_WIN_SQL, cwins)
                    if couts:
                        self._con.executemany(_CATCH_OUT_SQL, couts)
                self.written += len(batch)
            except sqlite3.Error as e:  # disk full, locked too long: count, log, keep running
                self.errors += 1
                self.dropped += len(batch)
                self.last_error = str(e)
                log.error("journal write failed (%d events lost): %s", len(batch), e)
        with self._idle:
            self._idle.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything appended so far is committed (tests, shutdown)."""
        target = self.appended
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.written + self.dropped < target and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, self.flush_s * 2))
        return self.written + self.dropped >= target

    def close(self) -> None:
        """Flush what is pending and stop the writer (the final batch is committed)."""
        self._stop.set()
        self._thread.join(timeout=10)

    def stats(self) -> dict[str, Any]:
        return {"path": str(self.path), "mode": self.mode, "appended": self.appended, "written": self.written,
                "pending": len(self._pending), "dropped": self.dropped, "errors": self.errors,
                "last_error": self.last_error}

    def unclosed(self, limit: int = 100_000) -> list[Opportunity]:
        """Windows the journal holds as opened but never closed (any session), newest
        event each: a role that was killed left them so. Read on a connection of its own."""
        con = connect(self.path)
        try:
            rows = con.execute(
                "SELECT body FROM opportunities WHERE seq IN (SELECT MAX(seq) FROM opportunities"
                " GROUP BY opp_id) AND event != 'closed' ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        finally:
            con.close()
        dec = msgspec.json.Decoder(Opportunity)
        out = []
        for (body,) in rows:
            try:
                out.append(dec.decode(body))
            except msgspec.DecodeError:
                continue  # a row from another schema version: left as it is
        return out
