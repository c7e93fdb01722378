"""Direct receivers (module path of ``solace.messaging.receiver.direct_message_receiver``)."""

from warren.messaging._listeners import MessageHandler
from warren.messaging._message import InboundMessage
from warren.messaging._receivers import AsyncDirectMessageReceiver
from warren.messaging._sync import DirectMessageReceiver

__all__ = ["AsyncDirectMessageReceiver", "DirectMessageReceiver", "InboundMessage",
           "MessageHandler"]
