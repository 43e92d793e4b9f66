"""Perpetual-futures venues (issue 18): the instrument table and its size conversion,
perp symbols in the registry and config, the market model's basis and funding, the
funding/mark/index each perp simulator sends as its adapter parses it, the funding
topic on both transports, and a record -> replay of the three perp simulators that
gives the same quotes and the same funding states.

The book rules themselves are the adapter contract's (tests/test_adapter_contract.py
runs every check on the perp entries too).
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import msgspec
import pytest
from feed_fixtures import SimFeedRig
from replay_fixtures import bad_counters, default_cfg, quote_top_changes

from arbtui import config, symbols, venues
from arbtui.backend.sim.market import (
    FUNDING_CLAMP,
    FUNDING_INTEREST,
    MarketModel,
    funding_rate,
    next_funding_ms,
)
from arbtui.model import Funding

PERPS = list(venues.perp_names())
PERP_SYMS = ["BTC-USDT-PERP", "ETH-USDT-PERP"]
EIGHT_H_MS = 8 * 3600 * 1000


# ------------------------------------------------------------------ instruments


def test_okx_contracts_convert_to_base_units_by_hand():
    okx = venues.get("okx-swap")
    btc = okx.instrument("BTC-USDT-PERP")
    assert (btc.kind, btc.ct_val, btc.settle) == ("linear", "0.01", "USDT")
    # 12.34 contracts of 0.01 BTC = 0.1234 BTC; 250 contracts = 2.5 BTC.
    assert btc.base_size("65000.1", "12.34") == "0.1234"
    assert btc.base_size("65000.1", "250") == "2.5"
    assert btc.base_float(65000.1, 12.34) == 0.1234
    assert btc.base_levels([(65000.1, 12.34), (64999.0, 3.0)]) == [(65000.1, 0.1234),
                                                                   (64999.0, 0.03)]
    assert okx.instrument("ETH-USDT-PERP").base_size("1900", "7") == "0.7"
    # Inverse: one BTC-USD-SWAP contract is 100 USD, so 13 contracts at 65,000 are
    # 1,300 USD = 0.02 BTC.
    inv = okx.instrument("BTC-USD-PERP")
    assert (inv.kind, inv.ct_val) == ("inverse", "100")
    assert inv.base_size("65000", "13") == "0.02"
    assert inv.base_float(65000.0, 13.0) == 0.02
    assert not btc.unit and not inv.unit
    # Binance USD-M and Bybit linear quantities are base units already; spot is spot.
    for v in ("binance-usdm", "bybit-linear"):
        i = venues.get(v).instrument("BTC-USDT-PERP")
        assert i.kind == "linear" and i.unit and i.base_size("1", "0.123") == "0.123"
    assert venues.get("binance").instrument("BTC-USDT") is venues.SPOT and venues.SPOT.unit
    assert venues.decimal_text(1e-05) == "0.00001"


def test_perp_venues_in_the_registry():
    assert PERPS == ["binance-usdm", "bybit-linear", "okx-swap"]
    assert not set(PERPS) & set(venues.spot_names())
    for v in PERPS:
        spec = venues.get(v)
        assert spec.is_perp and spec.market == "perp"
        assert venues.get(spec.spot_venue).market == "spot"  # "same venue" spot vs perp
        assert all(venues.is_perp(s) for s in spec.static_symbols)
        assert spec.serves("BTC-USDT-PERP") and not spec.serves("BTC-USDT")
        # Futures taker fees, not the spot ones.
        assert spec.taker_fee_bps < venues.get(spec.spot_venue).taker_fee_bps
    assert [venues.get(v).spot_venue for v in PERPS] == ["binance", "bybit", "okx"]
    assert venues.get("okx-swap").compose("BTC-USDT-PERP") == "BTC-USDT-SWAP"
    assert venues.get("binance-usdm").compose("ETH-USDT-PERP") == "ETHUSDT"
    assert symbols.split("BTC-USDT-PERP") == ("BTC", "USDT") == symbols.split("BTC-USDT")
    assert symbols.underlying("BTC-USDT-PERP") == "BTC-USDT" and symbols.perp_of("BTC-USDT") \
        == "BTC-USDT-PERP"
    assert symbols.sim_symbol_map("binance", ["BTC-USDT", "BTC-USDT-PERP"]) == {"BTC-USDT": "BTCUSDT"}
    assert symbols.sim_symbol_map("okx-swap", ["BTC-USDT", "BTC-USDT-PERP"]) == {
        "BTC-USDT-PERP": "BTC-USDT-SWAP"}


def test_instrument_lists_of_the_perp_venues():
    from arbtui.backend.feeds.binance_usdm import BinanceUsdmFeed
    from arbtui.backend.feeds.bybit_linear import BybitLinearFeed
    from arbtui.backend.feeds.okx_swap import OkxSwapFeed

    usdm = {"symbols": [
        {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
         "baseAsset": "BTC", "quoteAsset": "USDT"},
        {"symbol": "BTCUSDT_261225", "contractType": "CURRENT_QUARTER", "status": "TRADING",
         "baseAsset": "BTC", "quoteAsset": "USDT"},
        {"symbol": "XUSDT", "contractType": "PERPETUAL", "status": "SETTLING",
         "baseAsset": "X", "quoteAsset": "USDT"}]}
    assert BinanceUsdmFeed.parse_instruments(json.dumps(usdm)) == {"BTC-USDT-PERP": "BTCUSDT"}
    lin = {"retCode": 0, "result": {"category": "linear", "list": [
        {"symbol": "ETHUSDT", "contractType": "LinearPerpetual", "status": "Trading",
         "baseCoin": "ETH", "quoteCoin": "USDT"},
        {"symbol": "ETHUSDT-26DEC26", "contractType": "LinearFutures", "status": "Trading",
         "baseCoin": "ETH", "quoteCoin": "USDT"}]}}
    assert BybitLinearFeed.parse_instruments(json.dumps(lin)) == {"ETH-USDT-PERP": "ETHUSDT"}
    with pytest.raises(ValueError, match="not a linear"):
        BybitLinearFeed.parse_instruments(json.dumps({"retCode": 0, "result": {"category": "spot"}}))
    rows = [{"instType": "SWAP", "instId": "BTC-USDT-SWAP", "uly": "BTC-USDT", "ctVal": "0.01",
             "ctType": "linear", "state": "live"},
            # A contract size that disagrees with the table is refused, never guessed.
            {"instType": "SWAP", "instId": "ETH-USDT-SWAP", "uly": "ETH-USDT", "ctVal": "1",
             "ctType": "linear", "state": "live"},
            {"instType": "SWAP", "instId": "BTC-USD-SWAP", "uly": "BTC-USD", "ctVal": "100",
             "ctType": "inverse", "state": "live"},
            {"instType": "SWAP", "instId": "DOGE-USDT-SWAP", "uly": "DOGE-USDT", "ctVal": "1000",
             "ctType": "linear", "state": "live"}]
    assert OkxSwapFeed.parse_instruments(json.dumps({"data": rows})) == {
        "BTC-USDT-PERP": "BTC-USDT-SWAP", "BTC-USD-PERP": "BTC-USD-SWAP"}


def test_config_keeps_spot_and_perp_symbols_apart():
    raw = config._read_toml(config.default_config_path())
    cfg = config.validate(raw)
    assert {v: cfg.venues[v].symbols for v in PERPS} == {v: PERP_SYMS for v in PERPS}
    assert cfg.venues["okx-swap"].taker_fee_bps == 5.0
    assert not set(PERPS) & set(cfg.sim.venues) and not cfg.sim.perps
    with pytest.raises(config.ConfigError, match=r"key 'venues.okx-swap.symbols\[0\]' = "
                                                 r"'BTC-USDT'.*BASE-QUOTE-PERP"):
        config.validate({"venues": {"okx-swap": {"symbols": ["BTC-USDT"]}}})
    with pytest.raises(config.ConfigError, match=r"key 'venues.okx.symbols\[0\]' = 'BTC-USDT-PERP'"):
        config.validate({"venues": {"okx": {"symbols": ["BTC-USDT-PERP"]}}})
    raw = config._read_toml(config.default_config_path())
    raw["sim"]["perps"] = True
    cfg = config.validate(raw)
    assert cfg.sim.venues[-3:] == PERPS
    assert cfg.sim.symbols == ["BTC-USD", "ETH-USD", "BTC-USDT", "BTC-USDT-PERP", "ETH-USDT",
                               "ETH-USDT-PERP"]
    from arbtui.backend.roles.feed import feed_plan

    plan = feed_plan(cfg, {v: ("ws://x", "") for v in cfg.sim.venues})
    assert plan["okx-swap"]["symbols"] == PERP_SYMS
    assert plan["binance"]["symbols"] == ["BTC-USD", "ETH-USD", "BTC-USDT", "ETH-USDT"]


# ------------------------------------------------------------------ market model


def test_perp_tracks_spot_with_a_varying_basis_and_funding_follows_it():
    m = MarketModel(["BTC-USDT", "BTC-USDT-PERP"], ["binance", "binance-usdm"], seed=3,
                    tick_ms=50.0)
    assert sorted(m.books) == [("binance", "BTC-USDT"), ("binance-usdm", "BTC-USDT-PERP")]
    basis, rates = [], []
    for i in range(3000):  # two and a half simulated minutes
        m.step()
        if i % 5:
            continue
        st = m.perp_state("BTC-USDT-PERP")
        # The perp's fair price is the spot fair price times 1 + basis, exactly.
        assert st["mark"] == pytest.approx(m.fair["BTC-USDT"] * (1 + st["basis_bps"] / 1e4))
        assert st["index"] == pytest.approx(m.fair["BTC-USDT"])
        basis.append(st["basis_bps"])
        rates.append(st["rate"])
    mean = sum(basis) / len(basis)
    sd = math.sqrt(sum((b - mean) ** 2 for b in basis) / len(basis))
    assert 1.0 < sd < 20.0 and -10.0 < mean < 20.0 and max(abs(b) for b in basis) < 60.0
    # Funding: premium + clamp(interest - premium, +-0.05 %): never further than the
    # clamp from the premium, and it moves when the premium leaves the band.
    assert funding_rate(0.0003) == pytest.approx(FUNDING_INTEREST)
    assert funding_rate(0.0020) == pytest.approx(0.0020 - FUNDING_CLAMP)
    assert funding_rate(-0.0010) == pytest.approx(-0.0010 + FUNDING_CLAMP)
    assert len({round(r, 10) for r in rates}) > 10
    assert next_funding_ms(0) == EIGHT_H_MS and next_funding_ms(EIGHT_H_MS) == 2 * EIGHT_H_MS


# ------------------------------------------------------------------ funding from the sims


class FundingRig(SimFeedRig):
    def __init__(self, venue: str, syms: list[str] = PERP_SYMS) -> None:
        super().__init__(venue, list(syms), tick_ms=25.0)
        self.funding: list[Funding] = []

    def make_feed(self):
        spec = venues.get(self.venue)
        feed = spec.adapter_class()(list(self.symbols), self.quotes.append, url=self.sim.url,
                                     rest_url=self.sim.rest_url, depth=100,
                                     symbol_map=symbols.sim_symbol_map(self.venue, self.symbols))
        feed.on_funding = self.funding.append
        return feed


@pytest.mark.parametrize("venue", PERPS)
async def test_funding_mark_and_index_from_each_perp_simulator(venue):
    async with FundingRig(venue) as rig:
        await rig.wait(lambda: {f.symbol for f in rig.funding} == set(PERP_SYMS),
                       "funding for every perp")
        await rig.wait(rig.all_live, "books live")
        await rig.wait(lambda: all(rig.last_quote(s) for s in PERP_SYMS), "quotes")
        now_ms = time.time_ns() // 1_000_000
        for s in PERP_SYMS:
            f = rig.feed.funding[s]
            st = rig.model.perp_state(s)
            assert f.venue == venue and f.symbol == s and f.interval_h == 8.0
            # The venue's formula on the model's premium (which moves ~1e-7 a tick), as
            # sent with 6-8 decimals.
            assert f.rate == pytest.approx(st["rate"], abs=1e-5)
            q = rig.last_quote(s)
            mid = (q.bid + q.ask) / 2
            # mark: the perp's fair price, which the venue's quotes sit around; index:
            # the underlying's, a basis (bps) away.
            assert f.mark == pytest.approx(mid, rel=2e-3) and f.index == pytest.approx(mid, rel=1e-2)
            nxt = f.next_funding_ts_ns // 1_000_000
            assert nxt % EIGHT_H_MS == 0 and now_ms - 60_000 < nxt <= now_ms + EIGHT_H_MS
            assert f.recv_ts_ns > 0
            # Sizes are base units whatever the venue counts (OKX: contracts).
            assert 0 < q.bid_size < 100 and 0 < q.ask_size < 100
        assert not bad_counters(rig.feed), rig.feed.status().counters
        assert rig.feed.counters["funding_updates"] == len(rig.funding)


async def test_okx_inverse_swap_simulated_in_contracts_published_in_base_units():
    # BTC-USD-SWAP: 100 USD a contract, settled in BTC (no BTC-USD spot in this market:
    # the perp walks on its own and its index is a basis away).
    async with FundingRig("okx-swap", ["BTC-USD-PERP"]) as rig:
        await rig.wait(rig.all_live, "book live")
        await rig.wait(lambda: rig.last_quote("BTC-USD-PERP") and "BTC-USD-PERP" in rig.feed.funding,
                       "quote and funding")
        await rig.hub.stop()
        await asyncio.sleep(0.3)
        vb = rig.sim.book("BTC-USD-PERP")  # what the venue sent: contracts
        (bpx, bct), (apx, act) = vb.sorted_bids()[0], vb.sorted_asks()[0]
        assert bct.isdigit() and act.isdigit()  # whole contracts
        q = rig.last_quote("BTC-USD-PERP")
        assert (q.bid_px, q.ask_px) == (bpx, apx)
        # contracts x 100 USD / price, by hand
        assert q.bid_size == pytest.approx(int(bct) * 100 / float(bpx), rel=1e-9)
        assert q.ask_size == pytest.approx(int(act) * 100 / float(apx), rel=1e-9)
        f = rig.feed.funding["BTC-USD-PERP"]
        assert f.index == pytest.approx(f.mark, rel=1e-2) and f.interval_h == 8.0


# ------------------------------------------------------------------ the funding topic


def test_funding_travels_the_wire_and_is_read_outside_the_consumer_group():
    from arbtui.backend.bus import FUNDING
    from arbtui.backend.bus.base import TOPICS
    from arbtui.backend.bus.embedded import EmbeddedBus
    from arbtui.backend.bus.kafka import KafkaBus, decode, encode, encode_batch, unpack
    from arbtui.backend.bus.kafka.consumer import GROUP_SUBSCRIBERS
    from arbtui.backend.bus.kafka.producer import LOSSY
    from arbtui.backend.bus.kafka.wire import ALLOWED

    f = Funding(venue="okx-swap", symbol="BTC-USDT-PERP", rate=0.0001, next_funding_ts_ns=7,
                mark=65000.5, index=64990.1, ts_ns=3, recv_ts_ns=4)
    raw = encode(f)
    assert raw.startswith(b'{"type":"funding",')
    back, why = decode(raw)
    assert why == "" and isinstance(back, Funding)
    assert msgspec.structs.asdict(back) == msgspec.structs.asdict(f)
    both, why = unpack(encode_batch(FUNDING, [f, f]))
    assert why == "" and len(both) == 2
    assert FUNDING in TOPICS and ALLOWED[FUNDING] == (Funding,) and FUNDING in LOSSY
    assert (FUNDING, "detector") not in GROUP_SUBSCRIBERS
    cfg = config.load(None, use_user=False)
    cfg.bus.kind = "kafka"
    bus = KafkaBus(cfg.bus)
    assert bus.names[FUNDING] == cfg.bus.kafka.topic_funding == "arbtui.funding"
    bus.subscribe(FUNDING, "detector")
    assert FUNDING in bus._free_subs and FUNDING not in bus._group_subs
    # Newest-wins under pressure, and a perp's quote never supersedes its funding.
    bus = KafkaBus(cfg.bus)
    cfg.bus.kafka.max_in_flight = 2
    from arbtui.model import Quote

    qt = Quote(venue="okx-swap", symbol="BTC-USDT-PERP", bid=1.0, bid_size=1.0, ask=2.0,
               ask_size=1.0, bids=[(1.0, 1.0)], asks=[(2.0, 1.0)], bid_px="1", bid_qty="1",
               ask_px="2", ask_qty="1")
    from arbtui.backend.bus import QUOTES

    bus.publish(FUNDING, f.symbol, f)
    bus.publish(QUOTES, qt.symbol, qt)
    bus.publish(FUNDING, f.symbol, f)
    assert [t for t, _, _ in bus._outq] == [QUOTES, FUNDING]
    # The embedded bus delivers it like any topic.
    eb = EmbeddedBus(10)
    sub = eb.subscribe(FUNDING, "detector")
    eb.publish(FUNDING, f.symbol, f)
    assert sub.drain() == [f]


# ------------------------------------------------------------------ record -> replay


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    from arbtui.backend.record import record_session
    from arbtui.backend.sim.server import Simulator

    out = tmp_path_factory.mktemp("rec") / "perps.jsonl.zst"

    async def go():
        sim = Simulator(PERPS, PERP_SYMS, seed=17, tick_ms=50.0, dislocation_rate=1.0)
        await sim.start()
        live: list = []
        funding: list = []
        states: dict = {}
        try:
            task = asyncio.ensure_future(record_session(
                default_cfg(), PERPS, PERP_SYMS, 3.0, str(out), urls=sim.urls(),
                symbol_maps={v: symbols.sim_symbol_map(v, PERP_SYMS) for v in PERPS},
                on_quote=live.append, on_funding=funding.append,
                on_state=lambda st: states.__setitem__((st.venue, st.symbol), st.state.value)))
            for _ in range(100):  # every book live first: a gap must hit a synced book
                if len(states) == 6 and set(states.values()) == {"LIVE"}:
                    break
                await asyncio.sleep(0.02)
            # Faults while recording: the replay must resync exactly as live did.
            sim.venues["binance-usdm"].inject("gap")
            sim.venues["bybit-linear"].inject("gap")
            sim.venues["okx-swap"].inject("gap")
            res = await task
        finally:
            await asyncio.wait_for(sim.stop(), 10)
        return live, funding, res

    live, funding, res = asyncio.run(asyncio.wait_for(go(), 60))
    return out, live, funding, res


async def test_replay_of_the_perp_simulators_matches_live(recorded):
    from arbtui.backend.recording import read_all, venue_of_exchange
    from arbtui.backend.replay import QuotePrinter, ReplayEngine

    path, live, funding, res = recorded
    header, lines, damage = read_all(path)
    assert damage is None and header["exchange"] == "MULTI"
    assert {venue_of_exchange(ln.conn.split(".")[0]) for ln in lines} == set(PERPS)
    assert any("/fapi/v1/depth?symbol=BTCUSDT" in (ln.url or "") for ln in lines if ln.t == "http")
    expected = quote_top_changes(live)
    assert {e[0] for e in expected} == set(PERPS), "every perp venue went live while recording"
    assert {(f.venue, f.symbol) for f in funding} == {(v, s) for v in PERPS for s in PERP_SYMS}

    import io

    eng = ReplayEngine(default_cfg(), [str(path)], speed=0.0)
    buf = io.StringIO()
    pr = QuotePrinter(buf)
    eng.quote_listeners.append(pr.on_quote)
    replayed: list[Funding] = []
    eng.funding_listeners.append(replayed.append)
    await eng.start()
    try:
        assert await eng.wait_finished(60), "replay did not finish"
        assert eng.error is None, eng.error
        feeds = list(eng.conn_feeds)
        market_funding = dict(eng.market.funding)
        assert eng.lines_done == eng.lines_total
        assert sum(c.frames for c in eng.conns) == sum(res.frames.values())
    finally:
        await eng.stop()
    got = [(q["venue"], q["symbol"], q["bid"], q["bid_size"], q["ask"], q["ask_size"])
           for q in (json.loads(x) for x in buf.getvalue().splitlines())]
    assert got == expected
    # The same funding states, field for field (receive times are replay time).
    def key(f):
        return (f.venue, f.symbol, f.rate, f.interval_h, f.next_funding_ts_ns, f.mark, f.index,
                f.ts_ns)

    assert [key(f) for f in replayed] == [key(f) for f in funding]
    assert set(market_funding) == {(v, s) for v in PERPS for s in PERP_SYMS}
    counters = {f.venue: f.status().counters for f in feeds}
    for v in PERPS:
        assert counters[v].get("gaps", 0) >= 1, (v, counters[v])
    for f in feeds:
        assert not {k: n for k, n in bad_counters(f).items() if k not in ("gaps", "resyncs")}, (
            f.venue, f.status().counters)


def test_usdm_continuity_is_pu_and_the_first_event_after_a_snapshot_straddles_it():
    # Real USD-M ids (cryptofeed's 2021 SUSHIUSDT session): U jumps between events,
    # and the snapshot's lastUpdateId (605926) falls inside an event, not at its pu.
    from arbtui.backend.feeds.binance_usdm import BinanceUsdmFeed

    feed = BinanceUsdmFeed(["BTC-USDT-PERP"], lambda q: None)
    sb = feed.books["BTC-USDT-PERP"]
    sb.seq = 600859605926
    sb.sync.straddle = True
    assert feed.gap_in(sb, {"U": 600859605926, "u": 600859607423, "pu": 600859604824}) is None
    sb.seq = 600859607423
    assert feed.gap_in(sb, {"U": 600859607950, "u": 600859609417, "pu": 600859607423}) is None
    sb.seq = 600859609417
    # A lost event: the next pu names an id we never applied.
    assert "gap" in feed.gap_in(sb, {"U": 600859611803, "u": 600859613122, "pu": 600859611095})
    # After a snapshot, an event that starts past it left a hole.
    sb.sync.straddle = True
    assert "after snapshot" in feed.gap_in(sb, {"U": 600859611803, "u": 600859613122,
                                                "pu": 600859611095})
    assert feed.snapshot_limit_for(100) == 100 and feed.snapshot_limit_for(101) == 500
    assert feed.snapshot_limit_for(5000) == 1000 and feed.snapshot_weight(1000) == 20
