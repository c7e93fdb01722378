"""Direct publishing (module path of ``solace.messaging.publisher.direct_message_publisher``)."""

from warren.messaging._listeners import FailedPublishEvent, PublishFailureListener
from warren.messaging._publishers import AsyncDirectMessagePublisher
from warren.messaging._sync import DirectMessagePublisher

__all__ = [
    "AsyncDirectMessagePublisher",
    "DirectMessagePublisher",
    "FailedPublishEvent",
    "PublishFailureListener",
]
