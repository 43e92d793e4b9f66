"""The config's tables: every section's keys, types and defaults (msgspec structs).

One struct per TOML table; ``forbid_unknown_fields`` makes a misspelt key an error,
not a silent default. The ranges a value must fall in are checked after decoding, in
``arbtui.config_validate``; the operator-facing wording of a wrong type, in
``arbtui.config_errors``. ``arbtui.config`` is the entry point (load, save).
"""

from __future__ import annotations

import re
from typing import Literal

import msgspec

from arbtui import venues

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}$")
#: A perpetual-futures symbol: its underlying BASE-QUOTE plus ``-PERP`` (perp venues only).
PERP_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}-PERP$")
MAX_BPS = 10_000.0
#: Smallest max_quote_age_ms / conversion max_age_ms: twice the feeds' liveness
#: refresh (arbtui.backend.feeds.base.LIVE_REFRESH_NS, 250 ms; a test checks the two agree).
MIN_QUOTE_AGE_MS = 500.0


class _S(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class VenueConfig(_S):
    enabled: bool = True
    symbols: list[str] = []
    #: A table that leaves it out gets the venue's default from ``arbtui.venues``
    #: (filled in by ``validate``).
    taker_fee_bps: float = 10.0
    url: str = ""  # websocket URL override; "" = the venue's public URL
    rest_url: str = ""  # REST base override (Binance snapshots, instrument lists)
    depth: int = 50  # book depth cap kept locally


class ConversionConfig(_S):
    # Either a live book ("USDT-USD" on a named venue) or a fixed rate.
    book: str = ""
    venue: str = ""
    rate: float = 0.0
    to: str = ""  # target currency of a fixed rate (a book's target is its quote)
    max_age_ms: float = 5000.0


class DetectorConfig(_S):
    min_net_bps: float = 2.0  # NET threshold: edge after both taker fees
    max_quote_age_ms: float = 2000.0
    max_plausible_bps: float = 300.0  # NET edges above this are flagged suspect
    flat_cost: float = 0.0  # per round trip, in the quote currency
    min_notional: float = 10.0
    max_notional: float = 10_000.0
    max_level_share: float = 1.0  # share of each visible level we may take
    catch: bool = True  # estimate p_catch / EV per window (backend/catch.py)
    quote_groups: list[list[str]] = msgspec.field(default_factory=lambda: [["USD", "USDC"], ["USDT"]])
    conversions: dict[str, ConversionConfig] = {}


class WalletConfig(_S):
    base: float = 1.0
    quote: float = 100_000.0


class ExecutionConfig(_S):
    enabled: bool = False
    min_net_bps: float = 5.0  # NET threshold for sending orders
    latency_ms: dict[str, float] = {}
    default_latency_ms: float = 50.0  # venues missing from latency_ms
    jitter_ms: float = 0.0
    jitter_seed: int = 0  # the jitter's random sequence: a replay's fills repeat exactly
    max_notional: float = 5_000.0
    one_leg_policy: Literal["keep", "unwind"] = "keep"
    wallets: dict[str, WalletConfig] = {}
    # Catchability (backend/catch.py): also require this p_catch / expected value
    # (profit x p_catch of the size sent, quote currency); 0 = no requirement.
    min_p_catch: float = 0.0
    min_ev: float = 0.0


class KafkaConfig(_S):
    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "arbtui"
    group_id: str = "arbtui-detect"
    topic_quotes: str = "arbtui.quotes"
    topic_opportunities: str = "arbtui.opportunities"
    topic_fills: str = "arbtui.fills"
    topic_status: str = "arbtui.status"
    topic_wallets: str = "arbtui.wallets"
    topic_funding: str = "arbtui.funding"
    topic_control: str = "arbtui.control"
    partitions: int = 12
    replication: int = 1
    acks: Literal[0, 1, "all"] = 1
    linger_ms: int = 0  # the sender batches per pass itself (docs/tuning.md)
    compression: Literal["none", "lz4", "gzip"] = "none"
    quote_format: Literal["msgpack", "json"] = "msgpack"
    max_batch_size: int = 524288
    max_in_flight: int = 20000
    reliable_buffer: int = 100_000
    idempotence: Literal["auto", "on", "off"] = "auto"
    snapshot_interval_s: float = 2.0
    owner_timeout_s: float = 8.0
    fetch_max_wait_ms: int = 5
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", ""] = ""
    sasl_username: str = ""
    sasl_password: str = ""  # or env:VAR_NAME
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    on_unreachable: Literal["exit", "retry"] = "exit"


class BusConfig(_S):
    kind: Literal["embedded", "kafka"] = "embedded"
    queue_size: int = 10_000
    kafka: KafkaConfig = msgspec.field(default_factory=KafkaConfig)


class UIConfig(_S):
    refresh_hz: float = 10.0
    focused_symbol: str = ""
    log_lines: int = 2000


class SimConfig(_S):
    seed: int = 7
    venues: list[str] = msgspec.field(default_factory=lambda: list(venues.spot_names()))
    symbols: list[str] = msgspec.field(default_factory=lambda: ["BTC-USD", "ETH-USD"])
    #: Add the perpetual-futures venues to the demo: every perp venue joins ``venues``,
    #: and for each base asset of ``symbols`` the spot ``BASE-USDT`` (same-venue
    #: basis) and ``BASE-USDT-PERP`` join ``symbols`` (``validate`` expands them).
    perps: bool = False
    # None = fitted to the real recordings (arbtui/backend/sim/calibration.json)
    volatility_bps: float | None = None  # std dev of a venue mid's 1 s return, bps
    dislocation_rate: float | None = None  # venue dislocations per second per symbol
    dislocation_bps: float | None = None  # median size of a dislocation, bps
    tick_ms: float = 50.0
    faults: dict[str, list[str]] = {}


class JournalConfig(_S):
    enabled: bool = True
    path: str = ""  # "" = per mode under $XDG_STATE_HOME/arbtui/: journal.sqlite, demo-journal.sqlite
    flush_ms: float = 50.0


class MetricsConfig(_S):
    listen: str = ""  # "" = off; e.g. "127.0.0.1:9464"


class HeadlessConfig(_S):
    status_interval_s: float = 5.0


class AlertsConfig(_S):
    """Webhook alerts (``backend/alerts.py``; docs/alerts.md). No webhook = off; every
    rule is off until its key is set."""

    webhooks: list[str] = []  # URLs, or "env:VAR" (a webhook URL is a secret)
    format: Literal["json", "slack", "telegram"] = "json"
    telegram_chat_id: str = ""  # the chat a telegram sendMessage goes to
    timeout_s: float = 5.0  # one delivery attempt, connect to response
    retries: int = 3  # further attempts after a failed one
    backoff_s: float = 1.0  # delay before the first retry, doubling (capped at 60 s)
    queue_size: int = 100  # alerts waiting per webhook; past it the oldest is dropped
    cooldown_s: float = 300.0  # one rule+subject is sent at most once per this
    burst: int = 5  # per-rule token bucket: this many at once ...
    per_minute: float = 6.0  # ... refilled at this rate
    # Rules: None = off.
    opportunity_min_net_bps: float | None = None
    opportunity_min_ev: float | None = None
    opportunity_min_p_catch: float | None = None
    venue_down_s: float | None = None
    bus_down_s: float | None = None
    pnl_below: float | None = None
    pnl_above: float | None = None
    one_leg: bool = False


class Config(_S):
    venues: dict[str, VenueConfig] = {}
    detector: DetectorConfig = msgspec.field(default_factory=DetectorConfig)
    execution: ExecutionConfig = msgspec.field(default_factory=ExecutionConfig)
    bus: BusConfig = msgspec.field(default_factory=BusConfig)
    ui: UIConfig = msgspec.field(default_factory=UIConfig)
    sim: SimConfig = msgspec.field(default_factory=SimConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    headless: HeadlessConfig = msgspec.field(default_factory=HeadlessConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    alerts: AlertsConfig = msgspec.field(default_factory=AlertsConfig)
    quote_depth: int = 10  # levels per side carried in each Quote

    def enabled_venues(self) -> list[str]:
        return [v for v, c in self.venues.items() if c.enabled]

    def symbols(self) -> list[str]:
        out: list[str] = []
        for vc in self.venues.values():
            for s in vc.symbols:
                if vc.enabled and s not in out:
                    out.append(s)
        return out
