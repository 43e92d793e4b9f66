"""Recorded venue sessions: format 2 (zstd-compressed JSON lines), read and written.

The format is the one of the public recordings in ``../shared/recordings``
(cryptofeed ``sample_data``), so sessions recorded by ``arbtui record`` and by
cryptofeed replay the same way. The first line is a header
``{"t":"header","format":2,"exchange":"COINBASE","config":{...},"recorded":<unix s>}``;
every other line has ``t`` (connect | send | recv | http), ``conn`` (a
connection id such as ``COINBASE.ws.2``) and ``ts`` (local receive/send time,
unix seconds as a float), plus ``addr`` / ``url`` / ``data``.

Reading is streaming and defensive: a file cut short (a recorder killed
mid-write, a partial copy) or corrupted mid-way yields every line before the
damage and then reports where it stopped (``RecordingReader.damage``), never
an exception half-way through a replay.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Self

import msgspec
import zstandard

from arbtui import venues

FORMAT = 2
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LINE_TYPES = ("connect", "send", "recv", "http")

#: cryptofeed exchange ids (header ``exchange`` / ``conn`` prefix) -> our venue names,
#: from the registry (``arbtui.venues``: ``exchange`` and ``exchange_aliases``, e.g.
#: OKEX, cryptofeed's name for OKX before the 2022 rebrand). Only spot venues whose
#: wire protocol our adapters speak; e.g. BINANCE_FUTURES or the legacy COINBASE_PRO
#: feed use other protocols and are deliberately absent.
EXCHANGE_TO_VENUE = {x: s.name for s in venues.REGISTRY for x in (s.exchange, *s.exchange_aliases)}


def venue_of_exchange(exchange: str) -> str | None:
    spec = venues.by_exchange(exchange)
    return spec.name if spec is not None else None


def exchange_of_venue(venue: str) -> str:
    return venues.get(venue).exchange


class RecordingError(Exception):
    """The file is not a readable format-2 recording at all (nothing can be replayed)."""


@dataclass(frozen=True)
class Damage:
    """Where and why reading stopped early. Lines before ``line`` were delivered."""

    path: str
    line: int  # 1-based line number of the first line NOT delivered
    offset: int  # decompressed byte offset where that line starts
    compressed_offset: int  # compressed bytes read when the damage was found
    reason: str

    def __str__(self) -> str:
        return (f"{self.path}: stopped at line {self.line} (decompressed byte {self.offset}, "
                f"compressed byte {self.compressed_offset}): {self.reason}")


class Line(msgspec.Struct, kw_only=True):
    """One non-header line. ``data`` is the frame text (bytes for a binary frame)."""

    t: str
    conn: str
    ts: float
    data: Any = None
    addr: str | None = None
    url: str | None = None
    enc: str | None = None  # "b64" when a binary frame was stored base64-encoded
    #: cryptofeed's spelling of a binary frame: base64 in ``b64``, no ``data``
    #: (its HUOBI sessions: gzip frames). Read as ``data`` bytes, like ``enc``.
    b64: str | None = None
    lineno: int = 0
    venue: str | None = None  # filled by the reader from the conn prefix or header


_line_decoder = msgspec.json.Decoder(Line)


class _Damaged(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_PIECE = 2048


def _zstd_chunks(fh: BinaryIO, counter: list[int]) -> Iterator[bytes]:
    """Decompress every frame of ``fh``; raise ``_Damaged`` on corruption or a cut-off frame.

    ``zstandard``'s stream reader returns a truncated frame's prefix silently,
    so frames are walked by hand and an unfinished last frame is reported.
    """
    dctx = zstandard.ZstdDecompressor()
    d = dctx.decompressobj()
    in_frame = False
    while True:
        # Small pieces: when a piece fails to decode, what it would have produced
        # is lost, so the loss before the damage stays within one small piece.
        chunk = fh.read(_PIECE)
        if not chunk:
            break
        counter[0] += len(chunk)
        while chunk:
            try:
                out = d.decompress(chunk)
            except zstandard.ZstdError as e:
                raise _Damaged(f"zstd: {e}") from None
            in_frame = True
            if out:
                yield out
            if d.eof:
                chunk = d.unused_data
                d = dctx.decompressobj()
                in_frame = False
            else:
                chunk = b""
    if in_frame:
        raise _Damaged("file ends inside a zstd frame (truncated)")


def _plain_chunks(fh: BinaryIO, counter: list[int], chunk_size: int = 1 << 17) -> Iterator[bytes]:
    while True:
        chunk = fh.read(chunk_size)
        if not chunk:
            return
        counter[0] += len(chunk)
        yield chunk


class RecordingReader:
    """Iterate the lines of one recording (zstd or plain JSON lines).

    ``header`` is read on construction (a missing/invalid header raises
    ``RecordingError``). Iterating yields ``Line`` objects in file order;
    after iteration ``damage`` is None when the whole file was read, or says
    where it stopped. ``skipped`` counts lines of unknown type (newer writers).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.damage: Damage | None = None
        self.lines_read = 0
        self.skipped = 0
        self._compressed = [0]
        try:
            self._fh: BinaryIO = open(self.path, "rb", buffering=1 << 17)  # noqa: SIM115 - closed by close()/iteration
        except OSError as e:
            raise RecordingError(f"{self.path}: cannot open: {e.strerror or e}") from None
        magic = self._fh.read(4)
        self._fh.seek(0)
        self._chunks = (_zstd_chunks if magic == ZSTD_MAGIC else _plain_chunks)(
            self._fh, self._compressed)
        self._buf = bytearray()
        self._pos = 0  # start of the unread part of _buf
        self._offset = 0  # decompressed offset of _buf[0]
        self._line_start = 0
        self._lineno = 0
        self._eof = False
        self._pending_damage: str | None = None
        self._damage_line = 0
        first = self._next_raw()
        if first is None:
            self.close()
            reason = self._pending_damage or "empty file"
            raise RecordingError(f"{self.path}: no header line ({reason})")
        try:
            header = msgspec.json.decode(first)
        except msgspec.DecodeError as e:
            self.close()
            raise RecordingError(f"{self.path}: header is not JSON: {e}") from None
        if not isinstance(header, dict) or header.get("t") != "header":
            self.close()
            raise RecordingError(f"{self.path}: first line is not a header")
        if header.get("format") != FORMAT:
            self.close()
            raise RecordingError(
                f"{self.path}: recording format {header.get('format')!r}; only format {FORMAT} "
                "is supported")
        self.header: dict[str, Any] = header
        self.exchange: str = str(header.get("exchange", ""))
        self.venue: str | None = venue_of_exchange(self.exchange)
        self.recorded: float | None = header.get("recorded")

    # ------------------------------------------------------------------ raw lines

    def _next_raw(self) -> bytes | None:
        """The next complete line, or None at the end / at damage (``_pending_damage``)."""
        while True:
            nl = self._buf.find(b"\n", self._pos)
            if nl >= 0:
                raw = bytes(self._buf[self._pos:nl])
                self._line_start = self._offset
                self._offset += nl + 1 - self._pos
                self._pos = nl + 1
                self._lineno += 1
                if raw.strip():
                    return raw
                continue
            if self._eof:
                break
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self._eof = True
                continue
            except _Damaged as e:
                self._eof = True
                self._pending_damage = e.reason
                self._damage_line = self._lineno + 1
                break
            del self._buf[:self._pos]  # compact only when refilling: O(1) amortised per line
            self._pos = 0
            self._buf += chunk
        self._line_start = self._offset
        if self._buf[self._pos:].strip() and self._pending_damage is None:
            # A last line without its newline: the writer was cut off mid-line.
            self._pending_damage = "last line is incomplete (no newline; truncated)"
            self._damage_line = self._lineno + 1
        self._buf.clear()
        self._pos = 0
        return None

    def _venue_for(self, conn: str) -> str | None:
        # Multi-venue files written by ``arbtui record`` name the venue in each
        # conn id (``BINANCE.ws.1``); cryptofeed files do too, with one venue.
        prefix = conn.split(".", 1)[0]
        return venue_of_exchange(prefix) or self.venue

    def __iter__(self) -> Iterator[Line]:
        try:
            while True:
                raw = self._next_raw()
                if raw is None:
                    break
                try:
                    ln = _line_decoder.decode(raw)
                except msgspec.DecodeError as e:
                    # A corrupt line: stop here, everything before it was real.
                    self._pending_damage = f"line is not a valid record: {e}"
                    self._damage_line = self._lineno
                    break
                if ln.t not in LINE_TYPES:
                    self.skipped += 1
                    continue
                if ln.data is None and ln.b64 is not None:
                    try:
                        ln.data = base64.b64decode(ln.b64, validate=True)
                    except ValueError:
                        self._pending_damage = "b64 frame is not base64"
                        self._damage_line = self._lineno
                        break
                    ln.b64 = None
                if (ln.t == "recv" and ln.data is None) or (ln.t == "http" and ln.url is None):
                    self._pending_damage = f"{ln.t} line without its payload"
                    self._damage_line = self._lineno
                    break
                if ln.enc == "b64" and isinstance(ln.data, str):
                    ln.data = base64.b64decode(ln.data)
                ln.lineno = self._lineno
                ln.venue = self._venue_for(ln.conn)
                self.lines_read += 1
                yield ln
        finally:
            if self._pending_damage is not None and self.damage is None:
                self.damage = Damage(self.path, self._damage_line, self._line_start,
                                     self._compressed[0], self._pending_damage)
            self.close()

    def close(self) -> None:
        try:
            self._fh.close()
        except OSError:
            pass


