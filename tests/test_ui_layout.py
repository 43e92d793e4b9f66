"""Charts-only view on a narrow terminal (key ``g``): both charts get rows.

Stacked, the sparklines (auto height) took the whole lower area at 80x24 and
the spread chart was pushed below the footer. These check the geometry the
operator sees, with the real app and engine (tests/ui_fixtures.py).
"""

from __future__ import annotations

import pytest
from ui_fixtures import make_app, seed_market

from arbtui.ui.widgets.sparklines import LatencySparks
from arbtui.ui.widgets.spread_chart import SpreadChart


@pytest.mark.parametrize("size", [(80, 24), (90, 30)])
async def test_charts_only_gives_both_charts_rows(size):
    app, eng, _clock = make_app()
    async with app.run_test(size=size) as pilot:
        await seed_market(eng)
        app.dashboard.sample(force=True)
        await pilot.pause()
        d = app.dashboard
        assert not d.charts_visible()  # narrow: the log has the lower area by default
        await pilot.press("g")
        await pilot.pause()
        assert d.has_class("-chartsonly") and d.charts_visible()
        assert not d.query_one("#left").display
        lower = d.query_one("#lower").region
        sparks = d.query_one(LatencySparks)
        chart = d.query_one(SpreadChart)
        for w in (sparks, chart):
            r = w.region
            # Fully inside the lower area (above the footer), not clipped away.
            assert r.height > 0 and r.y >= lower.y and r.bottom <= lower.bottom, (w, r, lower)
        # Every sparkline row (2 venues, detection, quotes/s) plus the border is visible...
        assert sparks.region.height >= len(sparks.rows) + 2
        # ... and the chart has room for a plot (axis, at least a few lines of data).
        assert chart.region.height >= 8
        assert chart.region.height == lower.height  # side by side: the full height
        # g again gives the log back.
        await pilot.press("g")
        await pilot.pause()
        assert not d.has_class("-chartsonly") and d.query_one("#left").display
