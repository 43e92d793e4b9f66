"""Config validation through the real CLI: one line, the key, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from arbtui import config, venues

ROOT = Path(__file__).resolve().parents[1]


def run_cli(tmp_path: Path, toml: str, *extra: str) -> subprocess.CompletedProcess:
    p = tmp_path / "bad.toml"
    p.write_text(toml)
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"))
    return subprocess.run(
        [sys.executable, "-m", "arbtui", "--config", str(p), "--no-ui", "--duration", "0.1", *extra],
        check=False, capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )


@pytest.mark.parametrize(
    "toml, key, bad",
    [
        ("[venues.binance]\ntaker_fee_bps = -1.0\n", "venues.binance.taker_fee_bps", "-1.0"),
        ("[detector]\nmin_net_bps = 10000.0\n", "detector.min_net_bps", "10000.0"),
        ("[detector]\nmin_net_bps = 'lots'\n", "detector.min_net_bps", "'lots'"),
        ("[venues.ftx]\nenabled = true\n", "venues.ftx", "'ftx'"),
        ("[venues.kraken]\nsymbols = ['btc/usd']\n", "venues.kraken.symbols[0]", "'btc/usd'"),
        ("[detector]\nmin_net_bsp = 3.0\n", "detector.min_net_bsp", None),
        ("[venues.okx]\nfee = 1.0\n", "venues.okx.fee", None),
        ("[venues.okx]\ndepth = 'deep'\n", "venues.okx.depth", "'deep'"),
        ("[bus]\nkind = 'rabbit'\n", "bus.kind", "'rabbit'"),
        ("[ui]\nrefresh_hz = 0.0\n", "ui.refresh_hz", "0.0"),
        ("[execution.latency_ms]\nbinance = -5.0\n", "execution.latency_ms.binance", "-5.0"),
        ("[sim]\nvenues = ['nasdaq']\n", "sim.venues[0]", "'nasdaq'"),
    ],
)
def test_bad_value_one_line_exit_2(tmp_path, toml, key, bad):
    r = run_cli(tmp_path, toml)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "Traceback" not in r.stderr
    assert "bad.toml" in line  # names the file
    assert key in line  # names the key
    if bad is not None:
        assert bad in line  # shows the bad value
    assert r.stdout == ""


def test_toml_syntax_error_names_line(tmp_path):
    r = run_cli(tmp_path, "[detector]\nmin_net_bps = = 3\n")
    assert r.returncode == 2
    assert "line 2" in r.stderr and "bad.toml" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_config_file(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "arbtui", "--config", str(tmp_path / "nope.toml"), "--no-ui"],
                       check=False, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "nope.toml" in r.stderr and "Traceback" not in r.stderr


def test_user_config_merged_over_default(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "arbtui").mkdir()
    (tmp_path / "arbtui" / "config.toml").write_text("[detector]\nmin_net_bps = 7.5\n")
    cfg = config.load()
    assert cfg.detector.min_net_bps == 7.5
    # untouched keys keep the documented defaults
    assert cfg.detector.max_quote_age_ms == config.load(use_user=False).detector.max_quote_age_ms


def test_user_config_error_names_user_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "arbtui").mkdir()
    (tmp_path / "arbtui" / "config.toml").write_text("[venues.okx]\ntaker_fee_bps = -3.0\n")
    with pytest.raises(config.ConfigError) as e:
        config.load()
    assert str(tmp_path / "arbtui" / "config.toml") in str(e.value)
    assert "venues.okx.taker_fee_bps" in str(e.value)


def test_default_config_is_valid_and_documented():
    cfg = config.load(use_user=False)
    assert set(cfg.venues) == set(venues.names())
    text = (ROOT / "config.toml").read_text()
    # Every key carries a comment on its line or in the block just above it.
    lines = text.splitlines()
    table = ""
    for i, ln in enumerate(lines):
        s = ln.strip()
        if s.startswith("["):
            table = s
        if not s or s.startswith(("#", "[")):
            continue
        if table.startswith("[venues."):
            # venue tables share one documented key list in the comment block above them
            assert f"# {s.split('=')[0].strip()}" in text or f" {s.split('=')[0].strip()}:" in text, ln
            continue
        window = lines[max(0, i - 10): i + 1]
        assert "#" in ln or any(w.strip().startswith("#") for w in window), f"undocumented: {ln}"


def test_save_user_atomic_and_preserves_keys(tmp_path):
    path = tmp_path / "arbtui" / "config.toml"
    path.parent.mkdir()
    path.write_text("[ui]\nrefresh_hz = 4.0\n[detector]\nmax_quote_age_ms = 900.0\n")
    config.save_user({"detector": {"min_net_bps": 3.5}, "bus": {"kafka": {"sasl_password": "s3cret"}}}, path)
    text = path.read_text()
    assert "s3cret" not in text  # secrets are never written back
    data = config._read_toml(path)
    assert data["ui"]["refresh_hz"] == 4.0
    assert data["detector"] == {"max_quote_age_ms": 900.0, "min_net_bps": 3.5}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".config.")]  # no temp left


def test_world_readable_secret_warns(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text('[bus.kafka]\nsasl_password = "hunter2"\n')
    p.chmod(0o644)
    assert config.warn_world_readable_secrets(p, config._read_toml(p))
    err = capsys.readouterr().err
    assert "world-readable" in err and "hunter2" not in err  # never print the secret
    p.chmod(0o600)
    assert not config.warn_world_readable_secrets(p, config._read_toml(p))
    p.write_text('[bus.kafka]\nsasl_password = "env:KAFKA_PW"\n')
    p.chmod(0o644)
    assert not config.warn_world_readable_secrets(p, config._read_toml(p))


def test_resolve_secret_from_env(monkeypatch):
    monkeypatch.setenv("KAFKA_PW", "pw")
    assert config.resolve_secret("env:KAFKA_PW") == "pw"
    assert config.resolve_secret("literal") == "literal"
