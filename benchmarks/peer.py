"""The peer: arbtui's adapters beside cryptofeed's feed classes on the same frames.

cryptofeed (bmoscon/cryptofeed) is the open-source feed handler the shared
recordings were made with, so it is the natural yardstick for the per-frame
cost of "decode a venue frame and keep the book". It builds C extensions from
source, so it is an optional extra (``pip install -e '.[peer]'``); without it
this benchmark is skipped with one line.

One driver for both: every run is a ``ReplayEngine`` replay of the recording,
as ``arbtui replay`` drives the adapters (virtual clock, REST answers from the
recording, the same connection split). What is timed, per frame, is only the
handler, in this thread's CPU time minus the clock's own cost:

- arbtui: the real adapter's ``feed_frame(data, recv_ns)``, with everything it
  does live (the venue's sequence/checksum/crossed-book rules, the exact book
  with its depth cap, a top-10 quote per change of the quoted levels); its
  quote sink is a no-op counter, and the process runs under arbtui's GC policy
  (``tune_gc``) as every arbtui mode does;
- cryptofeed: in a separate replay of the same file, the same frame at the same
  point goes to ``feed.message_handler(data, conn, ts)`` of its feed class for
  the venue instead (built with ``subscription={L2_BOOK: symbols}``, its
  ``subscribe`` run against a connection that writes nowhere, REST reads served
  from the recording; the coroutine runs to completion in place, which is what
  ``await`` does). Two modes:

  * ``defaults``: unlimited depth, no checksum, no cross check, a no-op book
    callback (what cryptofeed does if the user reads nothing);
  * ``top``: the callback reads the best bid and ask (``book.bids.index(0)``,
    ``book.asks.index(0)``) as arbtui does for every change: what a user of
    cryptofeed who wants the top of book per frame pays.

REST snapshots are nobody's frame work: arbtui fetches and installs them in a task
outside ``feed_frame``; cryptofeed awaits its ``_snapshot`` inside the handler of a
symbol's first update, so each such call is timed apart and taken off that frame
(``_time_rest_snapshots``; the loads are listed under the table).

Frames: every received frame of the connections arbtui replays; the headline
figure is *book-update frames per second of handler time* (snapshots and
other channels are handled by both, timed, and left out of that figure,
because one 5 MB Coinbase snapshot would otherwise dominate it). Repeats are
alternated (arbtui, cryptofeed defaults, cryptofeed top, arbtui, ...) so
machine load hits all three alike; figures are medians and [min–max].

Tops: after each run, each symbol's 10 best levels a side (price and size) of
both libraries are compared as decimals; any difference is reported.
cryptofeed 2.4.1 reads Coinbase Advanced Trade snapshot asks only when
``side == "ask"``, but the venue sends ``"offer"``: its Coinbase books have no
asks until updates add some — counted as its disagreement, not a match.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
import urllib.parse
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from benchmarks import micro, stats

#: arbtui venue -> cryptofeed exchange id. Only venues whose wire protocol both
#: speak as recorded; the others are listed with the reason in NOT_COMPARABLE.
CRYPTOFEED_ID = {
    "binance": "BINANCE", "bitfinex": "BITFINEX", "bybit": "BYBIT", "coinbase": "COINBASE",
    "gate": "GATEIO", "gemini": "GEMINI", "kucoin": "KUCOIN",
    "okx": "OKX",
}
#: Venues arbtui speaks whose book feed cryptofeed 2.4.1 reads from another channel,
#: so the same frames cannot go through both.
NOT_COMPARABLE = {
    "kraken": "cryptofeed 2.4.1 speaks Kraken's v1 WebSocket; arbtui and its simulator v2",
    "bitstamp": "cryptofeed reads `diff_order_book` + REST snapshot; arbtui `order_book` "
                "(full top-100 each frame)",
    "htx": "cryptofeed reads `depth.step0` (full snapshots); arbtui `mbp.150` increments",
    "cryptocom": "cryptofeed 2.4.1 logs the `book.update` deltas as invalid and keeps the first "
                 "snapshot",
}

MODES = ("defaults", "top")
#: Levels a side compared at the end of a run.
TOP_N = 10


def available() -> str | None:
    """None when cryptofeed can be imported, else why not (one line)."""
    try:
        import cryptofeed  # noqa: F401
        from cryptofeed.exchanges import EXCHANGE_MAP  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not installed here"
        return (f"cryptofeed not installed ({type(e).__name__}); "
                "`python -m pip install -e '.[peer]'` (builds C extensions: needs a compiler)")
    return None


def is_update(venue: str, data) -> bool:
    """A book-update (not snapshot) frame: the frames the headline figure counts."""
    if isinstance(data, bytes):
        return False
    v = micro._is_l2_update(venue, data)
    if v is not None:
        if venue == "gemini":  # the first l2_updates of a symbol is its snapshot
            return v and '"trades"' not in data and len(data) < 4000
        return v
    if venue == "bitfinex":  # [chan,[px,count,amount]]; a snapshot is [chan,[[...],...]]
        i = data.find(",") + 1
        return data.startswith("[") and data.startswith("[", i) and not data.startswith("[[", i)
    if venue == "kucoin":
        return '"trade.l2update"' in data
    if venue == "gate":
        return '"spot.order_book_update"' in data and '"event":"update"' in data
    if venue == "cryptocom":
        return '"book.update"' in data
    return False


# ---------------------------------------------------------------------- the recording


class Source:
    """One recording, read once: per venue the replayed frames, symbols and REST bodies."""

    def __init__(self, name: str, path: str) -> None:
        from arbtui.backend.recording import RecordingReader
        from arbtui.backend.replay.plan import ReplayPlan

        self.name, self.path = name, path
        plan = ReplayPlan([path])
        keep = {c.conn: c for c in plan.replayable()}
        self.symbols: dict[str, dict[str, str]] = defaultdict(dict)  # venue -> norm -> vsym
        for c in keep.values():
            for s in c.symbols:
                if s in c.symbol_map:
                    self.symbols[c.venue][s] = c.symbol_map[s]
        self.frames: dict[str, list[tuple[object, float, bool]]] = defaultdict(list)
        self.http: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.url = {c.venue: c.url for c in keep.values()}
        for ln in RecordingReader(path):
            if ln.t == "http" and ln.venue and isinstance(ln.data, str):
                self.http[ln.venue].append((ln.url or "", ln.data))
            elif ln.t == "recv" and ln.conn in keep:
                v = keep[ln.conn].venue
                self.frames[v].append((ln.data, ln.ts, is_update(v, ln.data)))

    def venues(self) -> list[str]:
        return sorted(v for v in self.frames if v in CRYPTOFEED_ID and self.symbols.get(v))


# ---------------------------------------------------------------------- arbtui side


async def _arbtui_run(path: str) -> tuple[dict[str, dict], dict[str, dict[str, tuple]]]:
    """micro._replay_timed's harness, with this benchmark's update rule and the end tops."""
    from arbtui import config as configmod
    from arbtui.backend.replay import ReplayEngine

    cfg = configmod.load(None, use_user=False)
    eng = ReplayEngine(cfg, [path], speed=0, roles=("feed",),
                       journal_path=str(Path(tempfile.gettempdir()) / "arbtui-peer.sqlite"))
    await eng.start()
    # As every arbtui mode runs (arbtui.headless, the dashboard, the roles): startup
    # objects frozen out of the collector, young collections rarer. cryptofeed runs
    # at its own defaults (it sets no policy).
    from arbtui.backend.gcpolicy import tune_gc

    restore_gc = tune_gc()
    acc: dict[str, dict] = {}
    perf, over = _clock()
    quotes = [0]

    def emit(q, _n=quotes):  # the consumer is not the adapter: as cryptofeed's no-op callback
        _n[0] += 1

    for c in eng.conns:
        if c.feed is None:
            continue
        c.feed.emit = emit
        a = acc.setdefault(c.venue or "?", {"frames": 0, "ns": 0, "upd": 0, "upd_ns": 0,
                                            "errors": 0})
        orig = c.feed.feed_frame

        def timed(data, recv_ns, _orig=orig, _a=a, _v=c.venue):
            upd = is_update(_v, data)
            t = perf()
            _orig(data, recv_ns)
            dt = perf() - t - over
            _a["frames"] += 1
            _a["ns"] += dt
            if upd:
                _a["upd"] += 1
                _a["upd_ns"] += dt

        c.feed.feed_frame = timed
    try:
        ok = await eng.wait_finished(300)
    finally:
        restore_gc()
    tops: dict[str, dict[str, tuple]] = defaultdict(dict)
    for c in eng.conns:
        if c.feed is None:
            continue
        acc[c.venue]["errors"] += (c.feed.counters.get("frame_errors", 0)
                                   + c.feed.counters.get("resyncs", 0))
        for s, sb in c.feed.books.items():
            tops[c.venue][s] = (tuple(map(_dec, sb.book.top_bids(TOP_N))),
                                tuple(map(_dec, sb.book.top_asks(TOP_N))))
    await eng.stop()
    if not ok:
        raise TimeoutError(f"arbtui replay of {path} did not finish")
    return acc, tops


#: "cpu" (default): this thread's CPU time per frame, so the ~8 other sessions sharing
#: the 2 cores do not count; "wall": perf_counter. Either way the clock's own cost
#: (median of back-to-back reads, ~0.6 µs for the CPU clock) is subtracted.
CLOCK = "cpu"


def _clock():
    fn = time.thread_time_ns if CLOCK == "cpu" else time.perf_counter_ns
    d = []
    for _ in range(2001):
        a = fn()
        d.append(fn() - a)
    d.sort()
    return fn, d[len(d) // 2]


def _dec(level) -> tuple[Decimal, Decimal] | None:
    return None if level is None else (Decimal(str(level[0])), Decimal(str(level[1])))


# ---------------------------------------------------------------------- cryptofeed side


class _NullConn:
    """Where cryptofeed's ``subscribe`` writes: nowhere (the frames are recorded)."""

    def __init__(self, real) -> None:
        self.conn_type = "wss"
        self.uuid = getattr(real, "uuid", "peer")
        self.subscription = getattr(real, "subscription", {})
        self.id = getattr(real, "id", "peer")
        self.address = getattr(real, "address", "")
        self.sent: list = []

    async def write(self, data) -> None:
        self.sent.append(data)

    async def read(self):  # pragma: no cover - never called: frames are handed over
        return
        yield


