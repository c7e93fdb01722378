"""End to end with real clients: channel.flow, basic.recover, amq.topic as the source of
an exchange-to-exchange binding, the topic ACL on amq.topic, missed heartbeats, x-expires.

Time-based behaviour is awaited on broker events, never on the wall clock: the
missed-heartbeat drop shows as the requeue of the dropped consumer's delivery to
another consumer; queue expiry is checked once a message with a longer TTL has been
dead-lettered (the broker's timers fire in deadline order).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pytest
from amqp_support import WAIT, amqp_port_of, receive

from warren.messaging import MessagingService, Topic

Connect = Callable[..., pika.BlockingConnection]
Native = Callable[[], MessagingService]


def _pump_until(conn: pika.BlockingConnection, done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT}s: {what}", pytrace=False)
        conn.process_data_events(time_limit=0.1)


def _channel_closed(call: Callable[[], Any]) -> pika.exceptions.ChannelClosedByBroker:
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        call()
    return info.value


# --- channel.flow -------------------------------------------------------------------------


def test_channel_flow_pauses_and_resumes_deliveries(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    got: list[bytes] = []
    channel.basic_consume(queue, lambda _c, _m, _p, body: got.append(body), auto_ack=True)
    assert channel.flow(False) is False
    for i in range(3):
        channel.basic_publish("", queue, b"%d" % i)
    # Routed in order before the declare is answered; none went to the paused consumer.
    assert channel.queue_declare(queue, passive=True).method.message_count == 3
    other = conn.channel()  # flow is per channel: another channel's consumer gets messages
    other_got: list[bytes] = []
    other_queue = other.queue_declare("", exclusive=True).method.queue
    other.basic_consume(other_queue, lambda _c, _m, _p, b: other_got.append(b), auto_ack=True)
    other.basic_publish("", other_queue, b"other")
    _pump_until(conn, lambda: other_got == [b"other"], "delivery on the other channel")
    assert got == []
    assert channel.flow(True) is True
    _pump_until(conn, lambda: len(got) == 3, "deliveries after flow(active=True)")
    assert got == [b"0", b"1", b"2"]


# --- basic.recover ------------------------------------------------------------------------


def test_basic_recover_requeues_unacked_in_order(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for body in (b"a", b"b", b"c"):
        channel.basic_publish("", queue, body)
    deliveries: list[tuple[Any, bytes]] = []
    channel.basic_consume(queue, lambda _c, m, _p, body: deliveries.append((m, body)))
    _pump_until(conn, lambda: len(deliveries) == 3, "three deliveries")
    channel.basic_ack(deliveries[1][0].delivery_tag)  # "b" is done
    channel.basic_recover(requeue=True)
    _pump_until(conn, lambda: len(deliveries) == 5, "redeliveries after basic.recover")
    again = deliveries[3:]
    assert [body for _, body in again] == [b"a", b"c"]
    assert all(m.redelivered for m, _ in again)
    assert not any(m.redelivered for m, _ in deliveries[:3])
    tags = [m.delivery_tag for m, _ in deliveries]
    assert tags == sorted(set(tags))  # new tags: the old ones are void
    channel.basic_ack(again[-1][0].delivery_tag, multiple=True)
    channel.basic_cancel(deliveries[0][0].consumer_tag)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_basic_recover_without_requeue_is_540(connect: Connect) -> None:
    """As RabbitMQ: redelivery to the original recipient only is not implemented."""
    conn = connect()
    channel = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.basic_recover(requeue=False)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - requeue=false"


# --- amq.topic as the source of an exchange-to-exchange binding ----------------------------


def test_amq_topic_as_source_of_exchange_binding(
    connect: Connect, native: Native, peers: Any, uid: str
) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    fan = f"{uid}.alerts"
    channel.exchange_declare(fan, "fanout", auto_delete=True)
    channel.exchange_bind(fan, "amq.topic", f"{uid}.alerts.#")
    queues = [channel.queue_declare("", exclusive=True).method.queue for _ in range(2)]
    for queue in queues:
        channel.queue_bind(queue, fan)

    mqtt = peers.paho(version=5)
    mqtt.publish(f"{uid}/alerts/fire", b"fire", qos=1, properties={"UserProperty": [("l", "9")]})
    mqtt.publish(f"{uid}/other", b"not bound", qos=1)
    service = native()
    publisher = service.create_direct_message_publisher_builder().build()
    publisher.start()
    publisher.publish(b"flood", Topic.of(f"{uid}/alerts/flood"))
    channel.basic_publish("amq.topic", f"{uid}.alerts.amqp", b"amqp")

    for queue in queues:  # the fanout copies to both
        got = receive(channel, queue, 3, auto_ack=True)
        assert sorted(body for *_, body in got) == [b"amqp", b"fire", b"flood"]
        for method, props, body in got:
            # Deliveries report where the message entered AMQP routing (as RabbitMQ).
            assert method.exchange == "amq.topic"
            assert method.routing_key == f"{uid}.alerts.{body.decode()}"
            if body == b"fire":
                assert props.headers == {"l": "9"}

    # Unbound: the topic space no longer reaches the fanout. Proven with a marker
    # published after the unbind by the same MQTT client to a direct binding.
    channel.exchange_unbind(fan, "amq.topic", f"{uid}.alerts.#")
    mqtt.publish(f"{uid}/alerts/late", b"late", qos=1)
    channel.queue_bind(queues[0], "amq.topic", f"{uid}.marker")
    mqtt.publish(f"{uid}/marker", b"marker", qos=1)
    assert [body for *_, body in receive(channel, queues[0], 1, auto_ack=True)] == [b"marker"]


# --- the topic ACL on amq.topic --------------------------------------------------------------

ACL_TOML = """
[vpn.default]
acl_default = "allow"

