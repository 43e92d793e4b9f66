"""``arbtui replay FILE...``: replay recordings in the dashboard, headless (events as
JSON lines) or as top-of-book lines (``--print-quotes``).

With ``--execution`` (or ``execution.enabled`` in the config) the simulated
executor trades on the replayed opportunities on recorded time; headless, its
fills are ``"type": "fill"`` lines beside the opportunities. A replay writes its
own journal (``--journal PATH``, else a fresh file under the state dir; never the
live one) and, headless, ends with a ``"type": "report"`` line: the ``arbtui
report`` summary of that journal (opportunities, fills, realized PnL by venue
pair, fees, and the detected profit the latency model lost).

The replay runs on the bus ``[bus] kind`` names, or the one ``--bus`` names. On
Kafka it uses private topics on the configured cluster (deleted at the end) and
a delivery barrier per step, and prints the same lines as on the embedded bus
(``backend/replay/kafka.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from arbtui.backend.bus.base import BusError
from arbtui.backend.recording import RecordingError, RecordingReader
from arbtui.backend.replay import QuotePrinter, ReplayEngine
from arbtui.backend.shutdown import stop_event
from arbtui.config import Config
from arbtui.runtime import check_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arbtui replay",
        description="Replay recordings (format 2, zstd JSON lines) through the live adapters. "
                    "Exit 0 when every file was read to its end, 3 when a file was damaged "
                    "(replayed up to the damage), 2 on usage/config errors.")
    p.add_argument("files", nargs="+", metavar="FILE", help="recording(s); several merge by time")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--speed", type=float, default=None, help="pace at X times recorded time")
    g.add_argument("--max", action="store_true", help="as fast as possible")
    p.add_argument("--no-ui", action="store_true", help="headless: events as JSON lines on stdout")
    p.add_argument("--print-quotes", action="store_true",
                   help="stdout: one JSON line per top-of-book change, nothing else")
    p.add_argument("--config", metavar="PATH", help="config file merged over the defaults")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    p.add_argument("--log-file", metavar="PATH", help="diagnostics log (default: stderr)")
    p.add_argument("--execution", action="store_true",
                   help="trade the opportunities with the simulated executor (paper wallets)")
    p.add_argument("--bus", choices=("embedded", "kafka"), default=None,
                   help="the bus the roles talk over (default: [bus] kind of the config); "
                        "kafka uses private topics on [bus.kafka]'s cluster, deleted afterwards")
    p.add_argument("--journal", metavar="PATH",
                   help="this replay's journal (default: a new file under the state dir's "
                        "arbtui/replays/; never the live journal)")
    return p


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    from arbtui import runtime

    ns = build_parser().parse_args(argv)
    bad = check_args(ns)
    if bad:
        print(f"arbtui replay: {bad}", file=sys.stderr)
        return 2
    top = args or argparse.Namespace()
    config = ns.config or getattr(top, "config", None)
    log_file = ns.log_file or getattr(top, "log_file", None)
    no_ui = ns.no_ui or bool(getattr(top, "no_ui", False))
    duration = ns.duration if ns.duration is not None else getattr(top, "duration", None)
    speed = 0.0 if ns.max else (ns.speed if ns.speed is not None else getattr(top, "speed", 1.0))
    cfg = runtime.load_config(argparse.Namespace(config=config, seed=getattr(top, "seed", None)))
    if ns.execution:
        cfg.execution.enabled = True
    if ns.bus:
        cfg.bus.kind = ns.bus
    if ns.journal:
        from arbtui.backend.journal import resolve_path

        live = resolve_path(cfg.journal.path).resolve()
        if Path(ns.journal).expanduser().resolve() == live:
            print(f"arbtui replay: --journal {ns.journal} is the live journal; a replay "
                  "writes its own", file=sys.stderr)
            return 2
    if not (no_ui or ns.print_quotes):
        return _run_dashboard(cfg, ns.files, speed, top, ns.journal)
    runtime.setup_logging(log_file)
    try:
        engine = ReplayEngine(cfg, ns.files, speed=speed, journal_path=ns.journal)
    except RecordingError as e:
        print(f"arbtui replay: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run_headless(engine, ns.print_quotes, duration, cfg))
    except KeyboardInterrupt:
        return 130
    except BusError as e:  # the Kafka cluster cannot be reached or used: one line
        print(f"arbtui replay: {e}", file=sys.stderr)
        return 2


async def _run_headless(engine: ReplayEngine, print_quotes: bool, duration: float | None,
                        cfg: Config) -> int:
    out = sys.stdout
    printer = None
    if print_quotes:
        printer = QuotePrinter(out)
        printer.on_broken = lambda: stop.set()
        engine.quote_listeners.append(printer.on_quote)
        engine.state_listeners.append(printer.on_state)
    stop = stop_event(duration)
    loop = asyncio.get_running_loop()
    await engine.start()

    async def until_done() -> None:
        await engine.finished.wait()
        stop.set()

    watcher = loop.create_task(until_done())
    try:
        if printer is None:
            from arbtui.headless import Reporter

            await Reporter(engine, out, cfg.headless.status_interval_s).run(stop)
        else:
            await stop.wait()
    finally:
        watcher.cancel()
        await engine.stop()
        try:
            out.flush()
        except BrokenPipeError:
            if printer is not None:
                printer.broken = True
    if printer is not None and printer.broken:
        # The reader closed the pipe: not an error; keep Python's exit flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    for d in engine.damage:
        print(f"arbtui replay: {d}", file=sys.stderr)
    if printer is None:
        _report(engine, out)
    rs = engine.bus.stats().get("replay")
    if rs is not None:
        print(f"arbtui replay: kafka {engine.cfg.bus.kafka.bootstrap_servers}: "
              f"{rs['rounds']} delivery rounds, {rs['barrier_wait_s']:.1f}s waiting for the "
              f"broker; topics *.replay-{rs['run_id']} "
              f"{'deleted' if rs['topics_deleted'] else 'NOT deleted (see the log)'}",
              file=sys.stderr)
    if engine.error:
        print(f"arbtui replay: failed: {engine.error}", file=sys.stderr)
        return 1
    return 3 if engine.damage else 0


def _report(engine: ReplayEngine, out) -> None:
    """The run's ``arbtui report`` summary: one JSON line on stdout, the table on stderr."""
    from arbtui.backend.journal import resolve_path
    from arbtui.commands import report

    if engine.journal is None:
        print("arbtui replay: journal off: no report", file=sys.stderr)
        return
    path = resolve_path(engine.cfg.journal.path)  # the replay's own (ReplayEngine set it)
    try:
        r = report.build(path)
    except report.ReportError as e:
        print(f"arbtui replay: {e}", file=sys.stderr)
        return
    r.pop("pnl_series", None)  # the chart's data; the journal keeps it
    out.write(json.dumps({"type": "report", **r}, separators=(",", ":")) + "\n")
    out.flush()
    sys.stderr.write(report.render(r, color=False, charts=False))
    print(f"arbtui replay: journal {path} (arbtui report --journal {path})", file=sys.stderr)


def _run_dashboard(cfg: Config, files: list[str], speed: float, top: argparse.Namespace,
                   journal: str | None = None) -> int:
    from arbtui import runtime
    from arbtui.commands.run import run_dashboard  # Textual only on the dashboard path

    try:
        for p in files:
            RecordingReader(p).close()
    except RecordingError as e:
        print(f"arbtui replay: {e}", file=sys.stderr)
        return 2
    ns = argparse.Namespace(**vars(top)) if vars(top) else argparse.Namespace()
    ns.replay = files
    ns.replay_journal = journal
    ns.speed = speed
    ns.no_ui = False
    ns.role = getattr(ns, "role", "all")
    runtime.setup_logging(str(runtime.state_dir() / "arbtui.log"))
    return run_dashboard(cfg, "replay", ns)
