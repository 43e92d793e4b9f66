"""The process GC policy every mode applies (headless, roles, dashboard) is undoable."""

from __future__ import annotations

import gc

from arbtui.backend.gcpolicy import DASHBOARD_GEN0, DASHBOARD_GEN2, ENGINE_GEN0, tune_gc


def test_engine_policy_freezes_startup_objects_raises_gen0_and_is_undone():
    before = gc.get_threshold()
    restore = tune_gc()
    try:
        assert gc.get_threshold() == (ENGINE_GEN0, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        restore()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_dashboard_policy_also_sets_the_full_collection_threshold():
    before = gc.get_threshold()
    restore = tune_gc(DASHBOARD_GEN0, DASHBOARD_GEN2)
    try:
        assert gc.get_threshold() == (DASHBOARD_GEN0, before[1], DASHBOARD_GEN2)
    finally:
        restore()
    assert gc.get_threshold() == before
