"""The core and the headless path never import Textual (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys


def test_headless_path_does_not_import_textual():
    code = (
        "import sys\n"
        "import arbtui.cli, arbtui.headless, arbtui.config, arbtui.model, arbtui.runtime\n"
        "import arbtui.commands.run, arbtui.commands.roles, arbtui.commands.record\n"
        "import arbtui.commands.report, arbtui.commands.demo\n"
        "import arbtui.backend.engine, arbtui.backend.detector, arbtui.backend.book\n"
        "import arbtui.backend.bus.embedded, arbtui.backend.feeds.base, arbtui.backend.sim.server\n"
        "from arbtui.backend.feeds import available\n"
        "[__import__('arbtui.backend.feeds', fromlist=['x']).feed_class(v) for v in available()]\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'textual_plotext'))\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"core imported UI modules: {r.stdout}"


def test_import_hygiene_check_can_fail():
    # the same probe does see Textual when the UI is imported, so the test above is meaningful
    code = "import sys, textual.app\nprint('textual' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "True"
