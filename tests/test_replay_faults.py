"""A session with injected faults replays to the same detections and recoveries as live.

The simulator injects each venue's detectable fault (sequence gap, bad checksum,
crossed book) while the live adapters are being recorded. The live adapters
detect it, resync that symbol (resubscribe or REST re-snapshot) and recover;
all of it — the venue's answers to the resync included — is in the recording.
Replaying must detect the same faults at the same frames (same counters) and
print the same tops of book, since it runs the very same adapter code.
"""

from __future__ import annotations

import asyncio

from replay_fixtures import default_cfg, replay_inprocess

from arbtui import symbols as symmod
from arbtui.backend.feeds import available
from arbtui.backend.record import record_session
from arbtui.backend.sim.server import Simulator, venue_classes
from arbtui.model import BookState

SYMBOLS = ["BTC-USD", "ETH-USD"]
FAULT = {"binance": "gap", "coinbase": "gap", "kraken": "checksum", "bybit": "gap",
         "okx": "gap", "gemini": "crossed"}
VENUES = [v for v in FAULT if v in available() and v in venue_classes()]


class _Tops:
    """What --print-quotes prints: one entry per top-of-book change, reset when a book
    leaves LIVE (the printer's rule), fed from the live adapters' callbacks."""

    def __init__(self) -> None:
        self.last: dict = {}
        self.rows: list[tuple] = []
        self.states: list[tuple] = []

    def quote(self, q) -> None:
        top = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        if self.last.get((q.venue, q.symbol)) != top:
            self.last[(q.venue, q.symbol)] = top
            self.rows.append((q.venue, q.symbol, *top))

    def state(self, st) -> None:
        self.states.append((st.venue, st.symbol, st.state.value, st.reason))
        if st.state is not BookState.LIVE:
            self.last.pop((st.venue, st.symbol), None)


async def test_faults_replay_to_the_same_detections_and_recoveries(tmp_path):
    path = tmp_path / "faults.jsonl.zst"
    sim = Simulator(VENUES, SYMBOLS, seed=11, tick_ms=50.0)
    await sim.start()
    tops = _Tops()

    async def inject() -> None:
        await asyncio.sleep(1.0)
        for v in VENUES:
            sim.venues[v].inject(FAULT[v])

    injector = asyncio.get_running_loop().create_task(inject())
    try:
        res = await asyncio.wait_for(record_session(
            default_cfg(), VENUES, SYMBOLS, 4.0, str(path), urls=sim.urls(),
            symbol_maps={v: symmod.sim_symbol_map(v, SYMBOLS) for v in VENUES if v != "binance"},
            on_quote=tops.quote, on_state=tops.state), 30)
    finally:
        injector.cancel()
        await asyncio.wait_for(sim.stop(), 10)
    live = {v: f.status().counters for v, f in res.feeds.items()}
    for v in VENUES:
        # The fault happened live and was recovered from.
        assert live[v].get("resyncs", 0) >= 1, (v, live[v])

    replay_states: list[tuple] = []
    run = await replay_inprocess([path], on_state=lambda st: replay_states.append(
        (st.venue, st.symbol, st.state.value, st.reason)))
    replayed = {f.venue: f.status().counters for f in run.feeds}
    assert replayed == live
    got = [(q["venue"], q["symbol"], q["bid"], q["bid_size"], q["ask"], q["ask_size"])
           for q in run.quotes]
    # Per book, the same tops in the same order. Across books only the interleaving
    # may differ: Binance fetches its REST snapshots concurrently, and which of two
    # symbols' snapshot completes first is a race live, replayed in recorded order.
    def per_book(rows: list[tuple]) -> dict:
        out: dict = {}
        for r in rows:
            out.setdefault(r[:2], []).append(r)
        return out

    assert per_book(got) == per_book(tops.rows)
    assert sorted(got) == sorted(tops.rows)
    # The same book state changes, with the same reasons, in the same order per
    # book. Live adds only the shutdown's STALE (the recorder stops the feeds one
    # by one, so another venue's last changes may come after the first of them).
    live_states = [st for st in tops.states
                   if not (st[2] == "STALE" and st[3].startswith("closed"))]
    shutdown = [st for st in tops.states if st not in live_states]
    assert all(st[2] == "STALE" for st in shutdown)
    assert per_book(replay_states) == per_book(live_states)
