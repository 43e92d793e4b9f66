"""Role processes on the Kafka bus: ``arbtui feed``, ``arbtui detect``, ``arbtui execute``,
``arbtui alerts``.

Each runs ONE role of the engine headless (JSON lines on stdout: the events it
produces and a status line carrying the Kafka state), so a role can live on
its own machine: feeds near each venue, detectors scaled out by consumer
group, the console (``arbtui --role view``) anywhere. A role process alone on
the embedded bus would talk to nobody, so these need ``bus.kind = "kafka"``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from datetime import datetime
from typing import Any

ROLE_HELP = {
    "feed": "venues -> quotes topic (with --demo: the built-in venue simulator)",
    "detect": "quotes topic -> opportunities topic (run any number in one consumer group)",
    "execute": "opportunities topic -> simulated fills and journal",
    "alerts": "opportunities, status and fills topics -> webhook alerts ([alerts] in the config)",
}


def parse_since(text: str, now: float | None = None) -> int:
    """``15m`` / ``2h`` / ``30s`` / ``1d`` ago, or an ISO time -> epoch milliseconds."""
    from arbtui.backend.bus.base import BusError

    now = time.time() if now is None else now
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return int((now - float(m.group(1)) * mult) * 1000)
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise BusError(f"--since {text!r}: give a duration ago (30s, 15m, 2h, 1d) "
                       "or an ISO time (2026-01-31T14:00)") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # a naive time is the operator's local time
    return int(dt.timestamp() * 1000)


def apply_since(engine: Any, text: str) -> None:
    """``--since`` for the viewer: only the Kafka bus keeps history to start from."""
    from arbtui.backend.bus.base import BusError

    ms = parse_since(text)
    if engine.bus.kind != "kafka":
        raise BusError("--since needs bus.kind = \"kafka\" (the embedded bus keeps no history)")
    engine.bus.start_from(ms)


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"arbtui {command}", description=ROLE_HELP[command])
    p.add_argument("--config", metavar="PATH", help="config file merged over the defaults")
    if command == "feed":
        p.add_argument("--demo", action="store_true",
                       help="feed from the built-in venue simulator (offline)")
        p.add_argument("--seed", type=int, help="simulator seed (overrides [sim] seed)")
    if command == "execute":
        p.add_argument("--demo", action="store_true",
                       help="the feeds run the simulator: journal to demo-journal.sqlite, "
                            "sessions marked demo (never the live journal)")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--log-file", metavar="PATH", help="diagnostics log (default: stderr)")
    p.add_argument("--cpus", metavar="LIST", help="pin this process to CPUs, e.g. 4-7")
    p.add_argument("--no-ui", action="store_true", help="accepted for symmetry; roles are headless")
    p.add_argument("--status-interval", type=float, metavar="SECONDS",
                   help="status line period (default [headless] status_interval_s)")
    return p


def cli_main(command: str, argv: list[str], args: argparse.Namespace) -> int:
    from arbtui import runtime

    ns = _parser(command).parse_args(argv)
    bad = runtime.check_args(ns)
    if bad:
        print(f"arbtui {command}: {bad}", file=sys.stderr)
        return 2
    # Options given before the subcommand (``arbtui --config x feed``) count too.
    for name in ("config", "duration", "log_file", "cpus", "seed", "demo"):
        if getattr(ns, name, None) in (None, False) and getattr(args, name, None) not in (None, False):
            setattr(ns, name, getattr(args, name))
    if ns.cpus and ns.cpus != getattr(args, "cpus", None):
        try:
            runtime.pin_cpus(ns.cpus)
        except (ValueError, OSError) as e:
            print(f"arbtui {command}: --cpus {ns.cpus!r}: {e}", file=sys.stderr)
            return 2
    if not hasattr(ns, "seed"):
        ns.seed = None
    cfg = runtime.load_config(ns)
    if cfg.bus.kind != "kafka":
        print(f"arbtui {command}: needs bus.kind = \"kafka\" in the config (a role process on "
              "the embedded bus would talk to nobody; run plain `arbtui` instead)", file=sys.stderr)
        return 2
    if command == "alerts" and not cfg.alerts.webhooks:
        print(f"arbtui {command}: [alerts] webhooks is empty in the config: there is nowhere "
              "to send alerts to", file=sys.stderr)
        return 2
    runtime.setup_logging(ns.log_file)
    return run_role(cfg, command, demo=bool(getattr(ns, "demo", False)), duration=ns.duration,
                    status_interval=ns.status_interval or cfg.headless.status_interval_s)


def run_role(cfg: Any, command: str, *, demo: bool = False, duration: float | None = None,
             status_interval: float = 5.0) -> int:
    from arbtui.backend.bus.base import BusError
    from arbtui.backend.engine import Engine
    from arbtui.headless import run_headless
    from arbtui.runtime import install_uvloop

    install_uvloop()
    mode = "demo" if demo and command == "feed" else "live"
    if command == "execute":
        cfg.execution.enabled = True  # the execute role exists to execute
    try:
        sim = None
        if mode == "demo":
            from arbtui.commands.demo import simulator

            sim = simulator(cfg)
        engine = Engine(cfg, mode=mode, roles=(command,), sim=sim)
        if demo:
            engine.journal_mode = "demo"  # trading the simulator: never the live journal
        return asyncio.run(run_headless(engine, duration, status_interval))
    except KeyboardInterrupt:
        return 0
    except BusError as e:
        print(f"arbtui {command}: {e}", file=sys.stderr)
        return 2
