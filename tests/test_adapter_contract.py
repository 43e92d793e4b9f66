"""The adapter contract: the same checks over EVERY registered venue.

Parametrized from ``arbtui.venues.REGISTRY``, so a new registry entry is
picked up with no edit here. Each test runs the venue's real adapter against
its real loopback simulator (``VenueFeed.run`` on a WebSocket, REST where the
venue needs it), as the per-venue tests do:

- snapshot -> every book LIVE, well-formed, and each published quote is the
  book's top at the instant it was emitted, in the shape the detector expects
  (fields, ordering, decimal strings, venue time and sequence as declared);
- each fault the venue's protocol makes detectable (the entry's ``detects``:
  a lost update, a checksum or sequence fault) is caught by the named counter,
  the book goes RESYNC, and it comes back LIVE and equal to the venue's;
- a venue whose wire cannot reveal a lost message bounds it by refreshing;
- a malformed frame is counted, never fatal; a crossed book is never
  published; a dropped connection reconnects and resyncs.
"""

from __future__ import annotations

import asyncio
import re
from itertools import pairwise
from typing import Any

import pytest
from feed_fixtures import SimFeedRig

from arbtui import venues
from arbtui.backend.feeds.base import Backoff
from arbtui.model import SCHEMA_VERSION, BookState, Quote
from arbtui.symbols import sim_symbol_map

NAMES = venues.names()
FAULTS = [pytest.param(s.name, f, id=f"{s.name}-{f}") for s in venues.REGISTRY for f in s.detects]
QUOTE_DEPTH = 10
DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


class ContractRig(SimFeedRig):
    """The venue's simulator and adapter, built from the registry entry alone."""

    def __init__(self, name: str, sim_attrs: dict | None = None) -> None:
        self.spec = venues.get(name)
        super().__init__(name, list(self.spec.test_symbols))
        for k, v in (sim_attrs or {}).items():
            assert hasattr(self.sim, k), f"{name} simulator has no setting {k!r}"
            setattr(self.sim, k, v)
        self.shape_errors: list[str] = []

    def make_feed(self) -> Any:
        feed = self.spec.adapter_class()(
            list(self.symbols), self._emit, url=self.sim.url, rest_url=self.sim.rest_url,
            depth=100, quote_depth=QUOTE_DEPTH,
            symbol_map=sim_symbol_map(self.venue, self.symbols))
        # Same classes, shorter waits: recovery fits the test budget.
        feed.backoff = Backoff(base=0.05, cap=0.5, healthy_s=30.0)
        feed.crossed_grace_s = 0.3
        feed.send_rate = 20.0
        return feed

    def _emit(self, q: Quote) -> None:
        # Checked synchronously: the quote must be the book's top right now.
        self.shape_errors += quote_shape_errors(self.spec, self.feed, q, self.symbols)
        self.quotes.append(q)

    async def quiet(self) -> None:
        """Stop the market and wait until the feed has heard nothing new for 0.3 s."""
        await self.hub.stop()
        loop = asyncio.get_running_loop()
        end = loop.time() + 6.0
        n, since = self.feed.msg_count, loop.time()
        while loop.time() - since < 0.3:
            assert loop.time() < end, "feed never went quiet after the market stopped"
            await asyncio.sleep(0.02)
            if self.feed.msg_count != n:
                n, since = self.feed.msg_count, loop.time()

    def assert_books_equal_venue(self) -> None:
        """Every LIVE book's top 10 levels are the simulated venue's, and the last
        quote of each symbol shows its best levels (after ``quiet``)."""
        for s in self.symbols:
            sb = self.feed.books[s]
            assert sb.state is BookState.LIVE, (s, sb.state, sb.reason)
            vb = self.sim.book(s)
            assert sb.book.top_bids(10) == vb.sorted_bids()[:10], s
            assert sb.book.top_asks(10) == vb.sorted_asks()[:10], s
            q = self.last_quote(s)
            inst = self.spec.instrument(s)
            assert q is not None and (q.bid_px, q.bid_qty) == in_base(inst, vb.sorted_bids()[0]), s
            assert (q.ask_px, q.ask_qty) == in_base(inst, vb.sorted_asks()[0]), s


