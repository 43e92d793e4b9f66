"""What a feed does with a book after a WHOLE message: publish its top as a Quote.

``BookPublisher`` is the half of ``VenueFeed`` (``feeds/base.py``) every frame
goes through: the crossed-book check, the quote when the quoted levels change
(built from the book's float pairs, no conversion), the venue-latency sample,
and the liveness refresh (``model.AGES_RULE``) of books whose levels stay the
same while their connection proves them good. ``SymbolBook`` is the per-book
state it works on. This is the hot path of every adapter: see
``benchmarks/frames.py`` for its per-frame instruction counts.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left

from arbtui.backend.book import _NO_FLOOR, Book
from arbtui.backend.feeds.sync import BookSync
from arbtui.backend.metrics import Histogram
from arbtui.model import BookState, Quote

# An Enum member read through its class costs ~60 ns (EnumType lookup); publish
# runs once per book message.
_LIVE = BookState.LIVE

#: Liveness refresh cadence (model.AGES_RULE). Quotes are published when the
#: quoted levels change; a LIVE book whose levels stay the same while its feed
#: keeps proving it good (a frame applied to it, or any frame on its connection:
#: data for other books, heartbeats, pongs) is re-published with the SAME level
#: lists and a newer ``live_ts_ns`` at most this often. The detector ages books by
#: that time, so a quiet top stays usable and a silent feed goes stale within
#: ``max_quote_age_ms`` (config keeps that at least 2 x this cadence).
LIVE_REFRESH_NS = 250_000_000
#: A connection's frames look for books due a refresh this often (frame time). While
#: they come that often, each book is due at its own phase past ``LIVE_REFRESH_NS``
#: (``SymbolBook.live_phase_ns``, under ``LIVE_REFRESH_NS - 2 x LIVE_CHECK_NS``): a book
#: is still re-published within 2 x ``LIVE_REFRESH_NS`` of its last publish, as when
#: every quiet book was checked once per cadence, but the books of one connection no
#: longer leave all together. Frames further apart (a quiet connection, heartbeats)
#: refresh every book past ``LIVE_REFRESH_NS`` at once, as before.
#: That burst (every quiet book at once, four times a second) queued behind itself on
#: the Kafka path: its quotes reached the detector 5-6 ms later than other quotes at
#: 1 k quotes/s (benchmarks/results/2026-12-06-r3-kafka.md).
LIVE_CHECK_NS = 25_000_000


class SymbolBook:
    """Per-symbol book with its sync state: the venue's last id in ``seq``, the
    adapter's typed bookkeeping in ``sync`` (``feeds/sync.py``)."""

    __slots__ = (
        "book",
        "changes",
        "last_quote",
        "last_top",
        "last_update_ns",
        "live_phase_ns",
        "live_venue_ns",
        "next_resync",
        "pub_live_ns",
        "quote_template",
        "reason",
        "resync_pending",
        "seq",
        "since_ns",
        "state",
        "symbol",
        "sync",
        "vsym",
    )

    def __init__(self, symbol: str, vsym: str, depth: int, sync: BookSync,
                 now_ns: int = 0, venue: str = "?") -> None:
        self.symbol = symbol
        self.vsym = vsym
        self.book = Book(depth)
        self.state = BookState.SYNCING
        self.reason = "connecting"
        self.since_ns = now_ns
        self.changes = 0
        self.seq: int = -1
        self.sync = sync
        self.last_top: tuple | None = None
        self.last_update_ns = 0  # receive time of the last frame applied to this book
        self.live_venue_ns = 0  # the venue's timestamp of that frame, 0 when none
        self.last_quote: Quote | None = None  # the last Quote published for these levels
        self.pub_live_ns = 0  # live_ts_ns of the last Quote published (or re-published)
        #: spreads the connection-proven refreshes (LIVE_CHECK_NS); crc32, not hash():
        #: the same in every process and replay
        self.live_phase_ns = zlib.crc32(symbol.encode()) % (
            (LIVE_REFRESH_NS - 2 * LIVE_CHECK_NS) // 1_000_000) * 1_000_000
        self.next_resync = 0.0
        self.resync_pending = False
        #: Never emitted: ``publish`` copies it and sets every field a quote varies in.
        self.quote_template = Quote(venue=venue, symbol=symbol, bid=0.0, bid_size=0.0, ask=0.0,
                                    ask_size=0.0, bids=[], asks=[], bid_px="", bid_qty="",
                                    ask_px="", ask_qty="")



class BookPublisher:
    """The publish half of a ``VenueFeed`` (a mixin: ``emit``, ``quote_depth``,
    ``books`` and the latency state are set by ``VenueFeed.__init__``)."""

    def publish(self, sb: SymbolBook, recv_ns: int, venue_ts_ns: int = 0, seq: int = -1) -> None:
        """After a WHOLE message is applied: crossed check, then emit a Quote if the top
        changed, or a liveness refresh if it did not for ``LIVE_REFRESH_NS``.

        Written out (no take_top / Histogram.observe calls, the latency sample inline): it runs
        once per book message, and at 1-3 levels a message those calls were ~1/8 of
        an adapter's instructions per frame (benchmarks/frames.py, 2026-12)."""
        sb.last_update_ns = recv_ns
        sb.live_venue_ns = venue_ts_ns
        if sb.state is not _LIVE:
            return
        book = sb.book
        if not book.top_dirty and sb.last_top is not None:
            # every change in this message was below the quoted depth: the book is
            # proven good, its quote unchanged
            if recv_ns - sb.pub_live_ns >= LIVE_REFRESH_NS:
                self._refresh(sb, recv_ns)
            return
        # Book.take_top inline: the book keeps each level's (price, size) floats in
        # its own order, best last, so the quote's lists are two reversed slices.
        n = self.quote_depth
        bk = book._bk
        ak = book._ak
        book.bid_floor = bk[-n] if len(bk) >= n else _NO_FLOOR
        book.ask_floor = ak[-n] if len(ak) >= n else _NO_FLOOR
        book.top_dirty = False
        fb = book._pb[:-n - 1:-1]
        fa = book._pa[:-n - 1:-1]
        if not fb or not fa:
            book.top_dirty = True  # nothing published: look again after the next change
            return
        bid, bid_size = fb[0]
        ask, ask_size = fa[0]
        if bid >= ask:  # the float keys order exactly as the decimal prices
            book.top_dirty = True
            # A crossed quote is never published: it would be a free "opportunity".
            # Venues with documented auctions (allow_crossed) decide themselves when
            # a persistent cross means desync; everyone else resyncs at once.
            if not self.allow_crossed:
                self.count("crossed")
                self.resync(sb, "crossed book")
            return
        top = (fb, fa)
        if top == sb.last_top:  # unchanged pairs are the same objects: identity compares
            if recv_ns - sb.pub_live_ns >= LIVE_REFRESH_NS:
                self._refresh(sb, recv_ns)
            return
        sb.last_top = top
        # The quote's latency sample; the histogram's samples are only appended here and
        # binned when it is read (``latency_hist``).
        self.quotes_out += 1
        if venue_ts_ns:
            ms = (recv_ns - venue_ts_ns) / 1e6
            self._latency.append(ms)
            # The histogram is skew-corrected like feed_latency_ms: the smallest delay
            # seen on this feed stands for clock offset + fastest path. (A compare,
            # not min(): the builtin call costs more.)
            floor = self._latency_floor
            if ms < floor:
                self._latency_floor = floor = ms
            pend = self._lat_pending
            pend.append(ms - floor)
            if len(pend) >= 4096:
                self._fold_latency()
        bp, bq = book.bids[bid]
        ap, aq = book.asks[ask]
        sb.pub_live_ns = recv_ns
        # A copy of the book's never-published template with every other field set:
        # half the cost of Quote(...) with 17 keywords (~1.3 vs ~2.6 us loaded, 2026-12).
        sb.last_quote = q = sb.quote_template.__copy__()
        q.venue = self.venue  # read now, as before: a relabelled feed (benchmarks) names itself
        q.bid = bid
        q.bid_size = bid_size
        q.ask = ask
        q.ask_size = ask_size
        q.bids = fb
        q.asks = fa
        q.bid_px = bp
        q.bid_qty = bq
        q.ask_px = ap
        q.ask_qty = aq
        q.venue_ts_ns = q.live_venue_ts_ns = venue_ts_ns
        q.recv_ts_ns = q.live_ts_ns = recv_ns
        q.seq = seq
        self.emit(q)

    def _fold_latency(self) -> None:
        """Bin the pending latency samples (ms above the floor) into the histogram."""
        pend = self._lat_pending
        if pend:
            h = self._latency_hist
            counts, bounds = h.counts, h.bounds
            total = h.sum  # summed in sample order, as observe() would
            for ms in pend:
                v = ms / 1e3
                counts[bisect_left(bounds, v)] += 1
                total += v
            h.n += len(pend)
            h.sum = total
            pend.clear()

    @property
    def latency_hist(self) -> Histogram:
        """arbtui_feed_latency_seconds: every sample so far (read on the feed's loop)."""
        self._fold_latency()
        return self._latency_hist

    def _refresh(self, sb: SymbolBook, live_ns: int) -> None:
        """Re-publish ``sb``'s last quote (same level lists, same top times) with
        ``live_ts_ns = live_ns``: the book is proven good, its levels unchanged."""
        q = sb.last_quote
        if q is None or sb.last_top is None:
            return
        sb.pub_live_ns = live_ns
        self.count("live_refreshes")
        # A shallow copy shares the level lists (how a consumer recognizes a refresh)
        # and takes every field as the last quote has it now (replay restamps its
        # times in place); only the liveness times and the bus stamp are new. About
        # a tenth of the instructions of Quote(...) with 17 keywords: on a sparse
        # stream (the 2021 Binance recording) most frames refresh another book.
        r = q.__copy__()
        r.live_ts_ns = live_ns
        r.live_venue_ts_ns = sb.live_venue_ns if sb.last_update_ns == live_ns else 0
        r.pub_ts_ns = 0
        self.emit(r)

    def connection_alive(self, recv_ns: int) -> None:
        """A frame arrived on this connection (data, heartbeat, pong): it proves
        every LIVE book on it is still being served, the venues' per-connection
        heartbeats being the only ones they send. Books whose quote has not been
        (re-)published for ``LIVE_REFRESH_NS`` (plus the book's phase while the
        connection's frames come at least every ``LIVE_CHECK_NS`` or so) are
        re-published; checked at most once per ``LIVE_CHECK_NS`` of frame time, so the
        hot path pays one compare."""
        due = self._live_due
        if recv_ns < due:
            return
        # The previous check was under 2 x LIVE_CHECK_NS ago: the next one comes soon
        # enough for a book's phase to keep it within 2 x LIVE_REFRESH_NS.
        phased = recv_ns - due < LIVE_CHECK_NS
        self._live_due = recv_ns + LIVE_CHECK_NS
        for sb in self.books.values():
            if sb.state is _LIVE and recv_ns - sb.pub_live_ns >= LIVE_REFRESH_NS + (
                    sb.live_phase_ns if phased else 0):
                self._refresh(sb, recv_ns)

    def withhold_crossed(self, sb: SymbolBook, recv_ns: int, reason: str) -> str | None:
        """For ``allow_crossed`` venues, after a WHOLE message: None if the book is
        not crossed. A crossed book is never published; it may be an auction, so it
        is withheld (STALE, ``reason``) and given ``crossed_grace_s`` to uncross:
        returns "withheld". Still crossed after that, it is out of sync: returns
        "desync" and the caller drops and resyncs it."""
        x = sb.sync
        if not sb.book.crossed():
            if x.crossed_since is not None:  # the store only when it changes: every message
                x.crossed_since = None
            return None
        since = x.crossed_since
        if since is None:
            x.crossed_since = since = recv_ns
            self.count("crossed")
        sb.last_update_ns = recv_ns
        if (recv_ns - since) / 1e9 >= self.crossed_grace_s:
            return "desync"
        self.set_state(sb, BookState.STALE, reason)
        return "withheld"
