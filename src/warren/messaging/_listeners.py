"""Listener interfaces and the events they receive (names of the Solace API).

Implement the ABC, or pass any object with the method: dispatch is by method name.
"""

from __future__ import annotations

import abc
import time
from typing import TYPE_CHECKING, Any

from warren.messaging._errors import PubSubPlusClientError

if TYPE_CHECKING:
    from warren.messaging._message import InboundMessage, OutboundMessage
    from warren.messaging._resources import Destination

__all__ = [
    "FailedPublishEvent",
    "MessageHandler",
    "PublishFailureListener",
    "PublisherReadinessListener",
    "ReconnectionAttemptListener",
    "ReconnectionListener",
    "Replier",
    "RequestMessageHandler",
    "ServiceEvent",
    "ServiceInterruptionListener",
    "TerminationEvent",
    "TerminationNotificationListener",
]


class ServiceEvent:
    """Something happened to the messaging service's connection."""

    __slots__ = ("_broker_uri", "_cause", "_message", "_time_stamp")

    def __init__(
        self, broker_uri: str, cause: PubSubPlusClientError | None, message: str
    ) -> None:
        self._broker_uri = broker_uri
        self._cause = cause
        self._message = message
        self._time_stamp = time.time()

    def get_time_stamp(self) -> float:
        """When it happened (seconds since the Unix epoch)."""
        return self._time_stamp

    def get_message(self) -> str:
        """What happened."""
        return self._message

    def get_cause(self) -> PubSubPlusClientError | None:
        """The error behind it, if any."""
        return self._cause

    def get_broker_uri(self) -> str:
        """The broker address concerned."""
        return self._broker_uri

    def __repr__(self) -> str:
        return f"ServiceEvent({self._broker_uri!r}, {self._message!r}, cause={self._cause!r})"


class ReconnectionListener(abc.ABC):
    @abc.abstractmethod
    def on_reconnected(self, service_event: ServiceEvent) -> None:
        """The connection was lost and is back."""


class ReconnectionAttemptListener(abc.ABC):
    @abc.abstractmethod
    def on_reconnecting(self, event: ServiceEvent) -> None:
        """The connection was lost; reconnecting begins."""


class ServiceInterruptionListener(abc.ABC):
    @abc.abstractmethod
    def on_service_interrupted(self, event: ServiceEvent) -> None:
        """The connection is lost for good (reconnection off or given up)."""


class MessageHandler(abc.ABC):
    @abc.abstractmethod
    def on_message(self, message: InboundMessage) -> None:
        """A message arrived."""


class Replier(abc.ABC):
    @abc.abstractmethod
    def reply(self, response_message: OutboundMessage) -> None:
        """Publish ``response_message`` to the request's reply-to topic."""


class RequestMessageHandler(abc.ABC):
    @abc.abstractmethod
    def on_message(self, message: InboundMessage, replier: Replier | None) -> None:
        """A request arrived; ``replier`` is None if it has no reply-to topic."""


class FailedPublishEvent:
    """A message that could not be published, and why."""

    __slots__ = ("_destination", "_exception", "_message", "_timestamp")

    def __init__(
        self,
        message: OutboundMessage | None,
        destination: Destination | None,
        exception: PubSubPlusClientError,
        timestamp: float | None = None,
    ) -> None:
        self._message = message
        self._destination = destination
        self._exception = exception
        self._timestamp = time.time() if timestamp is None else timestamp

    def get_message(self) -> OutboundMessage | None:
        """The message, when this client still has it (the broker reports topics only)."""
        return self._message

    def get_destination(self) -> Destination | None:
        return self._destination

    def get_timestamp(self) -> float:
        return self._timestamp

    def get_exception(self) -> PubSubPlusClientError:
        return self._exception

    def __str__(self) -> str:
        return f"FailedPublishEvent(destination={self._destination}, error={self._exception})"


class PublishFailureListener(abc.ABC):
    @abc.abstractmethod
    def on_failed_publish(self, failed_publish_event: FailedPublishEvent) -> None:
        """A publish failed after ``publish`` returned."""


class PublisherReadinessListener(abc.ABC):
    @abc.abstractmethod
    def ready(self) -> None:
        """The publisher can take messages again (after back pressure)."""


class TerminationEvent:
    """A publisher or receiver ended by itself (its service went away)."""

    __slots__ = ("_cause", "_message", "_timestamp")

    def __init__(self, message: str, cause: PubSubPlusClientError | None) -> None:
        self._message = message
        self._cause = cause
        self._timestamp = time.time()

    @property
    def timestamp(self) -> float:
        return self._timestamp

    @property
    def message(self) -> str:
        return self._message

    @property
    def cause(self) -> PubSubPlusClientError | None:
        return self._cause


class TerminationNotificationListener(abc.ABC):
    @abc.abstractmethod
    def on_termination(self, event: TerminationEvent) -> None:
        """The publisher or receiver terminated without being asked to."""


def call_listener(listener: Any, method: str, *args: Any) -> None:
    """Call ``listener.method(*args)``, or ``listener(*args)`` for a plain callable."""
    fn = getattr(listener, method, None)
    if fn is None:
        fn = listener
    fn(*args)
