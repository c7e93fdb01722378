# ruff: noqa  -- written in the style of the vendor's samples, kept as they write them
## Goal: publish, subscribe and request/reply, written in the style of the Solace
## PubSub+ Python API samples. The test runs this file after pointing its imports
## at the warren package instead of the solace one, and changes nothing else.
import os
import platform
import threading
import time

# Import Solace Python API modules from the solace package
from solace.messaging.messaging_service import MessagingService, ReconnectionListener, ReconnectionAttemptListener, \
            ServiceInterruptionListener, RetryStrategy, ServiceEvent
from solace.messaging.resources.topic import Topic
from solace.messaging.resources.topic_subscription import TopicSubscription
from solace.messaging.resources.share_name import ShareName
from solace.messaging.publisher.direct_message_publisher import PublishFailureListener, FailedPublishEvent
from solace.messaging.receiver.message_receiver import MessageHandler, InboundMessage
from solace.messaging.receiver.request_reply_message_receiver import RequestMessageHandler, Replier
from solace.messaging.errors.pubsubplus_client_error import PubSubPlusClientError

if platform.uname().system == 'Windows': os.environ["PYTHONUNBUFFERED"] = "1" # Disable stdout buffer

MSG_COUNT = 5
TOPIC_PREFIX = os.environ.get('TOPIC_PREFIX') or "samples/python"
all_received = threading.Event()
received = []

# Handle received messages
class MessageHandlerImpl(MessageHandler):
    def on_message(self, message: InboundMessage):
        topic = message.get_destination_name()
        payload_str = message.get_payload_as_string()
        app_id = message.get_application_message_id()
        language = message.get_property("language")
        print(f"Received on {topic}: {payload_str} (id {app_id}, language {language})")
        received.append(payload_str)
        if len(received) == MSG_COUNT:
            all_received.set()

class RequestMessageHandlerImpl(RequestMessageHandler):
    def __init__(self, message_builder):
        self.message_builder = message_builder

    def on_message(self, request: InboundMessage, replier: Replier):
        payload = request.get_payload_as_string()
        print(f'Received request: {payload}')
        if replier is not None:
            outbound_msg = self.message_builder \
                            .with_application_message_id(f'{request.get_application_message_id()}') \
                            .build(f'Greetings {payload}!')
            replier.reply(outbound_msg)
        else:
            print('Invalid request, reply_to not set')

# Inner classes for error handling
class ServiceEventHandler(ReconnectionListener, ReconnectionAttemptListener, ServiceInterruptionListener):
    def on_reconnected(self, e: ServiceEvent):
        print("\non_reconnected")
        print(f"Error cause: {e.get_cause()}")
        print(f"Message: {e.get_message()}")

    def on_reconnecting(self, e: "ServiceEvent"):
        print("\non_reconnecting")
        print(f"Error cause: {e.get_cause()}")
        print(f"Message: {e.get_message()}")

    def on_service_interrupted(self, e: "ServiceEvent"):
        print("\non_service_interrupted")
        print(f"Error cause: {e.get_cause()}")
        print(f"Message: {e.get_message()}")

class PublisherErrorHandling(PublishFailureListener):
    def on_failed_publish(self, e: "FailedPublishEvent"):
        print("on_failed_publish")

# Broker Config
broker_props = {
    "solace.messaging.transport.host": os.environ.get('SOLACE_HOST') or "tcp://localhost:55555",
    "solace.messaging.service.vpn-name": os.environ.get('SOLACE_VPN') or "default",
    "solace.messaging.authentication.scheme.basic.username": os.environ.get('SOLACE_USERNAME') or "default",
    "solace.messaging.authentication.scheme.basic.password": os.environ.get('SOLACE_PASSWORD') or "default"
    }

# Build A messaging service with a reconnection strategy of 20 retries over an interval of 3 seconds
messaging_service = MessagingService.builder().from_properties(broker_props)\
                    .with_reconnection_retry_strategy(RetryStrategy.parametrized_retry(20,3))\
                    .build()

# Blocking connect thread
messaging_service.connect()
print(f'Messaging Service connected? {messaging_service.is_connected}')

# Event Handling for the messaging service
service_handler = ServiceEventHandler()
messaging_service.add_reconnection_listener(service_handler)
messaging_service.add_reconnection_attempt_listener(service_handler)
messaging_service.add_service_interruption_listener(service_handler)

# Build a Receiver with the given topics and start it
topics_sub = [TopicSubscription.of(TOPIC_PREFIX + "/direct/sub/>")]
direct_receiver = messaging_service.create_direct_message_receiver_builder()\
                        .with_subscriptions(topics_sub)\
                        .build(shared_subscription_group=ShareName.of("sample-group"))
direct_receiver.start()
print(f'Direct Subscriber is running? {direct_receiver.is_running()}')
direct_receiver.receive_async(MessageHandlerImpl())

# Create a direct message publisher and start it
direct_publisher = messaging_service.create_direct_message_publisher_builder().build()
direct_publisher.set_publish_failure_listener(PublisherErrorHandling())
direct_publisher.start()
print(f'Direct Publisher ready? {direct_publisher.is_ready()}')

# Prepare outbound message payload and body
message_body = "this is the body of the msg"
outbound_msg_builder = messaging_service.message_builder() \
                .with_application_message_id("sample_id") \
                .with_property("application", "samples") \
                .with_property("language", "Python")

for count in range(1, MSG_COUNT + 1):
    topic = Topic.of(TOPIC_PREFIX + f'/direct/sub/{count}')
    outbound_msg = outbound_msg_builder \
                    .with_application_message_id(f'NEW {count}')\
                    .build(f'{message_body} + {count}')
    direct_publisher.publish(destination=topic, message=outbound_msg)
    print(f'Published message on {topic}')

if not all_received.wait(10):
    raise SystemExit(f"received {len(received)} of {MSG_COUNT} messages")

# Request/reply: a replier and a blocking requestor
direct_replier = messaging_service.request_reply() \
                    .create_request_reply_message_receiver_builder() \
                    .build(TopicSubscription.of(TOPIC_PREFIX + '/direct/request/>'))
direct_replier.start()
direct_replier.receive_async(RequestMessageHandlerImpl(messaging_service.message_builder()))

direct_requestor_blocking = messaging_service.request_reply() \
                                .create_request_reply_message_publisher_builder() \
                                .build()
direct_requestor_blocking.start()
print(f'Direct Requestor ready? {direct_requestor_blocking.is_ready()}')
try:
    outbound_msg = outbound_msg_builder \
                        .with_application_message_id(f'NEW {int(time.time())}')\
                        .build('Python')
    response = direct_requestor_blocking.publish_await_response(request_message=outbound_msg, \
                                                                request_destination=Topic.of(TOPIC_PREFIX + '/direct/request/me'), \
                                                                reply_timeout=3000)
    print(f'Received reply (body): {response.get_payload_as_string()}')
except PubSubPlusClientError as exception:
    print(f'Received a PubSubPlusClientException: {exception}')
    raise
finally:
    print('\nTerminating Publisher, Receiver, Requestor and Replier')
    direct_publisher.terminate()
    direct_receiver.terminate()
    direct_requestor_blocking.terminate()
    direct_replier.terminate()
    print('\nDisconnecting Messaging Service')
    messaging_service.disconnect()
