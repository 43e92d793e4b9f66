"""Config errors, phrased for the operator: which file, which key, the bad value, what is
allowed.

msgspec reports a wrong type or an unknown key as a ``$.path.to[0].key`` string; this
module turns that into the key as the operator wrote it, the last file that set it
(default, user file or ``--config``), and the allowed keys or enum values. The CLI
prints a ``ConfigError`` as one line and exits 2.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any, Literal

import msgspec

from arbtui.config_schema import Config


class ConfigError(Exception):
    """A config problem, already phrased for the operator (one line)."""


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
    tp = _type_at(parts)
    if typing.get_origin(tp) is Literal:
        # msgspec names the bad enum value but not the good ones; the operator needs those.
        head = f"{head}; allowed: {', '.join(repr(a) for a in typing.get_args(tp))}"
    return f"{_file_for(parts, origin)}: key '{key}' = {bad!r}: {head.lower()}"


def _type_at(parts: list[str]) -> Any:
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
    # ``validate`` always puts the base file under "" (the default config, or --grid).
    return origin[""]

