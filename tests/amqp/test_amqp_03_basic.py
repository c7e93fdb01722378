"""basic.*, confirm.* and tx.*: publish, consume, get, acknowledgements, prefetch."""

from __future__ import annotations

from collections.abc import Callable

import pika
import pika.exceptions
import pytest
from amqp_support import WAIT, receive

Connect = Callable[..., pika.BlockingConnection]


def test_publish_consume_ack_in_order(connect: Connect) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for i in range(100):
        channel.basic_publish("", queue, b"m%d" % i)
    got = receive(channel, queue, 100)
    assert [b for *_, b in got] == [b"m%d" % i for i in range(100)]
    assert [m.delivery_tag for m, *_ in got] == list(range(1, 101))
    channel.basic_ack(100, multiple=True)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_properties_pass_through_unchanged(connect: Connect) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="gzip",
        headers={"a": 1, "b": "two", "nested": {"c": [1, 2]}}, delivery_mode=2, priority=3,
        correlation_id="corr", reply_to="replies", expiration="60000", message_id="id-1",
        timestamp=1700000000, type="kind", user_id="guest", app_id="tests",
    )
    channel.basic_publish("", queue, b"{}", props)
    _, got, body = receive(channel, queue, 1, auto_ack=True)[0]
    assert body == b"{}"
    for name in ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
                 "correlation_id", "reply_to", "expiration", "message_id", "timestamp", "type",
                 "user_id", "app_id"):
        assert getattr(got, name) == getattr(props, name), name


def test_unacked_messages_are_redelivered_to_the_next_consumer(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"one")
    channel.basic_publish("", queue, b"two")
    first = receive(channel, queue, 2)
    assert not any(m.redelivered for m, *_ in first)
    channel.basic_nack(first[0][0].delivery_tag, requeue=True)  # back, in front of "two"?
    channel.basic_recover(requeue=True)  # and everything else unacked
    again = receive(channel, queue, 2)
    assert [b for *_, b in again] == [b"one", b"two"]
    assert all(m.redelivered for m, *_ in again)
    channel.basic_reject(again[0][0].delivery_tag, requeue=False)  # dropped (no DLX)
    channel.basic_ack(again[1][0].delivery_tag)
    assert channel.queue_declare(queue, passive=True).method.message_count == 0


def test_closing_a_channel_requeues_its_unacked(connect: Connect) -> None:
    conn = connect()
    first = conn.channel()
    queue = first.queue_declare("", exclusive=True).method.queue
    first.basic_publish("", queue, b"x")
    receive(first, queue, 1)
    first.close()
    second = conn.channel()
    method, _, body = receive(second, queue, 1, auto_ack=True)[0]
    assert body == b"x" and method.redelivered


def test_unknown_delivery_tag_is_406(connect: Connect) -> None:
    channel = connect().channel()
    channel.basic_ack(42)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("", exclusive=True)  # any round trip shows the close
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 42"


