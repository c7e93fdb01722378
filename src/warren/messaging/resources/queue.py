"""``Queue`` (module path of ``solace.messaging.resources.queue``)."""

from warren.messaging._persistent import Queue

__all__ = ["Queue"]
