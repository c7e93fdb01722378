"""Requesters (module path of ``solace.messaging.publisher.request_reply_message_publisher``)."""

from warren.messaging._publishers import AsyncRequestReplyMessagePublisher
from warren.messaging._sync import RequestReplyMessagePublisher

__all__ = ["AsyncRequestReplyMessagePublisher", "RequestReplyMessagePublisher"]
