"""The asyncio messaging service, its builder, and the builders it hands out.

``AsyncMessagingService`` is the asyncio-first core of ``warren.messaging``; the
threaded ``MessagingService`` (:mod:`warren.messaging._sync`) runs one on a
background event loop. Builders are shared: each is given the function that makes
the asyncio or the threaded object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from warren.messaging._engine import Engine, Held, ServiceState
from warren.messaging._errors import (
    IllegalArgumentError,
    InvalidConfigurationError,
    InvalidDataTypeError,
    PubSubPlusClientError,
)
from warren.messaging._listeners import FailedPublishEvent, ServiceEvent, call_listener
from warren.messaging._message import OutboundMessage, OutboundMessageBuilder
from warren.messaging._persistent import (
    AsyncMessageQueueBrowser,
    AsyncPersistentMessagePublisher,
    AsyncPersistentMessageReceiver,
    MessageQueueBrowserBuilder,
    PersistentMessagePublisherBuilder,
    PersistentMessageReceiverBuilder,
)
from warren.messaging._properties import ServiceConfig, canonical_key, service_config
from warren.messaging._publishers import (
    AsyncDirectMessagePublisher,
    AsyncRequestReplyMessagePublisher,
    PublisherOptions,
    _Publisher,
)
from warren.messaging._receivers import (
    AsyncDirectMessageReceiver,
    AsyncRequestReplyMessageReceiver,
    ReceiverCore,
    ReceiverOptions,
    receiver_options,
)
from warren.messaging._resources import ShareName, Topic, TopicSubscription
from warren.messaging._retry import RetryStrategy

__all__ = [
    "AsyncMessagingService",
    "AsyncRequestReplyMessagingService",
    "BasicUserNamePassword",
    "DirectMessagePublisherBuilder",
    "DirectMessageReceiverBuilder",
    "MessagingServiceClientBuilder",
    "RequestReplyMessagePublisherBuilder",
    "RequestReplyMessageReceiverBuilder",
]

log = logging.getLogger("warren.messaging")

S = TypeVar("S")
P = TypeVar("P")
R = TypeVar("R")


class BasicUserNamePassword:
    """Authentication with a username and a password."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password

    @staticmethod
    def of(username: str, password: str) -> BasicUserNamePassword:
        return BasicUserNamePassword(username, password)

    def authentication_configuration(self) -> dict[str, str]:
        return {
            "solace.messaging.authentication.scheme": "AUTHENTICATION_SCHEME_BASIC",
            "solace.messaging.authentication.basic.username": self.username,
            "solace.messaging.authentication.basic.password": self.password,
        }


class MessagingServiceClientBuilder(Generic[S]):
    """Configures and builds a messaging service:
    ``MessagingService.builder().from_properties(props).build()``."""

    def __init__(self, make: Callable[[ServiceConfig, str | None], S]) -> None:
        self._make = make
        self._properties: dict[str, Any] = {}
        self._reconnection: RetryStrategy | None = None
        self._connection: RetryStrategy | None = None

    def from_properties(self, configuration: Mapping[str, Any]) -> Self:
        """Add configuration properties (``solace.messaging.transport.host`` ...)."""
        if not isinstance(configuration, Mapping):
            raise InvalidDataTypeError("properties are a dict of property name to value")
        self._properties.update(configuration)
        return self

    def with_reconnection_retry_strategy(self, strategy: RetryStrategy) -> Self:
        """How to reconnect after a connection is lost (default: 3 times, 3 s apart)."""
        self._reconnection = _strategy(strategy)
        return self

    def with_connection_retry_strategy(self, strategy: RetryStrategy) -> Self:
        """How to retry the first connect (default: each host once)."""
        self._connection = _strategy(strategy)
        return self

    def with_authentication_strategy(self, authentication_strategy: Any) -> Self:
        """Basic authentication (``BasicUserNamePassword.of(user, password)``)."""
        configuration = getattr(authentication_strategy, "authentication_configuration", None)
        if configuration is None:
            raise InvalidDataTypeError("an authentication strategy, e.g. BasicUserNamePassword")
        self._properties.update(configuration())
        return self

    def build(self, application_id: str | None = None) -> S:
        """The service; ``application_id`` is its client name (else the broker's
        choice, or the ``client.name`` property)."""
        if application_id is not None and not isinstance(application_id, str):
            raise InvalidDataTypeError("application_id is a str")
        config = service_config(
            self._properties,
            reconnection_retry=self._reconnection,
            connection_retry=self._connection,
            client_name=application_id,
        )
        return self._make(config, application_id)


