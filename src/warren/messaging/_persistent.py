"""Guaranteed messaging of the asyncio API: persistent publisher, queue receiver, browser.

Same shapes as the Solace PubSub+ Python API (docs/messaging.md):

- :class:`AsyncPersistentMessagePublisher`: ``publish`` sends a persistent message
  (PUBLISH with a publish id) and the broker's ACK or NACK becomes a
  :class:`PublishReceipt` for the listener set with
  ``set_message_publish_receipt_listener``; ``publish_await_acknowledgement``
  waits for it (and raises the NACK's error).
- :class:`AsyncPersistentMessageReceiver`: consumes a queue (BIND) given as
  ``Queue.durable_exclusive_queue(..)``, ``durable_non_exclusive_queue(..)`` or
  ``non_durable_exclusive_queue(..)``; messages are settled with ``ack`` or
  ``settle(message, Outcome.ACCEPTED | FAILED | REJECTED)``, or automatically
  (auto acknowledgement: once the handler returned, or once ``receive_message``
  returned the message). ``pause``/``resume`` stop and restart the hand-over of
  messages to the application (they wait in the receiver meanwhile).
- :class:`AsyncMessageQueueBrowser`: the messages of a queue, without taking them;
  ``remove`` takes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Self

from warren.codecs.native import ACCESS_EXCLUSIVE, ACCESS_NON_EXCLUSIVE, Bind
from warren.messaging._errors import (
    IllegalArgumentError,
    IllegalStateError,
    InvalidDataTypeError,
    PubSubPlusClientError,
    PubSubTimeoutError,
)
from warren.messaging._listeners import call_listener
from warren.messaging._message import InboundMessage, OutboundMessage
from warren.messaging._properties import canonical_key
from warren.messaging._publishers import (
    GRACE_PERIOD_DEFAULT_MS,
    LifecycleState,
    PublisherOptions,
    _Publisher,
    as_outbound,
    as_topic,
)
from warren.messaging._resources import Topic, TopicSubscription

if TYPE_CHECKING:
    from warren.messaging._service import AsyncMessagingService

__all__ = [
    "AsyncMessageQueueBrowser",
    "AsyncPersistentMessagePublisher",
    "AsyncPersistentMessageReceiver",
    "MessageQueueBrowserBuilder",
    "MissingResourcesCreationStrategy",
    "Outcome",
    "PersistentMessagePublisherBuilder",
    "PersistentMessageReceiverBuilder",
    "PublishReceipt",
    "Queue",
]

log = logging.getLogger("warren.messaging")

MAX_REDELIVERY_PROPERTY = "receiver.persistent.max-redelivery"
"""``warren.messaging.receiver.persistent.max-redelivery`` without its prefix."""


# --- resources ------------------------------------------------------------------------


class Queue:
    """A queue to consume or browse (Solace ``solace.messaging.resources.queue.Queue``)."""

    def __init__(self, name: str, exclusive: bool, durable: bool) -> None:
        self._name = name
        self._exclusive = exclusive
        self._durable = durable

    @staticmethod
    def durable_exclusive_queue(queue_name: str) -> Queue:
        return Queue(_name(queue_name), True, True)

    @staticmethod
    def durable_non_exclusive_queue(queue_name: str) -> Queue:
        return Queue(_name(queue_name), False, True)

    @staticmethod
    def non_durable_exclusive_queue(queue_name: str | None = None) -> Queue:
        """A temporary queue of this connection; a name is generated when None."""
        return Queue(_name(queue_name) if queue_name else f"#P2P/QTMP/{uuid.uuid4().hex}",
                     True, False)

    def get_name(self) -> str:
        return self._name

    def is_exclusively_accessible(self) -> bool:
        return self._exclusive

    def is_durable(self) -> bool:
        return self._durable

    def __repr__(self) -> str:
        kind = ("durable " if self._durable else "non-durable ") + (
            "exclusive" if self._exclusive else "non-exclusive")
        return f"Queue({self._name!r}, {kind})"


def _name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise IllegalArgumentError("a queue name is a non-empty string")
    return name


class MissingResourcesCreationStrategy(enum.Enum):
    """Whether starting a receiver creates its queue when it is missing."""

    DO_NOT_CREATE = "do-not-create"
    CREATE_ON_START = "create-on-start"


class Outcome(enum.Enum):
    """How a received guaranteed message is settled."""

    ACCEPTED = "accepted"  # processed: removed from the queue
    FAILED = "failed"  # not processed: redelivered
    REJECTED = "rejected"  # never processable: to the dead-message queue


class PublishReceipt:
    """The broker's answer to one persistent publish."""

    __slots__ = ("_exception", "_message", "_persisted", "_time_stamp", "_user_context")

    def __init__(
        self,
        message: OutboundMessage,
        user_context: Any,
        exception: PubSubPlusClientError | None,
    ) -> None:
        self._message = message
        self._user_context = user_context
        self._exception = exception
        self._persisted = exception is None
        self._time_stamp = int(time.time() * 1000)

    @property
    def time_stamp(self) -> int:
        """When the broker's answer arrived, ms since the epoch."""
        return self._time_stamp

    @property
    def message(self) -> OutboundMessage:
        return self._message

    @property
    def user_context(self) -> Any:
        return self._user_context

    @property
    def exception(self) -> PubSubPlusClientError | None:
        return self._exception

    @property
    def is_persisted(self) -> bool:
        """True once the broker acknowledged it (accepted by every matching queue)."""
        return self._persisted

    def __repr__(self) -> str:
        return (f"PublishReceipt(persisted={self._persisted}, user_context="
                f"{self._user_context!r}, exception={self._exception!r})")


