"""Publishers of the asyncio API: direct, and request/reply.

``publish`` never awaits: the message is handed to the engine, which writes it with
the other frames of this event-loop iteration. Back pressure (messages held while
the connection is backed up or reconnecting): *elastic* holds without limit;
*reject* raises :class:`PublisherOverflowError` at ``buffer_capacity``; *wait*
raises too in the asyncio API (``await publisher.ready()`` waits for room) and
blocks in the threaded API.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Self

from warren.codecs.native import Message as NativeMessage
from warren.messaging._errors import (
    IllegalArgumentError,
    IllegalStateError,
    InvalidDataTypeError,
    PublisherOverflowError,
    PubSubPlusClientError,
    PubSubTimeoutError,
)
from warren.messaging._listeners import (
    FailedPublishEvent,
    TerminationEvent,
    call_listener,
)
from warren.messaging._message import InboundMessage, OutboundMessage, OutboundMessageBuilder
from warren.messaging._resources import Topic

if TYPE_CHECKING:
    from warren.messaging._service import AsyncMessagingService

__all__ = [
    "GRACE_PERIOD_DEFAULT_MS",
    "AsyncDirectMessagePublisher",
    "AsyncRequestReplyMessagePublisher",
    "PublisherOptions",
]

log = logging.getLogger("warren.messaging")

GRACE_PERIOD_DEFAULT_MS: Final = 600_000
"""How long ``terminate()`` waits for buffered messages by default (as in the
Solace API): 10 minutes."""

_DEFAULT_BUILDER: Final = OutboundMessageBuilder()


@dataclass(frozen=True, slots=True)
class PublisherOptions:
    """Back pressure: ``elastic`` (no limit), ``reject`` or ``wait`` at ``capacity``."""

    strategy: str = "elastic"
    capacity: int = 0


class LifecycleState(enum.Enum):
    NEW = "not started"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


def as_topic(destination: object) -> Topic:
    if isinstance(destination, Topic):
        return destination
    if isinstance(destination, str):
        return Topic.of(destination)
    raise InvalidDataTypeError(
        f"a destination is a Topic (Topic.of('a/b')), not {type(destination).__name__}"
    )


def as_outbound(message: object) -> OutboundMessage:
    if isinstance(message, OutboundMessage):
        return message
    return _DEFAULT_BUILDER.build(message)


class _Publisher:
    """What both publishers share: lifecycle, listeners, back pressure."""

    def __init__(self, service: AsyncMessagingService, options: PublisherOptions) -> None:
        self._service = service
        self._engine = service._engine
        self._options = options
        self._state = LifecycleState.NEW
        self._failure_listener: Any = None
        self._termination_listener: Any = None
        self._readiness_listener: Any = None
        self._room: asyncio.Event | None = None
        self.writable_hooks: list[Callable[[], None]] = []

    @property
    def options(self) -> PublisherOptions:
        return self._options

    async def start(self) -> Self:
        """Start; the service must be connected. Returns the publisher."""
        if self._state is LifecycleState.RUNNING:
            return self
        if self._state is not LifecycleState.NEW:
            raise IllegalStateError(f"the publisher is {self._state.value}")
        if not self._service.is_connected:
            raise IllegalStateError("connect the messaging service before starting a publisher")
        self._state = LifecycleState.RUNNING
        self._service._publishers.add(self)
        return self

    def is_running(self) -> bool:
        return self._state is LifecycleState.RUNNING

    def is_terminating(self) -> bool:
        return self._state is LifecycleState.TERMINATING

    def is_terminated(self) -> bool:
        return self._state is LifecycleState.TERMINATED

    def is_ready(self) -> bool:
        """Running and able to take a message without hitting back pressure."""
        return self.is_running() and self._has_room(0)

    def _has_room(self, extra: int) -> bool:
        options = self._options
        return options.strategy == "elastic" or (
            self._engine.held_count + extra < options.capacity
        )

    async def ready(self) -> None:
        """Wait until the publisher can take a message (Warren, asyncio API)."""
        while self.is_running() and not self._has_room(0):
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    def set_termination_notification_listener(self, listener: Any) -> None:
        self._termination_listener = listener

    def set_publisher_readiness_listener(self, listener: Any) -> None:
        self._readiness_listener = listener

    def notify_when_ready(self) -> None:
        """Call the readiness listener once there is room (now, if there is)."""
        if self._has_room(0) and self._readiness_listener is not None:
            self._service._dispatch(call_listener, self._readiness_listener, "ready")

    def check_running(self) -> None:
        if self._state is not LifecycleState.RUNNING:
            raise IllegalStateError(f"the publisher is {self._state.value}; call start() first"
                                    if self._state is LifecycleState.NEW
                                    else f"the publisher is {self._state.value}")

    def send(self, messages: list[NativeMessage]) -> None:
        """Hand messages to the engine (loop thread), applying back pressure."""
        if self._options.strategy != "elastic" and not self._has_room(len(messages) - 1):
            raise PublisherOverflowError(
                f"{self._engine.held_count} messages are waiting to be sent, the buffer "
                f"capacity is {self._options.capacity}"
            )
        self._engine.publish(messages, self)

    # -- called by the service --------------------------------------------------------

    def on_writable(self) -> None:
        if self._room is not None:
            self._room.set()
        for hook in self.writable_hooks:
            hook()
        if self._readiness_listener is not None and self.is_running():
            self._service._dispatch(call_listener, self._readiness_listener, "ready")

    def on_failed(self, event: FailedPublishEvent) -> None:
        listener = self._failure_listener
        if listener is not None:
            self._service._dispatch(call_listener, listener, "on_failed_publish", event)
        else:
            log.warning("publish to %s failed: %s", event.get_destination(),
                        event.get_exception())

    def report_failed(self, messages: list[NativeMessage], error: PubSubPlusClientError) -> None:
        """Tell the failure listener about messages that were never sent."""
        for m in messages:
            event = FailedPublishEvent(OutboundMessage.from_native(m), Topic(m.topic), error)
            self.on_failed(event)

    def end(self, cause: PubSubPlusClientError | None) -> None:
        """The service disconnected or gave up: the publisher is over."""
        if self._state is LifecycleState.TERMINATED:
            return
        self._state = LifecycleState.TERMINATED
        self.on_writable()
        if cause is not None and self._termination_listener is not None:
            self._service._dispatch(
                call_listener, self._termination_listener, "on_termination",
                TerminationEvent(f"the messaging service is down: {cause}", cause),
            )

    async def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        """Stop; messages still held are sent within ``grace_period`` ms, else dropped
        (and reported to the publish failure listener)."""
        if self._state in (LifecycleState.TERMINATED, LifecycleState.NEW):
            self._state = LifecycleState.TERMINATED
            return
        self._state = LifecycleState.TERMINATING
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(grace_period, 0) / 1000
        engine = self._engine
        while engine.held_by(self) and loop.time() < deadline:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), deadline - loop.time())
            except TimeoutError:
                break
        self._state = LifecycleState.TERMINATED
        self._service._publishers.discard(self)


class AsyncDirectMessagePublisher(_Publisher):
    """Publishes direct (at most once) messages. Build it with
    ``service.create_direct_message_publisher_builder().build()``."""

    def set_publish_failure_listener(self, listener: Any) -> None:
        """``listener.on_failed_publish(FailedPublishEvent)`` is called for messages
        that failed after ``publish`` returned (refused by the broker's ACL, not sent
        before the connection was lost for good, ...)."""
        self._failure_listener = listener

    def prepare(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> NativeMessage:
        """The wire form of a publish (any thread: it only reads)."""
        self.check_running()
        topic = as_topic(destination)
        outbound = as_outbound(message)
        sender = self._engine.client_name if self._service._config.generate_sender_id else None
        return outbound.to_native(
            topic.get_name(), extra=additional_message_properties, sender_id=sender
        )

    def publish(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish ``message`` (an OutboundMessage, or a str/bytes payload) to
        ``destination``. Does not wait: the message goes out with this loop
        iteration's writes."""
        self.send([self.prepare(message, destination, additional_message_properties)])


