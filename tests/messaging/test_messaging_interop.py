"""Every protocol sees every other: warren.messaging with real MQTT clients.

paho-mqtt (3.1.1 and 5, TCP) and MQTT.js (5 and 3.1.1, WebSocket) against the
native API, with the property mapping of DESIGN.md, and MQTT 5 request/response
interoperating with native request/reply in both directions.
"""

from __future__ import annotations

import time

import pytest

from warren.messaging import (
    InboundMessage,
    Replier,
    RequestMessageHandler,
    Topic,
    TopicSubscription,
)

WAIT_MS = 5000


def _full_message(svc):  # type: ignore[no-untyped-def]
    return (
        svc.message_builder()
        .with_http_content_header("application/json", None)
        .with_correlation_id("corr-1")
        .with_reply_to("replies/here")
        .with_property("region", "eu")
        .with_property("tier", "gold")
        .with_time_to_live(60_000)
        .build('{"order": 42}')
    )


def test_native_to_paho_v5(service, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    mqtt = peers.paho(version=5)
    mqtt.subscribe(f"{uid}/orders/#")
    svc = service()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(_full_message(svc), Topic.of(f"{uid}/orders/new"))
    m = mqtt.expect_one()
    assert (m.topic, m.payload) == (f"{uid}/orders/new", b'{"order": 42}')
    props = m.props
    assert props["ContentType"] == "application/json"
    assert props["CorrelationData"] == b"corr-1"
    assert props["ResponseTopic"] == "replies/here"
    assert props["UserProperty"] == [("region", "eu"), ("tier", "gold")]
    assert props["PayloadFormatIndicator"] == 1  # a str payload is UTF-8 text
    assert 55 <= props["MessageExpiryInterval"] <= 60


def test_native_to_paho_v311_gets_what_it_can_carry(service, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    mqtt = peers.paho(version=4)
    mqtt.subscribe(f"{uid}/orders/#")
    svc = service()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(_full_message(svc), Topic.of(f"{uid}/orders/new"))
    m = mqtt.expect_one()
    assert (m.topic, m.payload, m.props) == (f"{uid}/orders/new", b'{"order": 42}', {})


def test_paho_v5_to_native(service, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/sensors/>")]).build()
    receiver.start()
    mqtt = peers.paho(version=5)
    before = int(time.time() * 1000)
    mqtt.publish(f"{uid}/sensors/t1", b"21.5", properties={
        "ContentType": "text/plain",
        "CorrelationData": b"\x00\xffbin",
        "ResponseTopic": f"{uid}/back",
        "UserProperty": [("unit", "C"), ("unit", "K")],
        "MessageExpiryInterval": 30,
        "PayloadFormatIndicator": 1,
    })
    m = receiver.receive_message(WAIT_MS)
    assert m is not None
    assert (m.get_destination_name(), m.get_payload_as_string()) == (f"{uid}/sensors/t1", "21.5")
    assert m.get_content_type() == "text/plain"
    assert m.get_correlation_data() == b"\x00\xffbin"
    assert m.get_reply_to() == f"{uid}/back"
    assert m.get_user_properties() == (("unit", "C"), ("unit", "K"))
    assert m.get_property("unit") == "K"
    expiration = m.get_expiration()
    assert expiration is not None and before + 25_000 <= expiration <= before + 31_000
    assert m.native.payload_format_utf8


def test_paho_v311_to_native(service, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    receiver = svc.create_direct_message_receiver_builder() \
        .with_subscriptions([TopicSubscription.of(f"{uid}/legacy")]).build()
    receiver.start()
    peers.paho(version=4).publish(f"{uid}/legacy", b"\x01\x02", qos=1)
    m = receiver.receive_message(WAIT_MS)
    assert m is not None and m.payload == b"\x01\x02"
    assert (m.get_content_type(), m.get_correlation_id(), m.get_properties(),
            m.get_expiration()) == (None, None, {}, None)


@pytest.mark.parametrize("version", [5, 4])
def test_native_to_mqttjs_over_websocket(service, peers, uid: str, version: int) -> None:  # type: ignore[no-untyped-def]
    js = peers.js(version=version, transport="ws")
    js.subscribe(f"{uid}/web/#")
    svc = service()
    publisher = svc.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(_full_message(svc), Topic.of(f"{uid}/web/feed"))
    m = js.expect_one()
    assert (m.topic, m.payload) == (f"{uid}/web/feed", b'{"order": 42}')
    if version == 5:
        assert m.props["ContentType"] == "application/json"
        assert m.props["CorrelationData"] == b"corr-1"
        assert m.props["ResponseTopic"] == "replies/here"
        assert m.props["UserProperty"] == [("region", "eu"), ("tier", "gold")]
    else:
        assert m.props == {}


def test_mqtt5_request_native_reply(service, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()

    class Responder(RequestMessageHandler):
        def on_message(self, message: InboundMessage, replier: Replier | None) -> None:
            assert replier is not None
            replier.reply(svc.message_builder().build(f"pong {message.get_payload_as_string()}"))

    responder = svc.request_reply().create_request_reply_message_receiver_builder() \
        .build(TopicSubscription.of(f"{uid}/svc/ping"))
    responder.start()
    responder.receive_async(Responder())
    mqtt = peers.paho(version=5)
    mqtt.subscribe(f"{uid}/responses/me")
    mqtt.publish(f"{uid}/svc/ping", b"1", properties={
        "ResponseTopic": f"{uid}/responses/me", "CorrelationData": b"req-7",
    })
    reply = mqtt.expect_one()
    assert (reply.topic, reply.payload) == (f"{uid}/responses/me", b"pong 1")
    assert reply.props["CorrelationData"] == b"req-7"


@pytest.mark.parametrize("client", ["paho", "mqttjs"])
def test_native_request_mqtt5_reply(service, peers, uid: str, client: str) -> None:  # type: ignore[no-untyped-def]
    mqtt = peers.paho(version=5) if client == "paho" else peers.js(version=5, transport="ws")
    mqtt.subscribe(f"{uid}/svc/time")
    svc = service()
    requester = svc.request_reply().create_request_reply_message_publisher_builder().build()
    requester.start()
    future = requester.publish("what time?", Topic.of(f"{uid}/svc/time"), WAIT_MS)
    request = mqtt.expect_one()
    response_topic = request.props["ResponseTopic"]
    assert response_topic.startswith("$inbox/")
    key = "CorrelationData" if client == "paho" else "correlationData"  # MQTT.js spelling
    mqtt.publish(response_topic, b"noon", properties={key: request.props["CorrelationData"]})
    reply = future.result(5)
    assert reply.get_payload_as_string() == "noon"
    assert reply.get_correlation_data() == request.props["CorrelationData"]
