"""The recording thread: calls in order, a bounded queue, the first error raised in the caller."""

import threading

import pytest

from rip.tracking.background import Background


def test_calls_run_in_order_on_one_other_thread_with_at_most_limit_waiting():
    seen, threads = [], set()
    release = threading.Event()

    def record(number):
        release.wait()
        threads.add(threading.get_ident())
        seen.append(number)

    with Background(limit=3) as background:
        for number in range(3):
            background.submit(record, number)
        assert len(background.pending) == 3 and seen == []  # the first call waits; nothing ran
        release.set()
        for number in range(3, 50):
            background.submit(record, number)
            assert len(background.pending) <= 3
        background.wait()
    assert seen == list(range(50))
    assert threads and threading.get_ident() not in threads


def test_the_first_error_skips_the_rest_and_is_raised_once_in_the_caller():
    seen = []

    def record(number):
        if number == 2:
            raise ValueError("server said no")
        seen.append(number)

    background = Background(limit=10)
    for number in range(5):
        background.submit(record, number)
    with pytest.raises(ValueError, match="server said no"):
        background.wait()
    background.submit(record, 5)  # skipped: nothing after an error is recorded out of order
    background.wait()
    background.close()
    assert seen == [0, 1]
