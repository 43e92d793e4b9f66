"""Process helpers every entry point shares: config loading, logging, state dir, CPU pinning,
event loop.

These used to live in ``cli.py``, which made every subcommand (and the backend's own CLI glue)
import the top-level parser module and closed an import cycle. This module sits in the core
layer: it imports only the standard library and ``arbtui.config``, never Textual.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from arbtui import config as configmod


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for the rotating log file."""

    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": record.created, "level": record.levelname, "logger": record.name,
             "msg": record.getMessage()}
        if record.exc_info:
            d["exc"] = self.formatException(record.exc_info)
        return json.dumps(d, default=str)


def setup_logging(path: str | None, level: int = logging.INFO) -> None:
    """Structured JSON lines to a rotating file, or plain lines on stderr.

    stdout is never used: in headless mode it carries the event stream.
    """
    handler: logging.Handler
    if path:
        from logging.handlers import RotatingFileHandler

        handler = RotatingFileHandler(path, maxBytes=10_000_000, backupCount=3)
        handler.setFormatter(JsonFormatter())
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # websockets logs every handshake failure with a traceback at INFO/ERROR; our
    # feed loop already reports connection failures once, in one line.
    logging.getLogger("websockets").setLevel(logging.CRITICAL)


def pin_cpus(spec: str) -> None:
    """Pin this process to the CPUs in ``spec`` ("0-3", "2,3"); ValueError/OSError on bad input."""
    cpus: set[int] = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        cpus.update(range(int(a), int(b or a) + 1))
    os.sched_setaffinity(0, cpus)


def load_config(args: Any) -> configmod.Config:
    """Load ``args.config`` over the defaults; apply ``args.seed``; exit 2 on a bad config.

    ``args`` is any object with ``config`` and (optionally) ``seed`` attributes, usually the
    parsed command line. The config error already names file, key and allowed values.
    """
    try:
        cfg = configmod.load(getattr(args, "config", None))
    except configmod.ConfigError as e:
        print(f"arbtui: config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    seed = getattr(args, "seed", None)
    if seed is not None:
        cfg.sim.seed = seed
    return cfg


def state_dir() -> Path:
    """``$XDG_STATE_HOME/arbtui`` (default ``~/.local/state/arbtui``), created on first use."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    d = Path(base) / "arbtui"
    d.mkdir(parents=True, exist_ok=True)
    return d


def install_uvloop() -> None:
    """Use uvloop's event loop when the ``fast`` extra is installed; the stdlib loop otherwise."""
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return
    uvloop.install()


def check_args(args: Any) -> str | None:
    """Flag values argparse takes that would not do what they say (a negative
    duration that exits at once, a zero speed that silently means --max): the
    one-line error for them, or None."""
    d = getattr(args, "duration", None)
    if d is not None and not (0 < d < math.inf):
        return f"--duration {d:g}: allowed: a number of seconds > 0"
    s = getattr(args, "speed", None)
    if s is not None and not s > 0:
        return (f"--speed {s:g}: allowed: > 0 (times the recorded pace); "
                f"use --max for as fast as possible")
    i = getattr(args, "status_interval", None)
    if i is not None and not (0.1 <= i < math.inf):
        return f"--status-interval {i:g}: allowed: >= 0.1 seconds"
    return None
