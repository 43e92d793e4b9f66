"""The config's rules: ranges and cross-key constraints checked after decoding.

Decoding (``msgspec.convert``) settles types and key names; ``validate`` then checks
each value's range and the combinations a run could not work with (an execution
threshold the catch model off can never meet, a telegram format without a chat). A
table without ``taker_fee_bps`` gets the venue's default here, and ``[sim] perps``
is expanded here. Every failure names the file and key (``arbtui.config_errors``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import msgspec

from arbtui import venues
from arbtui.config_errors import ConfigError, _file_for, _msgspec_error
from arbtui.config_files import default_config_path
from arbtui.config_schema import (
    MAX_BPS,
    MIN_QUOTE_AGE_MS,
    PERP_SYMBOL_RE,
    SYMBOL_RE,
    AlertsConfig,
    Config,
    SimConfig,
)
from arbtui.model import VENUES


def validate(raw: dict[str, Any], origin: dict[str, Path] | None = None) -> Config:
    # Every key falls back to the file under "" (the defaults unless the caller says).
    origin = {"": default_config_path(), **(origin or {})}
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