class AsyncRequestReplyMessagePublisher(_Publisher):
    """Sends requests and waits for their replies. Build it with
    ``service.request_reply().create_request_reply_message_publisher_builder().build()``.

    Each request gets its own reply-to topic under this client's reply inbox and,
    unless the message has one, a generated correlation id; a replier (native,
    MQTT 5 or AMQP) publishes its reply there, copying the correlation id.
    """

    def publish(
        self,
        request_message: OutboundMessage | str | bytes,
        request_destination: Topic | str,
        reply_timeout: int | None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[InboundMessage]:
        """Send a request; the future completes with the reply, or fails with
        PubSubTimeoutError after ``reply_timeout`` ms (None: wait forever)."""
        self.check_running()
        if reply_timeout is not None and (
            isinstance(reply_timeout, bool) or not isinstance(reply_timeout, int)
        ):
            raise InvalidDataTypeError("reply_timeout is an int (milliseconds)")
        if reply_timeout is not None and reply_timeout < 0:
            raise IllegalArgumentError(f"reply_timeout must be >= 0, not {reply_timeout}")
        topic = as_topic(request_destination)
        outbound = as_outbound(request_message)
        engine = self._engine
        reply_to = engine.new_reply_topic()
        correlation = None
        if outbound.get_correlation_id() is None:
            correlation = uuid.uuid4().hex.encode()
        sender = engine.client_name if self._service._config.generate_sender_id else None
        native = outbound.to_native(
            topic.get_name(),
            extra=additional_message_properties,
            reply_to=reply_to,
            correlation_data=correlation,
            sender_id=sender,
        )
        future = engine.expect_reply(reply_to)
        loop = asyncio.get_running_loop()
        timer = None
        if reply_timeout is not None:
            def expire() -> None:
                if not future.done():
                    future.set_exception(PubSubTimeoutError(
                        f"no reply to the request on {topic.get_name()!r} within "
                        f"{reply_timeout} ms"
                    ))

            timer = loop.call_later(reply_timeout / 1000, expire)

        def cleanup(_: asyncio.Future[InboundMessage]) -> None:
            engine.forget_reply(reply_to)
            if timer is not None:
                timer.cancel()

        future.add_done_callback(cleanup)
        try:
            self.send([native])
        except BaseException:
            future.cancel()
            raise
        return future

    async def publish_await_response(
        self,
        request_message: OutboundMessage | str | bytes,
        request_destination: Topic | str,
        reply_timeout: int | None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> InboundMessage:
        """Send a request and return its reply (PubSubTimeoutError after
        ``reply_timeout`` ms)."""
        return await self.publish(
            request_message, request_destination, reply_timeout, additional_message_properties
        )
