"""``arbtui`` without a subcommand: the dashboard, or ``--no-ui`` headless JSON lines.

Builds the engine for the chosen mode (live, ``--demo`` with the simulator, ``--replay``
files, ``--role view`` on Kafka) and hands it to the dashboard or the headless reporter.
Textual is imported only on the dashboard path, so headless runs and role processes never
load it (tests/test_import_hygiene.py checks).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from arbtui.runtime import install_uvloop, load_config, setup_logging, state_dir


def run(args: argparse.Namespace) -> int:
    """The main job for the parsed top-level options; returns the exit code."""
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
    if not args.log_file:
        # The dashboard owns the terminal; keep diagnostics out of it.
        setup_logging(str(state_dir() / "arbtui.log"))
    return run_dashboard(cfg, mode, args)


def make_engine(cfg: Any, mode: str, args: argparse.Namespace) -> Any:
    """The engine for ``mode``: a ReplayEngine for ``--replay``, else an Engine running the
    roles ``--role`` names (with the simulator in demo mode)."""
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
    sim = None
    if mode == "demo" and "feed" in roles:
        from arbtui.commands.demo import simulator

        sim = simulator(cfg)
    engine = Engine(cfg, mode=mode, roles=roles, sim=sim)
    if getattr(args, "since", None):
        from arbtui.commands.roles import apply_since

        apply_since(engine, args.since)
    return engine


def run_headless_main(cfg: Any, args: argparse.Namespace, mode: str) -> int:
    from arbtui.backend.bus.base import BusError
    from arbtui.headless import run_headless

    install_uvloop()
    try:
        engine = make_engine(cfg, mode, args)
        return asyncio.run(run_headless(engine, args.duration, cfg.headless.status_interval_s))
    except KeyboardInterrupt:
        return 0
    except BusError as e:  # unreachable/unauthorized broker, bad --since: one line
        print(f"arbtui: {e}", file=sys.stderr)
        return 2


def run_dashboard(cfg: Any, mode: str, args: argparse.Namespace) -> int:
    """Build the engine and run the Textual dashboard until the operator quits."""
    from arbtui.ui.app import run_app  # Textual is imported here and only here

    return run_app(make_engine(cfg, mode, args), cfg, args)
