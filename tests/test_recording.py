"""Format-2 recording reader/writer: round trip, and damaged files read up to the damage."""

from __future__ import annotations

import json

import pytest
import zstandard
from replay_fixtures import recording

from arbtui.backend.recording import (
    FeedRecorder,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    read_all,
)


def _write_sample(path, n: int = 200, flush_s: float = 1.0) -> list[dict]:
    """A small two-connection session; returns the non-header lines as written."""
    out = []
    with RecordingWriter(path, "MULTI", {"venues": {}}, flush_s=flush_s,
                         extra={"exchanges": ["BINANCE", "OKX"]}) as w:
        w.http("BINANCE.http.1", "https://h/api/v3/exchangeInfo", '{"symbols":[]}', 1.0)
        out.append({"t": "http", "conn": "BINANCE.http.1", "ts": 1.0})
        w.connect("BINANCE.ws.1", "wss://x/stream?streams=a", 1.5)
        out.append({"t": "connect", "conn": "BINANCE.ws.1", "ts": 1.5})
        w.send("OKX.ws.1", "wss://o", '{"op":"subscribe"}', 1.6)
        out.append({"t": "send", "conn": "OKX.ws.1", "ts": 1.6})
        for i in range(n):
            conn = "BINANCE.ws.1" if i % 2 else "OKX.ws.1"
            w.recv(conn, json.dumps({"i": i, "pad": "x" * 50}), 2.0 + i / 100)
            out.append({"t": "recv", "conn": conn, "ts": 2.0 + i / 100, "i": i})
    return out


def test_round_trip_lines_fields_and_venues(tmp_path):
    p = tmp_path / "s.jsonl.zst"
    written = _write_sample(p)
    header, lines, damage = read_all(p)
    assert damage is None
    assert header["t"] == "header" and header["format"] == 2 and header["exchange"] == "MULTI"
    assert isinstance(header["recorded"], float)
    assert [(ln.t, ln.conn, ln.ts) for ln in lines] == [(w["t"], w["conn"], w["ts"]) for w in written]
    # The venue of each line comes from its conn prefix (multi-venue file).
    assert {ln.conn.split(".")[0]: ln.venue for ln in lines} == {"BINANCE": "binance", "OKX": "okx"}
    recvs = [ln for ln in lines if ln.t == "recv"]
    assert [json.loads(ln.data)["i"] for ln in recvs] == list(range(200))
    assert lines[0].url == "https://h/api/v3/exchangeInfo"
    assert lines[1].addr == "wss://x/stream?streams=a"
    # Line numbers count the header as line 1.
    assert lines[0].lineno == 2 and lines[-1].lineno == len(written) + 1


def test_wire_format_is_plain_zstd_json_lines(tmp_path):
    """Any zstd tool can read what we write, with the documented keys."""
    p = tmp_path / "s.jsonl.zst"
    _write_sample(p, n=3)
    text = zstandard.ZstdDecompressor().stream_reader(p.open("rb")).read().decode()
    rows = [json.loads(x) for x in text.splitlines()]
    assert rows[0]["t"] == "header"
    assert rows[1] == {"t": "http", "conn": "BINANCE.http.1", "ts": 1.0,
                       "url": "https://h/api/v3/exchangeInfo", "data": '{"symbols":[]}'}
    assert rows[2] == {"t": "connect", "conn": "BINANCE.ws.1", "ts": 1.5,
                       "addr": "wss://x/stream?streams=a"}
    assert set(rows[-1]) == {"t", "conn", "ts", "data"}


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9])
def test_truncated_file_reads_up_to_the_damage_and_says_where(tmp_path, keep):
    p = tmp_path / "s.jsonl.zst"
    # Flushed blocks after every line, as a recorder killed mid-session leaves them.
    _write_sample(p, n=2000, flush_s=0.0)
    full = read_all(p)[1]
    raw = p.read_bytes()
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    r = RecordingReader(cut)
    got = list(r)
    assert r.damage is not None
    assert "truncated" in r.damage.reason
    # Every delivered line is an exact prefix of the intact file.
    assert 0 < len(got) < len(full)
    assert [(g.conn, g.ts, g.data) for g in got] == [(f.conn, f.ts, f.data) for f in full[:len(got)]]
    assert r.damage.line == len(got) + 2  # header + delivered lines, then the damaged one
    assert r.damage.compressed_offset == len(cut.read_bytes())
    assert str(cut) in str(r.damage) and f"line {r.damage.line}" in str(r.damage)


def test_corrupt_bytes_mid_file_stop_there(tmp_path):
    p = tmp_path / "s.jsonl.zst"
    _write_sample(p, n=3000, flush_s=0.0)
    full = read_all(p)[1]
    raw = bytearray(p.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 16] = b"\xff" * 16
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(bytes(raw))
    r = RecordingReader(bad)
    got = list(r)
    # zstd either fails to decode the damaged block or the frame checksum fails.
    assert r.damage is not None and "zstd" in r.damage.reason
    assert len(got) < len(full) + 1
    # Blocks before the damage decode untouched.
    q = len(full) // 4
    assert [g.data for g in got[:q]] == [f.data for f in full[:q]]


