"""``Topic`` (module path of ``solace.messaging.resources.topic``)."""

from warren.messaging._resources import Topic

__all__ = ["Topic"]
