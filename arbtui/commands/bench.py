"""``arbtui bench``: the benchmark suite (``python -m benchmarks``) from the console script.

``benchmarks/`` sits beside ``arbtui/`` in a source checkout and is not installed with the
package, so an installed arbtui without the checkout says so in one line (exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path


def cli_main(command: str, argv: list[str], args: argparse.Namespace | None = None) -> int:
    # The console script's sys.path holds site-packages, not the checkout root.
    root = Path(__file__).resolve().parents[2]
    if (root / "benchmarks" / "__main__.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        bench = importlib.import_module("benchmarks.__main__")
    except ModuleNotFoundError as e:
        if e.name not in ("benchmarks", "benchmarks.__main__"):
            raise  # a missing dependency of the suite itself: show it
        print("arbtui bench: needs a source checkout (benchmarks/ beside arbtui/)",
              file=sys.stderr)
        return 2
    return bench.cli_main(command, argv, args)
