"""Venue health when one venue was recorded over several connections."""

from __future__ import annotations

from arbtui.model import BookState, SymbolStatus, VenueStatus


def merge_status(venue: str, sts: list[VenueStatus]) -> VenueStatus:
    """One venue, several recorded connections: the freshest state per symbol."""
    rank = {BookState.LIVE: 0, BookState.SYNCING: 1, BookState.RESYNC: 2, BookState.STALE: 3,
            BookState.DISABLED: 4}
    syms: dict[str, SymbolStatus] = {}
    for st in sts:
        for s, ss in st.symbols.items():
            cur = syms.get(s)
            if cur is None or rank[ss.state] < rank[cur.state]:
                syms[s] = ss
    counters: dict[str, int] = {}
    for st in sts:
        for k, n in st.counters.items():
            counters[k] = counters.get(k, 0) + n
    state, reason = BookState.LIVE, ""
    for bad in (BookState.RESYNC, BookState.STALE, BookState.SYNCING):
        hit = [s for s, ss in syms.items() if ss.state is bad]
        if hit:
            state, reason = bad, f"{hit[0]}: {syms[hit[0]].reason}"
            break
    live = [st for st in sts if st.connected] or sts
    return VenueStatus(
        venue=venue, state=state, reason=reason, connected=any(st.connected for st in sts),
        last_msg_ns=max(st.last_msg_ns for st in sts), reconnects=max(st.reconnects for st in sts),
        msg_rate=sum(st.msg_rate for st in sts), symbols=syms, counters=counters,
        feed_latency_ms=live[0].feed_latency_ms, clock_offset_ms=live[0].clock_offset_ms)