def read_all(path: str | Path) -> tuple[dict[str, Any], list[Line], Damage | None]:
    """Header, every readable line, and the damage report (None if the file is whole)."""
    r = RecordingReader(path)
    lines = list(r)
    return r.header, lines, r.damage


# ---------------------------------------------------------------------- writing


_enc = msgspec.json.Encoder()


class RecordingWriter:
    """Write a format-2 recording. Blocks are flushed every ``flush_s`` so that a
    recorder killed mid-session leaves a file that replays up to its last flush."""

    def __init__(self, path: str | Path, exchange: str, config: dict[str, Any] | None = None,
                 *, level: int = 3, flush_s: float = 1.0, extra: dict[str, Any] | None = None) -> None:
        self.path = str(path)
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        # The frame checksum lets a reader notice corrupted bytes that still decode.
        self._z = zstandard.ZstdCompressor(level=level, write_checksum=True).stream_writer(
            self._fh, closefd=False)
        self.flush_s = flush_s
        self._last_flush = time.monotonic()
        self.lines = 0
        self.closed = False
        header: dict[str, Any] = {"t": "header", "format": FORMAT, "exchange": exchange,
                                  "config": config or {}, "recorded": time.time()}
        if extra:
            header.update(extra)
        self._write(header)
        self.flush()

    def _write(self, obj: dict[str, Any]) -> None:
        if self.closed:
            return
        self._z.write(_enc.encode(obj) + b"\n")
        self.lines += 1
        now = time.monotonic()
        if now - self._last_flush >= self.flush_s:
            self.flush()

    @staticmethod
    def _ts(ts: float | None) -> float:
        return time.time() if ts is None else ts

    def connect(self, conn: str, addr: str, ts: float | None = None) -> None:
        self._write({"t": "connect", "conn": conn, "ts": self._ts(ts), "addr": addr})

    def send(self, conn: str, addr: str, data: str, ts: float | None = None) -> None:
        self._write({"t": "send", "conn": conn, "ts": self._ts(ts), "addr": addr, "data": data})

    def recv(self, conn: str, data: str | bytes, ts: float | None = None) -> None:
        rec: dict[str, Any] = {"t": "recv", "conn": conn, "ts": self._ts(ts)}
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                rec["data"] = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                rec["data"] = base64.b64encode(bytes(data)).decode()
                rec["enc"] = "b64"
        else:
            rec["data"] = data
        self._write(rec)

    def http(self, conn: str, url: str, data: str, ts: float | None = None) -> None:
        self._write({"t": "http", "conn": conn, "ts": self._ts(ts), "url": url, "data": data})

    def flush(self) -> None:
        if self.closed:
            return
        self._z.flush(zstandard.FLUSH_BLOCK)
        self._fh.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self.closed:
            return
        self._z.flush(zstandard.FLUSH_FRAME)
        self._z.close()
        self._fh.close()
        self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FeedRecorder:
    """The tap a live ``VenueFeed`` calls (``feed.recorder``): one per venue.

    Connection ids follow cryptofeed's ``<EXCHANGE>.ws.<n>`` / ``<EXCHANGE>.http.<n>``
    so the venue is recoverable from each line even in a multi-venue file.
    """

    def __init__(self, writer: RecordingWriter, venue: str) -> None:
        self.writer = writer
        self.venue = venue
        self.exchange = exchange_of_venue(venue)
        self._n = 0
        self.conn = f"{self.exchange}.ws.0"
        self.addr = ""
        self.http_conn = f"{self.exchange}.http.1"

    def on_connect(self, url: str, ts_ns: int | None = None) -> None:
        self._n += 1
        self.conn = f"{self.exchange}.ws.{self._n}"
        self.addr = url
        self.writer.connect(self.conn, url, _sec(ts_ns))

    def on_send(self, text: str, ts_ns: int | None = None) -> None:
        self.writer.send(self.conn, self.addr, text, _sec(ts_ns))

    def on_recv(self, data: str | bytes, ts_ns: int) -> None:
        self.writer.recv(self.conn, data, _sec(ts_ns))

    def on_http(self, url: str, body: str, ts_ns: int | None = None) -> None:
        self.writer.http(self.http_conn, url, body, _sec(ts_ns))


def _sec(ts_ns: int | None) -> float | None:
    return None if ts_ns is None else ts_ns / 1e9
