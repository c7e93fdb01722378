"""Threaded wrappers of the guaranteed-messaging API (warren.messaging._persistent).

Each wraps its asyncio counterpart, which lives on the service's loop thread:
blocking calls run there and wait; ``publish``, ``ack`` and ``settle`` hand over
without waiting. Listeners and ``receive_async`` handlers run on other threads
(never the loop's), as in the rest of the threaded API.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from warren.messaging._errors import IllegalStateError
from warren.messaging._message import InboundMessage, OutboundMessage
from warren.messaging._persistent import (
    AsyncMessageQueueBrowser,
    AsyncPersistentMessagePublisher,
    AsyncPersistentMessageReceiver,
    Outcome,
    Queue,
)
from warren.messaging._publishers import GRACE_PERIOD_DEFAULT_MS
from warren.messaging._resources import Topic

if TYPE_CHECKING:
    from warren.messaging._sync import MessagingService

__all__ = ["MessageQueueBrowser", "PersistentMessagePublisher", "PersistentMessageReceiver"]

log = logging.getLogger("warren.messaging")


class PersistentMessagePublisher:
    """Threaded persistent publisher (see AsyncPersistentMessagePublisher)."""

    def __init__(self, service: MessagingService, core: AsyncPersistentMessagePublisher) -> None:
        self._service = service
        self._core = core

    def start(self) -> Self:
        self._service._loop().run(self._core.start())
        return self

    def start_async(self) -> concurrent.futures.Future[Self]:
        async def start() -> Self:
            await self._core.start()
            return self

        return self._service._loop().submit(start())

    def is_running(self) -> bool:
        return self._core.is_running()

    def is_terminated(self) -> bool:
        return self._core.is_terminated()

    def set_message_publish_receipt_listener(self, listener: Any) -> None:
        self._core.set_message_publish_receipt_listener(listener)

    def set_termination_notification_listener(self, listener: Any) -> None:
        self._core.set_termination_notification_listener(listener)

    def publish(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        user_context: Any = None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Send without waiting; the receipt listener hears of the outcome."""
        self._core.check_running()

        async def publish() -> None:
            self._core.publish(message, destination, user_context, additional_message_properties)

        self._service._loop().run(publish())

    def publish_await_acknowledgement(
        self,
        message: OutboundMessage | str | bytes | bytearray,
        destination: Topic | str,
        time_out: int | None = None,
        additional_message_properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Send and block until the broker acknowledged it (raises its refusal)."""
        self._service._loop().run(self._core.publish_await_acknowledgement(
            message, destination, time_out, additional_message_properties
        ))

    def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        self._service._loop().run(self._core.terminate(grace_period))


class _SyncFlow:
    def __init__(self, service: MessagingService,
                 core: AsyncPersistentMessageReceiver | AsyncMessageQueueBrowser) -> None:
        self._service = service
        self._core = core

    def start(self) -> Self:
        self._service._loop().run(self._core.start())
        return self

    def start_async(self) -> concurrent.futures.Future[Self]:
        async def start() -> Self:
            await self._core.start()
            return self

        return self._service._loop().submit(start())

    def is_running(self) -> bool:
        return self._core.is_running()

    def is_terminated(self) -> bool:
        return self._core.is_terminated()

    def receive_message(self, timeout: int | None = None) -> InboundMessage | None:
        """The next message, or None after ``timeout`` ms (None: wait)."""
        return self._service._loop().run(self._core.receive_message(timeout))

    def terminate(self, grace_period: int = GRACE_PERIOD_DEFAULT_MS) -> None:
        self._service._loop().run(self._core.terminate(grace_period))


class PersistentMessageReceiver(_SyncFlow):
    """Threaded queue receiver (see AsyncPersistentMessageReceiver)."""

    _core: AsyncPersistentMessageReceiver

    def __init__(self, service: MessagingService, core: AsyncPersistentMessageReceiver) -> None:
        super().__init__(service, core)
        self._thread: threading.Thread | None = None

    def get_queue(self) -> Queue:
        return self._core.get_queue()

    def receive_message(self, timeout: int | None = None) -> InboundMessage | None:
        return self._service._loop().run(self._core.receive_message(timeout))

    def receive_async(self, message_handler: Any) -> None:
        """Call the handler for each message on a thread of the receiver's own; with
        auto acknowledgement the message is acknowledged once the handler returned."""
        if self._thread is not None:
            raise IllegalStateError("receive_async was already called on this receiver")
        fn = getattr(message_handler, "on_message", message_handler)
        core = self._core
        loop = self._service._loop()

        def run() -> None:
            while True:
                try:
                    message = loop.run(core._next(None))
                except (IllegalStateError, RuntimeError, concurrent.futures.CancelledError):
                    return
                if message is None:
                    return
                try:
                    fn(message)
                except Exception:
                    log.exception("message handler failed on a message from %r",
                                  message.get_destination_name())
                    continue
                if core._auto_ack:
                    loop.call_soon(core.ack, message)

        self._thread = threading.Thread(target=run, name="warren-persistent-receiver",
                                        daemon=True)
        self._thread.start()

    def ack(self, message: InboundMessage) -> None:
        self.settle(message, Outcome.ACCEPTED)

    def settle(self, message: InboundMessage, outcome: Outcome = Outcome.ACCEPTED) -> None:
        core = self._core
        if outcome not in core._outcomes:
            core.settle(message, outcome)  # raises the same error, on this thread
        self._service._loop().call_soon(core.settle, message, outcome)

    def pause(self) -> None:
        self._service._loop().call_soon(self._core.pause)

    def resume(self) -> None:
        self._service._loop().call_soon(self._core.resume)


class MessageQueueBrowser(_SyncFlow):
    """Threaded queue browser (see AsyncMessageQueueBrowser)."""

    _core: AsyncMessageQueueBrowser

    def remove(self, message: InboundMessage) -> None:
        self._service._loop().call_soon(self._core.remove, message)
