"""``arbtui record``: the command-line glue over ``arbtui.backend.record.record_session``.

Parses the options, checks venues and symbols (one line and exit 2 on a bad one), starts the
``--demo`` simulator when asked, and prints a one-line summary. The session itself (adapters
with their recorder tap, instrument lists, the file format) is in ``backend/record.py``.

    arbtui record --venues binance,coinbase --symbols BTC-USDT --duration 60 --out s.jsonl.zst
    arbtui record --demo --venues binance,okx --duration 10 --out demo.jsonl.zst
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from arbtui import runtime
from arbtui import symbols as symmod
from arbtui.backend.record import record_session
from arbtui.backend.shutdown import stop_event
from arbtui.commands.demo import simulator
from arbtui.config import PERP_SYMBOL_RE, SYMBOL_RE, Config
from arbtui.model import VENUES

log = logging.getLogger("arbtui.record")

def _csv(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arbtui record",
        description="Record live venue sessions (raw frames + REST bodies) as a format-2 "
                    "recording (zstd JSON lines) that 'arbtui replay' plays back.")
    p.add_argument("--venues", nargs="+", default=None,
                   help="venues, comma or space separated (default: enabled venues in config)")
    p.add_argument("--symbols", nargs="+", default=None,
                   help="normalized BASE-QUOTE symbols (default: each venue's configured symbols)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: until Ctrl-C)")
    p.add_argument("--out", required=True, metavar="FILE.jsonl.zst")
    p.add_argument("--demo", action="store_true", help="record the built-in simulator (offline)")
    p.add_argument("--config", metavar="PATH", help="config file merged over the defaults")
    p.add_argument("--log-file", metavar="PATH", help="diagnostics log (default: stderr)")
    return p


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    ns = build_parser().parse_args(argv)
    bad = runtime.check_args(ns)
    if bad:
        print(f"arbtui record: {bad}", file=sys.stderr)
        return 2
    top = args or argparse.Namespace()
    cfg = runtime.load_config(argparse.Namespace(config=ns.config or getattr(top, "config", None),
                                                 seed=getattr(top, "seed", None)))
    runtime.setup_logging(ns.log_file or getattr(top, "log_file", None))
    demo = ns.demo or bool(getattr(top, "demo", False))
    duration = ns.duration if ns.duration is not None else getattr(top, "duration", None)
    venues = _csv(ns.venues) if ns.venues else (list(cfg.sim.venues) if demo
                                                else cfg.enabled_venues())
    bad = [v for v in venues if v not in VENUES]
    if bad or not venues:
        print(f"arbtui record: unknown venue(s) {', '.join(bad) or '(none given)'}; "
              f"allowed: {', '.join(VENUES)}", file=sys.stderr)
        return 2
    symbols = _csv(ns.symbols) if ns.symbols else (list(cfg.sim.symbols) if demo else None)
    for s in symbols or []:
        if not (SYMBOL_RE.match(s) or PERP_SYMBOL_RE.match(s)):
            print(f"arbtui record: symbol {s!r} must be BASE-QUOTE in capitals, e.g. BTC-USD "
                  "(BASE-QUOTE-PERP for the perp venues, e.g. BTC-USDT-PERP)", file=sys.stderr)
            return 2
    try:
        return asyncio.run(_main(cfg, venues, symbols, duration, ns.out, demo))
    except KeyboardInterrupt:
        return 0
    except OSError as e:
        print(f"arbtui record: {ns.out}: {e.strerror or e}", file=sys.stderr)
        return 1


async def _main(cfg: Config, venues: list[str], symbols: list[str] | None,
                duration: float | None, out: str, demo: bool) -> int:
    stop = stop_event()
    sim = None
    urls = maps = None
    if demo:
        syms = symbols or list(cfg.sim.symbols)
        sim = simulator(cfg, venues=venues, symbols=syms)
        await sim.start()
        urls = sim.urls()
        maps = {v: symmod.sim_symbol_map(v, syms) for v in venues}
    try:
        res = await record_session(cfg, venues, symbols, duration, out, urls=urls,
                                   symbol_maps=maps, stop=stop)
    finally:
        if sim is not None:
            try:
                await asyncio.wait_for(sim.stop(), 5)
            except TimeoutError:
                log.warning("record: simulator did not stop within 5 s")
    frames = ", ".join(f"{v} {n}" for v, n in sorted(res.frames.items())) or "none"
    print(f"arbtui record: wrote {res.lines} lines to {out} (frames: {frames})", file=sys.stderr)
    return 0
