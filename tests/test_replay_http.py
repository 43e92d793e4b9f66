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


def test_choose_answers_requests_in_recorded_order_preferring_the_same_query():
    u = "https://x/api/v3/depth?symbol=NKNUSDT&limit=1000"
    probe = "https://x/api/v3/depth?symbol=NKNUSDT&limit=5"
    a = _arch((10.0, u, "first"), (12.0, probe, "probe"), (20.0, u, "second"))
    used: set[int] = set()
    r = a.choose("http://127.0.0.1:9/api/v3/depth?limit=1000&symbol=NKNUSDT", used)
    assert r.body == "first" and r.ts_ns == 10_000_000_000
    used.add(r.idx)
    r = a.choose(probe, used)
    assert r.body == "probe"  # the exact query first, not the next snapshot
    used.add(r.idx)
    # Another client's limit: any answer for the same instrument, in order.
    r = a.choose("https://x/api/v3/depth?symbol=NKNUSDT&limit=5000", used)
    assert r.body == "second"
    used.add(r.idx)
    assert a.choose(u, used) is None  # nothing left: the adapter sees an error
