"""``TopicSubscription`` (module path of ``solace.messaging.resources.topic_subscription``)."""

from warren.messaging._resources import TopicSubscription

__all__ = ["TopicSubscription"]
