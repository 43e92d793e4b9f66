"""The shared polling helper (tests/polling.py) returns what it waited for and fails
saying what never happened."""

from __future__ import annotations

import pytest
from polling import until


async def test_until_returns_the_first_truthy_value_and_names_what_timed_out():
    n = []
    assert await until(lambda: n.append(1) or (len(n) >= 3 and n), 5, "three polls",
                       every=0.001) == [1, 1, 1]
    with pytest.raises(AssertionError, match=r"timed out after 0.02s waiting for the "
                                             r"impossible: \{'state': 'down'\}$"):
        await until(lambda: False, 0.02, "the impossible", every=0.005,
                    detail=lambda: {"state": "down"})
    # Checked once more at the deadline: a late wake-up still sees it came true.
    flag = []

    async def slow_sleep(s: float) -> None:
        import asyncio

        await asyncio.sleep(0.03)
        flag.append(True)

    assert await until(lambda: flag, 0.01, "the flag", sleep=slow_sleep) == [True]
