"""``RetryStrategy`` (module path of ``solace.messaging.config.retry_strategy``)."""

from warren.messaging._retry import RetryStrategy

__all__ = ["RetryStrategy"]
