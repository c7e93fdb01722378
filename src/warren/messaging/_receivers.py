"""Receivers of the asyncio API: direct, and request/reply (the replier side).

A receiver owns one subscription id on the connection and holds one or more topic
subscriptions under it; the engine hands it the messages delivered for that id.
Messages wait in the receiver's buffer until the application takes them
(``receive_message``, ``async for``, or the handler given to ``receive_async``);
their flow-control credit goes back to the broker then. The buffer's back-pressure
strategy bounds it: *elastic* (bounded by the connection's receive window only),
*drop latest* or *drop oldest* at ``buffer_capacity``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from warren.codecs.native import Message as NativeMessage
from warren.messaging._engine import Engine, Ticket
from warren.messaging._errors import IllegalStateError, PubSubPlusClientError
from warren.messaging._listeners import Replier, TerminationEvent, call_listener
from warren.messaging._message import InboundMessage, OutboundMessage
from warren.messaging._publishers import GRACE_PERIOD_DEFAULT_MS, LifecycleState, as_outbound
from warren.messaging._resources import ShareName, TopicSubscription

if TYPE_CHECKING:
    from warren.messaging._service import AsyncMessagingService

__all__ = [
    "AsyncDirectMessageReceiver",
    "AsyncRequestReplyMessageReceiver",
    "LoopBuffer",
    "ReceiverCore",
    "ReceiverOptions",
    "ReplyTo",
]

log = logging.getLogger("warren.messaging")

SHARE_MARKER = "#share"
Item = tuple[InboundMessage, Ticket | None]


@dataclass(frozen=True, slots=True)
class ReceiverOptions:
    """Topic subscriptions and back pressure (``elastic``, ``drop_latest`` or
    ``drop_oldest`` at ``capacity``)."""

    subscriptions: tuple[str, ...] = ()
    share: str | None = None
    strategy: str = "elastic"
    capacity: int = 0


class Buffer(Protocol):
    """A receiver's message buffer (loop-side ``put``; consumer side varies)."""

    def deliver(self, message: InboundMessage, ticket: Ticket | None) -> None: ...

    def close(self) -> None: ...