[[vpn.default.acl]]
action = "deny"
operation = "publish"
topic = "secret/#"

[[vpn.default.acl]]
action = "deny"
operation = "subscribe"
topic = "private/#"
"""


def test_topic_acl_on_amq_topic(make_broker: Callable[..., Any]) -> None:
    broker = make_broker(ACL_TOML)
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        host=broker.host, port=amqp_port_of(broker), socket_timeout=WAIT, stack_timeout=WAIT,
        credentials=pika.PlainCredentials("alice", "pw"),
    ))
    try:
        setup = conn.channel()
        queue = setup.queue_declare("", exclusive=True).method.queue
        setup.queue_bind(queue, "amq.topic", "secret.#")  # subscribing is allowed
        setup.queue_bind(queue, "amq.topic", "open.#")

        # A refused publish closes the channel with 403 and says why.
        refused = conn.channel()
        refused.confirm_delivery()
        error = _channel_closed(lambda: refused.basic_publish("amq.topic", "secret.plans", b"x"))
        assert error.reply_code == 403
        assert error.reply_text.startswith(
            "ACCESS_REFUSED - access to topic 'secret.plans' in exchange 'amq.topic' in vhost "
            "'/' refused for user 'alice'"
        )
        # The connection and other channels go on; nothing of the refused publish
        # was routed (it would be ahead of "open.ok" in the queue).
        ok = conn.channel()
        ok.confirm_delivery()
        ok.basic_publish("amq.topic", "open.ok", b"ok")
        method, _, body = receive(setup, queue, 1, auto_ack=True)[0]
        assert (method.routing_key, body) == ("open.ok", b"ok")

        # Refused bindings: a queue or an exchange bound to a denied filter.
        for bind in (
            lambda c: c.queue_bind(queue, "amq.topic", "private.#"),
            lambda c: c.queue_bind(queue, "amq.topic", "private.x"),
            lambda c: c.exchange_bind("amq.fanout", "amq.topic", "private.*"),
        ):
            channel = conn.channel()
            error = _channel_closed(lambda bind=bind, channel=channel: bind(channel))
            assert error.reply_code == 403
            assert "in exchange 'amq.topic' in vhost '/' refused for user 'alice'" in (
                error.reply_text
            )
        assert conn.is_open
    finally:
        if conn.is_open:
            conn.close()


# --- heartbeats ---------------------------------------------------------------------------


def test_missed_heartbeats_drop_the_connection(
    broker: Any, amqp_port: int, connect: Connect, uid: str
) -> None:
    """A client that negotiated a 1 s heartbeat and then falls silent is dropped
    (two missed intervals, spec 4.2.7); its unacked delivery goes to another consumer."""
    log_start = broker.log_size()
    silent = pika.BlockingConnection(pika.ConnectionParameters(
        host=broker.host, port=amqp_port, heartbeat=1, socket_timeout=WAIT, stack_timeout=WAIT,
    ))
    try:
        assert silent._impl.params.heartbeat == 1  # negotiated: the client's value
        silent_channel = silent.channel()
        queue = silent_channel.queue_declare(f"{uid}.work", auto_delete=True).method.queue
        silent_channel.basic_consume(queue, lambda *_: None)  # first in the round robin
        other = connect().channel()
        other.basic_publish("", queue, b"job")
        # A pika BlockingConnection does nothing (no heartbeats) between calls: from
        # here on, "silent" is. The broker drops it and requeues its delivery.
        method, _, body = receive(other, queue, 1, auto_ack=True)[0]
        assert (body, method.redelivered) == (b"job", True)
        assert "missed heartbeats; closing" in broker.log(log_start)
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            silent.process_data_events(time_limit=WAIT)
    finally:
        if silent.is_open:
            silent.close()


# --- x-expires ----------------------------------------------------------------------------


def test_x_expires_deletes_an_unused_queue(connect: Connect, uid: str) -> None:
    conn = connect()
    channel = conn.channel()
    idle = channel.queue_declare(f"{uid}.idle", arguments={"x-expires": 200}).method.queue
    busy = channel.queue_declare(f"{uid}.busy", arguments={"x-expires": 200}).method.queue
    keeper = conn.channel()
    keeper.basic_consume(busy, lambda *_: None)  # a consumer keeps a queue in use
    # The clock: a message that expires 600 ms from now, dead-lettered to "clock".
    clock = channel.queue_declare("", exclusive=True).method.queue
    timer = channel.queue_declare("", exclusive=True, arguments={
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": clock,
    }).method.queue
    channel.basic_publish("", timer, b"tick", pika.BasicProperties(expiration="600"))
    _, props, _ = receive(channel, clock, 1, auto_ack=True)[0]
    assert props.headers["x-death"][0]["reason"] == "expired"
    # Past idle's expiry (200 ms after its declaration, before the 600 ms tick).
    error = _channel_closed(lambda: conn.channel().queue_declare(idle, passive=True))
    assert error.reply_code == 404
    assert error.reply_text == f"NOT_FOUND - no queue '{idle}' in vhost '/'"
    assert channel.queue_declare(busy, passive=True).method.consumer_count == 1
    keeper.close()
    channel.queue_delete(busy)
