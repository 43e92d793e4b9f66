"""Reconciling a consumer's open windows against the detectors' open-set snapshots
(issue 14): lost events, silent owners, restarts, late events, windows learned."""

from __future__ import annotations

from arbtui.backend.reconcile import LOST_EVENT, OWNER_LOST, RESTARTED, OpenWindows
from arbtui.model import OpenSet, OppEvent, Opportunity

S = 1_000_000_000


def opp(i: str, owner: str, opened: int, event: OppEvent = OppEvent.OPENED) -> Opportunity:
    return Opportunity(id=i, event=event, symbol="BTC-USD", buy_venue="a", sell_venue="b",
                       buy_price=1.0, sell_price=2.0, gross_bps=1.0, net_bps=1.0,
                       buy_fee_bps=0.0, sell_fee_bps=0.0, opened_ts_ns=opened, ts_ns=opened,
                       owner=owner)


def snap(owner: str, seq: int, ts: int, *opps: Opportunity, host: str = "h",
         started: int = 1) -> OpenSet:
    return OpenSet(owner=owner, host=host, started_ns=started, seq=seq, ts_ns=ts, open=list(opps))


def test_a_window_missing_from_two_snapshots_closes_with_a_reason_and_never_reopens():
    w = OpenWindows(owner_timeout_s=8, snapshot_interval_s=2)
    x, y = opp("x", "d1", 10 * S), opp("y", "d1", 11 * S)
    assert w.on_event(x, 0.0) and w.on_event(y, 0.0)
    # The first snapshot without x may have overtaken x's CLOSED on another partition.
    assert w.on_snapshot(snap("d1", 1, 12 * S, y), 1.0, 12 * S) == []
    assert set(w.open) == {"x", "y"}
    closed = w.on_snapshot(snap("d1", 2, 14 * S, y), 3.0, 14 * S)
    assert [(c.id, c.event, c.reason) for c in closed] == [("x", OppEvent.CLOSED, LOST_EVENT)]
    assert closed[0].lifetime_ms == 4000.0 and closed[0].owner == "d1"
    assert set(w.open) == {"y"}
    # x's real CLOSED (or a retried UPDATED) arriving late changes nothing.
    assert not w.on_event(opp("x", "d1", 10 * S, OppEvent.UPDATED), 3.1)
    assert not w.on_event(opp("x", "d1", 10 * S, OppEvent.CLOSED), 3.1)
    assert set(w.open) == {"y"} and w.ignored_late == 2
    # A window opened after the snapshot was taken is not judged by it.
    z = opp("z", "d1", 15 * S)
    w.on_event(z, 3.2)
    w.on_snapshot(snap("d1", 3, 14 * S + 1, y), 4.0, 16 * S)
    w.on_snapshot(snap("d1", 4, 14 * S + 2, y), 5.0, 16 * S)
    assert "z" in w.open


def test_a_snapshot_teaches_windows_whose_opened_never_arrived():
    w = OpenWindows()
    x = opp("x", "d1", 10 * S)
    assert w.on_snapshot(snap("d1", 1, 12 * S, x), 0.0, 12 * S) == []
    assert set(w.open) == {"x"} and w.learned == 1
    # An older snapshot overtaken by a newer one is ignored.
    w.on_snapshot(snap("d1", 3, 13 * S, x), 0.5, 13 * S)
    w.on_snapshot(snap("d1", 2, 12 * S), 0.6, 13 * S)
    w.on_snapshot(snap("d1", 1, 12 * S), 0.7, 13 * S)
    assert set(w.open) == {"x"}


def test_a_silent_owner_is_judged_only_while_the_bus_is_up():
    w = OpenWindows(owner_timeout_s=8, snapshot_interval_s=2)
    w.on_snapshot(snap("d1", 1, 1 * S, opp("x", "d1", 0)), 0.0, 1 * S)
    w.on_snapshot(snap("d2", 1, 1 * S, opp("y", "d2", 0)), 0.0, 1 * S)
    # Our own outage from t=1 to t=20: nobody can be judged, not even after it.
    assert w.sweep(20.0, None, 20 * S) == []
    assert w.sweep(21.0, 20.0, 21 * S) == []
    w.on_snapshot(snap("d2", 2, 22 * S, opp("y", "d2", 0)), 22.0, 22 * S)
    closed = w.sweep(28.5, 20.0, 28 * S)
    assert [(c.id, c.reason) for c in closed] == [("x", OWNER_LOST)]
    assert set(w.open) == {"y"} and w.reconciled == {OWNER_LOST: 1}
    assert "d1" not in w.owners


def test_a_newer_process_on_the_same_host_means_the_silent_one_restarted():
    w = OpenWindows(owner_timeout_s=8, snapshot_interval_s=2)
    w.on_snapshot(snap("h/1", 1, 1 * S, opp("x", "h/1", 0), started=1), 0.0, 1 * S)
    # A peer on the same host that is alive (seen 1 s ago) is not a restart.
    w.on_snapshot(snap("h/2", 1, 1 * S, opp("y", "h/2", 0), started=2), 0.5, 1 * S)
    w.on_snapshot(snap("h/2", 2, 2 * S, opp("y", "h/2", 0), started=2), 4.5, 2 * S)
    # h/1 has been silent for 5 s when h/3 appears on the same host.
    closed = w.on_snapshot(snap("h/3", 1, 5 * S, started=3), 5.0, 5 * S)
    assert [(c.id, c.reason) for c in closed] == [("x", RESTARTED)]
    assert set(w.open) == {"y"}
    # Another host's detector never counts as a restart of ours.
    closed = w.on_snapshot(snap("g/1", 1, 6 * S, host="g", started=9), 9.0, 6 * S)
    assert closed == [] and set(w.open) == {"y"}


def test_windows_without_an_owner_are_left_alone():
    w = OpenWindows(owner_timeout_s=1, snapshot_interval_s=0.5)
    w.on_event(opp("x", "", 0), 0.0)
    assert w.sweep(100.0, 0.0, 100 * S) == [] and set(w.open) == {"x"}


def test_a_snapshot_from_history_proves_nothing():
    w = OpenWindows(owner_timeout_s=8, snapshot_interval_s=2)
    x = opp("x", "d1", 10 * S)
    w.on_event(x, 0.0)
    # Read with --since: minutes old, out of order with the events it would judge.
    for seq in (1, 2):
        assert w.on_snapshot(snap("d1", seq, 12 * S), 0.0, 200 * S) == []
    assert set(w.open) == {"x"} and w.stale_snapshots == 2 and w.learned == 0


def test_a_snapshot_taken_before_the_consumer_started_is_history():
    """--since reads the topics from the past: snapshots there are out of order with
    the events, even when only seconds old."""
    w = OpenWindows(owner_timeout_s=8, snapshot_interval_s=2, not_before_ns=100 * S)
    x = opp("x", "d1", 97 * S)
    w.on_event(x, 0.0)
    for seq in (1, 2):
        assert w.on_snapshot(snap("d1", seq, 98 * S + seq), 0.1, 101 * S) == []
    assert set(w.open) == {"x"} and w.stale_snapshots == 2
    # A snapshot from after the start counts.
    w.on_snapshot(snap("d1", 3, 102 * S), 2.0, 102 * S)
    closed = w.on_snapshot(snap("d1", 4, 104 * S), 4.0, 104 * S)
    assert [c.id for c in closed] == ["x"]
