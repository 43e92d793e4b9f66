"""Recorded REST answers: which recorded response answers an adapter's request.

Requests are matched by path and the parameters that name the instrument (never
the host, never ``limit``-like knobs), handed out in recorded order, one
response per request.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from arbtui.backend.recording import Line

#: Query parameters that name WHAT a REST call is about (the instrument or the
#: instrument class). Anything else (``limit``, ``sz``...) may legitimately
#: differ between the recorder's client and our adapter.
IDENTITY_PARAMS = frozenset({"symbol", "instid", "insttype", "insttypes", "uly", "instfamily",
                             "category", "product_id", "product_ids", "pair", "currency_pair"})


class ReplayHTTPError(OSError):
    """The recording holds no answer for a REST call the adapter made."""


def ns(ts: float) -> int:
    """A recording's float seconds as integer nanoseconds (the replay clock's unit)."""
    return round(ts * 1e9)


def _query(url: str) -> list[tuple[str, str]]:
    return sorted((k.lower(), v.upper()) for k, v in
                  urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def url_key(url: str) -> tuple[str, dict[str, str]]:
    """(path, identity params) of a URL: what matching a request to a recording uses."""
    u = urllib.parse.urlsplit(url)
    path = u.path.rstrip("/") or "/"
    params = {k.lower(): v.upper() for k, v in urllib.parse.parse_qsl(u.query)
              if k.lower() in IDENTITY_PARAMS}
    return path, params


@dataclass
class Resp:
    ts_ns: int
    url: str
    body: str
    idx: int
    path: str
    params: dict[str, str]


class HttpArchive:
    """One venue's recorded REST responses."""

    def __init__(self) -> None:
        self.by_path: dict[str, list[Resp]] = {}
        self.all: list[Resp] = []

    def add(self, ln: Line) -> None:
        path, params = url_key(ln.url or "")
        body = ln.data if isinstance(ln.data, str) else (ln.data or b"").decode("utf-8", "replace")
        r = Resp(ns(ln.ts), ln.url or "", body, len(self.all), path, params)
        self.all.append(r)
        self.by_path.setdefault(path, []).append(r)

    def matching(self, url: str) -> list[Resp]:
        path, params = url_key(url)
        out = [r for r in self.by_path.get(path, ()) if r.params == params]
        out.sort(key=lambda r: (r.ts_ns, r.idx))
        return out

    def choose(self, url: str, used: set[int]) -> Resp | None:
        """The answer to the next request for ``url``: the first unused response recorded
        for it, in recorded order. The same adapter code makes the same requests in the
        same order as when it was recorded, so the k-th request gets the k-th answer;
        it is delivered no earlier than it was recorded (the caller waits). Responses
        to the very same query (``limit`` included) are preferred, so e.g. a small
        "is the book quiet?" probe never takes a full snapshot meant for a resync."""
        cands = [r for r in self.matching(url) if r.idx not in used]
        exact = [r for r in cands if _query(r.url) == _query(url)]
        pick = exact or cands
        return pick[0] if pick else None
