"""``arbtui`` parses and dispatches: every subcommand is listed in ``arbtui --help`` with its
one-line summary and resolves to a module in arbtui/commands with ``cli_main``."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from arbtui import cli

ROOT = Path(__file__).resolve().parents[1]


def test_help_lists_every_subcommand_with_its_line():
    r = subprocess.run([sys.executable, "-m", "arbtui", "--help"], cwd=ROOT, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for name, (_, summary) in cli.COMMANDS.items():
        assert any(ln.split() and ln.split()[0] == name and summary in ln for ln in lines), \
            (name, r.stdout)


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_subcommand_resolves_and_has_its_own_help(name, capsys):
    mod = importlib.import_module(f"arbtui.commands.{cli.COMMANDS[name][0]}")
    assert callable(mod.cli_main)
    with pytest.raises(SystemExit) as e:
        cli.main([name, "--help"])
    assert e.value.code == 0
    assert f"arbtui {name}" in capsys.readouterr().out


def test_unknown_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["frobnicate"])
    assert e.value.code == 2
    assert "frobnicate" in capsys.readouterr().err
