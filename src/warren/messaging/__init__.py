"""``warren.messaging``: the native Python API of Warren.

Its names and call chains follow the Solace PubSub+ Python API, so an application
written for that API runs against Warren once its ``solace.messaging`` imports name
``warren.messaging`` instead (the same module paths exist here:
``warren.messaging.messaging_service``, ``warren.messaging.resources.topic``, ...).
Threaded applications use :class:`MessagingService`; asyncio applications use
:class:`AsyncMessagingService`, whose publishers and receivers are awaited and
iterated with ``async for``. Pure Python over the native protocol
(``warren.codecs.native``); nothing from the broker side is imported.

Threaded::

    from warren.messaging import MessagingService, Topic, TopicSubscription

    service = MessagingService.builder().from_properties({
        "solace.messaging.transport.host": "tcp://localhost:55555",
        "solace.messaging.service.vpn-name": "default",
        "solace.messaging.authentication.basic.username": "app",
        "solace.messaging.authentication.basic.password": "secret",
    }).build()
    service.connect()
    publisher = service.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(service.message_builder().build("hello"), Topic.of("greetings/en"))

asyncio::

    from warren.messaging import AsyncMessagingService, TopicSubscription

    async with AsyncMessagingService.builder().from_properties(props).build() as service:
        receiver = await service.create_direct_message_receiver_builder() \\
            .with_subscriptions([TopicSubscription.of("greetings/>")]).build().start()
        async for message in receiver:
            print(message.get_destination_name(), message.get_payload_as_string())
"""

from warren.messaging._engine import ServiceState
from warren.messaging._errors import (
    AuthenticationError,
    AuthorizationError,
    IllegalArgumentError,
    IllegalStateError,
    IncompatibleServiceError,
    InvalidConfigurationError,
    InvalidDataTypeError,
    MessageTooBigError,
    MessagingError,
    PublisherOverflowError,
    PubSubPlusClientError,
    PubSubPlusClientIOError,
    PubSubTimeoutError,
    ServiceUnreachableError,
)
from warren.messaging._listeners import (
    FailedPublishEvent,
    MessageHandler,
    PublisherReadinessListener,
    PublishFailureListener,
    ReconnectionAttemptListener,
    ReconnectionListener,
    Replier,
    RequestMessageHandler,
    ServiceEvent,
    ServiceInterruptionListener,
    TerminationEvent,
    TerminationNotificationListener,
)
from warren.messaging._message import (
    BytesToObject,
    InboundMessage,
    ObjectToBytes,
    OutboundMessage,
    OutboundMessageBuilder,
)
from warren.messaging._persistent import (
    AsyncMessageQueueBrowser,
    AsyncPersistentMessagePublisher,
    AsyncPersistentMessageReceiver,
    MissingResourcesCreationStrategy,
    Outcome,
    PublishReceipt,
    Queue,
)
from warren.messaging._persistent_sync import (
    MessageQueueBrowser,
    PersistentMessagePublisher,
    PersistentMessageReceiver,
)
from warren.messaging._publishers import (
    GRACE_PERIOD_DEFAULT_MS,
    AsyncDirectMessagePublisher,
    AsyncRequestReplyMessagePublisher,
)
from warren.messaging._receivers import (
    AsyncDirectMessageReceiver,
    AsyncRequestReplyMessageReceiver,
)
from warren.messaging._resources import Destination, ShareName, Topic, TopicSubscription
from warren.messaging._retry import RetryStrategy
from warren.messaging._service import (
    AsyncMessagingService,
    AsyncRequestReplyMessagingService,
    BasicUserNamePassword,
    DirectMessagePublisherBuilder,
    DirectMessageReceiverBuilder,
    MessagingServiceClientBuilder,
    RequestReplyMessagePublisherBuilder,
    RequestReplyMessageReceiverBuilder,
)
from warren.messaging._sync import (
    DirectMessagePublisher,
    DirectMessageReceiver,
    MessagingService,
    RequestReplyMessagePublisher,
    RequestReplyMessageReceiver,
    RequestReplyMessagingService,
)

__all__ = [
    "GRACE_PERIOD_DEFAULT_MS",
    "AsyncDirectMessagePublisher",
    "AsyncDirectMessageReceiver",
    "AsyncMessageQueueBrowser",
    "AsyncMessagingService",
    "AsyncPersistentMessagePublisher",
    "AsyncPersistentMessageReceiver",
    "AsyncRequestReplyMessagePublisher",
    "AsyncRequestReplyMessageReceiver",
    "AsyncRequestReplyMessagingService",
    "AuthenticationError",
    "AuthorizationError",
    "BasicUserNamePassword",
    "BytesToObject",
    "Destination",
    "DirectMessagePublisher",
    "DirectMessagePublisherBuilder",
    "DirectMessageReceiver",
    "DirectMessageReceiverBuilder",
    "FailedPublishEvent",
    "IllegalArgumentError",
    "IllegalStateError",
    "InboundMessage",
    "IncompatibleServiceError",
    "InvalidConfigurationError",
    "InvalidDataTypeError",
    "MessageHandler",
    "MessageQueueBrowser",
    "MessageTooBigError",
    "MessagingError",
    "MessagingService",
    "MessagingServiceClientBuilder",
    "MissingResourcesCreationStrategy",
    "ObjectToBytes",
    "OutboundMessage",
    "OutboundMessageBuilder",
    "Outcome",
    "PersistentMessagePublisher",
    "PersistentMessageReceiver",
    "PubSubPlusClientError",
    "PubSubPlusClientIOError",
    "PubSubTimeoutError",
    "PublishFailureListener",
    "PublishReceipt",
    "PublisherOverflowError",
    "PublisherReadinessListener",
    "Queue",
    "ReconnectionAttemptListener",
    "ReconnectionListener",
    "Replier",
    "RequestMessageHandler",
    "RequestReplyMessagePublisher",
    "RequestReplyMessagePublisherBuilder",
    "RequestReplyMessageReceiver",
    "RequestReplyMessageReceiverBuilder",
    "RequestReplyMessagingService",
    "RetryStrategy",
    "ServiceEvent",
    "ServiceInterruptionListener",
    "ServiceState",
    "ServiceUnreachableError",
    "ShareName",
    "TerminationEvent",
    "TerminationNotificationListener",
    "Topic",
    "TopicSubscription",
]
