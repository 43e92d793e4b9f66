"""Binance's REST snapshot sync: fetch, bridge, install, and the quiet-book check
(docs/protocols.md#binance, steps 1-4 in ``feeds/binance.py``).

``BinanceSnapshots`` is the half of ``BinanceFeed`` (spot and USD-M) that runs
in tasks beside the stream: one snapshot fetch per symbol under the venue's
REST weight budget (a 429/418 pauses every fetch), the bridge of the buffered
depth events onto it (``bridge.py``), and the periodic ``lastUpdateId`` check
of a book that has been quiet too long. The stream side (``binance.py``)
buffers events while a book is not SYNCED and applies them once it is.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import msgspec

from arbtui.backend.book import BookError
from arbtui.backend.feeds import bridge
from arbtui.backend.feeds.base import SymbolBook
from arbtui.backend.feeds.sync import BRIDGING, SYNCED, BookSync
from arbtui.model import BookState

log = logging.getLogger("arbtui.feeds.binance")

_decode = msgspec.json.decode


@dataclass(slots=True, eq=False)
class BinanceSync(BookSync):
    """``BookSync`` plus Binance's snapshot task and checks. ``pending`` holds
    depth events as ``Pending(U - 1, u, event)`` until the snapshot bridges them."""

    #: Set by a restart: no new snapshot until the rate-limited resync releases it.
    hold: bool = False
    #: The snapshot-fetch task in flight, if any.
    task: asyncio.Task | None = None
    #: Latest bookTicker seen: (u, best bid px, best ask px).
    ticker: tuple | None = None
    #: A quiet-book check (``_verify_quiet``) is in flight / when it last finished.
    checking: bool = False
    verified_ns: int = 0
    #: The book was just installed from a snapshot with no buffered event after it:
    #: the next event must straddle the snapshot id rather than chain to it (USD-M).
    straddle: bool = False


def depth_weight(limit: int) -> int:
    """REST weight of ``GET /api/v3/depth`` by ``limit`` (Binance docs, 2026)."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


