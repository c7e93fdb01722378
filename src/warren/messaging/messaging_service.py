"""The messaging service (module path of ``solace.messaging.messaging_service``)."""

from warren.messaging._listeners import (
    ReconnectionAttemptListener,
    ReconnectionListener,
    ServiceEvent,
    ServiceInterruptionListener,
)
from warren.messaging._retry import RetryStrategy
from warren.messaging._service import AsyncMessagingService, MessagingServiceClientBuilder
from warren.messaging._sync import MessagingService, RequestReplyMessagingService

__all__ = [
    "AsyncMessagingService",
    "MessagingService",
    "MessagingServiceClientBuilder",
    "ReconnectionAttemptListener",
    "ReconnectionListener",
    "RequestReplyMessagingService",
    "RetryStrategy",
    "ServiceEvent",
    "ServiceInterruptionListener",
]
