"""The ``arbtui`` command line: parse, then dispatch to ``arbtui.commands``.

``arbtui [options]`` runs the dashboard (or ``--no-ui`` headless); ``arbtui COMMAND ...``
runs a subcommand whose module in ``arbtui/commands/`` parses its own options and exposes
``cli_main(command, argv, args)``. Nothing here imports the backend or Textual, so
``arbtui --help`` is quick and every path imports only what it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from arbtui.runtime import check_args, pin_cpus

#: subcommand -> (module in arbtui.commands, one line for ``arbtui --help``).
COMMANDS: dict[str, tuple[str, str]] = {
    "feed": ("roles", "run the feed role: venues -> quotes topic (Kafka bus; --demo: simulator)"),
    "detect": ("roles", "run the detect role: quotes -> opportunities topic (Kafka bus)"),
    "execute": ("roles", "run the execute role: opportunities -> simulated fills, journal"),
    "alerts": ("roles", "run the alerts role: opportunities, states, fills -> webhooks (Kafka)"),
    "record": ("record", "capture live (or --demo) venue sessions into a recording for replay"),
    "replay": ("replay", ("play recordings back through the live engine on recorded time "
                         "(dashboard or headless; --execution trades them)")),
    "sweep": ("sweep", ("replay with execution once per combination of config values, "
                       "table/heatmap of PnL")),
    "report": ("report", "summarize the opportunity/fill journal (terminal charts or --json)"),
    "bench": ("bench", "run the benchmark suite (source checkout only)"),
}


def build_parser() -> argparse.ArgumentParser:
    cmds = COMMANDS
    width = max(len(c) for c in cmds)
    epilog = "commands (each has its own --help, e.g. arbtui record --help):\n" + "\n".join(
        f"  {c:<{width}}  {line}" for c, (_, line) in cmds.items())
    p = argparse.ArgumentParser(prog="arbtui", usage="arbtui [options] | arbtui COMMAND ...",
                                description="Cross-exchange crypto arbitrage console. Without a "
                                            "command: the dashboard (or --no-ui JSON lines).",
                                epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("command", nargs="?", choices=tuple(cmds), help=argparse.SUPPRESS)
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bad = check_args(args)
    if bad:
        print(f"arbtui: {bad}", file=sys.stderr)
        return 2
    if args.cpus:
        try:
            pin_cpus(args.cpus)
        except (ValueError, OSError) as e:
            print(f"arbtui: --cpus {args.cpus!r}: {e}", file=sys.stderr)
            return 2
    if args.command:
        return run_subcommand(args)
    from arbtui.commands.run import run

    return run(args)


def run_subcommand(args: argparse.Namespace) -> int:
    """Hand ``args.args`` (everything after the command) to the command's module."""
    mod = importlib.import_module(f"arbtui.commands.{COMMANDS[args.command][0]}")
    return mod.cli_main(args.command, args.args, args)


if __name__ == "__main__":
    sys.exit(main())
