"""Capture live venue sessions as format-2 recordings (``arbtui record``; its command-line
glue is ``arbtui/commands/record.py``).

The live adapters run exactly as in the engine; their ``recorder`` tap
(``feeds/base.py``) writes every connect, subscribe frame, received frame and
REST body, with local timestamps, in the format of ``../shared/recordings``.
Before connecting, each venue's instrument list is fetched and recorded too
(as cryptofeed does), so a replay maps symbols exactly as the live run did;
the map actually used is also written into the header for venues (or the
simulator) without an instrument endpoint.

One venue gives a file whose header names it (``"exchange":"BINANCE"``), like
cryptofeed's. Several venues share one file with ``"exchange":"MULTI"``; every
line's ``conn`` (``BINANCE.ws.1``) names its venue, which is how replay routes it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arbtui import __version__ as _version
from arbtui import venues as venmod
from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.recording import FeedRecorder, RecordingWriter, exchange_of_venue
from arbtui.config import Config
from arbtui.model import BookStatus, Funding, Quote

log = logging.getLogger("arbtui.record")


@dataclass
class RecordResult:
    path: str
    lines: int = 0
    frames: dict[str, int] = field(default_factory=dict)
    quotes: dict[str, int] = field(default_factory=dict)
    symbol_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    feeds: dict[str, VenueFeed] = field(default_factory=dict)


class _CountingRecorder(FeedRecorder):
    def __init__(self, writer: RecordingWriter, venue: str, result: RecordResult) -> None:
        super().__init__(writer, venue)
        self._result = result

    def on_recv(self, data: str | bytes, ts_ns: int) -> None:
        super().on_recv(data, ts_ns)
        self._result.frames[self.venue] = self._result.frames.get(self.venue, 0) + 1


def _fetch(url: str) -> str:
    req = urllib.request.Request(url, headers={"User-Agent": "arbtui"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


async def _instruments(cls: type[VenueFeed], rest: str, venue: str
                       ) -> tuple[dict[str, str] | None, tuple[str, str, float] | None]:
    """The venue's instrument list parsed, and (url, body, ts) to record; None if unavailable."""
    try:
        url = cls.instruments_url(rest)
    except Exception as e:  # noqa: BLE001 - adapter without an instrument endpoint
        log.info("record: %s has no instrument list (%r)", venue, e)
        return None, None
    try:
        body = await asyncio.to_thread(_fetch, url)
    except Exception as e:  # noqa: BLE001 - offline/refused: fall back to the static table
        log.warning("record: %s instrument list %s unavailable: %r", venue, url, e)
        return None, None
    got = (url, body, time.time())
    try:
        smap = cls.parse_instruments(body)
    except Exception as e:  # noqa: BLE001 - a body we cannot parse: static table
        log.warning("record: %s instrument list unreadable: %r", venue, e)
        return None, got
    return (smap or None), got


async def record_session(cfg: Config, venues: list[str], symbols: list[str] | None,
                         duration: float | None, out: str, *,
                         urls: dict[str, tuple[str, str]] | None = None,
                         symbol_maps: dict[str, dict[str, str]] | None = None,
                         on_quote: Callable[[Quote], None] | None = None,
                         on_state: Callable[[BookStatus], None] | None = None,
                         on_funding: Callable[[Funding], None] | None = None,
                         stop: asyncio.Event | None = None) -> RecordResult:
    """Run the live adapters of ``venues`` for ``duration`` seconds (or until ``stop``)
    and record them into ``out``. ``urls`` overrides (ws, rest) per venue (the
    simulator); ``symbol_maps`` skips the instrument-list fetch for those venues."""
    result = RecordResult(out)
    classes = {v: feed_class(v) for v in venues}
    # A spot venue records the spot symbols, a perp venue the -PERP ones.
    per_venue_syms = {v: [s for s in symbols if venmod.get(v).serves(s)] if symbols
                      else list(cfg.venues[v].symbols) if v in cfg.venues else [] for v in venues}
    exchange = exchange_of_venue(venues[0]) if len(venues) == 1 else "MULTI"
    header_cfg: dict[str, Any] = {"venues": {}}
    extra: dict[str, Any] = {"producer": f"arbtui {_version}"}
    if len(venues) > 1:
        extra["exchanges"] = [exchange_of_venue(v) for v in venues]
    feeds: dict[str, VenueFeed] = {}
    tasks: list[asyncio.Task] = []
    fetched: list[tuple[str, tuple[str, str, float]]] = []
    for v in venues:
        cls = classes[v]
        vc = cfg.venues.get(v)
        url, rest = (urls or {}).get(v, ("", ""))
        url = url or (vc.url if vc else "") or cls.default_url
        rest = rest or (vc.rest_url if vc else "") or cls.default_rest
        smap = (symbol_maps or {}).get(v)
        # An overridden endpoint without REST (a simulator venue) has no list to
        # fetch; never fall through to the venue's public host.
        no_rest = urls is not None and v in urls and not urls[v][1]
        if smap is None and not no_rest:
            smap, got = await _instruments(cls, rest, v)
            if got is not None:
                fetched.append((v, got))
        if smap is None:
            smap = dict(cls.STATIC_SYMBOLS)
        result.symbol_maps[v] = smap

        def emit(q: Quote, _v: str = v) -> None:
            result.quotes[_v] = result.quotes.get(_v, 0) + 1
            if on_quote is not None:
                on_quote(q)

        feed = cls(per_venue_syms[v], emit, url=url, rest_url=rest,
                   depth=vc.depth if vc else 1000, quote_depth=cfg.quote_depth,
                   symbol_map=smap)
        for s in feed.unknown_symbols:
            log.warning("record: %s has no symbol %s; not recorded", v, s)
        feed.on_book_state = on_state
        feed.on_funding = on_funding
        feeds[v] = feed
        # The map actually used, for replays of venues (or the simulator) whose
        # recording holds no instrument list.
        header_cfg["venues"][v] = {
            "symbols": list(feed.books),
            "symbol_map": {s: sb.vsym for s, sb in feed.books.items()},
            "url": feed.url, "rest_url": feed.rest_url, "depth": feed.depth}
    writer = RecordingWriter(out, exchange, header_cfg, extra=extra)
    try:
        for v, (iurl, body, ts) in fetched:
            writer.http(f"{exchange_of_venue(v)}.http.1", iurl, body, ts)
        for v, feed in feeds.items():
            feed.recorder = _CountingRecorder(writer, v, result)
            tasks.append(asyncio.get_running_loop().create_task(feed.run(), name=f"record:{v}"))
        result.feeds = feeds
        waiter = stop or asyncio.Event()
        try:
            await asyncio.wait_for(waiter.wait(), duration)
        except TimeoutError:
            pass
    finally:
        for feed in feeds.values():
            try:
                await asyncio.wait_for(feed.stop(), 2)
            except Exception:  # noqa: BLE001, S110 - shutting down anyway
                pass
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for feed in feeds.values():
            for t in list(feed._tasks):
                t.cancel()
        result.lines = writer.lines
        writer.close()
    return result
