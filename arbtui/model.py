"""Wire and state types shared by every role.

They are msgspec Structs so the very same objects travel through the embedded
bus (no serialization) and through Kafka (msgspec JSON with a schema version).
Nothing here imports Textual.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec

from arbtui import venues as _venues

#: Bumped whenever a field changes meaning; consumers skip other versions.
SCHEMA_VERSION = 1

#: Venues arbtui knows (``arbtui.venues`` declares them); the order is the key
#: order in the dashboard (1-6).
VENUES: tuple[str, ...] = _venues.names()


class BookState(str, enum.Enum):
    """Lifecycle of one venue+symbol book. Only LIVE books feed detection."""

    SYNCING = "SYNCING"
    LIVE = "LIVE"
    STALE = "STALE"
    RESYNC = "RESYNC"
    DISABLED = "DISABLED"


#: The two ages of a book, as the README, config.toml and the help screen state
#: them (tests hold them to these words).
AGES_RULE = (
    "Every book has two ages: top, since its best bid or ask last changed, and live, "
    "since its feed last proved the book good (a frame applied to it, or a heartbeat, "
    "ping or any frame on its connection while the book is LIVE). Only the live age "
    "makes a book stale: past max_quote_age_ms its windows close and the conversions "
    "it prices block, while a quiet top on a live book stays usable."
)


class Quote(msgspec.Struct, kw_only=True):
    """Top of book plus the first N levels of one venue's book for one symbol.

    Prices and sizes are floats for arithmetic; ``bid_px``/``ask_px`` etc. keep
    the venue's exact decimal strings for display and records.

    Two times (``AGES_RULE``): ``recv_ts_ns`` is when the quoted levels last
    changed, ``live_ts_ns`` when the book was last known good. A feed publishes
    when the levels change and, while frames keep arriving, re-publishes the
    SAME level lists with a newer ``live_ts_ns`` at a bounded cadence
    (``feeds.base.LIVE_REFRESH_NS``): a liveness refresh, which a consumer
    recognizes as unchanged levels (same list objects in process, equal lists
    after Kafka).
    """

    venue: str
    symbol: str  # normalized BASE-QUOTE
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    bids: list[tuple[float, float]]  # best first, up to N levels
    asks: list[tuple[float, float]]
    bid_px: str
    bid_qty: str
    ask_px: str
    ask_qty: str
    venue_ts_ns: int = 0  # venue event time; 0 when the venue sends none (Binance, Gemini)
    recv_ts_ns: int = 0  # local wall-clock receive time of the frame that produced it
    seq: int = -1  # venue sequence / update id; -1 when the venue has none
    pub_ts_ns: int = 0  # when the feed handed it to the bus (feed -> bus hop latency)
    #: local time the book was last known good: the last frame applied to it, or a
    #: heartbeat / ping / frame on its connection while it was LIVE. 0 = not
    #: reported (an older producer): the detector then uses ``recv_ts_ns``.
    live_ts_ns: int = 0
    #: the venue's own timestamp of that proof, 0 when the venue sends none
    live_venue_ts_ns: int = 0
    v: int = SCHEMA_VERSION


def live_ns(q: Quote) -> int:
    """When ``q``'s book was last known good (its liveness time)."""
    t = q.live_ts_ns
    return max(q.recv_ts_ns, t)


class OppEvent(str, enum.Enum):
    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"


