"""The venue registry: the ONE place a venue is declared.

Everything else that needs a per-venue fact derives it from here: the list of
known venues and their dashboard order (``model.VENUES``), how a normalized
symbol is spelled on the wire (``symbols.venue_symbol``), the offline symbol
table and public endpoints (the adapter's ``STATIC_SYMBOLS``,
``default_url``/``default_rest``/``instruments_path``), the default taker fee
(``config``), the adapter class (``feeds.feed_class``), the simulator class
(``sim.server.venue_classes``), the exchange id in recordings
(``recording.exchange_of_venue``/``venue_of_exchange``), the quote currencies
a venue serves from another currency's book (``detector.QUOTE_ALIASES``), and the adapter
contract test (``tests/test_adapter_contract.py`` runs over every entry).

Perpetual futures are venues of their own (``market="perp"``: ``binance-usdm``
beside ``binance``), naming the spot venue of their exchange (``spot_venue``)
and their contracts (``contracts``: the instrument table, ``Instrument``), so
every size can be given in base units; their symbols are ``BASE-QUOTE-PERP``.

Adding a venue = one adapter module (``backend/feeds/_template.py`` is the
skeleton), one simulator module (``backend/sim/<venue>.py``) and one entry in
``REGISTRY`` below; ``docs/architecture.md`` and ``docs/protocols.md`` say
what each must do.

This is a core module: it imports nothing of arbtui. Adapter and simulator
classes are named as ``"module:Class"`` strings and imported on demand, so
reading the registry never pulls in the backend, the simulator or Textual.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NamedTuple


class Fault(NamedTuple):
    """A simulator fault the venue's protocol makes detectable, and the adapter
    counter that proves it was caught (``sim_attrs``: simulator settings the
    fault needs, e.g. OKX sends non-zero checksums only when asked)."""

    counter: str
    sim_attrs: Mapping[str, Any] = MappingProxyType({})


def _frozen(d: Mapping) -> Mapping:
    return MappingProxyType(dict(d))


#: Normalized perpetual symbols end in this suffix: ``BTC-USDT-PERP`` is the perp
#: whose underlying is BTC-USDT (docs/protocols.md, "Perpetual futures").
PERP_SUFFIX = "-PERP"


def is_perp(symbol: str) -> bool:
    return symbol.endswith(PERP_SUFFIX)


def underlying(symbol: str) -> str:
    """``BTC-USDT-PERP`` -> ``BTC-USDT``; a spot symbol is its own underlying."""
    return symbol.removesuffix(PERP_SUFFIX)


@dataclass(frozen=True)
class Instrument:
    """What one unit of a venue's book size is (the instrument table, issue 18).

    ``kind``: ``"spot"`` (sizes are base units), ``"linear"`` (a contract is
    ``ct_val`` units of the base, settled in ``settle``), ``"inverse"`` (a
    contract is worth ``ct_val`` units of the QUOTE currency, settled in the
    base). Every size arbtui shows or publishes is in base units:
    ``base_size`` converts a book level's size to them."""

    kind: str = "spot"
    ct_val: str = "1"
    settle: str = ""

    @property
    def unit(self) -> bool:
        """Sizes on the wire are already base units (no conversion needed)."""
        return self.kind != "inverse" and Decimal(self.ct_val) == 1

    def base_size(self, px: str, qty: str) -> str:
        """One level's size in base units, as an exact decimal string (no exponent).

        linear: contracts x ct_val; inverse: contracts x ct_val / price (the
        contract's quote value bought at that price), rounded to 12 places."""
        q = Decimal(qty)
        if self.kind == "inverse":
            d = (q * Decimal(self.ct_val) / Decimal(px)).quantize(Decimal("1e-12"))
        else:
            d = q * Decimal(self.ct_val)
        out = format(d.normalize(), "f") if d else "0"
        return out

    def base_float(self, px: float, qty: float) -> float:
        """``base_size`` on floats (the quote's levels), rounded to 12 places so a
        linear 12.34 x 0.01 reads 0.1234, not 0.12340000000000001."""
        if self.kind == "inverse":
            return round(qty * float(self.ct_val) / px, 12)
        return round(qty * float(self.ct_val), 12)

    def base_levels(self, levels: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """Book levels (price, venue size) -> (price, base units)."""
        if self.unit:
            return levels
        f = self.base_float
        return [(p, f(p, q)) for p, q in levels]


def decimal_text(x: float) -> str:
    """A float as a plain decimal string (no exponent) that reads back as the same float."""
    return format(Decimal(repr(x)), "f")


SPOT = Instrument()


@dataclass(frozen=True)
class VenueSpec:
    """Everything arbtui needs to know to speak one venue (see the module doc)."""

    #: Our name for the venue: config tables, bus messages, UI.
    name: str
    #: Upper-case exchange id in recordings (``conn`` prefix / header ``exchange``),
    #: cryptofeed's spelling, so its published sessions replay as ours do.
    exchange: str
    #: How BASE and QUOTE are joined on the wire, e.g. ``"{b}-{q}"``. Composition
    #: only: venue symbols are never split (``BTCUSDT`` is ambiguous).
    wire_symbol: str
    #: Public WebSocket endpoint, REST base, and the instrument list's path.
    ws_url: str
    rest_url: str
    instruments_path: str
    #: ``"module:Class"`` of the adapter (a ``feeds.base.VenueFeed``) and of the
    #: loopback simulator (a ``sim.server.SimVenue``).
    adapter: str
    simulator: str
    #: Default taker fee when the venue's config table does not set one.
    taker_fee_bps: float
    #: Offline symbol table (normalized -> venue symbol) used when the instrument
    #: list is unreachable; the live list replaces it.
    static_symbols: Mapping[str, str]
    #: Two symbols the simulator and adapter both carry, for the contract test.
    test_symbols: tuple[str, str]
    #: The API version we speak (docs/protocols.md has the rules per venue).
    api: str
    #: Simulator fault -> the counter the adapter raises on it (contract test).
    detects: Mapping[str, Fault] = field(default_factory=dict)
    #: Quotes carry the venue's event time / a sequence number (contract test).
    venue_ts: bool = True
    sequenced: bool = True
    #: Other exchange ids recordings may carry for this venue (old brand names).
    exchange_aliases: tuple[str, ...] = ()
    #: Quote currencies the venue serves from another currency's book (not a
    #: second book: comparing the two would be a fake edge), e.g. {"USDC": "USD"}.
    quote_aliases: Mapping[str, str] = field(default_factory=dict)
    #: ``"spot"`` or ``"perp"``: a perp venue is its own registry entry
    #: (``binance-usdm`` beside ``binance``) whose books are perpetual futures
    #: under ``BASE-QUOTE-PERP`` symbols (docs/protocols.md, "Perpetual futures").
    market: str = "spot"
    #: A perp venue: the spot venue of the same exchange (one account, one
    #: operator), so "same venue" spot-vs-perp is recognized.
    spot_venue: str = ""
    #: Perp venue: normalized symbol -> its contract (size unit, linear/inverse,
    #: settlement). A perp symbol missing here is a linear contract of 1 base unit.
    contracts: Mapping[str, Instrument] = field(default_factory=dict)

    @property
    def is_perp(self) -> bool:
        return self.market == "perp"

    def instrument(self, symbol: str) -> Instrument:
        """What one unit of ``symbol``'s book size is on this venue."""
        if not self.is_perp:
            return SPOT
        return self.contracts.get(symbol) or Instrument("linear", "1", quote_of_symbol(symbol))

    def serves(self, symbol: str) -> bool:
        """A spot venue serves spot symbols, a perp venue perp symbols."""
        return is_perp(symbol) == self.is_perp

    def adapter_class(self) -> type:
        return _load(self.adapter)

    def simulator_class(self) -> type:
        return _load(self.simulator)

    def compose(self, symbol: str) -> str:
        """Normalized ``BASE-QUOTE`` (or ``BASE-QUOTE-PERP`` on a perp venue, whose
        ``wire_symbol`` says how the contract is spelled) -> the venue's spelling
        (composition only)."""
        base, _, quote = underlying(symbol).partition("-")
        return self.wire_symbol.format(b=base, q=quote)


def quote_of_symbol(symbol: str) -> str:
    return underlying(symbol).partition("-")[2]


def _load(ref: str) -> type:
    mod, _, attr = ref.partition(":")
    return getattr(importlib.import_module(mod), attr)


def _table(pairs: dict[str, str]) -> Mapping[str, str]:
    return _frozen(pairs)


def _cross(bases: tuple[str, ...], quotes: tuple[str, ...], fmt: str,
           wire: str | None = None) -> Mapping[str, str]:
    """{normalized: venue symbol} for every base x quote. With ``wire``, ``fmt``
    spells the normalized side (``"{b}{q}-PERP"`` -> ``BTC-USDT-PERP``)."""
    if wire is None:
        return _frozen({f"{b}-{q}": fmt.format(b=b, q=q) for b in bases for q in quotes})
    return _frozen({f"{b}-{q}-PERP": wire.format(b=b, q=q) for b in bases for q in quotes})


_BTC_ETH_SOL = ("BTC", "ETH", "SOL")

#: Every venue arbtui speaks, in dashboard order (keys 1-9 toggle the first nine).
REGISTRY: tuple[VenueSpec, ...] = (
    VenueSpec(
        name="binance", exchange="BINANCE", wire_symbol="{b}{q}",
        ws_url="wss://stream.binance.com:9443", rest_url="https://api.binance.com",
        instruments_path="/api/v3/exchangeInfo",
        adapter="arbtui.backend.feeds.binance:BinanceFeed",
        simulator="arbtui.backend.sim.binance:Sim",
        taker_fee_bps=10.0,
        static_symbols=_table({
            "BTC-USDT": "BTCUSDT", "ETH-USDT": "ETHUSDT", "SOL-USDT": "SOLUSDT",
            "BTC-USDC": "BTCUSDC", "ETH-USDC": "ETHUSDC", "SOL-USDC": "SOLUSDC",
            "ETH-BTC": "ETHBTC", "SOL-BTC": "SOLBTC", "SOL-ETH": "SOLETH",
            "BTC-EUR": "BTCEUR", "ETH-EUR": "ETHEUR", "SOL-EUR": "SOLEUR",
            "BTC-FDUSD": "BTCFDUSD", "ETH-FDUSD": "ETHFDUSD", "SOL-FDUSD": "SOLFDUSD",
            "USDC-USDT": "USDCUSDT",
        }),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="Spot WebSocket Streams (combined /stream, <sym>@depth@100ms + <sym>@bookTicker); "
            "REST /api/v3/depth snapshots",
        detects=_frozen({"gap": Fault("gaps")}),
    ),
    VenueSpec(
        name="coinbase", exchange="COINBASE", wire_symbol="{b}-{q}",
        ws_url="wss://advanced-trade-ws.coinbase.com", rest_url="https://api.coinbase.com",
        instruments_path="/api/v3/brokerage/market/products",
        adapter="arbtui.backend.feeds.coinbase:CoinbaseFeed",
        simulator="arbtui.backend.sim.coinbase:Sim",
        taker_fee_bps=120.0,
        static_symbols=_table({
            "BTC-USD": "BTC-USD", "ETH-USD": "ETH-USD", "SOL-USD": "SOL-USD",
            "ETH-BTC": "ETH-BTC", "SOL-BTC": "SOL-BTC", "SOL-ETH": "SOL-ETH",
            "BTC-USDT": "BTC-USDT", "ETH-USDT": "ETH-USDT", "SOL-USDT": "SOL-USDT",
            "USDT-USD": "USDT-USD", "USDT-USDC": "USDT-USDC",
            "BTC-EUR": "BTC-EUR", "ETH-EUR": "ETH-EUR", "SOL-EUR": "SOL-EUR",
            # BTC-USDC, ETH-USDC, SOL-USDC are aliases of the -USD books: not separate books.
        }),
        test_symbols=("BTC-USD", "ETH-USD"),
        api="Advanced Trade WebSocket (level2 + heartbeats channels, unauthenticated)",
        detects=_frozen({"gap": Fault("gaps")}),
        # BTC-USDC is served from the BTC-USD book (same orders, same liquidity).
        quote_aliases=_frozen({"USDC": "USD"}),
    ),
    VenueSpec(
        name="kraken", exchange="KRAKEN", wire_symbol="{b}/{q}",
        ws_url="wss://ws.kraken.com/v2", rest_url="https://api.kraken.com",
        instruments_path="/0/public/AssetPairs",
        adapter="arbtui.backend.feeds.kraken:KrakenFeed",
        simulator="arbtui.backend.sim.kraken:Sim",
        taker_fee_bps=40.0,
        static_symbols=_cross(_BTC_ETH_SOL, ("USD", "USDT", "USDC"), "{b}/{q}"),
        test_symbols=("BTC-USD", "ETH-USD"),
        api="Spot WebSocket v2 book channel (v1 frames read for replay of old recordings)",
        # No sequence numbers: a lost update shows up as a checksum mismatch.
        detects=_frozen({"gap": Fault("checksum_mismatch"),
                         "checksum": Fault("checksum_mismatch")}),
        sequenced=False,
    ),
    VenueSpec(
        name="bybit", exchange="BYBIT", wire_symbol="{b}{q}",
        ws_url="wss://stream.bybit.com/v5/public/spot", rest_url="https://api.bybit.com",
        instruments_path="/v5/market/instruments-info?category=spot",
        adapter="arbtui.backend.feeds.bybit:BybitFeed",
        simulator="arbtui.backend.sim.bybit:Sim",
        taker_fee_bps=10.0,
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT", "USDC"), "{b}{q}"),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="v5 public spot WebSocket, orderbook.{depth}.{symbol}",
        detects=_frozen({"gap": Fault("gaps"), "seq": Fault("seq_regressions")}),
    ),
    VenueSpec(
        name="okx", exchange="OKX", exchange_aliases=("OKEX",), wire_symbol="{b}-{q}",
        ws_url="wss://ws.okx.com:8443/ws/v5/public", rest_url="https://www.okx.com",
        instruments_path="/api/v5/public/instruments?instType=SPOT",
        adapter="arbtui.backend.feeds.okx:OkxFeed",
        simulator="arbtui.backend.sim.okx:Sim",
        taker_fee_bps=10.0,
        static_symbols=_table({s: s for s in (
            "BTC-USDT", "ETH-USDT", "SOL-USDT",
            "BTC-USDC", "ETH-USDC", "SOL-USDC",
            "BTC-USD", "ETH-USD", "SOL-USD",
        )}),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="v5 public WebSocket, books channel (400 levels); REST /api/v5/market/books",
        detects=_frozen({"gap": Fault("gaps"),
                         "checksum": Fault("checksum_fail", _frozen({"checksums": True}))}),
    ),
    VenueSpec(
        name="gemini", exchange="GEMINI", wire_symbol="{b}{q}",
        ws_url="wss://api.gemini.com/v2/marketdata", rest_url="https://api.gemini.com",
        instruments_path="/v1/symbols/details/all",
        adapter="arbtui.backend.feeds.gemini:GeminiFeed",
        simulator="arbtui.backend.sim.gemini:Sim",
        taker_fee_bps=40.0,
        static_symbols=_table({
            "BTC-USD": "BTCUSD", "ETH-USD": "ETHUSD", "SOL-USD": "SOLUSD",
            "BTC-USDT": "BTCUSDT", "ETH-USDT": "ETHUSDT",
            # Spot USDC pairs; never the BTCUSDCPERP/ETHUSDCPERP swaps.
            "BTC-USDC": "BTCUSDC", "ETH-USDC": "ETHUSDC", "SOL-USDC": "SOLUSDC",
        }),
        test_symbols=("BTC-USD", "ETH-USD"),
        api="Market data v2 WebSocket, l2 channel",
        # v2 has neither sequence numbers nor a checksum: a lost message cannot be
        # seen on the wire (the periodic refresh bounds it; docs/protocols.md).
        detects=_frozen({}),
        venue_ts=False, sequenced=False,
    ),
    VenueSpec(
        name="kucoin", exchange="KUCOIN", wire_symbol="{b}-{q}",
        # The real endpoint comes with a token from POST /api/v1/bullet-public.
        ws_url="wss://ws-api-spot.kucoin.com/", rest_url="https://api.kucoin.com",
        instruments_path="/api/v2/symbols",
        adapter="arbtui.backend.feeds.kucoin:KucoinFeed",
        simulator="arbtui.backend.sim.kucoin:Sim",
        taker_fee_bps=10.0,
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT", "USDC"), "{b}-{q}"),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="Spot WebSocket (bullet-public token), /market/level2 increments; "
            "REST /api/v1/market/orderbook/level2_100 snapshots",
        detects=_frozen({"gap": Fault("gaps")}),
    ),
    VenueSpec(
        name="gate", exchange="GATEIO", wire_symbol="{b}_{q}",
        ws_url="wss://api.gateio.ws/ws/v4/", rest_url="https://api.gateio.ws",
        instruments_path="/api/v4/spot/currency_pairs",
        adapter="arbtui.backend.feeds.gate:GateFeed",
        simulator="arbtui.backend.sim.gate:Sim",
        taker_fee_bps=10.0,
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT", "USDC"), "{b}_{q}"),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="Spot WebSocket v4, spot.order_book_update (U/u) bridged to REST "
            "/api/v4/spot/order_book?with_id=true",
        detects=_frozen({"gap": Fault("gaps")}),
    ),
    VenueSpec(
        name="bitstamp", exchange="BITSTAMP", wire_symbol="{b}{q}",
        ws_url="wss://ws.bitstamp.net", rest_url="https://www.bitstamp.net",
        instruments_path="/api/v2/trading-pairs-info/",
        adapter="arbtui.backend.feeds.bitstamp:BitstampFeed",
        simulator="arbtui.backend.sim.bitstamp:Sim",
        taker_fee_bps=40.0,
        # Bitstamp spells pairs lower case (btcusd); we keep them upper case and
        # the adapter lower-cases them on the wire.
        static_symbols=_cross(_BTC_ETH_SOL, ("USD", "EUR", "USDT", "USDC"), "{b}{q}"),
        test_symbols=("BTC-USD", "ETH-USD"),
        api="WebSocket API v2, order_book_<pair> (full top-100 books) live; recorded "
            "diff_order_book_<pair> sessions bridged to REST /api/v2/order_book by microtimestamp",
        # Every message is a whole book: a lost one is healed by the next. What
        # can be seen is ordering: microtimestamp must only increase.
        detects=_frozen({"seq": Fault("seq_regressions")}),
        sequenced=False,
    ),
    VenueSpec(
        name="bitfinex", exchange="BITFINEX", wire_symbol="t{b}{q}",
        ws_url="wss://api-pub.bitfinex.com/ws/2", rest_url="https://api-pub.bitfinex.com",
        instruments_path="/v2/conf/pub:list:pair:exchange",
        adapter="arbtui.backend.feeds.bitfinex:BitfinexFeed",
        simulator="arbtui.backend.sim.bitfinex:Sim",
        taker_fee_bps=20.0,
        # Bitfinex spells USDT "UST" and USDC "UDC"; composition (simulator) uses ours.
        static_symbols=_table({
            "BTC-USD": "tBTCUSD", "ETH-USD": "tETHUSD", "SOL-USD": "tSOLUSD",
            "BTC-USDT": "tBTCUST", "ETH-USDT": "tETHUST", "SOL-USDT": "tSOLUST",
            "BTC-EUR": "tBTCEUR", "ETH-EUR": "tETHEUR", "ETH-BTC": "tETHBTC",
        }),
        test_symbols=("BTC-USD", "ETH-USD"),
        api="WebSocket API v2 (info version 2), book channel P0/F0/len 25 with conf flags "
            "SEQ_ALL + OB_CHECKSUM",
        # One sequence per connection (a lost message of any channel) and a CRC32
        # of the top 25 levels per book.
        detects=_frozen({"gap": Fault("gaps"), "checksum": Fault("checksum_mismatch")}),
        venue_ts=False,
    ),
    VenueSpec(
        name="cryptocom", exchange="CRYPTOCOM", exchange_aliases=("CRYPTO.COM", "CRYPTO"),
        wire_symbol="{b}_{q}",
        ws_url="wss://stream.crypto.com/exchange/v1/market", rest_url="https://api.crypto.com",
        instruments_path="/exchange/v1/public/get-instruments",
        adapter="arbtui.backend.feeds.cryptocom:CryptocomFeed",
        simulator="arbtui.backend.sim.cryptocom:Sim",
        taker_fee_bps=25.0,
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT", "USD"), "{b}_{q}"),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="Exchange API v1 market WebSocket, book.{instrument}.{depth} with "
            "SNAPSHOT_AND_UPDATE (book + book.update u/pu); v2 full-book sessions replay",
        detects=_frozen({"gap": Fault("gaps")}),
    ),
    VenueSpec(
        name="htx", exchange="HTX", exchange_aliases=("HUOBI",), wire_symbol="{b}{q}",
        ws_url="wss://api.huobi.pro/feed", rest_url="https://api.huobi.pro",
        instruments_path="/v2/settings/common/symbols",
        adapter="arbtui.backend.feeds.htx:HtxFeed",
        simulator="arbtui.backend.sim.htx:Sim",
        taker_fee_bps=20.0,
        # HTX spells symbols lower case (btcusdt); we keep them upper case and
        # the adapter lower-cases them on the wire.
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT", "USDC"), "{b}{q}"),
        test_symbols=("BTC-USDT", "ETH-USDT"),
        api="Spot WebSocket /feed (gzip binary frames), market.$symbol.mbp.150 increments "
            "(seqNum/prevSeqNum) bridged to a req snapshot; depth.step0 sessions replay",
        detects=_frozen({"gap": Fault("gaps")}),
    ),
    # ------------------------------------------------ perpetual futures (issue 18)
    # One entry per perp market, beside its exchange's spot entry (``spot_venue``):
    # a different endpoint, fee schedule and book, so a separate venue id; symbols
    # are BASE-QUOTE-PERP and sizes are converted to base units by ``contracts``.
    VenueSpec(
        name="binance-usdm", exchange="BINANCE_FUTURES", wire_symbol="{b}{q}",
        ws_url="wss://fstream.binance.com", rest_url="https://fapi.binance.com",
        instruments_path="/fapi/v1/exchangeInfo",
        adapter="arbtui.backend.feeds.binance_usdm:BinanceUsdmFeed",
        simulator="arbtui.backend.sim.binance_usdm:Sim",
        taker_fee_bps=5.0,
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT",), "{b}{q}-PERP", "{b}{q}"),
        test_symbols=("BTC-USDT-PERP", "ETH-USDT-PERP"),
        api="USD-M Futures WebSocket (combined /stream, <sym>@depth@100ms with pu + "
            "<sym>@markPrice@1s); REST /fapi/v1/depth snapshots",
        # USD-M chains every event to the one before it: pu == previous u.
        detects=_frozen({"gap": Fault("gaps")}),
        market="perp", spot_venue="binance",
        # USD-M quantities are base units (contract size 1 base).
        contracts=_frozen({f"{b}-USDT-PERP": Instrument("linear", "1", "USDT")
                           for b in _BTC_ETH_SOL}),
    ),
    VenueSpec(
        name="bybit-linear", exchange="BYBIT_LINEAR", wire_symbol="{b}{q}",
        ws_url="wss://stream.bybit.com/v5/public/linear", rest_url="https://api.bybit.com",
        instruments_path="/v5/market/instruments-info?category=linear",
        adapter="arbtui.backend.feeds.bybit_linear:BybitLinearFeed",
        simulator="arbtui.backend.sim.bybit_linear:Sim",
        taker_fee_bps=5.5,
        static_symbols=_cross(_BTC_ETH_SOL, ("USDT",), "{b}{q}-PERP", "{b}{q}"),
        test_symbols=("BTC-USDT-PERP", "ETH-USDT-PERP"),
        api="v5 public linear WebSocket, orderbook.{depth}.{symbol} + tickers.{symbol}",
        detects=_frozen({"gap": Fault("gaps"), "seq": Fault("seq_regressions")}),
        market="perp", spot_venue="bybit",
        # Linear perpetual quantities are base units.
        contracts=_frozen({f"{b}-USDT-PERP": Instrument("linear", "1", "USDT")
                           for b in _BTC_ETH_SOL}),
    ),
    VenueSpec(
        name="okx-swap", exchange="OKX_SWAP", wire_symbol="{b}-{q}-SWAP",
        ws_url="wss://ws.okx.com:8443/ws/v5/public", rest_url="https://www.okx.com",
        instruments_path="/api/v5/public/instruments?instType=SWAP",
        adapter="arbtui.backend.feeds.okx_swap:OkxSwapFeed",
        simulator="arbtui.backend.sim.okx_swap:Sim",
        taker_fee_bps=5.0,
        static_symbols=_table({
            "BTC-USDT-PERP": "BTC-USDT-SWAP", "ETH-USDT-PERP": "ETH-USDT-SWAP",
            "SOL-USDT-PERP": "SOL-USDT-SWAP",
            "BTC-USD-PERP": "BTC-USD-SWAP", "ETH-USD-PERP": "ETH-USD-SWAP",
            "UNI-USD-PERP": "UNI-USD-SWAP",
        }),
        test_symbols=("BTC-USDT-PERP", "ETH-USDT-PERP"),
        api="v5 public WebSocket, books (400 levels, CRC32 checksum) + funding-rate + "
            "mark-price + index-tickers; REST /api/v5/market/books",
        detects=_frozen({"gap": Fault("gaps"),
                         "checksum": Fault("checksum_fail", _frozen({"checksums": True}))}),
        market="perp", spot_venue="okx",
        # OKX swap sizes are CONTRACTS (instruments: ctVal, ctValCcy, ctType).
        contracts=_frozen({
            "BTC-USDT-PERP": Instrument("linear", "0.01", "USDT"),
            "ETH-USDT-PERP": Instrument("linear", "0.1", "USDT"),
            "SOL-USDT-PERP": Instrument("linear", "1", "USDT"),
            "BTC-USD-PERP": Instrument("inverse", "100", "BTC"),
            "ETH-USD-PERP": Instrument("inverse", "10", "ETH"),
            "UNI-USD-PERP": Instrument("inverse", "10", "UNI"),
        }),
    ),
)

_BY_NAME: dict[str, VenueSpec] = {s.name: s for s in REGISTRY}
_BY_EXCHANGE: dict[str, VenueSpec] = {
    x: s for s in REGISTRY for x in (s.exchange, *s.exchange_aliases)}


def names() -> tuple[str, ...]:
    """Every registered venue, in dashboard order."""
    return tuple(_BY_NAME)


def spot_names() -> tuple[str, ...]:
    """The spot venues, in dashboard order."""
    return tuple(s.name for s in REGISTRY if not s.is_perp)


def perp_names() -> tuple[str, ...]:
    """The perpetual-futures venues, in dashboard order."""
    return tuple(s.name for s in REGISTRY if s.is_perp)


def get(name: str) -> VenueSpec:
    """The spec of ``name``; a KeyError that lists the known venues otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown venue {name!r}; known: {', '.join(_BY_NAME)}") from None


def by_exchange(exchange: str) -> VenueSpec | None:
    """The venue a recording's exchange id (any case, old brand names too) stands for."""
    return _BY_EXCHANGE.get(exchange.upper())
