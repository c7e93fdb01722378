"""warren.messaging without a broker: names, module paths, configuration, messages."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import time

import pytest

import warren.messaging as messaging
from warren.codecs.native import Message as NativeMessage
from warren.messaging import (
    AuthenticationError,
    AuthorizationError,
    IllegalArgumentError,
    IllegalStateError,
    InboundMessage,
    InvalidConfigurationError,
    InvalidDataTypeError,
    MessagingService,
    OutboundMessageBuilder,
    PubSubPlusClientError,
    RetryStrategy,
    ShareName,
    Topic,
    TopicSubscription,
)
from warren.messaging._errors import error_for_code
from warren.messaging._properties import Endpoint, parse_hosts, service_config


def test_exported_names_exist() -> None:
    for name in messaging.__all__:
        assert hasattr(messaging, name), name
    assert len(messaging.__all__) == len(set(messaging.__all__))


# The module paths the Solace API's samples import from, and names they take.
SOLACE_PATHS = {
    "messaging_service": ["MessagingService", "ReconnectionListener", "RetryStrategy",
                          "ReconnectionAttemptListener", "ServiceInterruptionListener",
                          "ServiceEvent"],
    "resources.topic": ["Topic"],
    "resources.topic_subscription": ["TopicSubscription"],
    "resources.share_name": ["ShareName"],
    "publisher.direct_message_publisher": ["PublishFailureListener", "FailedPublishEvent",
                                           "DirectMessagePublisher"],
    "publisher.request_reply_message_publisher": ["RequestReplyMessagePublisher"],
    "publisher.outbound_message": ["OutboundMessage", "OutboundMessageBuilder"],
    "receiver.message_receiver": ["MessageHandler", "InboundMessage"],
    "receiver.inbound_message": ["InboundMessage"],
    "receiver.direct_message_receiver": ["DirectMessageReceiver"],
    "receiver.request_reply_message_receiver": ["RequestMessageHandler", "InboundMessage",
                                                "RequestReplyMessageReceiver", "Replier"],
    "errors.pubsubplus_client_error": ["PubSubPlusClientError", "IllegalStateError",
                                       "PubSubTimeoutError"],
    "config.retry_strategy": ["RetryStrategy"],
    "config.authentication_strategy": ["BasicUserNamePassword"],
    "config.solace_properties.transport_layer_properties": ["HOST"],
    "config.solace_properties.service_properties": ["VPN_NAME"],
    "config.solace_properties.authentication_properties": ["SCHEME_BASIC_USER_NAME"],
    "utils.converter": ["ObjectToBytes", "BytesToObject"],
    "resources.queue": ["Queue"],
    "config.missing_resources_creation_configuration": ["MissingResourcesCreationStrategy"],
    "config.message_acknowledgement_configuration": ["Outcome"],
    "publisher.persistent_message_publisher": ["PersistentMessagePublisher", "PublishReceipt"],
    "receiver.persistent_message_receiver": ["PersistentMessageReceiver"],
    "receiver.queue_browser": ["MessageQueueBrowser"],
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(SOLACE_PATHS))
def test_solace_module_paths_exist(path: str) -> None:
    module = importlib.import_module(f"warren.messaging.{path}")
    for name in SOLACE_PATHS[path]:
        assert hasattr(module, name), f"warren.messaging.{path}.{name}"


def test_client_imports_nothing_from_the_broker_side() -> None:
    code = (
        "import sys, warren.messaging\n"
        "print(sorted(m for m in sys.modules if m.startswith('warren.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = ast.literal_eval(out)  # a printed list of module names
    allowed = ("warren.messaging", "warren.codecs", "warren.errors", "warren.core.topics")
    packages = ("warren", "warren.core")  # empty package modules on the way
    assert [m for m in loaded if m not in packages and not m.startswith(allowed)] == []


# -- configuration -------------------------------------------------------------------


def test_hosts() -> None:
    assert parse_hosts("localhost") == (Endpoint("tcp", "localhost", 55555),)
    assert parse_hosts("tcp://h:1,h2:2, ws://w:80/native") == (
        Endpoint("tcp", "h", 1), Endpoint("tcp", "h2", 2), Endpoint("ws", "w", 80, "/native"),
    )
    assert parse_hosts("tcp://[::1]:5").__getitem__(0).uri == "tcp://[::1]:5"
    for bad in ("tcps://h:1", "wss://h", "ftp://h", "tcp://:1", ","):
        with pytest.raises(InvalidConfigurationError):
            parse_hosts(bad)


def test_property_keys_with_or_without_prefix_and_legacy_spellings() -> None:
    a = service_config({
        "solace.messaging.transport.host": "h",
        "solace.messaging.service.vpn-name": "v",
        "solace.messaging.authentication.scheme.basic.username": "u",
        "solace.messaging.authentication.scheme.basic.password": "p",
    })
    b = service_config({
        "transport.host": "h", "service.vpn-name": "v",
        "authentication.basic.username": "u", "authentication.basic.password": "p",
    })
    assert a == b
    assert (a.vpn, a.username, a.password) == ("v", "u", "p")


def test_retry_and_timing_properties() -> None:
    config = service_config({
        "transport.host": "h",
        "transport.reconnection-attempts": "5",
        "transport.reconnection-attempts-wait-interval": 250,
        "transport.connection-retries": 2,
        "transport.keep-alive-interval": 2500,
        "transport.connection-attempts-timeout": 1500,
    })
    assert config.reconnection_retry == RetryStrategy(5, 250)
    assert config.connection_retry == RetryStrategy(2, 250)
    assert config.keepalive == 3 and config.connect_timeout == 1.5
    # A strategy given to the builder wins over the properties.
    config = service_config({"transport.host": "h", "transport.reconnection-attempts": 5},
                            reconnection_retry=RetryStrategy.never_retry())
    assert config.reconnection_retry.retries == 0


def test_missing_or_bad_properties() -> None:
    with pytest.raises(InvalidConfigurationError, match=r"transport\.host"):
        MessagingService.builder().from_properties({}).build()
    with pytest.raises(InvalidConfigurationError, match="number"):
        service_config({"transport.host": "h", "transport.reconnection-attempts": "many"})
    with pytest.raises(InvalidConfigurationError, match="scheme"):
        service_config({"transport.host": "h", "authentication.scheme": "KERBEROS"})


def test_retry_strategies() -> None:
    assert RetryStrategy.parametrized_retry(20, 3) == RetryStrategy(20, 3)
    assert RetryStrategy.forever_retry() == RetryStrategy(-1, 3000)
    assert RetryStrategy.never_retry().retries == 0
    with pytest.raises(IllegalArgumentError):
        RetryStrategy.parametrized_retry(-2, 10)
    with pytest.raises(InvalidDataTypeError):
        RetryStrategy.parametrized_retry("3", 10)  # type: ignore[arg-type]


def test_not_connected_is_a_clear_error() -> None:
    svc = MessagingService.builder().from_properties({"transport.host": "h"}).build()
    assert not svc.is_connected
    with pytest.raises(IllegalStateError, match="connect"):
        svc.create_direct_message_publisher_builder().build().start()


# -- destinations ---------------------------------------------------------------------


def test_destinations() -> None:
    assert Topic.of("a/b").get_name() == "a/b" and str(Topic.of("a/b")) == "a/b"
    assert TopicSubscription.of("a/*/c>".replace("c>", ">")).get_name() == "a/*/>"
    assert ShareName.of("workers").get_name() == "workers"
    for bad in ("", "a\0b"):
        with pytest.raises(IllegalArgumentError):
            Topic.of(bad)
    for bad in ("", "a/>/b", "a/b*c"):
        with pytest.raises(IllegalArgumentError):
            TopicSubscription.of(bad)
    for bad in ("", "a*", "a>", "a/b"):
        with pytest.raises(IllegalArgumentError):
            ShareName.of(bad)
    with pytest.raises(InvalidDataTypeError):
        Topic.of(7)  # type: ignore[arg-type]


# -- messages -------------------------------------------------------------------------


def test_outbound_message_to_the_wire() -> None:
    builder = (
        OutboundMessageBuilder()
        .with_application_message_id("id-1")
        .with_property("application", "samples")
        .with_property("count", 3)
        .with_property("ok", True)
        .with_correlation_id("corr")
        .with_priority(12)  # above 9 counts as 9
        .with_sender_id("me")
        .with_http_content_header("application/json", None)
    )
    message = builder.build('{"a": 1}')
    wire = message.to_native("t/1")
    assert wire == NativeMessage(
        "t/1", b'{"a": 1}', content_type="application/json", correlation_data=b"corr",
        user_properties=(("application", "samples"), ("count", "3"), ("ok", "true")),
        payload_format_utf8=True, priority=9, message_id="id-1", sender_id="me",
    )
    # The builder keeps its settings for the next message; build() copies them.
    second = builder.with_application_message_id("id-2").build(b"\xff")
    assert second.get_application_message_id() == "id-2"
    assert message.get_application_message_id() == "id-1"
    assert second.to_native("t").payload_format_utf8 is False
    assert second.get_payload_as_string() is None  # not UTF-8


def test_expiration_and_solace_message_property_keys() -> None:
    in_a_minute = int(time.time() * 1000) + 60_000
    wire = OutboundMessageBuilder().with_expiration(in_a_minute).build("x").to_native("t")
    assert wire.ttl_ms is not None and 55_000 < wire.ttl_ms <= 60_000
    wire = OutboundMessageBuilder().from_properties({
        "solace.messaging.message.priority": 4,
        "solace.messaging.message.correlation-id": "c",
        "solace.messaging.message.application-message-id": "m",
        "solace.messaging.message.persistent.time-to-live": 1500,
        "custom": "v",
    }).build("x").to_native("t")
    assert (wire.priority, wire.correlation_data, wire.message_id, wire.ttl_ms) == (
        4, b"c", "m", 1500,
    )
    assert wire.user_properties == (("custom", "v"),)
    extra = OutboundMessageBuilder().build("x").to_native("t", extra={"k": "v"})
    assert extra.user_properties == (("k", "v"),)


def test_bad_message_values() -> None:
    with pytest.raises(InvalidDataTypeError):
        OutboundMessageBuilder().with_property("k", {"a": 1})
    with pytest.raises(InvalidDataTypeError):
        OutboundMessageBuilder().build(12.5)
    with pytest.raises(IllegalArgumentError):
        OutboundMessageBuilder().with_priority(-1)


def test_inbound_message_getters() -> None:
    now = int(time.time() * 1000)
    m = InboundMessage(NativeMessage(
        "a/b", "héllo".encode(), content_type="text/plain", correlation_data=b"c1",
        response_topic="r", user_properties=(("k", "1"), ("k", "2"), ("x", "y")),
        ttl_ms=1000, priority=5, message_id="id", sender_id="s", retain=True,
    ), now)
    assert m.get_destination_name() == "a/b"
    assert m.get_payload_as_string() == "héllo"
    assert m.get_payload_as_bytes() == bytearray("héllo".encode())
    assert m.get_properties() == {"k": "2", "x": "y"}
    assert m.get_property("k") == "2" and m.has_property("x") and not m.has_property("z")
    assert m.get_user_properties() == (("k", "1"), ("k", "2"), ("x", "y"))
    assert m.get_correlation_id() == "c1" and m.get_correlation_data() == b"c1"
    assert m.get_reply_to() == "r" and m.get_content_type() == "text/plain"
    assert m.get_expiration() == now + 1000 and m.get_time_stamp() == now
    assert (m.get_priority(), m.get_application_message_id(), m.get_sender_id()) == (5, "id", "s")
    assert m.is_retained() and not m.is_redelivered()
    assert "a/b" in str(m) and "héllo" in str(m)


def test_errors_from_broker_codes() -> None:
    assert isinstance(error_for_code(201, "bad"), AuthenticationError)
    assert isinstance(error_for_code(200, "no"), AuthorizationError)
    unknown = error_for_code(777, "?")
    assert type(unknown) is PubSubPlusClientError and unknown.code == 777
    assert "code 777" in str(unknown)
    assert issubclass(IllegalArgumentError, ValueError)
    assert issubclass(InvalidDataTypeError, TypeError)
