"""``Destination`` (module path of ``solace.messaging.resources.destination``)."""

from warren.messaging._resources import Destination

__all__ = ["Destination"]
