"""Readiness (module path of ``solace.messaging.publisher.publisher_health_check``)."""

from warren.messaging._listeners import PublisherReadinessListener

__all__ = ["PublisherReadinessListener"]