def test_prefetch_limits_unacked_deliveries(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    for i in range(10):
        channel.basic_publish("", queue, b"%d" % i)
    channel.basic_qos(prefetch_count=3)
    got: list[bytes] = []
    tags: list[int] = []

    def on_message(ch: object, method: pika.spec.Basic.Deliver, props: object, body: bytes) -> None:
        got.append(body)
        tags.append(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    # Round trips until the window is full; more never arrive unacknowledged.
    conn.process_data_events(time_limit=0)
    for _ in range(5):
        channel.queue_declare(queue, passive=True)
        conn.process_data_events(time_limit=0)
    assert len(got) == 3
    assert channel.queue_declare(queue, passive=True).method.message_count == 7
    channel.basic_ack(tags[-1], multiple=True)
    channel.queue_declare(queue, passive=True)
    conn.process_data_events(time_limit=0)
    assert len(got) == 6


def test_global_prefetch_is_shared_by_the_channel(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    q1 = channel.queue_declare("", exclusive=True).method.queue
    q2 = channel.queue_declare("", exclusive=True).method.queue
    for i in range(5):
        channel.basic_publish("", q1, b"a%d" % i)
        channel.basic_publish("", q2, b"b%d" % i)
    channel.basic_qos(prefetch_count=4, global_qos=True)
    got: list[bytes] = []
    channel.basic_consume(q1, lambda ch, m, p, b: got.append(b))
    channel.basic_consume(q2, lambda ch, m, p, b: got.append(b))
    for _ in range(5):
        channel.queue_declare(q1, passive=True)
        conn.process_data_events(time_limit=0)
    assert len(got) == 4


def test_get_and_get_empty(connect: Connect) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    assert channel.basic_get(queue) == (None, None, None)
    channel.basic_publish("", queue, b"a")
    channel.basic_publish("", queue, b"b")
    method, _, body = channel.basic_get(queue)
    assert body == b"a" and method.message_count == 1 and method.exchange == ""
    assert method.routing_key == queue
    channel.basic_nack(method.delivery_tag, requeue=True)
    method, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"a" and method.redelivered


def test_mandatory_unroutable_is_returned(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError) as info:
        channel.basic_publish("amq.direct", f"{uid}.nobody", b"x", mandatory=True)
    returned = info.value.messages[0]
    assert returned.method.reply_code == 312
    assert returned.method.reply_text == "NO_ROUTE"
    assert returned.body == b"x"


def test_publish_to_missing_exchange_is_404(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_publish(f"{uid}.nope", "k", b"x")
    assert info.value.reply_code == 404
    assert info.value.reply_text == f"NOT_FOUND - no exchange '{uid}.nope' in vhost '/'"


def test_publisher_confirms_ack_and_nack(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    channel.confirm_delivery()
    channel.queue_declare(f"{uid}.full", exclusive=True,
                          arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    channel.basic_publish("", f"{uid}.full", b"fits")  # acked
    with pytest.raises(pika.exceptions.NackError):
        channel.basic_publish("", f"{uid}.full", b"refused")
    assert channel.queue_declare(f"{uid}.full", passive=True).method.message_count == 1


def test_confirms_for_many_publishes(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    acked: list[tuple[int, bool]] = []
    channel._impl.add_on_return_callback(lambda *a: None)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel._impl.confirm_delivery(lambda frame: acked.append(
        (frame.method.delivery_tag, frame.method.multiple)))
    conn.process_data_events(time_limit=0)
    for i in range(50):
        channel.basic_publish("", queue, b"%d" % i)
    channel.queue_declare(queue, passive=True)
    deadline_checks = 0
    while (not acked or acked[-1][0] < 50) and deadline_checks < 100:
        conn.process_data_events(time_limit=WAIT / 100)
        deadline_checks += 1
    assert acked and acked[-1][0] == 50
    assert all(multiple or tag for tag, multiple in acked)


def test_tx_commit_and_rollback(connect: Connect) -> None:
    channel = connect().channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.tx_select()
    channel.basic_publish("", queue, b"rolled back")
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    channel.tx_rollback()
    channel.basic_publish("", queue, b"committed")
    channel.tx_commit()
    method, _, body = channel.basic_get(queue)
    assert body == b"committed"
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()  # the ack is undone: the message stays unacked
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    assert channel.queue_declare(queue, passive=True).method.message_count == 0
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.confirm_delivery()
    assert info.value.reply_code == 406


def test_queue_delete_cancels_consumers(connect: Connect, uid: str) -> None:
    conn = connect()
    channel = conn.channel()
    channel.queue_declare(f"{uid}.q")
    cancelled: list[object] = []
    channel.basic_consume(f"{uid}.q", lambda *a: None, consumer_tag="c1")
    channel._impl.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
    other = connect().channel()
    other.queue_delete(f"{uid}.q")
    for _ in range(20):
        if cancelled:
            break
        conn.process_data_events(time_limit=WAIT / 20)
    assert cancelled and cancelled[0].consumer_tag == "c1"


def test_consume_from_missing_queue_is_404(connect: Connect, uid: str) -> None:
    channel = connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.basic_consume(f"{uid}.none", lambda *a: None)
    assert info.value.reply_code == 404


def test_exclusive_consumer(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_consume(queue, lambda *a: None, exclusive=True)
    other = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        other.basic_consume(queue, lambda *a: None)
    assert info.value.reply_code == 403
    assert "exclusive use" in info.value.reply_text


def test_round_robin_between_consumers(connect: Connect) -> None:
    conn = connect()
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    seen: dict[str, list[bytes]] = {"a": [], "b": []}
    channel.basic_consume(queue, lambda ch, m, p, b: seen["a"].append(b), auto_ack=True,
                          consumer_tag="a")
    channel.basic_consume(queue, lambda ch, m, p, b: seen["b"].append(b), auto_ack=True,
                          consumer_tag="b")
    for i in range(10):
        channel.basic_publish("", queue, b"%d" % i)
    for _ in range(50):
        if len(seen["a"]) + len(seen["b"]) == 10:
            break
        conn.process_data_events(time_limit=WAIT / 50)
    assert len(seen["a"]) == 5 and len(seen["b"]) == 5