class Opportunity(msgspec.Struct, kw_only=True):
    """One cross-venue window, keyed by (symbol, buy venue, sell venue).

    Every event carries the numbers of exactly ONE evaluation: the levels it
    walked (``buy_book``/``sell_book``), the fees, the rate, flat cost and
    threshold it used, and the size, VWAPs and profit that came out. A CLOSED
    event repeats the last evaluation that held, plus why it ended.
    """

    id: str
    event: OppEvent
    symbol: str
    buy_venue: str  # we buy here, at its ask
    sell_venue: str  # we sell here, at its bid
    buy_price: float  # best ask on buy_venue
    sell_price: float  # best bid on sell_venue
    gross_bps: float
    net_bps: float
    buy_fee_bps: float
    sell_fee_bps: float
    size: float = 0.0  # base units, depth-aware
    buy_vwap: float = 0.0
    sell_vwap: float = 0.0
    profit: float = 0.0  # expected, in the quote currency, net of fees
    peak_net_bps: float = 0.0
    peak_profit: float = 0.0
    opened_ts_ns: int = 0
    ts_ns: int = 0  # when this event was emitted
    lifetime_ms: float = 0.0
    suspect: bool = False
    reason: str = ""  # why it closed, or why it is suspect
    quote_recv_ts_ns: int = 0  # receive time of the quote that triggered this event
    buy_book: list[tuple[float, float]] = []  # asks of the buy venue this evaluation walked
    sell_book: list[tuple[float, float]] = []  # bids of the sell venue this evaluation walked
    # Cross-currency legs (BTC-USD vs BTC-USDT): the sell leg's own symbol and the
    # rate that converts its prices into the buy leg's currency (1.0 when equal).
    sell_symbol: str = ""  # "" = same as ``symbol``
    rate: float = 1.0
    quote_ccy: str = ""  # currency of ``profit``: the buy leg's quote currency
    top_gross_bps: float = 0.0  # gross at the best ask/bid (gross_bps is at the VWAPs)
    buy_limit: float = 0.0  # worst ask level the size walk touched (buy IOC limit)
    sell_limit: float = 0.0  # worst bid level touched (sell IOC limit), sell currency
    limited_by: str = ""  # what capped the size: threshold, edge, depth, max_notional, balances
    top_net_bps: float = 0.0  # marginal net edge of the first unit (best ask/bid, converted)
    flat_cost: float = 0.0  # the flat cost this evaluation charged
    min_net_bps: float = 0.0  # the threshold (per-unit hurdle) this evaluation applied
    owner: str = ""  # the detector process that owns this window (Kafka; "" in one process)
    # Kind of window (issue 18): "spot" = the same symbol bought on one venue and sold
    # on another; "basis" = spot bought, perpetual sold (``sell_symbol`` ends -PERP);
    # "perp" = perp vs perp across venues. ``edge.py`` states each formula.
    kind: str = "spot"
    basis_bps: float = 0.0  # perp price over spot price, bps (basis kind)
    funding_rate: float = 0.0  # the perp's current funding rate per interval (fraction)
    funding_interval_h: float = 0.0  # hours between fundings (0 = unknown)
    next_funding_ts_ns: int = 0
    carry_apr: float = 0.0  # annualized carry of holding the position (fraction per year)
    # Catchability (issue 17): P(both legs still fill at >= threshold after our round
    # trip) and the expected value profit x p_catch; None until a model has estimated it.
    p_catch: float | None = None
    ev: float | None = None  # quote currency, like ``profit``
    ev_bps: float | None = None
    v: int = SCHEMA_VERSION


class OpenSet(msgspec.Struct, kw_only=True):
    """Every window one detector process has open, published periodically, on
    (re)connect and after a rebalance. Viewers and the executor close any window
    of that owner the set no longer lists, so an event lost in an outage (or a
    detector killed before it could close its windows) never leaves one open."""

    owner: str  # the detector process (host/pid/start)
    host: str = ""
    started_ns: int = 0  # when that process started (tells a restart from a peer)
    seq: int = 0  # per owner, increasing
    ts_ns: int = 0  # detector clock when the set was taken
    why: str = "periodic"  # periodic | connected | rebalance | stopping
    open: list[Opportunity] = []
    v: int = SCHEMA_VERSION


class Fill(msgspec.Struct, kw_only=True):
    """A simulated IOC taker order's outcome on one venue."""

    opp_id: str
    venue: str
    symbol: str
    side: str  # "buy" | "sell"
    requested: float
    filled: float
    vwap: float
    fee: float  # in the quote currency
    ts_ns: int
    status: str  # "filled" | "partial" | "rejected"
    reason: str = ""
    kind: str = "leg"  # "leg" (one of the two arbitrage orders) | "unwind"
    fee_ccy: str = ""  # the venue's quote currency for this symbol
    limit: float = 0.0  # IOC limit price; 0 = none (unwinds take the book)
    sent_ts_ns: int = 0  # when the order left; ts_ns is its arrival at the venue
    pnl: float = 0.0  # realized PnL booked when this fill completed the trade
    pnl_ccy: str = ""
    v: int = SCHEMA_VERSION


class Funding(msgspec.Struct, kw_only=True):
    """Perpetual-futures venue state for one perp symbol (issue 18): funding, mark and
    index. Published by perp feeds beside their quotes; read by basis detection."""

    venue: str
    symbol: str  # normalized, e.g. BTC-USDT-PERP
    rate: float  # current (predicted) funding rate for the next interval, fraction
    interval_h: float = 8.0
    next_funding_ts_ns: int = 0  # venue time of the next funding
    mark: float = 0.0
    index: float = 0.0
    ts_ns: int = 0  # venue event time (0 = none)
    recv_ts_ns: int = 0
    v: int = SCHEMA_VERSION


