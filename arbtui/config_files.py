"""The config files on disk: where they live, reading and deep-merging TOML layers,
remembering which file set each key, and writing the user file back atomically.

Secrets (the Kafka SASL password) can be given as ``env:VAR``; a literal one in a
world-readable file is warned about, and ``save_user`` never writes one back.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from arbtui.config_errors import ConfigError

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



def _record_origin(d: dict[str, Any], path: Path, origin: dict[str, Path], prefix: str = "") -> None:
    for k, v in d.items():
        key = f"{prefix}{k}"
        origin[key] = path
        if isinstance(v, dict):
            _record_origin(v, path, origin, key + ".")


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
