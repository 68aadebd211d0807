"""Retrying calls to the tracking server through transient outages."""

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import requests
from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)
T = TypeVar("T")
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class TrackingUnavailableError(RuntimeError):
    """The tracking server stayed unreachable for longer than the outage limit."""


def is_transient(error: BaseException) -> bool:
    """Connection failures, timeouts and 5xx/429 answers: worth retrying."""
    if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
        return True
    if isinstance(error, requests.exceptions.HTTPError):
        return error.response is not None and error.response.status_code in TRANSIENT_STATUS
    if isinstance(error, MlflowException):
        if error.get_http_status_code() in (401, 403):
            return False  # refused credentials: waiting does not help
        if "API request to" in error.message and "failed with" in error.message:
            return True
        return error.get_http_status_code() in TRANSIENT_STATUS
    return False


class Retrying:
    """Calls a function, retrying transient errors with exponential backoff for up to `limit` s.

    The limit counts from the first failure of an outage; a success starts a new count.
    """

    def __init__(self, limit: float = 600.0, first_delay: float = 1.0, max_delay: float = 30.0):
        self.limit = limit
        self.first_delay = first_delay
        self.max_delay = max_delay

    def __call__(self, function: Callable[..., T], *args, **kwargs) -> T:
        started = None
        delay = self.first_delay
        while True:
            try:
                return function(*args, **kwargs)
            except Exception as error:
                if not is_transient(error):
                    raise
                now = time.monotonic()
                started = started or now
                if now - started >= self.limit:
                    raise TrackingUnavailableError(
                        f"the tracking server was unreachable for {now - started:.0f} s "
                        f"(limit {self.limit:g} s): {error}"
                    ) from error
                wait = min(delay, self.max_delay, self.limit - (now - started))
                log.warning("tracking server unreachable (%s); retrying in %.1f s", type(error).__name__, wait)
                time.sleep(wait)
                delay *= 2
