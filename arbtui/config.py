"""Typed configuration: load, merge, validate, save.

The default lives in ``config.toml`` at the repository root (shipped inside the
package as ``default_config.toml``). A user file at
``$XDG_CONFIG_HOME/arbtui/config.toml`` is merged over it, and ``--config PATH``
is merged last. Every validation failure is a ``ConfigError`` whose message
names the file, the key, the bad value and what is allowed; the CLI prints it
as one line and exits 2.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from arbtui import venues
from arbtui.model import VENUES

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}$")
#: A perpetual-futures symbol: its underlying BASE-QUOTE plus ``-PERP`` (perp venues only).
PERP_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,12}-[A-Z0-9]{2,12}-PERP$")
MAX_BPS = 10_000.0
#: Smallest max_quote_age_ms / conversion max_age_ms: twice the feeds' liveness
#: refresh (arbtui.backend.feeds.base.LIVE_REFRESH_NS, 250 ms; a test checks the two agree).
MIN_QUOTE_AGE_MS = 500.0


class ConfigError(Exception):
    """A config problem, already phrased for the operator (one line)."""


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


# --------------------------------------------------------------------------- paths


def default_config_path() -> Path:
    here = Path(__file__).resolve().parent
    root = here.parent / "config.toml"
    return root if root.is_file() else here / "default_config.toml"


def user_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "arbtui" / "config.toml"


# --------------------------------------------------------------------------- load


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # tomllib puts "(at line N, column M)" in the message already.
        raise ConfigError(f"{path}: TOML syntax error: {e}") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` onto ``base``; tables merge, everything else replaces."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _lookup(raw: dict[str, Any], path: list[str]) -> Any:
    cur: Any = raw
    for p in path:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            return None
    return cur


_PATH_RE = re.compile(r"`\$((?:\.[^`.\[]+|\[\d+\]|\[[^\]]+\])*)`")


def _msgspec_error(e: msgspec.ValidationError, raw: dict[str, Any], origin: dict[str, Path]) -> str:
    msg = str(e)
    m = _PATH_RE.search(msg)
    parts: list[str] = []
    if m:
        for tok in re.findall(r"\.([^.\[]+)|\[(\d+)\]|(\[\.\.\.\])", m.group(1)):
            name, idx, anykey = tok
            if anykey:
                # msgspec says "[...]" for a dict key; find which entry fails.
                parts.append(_failing_key(raw, parts) or "?")
            else:
                parts.append(name or idx)
    head = msg.split(" - at ")[0]
    unknown = re.match(r"Object contains unknown field `([^`]+)`", head)
    if unknown:
        parts = parts + [unknown.group(1)]
        key = ".".join(parts)
        allowed = _allowed_keys(parts[:-1])
        return (f"{_file_for(parts, origin)}: unknown key '{key}'; allowed keys here: "
                f"{', '.join(allowed) if allowed else 'see config.toml'}")
    key = ".".join(parts) or "<root>"
    bad = _lookup(raw, parts)
    import typing

    tp = _type_at(parts)
    if typing.get_origin(tp) is Literal:
        # msgspec names the bad enum value but not the good ones; the operator needs those.
        head = f"{head}; allowed: {', '.join(repr(a) for a in typing.get_args(tp))}"
    return f"{_file_for(parts, origin)}: key '{key}' = {bad!r}: {head.lower()}"


def _type_at(parts: list[str]) -> Any:
    import typing

    tp: Any = Config
    for p in parts:
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            tp = typing.get_type_hints(tp).get(p)
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return None
    return tp


def _failing_key(raw: dict[str, Any], parts: list[str]) -> str | None:
    import typing

    tp = _type_at(parts)
    container = _lookup(raw, parts)
    if typing.get_origin(tp) is not dict or not isinstance(container, dict):
        return None
    vt = typing.get_args(tp)[1]
    for k, v in container.items():
        try:
            msgspec.convert(v, vt, strict=True)
        except msgspec.ValidationError:
            return str(k)
    return None


def _allowed_keys(parts: list[str]) -> list[str]:
    """Field names of the config table at ``parts``."""
    tp = _type_at(parts)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return list(tp.__struct_fields__)
    return []


def _file_for(parts: list[str], origin: dict[str, Path]) -> Path:
    """The last file that set this key (or its nearest parent)."""
    for i in range(len(parts), 0, -1):
        k = ".".join(parts[:i])
        if k in origin:
            return origin[k]
    return origin.get("", default_config_path())


def _record_origin(d: dict[str, Any], path: Path, origin: dict[str, Path], prefix: str = "") -> None:
    for k, v in d.items():
        key = f"{prefix}{k}"
        origin[key] = path
        if isinstance(v, dict):
            _record_origin(v, path, origin, key + ".")


def load(path: str | Path | None = None, *, use_user: bool = True) -> Config:
    """Load default ← user ← ``path`` and validate. Raises ConfigError."""
    origin: dict[str, Path] = {}
    dpath = default_config_path()
    raw = _read_toml(dpath)
    origin[""] = dpath
    _record_origin(raw, dpath, origin)
    layers: list[Path] = []
    up = user_config_path()
    if use_user and up.is_file():
        layers.append(up)
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        layers.append(p)
    for lp in layers:
        d = _read_toml(lp)
        _record_origin(d, lp, origin)
        raw = merge(raw, d)
        warn_world_readable_secrets(lp, d)
    return validate(raw, origin)


def warn_world_readable_secrets(path: Path, data: dict[str, Any]) -> bool:
    """Warn (stderr) when a file holding a literal secret can be read by anyone."""
    kafka = data.get("bus", {}).get("kafka", {}) if isinstance(data.get("bus"), dict) else {}
    secret = isinstance(kafka, dict) and any(
        isinstance(kafka.get(k), str) and kafka.get(k) and not kafka[k].startswith("env:")
        for k in ("sasl_password",))
    try:
        world = bool(path.stat().st_mode & 0o004)
    except OSError:
        return False
    if secret and world:
        import sys

        print(f"arbtui: warning: {path} contains a secret (bus.kafka.sasl_password) and is "
              f"world-readable; chmod 600 it or use \"env:VAR\"", file=sys.stderr)
        return True
    return False


def validate(raw: dict[str, Any], origin: dict[str, Path] | None = None) -> Config:
    origin = origin or {"": default_config_path()}
    try:
        cfg = msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as e:
        raise ConfigError(_msgspec_error(e, raw, origin)) from None

    def bad(key: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{_file_for(key.split('.'), origin)}: key '{key}' = {value!r}: {allowed}")

    raw_venues = raw.get("venues") if isinstance(raw.get("venues"), dict) else {}
    for name, vc in cfg.venues.items():
        k = f"venues.{name}"
        if name not in VENUES:
            raise bad(k, name, f"unknown venue; allowed: {', '.join(VENUES)}")
        table = raw_venues.get(name)
        if not (isinstance(table, dict) and "taker_fee_bps" in table):
            vc.taker_fee_bps = venues.get(name).taker_fee_bps
        if not (0 <= vc.taker_fee_bps < MAX_BPS):
            raise bad(f"{k}.taker_fee_bps", vc.taker_fee_bps, "must be >= 0 and < 10000 bps")
        perp = venues.get(name).is_perp
        for i, s in enumerate(vc.symbols):
            if perp and not PERP_SYMBOL_RE.match(s):
                raise bad(f"{k}.symbols[{i}]", s, f"{name} lists perpetual futures: symbol must "
                          "be BASE-QUOTE-PERP in capitals, e.g. BTC-USDT-PERP")
            if not perp and not SYMBOL_RE.match(s):
                raise bad(f"{k}.symbols[{i}]", s, "symbol must be BASE-QUOTE in capitals, e.g. BTC-USD")
        if not (1 <= vc.depth <= 5000):
            raise bad(f"{k}.depth", vc.depth, "must be between 1 and 5000 levels")
        for uk in ("url", "rest_url"):
            u = getattr(vc, uk)
            if u and not re.match(r"^(wss?|https?)://", u):
                raise bad(f"{k}.{uk}", u, "must start with ws://, wss://, http:// or https://")
    d = cfg.detector
    # A negative detection threshold works end to end: the per-unit hurdle then
    # admits depth that loses up to that much (watching near-misses); execution
    # below refuses it.
    for key in ("min_net_bps", "max_plausible_bps"):
        v = getattr(d, key)
        if not (-MAX_BPS < v < MAX_BPS):
            raise bad(f"detector.{key}", v, "NET bps threshold must be > -10000 and < 10000")
    if not (MIN_QUOTE_AGE_MS <= d.max_quote_age_ms < math.inf):
        raise bad("detector.max_quote_age_ms", d.max_quote_age_ms,
                  f"must be >= {MIN_QUOTE_AGE_MS:g} ms (twice the feeds' liveness refresh, "
                  f"so a live book with a quiet top is never judged stale)")
    if d.flat_cost < 0:
        raise bad("detector.flat_cost", d.flat_cost, "must be >= 0")
    if not (0 < d.max_level_share <= 1):
        raise bad("detector.max_level_share", d.max_level_share, "must be in (0, 1]")
    if d.min_notional < 0 or d.max_notional <= 0 or d.min_notional > d.max_notional:
        raise bad("detector.min_notional", d.min_notional, "need 0 <= min_notional <= max_notional, max_notional > 0")
    for cur, conv in d.conversions.items():
        if conv.book:
            if not SYMBOL_RE.match(conv.book):
                raise bad(f"detector.conversions.{cur}.book", conv.book, "symbol must be BASE-QUOTE")
            if conv.venue not in VENUES:
                raise bad(f"detector.conversions.{cur}.venue", conv.venue, f"allowed: {', '.join(VENUES)}")
            base, _, to = conv.book.partition("-")
            if base != cur or (conv.to and conv.to != to):
                raise bad(f"detector.conversions.{cur}.book", conv.book,
                          f"a conversion book for {cur} must be {cur}-<target>")
            if not (MIN_QUOTE_AGE_MS <= conv.max_age_ms < math.inf):
                raise bad(f"detector.conversions.{cur}.max_age_ms", conv.max_age_ms,
                          f"must be >= {MIN_QUOTE_AGE_MS:g} ms (twice the feeds' liveness refresh)")
        elif conv.rate <= 0:
            raise bad(f"detector.conversions.{cur}.rate", conv.rate, "give book+venue, or a fixed rate > 0")
        elif not conv.to or conv.to == cur:
            raise bad(f"detector.conversions.{cur}.to", conv.to,
                      f"a fixed rate needs the target currency it converts {cur} into")
    e = cfg.execution
    if not (0 <= e.min_net_bps < MAX_BPS):
        raise bad("execution.min_net_bps", e.min_net_bps,
                  "NET bps threshold must be >= 0 and < 10000 (simulated orders are only sent "
                  "for depth expected to earn at least this)")
    for v, ms in e.latency_ms.items():
        if v not in VENUES:
            raise bad(f"execution.latency_ms.{v}", v, f"unknown venue; allowed: {', '.join(VENUES)}")
        if ms < 0:
            raise bad(f"execution.latency_ms.{v}", ms, "must be >= 0 ms")
    for v, w in e.wallets.items():
        if v not in VENUES:
            raise bad(f"execution.wallets.{v}", v, f"unknown venue; allowed: {', '.join(VENUES)}")
        if w.base < 0 or w.quote < 0:
            raise bad(f"execution.wallets.{v}", (w.base, w.quote), "balances must be >= 0")
    if e.default_latency_ms < 0:
        raise bad("execution.default_latency_ms", e.default_latency_ms, "must be >= 0 ms")
    if not (0 <= e.min_p_catch <= 1):
        raise bad("execution.min_p_catch", e.min_p_catch,
                  "a probability: must be >= 0 and <= 1 (0 = no requirement)")
    if not (0 <= e.min_ev < math.inf):
        raise bad("execution.min_ev", e.min_ev,
                  "expected value in the quote currency: must be >= 0 (0 = no requirement)")
    if not cfg.detector.catch:
        # With the model off no opportunity carries p_catch / ev: the executor would
        # skip every window, silently. Refuse instead.
        for key in ("min_p_catch", "min_ev"):
            if getattr(e, key) > 0:
                raise bad(f"execution.{key}", getattr(e, key), "needs detector.catch = true "
                          "(the catch model off estimates no p_catch / ev); 0 = no requirement")
    if e.jitter_ms < 0 or e.max_notional <= 0:
        raise bad("execution.max_notional", e.max_notional, "must be > 0 (and jitter_ms >= 0)")
    if not (0 < cfg.ui.refresh_hz <= 60):
        raise bad("ui.refresh_hz", cfg.ui.refresh_hz, "must be > 0 and <= 60")
    if cfg.bus.queue_size < 1:
        raise bad("bus.queue_size", cfg.bus.queue_size, "must be >= 1")
    k = cfg.bus.kafka
    if k.partitions < 1 or k.replication < 1:
        raise bad("bus.kafka.partitions", k.partitions, "partitions and replication must be >= 1")
    if k.max_in_flight < 1 or k.reliable_buffer < 1:
        raise bad("bus.kafka.reliable_buffer", k.reliable_buffer,
                  "max_in_flight and reliable_buffer must be >= 1")
    if k.idempotence == "on" and k.acks != "all":
        raise bad("bus.kafka.idempotence", k.idempotence,
                  'the idempotent producer needs acks = "all"; allowed: "auto", "off", or acks = "all"')
    if not (0 < k.snapshot_interval_s < k.owner_timeout_s):
        raise bad("bus.kafka.owner_timeout_s", k.owner_timeout_s,
                  "snapshot_interval_s must be > 0 and below owner_timeout_s")
    s = cfg.sim
    for i, v in enumerate(s.venues):
        if v not in VENUES:
            raise bad(f"sim.venues[{i}]", v, f"unknown venue; allowed: {', '.join(VENUES)}")
    for i, sym in enumerate(s.symbols):
        if not (SYMBOL_RE.match(sym) or PERP_SYMBOL_RE.match(sym)):
            raise bad(f"sim.symbols[{i}]", sym, "symbol must be BASE-QUOTE (or BASE-QUOTE-PERP "
                      "for the perp venues) in capitals, e.g. BTC-USD")
    if s.perps:
        expand_sim_perps(s)
    for key in ("volatility_bps", "dislocation_rate", "dislocation_bps"):
        if getattr(s, key) is not None and getattr(s, key) < 0:
            raise bad(f"sim.{key}", getattr(s, key), "must be >= 0 (leave it out for the fitted value)")
    if s.tick_ms <= 0:
        raise bad("sim.tick_ms", s.tick_ms, "must be > 0")
    if cfg.metrics.listen and not re.match(r"^[\w.\-\[\]:]*:\d{1,5}$", cfg.metrics.listen):
        raise bad("metrics.listen", cfg.metrics.listen, 'must be "host:port", e.g. "127.0.0.1:9464"')
    if not (0 < cfg.journal.flush_ms <= 1000):
        raise bad("journal.flush_ms", cfg.journal.flush_ms, "must be > 0 and <= 1000 ms")
    if not (0.1 <= cfg.headless.status_interval_s < math.inf):
        raise bad("headless.status_interval_s", cfg.headless.status_interval_s,
                  "must be >= 0.1 s (the status line is written at most ten times a second)")
    if not (1 <= cfg.quote_depth <= 100):
        raise bad("quote_depth", cfg.quote_depth, "must be between 1 and 100")
    _validate_alerts(cfg.alerts, bad)
    for key in ("opportunity_min_p_catch", "opportunity_min_ev"):
        if not cfg.detector.catch and getattr(cfg.alerts, key) is not None:  # never fires
            raise bad(f"alerts.{key}", getattr(cfg.alerts, key), "needs detector.catch = true "
                      "(the catch model off estimates no p_catch / ev); leave it out: rule off")
    return cfg


def expand_sim_perps(s: SimConfig) -> None:
    """``[sim] perps = true``: the perp venues join the demo, and for each base asset
    of ``symbols`` so do ``BASE-USDT`` (the spot leg on the same exchange) and
    ``BASE-USDT-PERP`` (every simulated perp venue is a linear USDT-margined one)."""
    for v in venues.perp_names():
        if v not in s.venues:
            s.venues.append(v)
    bases: list[str] = []
    for sym in s.symbols:
        b = sym.partition("-")[0]
        if b not in bases and b not in ("USDT", "USDC"):
            bases.append(b)
    for b in bases:
        for sym in (f"{b}-USDT", f"{b}-USDT-PERP"):
            if sym not in s.symbols:
                s.symbols.append(sym)


def _validate_alerts(a: AlertsConfig, bad: Any) -> None:
    """[alerts]: ranges a delivery loop and a rate limiter can work with."""
    for i, u in enumerate(a.webhooks):
        if not re.match(r"^(https?://[^/\s]+|env:\w+$)", u):
            raise bad(f"alerts.webhooks[{i}]", u,
                      'must be an http:// or https:// URL, or "env:VAR" to read it from the '
                      "environment")
    if a.format == "telegram" and a.webhooks and not a.telegram_chat_id:
        raise bad("alerts.format", a.format,
                  "needs alerts.telegram_chat_id, the chat sendMessage posts to")
    if not (0 < a.timeout_s <= 120):
        raise bad("alerts.timeout_s", a.timeout_s, "must be > 0 and <= 120 s")
    if not (0 <= a.retries <= 10):
        raise bad("alerts.retries", a.retries, "must be between 0 and 10")
    if not (0 < a.backoff_s <= 60):
        raise bad("alerts.backoff_s", a.backoff_s, "must be > 0 and <= 60 s")
    if not (1 <= a.queue_size <= 100_000):
        raise bad("alerts.queue_size", a.queue_size, "must be between 1 and 100000")
    if not (0 <= a.cooldown_s < math.inf):
        raise bad("alerts.cooldown_s", a.cooldown_s, "must be >= 0 s")
    if not (1 <= a.burst <= 1000):
        raise bad("alerts.burst", a.burst, "must be between 1 and 1000")
    if not (0 < a.per_minute <= 6000):
        raise bad("alerts.per_minute", a.per_minute, "must be > 0 and <= 6000")
    if a.opportunity_min_net_bps is not None and not (-MAX_BPS < a.opportunity_min_net_bps < MAX_BPS):
        raise bad("alerts.opportunity_min_net_bps", a.opportunity_min_net_bps,
                  "NET bps must be > -10000 and < 10000 (leave it out: rule off)")
    if a.opportunity_min_p_catch is not None and not (0 <= a.opportunity_min_p_catch <= 1):
        raise bad("alerts.opportunity_min_p_catch", a.opportunity_min_p_catch,
                  "a probability must be in [0, 1] (leave it out: rule off)")
    if a.opportunity_min_ev is not None and not math.isfinite(a.opportunity_min_ev):
        raise bad("alerts.opportunity_min_ev", a.opportunity_min_ev, "must be a finite number")
    for key in ("venue_down_s", "bus_down_s"):
        v = getattr(a, key)
        if v is not None and not (0 <= v < math.inf):
            raise bad(f"alerts.{key}", v, "must be >= 0 s (leave it out: rule off)")
    for key in ("pnl_below", "pnl_above"):
        v = getattr(a, key)
        if v is not None and not math.isfinite(v):
            raise bad(f"alerts.{key}", v, "must be a finite number (leave it out: rule off)")
    if a.pnl_below is not None and a.pnl_above is not None and a.pnl_below >= a.pnl_above:
        raise bad("alerts.pnl_below", a.pnl_below, "must be below alerts.pnl_above")


# --------------------------------------------------------------------------- save


def save_user(changes: dict[str, Any], path: Path | None = None) -> Path:
    """Merge ``changes`` into the user config and write it atomically.

    Keys the caller did not change are preserved. Secrets (Kafka passwords) are
    never written back. A temp file + rename means a crash mid-save can never
    leave a half-written config.
    """
    import tomli_w

    path = path or user_config_path()
    current: dict[str, Any] = {}
    if path.is_file():
        current = _read_toml(path)
    data = merge(current, changes)
    kafka = data.get("bus", {}).get("kafka", {})
    if isinstance(kafka, dict):
        kafka.pop("sasl_password", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            tomli_w.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def resolve_secret(value: str) -> str:
    """``env:NAME`` reads the secret from the environment, so it needn't sit in a file."""
    if value.startswith("env:"):
        return os.environ.get(value[4:], "")
    return value
