"""AMQP 11 - x-delivery-limit (RabbitMQ quorum queues' argument): every requeue
counts (nack, reject, channel close); a message returned more often than the limit
is dead-lettered with x-death reason ``delivery_limit``, or dropped without a
dead-letter exchange; redeliveries carry ``x-delivery-count``; the count survives
a restart. Every wait is bounded and ends on an event."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pika
import pika.exceptions
import pytest
from amqp_support import WAIT, amqp_port_of, receive

Connect = Callable[..., pika.BlockingConnection]
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def limited_pair(channel: Any, uid: str, limit: object, *, durable: bool = False,
                 **arguments: object) -> tuple[str, str]:
    """A work queue with ``x-delivery-limit`` whose dead letters go through a fanout
    exchange to a second queue."""
    channel.exchange_declare(f"{uid}.dlx", "fanout", durable=durable, auto_delete=not durable)
    dead = channel.queue_declare(f"{uid}.dead", durable=durable,
                                 exclusive=not durable).method.queue
    channel.queue_bind(dead, f"{uid}.dlx")
    work = channel.queue_declare(
        f"{uid}.work", durable=durable, exclusive=not durable,
        arguments={"x-dead-letter-exchange": f"{uid}.dlx", "x-delivery-limit": limit,
                   **arguments},
    ).method.queue
    return work, dead


def nack_until_dead_lettered(conn: pika.BlockingConnection, work: str,
                             dead: str) -> tuple[list[Any], Any]:
    """Consume ``work`` nacking every delivery (requeue) until ``dead`` receives the
    message; the work deliveries and the dead one, as (method, properties, body)."""
    channel = conn.channel()
    channel.basic_qos(prefetch_count=1)
    deliveries: list[Any] = []
    died: list[Any] = []

    def on_work(ch: Any, method: Any, props: Any, body: bytes) -> None:
        deliveries.append((method, props, body))
        ch.basic_nack(method.delivery_tag, requeue=True)

    def on_dead(ch: Any, method: Any, props: Any, body: bytes) -> None:
        died.append((method, props, body))
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(work, on_work)
    channel.basic_consume(dead, on_dead)
    deadline = time.monotonic() + WAIT
    while not died:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"not dead-lettered within {WAIT}s; {len(deliveries)} deliveries",
                        pytrace=False)
        conn.process_data_events(time_limit=remaining)
    channel.close()
    return deliveries, died[0]


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_nacked_message_is_dead_lettered_after_limit_plus_one_deliveries(
    connect: Connect, uid: str, limit: int
) -> None:
    conn = connect()
    setup = conn.channel()
    work, dead = limited_pair(setup, uid, limit)
    setup.basic_publish("", work, b"poison", pika.BasicProperties(headers={"k": "v"}))
    deliveries, (method, props, body) = nack_until_dead_lettered(conn, work, dead)

    assert [b for _, _, b in deliveries] == [b"poison"] * (limit + 1)
    assert [m.redelivered for m, _, _ in deliveries] == [False] + [True] * limit
    # As RabbitMQ's quorum queues: redeliveries say how often the message came back.
    counts = [(p.headers or {}).get("x-delivery-count") for _, p, _ in deliveries]
    assert counts == [None, *range(1, limit + 1)]
    assert body == b"poison" and method.routing_key == work
    death = props.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("delivery_limit", work, 1)
    assert death["exchange"] == "" and death["routing-keys"] == [work]
    assert props.headers["x-first-death-reason"] == "delivery_limit"
    assert props.headers["k"] == "v"
    assert setup.queue_declare(work, passive=True).method.message_count == 0


def test_reject_and_channel_close_count_too(connect: Connect, uid: str) -> None:
    conn = connect()
    setup = conn.channel()
    work, dead = limited_pair(setup, uid, 2)
    setup.basic_publish("", work, b"job")
    # 1st delivery: basic.reject with requeue.
    channel = conn.channel()
    method, _, _ = receive(channel, work, 1)[0]
    channel.basic_reject(method.delivery_tag, requeue=True)
    # 2nd: the consuming channel closes with the message unacknowledged.
    channel = conn.channel()
    method, props, _ = receive(channel, work, 1)[0]
    assert method.redelivered and props.headers["x-delivery-count"] == 1
    channel.close()
    # 3rd: basic.get, then nack: the limit (2 redeliveries) is spent.
    channel = conn.channel()
    method, props, _ = channel.basic_get(work)
    assert method is not None and method.redelivered
    assert props.headers["x-delivery-count"] == 2
    channel.basic_nack(method.delivery_tag, requeue=True)
    _, props, body = receive(channel, dead, 1, auto_ack=True)[0]
    assert body == b"job" and props.headers["x-death"][0]["reason"] == "delivery_limit"
    assert channel.basic_get(work) == (None, None, None)


def test_without_dead_letter_exchange_the_message_is_dropped(connect: Connect,
                                                             uid: str) -> None:
    channel = connect().channel()
    work = channel.queue_declare(f"{uid}.work", exclusive=True,
                                 arguments={"x-delivery-limit": 1}).method.queue
    channel.basic_publish("", work, b"gone")
    channel.basic_publish("", work, b"kept")
    for _ in range(2):
        method, _, body = channel.basic_get(work)
        assert body == b"gone"
        channel.basic_nack(method.delivery_tag, requeue=True)
    # "gone" was dropped at its second return: "kept" is next, and last.
    method, _, body = channel.basic_get(work)
    assert body == b"kept" and not method.redelivered
    assert method.message_count == 0


def test_no_limit_means_unlimited_redelivery(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    work = channel.queue_declare(f"{uid}.work", exclusive=True).method.queue
    channel.basic_publish("", work, b"again")
    for expected in range(50):
        method, props, _ = channel.basic_get(work)
        assert (props.headers or {}).get("x-delivery-count") == (expected or None)
        channel.basic_nack(method.delivery_tag, requeue=True)


@pytest.mark.parametrize("value", [-1, "3", Decimal("1.5"), True])
def test_invalid_delivery_limit_is_406(connect: Connect, uid: str, value: object) -> None:
    channel = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(f"{uid}.bad", arguments={"x-delivery-limit": value})
    assert info.value.reply_code == 406
    assert info.value.reply_text.startswith(
        f"PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '{uid}.bad' in "
        "vhost '/': "
    )


def test_redeclare_with_another_delivery_limit_is_inequivalent(connect: Connect,
                                                              uid: str) -> None:
    conn = connect()
    channel = conn.channel()
    channel.queue_declare(f"{uid}.q", arguments={"x-delivery-limit": 3})
    channel.queue_declare(f"{uid}.q", arguments={"x-delivery-limit": 3})  # equivalent
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(f"{uid}.q", arguments={"x-delivery-limit": 4})
    assert info.value.reply_code == 406
    assert info.value.reply_text == (
        f"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue '{uid}.q' in "
        "vhost '/': received '4' but current is '3'"
    )
    conn.channel().queue_delete(f"{uid}.q")


def _connect(broker: Any) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=broker.host, port=amqp_port_of(broker), socket_timeout=WAIT,
            stack_timeout=WAIT, blocked_connection_timeout=WAIT,
        )
    )


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_redelivery_count_and_limit_survive_restart(make_broker: Any, uid: str,
                                                    crash: bool) -> None:
    b = make_broker()
    conn = _connect(b)
    ch = conn.channel()
    ch.confirm_delivery()
    work, dead = limited_pair(ch, uid, 2, durable=True)
    ch.queue_declare(f"{uid}.marker", durable=True)
    ch.basic_publish("", work, b"poison", PERSISTENT)
    for _ in range(2):  # two returns: one delivery left
        method, _, _ = ch.basic_get(work)
        ch.basic_nack(method.delivery_tag, requeue=True)
    # A confirmed persistent publish is committed after every earlier change (the
    # counts above), so even a kill -9 from here on keeps them.
    ch.basic_publish("", f"{uid}.marker", b"commit", PERSISTENT)
    conn.close()

    b2 = make_broker.launcher.restart(b, crash=crash)
    conn = _connect(b2)
    try:
        ch = conn.channel()
        arguments = {"x-dead-letter-exchange": f"{uid}.dlx", "x-delivery-limit": 2}
        ch.queue_declare(work, durable=True, arguments=arguments)  # still equivalent
        method, props, body = ch.basic_get(work)
        assert body == b"poison" and method.redelivered
        assert props.headers["x-delivery-count"] == 2
        ch.basic_nack(method.delivery_tag, requeue=True)  # the third return: the limit
        _, props, body = receive(ch, dead, 1, auto_ack=True)[0]
        assert body == b"poison"
        assert props.headers["x-death"][0]["reason"] == "delivery_limit"
        assert ch.basic_get(work) == (None, None, None)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            ch.queue_declare(work, durable=True, arguments={**arguments,
                                                            "x-delivery-limit": 5})
        assert "inequivalent arg 'x-delivery-limit'" in info.value.reply_text
    finally:
        if conn.is_open:
            conn.close()
