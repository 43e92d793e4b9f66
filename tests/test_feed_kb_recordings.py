"""Kraken and Bybit adapters on real recorded sessions (format 2), when present.

``../shared/recordings`` ships no Kraken or Bybit session, so these tests skip
unless one is there (``KRAKEN*.jsonl.zst`` / ``BYBIT*.jsonl.zst``) or
``ARBTUI_RECORDINGS_DIR`` points at a folder holding them (e.g. cryptofeed's
``sample_data``: Kraken v1 2021-04, Bybit v5 spot+linear 2026-08).

How the expected top of book is computed "by hand": an independent,
deliberately naive rebuild — a plain dict per book, every level of every frame
applied in order, zero deletes, then (Kraken) sort and keep the subscribed
depth — with no code shared with ``Book``. After every book frame the
adapter's best bid/ask must equal that rebuild's.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
import zstandard

from arbtui.backend.feeds.bybit import BybitFeed
from arbtui.backend.feeds.kraken import KrakenFeed, v2_name
from arbtui.model import BookState

SHARED = Path(__file__).resolve().parents[2] / "shared" / "recordings"


def _find(prefix: str) -> list[Path]:
    dirs = [SHARED]
    if os.environ.get("ARBTUI_RECORDINGS_DIR"):
        dirs.append(Path(os.environ["ARBTUI_RECORDINGS_DIR"]))
    out = []
    for d in dirs:
        if d.is_dir():
            # KRAKEN.jsonl.zst or KRAKEN-<tag>.jsonl.zst; not KRAKEN_FUTURES (another protocol).
            out += sorted(p for p in d.glob(f"{prefix}*.jsonl.zst")
                          if p.name.split(".")[0].split("-")[0] == prefix)
    return out


def _lines(p: Path) -> list[dict]:
    with p.open("rb") as f:
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    return [json.loads(ln) for ln in data.splitlines() if ln.strip()]


def _by_conn(lines: list[dict]) -> dict[str, list[dict]]:
    conns: dict[str, list[dict]] = {}
    for ln in lines:
        if ln.get("t") in ("connect", "send", "recv"):
            conns.setdefault(ln["conn"], []).append(ln)
    return conns


def _smap(cls, lines: list[dict]) -> dict[str, str]:
    smap: dict[str, str] = {}
    for ln in lines:
        if ln.get("t") == "http":
            try:
                smap.update(cls.parse_instruments(ln["data"]))
            except (ValueError, KeyError, TypeError):
                pass  # another category's list (Bybit linear) is refused by design
    return smap or dict(cls.STATIC_SYMBOLS)


def _top(side: dict[str, str], best_high: bool) -> str | None:
    if not side:
        return None
    return (max if best_high else min)(side, key=Decimal)


def _params(prefix: str):
    files = _find(prefix)
    if not files:
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"no {prefix} recording in {SHARED} (none is shipped) or $ARBTUI_RECORDINGS_DIR"))]
    return files


@pytest.mark.parametrize("path", _params("KRAKEN"))
def test_kraken_recording_checksums_and_tops(path):
    lines = _lines(path)
    smap = _smap(KrakenFeed, lines)
    inv = {v: k for k, v in smap.items()}
    checked = 0
    for ls in _by_conn(lines).values():
        url = next((ln.get("addr") for ln in ls if ln["t"] == "connect"), "") or ""
        syms = KrakenFeed.symbols_from_subscribe(url, [ln["data"] for ln in ls if ln["t"] == "send"],
                                                 inv)
        if not syms:
            continue
        feed = KrakenFeed(syms, lambda q: None, depth=1000, symbol_map=smap)
        naive: dict[str, tuple[dict, dict, int]] = {}
        for ln in ls:
            if ln["t"] != "recv":
                continue
            feed.feed_frame(ln["data"], int(ln["ts"] * 1e9))
            msg = json.loads(ln["data"])
            if not (isinstance(msg, list) and str(msg[-2]).startswith("book")):
                continue  # v2 frames would need the Decimal path; v1 is what exists
            pair = v2_name(msg[-1])
            depth = int(msg[-2].split("-")[1])
            bids, asks, _ = naive.setdefault(pair, ({}, {}, depth))
            for part in msg[1:-2]:
                if "as" in part or "bs" in part:
                    bids.clear()
                    asks.clear()
                for key, side in (("as", asks), ("bs", bids), ("a", asks), ("b", bids)):
                    for lv in part.get(key, []):
                        if Decimal(lv[1]) == 0:
                            side.pop(lv[0], None)  # v1 spells each price one fixed way
                        else:
                            side[lv[0]] = lv[1]
            for side, high in ((bids, True), (asks, False)):
                if len(side) > depth:  # Kraken sends no delete for levels leaving the window
                    for p in sorted(side, key=Decimal, reverse=high)[depth:]:
                        del side[p]
            sb = feed.by_vsym[pair]
            bb, ba = sb.book.best_bid(), sb.book.best_ask()
            assert bb is not None and bb[0] == _top(bids, True) and bb[1] == bids[bb[0]]
            assert ba is not None and ba[0] == _top(asks, False) and ba[1] == asks[ba[0]]
            assert (len(sb.book.bids), len(sb.book.asks)) == (len(bids), len(asks))
            checked += 1
        c = feed.counters
        assert c.get("checksum_mismatch", 0) == 0 and c.get("crossed", 0) == 0
        assert c.get("frame_errors", 0) == 0
        assert c.get("checksum_ok", 0) > 0
        assert all(sb.state is BookState.LIVE for sb in feed.books.values())
    assert checked > 0


@pytest.mark.parametrize("path", _params("BYBIT"))
def test_bybit_recording_spot_books_and_tops(path):
    lines = _lines(path)
    smap = _smap(BybitFeed, lines)
    inv = {v: k for k, v in smap.items()}
    checked = 0
    for ls in _by_conn(lines).values():
        url = next((ln.get("addr") for ln in ls if ln["t"] == "connect"), "") or ""
        syms = BybitFeed.symbols_from_subscribe(url, [ln["data"] for ln in ls if ln["t"] == "send"],
                                                inv)
        if "/linear" in url or "/inverse" in url:
            assert syms == []  # perps share BTCUSDT with spot: never a spot book
        if not syms:
            continue
        feed = BybitFeed(syms, lambda q: None, depth=200, symbol_map=smap)
        naive: dict[str, tuple[dict, dict]] = {}
        for ln in ls:
            if ln["t"] != "recv":
                continue
            feed.feed_frame(ln["data"], int(ln["ts"] * 1e9))
            msg = json.loads(ln["data"])
            topic = msg.get("topic", "")
            if not topic.startswith("orderbook."):
                continue
            bids, asks = naive.setdefault(topic, ({}, {}))
            d = msg["data"]
            if msg["type"] == "snapshot" or d["u"] == 1:
                bids.clear()
                asks.clear()
            for key, side in (("b", bids), ("a", asks)):
                for px, qty in d[key]:
                    if Decimal(qty) == 0:
                        side.pop(px, None)
                    else:
                        side[px] = qty
            sb = feed.by_vsym[d["s"]]
            if sb.sync.depth != int(topic.split(".")[1]):
                continue
            assert sb.book.best_bid() == (_top(bids, True), bids[_top(bids, True)])
            assert sb.book.best_ask() == (_top(asks, False), asks[_top(asks, False)])
            assert (len(sb.book.bids), len(sb.book.asks)) == (len(bids), len(asks))
            checked += 1
        c = feed.counters
        assert not c.get("gaps") and not c.get("seq_regressions") and not c.get("crossed")
        assert not c.get("frame_errors")
        assert all(sb.state is BookState.LIVE for sb in feed.books.values())
    assert checked > 0
