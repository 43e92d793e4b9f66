"""First pass over the recordings: connections, their subscriptions, REST answers,
and the time-merged timeline of the lines to replay.

Frames are not kept: a file whose lines are in time order is streamed again
during the replay, so a long recording never has to fit in memory. Several
files are merged by timestamp. Lines of one connection keep their file order;
a file in time order is streamed, one grouped by connection (cryptofeed's
converter writes them so) is split per connection, and a k-way merge takes the
earliest head.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from arbtui.backend.feeds import feed_class
from arbtui.backend.feeds.base import VenueFeed
from arbtui.backend.recording import Damage, Line, RecordingError, RecordingReader
from arbtui.backend.replay.archive import HttpArchive, ns

log = logging.getLogger("arbtui.replay")


@dataclass
class Conn:
    """One recorded WebSocket connection; replayed by its own adapter instance."""

    file: int
    path: str
    conn: str
    venue: str | None
    url: str = ""
    send_addr: str = ""
    n_lines: int = 0
    n_recv: int = 0
    sends: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    cls: type[VenueFeed] | None = None
    symbol_map: dict[str, str] = field(default_factory=dict)
    feed: VenueFeed | None = None
    skip: str = ""
    opened: bool = False
    frames: int = 0
    first_ns: int = 0
    last_recv_ns: int = 0


class ReplayPlan:
    """What the given files hold, read once; ``timeline()`` reads them again."""

    def __init__(self, files: list[str]) -> None:
        self.files = list(files)
        if not self.files:
            raise RecordingError("no recording given")
        self.damage: list[Damage] = []
        self.conns: list[Conn] = []
        self.archives: dict[str, HttpArchive] = {}
        self.headers: list[dict[str, Any]] = []
        self.ordered: list[bool] = []  # per file: non-REST lines in time order (streamable)
        self._read()

    def replayable(self) -> list[Conn]:
        return [c for c in self.conns if not c.skip]

    @property
    def start_ns(self) -> int:
        """Replay time at the start: the first line of any replayed connection."""
        return min((c.first_ns for c in self.replayable()), default=0)

    def _read(self) -> None:
        by_conn: dict[tuple[int, str], Conn] = {}
        for fi, path in enumerate(self.files):
            reader = RecordingReader(path)
            self.headers.append(reader.header)
            ordered, last = True, -math.inf
            for ln in reader:
                if ln.t == "http":
                    if ln.venue is not None:
                        self.archives.setdefault(ln.venue, HttpArchive()).add(ln)
                    continue
                if ln.ts < last:
                    ordered = False
                last = max(last, ln.ts)
                c = by_conn.get((fi, ln.conn))
                if c is None:
                    c = by_conn[(fi, ln.conn)] = Conn(fi, path, ln.conn, ln.venue)
                    c.first_ns = ns(ln.ts)
                c.n_lines += 1
                if ln.t == "connect" and not c.url:
                    c.url = ln.addr or ""
                elif ln.t == "send":
                    c.send_addr = c.send_addr or ln.addr or ""
                    if isinstance(ln.data, str):
                        c.sends.append(ln.data)
                elif ln.t == "recv":
                    c.n_recv += 1
                    c.last_recv_ns = ns(ln.ts)
            self.ordered.append(ordered)
            if reader.damage is not None:
                self.damage.append(reader.damage)
                log.warning("replay: %s", reader.damage)
        classes: dict[str, type[VenueFeed] | None] = {}
        maps: dict[str, dict[str, str]] = {}
        for c in by_conn.values():
            self.conns.append(c)
            c.url = c.url or c.send_addr
            if c.venue is None:
                c.skip = f"no adapter for exchange {c.conn.split('.', 1)[0]!r}"
                continue
            if c.venue not in classes:
                try:
                    classes[c.venue] = feed_class(c.venue)
                except (ModuleNotFoundError, AttributeError, KeyError) as e:
                    log.warning("replay: no adapter for %s (%s)", c.venue, e)
                    classes[c.venue] = None
                if classes[c.venue] is not None:
                    maps[c.venue] = self._symbol_map(c.venue, classes[c.venue])
            cls = classes[c.venue]
            if cls is None:
                c.skip = f"no adapter for {c.venue}"
                continue
            smap = maps[c.venue]
            inv = {v: k for k, v in smap.items()}
            try:
                c.symbols = list(cls.symbols_from_subscribe(c.url, c.sends, inv))
            except Exception as e:  # noqa: BLE001 - a strange subscribe must not stop the replay
                c.skip = f"cannot read its subscriptions: {e!r}"
                continue
            if not c.symbols:
                # e.g. OKX futures/swap-only or Bybit linear connections: no spot books.
                c.skip = "no spot book subscription"
                continue
            c.cls, c.symbol_map = cls, smap
        for c in self.conns:
            if c.skip:
                log.info("replay: %s %s: %s; its %d frames are not replayed", c.path, c.conn,
                         c.skip, c.n_recv)

    def _symbol_map(self, venue: str, cls: type[VenueFeed]) -> dict[str, str]:
        """normalized -> venue symbol: the recorded instrument list, else the map our
        recorder wrote in the header, else the adapter's static table."""
        smap: dict[str, str] = {}
        arch = self.archives.get(venue)
        if arch is not None:
            try:
                cands = arch.matching(cls.instruments_url(""))
            except Exception:  # noqa: BLE001 - an adapter without instrument support
                cands = []
            for r in cands:
                try:
                    smap.update(cls.parse_instruments(r.body))
                except Exception as e:  # noqa: BLE001 - a bad body is only logged
                    log.warning("replay: %s instrument list %s unreadable: %r", venue, r.url, e)
            if not smap:
                # The recorder may have used another endpoint for the same list;
                # any body the adapter's parser accepts is one.
                for r in arch.all:
                    if r in cands:
                        continue
                    try:
                        m = cls.parse_instruments(r.body)
                    except Exception as e:  # noqa: BLE001 - not an instrument list
                        log.debug("replay: %s is not an instrument list (%r)", r.url, e)
                        continue
                    smap.update(m or {})
        for h in self.headers:
            conf = h.get("config") if isinstance(h.get("config"), dict) else {}
            vconf = (conf.get("venues") or {}).get(venue) if isinstance(conf.get("venues"), dict) else None
            hmap = vconf.get("symbol_map") if isinstance(vconf, dict) else None
            if isinstance(hmap, dict):
                for k, v in hmap.items():
                    smap.setdefault(k, v)
        if not smap:
            smap = dict(cls.STATIC_SYMBOLS)
        return smap

    def timeline(self) -> Iterator[tuple[int, int, Line, Conn]]:
        """All replayable lines, merged by time; one connection's lines keep file order.

        A file in time order is streamed. One that is not (cryptofeed's converter
        writes a file connection by connection) is loaded and split per connection,
        each connection being in receive order.
        """
        replayed = {(c.file, c.conn): c for c in self.conns if c.feed is not None}
        streams = []
        src = itertools.count()

        def stream(fi: int, path: str, sid: int) -> Iterator[tuple]:
            for ln in RecordingReader(path):  # damage was reported by the first pass
                c = replayed.get((fi, ln.conn))
                if c is not None and ln.t != "http":
                    yield ns(ln.ts), sid, ln.lineno, ln, c

        def listed(lines: list[Line], c: Conn, sid: int) -> Iterator[tuple]:
            return ((ns(ln.ts), sid, ln.lineno, ln, c) for ln in lines)

        for fi, path in enumerate(self.files):
            if not any(k[0] == fi for k in replayed):
                continue
            if self.ordered[fi]:
                streams.append(stream(fi, path, next(src)))
                continue
            per: dict[str, list[Line]] = {}
            for ln in RecordingReader(path):
                if ln.t != "http" and (fi, ln.conn) in replayed:
                    per.setdefault(ln.conn, []).append(ln)
            for conn, lines in per.items():
                streams.append(listed(lines, replayed[(fi, conn)], next(src)))
        for t, sid, _lineno, ln, c in heapq.merge(*streams, key=lambda x: (x[0], x[1], x[2])):
            yield t, sid, ln, c
