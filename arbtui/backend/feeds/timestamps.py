"""The one RFC 3339 timestamp parser of the adapters (Coinbase and Kraken send
event times as text; the others send epoch milliseconds).

Every book message carries one, so the common case is made cheap: everything
up to the second (``2026-08-09T21:05:48``) is converted once and cached (the
frames of one second share it), and the fraction is read as digits. Coinbase's
own layout (nine digits and ``Z``, 30 characters) with a cached second is one
dict lookup and one ``int``; ``benchmarks/micro.py`` (synthetic Coinbase)
measures it. Nanoseconds are kept (``datetime`` would round to microseconds).
"""

from __future__ import annotations

import calendar
from datetime import datetime

#: "<date>T<time up to the second>" -> unix ns. Bounded by clearing.
_second_cache: dict[str, int] = {}


def rfc3339_ns(s) -> int:
    """``2026-08-09T21:05:48.483587501Z`` -> unix ns; any number of fraction
    digits (past nine are cut), ``Z`` or a ``+HH:MM`` offset (none: UTC).
    0 when ``s`` is not a string or not a timestamp: the quote then carries no
    venue time, which is legal, rather than a wrong one."""
    if s.__class__ is not str:
        return 0
    try:
        if len(s) == 30 and s[19] == "." and s[29] == "Z":
            # The Coinbase layout with a second already seen: the head was
            # validated when it was cached, so only the digits are left to check.
            base = _second_cache.get(s[:19])
            frac = s[20:29]
            if base is not None and frac.isdigit():
                return base + int(frac)
        if len(s) < 19:
            return 0
        rest = s[19:]
        off = 0
        if rest[-1:] in ("Z", "z"):
            rest = rest[:-1]
        elif len(rest) >= 6 and rest[-6] in "+-" and rest[-3] == ":":
            hh, mm = rest[-5:-3], rest[-2:]
            if not (hh.isdigit() and mm.isdigit()):
                return 0
            off = (int(hh) * 3600 + int(mm) * 60) * (1 if rest[-6] == "+" else -1)
            rest = rest[:-6]
        ns = 0
        if rest:
            frac = rest[1:]
            if rest[0] != "." or not frac.isdigit():
                return 0
            ns = int((frac + "000000000")[:9])
        head = s[:19]
        base = _second_cache.get(head)
        if base is None:
            # fromisoformat validates the date and time; it sees no offset here.
            dt = datetime.fromisoformat(head)
            if dt.tzinfo is not None:
                return 0
            if len(_second_cache) > 256:
                _second_cache.clear()
            base = _second_cache[head] = calendar.timegm(dt.timetuple()) * 1_000_000_000
        return base - off * 1_000_000_000 + ns
    except (ValueError, TypeError, IndexError):
        return 0
