"""Message handlers (module path of ``solace.messaging.receiver.message_receiver``)."""

from warren.messaging._listeners import MessageHandler
from warren.messaging._message import InboundMessage

__all__ = ["InboundMessage", "MessageHandler"]
