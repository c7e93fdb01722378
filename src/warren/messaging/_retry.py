"""How often, and how far apart, connecting and reconnecting are retried."""

from __future__ import annotations

from typing import Final

from warren.messaging._errors import IllegalArgumentError, InvalidDataTypeError

__all__ = ["DEFAULT_RETRY_INTERVAL_MS", "MAX_RETRY_INTERVAL_MS", "RetryStrategy"]

DEFAULT_RETRY_INTERVAL_MS: Final = 3000
MAX_RETRY_INTERVAL_MS: Final = 60000


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDataTypeError(f"{name} must be an int, not {type(value).__name__}")
    return value


class RetryStrategy:
    """A number of retries (-1: forever) and the wait between them, in milliseconds.

    Made by :meth:`parametrized_retry`, :meth:`forever_retry` or :meth:`never_retry`;
    given to ``with_reconnection_retry_strategy`` (after a connection is lost) or
    ``with_connection_retry_strategy`` (the first connect).
    """

    __slots__ = ("retries", "retry_interval")

    def __init__(self, retries: int, retry_interval: int) -> None:
        self.retries = retries
        self.retry_interval = retry_interval

    def __repr__(self) -> str:
        return f"RetryStrategy(retries={self.retries}, retry_interval={self.retry_interval})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, RetryStrategy)
            and (self.retries, self.retry_interval) == (other.retries, other.retry_interval)
        )

    def __hash__(self) -> int:
        return hash((self.retries, self.retry_interval))

    @staticmethod
    def parametrized_retry(retries: int, retry_interval: int) -> RetryStrategy:
        """Retry ``retries`` times (-1: forever), ``retry_interval`` ms apart."""
        retries = _int("retries", retries)
        retry_interval = _int("retry_interval", retry_interval)
        if retries < -1:
            raise IllegalArgumentError(f"retries must be -1 (forever) or more, not {retries}")
        if not 0 <= retry_interval <= MAX_RETRY_INTERVAL_MS:
            raise IllegalArgumentError(
                f"retry_interval must be 0..{MAX_RETRY_INTERVAL_MS} ms, not {retry_interval}"
            )
        return RetryStrategy(retries, retry_interval)

    @staticmethod
    def forever_retry(retry_interval: int | None = None) -> RetryStrategy:
        """Retry without end, ``retry_interval`` ms apart (default 3000)."""
        interval = DEFAULT_RETRY_INTERVAL_MS if retry_interval is None else retry_interval
        return RetryStrategy.parametrized_retry(-1, interval)

    @staticmethod
    def never_retry() -> RetryStrategy:
        """Try once and give up."""
        return RetryStrategy(0, 0)
