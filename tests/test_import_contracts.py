"""The architecture's import rules hold (docs/architecture.md).

- ``lint-imports`` keeps every contract in pyproject.toml ([tool.importlinter]): the layers,
  "only arbtui.ui imports Textual", "the simulator is imported only by arbtui.commands", no
  cycle between sibling packages.
- No import cycle between any two modules of arbtui/, counting function-level (lazy) imports:
  a lazy import hides a cycle from the interpreter, not from the design.

Each check is also run on an input that must fail, so a passing run means something.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]

def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    code = "from importlinter.cli import lint_imports_command; lint_imports_command()"
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_lint_imports_keeps_every_contract():
    r = _lint_imports(ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout, r.stdout


def test_contracts_catch_injected_violations(tmp_path):
    # A copy of the package with one violation per contract: lint-imports must report each.
    shutil.copytree(ROOT / "arbtui", tmp_path / "arbtui",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")

    def inject(rel: str, line: str) -> None:
        p = tmp_path / "arbtui" / rel
        p.write_text(p.read_text() + "\n\n" + line + "\n")

    inject("model.py", "def _x():\n    import textual  # noqa")  # core -> Textual (lazily)
    inject("backend/journal.py", "from arbtui.backend.sim import server as _s  # noqa")
    inject("backend/book.py", "def _y():\n    from arbtui import cli  # noqa")  # upward, lazy
    r = _lint_imports(tmp_path)
    out = r.stdout
    assert r.returncode != 0, out
    broken = [ln for ln in out.splitlines() if " BROKEN" in ln]
    assert any(ln.startswith("Layers:") for ln in broken), out
    assert any(ln.startswith("The venue simulator") for ln in broken), out
    assert "arbtui.backend is not allowed to import arbtui.cli" in out, out
    assert "arbtui.model is not allowed to import textual" in out, out
    assert "arbtui.backend.journal -> arbtui.backend.sim" in out, out


def _cycles(graph: grimp.ImportGraph, skip: set[tuple[str, str]] = frozenset()) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    adj = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if (m, i) not in skip)
           for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(adj):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = adj.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def test_no_import_cycle_in_arbtui():
    graph = grimp.build_graph("arbtui", cache_dir=None)  # lazy imports included
    assert _cycles(graph) == []


def test_cycle_check_can_fail():
    g = grimp.ImportGraph()
    for m in ("p", "p.a", "p.b", "p.c", "p.d"):
        g.add_module(m)
    g.add_import(importer="p.a", imported="p.b")
    g.add_import(importer="p.b", imported="p.c")
    g.add_import(importer="p.c", imported="p.a")  # a -> b -> c -> a
    g.add_import(importer="p.d", imported="p.a")  # not part of the cycle
    assert _cycles(g) == [["p.a", "p.b", "p.c"]]
    assert _cycles(g, {("p.c", "p.a")}) == []
