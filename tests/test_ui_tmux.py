"""The dashboard in a real terminal: tmux runs ``arbtui --demo`` at 120x40, send-keys
drives it, capture-pane checks the screen after every step.

Each test uses its own tmux server socket (``-L``), so it never touches the
operator's sessions. Skips when tmux is not installed (CI installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed"),
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parents[1]
SGR = re.compile(r"\x1b\[([0-9;]*)m")
# xterm-256 palette entries that are greys: the cube diagonal and the grey ramp.
GREYS = {16, 59, 102, 145, 188, 231, *range(232, 256)}


class Tmux:
    def __init__(self, tmp: Path, args: list[str], width: int = 120, height: int = 40) -> None:
        self.sock = f"arbtui-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        env = {"XDG_CONFIG_HOME": str(tmp / "cfg"), "XDG_STATE_HOME": str(tmp / "state"),
               "PYTHONPATH": str(ROOT)}
        envs = " ".join(f"{k}={v}" for k, v in env.items())
        # tmux may mark the pane dead without ever reaping the exit status (seen with
        # tmux 3.3a: the child sits as a zombie), so the shell writes the status itself.
        self.exit_file = tmp / f"exit-{uuid.uuid4().hex[:6]}"
        cmd = (f"sh -c 'env {envs} {sys.executable} -m arbtui {' '.join(args)}; "
               f"echo $? > {self.exit_file}'")
        self.state = tmp / "state"
        # One invocation: the server starts with our options before the pane exists,
        # so TERM in the pane is a 256-colour terminal as in a normal tmux setup.
        self.tmux("-f", "/dev/null", "start-server", ";",
                  "set", "-g", "default-terminal", "screen-256color", ";",
                  "new-session", "-d", "-s", "t", "-x", str(width), "-y", str(height), cmd)

    def tmux(self, *args: str) -> str:
        r = subprocess.run(["tmux", "-L", self.sock, *args], check=False, capture_output=True,
                           text=True,
                           timeout=10)
        return r.stdout

    def screen(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "t")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def wait_for(self, pred, timeout: float = 15.0, what: str = "") -> str:
        end = time.monotonic() + timeout
        while True:
            text = self.screen()
            if pred(text):
                return text
            if time.monotonic() > end:
                raise AssertionError(f"screen never showed {what} within {timeout}s:\n{text}")
            time.sleep(0.2)

    def exit_status(self) -> int | None:
        """arbtui's exit status once it has exited (written by the wrapping shell)."""
        try:
            text = self.exit_file.read_text().strip()
        except OSError:
            return None
        return int(text) if text.lstrip("-").isdigit() else None

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def term(tmp_path):
    sessions: list[Tmux] = []

    def start(*args: str) -> Tmux:
        t = Tmux(tmp_path, list(args))
        sessions.append(t)
        return t

    yield start
    for t in sessions:
        t.kill()


def panel_line(screen: str, title: str) -> str:
    """The line under the panel border carrying ``title`` (the panel's state line)."""
    lines = screen.splitlines()
    for i, ln in enumerate(lines):
        col = ln.find(title)
        if col >= 0 and i + 1 < len(lines):
            return lines[i + 1][max(0, col - 3): col + 36]
    return ""


def test_demo_in_tmux_toggle_threshold_help_quit(term):
    t = term("--demo")
    scr = t.wait_for(lambda s: "1 binance" in s and "2 coinbase" in s
                     and panel_line(s, "1 binance").lstrip("│ ").startswith("LIVE")
                     and re.search(r"BTC-USD +\d+\.\d+ +\d+\.\d+", s) is not None,
                     20, "binance LIVE with BTC-USD prices")
    assert "DEMO" in scr.splitlines()[0]
    assert "thr +2.0bps" in scr
    # Issue 15 in a real terminal: the footer's labels whole (no cut label, no stray
    # character), the log's priority columns headed, and execution on raises no alarm.
    from arbtui.ui.screens.keymap import FOOTER_PRIORITY, footer_items
    from arbtui.ui.widgets.keybar import footer_text

    footer = [ln for ln in scr.splitlines() if ln.strip()][-1].rstrip()
    width = max(len(ln) for ln in scr.splitlines())  # the app's width as drawn
    assert footer == footer_text(footer_items(), FOOTER_PRIORITY, width)[0].plain.rstrip(), scr
    log_head = next(ln for ln in scr.splitlines() if "Time" in ln and "Symbol" in ln)
    for col in ("Net", "Profit", "Size", "Life"):
        assert f" {col} " in log_head, log_head
    t.keys("x")
    scr = t.wait_for(lambda s: "EXEC ON" in s.splitlines()[0], 5, "execution on")
    time.sleep(3)
    head = t.screen().splitlines()[0]
    assert not any(w in head for w in ("DROPPED", "LOST", "drops")), head
    t.keys("x")
    t.wait_for(lambda s: "EXEC OFF" in s.splitlines()[0], 5, "execution off")
    # 256 colours in tmux: the palette is used, no truecolor sequences.
    esc = t.screen(escapes=True)
    assert "38;5;" in esc and "38;2;" not in esc

    t.keys("1")
    scr = t.wait_for(lambda s: panel_line(s, "1 binance").lstrip("│ ").startswith("DISABLED"),
                     5, "binance DISABLED")
    assert panel_line(scr, "2 coinbase").lstrip("│ ").startswith(("LIVE", "SYNCING", "RESYNC"))

    t.keys("+")
    t.wait_for(lambda s: "thr +2.5bps" in s.splitlines()[0], 5, "threshold +2.5")
    t.keys("-", "-")
    t.wait_for(lambda s: "thr +1.5bps" in s.splitlines()[0], 5, "threshold +1.5")

    t.keys("?")
    scr = t.wait_for(lambda s: "arbtui keys" in s, 5, "help screen")
    assert "Raise the NET threshold by 0.5 bps" in scr
    t.keys("Escape")
    t.wait_for(lambda s: "arbtui keys" not in s, 5, "help closed")

    t.keys("1")
    t.wait_for(lambda s: not panel_line(s, "1 binance").lstrip("│ ").startswith("DISABLED"),
               5, "binance re-enabled")

    t.keys("q")
    end = time.monotonic() + 15
    while (status := t.exit_status()) is None:
        assert time.monotonic() < end, f"arbtui did not exit after q:\n{t.screen().strip()[-600:]}"
        time.sleep(0.2)
    assert status == 0, t.screen()
    log = (t.state / "arbtui" / "arbtui.log")
    text = log.read_text() if log.is_file() else ""
    assert "engine stop failed" not in text and "Traceback" not in text, text[-2000:]


def test_no_color_in_tmux(term):
    t = term("--demo", "--no-color")
    t.wait_for(lambda s: "1 binance" in s and "BTC-USD" in s, 20, "dashboard")
    codes = []
    for m in SGR.finditer(t.screen(escapes=True)):
        parts = m.group(1).split(";")
        for i, p in enumerate(parts):
            if p in ("38", "48") and i + 2 < len(parts) and parts[i + 1] == "5":
                codes.append(int(parts[i + 2]))
            assert not (p in ("38", "48") and i + 1 < len(parts) and parts[i + 1] == "2"), m
    assert codes, "expected some (grey) colours"
    assert set(codes) <= GREYS, sorted(set(codes) - GREYS)
    t.keys("q")
