"""Counting wrappers for tests that must show a fast path actually ran."""

from __future__ import annotations

from typing import Any


def count_taken(monkeypatch: Any, cls: type, name: str) -> list[int]:
    """Wrap ``cls.<name>``, a typed path that returns whether it took the frame;
    the returned one-item list counts the frames it took. Called again, it wraps the
    original method, not the previous spy."""
    taken = [0]
    orig = getattr(cls, name)
    orig = getattr(orig, "__wrapped__", orig)

    def spy(self, *a, **kw):
        done = orig(self, *a, **kw)
        taken[0] += done
        return done

    spy.__wrapped__ = orig
    monkeypatch.setattr(cls, name, spy)
    return taken
