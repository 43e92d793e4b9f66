"""Typed configuration: load, merge, validate, save.

The default lives in ``config.toml`` at the repository root (shipped inside the
package as ``default_config.toml``). A user file at
``$XDG_CONFIG_HOME/arbtui/config.toml`` is merged over it, and ``--config PATH``
is merged last. Every validation failure is a ``ConfigError`` whose message
names the file, the key, the bad value and what is allowed; the CLI prints it
as one line and exits 2.

This module is the entry point (``from arbtui import config``; ``config.load``) and
re-exports every name of the parts, one concept each:

- ``config_schema``: the tables (structs, defaults) and the symbol/bps constants;
- ``config_errors``: ``ConfigError`` and the operator-facing wording of a decode error;
- ``config_files``: paths, reading/merging TOML layers, key origins, saving, secrets;
- ``config_validate``: the ranges and cross-key rules checked after decoding.
"""

from __future__ import annotations

from pathlib import Path

from arbtui.config_errors import ConfigError
from arbtui.config_files import (
    _read_toml,
    _record_origin,
    default_config_path,
    merge,
    resolve_secret,
    save_user,
    user_config_path,
    warn_world_readable_secrets,
)
from arbtui.config_schema import (
    MAX_BPS,
    MIN_QUOTE_AGE_MS,
    PERP_SYMBOL_RE,
    SYMBOL_RE,
    AlertsConfig,
    BusConfig,
    Config,
    ConversionConfig,
    DetectorConfig,
    ExecutionConfig,
    HeadlessConfig,
    JournalConfig,
    KafkaConfig,
    MetricsConfig,
    SimConfig,
    UIConfig,
    VenueConfig,
    WalletConfig,
)
from arbtui.config_validate import expand_sim_perps, validate
from arbtui.model import VENUES

__all__ = [
    "MAX_BPS", "MIN_QUOTE_AGE_MS", "PERP_SYMBOL_RE", "SYMBOL_RE", "VENUES",
    "AlertsConfig", "BusConfig", "Config", "ConfigError", "ConversionConfig", "DetectorConfig",
    "ExecutionConfig", "HeadlessConfig", "JournalConfig", "KafkaConfig", "MetricsConfig",
    "SimConfig", "UIConfig", "VenueConfig", "WalletConfig",
    "_read_toml", "default_config_path", "expand_sim_perps", "load", "merge", "resolve_secret",
    "save_user", "user_config_path", "validate", "warn_world_readable_secrets",
]


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
