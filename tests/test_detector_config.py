"""Config keys of the detector/execution/journal area: bad values name file, key, value, allowed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arbtui import config

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("[detector.conversions.USDT]\nrate = 0.99\n", "detector.conversions.USDT.to", "''",
     "target currency"),
    ("[detector.conversions.USDT]\nbook = 'BTC-USD'\nvenue = 'kraken'\n",
     "detector.conversions.USDT.book", "'BTC-USD'", "USDT-<target>"),
    ("[detector.conversions.USDT]\nbook = 'USDT-USD'\nvenue = 'nyse'\n",
     "detector.conversions.USDT.venue", "'nyse'", "allowed"),
    ("[detector.conversions.USDT]\nbook = 'USDT-USD'\nvenue = 'kraken'\nmax_age_ms = 0.0\n",
     "detector.conversions.USDT.max_age_ms", "0.0", ">= 500"),
    # Issue 12: values that were accepted but did not do what they say.
    ("[execution]\nmin_net_bps = -1.0\n", "execution.min_net_bps", "-1.0", ">= 0"),
    ("[headless]\nstatus_interval_s = 0.0\n", "headless.status_interval_s", "0.0", ">= 0.1"),
    ("[detector]\nmax_quote_age_ms = 100.0\n", "detector.max_quote_age_ms", "100.0", ">= 500"),
    ("[detector]\nmax_level_share = 1.5\n", "detector.max_level_share", "1.5", "(0, 1]"),
    ("[execution]\ndefault_latency_ms = -5.0\n", "execution.default_latency_ms", "-5.0", ">= 0"),
    ("[execution]\none_leg_policy = 'pray'\n", "execution.one_leg_policy", "'pray'", "keep"),
    ("[journal]\nflush_ms = 5000.0\n", "journal.flush_ms", "5000.0", "<= 1000"),
]


@pytest.mark.parametrize(("toml", "key", "bad", "allowed"), CASES)
def test_bad_values_are_rejected_in_process(tmp_path, toml, key, bad, allowed) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    with pytest.raises(config.ConfigError) as ei:
        config.load(p, use_user=False)
    msg = str(ei.value)
    assert str(p) in msg and f"'{key}'" in msg and bad in msg and allowed in msg, msg


def test_cli_exit_2_one_line(tmp_path) -> None:
    toml, key, _bad, _ = CASES[0]
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    r = subprocess.run([sys.executable, "-m", "arbtui", "--config", str(p), "--no-ui",
                        "--duration", "0.1"], capture_output=True, text=True, timeout=60,
                       env=env, cwd=ROOT, check=False)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and key in r.stderr and "Traceback" not in r.stderr


def test_good_conversions_load(tmp_path) -> None:
    p = tmp_path / "good.toml"
    p.write_text("[detector]\nquote_groups = [['USD', 'USDT', 'USDC']]\n"
                 "[detector.conversions.USDT]\nbook = 'USDT-USD'\nvenue = 'kraken'\n"
                 "[detector.conversions.USDC]\nrate = 1.0\nto = 'USD'\n")
    cfg = config.load(p, use_user=False)
    assert cfg.detector.conversions["USDT"].book == "USDT-USD"
    assert cfg.detector.conversions["USDC"].to == "USD"
