"""Loopback venue servers driven by the market model.

``SimHub`` steps the ``MarketModel`` every ``tick_ms`` and wakes every venue
server. Each venue module (``sim/binance.py`` ...) subclasses ``SimVenue`` and
speaks that venue's real public wire format on a real WebSocket server bound
to 127.0.0.1 on an ephemeral port (plus a tiny HTTP server where the venue
needs REST, e.g. Binance depth snapshots). Faults are injected per venue, from
config on a schedule or from tests with ``inject(kind)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from arbtui.backend.sim.market import MarketModel, VenueBook, diff, serves

log = logging.getLogger("arbtui.sim")

FAULTS = ("drop", "gap", "checksum", "malformed", "silence", "crossed", "snapshot", "refuse")


class SimHub:
    def __init__(self, model: MarketModel) -> None:
        self.model = model
        self.cond = asyncio.Condition()
        self.prev: dict[tuple[str, str], VenueBook] = dict(model.books)
        self.changes: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.model.tick_ms / 1000.0
        nxt = loop.time()
        while True:
            nxt += period
            await asyncio.sleep(max(0.0, nxt - loop.time()))
            self.prev = dict(self.model.books)
            self.model.step()
            self.changes = {k: diff(self.prev[k], b) for k, b in self.model.books.items()}
            async with self.cond:
                self.cond.notify_all()

    async def wait_tick(self) -> int:
        async with self.cond:
            await self.cond.wait()
        return self.model.tick


class HttpServer:
    """Minimal HTTP/1.1 GET server on loopback for venue REST endpoints."""

    def __init__(self, handler: Callable[[str], Awaitable[tuple[int, str]]]) -> None:
        self.handler = handler
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.requests: list[str] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("latin-1")
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.split()
            path = parts[1] if len(parts) >= 2 else "/"
            self.requests.append(path)
            status, body = await self.handler(path)
            data = body.encode()
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'ERR'}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                f"Connection: close\r\n\r\n".encode() + data
            )
            await writer.drain()
        except Exception as e:  # noqa: BLE001 - a broken client must not kill the sim
            log.debug("sim http: %r", e)
        finally:
            writer.close()


class SimVenue:
    """One simulated venue. Subclasses implement ``handle(ws)`` in the venue's protocol."""

    venue: ClassVar[str] = "?"
    needs_http: ClassVar[bool] = False
    #: How long the "silence" fault stalls the stream (tests shorten it).
    silence_s: float = 60.0

    def __init__(self, hub: SimHub, symbols: list[str], *, seed: int = 7,
                 faults: list[str] | None = None, fault_every_s: float = 5.0) -> None:
        self.hub = hub
        # A spot venue quotes the spot symbols, a perp venue the -PERP ones.
        self.symbols = [s for s in symbols if serves(self.venue, s)]
        self.rng = random.Random(seed ^ zlib.crc32(self.venue.encode()))
        self.ws_server: Any = None
        self.http: HttpServer | None = None
        self.port = 0
        self.pending_faults: list[str] = []
        self.scheduled_faults = list(faults or [])
        self.fault_every_s = fault_every_s
        self.refusing = False
        self.connections: set[Any] = set()
        self.connects = 0
        self.sent_frames = 0
        self._fault_task: asyncio.Task | None = None
        self._background: list[asyncio.Task] = []

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        import websockets

        self.ws_server = await websockets.serve(
            self._handler, "127.0.0.1", 0, max_size=2 ** 24, compression=None,
            process_request=self._process_request,
        )
        self.port = self.ws_server.sockets[0].getsockname()[1]
        if self.needs_http:
            self.http = HttpServer(self.http_get)
            await self.http.start()
        if self.scheduled_faults:
            self._fault_task = asyncio.get_running_loop().create_task(self._fault_loop())

    async def stop(self) -> None:
        for t in self._background:
            t.cancel()
        if self._fault_task:
            self._fault_task.cancel()
        if self.ws_server:
            self.ws_server.close()
            await self.ws_server.wait_closed()
        if self.http:
            await self.http.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.ws_path}"

    ws_path: ClassVar[str] = "/"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http.port}" if self.http else ""

    def _process_request(self, connection, request):
        if self.refusing:
            return connection.respond(503, "refusing connections\n")
        return None

    async def _handler(self, ws) -> None:
        self.connects += 1
        self.connections.add(ws)
        # A venue handler that waits on its own queue never notices the client left;
        # websockets' server.wait_closed() waits for every handler, so stop() (and the
        # dashboard's quit) would hang. The handler never outlives its connection.
        handle = asyncio.ensure_future(self.handle(ws))
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            await asyncio.wait({handle, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not handle.done():
                handle.cancel()
            closed.cancel()
            (res,) = await asyncio.gather(handle, return_exceptions=True)
            if isinstance(res, Exception):  # client went away or sent garbage
                log.debug("%s sim: connection ended: %r", self.venue, res)
            self.connections.discard(ws)

    # ------------------------------------------------------------- faults

    def inject(self, kind: str) -> None:
        """Queue a fault; the venue's stream applies it at the next opportunity."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; allowed: {', '.join(FAULTS)}")
        if kind == "refuse":
            self.refusing = not self.refusing
            return
        self.pending_faults.append(kind)

    def take_fault(self, *kinds: str) -> str | None:
        for k in kinds:
            if k in self.pending_faults:
                self.pending_faults.remove(k)
                return k
        return None

    async def _fault_loop(self) -> None:
        i = 0
        while True:
            await asyncio.sleep(self.fault_every_s)
            self.inject(self.scheduled_faults[i % len(self.scheduled_faults)])
            i += 1

    # ------------------------------------------------------------- helpers for venues

    def book(self, symbol: str) -> VenueBook:
        return self.hub.model.books[(self.venue, symbol)]

    def changes(self, symbol: str) -> list[tuple[str, str, str]]:
        return self.hub.changes.get((self.venue, symbol), [])

    async def send(self, ws, obj: Any) -> None:
        text = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
        self.sent_frames += 1
        await ws.send(text)

    async def handle(self, ws) -> None:
        raise NotImplementedError

    async def http_get(self, path: str) -> tuple[int, str]:
        return 404, '{"error":"not found"}'

    async def common_fault(self, ws) -> bool:
        """Faults every venue shows the same way. Returns True if the connection must end."""
        f = self.take_fault("drop", "silence", "malformed")
        if f == "drop":
            await ws.close(1011, "sim: dropped")
            return True
        if f == "silence":
            await asyncio.sleep(self.silence_s)  # the client's staleness timer must notice
        if f == "malformed":
            await self.send(ws, '{"truncated": [1, 2')
        return False

    async def duplex(self, ws, stream: Awaitable[None],
                     on_frame: Callable[[Any], Awaitable[None]]) -> None:
        """Serve one connection whose ``stream`` coroutine pushes market data while
        every client frame goes to ``on_frame`` (Kraken, Bybit, OKX, Gemini). The
        stream never outlives the client's side of the socket."""
        task = asyncio.get_running_loop().create_task(stream)
        try:
            async for raw in ws:
                await on_frame(raw)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # ------------------------------------------------------------- venues that fan out per tick
    # (Binance, Coinbase): one pump turns each market tick into events, queued per connection.

    def background(self, coro) -> None:
        """A task that lives as long as the venue; ``stop`` cancels it."""
        self._background.append(asyncio.get_running_loop().create_task(coro))

    async def pump_ticks(self, tick: Callable[[], None]) -> None:
        """Run ``tick`` after every market tick. A failing tick is logged, never
        fatal: the sim must keep running for the other tests sharing it."""
        while True:
            await self.hub.wait_tick()
            try:
                tick()
            except Exception:
                logging.getLogger(f"arbtui.sim.{self.venue}").exception(
                    "%s sim: tick failed", self.venue)

    def put_or_drop(self, conns: set, c: Any, item: Any) -> None:
        """Queue ``item`` on connection ``c`` (``c.q``, ``c.ws``). A full queue is a
        consumer that fell behind, and both venues disconnect those."""
        try:
            c.q.put_nowait(item)
        except asyncio.QueueFull:
            conns.discard(c)
            asyncio.get_running_loop().create_task(c.ws.close(1008, "slow consumer"))

    async def queued_fault(self, ws, conns: set, conn: Any) -> bool:
        """``common_fault`` for a handler draining its connection's queue.
        True: the connection is over."""
        if not self.pending_faults:
            return False
        if self.take_fault("silence"):
            # Stop talking but keep the socket open: only a client-side
            # staleness timer can notice.
            conns.discard(conn)
            await ws.wait_closed()
            return True
        return await self.common_fault(ws)


def venue_classes() -> dict[str, type[SimVenue]]:
    """Venue name -> simulator class, from the registry (``arbtui.venues``);
    imported lazily so the core stays light."""
    from arbtui import venues

    # Every registered venue has a simulator (the contract test relies on it), so a
    # failing import is a bug to see, not a venue to skip.
    return {spec.name: spec.simulator_class() for spec in venues.REGISTRY}


class Simulator:
    """The whole simulated market: model + hub + one server per venue."""

    def __init__(self, venues: list[str], symbols: list[str], *, seed: int = 7,
                 volatility_bps: float | None = None, dislocation_rate: float | None = None,
                 dislocation_bps: float | None = None, tick_ms: float = 50.0,
                 faults: dict[str, list[str]] | None = None, fault_every_s: float = 5.0) -> None:
        classes = venue_classes()
        missing = [v for v in venues if v not in classes]
        if missing:
            raise ValueError(f"no simulator for venue(s): {', '.join(missing)}")
        self.model = MarketModel(symbols, venues, seed=seed, volatility_bps=volatility_bps,
                                 dislocation_rate=dislocation_rate,
                                 dislocation_bps=dislocation_bps, tick_ms=tick_ms)
        self.hub = SimHub(self.model)
        faults = faults or {}
        self.venues: dict[str, SimVenue] = {
            v: classes[v](self.hub, symbols, seed=seed, faults=faults.get(v),
                          fault_every_s=fault_every_s) for v in venues
        }

    async def start(self) -> None:
        for v in self.venues.values():
            await v.start()
        await self.hub.start()

    async def stop(self) -> None:
        await self.hub.stop()
        for v in self.venues.values():
            await v.stop()

    def urls(self) -> dict[str, tuple[str, str]]:
        return {n: (v.url, v.rest_url) for n, v in self.venues.items()}
