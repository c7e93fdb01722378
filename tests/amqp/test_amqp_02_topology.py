"""Exchanges, queues and bindings: declare rules, routing by type, delete rules."""

from __future__ import annotations

from collections.abc import Callable

import pika
import pika.exceptions
import pytest
from amqp_support import receive

Connect = Callable[..., pika.BlockingConnection]


def channel_error(connect: Connect, action: Callable[[pika.adapters.blocking_connection.BlockingChannel], object]) -> pika.exceptions.ChannelClosedByBroker:  # noqa: E501
    channel = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        action(channel)
    return info.value


def test_exchange_declare_passive_and_inequivalent(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.exchange_declare(f"{uid}.x", "direct")
    channel.exchange_declare(f"{uid}.x", "direct")  # same again: fine
    channel.exchange_declare(f"{uid}.x", passive=True)
    error = channel_error(connect, lambda c: c.exchange_declare(f"{uid}.x", "fanout"))
    assert error.reply_code == 406
    assert "inequivalent arg 'type'" in error.reply_text
    error = channel_error(connect, lambda c: c.exchange_declare(f"{uid}.nope", passive=True))
    assert error.reply_code == 404
    assert error.reply_text == f"NOT_FOUND - no exchange '{uid}.nope' in vhost '/'"


def test_reserved_names(connect: Connect) -> None:
    error = channel_error(connect, lambda c: c.exchange_declare("amq.mine", "direct"))
    assert error.reply_code == 403
    error = channel_error(connect, lambda c: c.queue_declare("amq.mine"))
    assert error.reply_code == 403
    assert "reserved prefix 'amq.*'" in error.reply_text
    error = channel_error(connect, lambda c: c.exchange_delete("amq.topic"))
    assert error.reply_code == 403


def test_predeclared_exchanges(connect: Connect) -> None:
    channel = connect().channel()
    for name, kind in (
        ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
        ("amq.headers", "headers"), ("amq.match", "headers"),
    ):
        channel.exchange_declare(name, kind, passive=True)
        channel.exchange_declare(name, kind, durable=True)


def test_unknown_exchange_type_is_503(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        channel.exchange_declare(f"{uid}.x", "x-unknown")
    assert info.value.reply_code == 503
    assert "x-unknown" in info.value.reply_text


def test_queue_declare_server_named_and_counts(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    ok = channel.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    channel.queue_declare(f"{uid}.q", auto_delete=True)
    for i in range(3):
        channel.basic_publish("", f"{uid}.q", b"%d" % i)
    ok = channel.queue_declare(f"{uid}.q", passive=True).method
    assert ok.message_count == 3
    assert ok.consumer_count == 0
    assert channel.queue_purge(f"{uid}.q").method.message_count == 3
    assert channel.queue_delete(f"{uid}.q").method.message_count == 0


def test_queue_inequivalent_and_exclusive(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.queue_declare(f"{uid}.q", arguments={"x-max-length": 5})
    error = channel_error(connect, lambda c: c.queue_declare(f"{uid}.q", durable=True))
    assert error.reply_code == 406
    assert "inequivalent arg 'durable'" in error.reply_text
    error = channel_error(
        connect, lambda c: c.queue_declare(f"{uid}.q", arguments={"x-max-length": 6})
    )
    assert error.reply_code == 406
    assert "x-max-length" in error.reply_text
    channel.queue_declare(f"{uid}.ex", exclusive=True)
    error = channel_error(connect, lambda c: c.queue_declare(f"{uid}.ex", passive=True))
    assert error.reply_code == 405
    assert "exclusive" in error.reply_text
    channel.queue_delete(f"{uid}.q")


def test_exclusive_queue_goes_with_its_connection(connect: Connect, uid: str) -> None:
    owner = connect()
    owner.channel().queue_declare(f"{uid}.ex", exclusive=True)
    owner.close()
    error = channel_error(connect, lambda c: c.queue_declare(f"{uid}.ex", passive=True))
    assert error.reply_code == 404


def test_queue_delete_if_unused_if_empty(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.queue_declare(f"{uid}.q")
    channel.basic_publish("", f"{uid}.q", b"x")
    error = channel_error(connect, lambda c: c.queue_delete(f"{uid}.q", if_empty=True))
    assert error.reply_code == 406
    assert "is not empty" in error.reply_text
    channel.basic_consume(f"{uid}.q", lambda *a: None)
    error = channel_error(connect, lambda c: c.queue_delete(f"{uid}.q", if_unused=True))
    assert error.reply_code == 406
    assert "in use" in error.reply_text
    assert channel.queue_delete(f"{uid}.q").method.message_count == 0  # it was delivered


def test_direct_fanout_topic_headers_routing(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    queues = {}
    for kind in ("direct", "fanout", "topic", "headers"):
        channel.exchange_declare(f"{uid}.{kind}", kind, auto_delete=True)
        queues[kind] = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queues["direct"], f"{uid}.direct", "red")
    channel.queue_bind(queues["fanout"], f"{uid}.fanout", "ignored")
    channel.queue_bind(queues["topic"], f"{uid}.topic", "*.orange.#")
    channel.queue_bind(queues["headers"], f"{uid}.headers", "",
                       arguments={"x-match": "any", "colour": "red", "size": "L"})
    for key in ("red", "blue"):
        channel.basic_publish(f"{uid}.direct", key, key.encode())
        channel.basic_publish(f"{uid}.fanout", key, key.encode())
    for key in ("quick.orange.rabbit", "lazy.orange", "orange", "quick.brown.fox"):
        channel.basic_publish(f"{uid}.topic", key, key.encode())
    for headers in ({"colour": "red"}, {"size": "S"}, {"size": "L", "x": 1}, {}):
        channel.basic_publish(f"{uid}.headers", "", repr(headers).encode(),
                              pika.BasicProperties(headers=headers))
    assert [b for *_, b in receive(channel, queues["direct"], 1)] == [b"red"]
    assert [b for *_, b in receive(channel, queues["fanout"], 2)] == [b"red", b"blue"]
    assert [b for *_, b in receive(channel, queues["topic"], 2)] == [
        b"quick.orange.rabbit", b"lazy.orange",
    ]
    assert [b for *_, b in receive(channel, queues["headers"], 2)] == [
        b"{'colour': 'red'}", b"{'size': 'L', 'x': 1}",
    ]
    for queue in queues.values():
        assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_exchange_to_exchange_binding(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.exchange_declare(f"{uid}.src", "topic")
    channel.exchange_declare(f"{uid}.dst", "fanout")
    channel.exchange_bind(f"{uid}.dst", f"{uid}.src", "a.#")
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, f"{uid}.dst")
    channel.basic_publish(f"{uid}.src", "a.b", b"through")
    channel.basic_publish(f"{uid}.src", "b.a", b"not this")
    assert [b for *_, b in receive(channel, queue, 1)] == [b"through"]
    channel.exchange_unbind(f"{uid}.dst", f"{uid}.src", "a.#")
    error = channel_error(connect, lambda c: c.exchange_delete(f"{uid}.dst", if_unused=True))
    assert error.reply_code == 406
    channel.exchange_delete(f"{uid}.src")
    channel.exchange_delete(f"{uid}.dst")
    error = channel_error(connect, lambda c: c.exchange_declare(f"{uid}.dst", passive=True))
    assert error.reply_code == 404


def test_unbind_stops_routing(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "amq.direct", uid)
    channel.queue_unbind(queue, "amq.direct", uid)
    channel.basic_publish("amq.direct", uid, b"lost")
    channel.queue_bind(queue, "amq.direct", uid)
    channel.basic_publish("amq.direct", uid, b"kept")
    assert [b for *_, b in receive(channel, queue, 1)] == [b"kept"]


def test_bind_to_missing_queue_or_exchange(connect: Connect, uid: str) -> None:
    error = channel_error(connect, lambda c: c.queue_bind(f"{uid}.none", "amq.direct", "k"))
    assert error.reply_code == 404
    assert "no queue" in error.reply_text

    def bind_missing_exchange(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, f"{uid}.none", "k")

    error = channel_error(connect, bind_missing_exchange)
    assert error.reply_code == 404
    assert "no exchange" in error.reply_text

    def bind_default(channel: pika.adapters.blocking_connection.BlockingChannel) -> None:
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, "", "k")

    error = channel_error(connect, bind_default)
    assert error.reply_code == 403
