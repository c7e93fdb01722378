"""The threaded API: blocking calls over the asyncio core.

A connected ``MessagingService`` runs its :class:`AsyncMessagingService` on a
background thread with its own event loop (one per service, started by
``connect()`` and stopped by ``disconnect()``). Blocking calls submit a coroutine to
that loop and wait for it. ``publish`` does not wait: messages are handed over in
batches (one loop wake-up per burst). Received messages are buffered on the
consumer's side of the thread boundary: ``receive_message`` waits on a condition
variable, and ``receive_async`` handlers run on one thread per receiver, in order.
Listeners run on one thread per service, in order, so they may call blocking
methods.

Processes: a service belongs to the process that created it. After ``os.fork()``
its thread does not exist in the child: every call there raises
IllegalStateError (create services after forking, e.g. in the worker function).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from warren.codecs.native import Message as NativeMessage
from warren.messaging._engine import Engine, ServiceState, Ticket
from warren.messaging._errors import (
    IllegalStateError,
    PublisherOverflowError,
    PubSubPlusClientError,
)
from warren.messaging._listeners import Replier
from warren.messaging._message import InboundMessage, OutboundMessage, OutboundMessageBuilder
from warren.messaging._persistent import (
    AsyncMessageQueueBrowser,
    AsyncPersistentMessagePublisher,
    AsyncPersistentMessageReceiver,
    MessageQueueBrowserBuilder,
    PersistentMessagePublisherBuilder,
    PersistentMessageReceiverBuilder,
)
from warren.messaging._persistent_sync import (
    MessageQueueBrowser,
    PersistentMessagePublisher,
    PersistentMessageReceiver,
)
from warren.messaging._properties import ServiceConfig
from warren.messaging._publishers import (
    GRACE_PERIOD_DEFAULT_MS,
    AsyncDirectMessagePublisher,
    AsyncRequestReplyMessagePublisher,
    LifecycleState,
    PublisherOptions,
)
from warren.messaging._receivers import (
    ReceiverCore,
    ReceiverOptions,
    ReplyTo,
    replier_for,
)
from warren.messaging._resources import Topic, TopicSubscription
from warren.messaging._service import (
    AsyncMessagingService,
    DirectMessagePublisherBuilder,
    DirectMessageReceiverBuilder,
    MessagingServiceClientBuilder,
    RequestReplyMessagePublisherBuilder,
    RequestReplyMessageReceiverBuilder,
    call_safely,
)

__all__ = [
    "DirectMessagePublisher",
    "DirectMessageReceiver",
    "MessagingService",
    "RequestReplyMessagePublisher",
    "RequestReplyMessageReceiver",
    "RequestReplyMessagingService",
]

log = logging.getLogger("warren.messaging")

T = TypeVar("T")
Item = tuple[InboundMessage, Ticket | None]

_ALL_LOOPS: weakref.WeakSet[_LoopThread] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for loop_thread in list(_ALL_LOOPS):
        loop_thread.forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _LoopThread:
    """A daemon thread running one asyncio event loop."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.forked = False
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        _ALL_LOOPS.add(self)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def _check(self) -> None:
        if self.forked:
            raise IllegalStateError(
                "this messaging service was created before os.fork(); create a new one in "
                "this process"
            )
        if threading.current_thread() is self._thread:
            raise IllegalStateError(
                "a blocking call on the messaging thread would wait for itself; use the "
                "asyncio API there"
            )
        if self.loop.is_closed() or not self._thread.is_alive():
            raise IllegalStateError("the messaging service is disconnected")

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        return self.submit(coro).result(timeout)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            self._check()
        except BaseException:
            coro.close()
            raise
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        if self.forked or self.loop.is_closed():
            raise IllegalStateError("the messaging service is disconnected")
        self.loop.call_soon_threadsafe(fn, *args)

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        if self.forked or self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(10)


