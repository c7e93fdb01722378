"""Queue receivers (module path of ``solace.messaging.receiver.persistent_message_receiver``)."""

from warren.messaging._persistent import AsyncPersistentMessageReceiver
from warren.messaging._persistent_sync import PersistentMessageReceiver

__all__ = ["AsyncPersistentMessageReceiver", "PersistentMessageReceiver"]
