from __future__ import annotations

import zlib
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbtui.backend.book import Book, BookError, kraken_checksum, okx_checksum


def test_absolute_sizes_and_delete():
    b = Book()
    b.load([["100.0", "1"], ["99.5", "2"]], [["100.5", "3"], ["101", "4"]])
    assert b.best_bid() == ("100.0", "1") and b.best_ask() == ("100.5", "3")
    b.set(True, "100.00", "5")  # same price, other spelling: one level (Decimal key)
    assert len(b.bids) == 2 and b.best_bid() == ("100.00", "5")
    b.set(True, "100", "0")
    assert b.best_bid() == ("99.5", "2")
    b.set(False, "555", "0")  # deleting an unknown level is a no-op
    assert len(b.asks) == 2


@pytest.mark.parametrize("px,qty", [("abc", "1"), ("1", "NaN"), ("Infinity", "1"), ("1", "-2"), ("0", "1"),
                                    ("1", "1e400"), ("1e20", "1"), ("", "1")])
def test_rejects_bad_levels(px, qty):
    with pytest.raises(BookError):
        Book().set(True, px, qty)


def test_truncate_keeps_best():
    b = Book(depth=2)
    b.load([[str(p), "1"] for p in (1, 2, 3)], [[str(p), "1"] for p in (4, 5, 6)])
    b.truncate()
    assert [p for p, _ in b.top_bids(5)] == ["3", "2"]
    assert [p for p, _ in b.top_asks(5)] == ["4", "5"]


def test_crossed():
    b = Book()
    b.load([["10", "1"]], [["11", "1"]])
    assert not b.crossed()
    b.set(True, "11", "1")
    assert b.crossed()


def test_kraken_checksum_formatting_rule():
    # Kraken docs example: price 45285.2 -> "452852", qty 0.00100000 -> "100000".
    b = Book()
    b.load([], [["45285.2", "0.00100000"]])
    assert kraken_checksum(b) == zlib.crc32(b"452852100000")
    # trailing zeros are significant: 0.001 gives "1", not "100000"
    b2 = Book()
    b2.load([], [["45285.2", "0.001"]])
    assert kraken_checksum(b2) == zlib.crc32(b"4528521")


def test_okx_checksum_signed_interleaved():
    b = Book()
    b.load([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"]])
    expect = zlib.crc32(b"3366.1:7:3366.8:9:3366:6")
    expect = expect - (1 << 32) if expect >= 1 << 31 else expect
    assert okx_checksum(b) == expect


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50), st.integers(0, 5)), max_size=200))
def test_book_matches_dict_model(ops):
    """Any sequence of absolute updates gives the same book as a plain dict model."""
    b = Book()
    model = {True: {}, False: {}}
    for is_bid, px, q in ops:
        b.set(is_bid, str(px), str(q))
        if q == 0:
            model[is_bid].pop(Decimal(px), None)
        else:
            model[is_bid][Decimal(px)] = q
    assert [Decimal(p) for p, _ in b.top_bids(1000)] == sorted(model[True], reverse=True)
    assert [Decimal(p) for p, _ in b.top_asks(1000)] == sorted(model[False])


@given(st.integers(1, 5), st.lists(st.lists(st.tuples(st.booleans(), st.integers(1, 40),
                                                   st.integers(0, 3)), max_size=6), max_size=40),
       st.integers(3, 60))
def test_top_dirty_never_misses_a_top_change(n, batches, depth):
    """If ``top_dirty`` is False after a batch, the top-n levels really are unchanged."""
    b = Book(depth=depth)
    b.mark_top(n)
    last = (b.top_bids(n), b.top_asks(n))
    for i, batch in enumerate(batches):
        for is_bid, px, q in batch:
            b.set(is_bid, str(px), str(q))
        b.truncate()
        now = (b.top_bids(n), b.top_asks(n))
        if not b.top_dirty:
            assert now == last
        if i % 2:
            b.mark_top(n)
        else:  # the feeds' path: read the quote's floats and mark in one call
            fb, fa = b.take_top(n)
            assert fb == [(float(p), float(q)) for p, q in now[0]]
            assert fa == [(float(p), float(q)) for p, q in now[1]]
            assert not b.top_dirty
        last = now


def test_float_keys_are_exact_prices():
    b = Book()
    b.set(True, "65083.660", "1")
    b.set(True, "65083.66", "2")  # the same price, other spelling: one level
    b.set(True, "65083.6600000000000000", "3")  # long, but 7 significant digits
    assert len(b.bids) == 1 and b.best_bid() == ("65083.6600000000000000", "3")
    # 15 significant digits apart by one unit in the last place: two levels, in order
    b.set(True, "1234567.89012345", "1")
    b.set(True, "1234567.89012346", "1")
    assert [p for p, _ in b.top_bids(2)] == ["1234567.89012346", "1234567.89012345"]
    # the quote's floats are the strings' own values
    assert b.top_floats(1) == ([(1234567.89012346, 1.0)], [])


@pytest.mark.parametrize("px", ["1234567.890123456", "0.1000000000000000001", "1e-320"])
def test_rejects_prices_a_double_cannot_key_exactly(px):
    # > 15 significant digits could merge two real levels into one key; a
    # subnormal has lost precision. Either is refused, never silently merged.
    with pytest.raises(BookError):
        Book().set(False, px, "1")