def in_base(inst: venues.Instrument, level: tuple[str, str] | None) -> tuple[str, str] | None:
    """A book level (venue px/size strings) as a quote shows it: size in base units
    (a perp whose book counts contracts, e.g. OKX swaps; spot levels unchanged)."""
    if level is None or inst.unit:
        return level
    px, qty = level
    return px, venues.decimal_text(inst.base_float(float(px), float(qty)))


def quote_shape_errors(spec: venues.VenueSpec, feed: Any, q: Quote, symbols: list[str]) -> list[str]:
    errs: list[str] = []

    def need(ok: bool, what: str) -> None:
        if not ok:
            errs.append(f"{spec.name} {q.symbol}: {what}: {q!r}")

    need(q.venue == spec.name and q.symbol in symbols and q.v == SCHEMA_VERSION, "identity")
    need(1 <= len(q.bids) <= QUOTE_DEPTH and 1 <= len(q.asks) <= QUOTE_DEPTH, "level count")
    need(all(a[0] > b[0] for a, b in pairwise(q.bids)), "bids best first")
    need(all(a[0] < b[0] for a, b in pairwise(q.asks)), "asks best first")
    need(all(p > 0 and s > 0 for p, s in q.bids + q.asks), "positive levels")
    need((q.bid, q.bid_size) == q.bids[0] and (q.ask, q.ask_size) == q.asks[0], "top = first level")
    need(q.bid < q.ask, "crossed quote")
    for txt, val in ((q.bid_px, q.bid), (q.bid_qty, q.bid_size), (q.ask_px, q.ask),
                     (q.ask_qty, q.ask_size)):
        need(isinstance(txt, str) and bool(DECIMAL.match(txt)) and float(txt) == val,
             f"decimal string {txt!r}")
    need(q.recv_ts_ns > 0, "receive time")
    # A venue that stamps its messages: most quotes carry that time (not all: one
    # built from a REST snapshot alone has none). One that does not: never.
    need(spec.venue_ts or q.venue_ts_ns == 0, "venue time from a venue that sends none")
    need((q.seq >= 0) == spec.sequenced, f"sequence (declared {spec.sequenced})")
    sb = feed.books.get(q.symbol)
    if sb is not None:
        book = sb.book
        inst = spec.instrument(q.symbol)  # quotes are in base units whatever the book counts
        need(sb.state is BookState.LIVE, "published from a book that is not LIVE")
        need(in_base(inst, book.best_bid()) == (q.bid_px, q.bid_qty)
             and in_base(inst, book.best_ask()) == (q.ask_px, q.ask_qty),
             "quote is not the book's top")
        bids, asks = book.top_floats(QUOTE_DEPTH)
        need(list(q.bids) == inst.base_levels(bids) and list(q.asks) == inst.base_levels(asks),
             "levels are not the book's")
    return errs


def assert_well_formed(rig: ContractRig) -> None:
    for s in rig.symbols:
        book = rig.feed.books[s].book
        bids, asks = book.top_floats(len(book))
        assert bids and asks, s
        assert all(a[0] > b[0] for a, b in pairwise(bids)), s
        assert all(a[0] < b[0] for a, b in pairwise(asks)), s
        assert bids[0][0] < asks[0][0], s
        assert len(book.bids) <= book.depth and len(book.asks) <= book.depth, s
    assert not rig.shape_errors, rig.shape_errors[:3]


