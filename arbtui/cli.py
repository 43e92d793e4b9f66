"""Entry points: ``arbtui`` (dashboard), ``arbtui --no-ui``, and the role/tool subcommands.

Textual is imported only on the dashboard path, so headless runs and role
processes never load it (tests/test_import_hygiene.py checks).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from arbtui import config as configmod

SUBCOMMANDS = ("feed", "detect", "execute", "record", "replay", "sweep", "report", "bench")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arbtui", description="Cross-exchange crypto arbitrage console")
    p.add_argument("--config", metavar="PATH", help="config file merged over the defaults")
    p.add_argument("--demo", action="store_true", help="run against the built-in venue simulator (offline)")
    p.add_argument("--no-ui", action="store_true", help="headless: JSON lines on stdout")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this many seconds")
    p.add_argument("--role", choices=("all", "view", "feed", "detect", "execute"), default="all",
                   help="which roles this process runs (view: consume the bus and render only)")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="replay recordings inside the dashboard")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed factor")
    p.add_argument("--seed", type=int, help="simulator seed (overrides [sim] seed)")
    p.add_argument("--no-color", action="store_true", help="monochrome output (NO_COLOR is honoured too)")
    p.add_argument("--log-file", metavar="PATH", help="diagnostics log (default: stderr)")
    p.add_argument("--cpus", metavar="LIST", help="pin this process to CPUs, e.g. 0-3 or 2,3")
    p.add_argument("--since", metavar="TIME",
                   help="--role view on Kafka: read the topics from TIME (15m, 2h, or ISO time)")
    p.add_argument("command", nargs="?", choices=SUBCOMMANDS, help=argparse.SUPPRESS)
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for the rotating log file."""

    def format(self, record: logging.LogRecord) -> str:
        import json

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
    cpus: set[int] = set()
    for part in spec.split(","):
        a, _, b = part.partition("-")
        cpus.update(range(int(a), int(b or a) + 1))
    os.sched_setaffinity(0, cpus)


def load_config(args: argparse.Namespace):
    try:
        cfg = configmod.load(args.config)
    except configmod.ConfigError as e:
        print(f"arbtui: config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.seed is not None:
        cfg.sim.seed = args.seed
    return cfg


def _install_uvloop() -> None:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return
    uvloop.install()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cpus:
        try:
            pin_cpus(args.cpus)
        except (ValueError, OSError) as e:
            print(f"arbtui: --cpus {args.cpus!r}: {e}", file=sys.stderr)
            return 2
    if args.command:
        return run_subcommand(args)
    cfg = load_config(args)
    setup_logging(args.log_file)
    mode = "demo" if args.demo else ("replay" if args.replay else "live")
    if args.role == "view":
        mode = "view"
    if args.role != "all" and cfg.bus.kind != "kafka":
        # A single role on the in-process bus would talk to nobody.
        print(f'arbtui: --role {args.role} needs bus.kind = "kafka" in the config',
              file=sys.stderr)
        return 2
    if args.no_ui:
        return run_headless_main(cfg, args, mode)
    from arbtui.app import run_app  # Textual is imported here and only here

    if not args.log_file:
        # The dashboard owns the terminal; keep diagnostics out of it.
        setup_logging(str(_state_dir() / "arbtui.log"))
    return run_app(cfg, mode=mode, args=args)


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    d = Path(base) / "arbtui"
    d.mkdir(parents=True, exist_ok=True)
    return d


def make_engine(cfg, mode: str, args: argparse.Namespace):
    from arbtui.backend.engine import Engine

    roles = {"all": ("feed", "detect", "execute"), "view": ()}.get(args.role, (args.role,))
    if args.replay:
        from arbtui.backend.recording import RecordingError
        from arbtui.backend.replay import ReplayEngine

        try:
            return ReplayEngine(cfg, args.replay, speed=args.speed,
                                journal_path=getattr(args, "replay_journal", None))
        except RecordingError as e:  # missing/unreadable file: one line, exit 2
            print(f"arbtui: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    engine = Engine(cfg, mode=mode, roles=roles)
    if getattr(args, "since", None):
        from arbtui.roles import apply_since

        apply_since(engine, args.since)
    return engine


def run_headless_main(cfg, args: argparse.Namespace, mode: str) -> int:
    from arbtui.backend.bus.base import BusError
    from arbtui.headless import run_headless

    _install_uvloop()
    try:
        engine = make_engine(cfg, mode, args)
        return asyncio.run(run_headless(engine, args.duration, cfg.headless.status_interval_s))
    except KeyboardInterrupt:
        return 0
    except BusError as e:  # unreachable/unauthorized broker, bad --since: one line
        print(f"arbtui: {e}", file=sys.stderr)
        return 2


def run_subcommand(args: argparse.Namespace) -> int:
    """Role processes and tools; each module owns its own argument parsing."""
    import importlib

    modname = {
        "feed": "arbtui.roles", "detect": "arbtui.roles", "execute": "arbtui.roles",
        "record": "arbtui.backend.record", "replay": "arbtui.commands.replay",
        "sweep": "arbtui.commands.sweep",
        "report": "arbtui.report", "bench": "benchmarks.__main__",
    }[args.command]
    if args.command == "bench":
        # benchmarks/ sits beside arbtui/ in a source checkout and is not installed;
        # the console script's sys.path does not include the checkout.
        root = str(Path(__file__).resolve().parent.parent)
        if (Path(root) / "benchmarks" / "__main__.py").is_file() and root not in sys.path:
            sys.path.insert(0, root)
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        print(f"arbtui: '{args.command}' is not available in this build ({e.name})", file=sys.stderr)
        return 2
    return mod.cli_main(args.command, args.args, args)


if __name__ == "__main__":
    sys.exit(main())
