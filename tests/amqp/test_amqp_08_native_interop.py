"""amq.topic and the native API (warren.messaging), both ways, and all three protocols.

The property mapping is DESIGN.md's: content type, correlation id, reply-to (with
``.`` and ``/`` swapped), headers <-> user properties (values as text), expiration
(ms, the remaining lifetime) <-> expiry, priority and message id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pika
from amqp_support import receive

from warren.messaging import MessagingService, Topic, TopicSubscription

Connect = Callable[..., pika.BlockingConnection]
Native = Callable[[], MessagingService]
WAIT_MS = 10_000


def _receiver(service: MessagingService, native_filter: str) -> Any:
    receiver = service.create_direct_message_receiver_builder().with_subscriptions(
        [TopicSubscription.of(native_filter)]
    ).build()
    receiver.start()
    return receiver


def _publisher(service: MessagingService) -> Any:
    publisher = service.create_direct_message_publisher_builder().build()
    publisher.start()
    return publisher


def test_amqp_publish_reaches_native_receiver_with_properties(
    connect: Connect, native: Native, uid: str
) -> None:
    receiver = _receiver(native(), f"{uid}/orders/*")
    channel = connect().channel()
    channel.confirm_delivery()
    before = int(time.time() * 1000)
    channel.basic_publish("amq.topic", f"{uid}.orders.42", b'{"id": 42}', pika.BasicProperties(
        content_type="application/json", correlation_id="corr-7",
        reply_to=f"{uid}.replies.me", headers={"tenant": "acme", "n": 7, "ok": True},
        expiration="30000", priority=6, message_id="m-1", delivery_mode=2,
    ))
    m = receiver.receive_message(WAIT_MS)
    assert m is not None, "no message for the native receiver"
    assert m.get_destination_name() == f"{uid}/orders/42"
    assert m.payload == b'{"id": 42}'
    assert m.get_content_type() == "application/json"
    assert m.get_correlation_id() == "corr-7"
    assert m.get_reply_to() == f"{uid}/replies/me"
    assert m.get_properties() == {"tenant": "acme", "n": "7", "ok": "true"}
    assert m.get_priority() == 6
    assert m.get_application_message_id() == "m-1"
    expiration = m.get_expiration()
    assert expiration is not None
    assert before + 25_000 <= expiration <= int(time.time() * 1000) + 30_000


def test_native_publish_reaches_amqp_queue_with_properties(
    connect: Connect, native: Native, uid: str
) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.events.#")
    service = native()
    message = (
        service.message_builder()
        .with_http_content_header("text/plain")
        .with_correlation_id("c-42")
        .with_reply_to(f"{uid}/answers/here")
        .with_property("region", "eu")
        .with_property("tier", "gold")
        .with_time_to_live(60_000)
        .with_priority(4)
        .with_application_message_id("app-9")
        .build("hello amqp")
    )
    publisher = _publisher(service)
    publisher.publish(message, Topic.of(f"{uid}/events/created"))
    publisher.publish(service.message_builder().build(b"bare"), Topic.of(f"{uid}/events/x"))
    (method, props, body), (_, bare_props, bare) = receive(channel, queue, 2, auto_ack=True)
    assert body == b"hello amqp"
    assert (method.exchange, method.routing_key) == ("amq.topic", f"{uid}.events.created")
    assert props.content_type == "text/plain"
    assert props.correlation_id == "c-42"
    assert props.reply_to == f"{uid}.answers.here"
    assert props.headers == {"region": "eu", "tier": "gold"}
    assert props.expiration is not None and 55_000 <= int(props.expiration) <= 60_000
    assert props.priority == 4
    assert props.message_id == "app-9"
    assert props.delivery_mode is None  # direct (QoS 0): transient
    # What the native message did not have is not invented.
    assert bare == b"bare"
    assert (bare_props.content_type, bare_props.correlation_id, bare_props.reply_to,
            bare_props.headers, bare_props.expiration) == (None, None, None, None, None)


def test_native_request_amqp_reply(connect: Connect, native: Native, uid: str) -> None:
    """A native request/reply requester is answered by an AMQP service (RPC over amq.topic)."""
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.svc.time")
    service = native()
    requester = service.request_reply().create_request_reply_message_publisher_builder().build()
    requester.start()
    result: dict[str, Any] = {}

    def ask() -> None:
        result["reply"] = requester.publish_await_response(
            service.message_builder().with_correlation_id("rq-1").build("what time?"),
            Topic.of(f"{uid}/svc/time"), WAIT_MS,
        )

    # The requester waits on its own thread; this one plays the AMQP service, which
    # answers on amq.topic to the reply-to (the requester's inbox topic).
    asker = threading.Thread(target=ask)
    asker.start()
    _, props, body = receive(channel, queue, 1, auto_ack=True)[0]
    assert body == b"what time?"
    assert props.reply_to and props.correlation_id == "rq-1"
    channel.basic_publish("amq.topic", props.reply_to, b"12:00",
                          pika.BasicProperties(correlation_id=props.correlation_id))
    asker.join(WAIT_MS / 1000)
    assert not asker.is_alive() and "reply" in result, "the requester got no reply"
    reply = result["reply"]
    assert reply.payload == b"12:00"
    assert reply.get_correlation_id() == "rq-1"


def test_amqp_mqtt_native_see_each_other(
    connect: Connect, native: Native, peers: Any, uid: str
) -> None:
    """One topic space: each protocol publishes once; each of the three receives all."""
    channel = connect().channel()
    channel.confirm_delivery()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.mesh.#")
    mqtt = peers.paho(version=5)
    mqtt.subscribe(f"{uid}/mesh/#", qos=1)
    service = native()
    receiver = _receiver(service, f"{uid}/mesh/>")

    channel.basic_publish("amq.topic", f"{uid}.mesh.amqp", b"from amqp", pika.BasicProperties(
        correlation_id="a-1", headers={"origin": "amqp"}, content_type="text/a",
    ))
    mqtt.publish(f"{uid}/mesh/mqtt", b"from mqtt", qos=1, properties={
        "CorrelationData": b"m-1", "UserProperty": [("origin", "mqtt")], "ContentType": "text/m",
    })
    _publisher(service).publish(
        service.message_builder().with_correlation_id("n-1").with_property("origin", "native")
        .with_http_content_header("text/n").build("from native"),
        Topic.of(f"{uid}/mesh/native"),
    )

    expected = {
        "amqp": (b"from amqp", "a-1", "text/a"),
        "mqtt": (b"from mqtt", "m-1", "text/m"),
        "native": (b"from native", "n-1", "text/n"),
    }
    amqp_got = {
        method.routing_key.rsplit(".", 1)[1]: (body, props.correlation_id, props.content_type)
        for method, props, body in receive(channel, queue, 3, auto_ack=True)
    }
    assert amqp_got == expected
    mqtt_got = {
        m.topic.rsplit("/", 1)[1]: (m.payload, m.props["CorrelationData"].decode(),
                                    m.props["ContentType"])
        for m in mqtt.expect(3)
    }
    assert mqtt_got == expected
    native_got = {}
    for _ in range(3):
        m = receiver.receive_message(WAIT_MS)
        assert m is not None, f"native receiver: only {native_got}"
        native_got[m.get_destination_name().rsplit("/", 1)[1]] = (
            m.payload, m.get_correlation_id(), m.get_content_type()
        )
        assert m.get_properties() == {"origin": m.get_destination_name().rsplit("/", 1)[1]}
    assert native_got == expected


def test_native_persistent_publish_reaches_amqp_consumer(
    connect: Connect, native: Native, uid: str
) -> None:
    channel = connect().channel()
    queue = channel.queue_declare(f"{uid}-durable", durable=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.persistent.#")
    publisher = native().create_persistent_message_publisher_builder().build()
    publisher.start()
    publisher.publish_await_acknowledgement(b"kept", Topic.of(f"{uid}/persistent/1"), WAIT_MS)
    [(method, props, body)] = receive(channel, queue)
    assert body == b"kept" and props.delivery_mode == 2
    assert method.routing_key == f"{uid}.persistent.1"
    channel.basic_ack(method.delivery_tag)
    channel.queue_delete(queue)
