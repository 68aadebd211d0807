"""How a long command stops: the errors it reports in one line, and signals that end a run cleanly."""

import contextlib
import signal

from rip.inpainters.base import ModelUnavailableError
from rip.metrics import MetricUnavailableError
from rip.tracking.resilience import TrackingUnavailableError

USER_ERRORS = (ValueError, RuntimeError, ModelUnavailableError, MetricUnavailableError, TrackingUnavailableError)
"""What `rip` commands report as one message, without a traceback: bad input, a model or metric
that cannot load, a tracking server that stays away."""


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM interrupts like Ctrl-C (SIGINT), so the run ends cleanly as KILLED.

    KeyboardInterrupt, unlike an Exception, is not swallowed by the HTTP client's retries; it
    carries the signal's name for the stop message.
    """

    def handler(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler_before in previous.items():
            signal.signal(number, handler_before)
