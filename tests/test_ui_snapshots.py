"""SVG snapshots of the dashboard, help and symbol picker (pytest-textual-snapshot).

Deterministic: the engine is fed a fixed sequence of quotes and book states
through its real bus and detector, and both the detector's and the
dashboard's clocks are frozen (tests/ui_fixtures.py). Update after an
intended visual change with ``pytest tests/test_ui_snapshots.py --snapshot-update``
and look at the report before committing.
"""

from __future__ import annotations

import pytest
from ui_fixtures import make_app, seed_market, ticker


def _prepared(press_after: tuple[str, ...] = ()):
    app, eng, clock = make_app()

    async def run_before(pilot) -> None:
        await seed_market(eng, ticker(app, clock))
        clock.advance(1000)
        app.dashboard.sample(force=True)
        await pilot.pause()
        if press_after:
            await pilot.press(*press_after)
            await pilot.pause()
        await pilot.wait_for_scheduled_animations()

    return app, run_before


# The four widths issue 15 names: the log's priority columns (opportunity_log.COLUMNS)
# and a footer without a cut label at each.
@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40), (160, 50)],
                         ids=["80x24", "100x30", "120x40", "160x50"])
def test_snapshot_main(snap_compare, size):
    app, run_before = _prepared()
    assert snap_compare(app, terminal_size=size, run_before=run_before)


def test_snapshot_help(snap_compare):
    app, run_before = _prepared(("question_mark",))
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_snapshot_symbol_picker(snap_compare):
    app, run_before = _prepared(("s",))
    assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)


def test_snapshot_detail(snap_compare):
    app, run_before = _prepared(("enter",))
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_snapshot_charts_only_80x24(snap_compare):
    # Key g on a narrow terminal: venue panels above, sparklines and spread chart side by side.
    app, run_before = _prepared(("g",))
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
