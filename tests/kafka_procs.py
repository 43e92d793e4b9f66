"""Run arbtui role processes for the Kafka tests: output to files, parsed JSON lines,
bounded waits, and a guaranteed kill of everything a test started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ARBTUI = [sys.executable, "-m", "arbtui"]


class Proc:
    def __init__(self, name: str, argv: list[str], workdir: Path) -> None:
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_CONFIG_HOME=str(workdir / "xdg"),
                   XDG_STATE_HOME=str(workdir / "state"))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen([*ARBTUI, *argv], stdout=out, stderr=err, env=env,
                                      cwd=workdir, start_new_session=True)

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for ln in self.out_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(ln))
            except json.JSONDecodeError:
                continue  # a line being written right now
        return out

    def events(self) -> list[dict[str, Any]]:
        return [r for r in self.lines() if r.get("type") == "opportunity"]

    def status(self) -> dict[str, Any] | None:
        st = [r for r in self.lines() if r.get("type") == "status"]
        return st[-1] if st else None

    def kafka(self) -> dict[str, Any]:
        st = self.status()
        return (st or {}).get("kafka") or {}

    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 15.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        return self.p.returncode


class Procs:
    """Everything a test started; ``close`` kills what is left (fixture teardown)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.all: list[Proc] = []

    def start(self, name: str, *argv: str) -> Proc:
        p = Proc(name, list(argv), self.workdir)
        self.all.append(p)
        return p

    def close(self) -> None:
        for p in self.all:
            p.stop(5)


def wait_for(pred, timeout: float, what: str, procs: list[Proc] = ()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        for p in procs:
            if not p.alive():
                raise AssertionError(f"{p.name} exited {p.p.returncode} while waiting for {what}:"
                                     f"\n{p.stderr()[-2000:]}")
        time.sleep(0.1)
    detail = "\n".join(f"--- {p.name} stderr:\n{p.stderr()[-1500:]}" for p in procs)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{detail}")
