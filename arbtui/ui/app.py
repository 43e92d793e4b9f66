"""The Textual dashboard application and its entry point ``run_app``.

This package (``arbtui.ui``: app, screens, widgets, engine thread) is the only place Textual
is imported; ``arbtui.commands.run`` imports it lazily, so ``--no-ui`` and the role processes
never load Textual. ``run_app`` runs the engine on its own thread and event loop
(``engine_thread.py``); in tests (``threaded=False``) it runs as tasks on the app's loop.
Either way the dashboard samples one engine snapshot per refresh on a timer.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.screen import Screen

from arbtui import config as configmod
from arbtui.backend.gcpolicy import DASHBOARD_GEN0, DASHBOARD_GEN2, tune_gc
from arbtui.ui.engine_thread import EngineThread
from arbtui.ui.screens.dashboard import DashboardScreen
from arbtui.ui.screens.keymap import KEYMAP

log = logging.getLogger("arbtui.ui.app")



def current_settings(engine: Any, cfg: Any, focused: str) -> dict[str, Any]:
    """The operator-controlled settings as dotted keys -> values (what ctrl+s saves)."""
    det = engine.detector
    out: dict[str, Any] = {
        "detector.min_net_bps": float(det.cfg.min_net_bps),
        "detector.max_quote_age_ms": float(det.cfg.max_quote_age_ms),
        "execution.enabled": bool(cfg.execution.enabled),
        "execution.min_net_bps": float(cfg.execution.min_net_bps),
        "ui.focused_symbol": focused,
    }
    venues = list(cfg.venues) + [v for v in getattr(engine, "feeds", {}) if v not in cfg.venues]
    for v in venues:
        out[f"venues.{v}.enabled"] = v not in det.disabled_venues
    disabled = set(det.disabled_symbols)
    if engine.mode == "demo":
        keep = [s for s in cfg.sim.symbols if s not in disabled]
        if keep:
            out["sim.symbols"] = keep
    else:
        for v, vc in cfg.venues.items():
            keep = [s for s in vc.symbols if s not in disabled]
            if keep:
                out[f"venues.{v}.symbols"] = keep
    return out


def baseline_settings(engine: Any, cfg: Any, focused: str) -> dict[str, Any]:
    """The same keys as loaded from config, before the operator touched anything."""
    base = current_settings(engine, cfg, focused)
    for k in base:
        if k.startswith("venues.") and k.endswith(".enabled"):
            v = k.split(".")[1]
            base[k] = cfg.venues[v].enabled if v in cfg.venues else True
    base["ui.focused_symbol"] = cfg.ui.focused_symbol
    return base


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in flat.items():
        cur = out
        *parents, leaf = key.split(".")
        for p in parents:
            cur = cur.setdefault(p, {})
        cur[leaf] = val
    return out


class ArbApp(App):
    """The dashboard. ``clock`` is injectable so snapshot tests can freeze time."""

    CSS_PATH = "app.tcss"
    TITLE = "arbtui"

    def __init__(self, engine: Any, cfg: Any, *, clock: Callable[[], int] = time.time_ns,
                 config_path: Path | None = None, start_engine: bool = True,
                 duration: float | None = None, threaded: bool = False,
                 gc_tuning: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.cfg = cfg
        self.clock = clock
        self.config_path = config_path
        self.start_engine = start_engine
        self.duration = duration
        self._engine_stopped = not start_engine
        # threaded: the engine gets its own thread and loop (what ``arbtui`` runs), so a
        # slow frame never delays detection; tests that drive the engine's bus from the
        # UI loop use the shared loop.
        self.host = EngineThread(engine) if threaded else None
        self._switch_interval: float | None = None
        # gc_tuning (what ``arbtui`` runs; arbtui.backend.gcpolicy) changes process-wide GC state,
        # so tests that build many apps in one process leave it off.
        self.gc_tuning = gc_tuning
        self._gc_restore: Callable[[], None] | None = None
        self.dashboard = DashboardScreen(self.host or engine, cfg, clock)
        self._saved = baseline_settings(engine, cfg, self.dashboard.focus_sym)

    def get_default_screen(self) -> Screen:
        return self.dashboard

    async def on_mount(self) -> None:
        if self.host is not None:
            # Two busy threads share the GIL; a waiting thread gets it after at most one
            # switch interval (default 5 ms), and a key press costs a few hand-offs
            # (UI -> engine control -> UI frame). 1 ms keeps that well under 100 ms at
            # a measured cost in throughput within noise (benchmarks/ui.py).
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(0.001)
        if self.start_engine:
            try:
                if self.host is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.host.start)
                else:
                    await self.engine.start()
            except Exception as e:
                log.exception("engine failed to start")
                self._engine_stopped = True
                self.exit(return_code=2, message=f"arbtui: engine failed to start: {e}")
                return
        if self.gc_tuning and not self._engine_stopped:
            self._gc_restore = tune_gc(DASHBOARD_GEN0, DASHBOARD_GEN2)
        if self.duration:
            self.set_timer(self.duration, self.action_quit)

    # ------------------------------------------------------------------ shutdown

    async def stop_engine(self) -> None:
        if self._engine_stopped:
            return
        self._engine_stopped = True
        try:
            if self.host is not None:
                await asyncio.get_running_loop().run_in_executor(None, self.host.stop)
            else:
                await asyncio.wait_for(self.engine.stop(), 10)
        except Exception:
            log.exception("engine stop failed")

    async def action_quit(self) -> None:
        await self.stop_engine()
        self.exit()

    async def on_unmount(self) -> None:
        # ctrl+c / an exception path may skip action_quit: never leave feeds running.
        await self.stop_engine()
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
        if self._gc_restore is not None:
            self._gc_restore()
            self._gc_restore = None

    # ------------------------------------------------------------------ settings

    def save_settings(self) -> Path:
        """ctrl+s: write what the operator changed since start (or the last save) to the user
        config, merged with what the file already holds. Returns the path written."""
        now = current_settings(self.engine, self.cfg, self.dashboard.focus_sym)
        changed = {k: v for k, v in now.items() if self._saved.get(k) != v}
        path = configmod.save_user(nest(changed), self.config_path)
        self._saved = now
        return path

    # ------------------------------------------------------------------ palette

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        dash = self.dashboard
        seen: set[str] = set()
        for k in KEYMAP:
            if k.action.startswith("toggle_venue(") or k.action == "app.quit" or k.action in seen:
                continue
            seen.add(k.action)
            yield SystemCommand(f"{k.short} ({k.display})", k.help,
                                _runner(dash, k.action))
        for i, v in enumerate(dash.venue_order[:9], start=1):
            yield SystemCommand(f"Toggle venue {v} ({i})",
                                f"Enable/disable {v}: a disabled venue leaves detection at once",
                                _runner(dash, f"toggle_venue({i})"))


def _runner(screen: Screen, action: str) -> Callable[[], Any]:
    def run() -> Any:
        return screen.run_action(action)

    return run


def run_app(engine: Any, cfg: Any, args: argparse.Namespace) -> int:
    """Run the dashboard over ``engine`` (built by the commands layer) until the operator
    quits; ``args`` carries ``--no-color`` and ``--duration``."""
    if getattr(args, "no_color", False):
        # Textual reads NO_COLOR when the App is constructed (monochrome filter).
        os.environ["NO_COLOR"] = "1"
    app = ArbApp(engine, cfg, duration=getattr(args, "duration", None), threaded=True,
                 gc_tuning=True)
    app.run()
    return app.return_code or 0
