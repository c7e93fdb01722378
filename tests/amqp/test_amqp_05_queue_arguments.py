"""Queue arguments: TTL, expiration, max-length/overflow, dead-lettering, priorities."""

from __future__ import annotations

from collections.abc import Callable

import pika
import pika.exceptions
import pytest
from amqp_support import receive

Connect = Callable[..., pika.BlockingConnection]


def dead_letter_pair(channel: pika.adapters.blocking_connection.BlockingChannel, uid: str,
                     **arguments: object) -> tuple[str, str]:
    """A work queue whose dead letters go through a fanout exchange to a second queue."""
    channel.exchange_declare(f"{uid}.dlx", "fanout", auto_delete=True)
    dead = channel.queue_declare(f"{uid}.dead", exclusive=True).method.queue
    channel.queue_bind(dead, f"{uid}.dlx")
    work = channel.queue_declare(
        f"{uid}.work", exclusive=True,
        arguments={"x-dead-letter-exchange": f"{uid}.dlx", **arguments},
    ).method.queue
    return work, dead


def test_message_ttl_dead_letters_with_x_death(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    work, dead = dead_letter_pair(channel, uid, **{"x-message-ttl": 20})
    channel.basic_publish("", work, b"late", pika.BasicProperties(headers={"k": "v"}))
    _, props, body = receive(channel, dead, 1, auto_ack=True)[0]
    assert body == b"late"
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired"
    assert death["queue"] == work
    assert death["count"] == 1
    assert death["exchange"] == ""
    assert death["routing-keys"] == [work]
    assert props.headers["x-first-death-reason"] == "expired"
    assert props.headers["k"] == "v"


def test_per_message_expiration(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    work, dead = dead_letter_pair(channel, uid)
    channel.basic_publish("", work, b"short", pika.BasicProperties(expiration="10"))
    channel.basic_publish("", work, b"long", pika.BasicProperties(expiration="600000"))
    _, props, body = receive(channel, dead, 1, auto_ack=True)[0]
    assert body == b"short"
    assert props.expiration is None
    assert props.headers["original-expiration"] == "10"
    assert channel.queue_declare(work, passive=True).method.message_count == 1


def test_invalid_expiration_is_406(connect: Connect) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish("amq.direct", "k", b"x", pika.BasicProperties(expiration="soon"))
    assert info.value.reply_code == 406
    assert "expiration" in info.value.reply_text


def test_reject_without_requeue_dead_letters(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    work, dead = dead_letter_pair(channel, uid, **{"x-dead-letter-routing-key": "moved"})
    channel.basic_publish("", work, b"bad")
    method, _, _ = receive(channel, work, 1)[0]
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = receive(channel, dead, 1, auto_ack=True)[0]
    assert body == b"bad"
    assert method.routing_key == "moved"
    assert props.headers["x-death"][0]["reason"] == "rejected"


def test_max_length_drop_head_dead_letters_oldest(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    work, dead = dead_letter_pair(channel, uid, **{"x-max-length": 2})
    for i in range(4):
        channel.basic_publish("", work, b"%d" % i)
    assert [b for *_, b in receive(channel, dead, 2, auto_ack=True)] == [b"0", b"1"]
    assert [b for *_, b in receive(channel, work, 2, auto_ack=True)] == [b"2", b"3"]


def test_max_length_bytes(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    queue = channel.queue_declare(f"{uid}.q", exclusive=True,
                                  arguments={"x-max-length-bytes": 10}).method.queue
    for body in (b"12345", b"67890", b"abc"):
        channel.basic_publish("", queue, body)
    assert [b for *_, b in receive(channel, queue, 2, auto_ack=True)] == [b"67890", b"abc"]


def test_reject_publish_dlx(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    work, dead = dead_letter_pair(
        channel, uid, **{"x-max-length": 1, "x-overflow": "reject-publish-dlx"}
    )
    channel.basic_publish("", work, b"in")
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", work, b"out")
    assert [b for *_, b in receive(channel, dead, 1, auto_ack=True)] == [b"out"]


def test_priorities(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    queue = channel.queue_declare(f"{uid}.p", exclusive=True,
                                  arguments={"x-max-priority": 5}).method.queue
    for body, priority in ((b"low", 1), (b"none", None), (b"high", 9), (b"mid", 3)):
        channel.basic_publish("", queue, body, pika.BasicProperties(priority=priority))
    got = [b for *_, b in receive(channel, queue, 4, auto_ack=True)]
    assert got == [b"high", b"mid", b"low", b"none"]


def test_bad_arguments_are_406(connect: Connect, uid: str) -> None:
    for arguments in ({"x-message-ttl": "soon"}, {"x-overflow": "explode"},
                      {"x-max-priority": 1000}, {"x-dead-letter-routing-key": "k"}):
        channel = connect().channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            channel.queue_declare(f"{uid}.bad", arguments=arguments)
        assert info.value.reply_code == 406
        assert f"for queue '{uid}.bad'" in info.value.reply_text


def test_auto_delete_queue_goes_with_its_last_consumer(connect: Connect, uid: str) -> None:
    conn = connect()
    channel = conn.channel()
    channel.queue_declare(f"{uid}.auto", auto_delete=True)
    tag = channel.basic_consume(f"{uid}.auto", lambda *a: None)
    channel.basic_cancel(tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare(f"{uid}.auto", passive=True)
    assert info.value.reply_code == 404