class LoopBuffer:
    """The buffer of an asyncio receiver: everything happens on the loop thread."""

    def __init__(self, engine: Engine, options: ReceiverOptions) -> None:
        self._engine = engine
        self._capacity = options.capacity if options.strategy != "elastic" else 0
        self._drop_oldest = options.strategy == "drop_oldest"
        self._items: deque[Item] = deque()
        self._waiters: deque[asyncio.Future[Item | None]] = deque()
        self._empty = asyncio.Event()
        self._empty.set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def deliver(self, message: InboundMessage, ticket: Ticket | None) -> None:
        if self.closed:
            self._engine.release(ticket)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result((message, ticket))
                return
        if self._capacity and len(self._items) >= self._capacity:
            if not self._drop_oldest:
                self._engine.release(ticket)  # drop the newest
                return
            _, old_ticket = self._items.popleft()
            self._engine.release(old_ticket)
        self._items.append((message, ticket))
        self._empty.clear()

    async def get(self, timeout: float | None) -> Item | None:
        """The next message, or None on timeout or once closed."""
        if self._items:
            item = self._items.popleft()
            if not self._items:
                self._empty.set()
            return item
        if self.closed:
            return None
        waiter: asyncio.Future[Item | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return None
        except asyncio.CancelledError:
            # The consumer gave up: a message handed to it meanwhile goes back.
            if waiter.done() and not waiter.cancelled():
                given = waiter.result()
                if given is not None:
                    self._items.appendleft(given)
                    self._empty.clear()
            raise
        finally:
            if not waiter.done():
                waiter.cancel()

    async def wait_empty(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._empty.wait(), timeout)

    def close(self) -> None:
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
        while self._items:
            _, ticket = self._items.popleft()
            self._engine.release(ticket)
        self._empty.set()


class ReceiverCore:
    """Lifecycle and subscriptions of a receiver, whatever its buffer."""

    def __init__(
        self, service: AsyncMessagingService, options: ReceiverOptions, buffer: Buffer
    ) -> None:
        self.service = service
        self.engine = service._engine
        self.options = options
        self.buffer = buffer
        self.filters = list(options.subscriptions)
        self.state = LifecycleState.NEW
        self.subscription_id = 0
        self.termination_listener: Any = None

    def _text(self, topic_filter: str) -> str:
        share = self.options.share
        return f"{SHARE_MARKER}/{share}/{topic_filter}" if share else topic_filter

    async def start(self) -> None:
        if self.state is LifecycleState.RUNNING:
            return
        if self.state is not LifecycleState.NEW:
            raise IllegalStateError(f"the receiver is {self.state.value}")
        if not self.service.is_connected:
            raise IllegalStateError("connect the messaging service before starting a receiver")
        engine = self.engine
        self.subscription_id = engine.new_subscription_id()
        engine.register(self.subscription_id, self.buffer)
        try:
            for topic_filter in self.filters:
                await engine.subscribe(self.subscription_id, self._text(topic_filter))
        except BaseException:
            engine.unregister(self.subscription_id)
            await engine.unsubscribe(self.subscription_id)
            raise
        self.state = LifecycleState.RUNNING
        self.service._receivers.add(self)

    def check_running(self) -> None:
        if self.state is not LifecycleState.RUNNING:
            raise IllegalStateError(f"the receiver is {self.state.value}")

    async def add_subscription(self, subscription: TopicSubscription | str) -> None:
        self.check_running()
        topic_filter = _filter_text(subscription)
        await self.engine.subscribe(self.subscription_id, self._text(topic_filter))
        if topic_filter not in self.filters:
            self.filters.append(topic_filter)

    async def remove_subscription(self, subscription: TopicSubscription | str) -> None:
        self.check_running()
        topic_filter = _filter_text(subscription)
        await self.engine.unsubscribe(self.subscription_id, self._text(topic_filter))
        if topic_filter in self.filters:
            self.filters.remove(topic_filter)

    async def stop_receiving(self) -> None:
        """Terminating: no more messages from the broker for this receiver."""
        if self.state is not LifecycleState.RUNNING:
            return
        self.state = LifecycleState.TERMINATING
        await self.engine.unsubscribe(self.subscription_id)
        self.engine.unregister(self.subscription_id)

    def finish(self) -> None:
        self.buffer.close()
        self.state = LifecycleState.TERMINATED
        self.service._receivers.discard(self)

    def end(self, cause: PubSubPlusClientError | None) -> None:
        """The service disconnected or gave up: the receiver is over."""
        if self.state is LifecycleState.TERMINATED:
            return
        self.engine.unregister(self.subscription_id)
        self.finish()
        if cause is not None and self.termination_listener is not None:
            self.service._dispatch(
                call_listener, self.termination_listener, "on_termination",
                TerminationEvent(f"the messaging service is down: {cause}", cause),
            )


def _filter_text(subscription: TopicSubscription | str) -> str:
    if isinstance(subscription, TopicSubscription):
        return subscription.get_name()
    return TopicSubscription.of(subscription).get_name()


class ReplyTo(Replier):
    """Replies to one request: to its reply-to topic, with its correlation data."""

    __slots__ = ("_correlation", "_reply_to", "_send", "_sender_id")

    def __init__(
        self,
        send: Callable[[NativeMessage], None],
        reply_to: str,
        correlation: bytes | None,
        sender_id: str | None,
    ) -> None:
        self._send = send
        self._reply_to = reply_to
        self._correlation = correlation
        self._sender_id = sender_id

    def reply(self, response_message: OutboundMessage | str | bytes) -> None:
        """Publish the reply (correlation data copied from the request)."""
        outbound = as_outbound(response_message)
        self._send(outbound.to_native(
            self._reply_to, correlation_data=self._correlation, sender_id=self._sender_id
        ))


def replier_for(
    service: AsyncMessagingService, message: InboundMessage,
    send: Callable[[NativeMessage], None],
) -> ReplyTo | None:
    reply_to = message.get_reply_to()
    if reply_to is None:
        return None
    sender = service._engine.client_name if service._config.generate_sender_id else None
    return ReplyTo(send, reply_to, message.get_correlation_data(), sender)


class _AsyncReceiver:
    """An asyncio receiver: a core with a loop buffer, and the ways to consume it."""

    def __init__(self, service: AsyncMessagingService, options: ReceiverOptions) -> None:
        self._buffer = LoopBuffer(service._engine, options)
        self._core = ReceiverCore(service, options, self._buffer)
        self._handler_task: asyncio.Task[None] | None = None

    async def start(self) -> _AsyncReceiver:
        """Subscribe and start receiving; the service must be connected."""
        await self._core.start()
        return self

    def is_running(self) -> bool:
        return self._core.state is LifecycleState.RUNNING

    def is_terminating(self) -> bool:
        return self._core.state is LifecycleState.TERMINATING

    def is_terminated(self) -> bool:
        return self._core.state is LifecycleState.TERMINATED

    def set_termination_notification_listener(self, listener: Any) -> None:
        self._core.termination_listener = listener

    async def _next(self, timeout: int | None) -> Item | None:
        core = self._core
        if core.state is LifecycleState.NEW:
            raise IllegalStateError("the receiver is not started; call start() first")
        return await self._buffer.get(None if timeout is None else max(timeout, 0) / 1000)

    def _start_handler(self, call: Callable[[InboundMessage], Any]) -> None:
        self._core.check_running()
        if self._handler_task is not None:
            raise IllegalStateError("receive_async was already called on this receiver")
        self._handler_task = asyncio.get_running_loop().create_task(
            self._run_handler(call), name="warren-receiver-handler"
        )

    async def _run_handler(self, call: Callable[[InboundMessage], Any]) -> None:
        buffer = self._buffer
        engine = self._core.engine
        while True:
            item = await buffer.get(None)
            if item is None:
                return
            message, ticket = item
            try:
                result = call(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("message handler failed on a message from %r",
                              message.get_destination_name())
            finally:
                engine.release(ticket)

    async def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        """Stop receiving; a handler gets the buffered messages within
        ``grace_period`` ms, the rest are dropped."""
        core = self._core
        if core.state is LifecycleState.TERMINATED:
            return
        if core.state is LifecycleState.NEW:
            core.state = LifecycleState.TERMINATED
            return
        await core.stop_receiving()
        task = self._handler_task
        if task is not None and task is not asyncio.current_task():
            await self._buffer.wait_empty(max(grace_period, 0) / 1000)
        core.finish()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class AsyncDirectMessageReceiver(_AsyncReceiver):
    """Receives direct messages for its topic subscriptions. Consume them with
    ``await receive_message(timeout)``, ``async for message in receiver``, or a
    handler (``receive_async``)."""

    async def start(self) -> AsyncDirectMessageReceiver:
        await self._core.start()
        return self

    async def receive_message(self, timeout: int | None = None) -> InboundMessage | None:
        """The next message; None after ``timeout`` ms (None: wait) or once terminated."""
        item = await self._next(timeout)
        if item is None:
            return None
        message, ticket = item
        self._core.engine.release(ticket)
        return message

    def receive_async(self, message_handler: Any) -> None:
        """Call ``message_handler.on_message(message)`` (or ``message_handler(message)``;
        a coroutine is awaited) for each message, in order, on the event loop."""
        call = getattr(message_handler, "on_message", message_handler)
        self._start_handler(call)

    def __aiter__(self) -> AsyncIterator[InboundMessage]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[InboundMessage]:
        engine = self._core.engine
        while True:
            item = await self._next(None)
            if item is None:
                return
            message, ticket = item
            try:
                yield message
            finally:
                engine.release(ticket)

    async def add_subscription(self, another_subscription: TopicSubscription | str) -> None:
        """Add a topic subscription to this receiver."""
        await self._core.add_subscription(another_subscription)

    async def remove_subscription(self, subscription: TopicSubscription | str) -> None:
        """Remove a topic subscription from this receiver."""
        await self._core.remove_subscription(subscription)


class AsyncRequestReplyMessageReceiver(_AsyncReceiver):
    """Receives requests on one topic subscription and replies to them."""

    def _send(self, native: NativeMessage) -> None:
        self._core.engine.publish([native])

    def _replier(self, message: InboundMessage) -> ReplyTo | None:
        return replier_for(self._core.service, message, self._send)

    async def start(self) -> AsyncRequestReplyMessageReceiver:
        await self._core.start()
        return self

    async def receive_message(
        self, timeout: int | None = None
    ) -> tuple[InboundMessage | None, Replier | None]:
        """The next request and its replier; (None, None) after ``timeout`` ms."""
        item = await self._next(timeout)
        if item is None:
            return None, None
        message, ticket = item
        self._core.engine.release(ticket)
        return message, self._replier(message)

    def receive_async(self, message_handler: Any) -> None:
        """Call ``message_handler.on_message(message, replier)`` (or
        ``message_handler(message, replier)``) for each request, in order."""
        call = getattr(message_handler, "on_message", message_handler)
        self._start_handler(lambda message: call(message, self._replier(message)))

    def __aiter__(self) -> AsyncIterator[tuple[InboundMessage, Replier | None]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[InboundMessage, Replier | None]]:
        engine = self._core.engine
        while True:
            item = await self._next(None)
            if item is None:
                return
            message, ticket = item
            try:
                yield message, self._replier(message)
            finally:
                engine.release(ticket)


def receiver_options(
    subscriptions: list[str], share: ShareName | None, strategy: str, capacity: int
) -> ReceiverOptions:
    return ReceiverOptions(
        tuple(subscriptions), share.get_name() if share is not None else None, strategy, capacity
    )
