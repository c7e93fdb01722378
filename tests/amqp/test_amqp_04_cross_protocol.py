"""amq.topic is the shared topic space: AMQP <-> MQTT (paho), with property mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pika
from amqp_support import receive

Connect = Callable[..., pika.BlockingConnection]


def test_mqtt_publish_reaches_amqp_queue_bound_to_amq_topic(
    connect: Connect, peers: Any, uid: str
) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.sensors.*.temp")
    channel.queue_bind(queue, "amq.topic", f"{uid}.sensors.#")  # overlapping: one copy
    mqtt = peers.paho()
    mqtt.publish(f"{uid}/sensors/kitchen/temp", b"21.5", qos=1, properties={
        "ContentType": "text/plain",
        "ResponseTopic": f"{uid}/replies/x",
        "CorrelationData": b"c-1",
        "UserProperty": [("unit", "C")],
        "MessageExpiryInterval": 60,
    })
    mqtt.publish(f"{uid}/other", b"not routed", qos=1)
    method, props, body = receive(channel, queue, 1, auto_ack=True)[0]
    assert body == b"21.5"
    assert method.exchange == "amq.topic"
    assert method.routing_key == f"{uid}.sensors.kitchen.temp"
    assert props.content_type == "text/plain"
    assert props.reply_to == f"{uid}.replies.x"
    assert props.correlation_id == "c-1"
    assert props.headers == {"unit": "C"}
    assert props.delivery_mode == 2  # QoS 1 -> persistent
    assert props.expiration is not None and 0 < int(props.expiration) <= 60000
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_amqp_publish_to_amq_topic_reaches_mqtt(connect: Connect, peers: Any, uid: str) -> None:
    mqtt = peers.paho()
    mqtt.subscribe(f"{uid}/orders/+", qos=1)
    channel = connect().channel()
    channel.confirm_delivery()
    channel.basic_publish("amq.topic", f"{uid}.orders.42", b'{"id": 42}', pika.BasicProperties(
        content_type="application/json", correlation_id="corr-9", reply_to=f"{uid}.answers",
        headers={"tenant": "acme", "n": 7}, delivery_mode=2, expiration="30000",
    ))
    msg = mqtt.expect_one(topic=f"{uid}/orders/42")
    assert msg.payload == b'{"id": 42}'
    assert msg.qos == 1
    assert msg.props["ContentType"] == "application/json"
    assert msg.props["CorrelationData"] == b"corr-9"
    assert msg.props["ResponseTopic"] == f"{uid}/answers"
    assert sorted(msg.props["UserProperty"]) == [("n", "7"), ("tenant", "acme")]
    assert 0 < msg.props["MessageExpiryInterval"] <= 30


def test_transient_amqp_publish_is_qos0_for_mqtt(connect: Connect, peers: Any, uid: str) -> None:
    mqtt = peers.paho(version=4)
    mqtt.subscribe(f"{uid}/#", qos=1)
    channel = connect().channel()
    channel.basic_publish("amq.topic", f"{uid}.a", b"fast")
    msg = mqtt.expect_one(topic=f"{uid}/a")
    assert (msg.payload, msg.qos) == (b"fast", 0)


def test_amqp_to_amqp_through_amq_topic(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.#")
    channel.basic_publish("amq.topic", f"{uid}.x.y", b"hi",
                          pika.BasicProperties(headers={"nested": {"a": [1]}}, app_id="me"))
    _, props, body = receive(channel, queue, 1, auto_ack=True)[0]
    assert body == b"hi"
    assert props.headers == {"nested": {"a": [1]}}  # AMQP to AMQP: unchanged
    assert props.app_id == "me"


def test_mandatory_on_amq_topic_counts_mqtt_subscribers(
    connect: Connect, peers: Any, uid: str
) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    mqtt = peers.paho()
    mqtt.subscribe(f"{uid}/seen", qos=0)
    channel.basic_publish("amq.topic", f"{uid}.seen", b"ok", mandatory=True)  # no return
    assert mqtt.expect_one(topic=f"{uid}/seen").payload == b"ok"


def test_mqtt_wildcards_and_dollar_topics(connect: Connect, peers: Any, uid: str) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.#.end")  # '#' in the middle (AMQP only)
    mqtt = peers.paho()
    for topic in (f"{uid}/end", f"{uid}/a/b/end", f"{uid}/a/end/x"):
        mqtt.publish(topic, topic.encode(), qos=1)
    got = receive(channel, queue, 2, auto_ack=True)
    assert [b for *_, b in got] == [f"{uid}/end".encode(), f"{uid}/a/b/end".encode()]


def test_unbinding_from_amq_topic_stops_mqtt_traffic(
    connect: Connect, peers: Any, uid: str
) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.topic", f"{uid}.t")
    channel.queue_unbind(queue, "amq.topic", f"{uid}.t")
    mqtt = peers.paho()
    mqtt.publish(f"{uid}/t", b"dropped", qos=1)
    channel.queue_bind(queue, "amq.topic", f"{uid}.t")
    mqtt.publish(f"{uid}/t", b"kept", qos=1)
    assert [b for *_, b in receive(channel, queue, 1, auto_ack=True)] == [b"kept"]