_SPELL = (str, lambda d: str(d.normalize()), lambda d: f"{d:.9f}")  # "1.2000" "1.2" "1E+1" ...


@given(st.lists(st.tuples(st.booleans(), st.decimals(min_value=Decimal("0.0001"),
                                                     max_value=99999, places=4),
                          st.integers(0, 3), st.sampled_from(_SPELL)), max_size=120),
       st.integers(1, 6))
def test_top_matches_decimal_model(ops, n):
    """Float-keyed book == a Decimal-keyed model, strings and floats, for any spellings."""
    b = Book()
    model = {True: {}, False: {}}
    for is_bid, px, q, spell in ops:
        s = spell(px)
        b.set(is_bid, s, str(q))
        if q == 0:
            model[is_bid].pop(px, None)
        else:
            model[is_bid][px] = (s, str(q))
    want_b = [model[True][k] for k in sorted(model[True], reverse=True)[:n]]
    want_a = [model[False][k] for k in sorted(model[False])[:n]]
    assert b.top_bids(n) == want_b and b.top_asks(n) == want_a
    fb, fa = b.top_floats(n)
    assert fb == [(float(p), float(q)) for p, q in want_b]
    assert fa == [(float(p), float(q)) for p, q in want_a]
    bb, ba = model[True], model[False]
    assert b.crossed() == bool(bb and ba and max(bb) >= min(ba))


_PX = st.sampled_from(["0.001", "0.00100000", "100", "100.0", "45285.2", "45285.20", "7.5", "0.5"])
_QTY = st.sampled_from(["0.00100000", "0.001", "1", "1.0", "12.345", "0"])


@given(st.lists(st.tuples(st.booleans(), _PX, _QTY), max_size=40))
def test_kraken_checksum_equals_the_literal_digit_rule(ops):
    """The cached per-level texts never change the checksum: compare with the rule
    written out, over books that share and re-spell levels (the cache outlives books)."""
    b = Book()
    for is_bid, px, qty in ops:
        b.set(is_bid, px, qty)

    def fmt(s: str) -> str:
        return s.replace(".", "").lstrip("0")

    text = "".join(fmt(p) + fmt(q) for p, q in b.top_asks(10) + b.top_bids(10))
    assert kraken_checksum(b) == zlib.crc32(text.encode())


class _Lv:
    __slots__ = ("px", "qty", "side")

    def __init__(self, side: str, px: str, qty: str) -> None:
        self.side, self.px, self.qty = side, px, qty


_APX = st.sampled_from(["1", "1.0", "2", "2.50", "3", "4.25", "5", "40", "0", "-1", "nan", "x",
                        "1e400", "1234567.890123456", "12345678901234567"])
_AQTY = st.sampled_from(["0", "0.0", "1", "2.5", "7", "-1", "inf", "", "1e20"])


@given(st.lists(st.lists(st.tuples(st.sampled_from(["bid", "offer", "ask", "other"]), _APX, _AQTY),
                         max_size=8), max_size=30),
       st.integers(1, 4), st.integers(2, 30))
def test_apply_is_set_per_level(batches, n, depth):
    """``Book.apply`` (one call per message) leaves exactly the state ``set`` per
    level leaves, top_dirty included, and stops at the same bad level."""
    sides = {"bid": True, "offer": False, "ask": False}
    a, s = Book(depth), Book(depth)
    for i, batch in enumerate(batches):
        lvs = [_Lv(*t) for t in batch]
        ea = es = None
        try:
            a.apply(lvs, sides)
        except (KeyError, BookError) as e:
            ea = type(e)
        try:
            for lv in lvs:
                s.set(sides[lv.side], lv.px, lv.qty)
        except (KeyError, BookError) as e:
            es = type(e)
        assert ea is es
        for b in (a, s):
            b.truncate()
        assert a.bids == s.bids and a.asks == s.asks and a.top_dirty == s.top_dirty
        assert a.top_floats(1000) == s.top_floats(1000)
        assert a.top_bids(1000) == s.top_bids(1000) and a.top_asks(1000) == s.top_asks(1000)
        if i % 3 == 0:
            assert a.take_top(n) == s.take_top(n)


_ROWS = st.lists(st.tuples(_APX, _AQTY), max_size=6)


@given(st.lists(st.tuples(_ROWS, _ROWS), max_size=30), st.integers(1, 4), st.integers(2, 30))
def test_apply_sides_is_set_per_level(batches, n, depth):
    """``Book.apply_sides`` (bids and asks listed apart, one call per message)
    leaves exactly the state ``set`` per level leaves, bids first, top_dirty
    included, and stops at the same bad level."""
    a, s = Book(depth), Book(depth)
    for i, (bids, asks) in enumerate(batches):
        ea = es = None
        try:
            a.apply_sides([list(r) for r in bids], asks)
        except BookError as e:
            ea = type(e)
        try:
            for is_bid, rows in ((True, bids), (False, asks)):
                for px, qty in rows:
                    s.set(is_bid, px, qty)
        except BookError as e:
            es = type(e)
        assert ea is es
        for b in (a, s):
            b.truncate()
        assert a.bids == s.bids and a.asks == s.asks and a.top_dirty == s.top_dirty
        assert a.top_floats(1000) == s.top_floats(1000)
        assert a.top_bids(1000) == s.top_bids(1000) and a.top_asks(1000) == s.top_asks(1000)
        if i % 3 == 0:
            assert a.take_top(n) == s.take_top(n)
