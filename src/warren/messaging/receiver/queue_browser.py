"""Queue browsers (module path of ``solace.messaging.receiver.queue_browser``)."""

from warren.messaging._persistent import AsyncMessageQueueBrowser
from warren.messaging._persistent_sync import MessageQueueBrowser

__all__ = ["AsyncMessageQueueBrowser", "MessageQueueBrowser"]