def _strategy(strategy: object) -> RetryStrategy:
    if not isinstance(strategy, RetryStrategy):
        raise InvalidDataTypeError(
            "a RetryStrategy, e.g. RetryStrategy.parametrized_retry(3, 1000)"
        )
    return strategy


def _capacity(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidDataTypeError("buffer_capacity is an int")
    if value < 1:
        raise IllegalArgumentError(f"buffer_capacity must be at least 1, not {value}")
    return value


_PUBLISHER_STRATEGY = "publisher.back-pressure.strategy"
_PUBLISHER_CAPACITY = "publisher.back-pressure.buffer-capacity"
_RECEIVER_STRATEGY = "receiver.direct.back-pressure.strategy"
_RECEIVER_CAPACITY = "receiver.direct.back-pressure.buffer-capacity"
_PUBLISHER_STRATEGIES = {
    "BACK_PRESSURE_STRATEGY_ELASTIC": "elastic",
    "BACK_PRESSURE_STRATEGY_BUFFER_REJECT_WHEN_FULL": "reject",
    "BACK_PRESSURE_STRATEGY_BUFFER_WAIT_WHEN_FULL": "wait",
}
_RECEIVER_STRATEGIES = {
    "BACK_PRESSURE_STRATEGY_ELASTIC": "elastic",
    "BACK_PRESSURE_STRATEGY_DROP_LATEST": "drop_latest",
    "BACK_PRESSURE_STRATEGY_DROP_OLDEST": "drop_oldest",
}


class _PublisherBuilder(Generic[P]):
    def __init__(self, make: Callable[[PublisherOptions], P]) -> None:
        self._make = make
        self._options = PublisherOptions()

    def from_properties(self, configuration: Mapping[str, Any]) -> Self:
        """Back-pressure properties (``solace.messaging.publisher.back-pressure.*``)."""
        strategy, capacity = self._options.strategy, self._options.capacity
        for key, value in configuration.items():
            name = canonical_key(key)
            if name == _PUBLISHER_STRATEGY:
                if value not in _PUBLISHER_STRATEGIES:
                    raise InvalidConfigurationError(f"{key}: unknown strategy {value!r}")
                strategy = _PUBLISHER_STRATEGIES[value]
            elif name == _PUBLISHER_CAPACITY:
                capacity = _capacity(int(value))
        if strategy == "elastic":
            capacity = 0
        elif not capacity:
            capacity = 50
        self._options = PublisherOptions(strategy, capacity)
        return self

    def on_back_pressure_reject(self, buffer_capacity: int) -> Self:
        """Raise PublisherOverflowError when ``buffer_capacity`` messages wait."""
        self._options = PublisherOptions("reject", _capacity(buffer_capacity))
        return self

    def on_back_pressure_wait(self, buffer_capacity: int) -> Self:
        """Block ``publish`` (threaded API) while ``buffer_capacity`` messages wait."""
        self._options = PublisherOptions("wait", _capacity(buffer_capacity))
        return self

    def on_back_pressure_elastic(self) -> Self:
        """Hold any number of messages (the default)."""
        self._options = PublisherOptions()
        return self

    def build(self) -> P:
        return self._make(self._options)


class DirectMessagePublisherBuilder(_PublisherBuilder[P]):
    """Builds a direct message publisher."""


class RequestReplyMessagePublisherBuilder(_PublisherBuilder[P]):
    """Builds a request/reply message publisher (the requester)."""


class _ReceiverBuilder:
    def __init__(self) -> None:
        self._subscriptions: list[str] = []
        self._strategy = "elastic"
        self._capacity = 0

    def from_properties(self, configuration: Mapping[str, Any]) -> Self:
        """Back-pressure properties (``solace.messaging.receiver.direct.back-pressure.*``)."""
        for key, value in configuration.items():
            name = canonical_key(key)
            if name == _RECEIVER_STRATEGY:
                if value not in _RECEIVER_STRATEGIES:
                    raise InvalidConfigurationError(f"{key}: unknown strategy {value!r}")
                self._strategy = _RECEIVER_STRATEGIES[value]
            elif name == _RECEIVER_CAPACITY:
                self._capacity = _capacity(int(value))
        if self._strategy != "elastic" and not self._capacity:
            self._capacity = 50
        return self

    def on_back_pressure_elastic(self) -> Self:
        """Keep every message until consumed (bounded by the receive window)."""
        self._strategy, self._capacity = "elastic", 0
        return self

    def on_back_pressure_drop_latest(self, buffer_capacity: int) -> Self:
        """At ``buffer_capacity`` waiting messages, drop the newest."""
        self._strategy, self._capacity = "drop_latest", _capacity(buffer_capacity)
        return self

    def on_back_pressure_drop_oldest(self, buffer_capacity: int) -> Self:
        """At ``buffer_capacity`` waiting messages, drop the oldest."""
        self._strategy, self._capacity = "drop_oldest", _capacity(buffer_capacity)
        return self


class DirectMessageReceiverBuilder(_ReceiverBuilder, Generic[R]):
    """Builds a direct message receiver."""

    def __init__(self, make: Callable[[ReceiverOptions], R]) -> None:
        super().__init__()
        self._make = make

    def with_subscriptions(self, subscriptions: list[TopicSubscription]) -> Self:
        """The topic subscriptions to start with."""
        for subscription in subscriptions:
            if not isinstance(subscription, TopicSubscription):
                raise InvalidDataTypeError(
                    "subscriptions are TopicSubscription objects: TopicSubscription.of('a/>')"
                )
            self._subscriptions.append(subscription.get_name())
        return self

    def build(self, shared_subscription_group: ShareName | None = None) -> R:
        """The receiver; with a share name, each message goes to one receiver of the
        group (a shared subscription, ``#share/<group>/<filter>``)."""
        if shared_subscription_group is not None:
            if not isinstance(shared_subscription_group, ShareName):
                raise InvalidDataTypeError("a share group is a ShareName: ShareName.of('g')")
            shared_subscription_group.validate()
        return self._make(receiver_options(
            self._subscriptions, shared_subscription_group, self._strategy, self._capacity
        ))


class RequestReplyMessageReceiverBuilder(_ReceiverBuilder, Generic[R]):
    """Builds a request/reply message receiver (the replier)."""

    def __init__(self, make: Callable[[ReceiverOptions], R]) -> None:
        super().__init__()
        self._make = make

    def build(
        self, request_topic_subscription: TopicSubscription, share_name: ShareName | None = None
    ) -> R:
        """The replier for requests on ``request_topic_subscription``."""
        if not isinstance(request_topic_subscription, TopicSubscription):
            raise InvalidDataTypeError("a TopicSubscription: TopicSubscription.of('svc/>')")
        return self._make(receiver_options(
            [request_topic_subscription.get_name()], share_name, self._strategy, self._capacity
        ))


class _Events:
    """The engine's reports, turned into listener calls (EngineEvents)."""

    def __init__(self, service: AsyncMessagingService) -> None:
        self._service = service

    def reconnecting(self, uri: str, cause: PubSubPlusClientError) -> None:
        service = self._service
        event = ServiceEvent(uri, cause, f"connection lost ({cause}); reconnecting")
        for listener in list(service._attempt_listeners):
            service._dispatch(call_listener, listener, "on_reconnecting", event)

    def reconnected(self, uri: str) -> None:
        service = self._service
        event = ServiceEvent(uri, None, f"reconnected to {uri}")
        for listener in list(service._reconnection_listeners):
            service._dispatch(call_listener, listener, "on_reconnected", event)

    def interrupted(self, uri: str, cause: PubSubPlusClientError) -> None:
        service = self._service
        log.warning("messaging service interrupted: %s", cause)
        service._end_all(cause)
        event = ServiceEvent(uri, cause, f"connection lost for good: {cause}")
        for listener in list(service._interruption_listeners):
            service._dispatch(call_listener, listener, "on_service_interrupted", event)

    def publish_failed(
        self, topic: str | None, failed: list[Held], error: PubSubPlusClientError
    ) -> None:
        publishers = self._service._publishers
        if not failed:  # the broker refused a direct publish: it names the topic only
            event = FailedPublishEvent(None, Topic(topic) if topic else None, error)
            for publisher in list(publishers):
                if isinstance(publisher, AsyncDirectMessagePublisher):
                    publisher.on_failed(event)
            return
        for owner, message in failed:
            event = FailedPublishEvent(
                OutboundMessage.from_native(message), Topic(message.topic), error
            )
            if isinstance(owner, _Publisher):
                owner.on_failed(event)
            else:
                log.warning("publish to %r failed: %s", message.topic, error)

    def writable(self) -> None:
        for publisher in list(self._service._publishers):
            publisher.on_writable()


def call_safely(fn: Callable[..., None], *args: Any) -> None:
    """Call a listener; its exception is logged, never raised into the library."""
    try:
        fn(*args)
    except Exception:
        log.exception("a listener failed")


class AsyncMessagingService:
    """A connection to a Warren broker for asyncio applications.

    ::

        service = AsyncMessagingService.builder().from_properties(
            {"transport.host": "tcp://localhost:55555"}).build()
        async with service:                     # connect() ... disconnect()
            receiver = await service.create_direct_message_receiver_builder() \\
                .with_subscriptions([TopicSubscription.of("a/>")]).build().start()
            async for message in receiver: ...

    Listeners are called on the event loop: they must not block.
    """

    def __init__(
        self,
        config: ServiceConfig,
        application_id: str | None = None,
        *,
        dispatch: Callable[..., None] | None = None,
    ) -> None:
        self._config = config
        self._application_id = application_id
        self._engine = Engine(config, _Events(self))
        self._dispatcher = dispatch
        self._reconnection_listeners: list[Any] = []
        self._attempt_listeners: list[Any] = []
        self._interruption_listeners: list[Any] = []
        self._publishers: set[_Publisher] = set()
        self._receivers: set[ReceiverCore] = set()

    @staticmethod
    def builder() -> MessagingServiceClientBuilder[AsyncMessagingService]:
        """A builder: ``.from_properties(props)...build()``."""
        return MessagingServiceClientBuilder(AsyncMessagingService)

    def _dispatch(self, fn: Callable[..., None], *args: Any) -> None:
        if self._dispatcher is not None:
            self._dispatcher(fn, *args)
        else:
            call_safely(fn, *args)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._engine.uri} {self._engine.state.value}>"

    # -- connection --------------------------------------------------------------------

    async def connect(self) -> Self:
        """Connect (retrying per the connection retry strategy); returns the service."""
        await self._engine.start()
        return self

    async def disconnect(self) -> None:
        """Terminate publishers and receivers, and close the connection."""
        await self._engine.stop()
        self._end_all(None)

    def _end_all(self, cause: PubSubPlusClientError | None) -> None:
        for receiver in list(self._receivers):
            receiver.end(cause)
        for publisher in list(self._publishers):
            publisher.end(cause)

    @property
    def is_connected(self) -> bool:
        """True while connected (False while reconnecting)."""
        return self._engine.state is ServiceState.CONNECTED

    @property
    def state(self) -> ServiceState:
        return self._engine.state

    def get_application_id(self) -> str | None:
        """The client name (the broker's choice once connected, if none was given)."""
        return self._engine.client_name or self._application_id

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.disconnect()

    # -- listeners -----------------------------------------------------------------------

    def add_reconnection_listener(self, listener: Any) -> Self:
        """``listener.on_reconnected(ServiceEvent)`` after a successful reconnection."""
        self._reconnection_listeners.append(listener)
        return self

    def remove_reconnection_listener(self, listener: Any) -> Self:
        if listener in self._reconnection_listeners:
            self._reconnection_listeners.remove(listener)
        return self

    def add_reconnection_attempt_listener(self, listener: Any) -> Self:
        """``listener.on_reconnecting(ServiceEvent)`` when reconnecting begins."""
        self._attempt_listeners.append(listener)
        return self

    def remove_reconnection_attempt_listener(self, listener: Any) -> Self:
        if listener in self._attempt_listeners:
            self._attempt_listeners.remove(listener)
        return self

    def add_service_interruption_listener(self, listener: Any) -> None:
        """``listener.on_service_interrupted(ServiceEvent)`` when the connection is
        lost for good."""
        self._interruption_listeners.append(listener)

    def remove_service_interruption_listener(self, listener: Any) -> bool:
        if listener in self._interruption_listeners:
            self._interruption_listeners.remove(listener)
            return True
        return False

    # -- factories -----------------------------------------------------------------------

    def message_builder(self) -> OutboundMessageBuilder:
        """A builder of outbound messages."""
        return OutboundMessageBuilder()

    def create_direct_message_publisher_builder(
        self,
    ) -> DirectMessagePublisherBuilder[AsyncDirectMessagePublisher]:
        return DirectMessagePublisherBuilder(
            lambda options: AsyncDirectMessagePublisher(self, options)
        )

    def create_direct_message_receiver_builder(
        self,
    ) -> DirectMessageReceiverBuilder[AsyncDirectMessageReceiver]:
        return DirectMessageReceiverBuilder(
            lambda options: AsyncDirectMessageReceiver(self, options)
        )

    def create_persistent_message_publisher_builder(self) -> PersistentMessagePublisherBuilder:
        """Builds :class:`AsyncPersistentMessagePublisher` (guaranteed messaging)."""
        return PersistentMessagePublisherBuilder(
            lambda options: AsyncPersistentMessagePublisher(self, options)
        )

    def create_persistent_message_receiver_builder(self) -> PersistentMessageReceiverBuilder:
        """Builds :class:`AsyncPersistentMessageReceiver`: ``build(Queue...)``."""
        return PersistentMessageReceiverBuilder(
            lambda *args: AsyncPersistentMessageReceiver(self, *args)
        )

    def create_message_queue_browser_builder(self) -> MessageQueueBrowserBuilder:
        """Builds :class:`AsyncMessageQueueBrowser`: ``build(Queue...)``."""
        return MessageQueueBrowserBuilder(
            lambda queue: AsyncMessageQueueBrowser(self, queue, False, ())
        )

    def request_reply(self) -> AsyncRequestReplyMessagingService:
        """Builders of requesters and repliers."""
        return AsyncRequestReplyMessagingService(self)


class AsyncRequestReplyMessagingService:
    """``service.request_reply()``: builders for request/reply."""

    def __init__(self, service: AsyncMessagingService) -> None:
        self._service = service

    def create_request_reply_message_publisher_builder(
        self,
    ) -> RequestReplyMessagePublisherBuilder[AsyncRequestReplyMessagePublisher]:
        service = self._service
        return RequestReplyMessagePublisherBuilder(
            lambda options: AsyncRequestReplyMessagePublisher(service, options)
        )

    def create_request_reply_message_receiver_builder(
        self,
    ) -> RequestReplyMessageReceiverBuilder[AsyncRequestReplyMessageReceiver]:
        service = self._service
        return RequestReplyMessageReceiverBuilder(
            lambda options: AsyncRequestReplyMessageReceiver(service, options)
        )