def _key(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    q = "&".join(sorted(f"{k}={v}" for k, v in urllib.parse.parse_qsl(u.query)))
    return f"{u.path}?{q}"


#: cryptofeed asks for another path than arbtui for the same REST answer: ours -> theirs.
#: KuCoin: its authenticated full book; the simulator serves arbtui's public top 100.
_REST_ALIASES = (("/api/v1/market/orderbook/level2_100?", "/api/v3/market/orderbook/level2?"),)

#: cryptofeed 2.4.1 signs some public subscriptions and snapshot requests (Coinbase
#: Advanced Trade, KuCoin) and needs *some* key to build them; nothing is sent anywhere.
_CF_CONFIG = {"log": {"filename": "/dev/null", "level": "CRITICAL"}, "uvloop": False,
              "coinbase": {"key_id": "peer", "key_secret": "peer"},
              "kucoin": {"key_id": "peer", "key_secret": "peer", "key_passphrase": "peer"}}


class _Rest:
    """Recorded REST bodies by path+query (hosts differ: simulator vs venue)."""

    def __init__(self, bodies: list[tuple[str, str]]) -> None:
        self.by: dict[str, list[str]] = defaultdict(list)
        for url, body in bodies:
            k = _key(url)
            self.by[k].append(body)
            for ours, theirs in _REST_ALIASES:
                if k.startswith(ours):
                    self.by[theirs + k[len(ours):]].append(body)
        self.served = 0
        self.missing: list[str] = []

    def get(self, url: str) -> str | None:
        lst = self.by.get(_key(url))
        if not lst:
            self.missing.append(url)
            return None
        self.served += 1
        return lst.pop(0) if len(lst) > 1 else lst[0]


def _patch_http(rest: _Rest):
    """Serve cryptofeed's REST reads from the recording; returns the undo."""
    import json as _json

    from cryptofeed.connection import HTTPAsyncConn, HTTPSync

    sync_read, async_read, sync_write = HTTPSync.read, HTTPAsyncConn.read, HTTPSync.write

    def read_sync(self, address, params=None, headers=None, json=False, text=True, uuid=None):
        body = rest.get(address)
        if body is None:
            raise ConnectionError(f"not recorded: {address}")
        return _json.loads(body) if json else body

    async def read_async(self, address, header=None, params=None, return_headers=False,
                         retry_count=0, retry_delay=60):
        body = rest.get(address)
        if body is None:
            raise ConnectionError(f"not recorded: {address}")
        return (body, {}) if return_headers else body

    def write_sync(self, address, data=None, json=False, text=True, uuid=None,
                   is_data_json=False):
        if address.endswith("/bullet-public"):  # KuCoin's connection token: any will do
            return {"data": {"token": "peer", "instanceServers": [
                {"endpoint": "wss://peer.invalid", "pingInterval": 18000}]}}
        raise ConnectionError(f"not recorded: POST {address}")

    HTTPSync.read, HTTPAsyncConn.read, HTTPSync.write = read_sync, read_async, write_sync

    def undo():
        HTTPSync.read, HTTPAsyncConn.read, HTTPSync.write = sync_read, async_read, sync_write

    return undo


def _cf_symbols(cls, venue: str, norm_to_vsym: dict[str, str]) -> dict[str, str]:
    """cryptofeed's own instrument table from the recorded list when there is one
    (real recordings: cryptofeed recorded it), else our symbols as spot pairs
    (the simulator serves no instrument list). Returns norm -> cryptofeed std symbol."""
    from cryptofeed.symbols import Symbols

    try:
        cls.symbol_mapping(refresh=True)
        std_of = {ex: std for std, ex in Symbols.get(cls.id)[0].items()}
        if all(v in std_of for v in norm_to_vsym.values()):
            return {n: std_of[v] for n, v in norm_to_vsym.items()}
    except Exception as e:  # noqa: BLE001 - not recorded: build the table below
        logging.getLogger("benchmarks.peer").debug("%s: no recorded instrument list (%r)",
                                                   venue, e)
    # cryptofeed's Bybit tells spot from perps by a slash in the spot symbol ("BTC/USDT").
    table = {n: (n.replace("-", "/") if venue == "bybit" else v) for n, v in norm_to_vsym.items()}
    Symbols.set(cls.id, table, {"instrument_type": {n: "spot" for n in table},
                                "tick_size": {}, "channels": {}})
    return {n: n for n in norm_to_vsym}


async def _cf_feed(src: Source, venue: str, mode: str):
    """cryptofeed's feed for ``venue``, subscribed; returns (feed, conn, handler, std)."""
    from cryptofeed.defines import L2_BOOK
    from cryptofeed.exchanges import EXCHANGE_MAP

    cls = EXCHANGE_MAP[CRYPTOFEED_ID[venue]]
    std = _cf_symbols(cls, venue, src.symbols[venue])
    if mode == "top":
        async def cb(book, receipt_ts):
            b, a = book.book.bids, book.book.asks
            if len(b) and len(a):
                b.index(0)
                a.index(0)
    else:
        async def cb(book, receipt_ts):
            pass
    feed = cls(subscription={L2_BOOK: list(std.values())}, callbacks={L2_BOOK: cb},
               config=_CF_CONFIG)
    handlers = []
    for conn, sub, handler, _auth in feed.connect():
        nc = _NullConn(conn)
        await sub(nc)
        handlers.append((nc, handler))
    if not handlers:
        raise RuntimeError("cryptofeed built no connection")
    # Venues with one endpoint per market (Bybit spot/linear): the recorded one.
    path = urllib.parse.urlsplit(src.url.get(venue, "")).path.rstrip("/")
    conn, handler = next((h for h in handlers if path and urllib.parse.urlsplit(
        h[0].address).path.rstrip("/") == path), handlers[0])
    return feed, conn, handler, std


async def _cf_run(src: Source, mode: str) -> tuple[dict[str, dict], dict[str, dict]]:
    """One replay of the recording in which every compared venue's frames go to
    cryptofeed's handler instead of ours: the same driver, clock and frames as
    ``_arbtui_run``, so only the handler differs. cryptofeed's handlers are
    coroutines; with REST served from memory they never suspend, so each is run
    to completion in place (``send(None)``), which is what ``await`` does."""
    from cryptofeed.symbols import Symbols

    from arbtui import config as configmod
    from arbtui.backend.replay import ReplayEngine

    rest = _Rest([b for v in src.http.values() for b in v])
    undo = _patch_http(rest)
    Symbols.clear()
    try:
        feeds: dict[str, tuple] = {}
        failed: dict[str, str] = {}
        for v in src.venues():
            try:
                feeds[v] = await _cf_feed(src, v, mode)
            except Exception as e:  # noqa: BLE001 - one venue must not lose the rest
                failed[v] = f"{type(e).__name__}: {str(e)[:200]}"
        cfg = configmod.load(None, use_user=False)
        eng = ReplayEngine(cfg, [src.path], speed=0, roles=("feed",),
                           journal_path=str(Path(tempfile.gettempdir()) / "arbtui-peer.sqlite"))
        await eng.start()
        perf, over = _clock()
        acc: dict[str, dict] = {}
        for c in eng.conns:
            if c.feed is None or c.venue not in feeds:
                continue
            _feed, conn, handler, _std = feeds[c.venue]
            a = acc.setdefault(c.venue, {"frames": 0, "ns": 0, "upd": 0, "upd_ns": 0,
                                         "errors": 0, "first_error": "", "suspended": 0,
                                         "rest_n": 0, "rest_ns": 0})
            _time_rest_snapshots(_feed, a, perf, over)

            def timed(data, recv_ns, _h=handler, _c=conn, _a=a, _v=c.venue):
                upd = is_update(_v, data)
                ts = recv_ns / 1e9
                rest0 = _a["rest_ns"]
                t = perf()
                try:
                    _h(data, _c, ts).send(None)
                except StopIteration:
                    dt = perf() - t - over
                except Exception as e:  # noqa: BLE001 - counted; cryptofeed's own loop logs and goes on
                    dt = perf() - t - over
                    _a["errors"] += 1
                    _a["first_error"] = _a["first_error"] or f"{type(e).__name__}: {str(e)[:120]}"
                else:  # it awaited something real: not measurable this way
                    dt = perf() - t - over
                    _a["suspended"] += 1
                # A REST snapshot load run inside this frame's handler is not the
                # frame's work: arbtui loads its REST snapshots in a task outside
                # feed_frame (see _time_rest_snapshots).
                dt -= _a["rest_ns"] - rest0
                _a["frames"] += 1
                _a["ns"] += dt
                if upd:
                    _a["upd"] += 1
                    _a["upd_ns"] += dt

            c.feed.feed_frame = timed
        ok = await eng.wait_finished(300)
        await eng.stop()
        if not ok:
            raise TimeoutError(f"replay of {src.path} did not finish")
        tops: dict[str, dict] = {}
        for v, (feed, _c, _h, std) in feeds.items():
            tops[v] = {n: _cf_top(feed._l2_book.get(s)) for n, s in std.items()}
            acc.setdefault(v, {})["rest_missing"] = len(rest.missing)
        for v, why in failed.items():
            acc[v] = {"failed": why}
        return acc, tops
    finally:
        undo()
        Symbols.clear()


def _time_rest_snapshots(feed, box: dict, perf, over: int) -> None:
    """Time cryptofeed's REST snapshot loads (``_snapshot``: HTTP read, JSON parse,
    book build, book callback) apart from the frame that triggers them.

    cryptofeed awaits the REST book inside ``message_handler`` of the first update
    of a symbol (Binance, Gate, KuCoin), so that update frame's handler time held
    the whole snapshot load: on the Binance 2021 recording, ~73 % of cryptofeed's
    update-frame time (a 1000-level snapshot parsed into Decimals). arbtui fetches
    and installs its REST snapshots in a task (``_sync``/``_install``), outside
    ``feed_frame``, so that work was never on arbtui's clock. Both sides now leave
    it out of the frame figures; the load is counted in ``rest_n``/``rest_ns``.
    Each load's interval plus one clock read (the inner pair's share, ``over``)
    is taken off the enclosing frame."""
    orig = getattr(feed, "_snapshot", None)
    if orig is None or not asyncio.iscoroutinefunction(orig):
        return

    async def snapshot(*a, **kw):
        t = perf()
        try:
            return await orig(*a, **kw)
        finally:
            box["rest_ns"] += perf() - t + over
            box["rest_n"] += 1

    feed._snapshot = snapshot


def _cf_top(ob) -> tuple:
    if ob is None:
        return ((), ())
    b, a = ob.book.bids, ob.book.asks
    return (tuple(_dec(b.index(i)) for i in range(min(TOP_N, len(b)))),
            tuple(_dec(a.index(i)) for i in range(min(TOP_N, len(a)))))


# ---------------------------------------------------------------------- the benchmark


def sources(sim_seconds: float, tmp: str, sim: list[str] | None = None) -> list[tuple[str, str]]:
    out = [(p.name, str(p)) for p in micro.recordings()]
    venues = sim or sorted(CRYPTOFEED_ID)
    try:
        # USDT pairs: cryptofeed's Bybit finds spot books by a known quote currency,
        # and USD is not one of them.
        out.append((f"simulator ({sim_seconds:g} s)",
                    micro.record_sim(venues, sim_seconds, tmp, "BTC-USDT,ETH-USDT")))
    except (RuntimeError, OSError) as e:
        print(f"  (simulator recording failed: {e})", file=sys.stderr)
    return out


def run(repeats: int = 5, sim_seconds: float = 20.0, only: list[str] | None = None,
        files: list[tuple[str, str]] | None = None) -> dict:
    """Every (source, venue) both speak: alternated repeats of arbtui / cf defaults / cf top."""
    logging.getLogger("feedhandler").setLevel(logging.CRITICAL)
    tmp = tempfile.mkdtemp(prefix="arbtui-peer-")
    srcs = files if files is not None else sources(sim_seconds, tmp)
    rows: list[dict] = []
    for name, path in srcs:
        src = Source(name, path)
        venues = [v for v in src.venues() if not only or v in only]
        if not venues:
            continue
        per: dict[str, dict[str, list]] = {v: {"arbtui": [], "defaults": [], "top": []}
                                           for v in venues}
        tops: dict[str, dict] = {v: {} for v in venues}
        for k in range(repeats):
            acc, at = asyncio.run(_arbtui_run(path))
            for v in venues:
                per[v]["arbtui"].append(acc.get(v))
                tops[v]["arbtui"] = at.get(v, {})
            for mode in MODES:
                try:
                    cacc, ct = asyncio.run(_cf_run(src, mode))
                except Exception as e:  # noqa: BLE001 - the arbtui figures still stand
                    cacc, ct = {v: {"failed": f"{type(e).__name__}: {str(e)[:200]}"}
                                for v in venues}, {}
                for v in venues:
                    per[v][mode].append(cacc.get(v) or {"failed": "no frames"})
                    tops[v][mode] = ct.get(v, {})
            print(f"  peer {name}: repeat {k + 1}/{repeats} done", file=sys.stderr, flush=True)
        for v in venues:
            rows.append(_row(name, v, per[v], tops[v], src))
    return {"rows": rows, "not_comparable": NOT_COMPARABLE, "cryptofeed": _cf_version()}


def _cf_version() -> str:
    try:
        from importlib.metadata import version

        return version("cryptofeed")
    except Exception:  # noqa: BLE001
        return "?"


def _rate(runs: list, key_n: str = "upd", key_ns: str = "upd_ns") -> list[float]:
    return [r[key_n] / (r[key_ns] / 1e9) for r in runs if r and r.get(key_ns)]


def _row(name: str, venue: str, per: dict, tops: dict, src: Source) -> dict:
    a = [r for r in per["arbtui"] if r]
    row = {"source": name, "venue": venue, "frames": len(src.frames[venue]),
           "upd_frames": sum(1 for f in src.frames[venue] if f[2]),
           "arbtui": _rate(a), "arbtui_all": _rate(a, "frames", "ns"),
           "arbtui_errors": a[0]["errors"] if a else None,
           # frames each handler was given in a run: the same frames for both sides
           "arbtui_seen": (a[0]["frames"], a[0]["upd"]) if a else None}
    for mode in MODES:
        rs = per[mode]
        failed = [r["failed"] for r in rs if "failed" in r]
        ok = [r for r in rs if "failed" not in r]
        row[mode] = _rate(ok)
        row[mode + "_all"] = _rate(ok, "frames", "ns")
        row[mode + "_failed"] = failed[0] if failed else ""
        row[mode + "_errors"] = ok[0].get("errors") if ok else None
        row[mode + "_first_error"] = ok[0].get("first_error", "") if ok else ""
        row[mode + "_suspended"] = ok[0].get("suspended", 0) if ok else 0
        row[mode + "_seen"] = (ok[0].get("frames"), ok[0].get("upd")) if ok else None
        # cryptofeed's REST snapshot loads, taken off the frames that ran them (per run)
        row[mode + "_rest"] = ((ok[0].get("rest_n", 0),
                                stats.spread([r.get("rest_ns", 0) / 1e6 for r in ok])["median"])
                               if ok else (0, 0.0))
    row["tops"] = _compare(tops.get("arbtui", {}), tops.get("defaults", {}), venue)
    return row


def _compare(ours: dict, theirs: dict, venue: str) -> list[str]:
    """Each symbol whose top ``TOP_N`` levels a side differ at the end, in words
    (an empty list: every level of every symbol agrees, price and size)."""
    out = []
    for s in sorted(set(ours) | set(theirs)):
        a, b = ours.get(s, ((), ())), theirs.get(s, ((), ()))
        what = []
        for side, i in (("bids", 0), ("asks", 1)):
            x, y = a[i], b[i]
            if x == y:
                continue
            k = next((j for j in range(max(len(x), len(y)))
                      if j >= len(x) or j >= len(y) or x[j] != y[j]), 0)
            what.append(f"{side} differ from level {k + 1}: arbtui "
                        f"{_lvl(x[k] if k < len(x) else None)} vs cryptofeed "
                        f"{_lvl(y[k] if k < len(y) else None)} ({len(x)} vs {len(y)} levels)")
        if what:
            out.append(f"{s}: " + "; ".join(what))
    return out


def _lvl(x) -> str:
    return "none" if x is None else f"{x[0]}×{x[1]}"


def table(res: dict) -> list[str]:
    """The markdown of one run: per source and venue, both modes."""
    md = [(f"cryptofeed {res['cryptofeed']}; book-update frames per second of handler time, "
           "median [min–max] over alternated repeats; ratio = arbtui ÷ cryptofeed (medians)."), "",
          ("| source | venue | frames (updates) | arbtui upd/s | cryptofeed defaults upd/s | "
           "ratio | cryptofeed + top read upd/s | ratio | tops at the end |"),
          "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        a = stats.spread(r["arbtui"])
        cells = []
        for mode in MODES:
            if r[mode + "_failed"] and not r[mode]:
                cells += [f"failed: {r[mode + '_failed']}", ""]
                continue
            s = stats.spread(r[mode])
            ratio = a["median"] / s["median"] if s["n"] and a["n"] else float("nan")
            err = f" ({r[mode + '_errors']} handler errors)" if r[mode + "_errors"] else ""
            cells += [stats.fmt(s) + err, f"{ratio:.2f}×"]
        tops = "same" if not r["tops"] else "; ".join(r["tops"])
        md.append(f"| {r['source']} | {r['venue']} | {r['frames']} ({r['upd_frames']}) | "
                  f"{stats.fmt(a)} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | "
                  f"{tops} |")
    errs = [r for r in res["rows"] if any(r[m + "_first_error"] for m in MODES)]
    if errs:
        md.append("")
        for r in errs:
            md.append(f"- cryptofeed errors, {r['source']} {r['venue']}: "
                      f"{r['defaults_first_error'] or r['top_first_error']}")
    rest = [r for r in res["rows"] if r.get("defaults_rest", (0, 0))[0]]
    if rest:
        md.append("")
        md.append("- Left out of cryptofeed's update figures (as arbtui's, which run in a task "
                  "outside `feed_frame`): REST snapshot loads awaited inside its handler — "
                  + "; ".join(f"{r['source']} {r['venue']}: {r['defaults_rest'][0]} loads, "
                              f"{r['defaults_rest'][1]:.2f} ms a run" for r in rest) + ".")
    md.append("")
    md += [f"- Not compared: {v} — {why}." for v, why in res["not_comparable"].items()]
    return md
