import threading
from collections.abc import Iterator

import pytest

from modelpier._lib.prefetch import prefetch


def test_yields_every_item_in_order() -> None:
    assert list(prefetch(range(1000), depth=3)) == list(range(1000))


def test_source_errors_reach_the_consumer_after_the_items_before_them() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("disk gone")

    it = prefetch(source())
    assert [next(it), next(it)] == [1, 2]
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_closing_the_consumer_closes_the_source() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetch(source())
    assert next(it) == 0
    it.close()
    assert closed.is_set()


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(prefetch([1], depth=0))