class _ThreadBuffer:
    """A receiver's buffer read by application threads (threaded API)."""

    def __init__(self, engine: Engine, options: ReceiverOptions) -> None:
        self._engine = engine
        self._capacity = options.capacity if options.strategy != "elastic" else 0
        self._drop_oldest = options.strategy == "drop_oldest"
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self.closed = False

    def deliver(self, message: InboundMessage, ticket: Ticket | None) -> None:
        """Called on the loop thread."""
        dropped: list[Ticket | None] = []
        with self._cond:
            if self.closed:
                dropped.append(ticket)
            else:
                if self._capacity and len(self._items) >= self._capacity:
                    if self._drop_oldest:
                        dropped.append(self._items.popleft()[1])
                        self._items.append((message, ticket))
                    else:
                        dropped.append(ticket)
                else:
                    self._items.append((message, ticket))
                self._cond.notify()
        for t in dropped:
            self._engine.release(t)

    def get(self, timeout: float | None) -> Item | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._items or self.closed, timeout):
                return None
            if not self._items:
                return None
            item = self._items.popleft()
            if not self._items:
                self._cond.notify_all()  # wait_empty
            return item

    def wait_empty(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._items or self.closed, timeout)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            dropped = [ticket for _, ticket in self._items]
            self._items.clear()
            self._cond.notify_all()
        for ticket in dropped:
            self._engine.release_threadsafe(ticket)


