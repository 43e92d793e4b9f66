"""Recorded REST answers: matched by path + instrument parameter, never by host."""

from __future__ import annotations

from arbtui.backend.recording import Line
from arbtui.backend.replay import HttpArchive, url_key


def _arch(*rows: tuple[float, str, str]) -> HttpArchive:
    a = HttpArchive()
    for ts, url, body in rows:
        a.add(Line(t="http", conn="BINANCE.http.0", ts=ts, url=url, data=body))
    return a


def test_url_key_keeps_path_and_identity_params_only():
    assert url_key("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000") == (
        "/api/v3/depth", {"symbol": "BTCUSDT"})
    assert url_key("http://127.0.0.1:5555/api/v3/depth/?limit=5&symbol=btcusdt") == (
        "/api/v3/depth", {"symbol": "BTCUSDT"})
    assert url_key("https://www.okx.com/api/v5/public/instruments?instType=SPOT")[1] == {
        "insttype": "SPOT"}


def test_match_ignores_host_and_limit_but_not_the_symbol():
    a = _arch((10.0, "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000", "nkn"),
              (11.0, "https://api.binance.com/api/v3/depth?symbol=LRCBTC&limit=1000", "lrc"))
    m = a.matching("http://127.0.0.1:1/api/v3/depth?symbol=NKNUSDT&limit=5000")
    assert [r.body for r in m] == ["nkn"]
    assert a.matching("https://api.binance.com/api/v3/depth?symbol=ETHBTC") == []
    assert a.matching("https://api.binance.com/api/v3/ticker?symbol=NKNUSDT") == []


def test_choose_prefers_the_answer_recorded_at_or_after_the_request():
    u = "https://x/api/v3/depth?symbol=NKNUSDT"
    a = _arch((10.0, u, "first"), (20.0, u, "second"), (30.0, u, "third"))
    used: set[int] = set()
    r = a.choose(u, 15_000_000_000, used)
    assert r.body == "second" and r.ts_ns == 20_000_000_000
    used.add(r.idx)
    # Asked again later than anything unused: the latest one recorded before.
    assert a.choose(u, 40_000_000_000, used).body == "third"
    used |= {0, 2}
    assert a.choose(u, 40_000_000_000, used) is None  # nothing left: the adapter sees an error