@pytest.mark.parametrize("name", NAMES)
async def test_snapshot_gives_live_books_and_well_formed_quotes(name):
    async with ContractRig(name) as rig:
        await rig.live()
        await rig.wait(lambda: all(rig.last_quote(s) for s in rig.symbols), "a quote per symbol")
        await rig.wait(lambda: len(rig.quotes) >= 20, "quotes keep flowing")
        if rig.spec.venue_ts:
            await rig.wait(lambda: all(any(q.venue_ts_ns > 0 for q in rig.quotes if q.symbol == s)
                                       for s in rig.symbols), "quotes carry the venue's time")
        assert_well_formed(rig)
        await rig.quiet()
        rig.assert_books_equal_venue()
        assert rig.counter("frame_errors") == 0 and rig.counter("resyncs") == 0
        assert rig.sim.connects == 1


@pytest.mark.parametrize(("name", "fault"), FAULTS)
async def test_detectable_fault_resyncs_the_book(name, fault):
    """A lost update / checksum / sequence fault: caught by the declared counter,
    the book leaves LIVE (RESYNC) at once, and returns LIVE and correct."""
    spec = venues.get(name)
    det = spec.detects[fault]
    async with ContractRig(name, dict(det.sim_attrs)) as rig:
        await rig.live()
        rig.sim.inject(fault)
        await rig.wait(lambda: rig.counter(det.counter) >= 1, f"{fault} caught as {det.counter}")
        assert rig.counter("resyncs") >= 1
        assert any(BookState.RESYNC in rig.states_of(s) for s in rig.symbols)
        await rig.live()
        assert_well_formed(rig)
        await rig.quiet()
        rig.assert_books_equal_venue()


@pytest.mark.parametrize("name", [s.name for s in venues.REGISTRY if "gap" not in s.detects])
def test_venue_that_cannot_see_a_gap_refreshes_periodically(name):
    # Nothing on the wire says a message was lost, so the adapter must bound how
    # long an undetected gap can live: a proactive reconnect re-sends every book.
    feed = venues.get(name).adapter_class()(["BTC-USD"], lambda q: None)
    assert feed.max_conn_life_s and feed.max_conn_life_s <= 3600


@pytest.mark.parametrize("name", NAMES)
async def test_malformed_frame_is_counted_not_fatal(name):
    async with ContractRig(name) as rig:
        await rig.live()
        changes = {s: sb.changes for s, sb in rig.feed.books.items()}
        rig.sim.inject("malformed")
        await rig.wait(lambda: rig.counter("frame_errors") >= 1, "malformed frame counted")
        n = len(rig.quotes)
        await rig.wait(lambda: len(rig.quotes) > n + 5, "quotes keep flowing")
        # A frame that never reached a book leaves every book LIVE and the socket up.
        assert {s: sb.changes for s, sb in rig.feed.books.items()} == changes
        assert rig.all_live() and rig.sim.connects == 1 and rig.feed.reconnects == 0
        assert_well_formed(rig)


@pytest.mark.parametrize("name", NAMES)
async def test_crossed_book_is_never_published(name):
    async with ContractRig(name) as rig:
        await rig.live()
        rig.sim.inject("crossed")
        await rig.wait(lambda: rig.counter("crossed") >= 1, "crossed book seen")
        await rig.wait(lambda: rig.counter("resyncs") >= 1, "crossed book resynced")
        await rig.live()
        assert all(q.bid < q.ask for q in rig.quotes)
        assert_well_formed(rig)
        await rig.quiet()
        rig.assert_books_equal_venue()


@pytest.mark.parametrize("name", NAMES)
async def test_dropped_connection_reconnects_and_resyncs(name):
    async with ContractRig(name) as rig:
        await rig.live()
        rig.sim.inject("drop")
        await rig.wait(lambda: rig.feed.reconnects >= 1, "reconnect after drop")
        assert all(BookState.STALE in rig.states_of(s) for s in rig.symbols)
        await rig.live()
        await rig.wait(lambda: rig.sim.connects == 2, "second connection")
        await rig.quiet()
        rig.assert_books_equal_venue()
        assert not rig.shape_errors, rig.shape_errors[:3]
