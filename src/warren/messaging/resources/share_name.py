"""``ShareName`` (module path of ``solace.messaging.resources.share_name``)."""

from warren.messaging._resources import ShareName

__all__ = ["ShareName"]
