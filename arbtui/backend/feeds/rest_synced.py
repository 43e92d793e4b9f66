"""The adapter shape of venues whose stream carries only numbered changes and
whose book starts from a REST snapshot (KuCoin ``/market/level2``, Gate
``spot.order_book_update``): buffer, fetch, bridge, follow, re-snapshot ONE
book on a gap. ``feeds/bridge.py`` judges a snapshot against the buffer; this
class owns the per-book bookkeeping and the fetch loop around it.

A subclass says how its venue spells things:

- ``snapshot_urls(sb)``: where the snapshot is, in order of preference (the
  first that answers is kept for the next fetches);
- ``parse_snapshot(body)``: ``(id, bids, asks, venue_ts_ns)``;
- ``apply_change(sb, msg)``: put ONE whole update on the book with one
  ``Book.apply_sides`` (after its own row rules), raising
  ``BookError``/``ValueError``/``TypeError``/``KeyError`` on a bad row;
- and calls ``on_change(sb, first, last, msg, ts_ns, recv_ns, data)`` for every
  update message, with the venue's ids normalized: the update moves the book
  from id ``first`` to ``last`` (``U - 1`` / ``sequenceStart - 1`` .. ``u`` /
  ``sequenceEnd``). Overlaps are legal (sizes are absolute); a hole is a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from arbtui.backend.book import BookError
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import SymbolBook, VenueFeed
from arbtui.backend.feeds.sync import AWAIT_SNAPSHOT, BRIDGING, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds")

_BAD_ROW = (BookError, KeyError, TypeError, ValueError, AttributeError, IndexError)


@dataclass(slots=True, eq=False)
class RestSync(BookSync):
    """``BookSync`` (``feeds/sync.py``) plus the snapshot fetch in flight and
    the hold a dropped book waits under (the rate-limited resync releases it)."""

    task: asyncio.Task | None = None
    hold: bool = False


class RestSyncedFeed(VenueFeed):
    sync_state: ClassVar[type[BookSync]] = RestSync
    #: Updates buffered per book while its snapshot is in flight (bounded memory;
    #: past it the buffer restarts: a snapshot that old would be refused anyway).
    max_buffer: ClassVar[int] = 5000
    #: How long a book waits for its first update before fetching anyway (a
    #: quiet book still gets its snapshot; the next update must bridge it).
    first_event_wait_s: ClassVar[float] = 1.0

    def __init__(self, symbols: list[str], emit, **kw: Any) -> None:
        super().__init__(symbols, emit, **kw)
        self._url_choice = 0

    # ------------------------------------------------------------ venue spelling

    def snapshot_urls(self, sb: SymbolBook) -> list[str]:
        raise NotImplementedError

    def parse_snapshot(self, body: str) -> tuple[int, list, list, int]:
        raise NotImplementedError

    def apply_change(self, sb: SymbolBook, msg: Any) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ state

    def reset_books(self, state: BookState, reason: str) -> None:
        for sb in self.books.values():
            if sb.sync.task is not None:
                sb.sync.task.cancel()
        super().reset_books(state, reason)  # a fresh RestSync per book

    def resync(self, sb: SymbolBook, reason: str) -> None:
        # Every way out of LIVE (gap, crossed, bad row) drops the book at once,
        # so nothing more lands on it before the fresh snapshot.
        sb.book.clear()
        sb.seq = -1
        x = sb.sync
        x.phase = AWAIT_SNAPSHOT
        x.pending.clear()
        x.hold = True
        super().resync(sb, reason)

    async def resync_symbol(self, sb: SymbolBook) -> None:
        sb.sync.hold = False
        self.ensure_sync(sb)

    def start_syncing(self) -> None:
        """Every book starts syncing now (not at its first update)."""
        for sb in self.books.values():
            self.ensure_sync(sb)

    # ------------------------------------------------------------ stream

    def on_change(self, sb: SymbolBook, first: int, last: int, msg: Any, ts_ns: int,
                  recv_ns: int, data: Any) -> None:
        if sb.sync.phase is not SYNCED:
            st = sb.sync
            if bridge.push(st.pending, bridge.Pending(first, last, (msg, ts_ns)), self.max_buffer):
                self.count("buffer_overflow")
            self.ensure_sync(sb)
            return
        self.on_synced_change(sb, first, last, msg, ts_ns, recv_ns, data)

    def on_synced_change(self, sb: SymbolBook, first: int, last: int, msg: Any, ts_ns: int,
                         recv_ns: int, data: Any,
                         apply: Callable[[SymbolBook, Any], None] | None = None) -> None:
        """A change to a SYNCED book: ids already in it are dropped, a gap resyncs, else
        it is applied and published. ``apply`` stands in for ``apply_change`` when an
        adapter's typed fast path hands over its decoded struct instead of the dict."""
        if last <= sb.seq:
            self.count("stale_updates")  # already in the book (snapshot overlap)
            return
        if first > sb.seq:
            self.count("gaps")
            self.resync(sb, f"gap: update from id {first} after {sb.seq}")
            return
        # ``_apply`` written out: this runs on every update frame of Gate and KuCoin.
        try:
            (apply or self.apply_change)(sb, msg)  # one Book.apply_sides: it truncates
        except _BAD_ROW as e:
            self.frame_error(f"bad change: {e}", data, sb)  # half-applied: resync
            return
        sb.seq = last
        self.publish(sb, recv_ns, ts_ns, last)

    def _apply(self, sb: SymbolBook, msg: Any, last: int, data: Any,
               apply: Callable[[SymbolBook, Any], None] | None = None) -> bool:
        try:
            # one Book.apply_sides: it truncates to depth
            (apply or self.apply_change)(sb, msg)
        except _BAD_ROW as e:
            self.frame_error(f"bad change: {e}", data, sb)  # half-applied: resync
            return False
        sb.seq = last
        return True

    def replace_book(self, sb: SymbolBook, uid: int, bids: list, asks: list, ts_ns: int,
                     recv_ns: int, data: Any) -> None:
        """An in-band full book (Gate sends one now and then): replaces book and id."""
        try:
            sb.book.load(bids, asks)
        except _BAD_ROW as e:
            self.frame_error(f"bad full book: {e}", data, sb)
            return
        sb.seq = uid
        st = sb.sync
        st.phase = SYNCED
        st.pending.clear()
        st.hold = False
        self.count("full_books")
        self.set_state(sb, BookState.LIVE, "")
        self.publish(sb, recv_ns, ts_ns, uid)

    # ------------------------------------------------------------ snapshot bridge

    def ensure_sync(self, sb: SymbolBook) -> None:
        st = sb.sync
        if st.hold or st.task is not None or st.phase is SYNCED:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        st.task = self.spawn(self._snapshot_loop(sb, st))

    async def _fetch(self, sb: SymbolBook) -> str:
        """The snapshot from the first URL that answers; that one is tried first
        from then on (e.g. a recorded session that used another endpoint). Books
        fetch concurrently, never one after another: a replayed answer must come
        at its recorded time, not after another book's."""
        urls = self.snapshot_urls(sb)
        order = [self._url_choice] + [i for i in range(len(urls)) if i != self._url_choice]
        err: Exception | None = None
        for i in order:
            try:
                body = await self.http_get(urls[i])
                self.parse_snapshot(body)
            except Exception as e:  # noqa: BLE001 - try the next spelling
                err = e
                continue
            self._url_choice = i
            return body
        assert err is not None
        raise err

    async def _snapshot_loop(self, sb: SymbolBook, st: RestSync) -> None:
        try:
            delay = 0.5
            st.phase = BRIDGING
            while sb.sync is st and st.phase is BRIDGING:
                # Counted in sleeps, not clock reads: replay runs them on recording time.
                for _ in range(int(self.first_event_wait_s / 0.02)):
                    if st.pending:
                        break
                    await self.clock.sleep(0.02)
                try:
                    snap_id, bids, asks, ts_ns = self.parse_snapshot(await self._fetch(sb))
                except Exception as e:  # noqa: BLE001 - network or venue error: retry
                    self.count("snapshot_errors")
                    log.warning("%s: snapshot %s failed: %r", self.venue, sb.vsym, e)
                    await self.clock.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                self.count("snapshots")
                if sb.sync is not st or st.phase is not BRIDGING:
                    return  # reset, or an in-band full book came first
                if self._install(sb, st, snap_id, bids, asks, ts_ns):
                    return
                await self.clock.sleep(0.1)
        finally:
            if st.task is asyncio.current_task():
                st.task = None

    def _install(self, sb: SymbolBook, st: RestSync, snap_id: int, bids, asks, ts_ns: int) -> bool:
        """Bridge the buffer to the snapshot, synchronously (no update slips in
        between). True when done: LIVE, or dropped and a resync requested."""
        plan = bridge.bridge(snap_id, st.pending, exact=False)
        if plan.outcome is bridge.Outcome.TOO_OLD:
            self.count("snapshot_too_old")
            st.pending[:] = plan.kept
            return False
        if plan.outcome is bridge.Outcome.GAP:
            self.count("gaps")
            st.pending[:] = plan.kept[plan.gap_at:]
            return False
        try:
            sb.book.load(bids, asks)
        except _BAD_ROW as e:
            self.count("snapshot_errors")
            log.warning("%s: bad snapshot for %s: %s", self.venue, sb.vsym, e)
            sb.book.clear()
            return False
        sb.seq = snap_id
        st.phase = SYNCED
        st.pending.clear()
        for p in plan.kept:
            msg, ts_ns = p.msg
            if not self._apply(sb, msg, p.last, None):
                return True
        self.set_state(sb, BookState.LIVE, "")
        if plan.kept:
            ts_ns = plan.kept[-1].msg[1]
        self.publish(sb, self.clock_ns(), ts_ns, sb.seq)
        return True
