"""AMQP 10 - Durability: durable exchanges, queues and bindings and the persistent
messages in durable queues survive a restart and a crash (kill -9); a publisher
confirm means the message is stored (DESIGN.md, "Storage"; issue 6)."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pika
import pika.exceptions
import pytest
from amqp_support import WAIT, amqp_port_of, receive

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def _connect(broker: Any) -> pika.BlockingConnection:
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            host=broker.host, port=amqp_port_of(broker), socket_timeout=WAIT,
            stack_timeout=WAIT, blocked_connection_timeout=WAIT,
        )
    )


def _ready(channel: Any, queue: str) -> int:
    return int(channel.queue_declare(queue, passive=True).method.message_count)


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_amqp_10_durable_topology_and_persistent_messages_survive_restart(
    make_broker, uid, crash
):
    b = make_broker()
    x, q, topic_q = f"{uid}.x", f"{uid}.q", f"{uid}.tq"
    conn = _connect(b)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare(x, "direct", durable=True)
    ch.queue_declare(q, durable=True)
    ch.queue_bind(q, x, "k")
    ch.queue_declare(topic_q, durable=True)
    ch.queue_bind(topic_q, "amq.topic", f"{uid}.t.#")
    ch.queue_declare(f"{uid}.transient-q", durable=False)
    for i in range(3):
        ch.basic_publish(x, "k", f"p{i}".encode(), PERSISTENT)  # confirmed: stored
    ch.basic_publish(x, "k", b"transient", TRANSIENT)  # confirmed, never stored
    ch.basic_publish("amq.topic", f"{uid}.t.a", b"via-topic", PERSISTENT)
    conn.close()

    b2 = make_broker.launcher.restart(b, crash=crash)  # type: ignore[attr-defined]
    conn = _connect(b2)
    try:
        ch = conn.channel()
        ch.exchange_declare(x, "direct", passive=True)  # the exchange is back
        assert _ready(ch, q) == 3
        assert [body for _, _, body in receive(ch, q, 3)] == [b"p0", b"p1", b"p2"]
        assert [body for _, _, body in receive(ch, topic_q, 1)] == [b"via-topic"]
        # The bindings are back: new publishes reach both queues.
        ch.confirm_delivery()
        ch.basic_publish(x, "k", b"after", PERSISTENT)
        ch.basic_publish("amq.topic", f"{uid}.t.b", b"after-topic", PERSISTENT)
        assert [body for _, _, body in receive(ch, q, 1)] == [b"after"]
        assert [body for _, _, body in receive(ch, topic_q, 1)] == [b"after-topic"]
        # A non-durable queue is gone.
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            ch.queue_declare(f"{uid}.transient-q", passive=True)
    finally:
        if conn.is_open:
            conn.close()


def test_amqp_10_kill_9_during_confirmed_publishing_loses_no_confirmed_message(
    make_broker, uid
):
    """Confirmed publishing (pika) into a durable queue; SIGKILL after 500 confirms.
    After the restart every confirmed message is consumed (duplicates counted).

    Before the kill the store's writer is frozen (SIGSTOP): nothing published after
    that can be committed, so nothing may be confirmed (a broker that confirmed
    before its commit fails here, and would lose those messages)."""
    b = make_broker()
    q = f"{uid}.crash"
    setup = _connect(b)
    setup.channel().queue_declare(q, durable=True)
    setup.close()
    confirmed: list[bytes] = []
    started: list[bytes] = []  # publishes begun, in order (confirms come in that order)
    progress = threading.Condition()
    enough = threading.Event()
    done = threading.Event()

    def publish() -> None:
        try:
            conn = _connect(b)
            ch = conn.channel()
            ch.confirm_delivery()
            for i in range(1_000_000):
                body = str(i).encode()
                started.append(body)
                ch.basic_publish("", q, body, PERSISTENT)  # returns once confirmed
                with progress:
                    confirmed.append(body)
                    progress.notify_all()
                if len(confirmed) >= 500:
                    enough.set()
        except Exception:  # the broker was killed: publishing stops here
            pass
        finally:
            enough.set()
            done.set()

    publisher = threading.Thread(target=publish, name="amqp-publisher", daemon=True)
    publisher.start()
    assert enough.wait(60), "no 500 confirms"
    try:
        os.kill(b.store_writer_pid(), signal.SIGSTOP)
        frozen = len(started)  # publishes from here on start after the writer stopped
        # The one bounded wait of this test: an absence (of confirms) is what it checks.
        with progress:
            progress.wait_for(lambda: len(confirmed) > frozen, timeout=1.0)
            early = len(confirmed) - frozen
        assert early <= 0, f"{early} confirms for messages the store could not keep"
    except BaseException:
        b.kill()  # its writer is frozen: no graceful stop
        raise
    b2 = make_broker.launcher.restart(b, crash=True)  # type: ignore[attr-defined]
    assert done.wait(60), "the publisher did not notice the crash"
    assert len(confirmed) >= 500
    conn = _connect(b2)
    try:
        ch = conn.channel()
        count = _ready(ch, q)
        assert count >= len(set(confirmed))
        bodies = [body for _, _, body in receive(ch, q, count, auto_ack=True)]
        lost = set(confirmed) - set(bodies)
        duplicates = len(bodies) - len(set(bodies))
        print(f"confirmed {len(confirmed)}, consumed {len(bodies)} "
              f"({duplicates} duplicates), lost {len(lost)}")
        assert not lost, f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:10]}"
    finally:
        conn.close()


def test_amqp_10_expired_ttl_across_restart(make_broker, uid):
    """A persistent message whose TTL ran out while the broker was down is not
    delivered after the restart; one without TTL is."""
    b = make_broker()
    q = f"{uid}.ttl"
    conn = _connect(b)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"short", pika.BasicProperties(delivery_mode=2, expiration="300"))
    ch.basic_publish("", q, b"long", PERSISTENT)
    published = time.monotonic()
    conn.close()
    b2 = make_broker.launcher.restart(b)  # type: ignore[attr-defined]
    # The TTL is the subject: wait for its deadline (if the restart was quicker).
    time.sleep(max(0.0, published + 0.35 - time.monotonic()))
    conn = _connect(b2)
    try:
        ch = conn.channel()
        assert [body for _, _, body in receive(ch, q, 1)] == [b"long"]
        assert _ready(ch, q) == 0
    finally:
        conn.close()


@pytest.mark.parametrize("overflow", ["reject-publish", "drop-head"])
def test_amqp_10_queue_at_max_depth_across_restart(make_broker, uid, overflow):
    b = make_broker()
    q = f"{uid}.full"
    args = {"x-max-length": 2, "x-overflow": overflow}
    conn = _connect(b)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True, arguments=args)
    ch.basic_publish("", q, b"1", PERSISTENT)
    ch.basic_publish("", q, b"2", PERSISTENT)
    if overflow == "reject-publish":
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", q, b"3", PERSISTENT)
    else:
        ch.basic_publish("", q, b"3", PERSISTENT)  # drops "1"
    conn.close()
    b2 = make_broker.launcher.restart(b)  # type: ignore[attr-defined]
    conn = _connect(b2)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True, arguments=args)  # same limits: equivalent
        expected = [b"1", b"2"] if overflow == "reject-publish" else [b"2", b"3"]
        assert _ready(ch, q) == 2
        if overflow == "reject-publish":
            # Still full after the restart: refused until a message leaves.
            with pytest.raises(pika.exceptions.NackError):
                ch.basic_publish("", q, b"4", PERSISTENT)
        else:
            ch.basic_publish("", q, b"4", PERSISTENT)  # drops the oldest again
            expected = [b"3", b"4"]
        assert [body for _, _, body in receive(ch, q, 2, auto_ack=True)] == expected
    finally:
        conn.close()


def test_amqp_10_full_store_nacks_instead_of_confirming(make_broker, uid):
    """The data file reaches its cap: persistent messages for a durable queue are
    nacked, never confirmed; transient ones are still confirmed."""
    b = make_broker("[server]\nstorage_max_bytes = 1048576\n")
    q = f"{uid}.capped"
    conn = _connect(b)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(q, durable=True)
        confirmed = 0
        with pytest.raises(pika.exceptions.NackError):
            for _ in range(40):  # 40 x 64 KiB: well past the 1 MiB cap
                ch.basic_publish("", q, bytes(65536), PERSISTENT)
                confirmed += 1
        assert 0 < confirmed < 40
        with pytest.raises(pika.exceptions.NackError):
            ch.basic_publish("", q, b"small", PERSISTENT)
        ch.basic_publish("", q, b"transient", TRANSIENT)  # needs no storage: confirmed
    finally:
        if conn.is_open:
            conn.close()


def test_amqp_10_priority_queue_requeue_and_purge_across_restart(make_broker, uid):
    """A recovered priority queue (its entries restored lazily, built as they reach
    the head) delivers by priority, then publish order; a rejected message goes
    back to the head, redelivered; a purge right after a restart (nothing built
    yet) is stored: the next restart finds the queue empty."""
    b = make_broker()
    q = f"{uid}.prio"
    args = {"x-max-priority": 5}
    conn = _connect(b)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, durable=True, arguments=args)
    for i, priority in enumerate([0, 3, 9, 3, 0, 5]):  # 9 counts as 5 (x-max-priority)
        props = pika.BasicProperties(delivery_mode=2, priority=priority)
        ch.basic_publish("", q, f"m{i}".encode(), props)
    conn.close()

    b2 = make_broker.launcher.restart(b)  # type: ignore[attr-defined]
    conn = _connect(b2)
    try:
        ch = conn.channel()
        assert _ready(ch, q) == 6
        method, _, body = ch.basic_get(q)
        assert body == b"m2" and not method.redelivered
        ch.basic_reject(method.delivery_tag, requeue=True)
        got = receive(ch, q, 6, auto_ack=True)
        assert [body for _, _, body in got] == [b"m2", b"m5", b"m1", b"m3", b"m0", b"m4"]
        assert [m.redelivered for m, _, _ in got] == [True] + [False] * 5
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish("", q, f"p{i}".encode(), PERSISTENT)
    finally:
        conn.close()

    b3 = make_broker.launcher.restart(b2)  # type: ignore[attr-defined]
    conn = _connect(b3)
    try:
        ch = conn.channel()
        assert ch.queue_purge(q).method.message_count == 3
    finally:
        conn.close()
    b4 = make_broker.launcher.restart(b3)  # type: ignore[attr-defined]
    conn = _connect(b4)
    try:
        assert _ready(conn.channel(), q) == 0
    finally:
        conn.close()
