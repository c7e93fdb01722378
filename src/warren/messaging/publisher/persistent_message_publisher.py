"""Persistent publishing (module path of
``solace.messaging.publisher.persistent_message_publisher``)."""

from warren.messaging._persistent import AsyncPersistentMessagePublisher, PublishReceipt
from warren.messaging._persistent_sync import PersistentMessagePublisher

__all__ = ["AsyncPersistentMessagePublisher", "PersistentMessagePublisher", "PublishReceipt"]