def test_corrupt_json_line_stops_and_incomplete_last_line_is_reported(tmp_path):
    p = tmp_path / "s.jsonl"
    header = '{"t":"header","format":2,"exchange":"OKX","config":{},"recorded":1.0}'
    good = '{"t":"recv","conn":"OKX.ws.1","ts":2.0,"data":"a"}'
    broken = '{"t":"recv","conn":"OKX.ws.1","ts":2.1,"da'
    p.write_text(f"{header}\n{good}\n{broken}\n{good}\n")
    r = RecordingReader(p)
    got = list(r)
    assert [g.data for g in got] == ["a"]
    assert r.damage is not None and r.damage.line == 3 and "not a valid record" in r.damage.reason
    assert r.damage.offset == len(header) + 1 + len(good) + 1

    p2 = tmp_path / "s2.jsonl"
    p2.write_text("\n".join([header, good, good[:-5]]))  # cut mid-line, no newline
    r2 = RecordingReader(p2)
    assert len(list(r2)) == 1
    assert r2.damage is not None and r2.damage.line == 3 and "incomplete" in r2.damage.reason


def test_reader_refuses_what_is_not_a_format_2_recording(tmp_path):
    with pytest.raises(RecordingError, match="cannot open"):
        RecordingReader(tmp_path / "missing.jsonl.zst")
    empty = tmp_path / "empty.jsonl.zst"
    empty.write_bytes(b"")
    with pytest.raises(RecordingError, match="no header"):
        RecordingReader(empty)
    f1 = tmp_path / "f1.jsonl"
    f1.write_text('{"t":"header","format":1,"exchange":"OKX"}\n')
    with pytest.raises(RecordingError, match="format 1"):
        RecordingReader(f1)
    nh = tmp_path / "nh.jsonl"
    nh.write_text('{"t":"recv","conn":"x","ts":1,"data":"a"}\n')
    with pytest.raises(RecordingError, match="not a header"):
        RecordingReader(nh)


def test_periodic_flush_leaves_a_readable_prefix_while_still_writing(tmp_path):
    """A recorder killed mid-session (no close) still leaves everything up to its last flush."""
    p = tmp_path / "live.jsonl.zst"
    w = RecordingWriter(p, "BINANCE", {}, flush_s=0.0)  # flush after every line
    for i in range(50):
        w.recv("BINANCE.ws.1", f'{{"i":{i}}}', 10.0 + i)
    r = RecordingReader(p)  # the writer is still open: its frame has no end
    got = list(r)
    assert [json.loads(g.data)["i"] for g in got] == list(range(50))
    assert r.damage is not None and "truncated" in r.damage.reason
    w.close()
    r2 = RecordingReader(p)
    assert len(list(r2)) == 50 and r2.damage is None


def test_binary_frames_and_feed_recorder_conn_ids(tmp_path):
    p = tmp_path / "b.jsonl.zst"
    with RecordingWriter(p, "KRAKEN", {}) as w:
        rec = FeedRecorder(w, "kraken")
        rec.on_connect("wss://k/v2", 1_000_000_000)
        rec.on_send('{"method":"subscribe"}', 1_100_000_000)
        rec.on_recv(b"\x00\xff binary", 1_200_000_000)
        rec.on_recv('{"channel":"heartbeat"}', 1_300_000_000)
        rec.on_http("https://k/0/public/AssetPairs", "{}", 1_400_000_000)
        rec.on_connect("wss://k/v2", 2_000_000_000)  # a reconnect gets a new conn id
        rec.on_recv("x", 2_100_000_000)
    _, lines, damage = read_all(p)
    assert damage is None
    assert [(ln.t, ln.conn) for ln in lines] == [
        ("connect", "KRAKEN.ws.1"), ("send", "KRAKEN.ws.1"), ("recv", "KRAKEN.ws.1"),
        ("recv", "KRAKEN.ws.1"), ("http", "KRAKEN.http.1"), ("connect", "KRAKEN.ws.2"),
        ("recv", "KRAKEN.ws.2")]
    assert lines[2].data == b"\x00\xff binary"
    assert lines[1].addr == "wss://k/v2"
    assert [ln.ts for ln in lines][:3] == [1.0, 1.1, 1.2]


def test_public_recordings_read_whole():
    """The three shipped cryptofeed files are format 2 and intact."""
    for name, venue, n in (("COINBASE.jsonl.zst", "coinbase", 1037),
                           ("BINANCE.jsonl.zst", "binance", 271),
                           ("OKX.jsonl.zst", "okx", 439)):
        r = RecordingReader(recording(name))
        lines = list(r)
        assert r.damage is None and r.venue == venue and len(lines) == n
        assert all(ln.venue == venue for ln in lines)