class BinanceSnapshots:
    """The snapshot tasks of a ``BinanceFeed`` (a mixin: the stream half sets the
    budget ``_weight``, ``snapshot_limit``, ``depth_path`` ...)."""

    def _ensure_sync(self, sb: SymbolBook) -> None:
        x = sb.sync
        if x.hold or x.task is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        x.phase = BRIDGING
        x.task = self.spawn(self._sync(sb))

    async def _sync(self, sb: SymbolBook) -> None:
        try:
            delay = 0.5
            while True:
                # Step 1: buffer first, so the snapshot can be judged against the
                # first event. A quiet symbol may send nothing for a long time: then
                # fetch anyway; the first event after the snapshot still has to
                # bridge its id (U <= id+1), or it is a gap and we fetch again.
                # Counted in sleeps, not clock reads, so replay (which runs
                # self.clock.sleep on recording time) waits recording time too.
                for _ in range(int(self.first_event_wait_s / 0.02)):
                    if sb.sync.pending:
                        break
                    await self.clock.sleep(0.02)
                await self._rest_slot(self.snapshot_weight(self.snapshot_limit))
                url = (f"{self.rest_url}{self.depth_path}?symbol={sb.vsym}"
                       f"&limit={self.snapshot_limit}")
                try:
                    body = await self.http_get(url)
                    snap = _decode(body)
                    last_id = snap["lastUpdateId"]
                    bids, asks = snap["bids"], snap["asks"]
                    if not isinstance(last_id, int):
                        raise TypeError("lastUpdateId is not an integer")
                except Exception as e:  # noqa: BLE001 - network or venue error: retry with backoff
                    self.count("snapshot_errors")
                    log.warning("binance: snapshot %s failed: %r", sb.vsym, e)
                    pause = self._rest_refused(e)
                    await self.clock.sleep(max(delay, pause))
                    delay = min(delay * 2, 30.0)
                    continue
                self.count("snapshots")
                if self._install(sb, last_id, bids, asks):
                    return
                await self.clock.sleep(0.1)
        finally:
            if sb.sync.task is asyncio.current_task():
                sb.sync.task = None

    async def _quiet_watch(self) -> None:
        limit = self.quiet_check_s * 1e9
        while True:
            await self.clock.sleep(max(0.05, min(5.0, self.quiet_check_s / 4)))
            now = self.clock_ns()
            for sb in list(self.books.values()):
                x = sb.sync
                last = max(sb.last_update_ns, x.verified_ns)
                if (sb.state is BookState.LIVE and x.phase is SYNCED and not x.checking
                        and now - last > limit):
                    x.checking = True
                    self.spawn(self._verify_quiet(sb))

    async def _verify_quiet(self, sb: SymbolBook) -> None:
        try:
            await self._rest_slot(self.snapshot_weight(5))
            body = await self.http_get(f"{self.rest_url}{self.depth_path}?symbol={sb.vsym}&limit=5")
            last_id = _decode(body)["lastUpdateId"]
            if not isinstance(last_id, int):
                raise TypeError("lastUpdateId is not an integer")
            self.count("quiet_checks")
            if sb.state is BookState.LIVE and last_id > sb.seq:
                await self.clock.sleep(self.quiet_grace_s)
                if sb.state is BookState.LIVE and 0 <= sb.seq < last_id:
                    self.count("missed_events")
                    self._restart(sb, f"venue at id {last_id} but no events after {sb.seq}")
            sb.sync.verified_ns = self.clock_ns()
        except Exception as e:  # noqa: BLE001 - a failed check is retried next period
            self.count("snapshot_errors")
            self._rest_refused(e)
            log.warning("binance: quiet check of %s failed: %r", sb.vsym, e)
            sb.sync.verified_ns = self.clock_ns()
        finally:
            sb.sync.checking = False

    def _rest_refused(self, e: Exception) -> float:
        """429 (rate limit) or 418 (IP ban): stop ALL snapshot fetches for
        Retry-After seconds. Binance bans IPs that keep calling after a 429."""
        code = getattr(e, "code", None) or getattr(e, "status", None)
        if code not in (418, 429):
            return 0.0
        self.count(f"rest_{code}")
        try:
            wait = float((getattr(e, "headers", None) or {}).get("Retry-After") or 0)
        except (TypeError, ValueError):
            wait = 0.0
        wait = wait or self.rest_refused_wait_s
        # Shared by every symbol's fetch (see _rest_slot).
        self._rest_paused_until = max(self._rest_paused_until, self.clock.monotonic() + wait)
        return wait

    async def _rest_slot(self, weight: int) -> None:
        """Wait out a 429/418 pause, then take ``weight`` from the budget."""
        while (left := self._rest_paused_until - self.clock.monotonic()) > 0:
            await self.clock.sleep(left)
        await self._weight.take(weight)

    def _install(self, sb: SymbolBook, last_id: int, bids, asks) -> bool:
        """Steps 2-4 (the shared bridge rule, ``bridge.py``), synchronously so no
        event can slip in between. True when LIVE."""
        try:
            sb.book.load(bids, asks)
        except (BookError, TypeError, ValueError, IndexError) as e:
            self.count("snapshot_errors")
            log.warning("binance: bad snapshot for %s: %s", sb.vsym, e)
            sb.book.clear()
            return False
        x = sb.sync
        plan = bridge.bridge(last_id, x.pending, exact=self.bridge_exact)
        if plan.outcome is bridge.Outcome.TOO_OLD:
            # Step 2: the snapshot predates the first event we still hold: fetch again.
            self.count("snapshot_too_old")
            sb.book.clear()
            x.pending = plan.kept
            return False
        if plan.outcome is bridge.Outcome.GAP:
            # The buffer itself lost events: a newer snapshot must cover the hole.
            self.count("gaps")
            sb.book.clear()
            x.pending = plan.kept[plan.gap_at:]
            return False
        sb.seq = last_id
        x.phase = SYNCED
        x.pending = []
        x.straddle = not plan.kept
        last_ev = None
        for p in plan.kept:
            if not self._apply(sb, p.msg, None):
                return True  # _apply already restarted this symbol
            last_ev = p.msg
        self.set_state(sb, BookState.LIVE, "")
        recv_ns = self.clock_ns()
        self.publish(sb, recv_ns, _ms_to_ns(last_ev.get("E")) if last_ev else 0, sb.seq)
        self._check_ticker(sb)
        return True


def _ms_to_ns(ms: Any) -> int:
    return ms * 1_000_000 if isinstance(ms, int) else 0