class SymbolStatus(msgspec.Struct, kw_only=True):
    state: BookState = BookState.SYNCING
    reason: str = ""
    since_ns: int = 0
    changes: int = 0  # number of state changes


class BookStatus(msgspec.Struct, kw_only=True):
    """A book changed state. Travels on the status topic so a detector in another
    process drops a book the moment its feed stops trusting it."""

    venue: str
    symbol: str
    state: BookState
    reason: str = ""
    ts_ns: int = 0
    v: int = SCHEMA_VERSION


class VenueStatus(msgspec.Struct, kw_only=True):
    """Health of one venue connection and its books, as the UI and status lines show it."""

    venue: str
    state: BookState = BookState.SYNCING
    reason: str = ""
    connected: bool = False
    last_msg_ns: int = 0
    reconnects: int = 0
    msg_rate: float = 0.0
    symbols: dict[str, SymbolStatus] = {}
    counters: dict[str, int] = {}  # gaps, checksum_failures, crossed, resyncs, frame_errors...
    feed_latency_ms: float | None = None  # median venue ts -> receive, skew-corrected
    clock_offset_ms: float | None = None
    v: int = SCHEMA_VERSION


class WalletState(msgspec.Struct, kw_only=True):
    """What the detector may size against: the executor's free balances.

    Published by the execute role on the wallets topic whenever a balance or a
    reservation changes (and periodically on Kafka); a detector in the same
    process or in another one sizes from the latest it received, so both size
    the same. ``free[venue][asset]`` is balance minus what in-flight orders
    hold; an asset not listed has not been touched yet and starts from its
    venue's configured row (``initial``, else ``default``) as a (base, quote)
    pair. While ``enabled`` is false nothing is executed and nothing caps a size.
    """

    enabled: bool
    free: dict[str, dict[str, float]] = {}
    initial: dict[str, tuple[float, float]] = {}
    default: tuple[float, float] = (0.0, 0.0)
    ts_ns: int = 0
    v: int = SCHEMA_VERSION

    def cap(self, venue: str, asset: str, role: str) -> float:
        """The free ``asset`` on ``venue``; ``role`` ("base"/"quote") picks the starting
        row of an asset nobody has traded yet."""
        held = self.free.get(venue)
        if held is not None:
            x = held.get(asset)
            if x is not None:
                return x
        row = self.initial.get(venue, self.default)
        return row[0] if role == "base" else row[1]


encoder = msgspec.json.Encoder()


def to_json(obj: msgspec.Struct) -> bytes:
    return encoder.encode(obj)


# ---------------------------------------------------------------- operator control (issue 14)


class Control(msgspec.Struct, kw_only=True):
    """An operator command on the control topic, applied by every instance of the role
    that owns the setting (``backend.roles.control`` lists who owns what) and
    acknowledged by each with a ``ControlAck``. Never dropped (reliable delivery);
    applied at most once per process (receivers de-duplicate by ``id``)."""

    id: str  # unique per command (sender + counter); acks name it
    cmd: str  # threshold | max_quote_age | venue | symbol | execution | exec_threshold
    args: dict[str, Any] = {}  # e.g. {"min_net_bps": 2.5}, {"venue": "kraken", "enabled": False}
    target: str = ""  # the role that applies it ("" = every role owning ``cmd``)
    owner: str = ""  # one process only (its owner id); "" = every instance of the role
    sender: str = ""  # the process that sent it (a viewer's host/pid/start)
    ts_ns: int = 0  # when the operator gave it (a re-send keeps the original's)
    #: a viewer's re-send of the operator's command ``resend_of`` to a role instance that
    #: started after it; applied only over older settings (``roles.control``)
    resend_of: str = ""
    v: int = SCHEMA_VERSION


class ControlAck(msgspec.Struct, kw_only=True):
    """One role instance's answer to a ``Control`` (or, with ``control_id`` empty, its
    periodic statement of what it applies): ``applied`` is the role's settings AFTER
    the command, as it actually runs them, so a viewer shows applied values, never
    requested ones."""

    control_id: str  # the Control answered; "" = a status statement
    cmd: str  # the command's cmd; "status" / "stopped" for statements
    role: str  # detect | execute | feed
    owner: str  # the process (host/pid/start)
    applied: dict[str, Any] = {}
    ok: bool = True
    error: str = ""
    ts_ns: int = 0
    v: int = SCHEMA_VERSION
