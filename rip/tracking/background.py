"""Recording off the critical path: calls run in order on one thread while the engine computes."""

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait


class Background:
    """Runs calls one at a time, in the order submitted, on one worker thread.

    At most `limit` calls wait; `submit` blocks beyond that, so memory stays bounded when
    recording is slower than computing. The first call that raises stops the rest (they are
    skipped: nothing is recorded out of order) and its error is raised in the submitting thread
    by the next `submit` or `wait`.
    """

    def __init__(self, limit: int = 64):
        self.limit = limit
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rip-recording")
        self.pending: deque[Future] = deque()
        self.failed = False  # a call raised: the rest are skipped
        self.error: BaseException | None = None  # to raise in the submitting thread, once

    def submit(self, function: Callable, *args) -> None:
        """Queue `function(*args)` after every call submitted before it."""
        self._raise()
        self.pending.append(self.pool.submit(self._guarded, function, *args))
        while len(self.pending) > self.limit:
            wait([self.pending.popleft()])
        self._raise()

    def wait(self, raising: bool = True) -> None:
        """Return once every submitted call ran (or was skipped after an error); raise that error."""
        wait(self.pending)
        self.pending.clear()
        if raising:
            self._raise()

    def close(self) -> None:
        """Wait for the calls, without raising, and end the thread."""
        self.wait(raising=False)
        self.pool.shutdown()

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _guarded(self, function: Callable, *args) -> None:
        if self.failed:
            return
        try:
            function(*args)
        except BaseException as error:
            self.failed, self.error = True, error

    def _raise(self) -> None:
        if self.error is not None:
            error, self.error = self.error, None
            raise error