# --- publisher ------------------------------------------------------------------------


class AsyncPersistentMessagePublisher(_Publisher):
    """Publishes persistent (guaranteed) messages. Build it with
    ``service.create_persistent_message_publisher_builder().build()``."""

    def __init__(self, service: AsyncMessagingService, options: PublisherOptions) -> None:
        super().__init__(service, options)
        self._receipt_listener: Any = None

    def set_message_publish_receipt_listener(self, listener: Any) -> None:
        """``listener.on_publish_receipt(PublishReceipt)`` for every publish."""
        self._receipt_listener = listener

    def _prepare(
        self, message: object, destination: object, extra: Mapping[str, Any] | None
    ) -> tuple[OutboundMessage, Any]:
        self.check_running()
        topic = as_topic(destination)
        outbound = as_outbound(message)
        sender = self._engine.client_name if self._service._config.generate_sender_id else None
        native = outbound.to_native(topic.get_name(), extra=extra, sender_id=sender)
        if native.qos < 1:
            import msgspec

            native = msgspec.structs.replace(native, qos=1)
        return outbound, native

    def publish(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        user_context: Any = None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Send; the receipt listener hears of the outcome."""
        outbound, native = self._prepare(message, destination, additional_message_properties)

        def settled(error: PubSubPlusClientError | None) -> None:
            listener = self._receipt_listener
            if listener is not None:
                receipt = PublishReceipt(outbound, user_context, error)
                self._service._dispatch(call_listener, listener, "on_publish_receipt", receipt)

        self._engine.publish_persistent(native, settled)

    async def publish_await_acknowledgement(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        time_out: int | None = None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Send and wait for the broker's acknowledgement; raise its refusal, or
        PubSubTimeoutError after ``time_out`` ms."""
        _, native = self._prepare(message, destination, additional_message_properties)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def settled(error: PubSubPlusClientError | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)

        self._engine.publish_persistent(native, settled)
        try:
            await asyncio.wait_for(future, None if time_out is None else time_out / 1000)
        except TimeoutError:
            raise PubSubTimeoutError(
                f"no acknowledgement of the publish to {native.topic!r} within {time_out} ms"
            ) from None


class PersistentMessagePublisherBuilder:
    """Builds persistent publishers (the back-pressure settings of the direct one)."""

    def __init__(self, make: Callable[[PublisherOptions], Any]) -> None:
        self._make = make
        self._options = PublisherOptions()

    def from_properties(self, configuration: Mapping[str, Any]) -> Self:
        return self

    def on_back_pressure_reject(self, buffer_capacity: int) -> Self:
        self._options = PublisherOptions("reject", buffer_capacity)
        return self

    def on_back_pressure_wait(self, buffer_capacity: int) -> Self:
        self._options = PublisherOptions("wait", buffer_capacity)
        return self

    def on_back_pressure_elastic(self) -> Self:
        self._options = PublisherOptions()
        return self

    def build(self) -> Any:
        return self._make(self._options)


# --- receiver -------------------------------------------------------------------------


class _Guaranteed(InboundMessage):
    """A message of a queue: it remembers its delivery id, for settling."""

    __slots__ = ("_delivery_id", "_epoch", "_redelivered")
    _delivery_id: int
    _epoch: int  # the engine's connection count when it was delivered
    _redelivered: bool

    def is_redelivered(self) -> bool:
        """Whether the broker delivered it before (and it was not accepted)."""
        return self._redelivered


_Item = InboundMessage


class _FlowBase:
    """A BIND of one queue: lifecycle and the buffer the engine fills."""

    _browse = False

    def __init__(self, service: AsyncMessagingService, queue: Queue, create: bool,
                 subscriptions: tuple[str, ...], max_redelivery: int | None = None) -> None:
        self._service = service
        self._engine = service._engine
        self._queue = queue
        self._create = create
        self._subscriptions = subscriptions
        self._max_redelivery = max_redelivery  # for a queue this flow creates
        self._state = LifecycleState.NEW
        self._subscription_id = 0
        self._items: deque[_Item] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._paused = False

    # Flow (engine side)
    def deliver_guaranteed(
        self, message: InboundMessage, delivery_id: int, redelivered: bool = False
    ) -> None:
        guaranteed = _Guaranteed.__new__(_Guaranteed)
        InboundMessage.__init__(guaranteed, message.native, message._received_ms)
        guaranteed._delivery_id = delivery_id
        guaranteed._epoch = self._engine.epoch
        guaranteed._redelivered = redelivered
        self._items.append(guaranteed)
        self._wake()

    def interrupted(self) -> None:
        # Not yet taken: dropped (the broker redelivers them once we are back).
        self._items.clear()

    def lost(self, error: PubSubPlusClientError) -> None:
        log.info("queue flow on %r ended: %s", self._queue.get_name(), error)
        self._items.clear()  # the broker redelivers them
        self._state = LifecycleState.TERMINATED
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def start(self) -> Self:
        if self._state is LifecycleState.RUNNING:
            return self
        if self._state is not LifecycleState.NEW:
            raise IllegalStateError(f"the receiver is {self._state.value}")
        engine = self._engine
        queue = self._queue
        self._subscription_id = engine.new_subscription_id()
        await engine.bind(self, Bind(
            0,
            self._subscription_id,
            queue.get_name(),
            access=ACCESS_EXCLUSIVE if queue.is_exclusively_accessible()
            else ACCESS_NON_EXCLUSIVE,
            durable=queue.is_durable(),
            create=self._create or not queue.is_durable(),
            topics=self._subscriptions,
            browse=self._browse,
            max_redelivery=self._max_redelivery,
        ))
        self._state = LifecycleState.RUNNING
        return self

    def is_running(self) -> bool:
        return self._state is LifecycleState.RUNNING

    def is_terminated(self) -> bool:
        return self._state is LifecycleState.TERMINATED

    async def _next(self, timeout: int | None) -> _Guaranteed | None:
        if self._state is LifecycleState.NEW:
            raise IllegalStateError("the receiver is not started; call start() first")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + max(timeout, 0) / 1000
        while not self._items or self._paused:
            if self._state is not LifecycleState.RUNNING:
                return None
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return None
        item = self._items.popleft()
        self._engine.release(None)  # its credit goes back to the broker
        assert isinstance(item, _Guaranteed)
        return item

    async def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        """Stop: the broker takes back what was not settled (it is redelivered)."""
        if self._state is LifecycleState.TERMINATED:
            return
        was_running = self._state is LifecycleState.RUNNING
        self._state = LifecycleState.TERMINATED
        self._wake()
        if was_running:
            await self._engine.unbind(self._subscription_id)
        for _ in range(len(self._items)):
            self._engine.release(None)
        self._items.clear()


class AsyncPersistentMessageReceiver(_FlowBase):
    """Consumes a queue. Build it with
    ``service.create_persistent_message_receiver_builder()...build(queue)``."""

    def __init__(self, service: AsyncMessagingService, queue: Queue, create: bool,
                 subscriptions: tuple[str, ...], auto_ack: bool,
                 outcomes: frozenset[Outcome], max_redelivery: int | None = None) -> None:
        super().__init__(service, queue, create, subscriptions, max_redelivery)
        self._auto_ack = auto_ack
        self._outcomes = outcomes | {Outcome.ACCEPTED}
        self._handler_task: asyncio.Task[None] | None = None

    def get_queue(self) -> Queue:
        return self._queue

    async def receive_message(self, timeout: int | None = None) -> InboundMessage | None:
        """The next message, or None after ``timeout`` ms (None: wait)."""
        message = await self._next(timeout)
        if message is not None and self._auto_ack:
            self.ack(message)
        return message

    def receive_async(self, message_handler: Any) -> None:
        """Call ``message_handler.on_message(message)`` (or the callable) for each
        message; with auto acknowledgement it is acknowledged once that returned."""
        if self._handler_task is not None:
            raise IllegalStateError("receive_async was already called on this receiver")
        fn = getattr(message_handler, "on_message", message_handler)
        self._handler_task = asyncio.get_running_loop().create_task(
            self._run_handler(fn), name="warren-persistent-handler"
        )

    async def _run_handler(self, fn: Callable[[InboundMessage], Any]) -> None:
        while True:
            message = await self._next(None)
            if message is None:
                return
            try:
                result = fn(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("message handler failed on a message from %r",
                              message.get_destination_name())
                continue  # not acknowledged: redelivered after the flow ends
            if self._auto_ack:
                self.ack(message)

    def ack(self, message: InboundMessage) -> None:
        """Settle as ACCEPTED: the message leaves the queue."""
        self.settle(message, Outcome.ACCEPTED)

    def settle(self, message: InboundMessage, outcome: Outcome = Outcome.ACCEPTED) -> None:
        """Settle a message of this receiver: ACCEPTED, FAILED (redelivered) or
        REJECTED (to the dead-message queue); FAILED and REJECTED need
        ``with_required_message_outcome_support``."""
        if not isinstance(message, _Guaranteed):
            raise IllegalArgumentError("only messages from a persistent receiver are settled")
        if outcome not in self._outcomes:
            raise IllegalStateError(
                f"outcome {outcome.name} was not asked for with "
                "with_required_message_outcome_support"
            )
        self._engine.settle(message._delivery_id, outcome.value, message._epoch)

    def pause(self) -> None:
        """Stop handing messages to the application (they wait in the receiver)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake()

    async def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        await super().terminate(grace_period)
        task = self._handler_task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class AsyncMessageQueueBrowser(_FlowBase):
    """Browses a queue: copies of its messages at start, in order; ``remove`` takes
    one out of the queue."""

    _browse = True

    async def receive_message(self, timeout: int | None = None) -> InboundMessage | None:
        return await self._next(timeout)

    def remove(self, message: InboundMessage) -> None:
        if not isinstance(message, _Guaranteed):
            raise IllegalArgumentError("only messages from this browser can be removed")
        self._engine.settle(message._delivery_id, Outcome.ACCEPTED.value, message._epoch)


class PersistentMessageReceiverBuilder:
    """Builds queue receivers (Solace's PersistentMessageReceiverBuilder)."""

    def __init__(self, make: Callable[..., Any]) -> None:
        self._make = make
        self._create = False
        self._subscriptions: tuple[str, ...] = ()
        self._auto_ack = False
        self._outcomes: frozenset[Outcome] = frozenset()
        self._max_redelivery: int | None = None

    def from_properties(self, configuration: Mapping[str, Any]) -> Self:
        """Reads ``warren.messaging.receiver.persistent.max-redelivery``
        (:meth:`with_max_redelivery`); other keys are ignored."""
        for key, value in configuration.items():
            if canonical_key(key) == MAX_REDELIVERY_PROPERTY:
                self.with_max_redelivery(value)
        return self

    def with_max_redelivery(self, max_redelivery: int | None) -> Self:
        """Warren: the maximum redelivery count of a queue this receiver creates
        (``CREATE_ON_START``, or a non-durable queue), Solace's endpoint property
        "max redelivery". A message redelivered that often and then settled FAILED
        again (or left unsettled again) goes to the dead-message queue
        ``#DEAD_MSG_QUEUE`` if it exists, else it is dropped. None (the default): no
        limit; 0: never redelivered. A queue that exists keeps its own limit."""
        if max_redelivery is not None:
            if isinstance(max_redelivery, bool) or not isinstance(max_redelivery, int):
                raise InvalidDataTypeError(
                    f"max redelivery must be an int or None, not {type(max_redelivery).__name__}"
                )
            if not 0 <= max_redelivery <= 0xFFFF_FFFF:
                raise IllegalArgumentError(
                    f"max redelivery must be 0..4294967295 (or None: no limit), "
                    f"not {max_redelivery}"
                )
        self._max_redelivery = max_redelivery
        return self

    def with_missing_resources_creation_strategy(
        self, strategy: MissingResourcesCreationStrategy
    ) -> Self:
        self._create = strategy is MissingResourcesCreationStrategy.CREATE_ON_START
        return self

    def with_subscriptions(self, subscriptions: list[TopicSubscription]) -> Self:
        """Topic subscriptions added to the queue when the receiver starts."""
        self._subscriptions = tuple(
            s.get_name() if isinstance(s, TopicSubscription) else str(s) for s in subscriptions
        )
        return self

    def with_message_auto_acknowledgement(self) -> Self:
        self._auto_ack = True
        return self

    def with_message_client_acknowledgement(self) -> Self:
        self._auto_ack = False
        return self

    def with_required_message_outcome_support(self, *outcomes: Outcome) -> Self:
        self._outcomes = frozenset(outcomes)
        return self

    def build(self, endpoint_to_consume_from: Queue) -> Any:
        if not isinstance(endpoint_to_consume_from, Queue):
            raise IllegalArgumentError("build() takes a Queue (Queue.durable_exclusive_queue(..))")
        return self._make(endpoint_to_consume_from, self._create, self._subscriptions,
                          self._auto_ack, self._outcomes, self._max_redelivery)


class MessageQueueBrowserBuilder:
    """Builds queue browsers."""

    def __init__(self, make: Callable[[Queue], Any]) -> None:
        self._make = make

    def from_properties(self, configuration: Mapping[str, Any]) -> Self:
        return self

    def build(self, endpoint_to_consume_from: Queue) -> Any:
        if not isinstance(endpoint_to_consume_from, Queue):
            raise IllegalArgumentError("build() takes a Queue")
        return self._make(endpoint_to_consume_from)