class MessagingService:
    """A connection to a Warren broker, for threaded code (the Solace-style API).

    ::

        service = MessagingService.builder().from_properties({
            "solace.messaging.transport.host": "tcp://localhost:55555",
            "solace.messaging.service.vpn-name": "default",
        }).build()
        service.connect()
        publisher = service.create_direct_message_publisher_builder().build()
        publisher.start()
        publisher.publish(service.message_builder().build("hi"), Topic.of("a/b"))
        service.disconnect()
    """

    def __init__(self, config: ServiceConfig, application_id: str | None = None) -> None:
        self._thread: _LoopThread | None = None
        self._listener_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._async = AsyncMessagingService(config, application_id, dispatch=self._dispatch)

    @staticmethod
    def builder() -> MessagingServiceClientBuilder[MessagingService]:
        """A builder: ``.from_properties(props)...build()``."""
        return MessagingServiceClientBuilder(MessagingService)

    def __repr__(self) -> str:
        engine = self._async._engine
        return f"<MessagingService {engine.uri} {engine.state.value}>"

    @property
    def async_service(self) -> AsyncMessagingService:
        """The asyncio service underneath (use it on :attr:`loop` only)."""
        return self._async

    def _dispatch(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._listener_pool is None:
                self._listener_pool = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="warren-listeners"
                )
            pool = self._listener_pool
        pool.submit(call_safely, fn, *args)

    def _loop(self) -> _LoopThread:
        thread = self._thread
        if thread is None:
            raise IllegalStateError("the messaging service is not connected; call connect()")
        return thread

    # -- connection --------------------------------------------------------------------

    def connect(self) -> Self:
        """Connect (blocking); returns the service."""
        with self._lock:
            if self._thread is None:
                self._thread = _LoopThread("warren-messaging")
            thread = self._thread
        try:
            thread.run(self._async.connect())
        except BaseException:
            if not self._async.is_connected:
                self._shutdown()
            raise
        return self

    def connect_async(self) -> concurrent.futures.Future[MessagingService]:
        """Connect in the background; the future's result is the service."""
        with self._lock:
            if self._thread is None:
                self._thread = _LoopThread("warren-messaging")
            thread = self._thread

        async def connect() -> MessagingService:
            await self._async.connect()
            return self

        return thread.submit(connect())

    def disconnect(self) -> None:
        """Terminate publishers and receivers, close the connection, stop the thread."""
        thread = self._thread
        if thread is None:
            return
        if not thread.forked and not thread.loop.is_closed():
            thread.run(self._async.disconnect())
        self._shutdown()

    def disconnect_async(self) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def work() -> None:
            try:
                self.disconnect()
                future.set_result(None)
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=work, name="warren-disconnect", daemon=True).start()
        return future

    def _shutdown(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            pool, self._listener_pool = self._listener_pool, None
        if thread is not None:
            thread.stop()
        if pool is not None:
            pool.shutdown(wait=False)

    @property
    def is_connected(self) -> bool:
        """True while connected (False while reconnecting)."""
        return self._async.is_connected

    @property
    def state(self) -> ServiceState:
        return self._async.state

    def get_application_id(self) -> str | None:
        return self._async.get_application_id()

    def __enter__(self) -> Self:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- listeners (called on the service's listener thread) -----------------------------

    def add_reconnection_listener(self, listener: Any) -> Self:
        self._async.add_reconnection_listener(listener)
        return self

    def remove_reconnection_listener(self, listener: Any) -> Self:
        self._async.remove_reconnection_listener(listener)
        return self

    def add_reconnection_attempt_listener(self, listener: Any) -> Self:
        self._async.add_reconnection_attempt_listener(listener)
        return self

    def remove_reconnection_attempt_listener(self, listener: Any) -> Self:
        self._async.remove_reconnection_attempt_listener(listener)
        return self

    def add_service_interruption_listener(self, listener: Any) -> None:
        self._async.add_service_interruption_listener(listener)

    def remove_service_interruption_listener(self, listener: Any) -> bool:
        return self._async.remove_service_interruption_listener(listener)

    # -- factories -----------------------------------------------------------------------

    def message_builder(self) -> OutboundMessageBuilder:
        return OutboundMessageBuilder()

    def create_direct_message_publisher_builder(
        self,
    ) -> DirectMessagePublisherBuilder[DirectMessagePublisher]:
        return DirectMessagePublisherBuilder(
            lambda options: DirectMessagePublisher(
                self, AsyncDirectMessagePublisher(self._async, options)
            )
        )

    def create_direct_message_receiver_builder(
        self,
    ) -> DirectMessageReceiverBuilder[DirectMessageReceiver]:
        return DirectMessageReceiverBuilder(lambda options: DirectMessageReceiver(self, options))

    def create_persistent_message_publisher_builder(self) -> PersistentMessagePublisherBuilder:
        return PersistentMessagePublisherBuilder(
            lambda options: PersistentMessagePublisher(
                self, AsyncPersistentMessagePublisher(self._async, options)
            )
        )

    def create_persistent_message_receiver_builder(self) -> PersistentMessageReceiverBuilder:
        return PersistentMessageReceiverBuilder(
            lambda *args: PersistentMessageReceiver(
                self, AsyncPersistentMessageReceiver(self._async, *args)
            )
        )

    def create_message_queue_browser_builder(self) -> MessageQueueBrowserBuilder:
        return MessageQueueBrowserBuilder(
            lambda queue: MessageQueueBrowser(
                self, AsyncMessageQueueBrowser(self._async, queue, False, ())
            )
        )

    def request_reply(self) -> RequestReplyMessagingService:
        return RequestReplyMessagingService(self)


class RequestReplyMessagingService:
    """``service.request_reply()``: builders for request/reply."""

    def __init__(self, service: MessagingService) -> None:
        self._service = service

    def create_request_reply_message_publisher_builder(
        self,
    ) -> RequestReplyMessagePublisherBuilder[RequestReplyMessagePublisher]:
        service = self._service
        return RequestReplyMessagePublisherBuilder(
            lambda options: RequestReplyMessagePublisher(
                service, AsyncRequestReplyMessagePublisher(service._async, options)
            )
        )

    def create_request_reply_message_receiver_builder(
        self,
    ) -> RequestReplyMessageReceiverBuilder[RequestReplyMessageReceiver]:
        service = self._service
        return RequestReplyMessageReceiverBuilder(
            lambda options: RequestReplyMessageReceiver(service, options)
        )


# --- publishers -----------------------------------------------------------------------


class _SyncPublisher:
    """Lifecycle of a threaded publisher, and the hand-over of its messages."""

    def __init__(
        self, service: MessagingService,
        core: AsyncDirectMessagePublisher | AsyncRequestReplyMessagePublisher,
    ) -> None:
        self._service = service
        self._core = core
        self._cond = threading.Condition()
        self._handoff: list[NativeMessage] = []
        self._scheduled = False
        core.writable_hooks.append(self._room)

    def start(self) -> Self:
        """Start (blocking); returns the publisher."""
        self._service._loop().run(self._core.start())
        return self

    def start_async(self) -> concurrent.futures.Future[Self]:
        async def start() -> Self:
            await self._core.start()
            return self

        return self._service._loop().submit(start())

    def is_running(self) -> bool:
        return self._core.is_running()

    def is_terminating(self) -> bool:
        return self._core.is_terminating()

    def is_terminated(self) -> bool:
        return self._core.is_terminated()

    def is_ready(self) -> bool:
        return self._core.is_running() and self._has_room()

    def set_termination_notification_listener(self, listener: Any) -> None:
        self._core.set_termination_notification_listener(listener)

    def set_publisher_readiness_listener(self, listener: Any) -> None:
        self._core.set_publisher_readiness_listener(listener)

    def notify_when_ready(self) -> None:
        self._core.notify_when_ready()

    def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        """Stop; held messages are sent within ``grace_period`` ms, else dropped."""
        thread = self._service._thread
        if thread is None or thread.loop.is_closed():
            return
        thread.run(self._core.terminate(grace_period))

    def terminate_async(
        self, grace_period: int = GRACE_PERIOD_DEFAULT_MS
    ) -> concurrent.futures.Future[None]:
        return self._service._loop().submit(self._core.terminate(grace_period))

    # -- hand-over -------------------------------------------------------------------

    def _has_room(self) -> bool:
        # Messages held by the engine (the link is backed up, or reconnecting) count;
        # the hand-over list is drained on every loop iteration and does not.
        options: PublisherOptions = self._core.options
        return options.strategy == "elastic" or (
            self._core._engine.held_count < options.capacity
        )

    def _room(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _hand_over(self, native: NativeMessage) -> None:
        options: PublisherOptions = self._core.options
        thread = self._service._loop()
        with self._cond:
            if options.strategy != "elastic" and not self._has_room():
                if options.strategy == "reject" or thread.on_loop():
                    raise PublisherOverflowError(
                        f"{self._core._engine.held_count} messages are waiting to be sent, "
                        f"the buffer capacity is {options.capacity}"
                    )
                while not self._has_room() and self._core.is_running():
                    self._cond.wait(1.0)
            self._handoff.append(native)
            if self._scheduled:
                return
            self._scheduled = True
        thread.call_soon(self._drain)

    def _drain(self) -> None:
        """On the loop: pass everything handed over to the engine."""
        with self._cond:
            batch, self._handoff = self._handoff, []
            self._scheduled = False
            self._cond.notify_all()
        if not batch:
            return
        try:
            self._core._engine.publish(batch, self._core)
        except PubSubPlusClientError as exc:
            self._core.report_failed(batch, exc)


class DirectMessagePublisher(_SyncPublisher):
    """Publishes direct messages (threaded API); thread-safe."""

    _core: AsyncDirectMessagePublisher

    def set_publish_failure_listener(self, listener: Any) -> None:
        """``listener.on_failed_publish(FailedPublishEvent)`` (on the listener thread)."""
        self._core.set_publish_failure_listener(listener)

    def publish(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish ``message`` to ``destination``; returns at once (the message is
        sent by the messaging thread)."""
        self._hand_over(self._core.prepare(message, destination, additional_message_properties))


class RequestReplyMessagePublisher(_SyncPublisher):
    """Sends requests and waits for replies (threaded API)."""

    _core: AsyncRequestReplyMessagePublisher

    def publish(
        self,
        request_message: OutboundMessage | str | bytes,
        request_destination: Topic | str,
        reply_timeout: int | None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> concurrent.futures.Future[InboundMessage]:
        """Send a request; the future's result is the reply (PubSubTimeoutError after
        ``reply_timeout`` ms)."""
        return self._service._loop().submit(self._core.publish_await_response(
            request_message, request_destination, reply_timeout, additional_message_properties
        ))

    def publish_await_response(
        self,
        request_message: OutboundMessage | str | bytes,
        request_destination: Topic | str,
        reply_timeout: int | None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> InboundMessage:
        """Send a request and block until its reply (PubSubTimeoutError after
        ``reply_timeout`` ms)."""
        return self.publish(
            request_message, request_destination, reply_timeout, additional_message_properties
        ).result()


# --- receivers ------------------------------------------------------------------------


class _SyncReceiver:
    def __init__(self, service: MessagingService, options: ReceiverOptions) -> None:
        self._service = service
        engine = service._async._engine
        self._buffer = _ThreadBuffer(engine, options)
        self._core = ReceiverCore(service._async, options, self._buffer)
        self._engine = engine
        self._dispatcher: threading.Thread | None = None

    def start(self) -> Self:
        """Subscribe and start receiving (blocking); returns the receiver."""
        self._service._loop().run(self._core.start())
        return self

    def start_async(self) -> concurrent.futures.Future[Self]:
        async def start() -> Self:
            await self._core.start()
            return self

        return self._service._loop().submit(start())

    def is_running(self) -> bool:
        return self._core.state is LifecycleState.RUNNING

    def is_terminating(self) -> bool:
        return self._core.state is LifecycleState.TERMINATING

    def is_terminated(self) -> bool:
        return self._core.state is LifecycleState.TERMINATED

    def set_termination_notification_listener(self, listener: Any) -> None:
        self._core.termination_listener = listener

    def _next(self, timeout: int | None) -> Item | None:
        if self._core.state is LifecycleState.NEW:
            raise IllegalStateError("the receiver is not started; call start() first")
        return self._buffer.get(None if timeout is None else max(timeout, 0) / 1000)

    def _run_dispatcher(self, call: Callable[[InboundMessage], object]) -> None:
        if self._core.state is not LifecycleState.RUNNING:
            raise IllegalStateError(f"the receiver is {self._core.state.value}")
        if self._dispatcher is not None:
            raise IllegalStateError("receive_async was already called on this receiver")

        def dispatch() -> None:
            buffer, engine = self._buffer, self._engine
            while True:
                item = buffer.get(None)
                if item is None:
                    return
                message, ticket = item
                try:
                    call(message)
                except Exception:
                    log.exception("message handler failed on a message from %r",
                                  message.get_destination_name())
                finally:
                    engine.release_threadsafe(ticket)

        self._dispatcher = threading.Thread(target=dispatch, name="warren-receiver", daemon=True)
        self._dispatcher.start()

    def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        """Stop receiving; a handler gets the buffered messages within
        ``grace_period`` ms, the rest are dropped."""
        core = self._core
        if core.state is LifecycleState.TERMINATED:
            return
        thread = self._service._thread
        if core.state is LifecycleState.NEW or thread is None or thread.loop.is_closed():
            core.state = LifecycleState.TERMINATED
            self._buffer.close()
            return
        thread.run(core.stop_receiving())
        dispatcher = self._dispatcher
        current = threading.current_thread()
        if dispatcher is not None and dispatcher is not current:
            self._buffer.wait_empty(max(grace_period, 0) / 1000)

        async def finish() -> None:
            core.finish()

        thread.run(finish())
        if dispatcher is not None and dispatcher is not current:
            dispatcher.join(10)

    def terminate_async(
        self, grace_period: int = GRACE_PERIOD_DEFAULT_MS
    ) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def work() -> None:
            try:
                self.terminate(grace_period)
                future.set_result(None)
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=work, name="warren-terminate", daemon=True).start()
        return future


class DirectMessageReceiver(_SyncReceiver):
    """Receives direct messages (threaded API)."""

    def receive_message(self, timeout: int | None = None) -> InboundMessage | None:
        """The next message; None after ``timeout`` ms (None: wait) or once terminated."""
        item = self._next(timeout)
        if item is None:
            return None
        message, ticket = item
        self._engine.release_threadsafe(ticket)
        return message

    def receive_async(self, message_handler: Any) -> None:
        """Call ``message_handler.on_message(message)`` (or ``message_handler(message)``)
        for each message, in order, on this receiver's thread."""
        self._run_dispatcher(getattr(message_handler, "on_message", message_handler))

    def add_subscription(self, another_subscription: TopicSubscription) -> None:
        """Add a topic subscription (blocking until the broker confirms)."""
        self._service._loop().run(self._core.add_subscription(another_subscription))

    def remove_subscription(self, subscription: TopicSubscription) -> None:
        self._service._loop().run(self._core.remove_subscription(subscription))

    def add_subscription_async(
        self, topic_subscription: TopicSubscription
    ) -> concurrent.futures.Future[None]:
        return self._service._loop().submit(self._core.add_subscription(topic_subscription))

    def remove_subscription_async(
        self, topic_subscription: TopicSubscription
    ) -> concurrent.futures.Future[None]:
        return self._service._loop().submit(self._core.remove_subscription(topic_subscription))


class RequestReplyMessageReceiver(_SyncReceiver):
    """Receives requests and replies to them (threaded API)."""

    def _send(self, native: NativeMessage) -> None:
        engine = self._engine

        def publish() -> None:
            try:
                engine.publish([native])
            except PubSubPlusClientError as exc:
                log.warning("reply to %r not sent: %s", native.topic, exc)

        self._service._loop().call_soon(publish)

    def _replier(self, message: InboundMessage) -> ReplyTo | None:
        return replier_for(self._service._async, message, self._send)

    def receive_message(
        self, timeout: int | None = None
    ) -> tuple[InboundMessage | None, Replier | None]:
        """The next request and its replier; (None, None) after ``timeout`` ms."""
        item = self._next(timeout)
        if item is None:
            return None, None
        message, ticket = item
        self._engine.release_threadsafe(ticket)
        return message, self._replier(message)

    def receive_async(self, message_handler: Any) -> None:
        """Call ``message_handler.on_message(message, replier)`` for each request, in
        order, on this receiver's thread."""
        call = getattr(message_handler, "on_message", message_handler)
        self._run_dispatcher(lambda message: call(message, self._replier(message)))
