"""Real perpetual-futures sessions against books built BY HAND here from the raw
lines (``RefBook``, a Decimal dict book sharing no code with ``backend.book``):

* OKX's UNI-USD-SWAP (an inverse swap, 10 USD a contract) in the 2022 OKX
  recording (../shared/recordings/OKX.jsonl.zst), fed frame by frame to the
  ``okx-swap`` adapter: ``books`` snapshot/update with the CRC32 rule verified on
  every frame over the venue's contract strings, then each top's sizes converted
  to base units with Decimal arithmetic (contracts x 10 USD / price). Prices
  exact, sizes to 1e-9, every checksum verified.
* Binance USD-M (cryptofeed's ``sample_data`` BINANCE_FUTURES session, 2021-07,
  as ``BINANCE_FUTURES.jsonl.zst`` in ../shared/recordings or
  ``$ARBTUI_RECORDINGS_DIR``; skipped when absent), replayed in process: REST
  ``/fapi/v1/depth`` snapshot, events with ``u <= lastUpdateId`` dropped, the
  first kept one straddling it (``pu <= lastUpdateId``), then every event's
  ``pu`` equal to the previous ``u``. Its ids jump between events (``U`` is not
  the previous ``u + 1``): the spot rule would see false gaps there.

No gap, resync or crossed book may appear: the recorded chains are whole.
"""

from __future__ import annotations

import json
from decimal import Decimal

from replay_fixtures import bad_counters, recording, replay_inprocess
from test_conformance_new_venues import _emit, _recording
from test_conformance_recordings import RefBook, _assert_same, _never_crossed

from arbtui import venues
from arbtui.backend.feeds.okx_swap import OkxSwapFeed
from arbtui.backend.recording import read_all

INST = "UNI-USD-SWAP"
CT_USD = Decimal(10)  # OKX: UNI-USD-SWAP ctVal 10, ctValCcy USD, ctType inverse


def _base(px: str, contracts: str) -> Decimal:
    return Decimal(contracts) * CT_USD / Decimal(px)


def test_okx_inverse_swap_2022_session_matches_a_hand_built_book():
    path = recording("OKX.jsonl.zst")
    _, lines, damage = read_all(path)
    assert damage is None
    inst = venues.get("okx-swap").instrument("UNI-USD-PERP")
    assert (inst.kind, Decimal(inst.ct_val)) == ("inverse", CT_USD)

    quotes: list = []
    feed = OkxSwapFeed(["UNI-USD-PERP"], quotes.append)
    assert feed.books["UNI-USD-PERP"].vsym == INST
    ref = RefBook()
    expected: list[tuple] = []
    verified = 0
    conn = None
    for ln in lines:
        if ln.t != "recv" or ln.data == "pong":
            continue
        m = json.loads(ln.data)
        arg = m.get("arg") or {}
        if arg.get("channel") == "books" and arg.get("instId") == INST and "data" in m:
            conn = conn or ln.conn
            for d in m["data"]:
                if m.get("action") == "snapshot":
                    ref = RefBook()
                for px, sz, *_ in d["bids"]:
                    ref.set(True, px, sz)
                for px, sz, *_ in d["asks"]:
                    ref.set(False, px, sz)
                if d.get("checksum"):
                    assert ref.okx_crc() == d["checksum"], ln.lineno
                    verified += 1
            top = ref.top()
            if top is not None and (not expected or expected[-1][:4] != top):
                expected.append((*top, ln.ts))
        if conn is None or ln.conn == conn:
            feed.feed_frame(ln.data, int(ln.ts * 1e9))
    assert verified == 93 and len(expected) > 20

    got: list = []
    for q in quotes:
        row = (q.bid_px, q.ask_px, q.bid_qty, q.ask_qty)
        if not got or got[-1] != row:
            got.append(row)
    assert len(got) == len(expected)
    for (bpx, apx, bq, aq), (ebpx, ebq, eapx, eaq, _) in zip(got, expected):
        assert (bpx, apx) == (ebpx, eapx)
        # Base units: contracts x 10 USD / price, by hand in Decimal.
        assert abs(Decimal(bq) - _base(ebpx, ebq)) <= Decimal("1e-9") * _base(ebpx, ebq)
        assert abs(Decimal(aq) - _base(eapx, eaq)) <= Decimal("1e-9") * _base(eapx, eaq)
    q = quotes[-1]
    assert q.bid < q.ask and q.bids[0] == (q.bid, q.bid_size)
    c = feed.status().counters
    assert c.get("checksum_ok", 0) == verified and not c.get("checksum_fail")
    assert bad_counters(feed) == {}, c
    assert feed.books["UNI-USD-PERP"].state.value == "LIVE"


def usdm_reference(path) -> list[dict]:
    _, lines, damage = read_all(path)
    assert damage is None
    snaps, events, norm = {}, {}, {}
    for ln in lines:
        if ln.t == "http" and "/fapi/v1/depth" in ln.url:
            d = json.loads(ln.data)
            sym = ln.url.split("symbol=")[1].split("&")[0]
            snaps[sym] = (ln.ts, d["lastUpdateId"], d["bids"], d["asks"])
        elif ln.t == "http" and "exchangeInfo" in ln.url:
            norm = {r["symbol"]: f"{r['baseAsset']}-{r['quoteAsset']}-PERP"
                    for r in json.loads(ln.data)["symbols"] if r["contractType"] == "PERPETUAL"}
        elif ln.t == "recv":
            m = json.loads(ln.data).get("data") or {}
            if m.get("e") == "depthUpdate":
                events.setdefault(m["s"], []).append((ln.ts, m))
    out: list[tuple[float, dict]] = []
    for sym, (snap_ts, snap_id, bids, asks) in snaps.items():
        book = RefBook()
        for px, q in bids:
            book.set(True, px, q)
        for px, q in asks:
            book.set(False, px, q)
        cur, first = snap_id, True

        def apply(e, book=book):
            for px, q in e["b"]:
                book.set(True, px, q)
            for px, q in e["a"]:
                book.set(False, px, q)

        kept = [(ts, e) for ts, e in events.get(sym, []) if ts < snap_ts and e["u"] > snap_id]
        for _, e in kept:
            assert (e["pu"] <= cur) if first else (e["pu"] == cur), (sym, e["U"])
            apply(e)
            cur, first = e["u"], False
        prev = _emit(out, "binance-usdm", norm[sym], book, None, snap_ts, cur)
        for ts, e in events.get(sym, []):
            if ts < snap_ts or e["u"] <= cur:
                continue
            assert (e["pu"] <= cur) if first else (e["pu"] == cur), (sym, e["U"], cur)
            apply(e)
            cur, first = e["u"], False
            prev = _emit(out, "binance-usdm", norm[sym], book, prev, ts, cur)
    out.sort(key=lambda x: x[0])
    return [r for _, r in out]


async def test_binance_usdm_real_session_matches_a_hand_built_book():
    path = _recording("BINANCE_FUTURES.jsonl.zst")
    expected = usdm_reference(path)
    assert {e["symbol"] for e in expected} == {"SUSHI-USDT-PERP", "AKRO-USDT-PERP",
                                               "KEEP-USDT-PERP", "CTK-USDT-PERP"}
    run = await replay_inprocess([path])
    _assert_same(run.quotes, expected)
    _never_crossed(run.quotes)
    (feed,) = run.feeds
    assert feed.venue == "binance-usdm"
    assert bad_counters(feed) == {}, feed.status().counters
    assert all(sb.state.value == "LIVE" for sb in feed.books.values())
