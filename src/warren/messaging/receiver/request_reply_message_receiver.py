"""Repliers (module path of ``solace.messaging.receiver.request_reply_message_receiver``)."""

from warren.messaging._listeners import Replier, RequestMessageHandler
from warren.messaging._message import InboundMessage
from warren.messaging._receivers import AsyncRequestReplyMessageReceiver
from warren.messaging._sync import RequestReplyMessageReceiver

__all__ = [
    "AsyncRequestReplyMessageReceiver",
    "InboundMessage",
    "Replier",
    "RequestMessageHandler",
    "RequestReplyMessageReceiver",
]
