"""``arbtui sweep REC... --grid KEY=V1,V2,... [--grid ...]``: replay recordings with
execution once per combination of config values and compare what each earned.

Every cell is a full ``arbtui replay --max --execution`` of the same files with
the grid's values set over the loaded config (dotted config keys, e.g.
``detector.min_net_bps``, ``execution.latency_ms.okx``); its numbers are the
ones that replay's ``report`` line shows (``backend/replay/outcome.py`` counts
them the same way). Cells run one process per worker. A replay is
deterministic, so the same grid gives the same table.

The whole grid is validated before any replay starts: an unknown key or a
value of the wrong type is refused naming the key (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import itertools
import json
import logging
import os
import sys
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import msgspec

from arbtui import config as configmod
from arbtui.model import VENUES

#: Config tables keyed by venue name: their keys must name a known venue.
VENUE_KEYED = ("execution.latency_ms", "execution.wallets", "venues")


class GridError(Exception):
    """A bad --grid, --heatmap or --out; the message names the culprit."""


# ---------------------------------------------------------------------- grid


def parse_value(text: str) -> Any:
    """A grid value as TOML reads it (``5`` int, ``2.5`` float, ``true``, ``"x"``);
    anything TOML does not take is a bare string (``unwind``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_grid(specs: list[str]) -> list[tuple[str, list[Any]]]:
    grid: list[tuple[str, list[Any]]] = []
    seen: set[str] = set()
    for spec in specs:
        key, eq, vals = spec.partition("=")
        key = key.strip()
        if not eq or not key:
            raise GridError(f"--grid {spec!r}: expected KEY=V1,V2,... (e.g. "
                            "detector.min_net_bps=2,5,10)")
        if key in seen:
            raise GridError(f"--grid {key}: given twice")
        seen.add(key)
        values = [parse_value(v.strip()) for v in vals.split(",") if v.strip()]
        if not values:
            raise GridError(f"--grid {key}: no values")
        grid.append((key, values))
    if not grid:
        raise GridError("no --grid given")
    return grid


def set_key(raw: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in a raw config dict (a table on the way is created only
    where the config allows free keys; validation then names unknown ones)."""
    parts = key.split(".")
    cur = raw
    for i, p in enumerate(parts[:-1]):
        nxt = cur.get(p)
        if nxt is None:
            nxt = cur[p] = {}
        elif not isinstance(nxt, dict):
            where = ".".join(parts[:i + 1])
            raise GridError(f"--grid {key}: '{where}' is a value, not a table")
        cur = nxt
    if isinstance(cur.get(parts[-1]), dict):
        raise GridError(f"--grid {key}: is a table; name one of its keys")
    cur[parts[-1]] = value


def _check_venue_key(key: str) -> None:
    for prefix in VENUE_KEYED:
        if key.startswith(prefix + "."):
            venue = key[len(prefix) + 1:].split(".", 1)[0]
            if venue not in VENUES:
                raise GridError(f"--grid {key}: unknown venue {venue!r}; allowed: "
                                f"{', '.join(VENUES)}")


def build_cells(base: dict[str, Any], grid: list[tuple[str, list[Any]]]
                ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every combination as (key values, raw config), each one validated."""
    origin = {"": Path("--grid")}
    for key, values in grid:
        _check_venue_key(key)
        for v in values:
            raw = json.loads(json.dumps(base))
            set_key(raw, key, v)
            try:
                configmod.validate(raw, origin)
            except configmod.ConfigError as e:
                raise GridError(f"--grid {key}={v!r}: {e}") from None
    cells = []
    for combo in itertools.product(*(values for _, values in grid)):
        raw = json.loads(json.dumps(base))
        values = {}
        for (key, _), v in zip(grid, combo, strict=True):
            set_key(raw, key, v)
            values[key] = v
        try:
            configmod.validate(raw, origin)
        except configmod.ConfigError as e:
            raise GridError(f"--grid cell {values}: {e}") from None
        cells.append((values, raw))
    return cells


# ---------------------------------------------------------------------- one cell


def run_cell(files: list[str], raw: dict[str, Any]) -> dict[str, Any]:
    """One replay at --max with execution on; the counts of ``Outcome``. Runs in a
    worker process (top-level and picklable)."""
    from arbtui.backend.calibration import CatchOutcomes, brier
    from arbtui.backend.replay import ReplayEngine
    from arbtui.backend.replay.outcome import Outcome

    logging.getLogger().setLevel(logging.WARNING)
    cfg = configmod.validate(raw)
    cfg.execution.enabled = True
    cfg.journal.enabled = False  # the numbers are counted in memory, as the report counts
    # The embedded bus whatever [bus] kind says: the cells run side by side, and a
    # replay on Kafka gives the same lines (replay/kafka.py), only slower.
    eng = ReplayEngine(cfg, files, speed=0, bus_kind="embedded")
    out = Outcome()
    record = eng.record_event
    # Calibration of p_catch in this cell, judged as the report judges it (backend/catch.py).
    judged = CatchOutcomes(lambda: cfg.execution.min_net_bps)
    preds: list[tuple[float, bool]] = []

    def tally(e: Any) -> None:
        out.add(e)
        o = judged.add(e)
        if o is not None:
            preds.append((o.p_catch, o.caught))
        record(e)

    eng.record_event = tally  # type: ignore[method-assign]

    async def run() -> None:
        await eng.start()
        try:
            await eng.finished.wait()
        finally:
            await eng.stop()

    asyncio.run(run())
    return {**out.as_dict(), "error": eng.error, "damage": [str(d) for d in eng.damage],
            "catch": {"executed": len(preds), "caught": sum(c for _, c in preds),
                      "predicted": sum(p for p, _ in preds), "brier": brier(preds)}}


# ---------------------------------------------------------------------- output


def _primary_ccy(rows: list[dict[str, Any]]) -> str:
    tot: dict[str, float] = {}
    for r in rows:
        for c, v in r["realized_pnl"].items():
            tot[c] = tot.get(c, 0.0) + abs(v)
    return max(sorted(tot), key=lambda c: tot[c]) if tot else ""


def _money(d: dict[str, float]) -> str:
    return ", ".join(f"{v:+,.2f} {c}" for c, v in sorted(d.items())) or "0"


def render_table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    head = [*keys, "opps", "fills", "realized PnL", "fees", "lost to latency", "caught/pred",
            "Brier"]
    body = [[*(str(r[k]) for k in keys), str(r["opportunities"]), str(r["fills"]),
             _money(r["realized_pnl"]), _money(r["fees"]), _money(r["latency_loss"]),
             *_catch_cols(r.get("catch"))]
            for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines) + "\n"


def _catch_cols(c: dict[str, Any] | None) -> list[str]:
    """Caught / predicted catches of the executed opportunities, and the Brier score."""
    if not c or not c["executed"]:
        return ["—", "—"]
    return [f"{c['caught']}/{c['predicted']:.1f}", f"{c['brier']:.3f}"]


def render_heatmap(rows: list[dict[str, Any]], kx: str, ky: str, ccy: str, *,
                   color: bool, width: int = 80) -> str:
    """PnL over two keys (the best cell over the other keys), as a plotext matrix
    plot and the same numbers as a grid."""
    import plotext as plt

    xs = sorted({r[kx] for r in rows}, key=lambda v: (str(type(v)), v))
    ys = sorted({r[ky] for r in rows}, key=lambda v: (str(type(v)), v))
    best: dict[tuple[Any, Any], float] = {}
    for r in rows:
        v = r["realized_pnl"].get(ccy, 0.0)
        k = (r[kx], r[ky])
        best[k] = max(best.get(k, v), v)
    grid = [[best.get((x, y), 0.0) for x in xs] for y in ys]
    title = f"realized PnL {ccy}, brighter = more: {ky} (up) by {kx} (across)"
    cw = max(2, min(12, (width - 12) // max(1, len(xs))))
    ch = 2
    if color:
        # matrix_plot draws row 0 at the top while y = 1 is the bottom line: rows go
        # in largest-y first, so the smallest value of ky sits at the bottom.
        big = [[v for v in row for _ in range(cw)] for row in reversed(grid) for _ in range(ch)]
        plt.clear_figure()
        plt.theme("pro")
        plt.plotsize(len(xs) * cw + 14, len(ys) * ch + 5)
        plt.matrix_plot(big)
        plt.xticks([i * cw + cw // 2 + 1 for i in range(len(xs))], [str(x) for x in xs])
        plt.yticks([i * ch + ch // 2 + 1 for i in range(len(ys))], [str(y) for y in ys])
        pic = plt.build()
    else:
        # No colour, no matrix plot: the same cells in shade characters.
        lo = min(min(r) for r in grid)
        hi = max(max(r) for r in grid)
        shades = " .:-=+*#%@"

        def shade(v: float) -> str:
            i = 0 if hi == lo else round((v - lo) / (hi - lo) * (len(shades) - 1))
            return shades[i] * cw

        yw = max(len(str(y)) for y in ys)
        rows_txt = [f"{str(y).rjust(yw)} |" + "".join(shade(v) for v in row)
                    for y, row in zip(reversed(ys), reversed(grid), strict=True)]
        axis = " " * yw + " +" + "-" * (cw * len(xs))
        labels = " " * (yw + 2) + "".join(str(x)[:cw].center(cw) for x in xs)
        pic = "\n".join([*rows_txt, axis, labels]) + f"\n(shades {lo:+,.2f} '{shades[0]}' .. " \
            f"{hi:+,.2f} '{shades[-1]}')"
    cells = [[f"{v:+,.2f}" for v in row] for row in grid]
    w = max(len(str(ky)), *(len(str(y)) for y in ys))
    cwid = max(*(len(str(x)) for x in xs), *(len(c) for row in cells for c in row))
    lines = [f"{ky} \\ {kx}".rjust(w) + "  " + "  ".join(str(x).rjust(cwid) for x in xs)]
    for y, row in zip(ys, cells, strict=True):
        lines.append(str(y).rjust(w) + "  " + "  ".join(c.rjust(cwid) for c in row))
    return title + "\n" + pic + "\n\n" + "\n".join(lines) + "\n"


def write_out(path: Path, rows: list[dict[str, Any]], keys: list[str]) -> None:
    fields = ("opportunities", "opportunity_events", "trades", "fills", "by_status",
              "realized_pnl", "fees", "detected_profit_traded", "latency_loss", "catch")
    objs = [{**{k: r[k] for k in keys}, **{f: r[f] for f in fields}} for r in rows]
    if path.suffix == ".json":
        path.write_text(json.dumps(objs, indent=1) + "\n")
        return
    flat_cols: list[str] = list(keys) + ["opportunities", "opportunity_events", "trades", "fills"]
    for f in ("by_status", "realized_pnl", "fees", "detected_profit_traded", "latency_loss",
              "catch"):
        names = sorted({n for o in objs for n in o[f]})
        flat_cols += [f"{f}.{n}" for n in names]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(flat_cols)
    for o in objs:
        row = []
        for c in flat_cols:
            head, _, sub = c.partition(".")
            if c in o:
                row.append(o[c])
            elif sub and head in o and isinstance(o[head], dict):
                row.append(o[head].get(sub, 0))
            else:
                row.append("")
        w.writerow(row)
    path.write_text(buf.getvalue())


# ---------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="arbtui sweep",
        description="Replay recordings with execution once per combination of config values "
                    "(--max, deterministic) and compare realized PnL. Exit 2 on a bad grid "
                    "(nothing is replayed), 1 when a cell failed.")
    p.add_argument("files", nargs="+", metavar="REC", help="recording(s); several merge by time")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                   help="a dotted config key and its values, e.g. detector.min_net_bps=2,5,10 "
                        "or execution.latency_ms.okx=5,50 (repeatable)")
    p.add_argument("--workers", type=int, default=0,
                   help="processes replaying cells at once (default: one per CPU)")
    p.add_argument("--out", metavar="F.json|F.csv", help="write every cell's numbers here")
    p.add_argument("--heatmap", metavar="KEY_X,KEY_Y",
                   help="the two grid keys of the PnL heatmap (default: the first two)")
    p.add_argument("--config", metavar="PATH", help="config file merged over the defaults")
    p.add_argument("--no-color", action="store_true", help="monochrome heatmap")
    return p


def _progress(done: int, total: int, t0: float) -> None:
    width = 30
    fill = width * done // max(1, total)
    msg = (f"[{'#' * fill}{'.' * (width - fill)}] {done}/{total} cells  "
           f"{time.monotonic() - t0:.0f}s")
    if sys.stderr.isatty():
        sys.stderr.write("\r" + msg + ("\n" if done == total else ""))
    else:
        sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    ns = build_parser().parse_args(argv)
    top = args or argparse.Namespace()
    try:
        cfg = configmod.load(ns.config or getattr(top, "config", None))
    except configmod.ConfigError as e:
        print(f"arbtui sweep: config error: {e}", file=sys.stderr)
        return 2
    base = msgspec.to_builtins(cfg)
    try:
        grid = parse_grid(ns.grid)
        cells = build_cells(base, grid)
        keys = [k for k, _ in grid]
        heat = None
        if ns.heatmap:
            heat = [k.strip() for k in ns.heatmap.split(",")]
            if len(heat) != 2 or any(k not in keys for k in heat):
                raise GridError(f"--heatmap {ns.heatmap}: name two of the grid keys "
                                f"({', '.join(keys)})")
        elif len(keys) >= 2:
            heat = keys[:2]
        out = Path(ns.out) if ns.out else None
        if out is not None and out.suffix not in (".json", ".csv"):
            raise GridError(f"--out {ns.out}: must end in .json or .csv")
        if ns.workers < 0:
            raise GridError(f"--workers {ns.workers}: must be >= 1")
    except GridError as e:
        print(f"arbtui sweep: {e}", file=sys.stderr)
        return 2
    from arbtui.backend.recording import RecordingError, RecordingReader

    files = [str(f) for f in ns.files]
    try:
        for f in files:
            RecordingReader(f).close()
    except RecordingError as e:
        print(f"arbtui sweep: {e}", file=sys.stderr)
        return 2
    workers = max(1, min(ns.workers or os.cpu_count() or 1, len(cells)))
    print(f"arbtui sweep: {len(cells)} cells over {len(files)} recording(s), {workers} "
          f"worker(s)", file=sys.stderr)
    results: list[dict[str, Any] | None] = [None] * len(cells)
    t0 = time.monotonic()
    _progress(0, len(cells), t0)
    if workers == 1:
        for i, (_, raw) in enumerate(cells):
            results[i] = run_cell(files, raw)
            _progress(i + 1, len(cells), t0)
    else:
        import multiprocessing

        # spawn: a fresh interpreter per worker, nothing inherited from this one.
        with ProcessPoolExecutor(max_workers=workers,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futs = {pool.submit(run_cell, files, raw): i for i, (_, raw) in enumerate(cells)}
            for n, fut in enumerate(as_completed(futs), 1):
                results[futs[fut]] = fut.result()
                _progress(n, len(cells), t0)
    rows = [{**values, **res} for (values, _), res in zip(cells, results, strict=True)
            if res is not None]
    failed = [r for r in rows if r["error"]]
    ccy = _primary_ccy(rows)
    # Sorted by PnL in the main currency, best first; ties keep grid order (stable).
    rows.sort(key=lambda r: -r["realized_pnl"].get(ccy, 0.0))
    sys.stdout.write(render_table(rows, keys))
    if heat is not None:
        color = (sys.stdout.isatty() and "NO_COLOR" not in os.environ
                 and not ns.no_color and not getattr(top, "no_color", False))
        # No fill anywhere (e.g. recordings without a cross-venue spread): all zeros.
        sys.stdout.write("\n" + render_heatmap(rows, heat[0], heat[1], ccy or "(no fills)",
                                                color=color))
    if out is not None:
        write_out(out, rows, keys)
        print(f"arbtui sweep: wrote {out}", file=sys.stderr)
    for r in failed:
        print(f"arbtui sweep: cell {({k: r[k] for k in keys})} failed: {r['error']}",
              file=sys.stderr)
    return 1 if failed else 0
