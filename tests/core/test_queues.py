"""Queues, protocol-free: ordering, consumers and prefetch, limits, expiry, routing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from warren.core.message import Message
from warren.core.queues import Consumer, Overflow, Queue, QueueEntry, QueueLimits
from warren.core.sessions import Session, Subscription
from warren.core.stats import BrokerStats
from warren.core.topics import parse_amqp_binding_key, parse_mqtt_filter
from warren.core.vpn import Vpn


@dataclass
class Sink:
    """A consumer's connection stand-in: records deliveries and cancellations."""

    open: bool = True
    got: list[bytes] = field(default_factory=list)
    entries: list[QueueEntry] = field(default_factory=list)
    cancelled_tags: list[str] = field(default_factory=list)

    def ready(self, consumer: Consumer) -> bool:
        return self.open

    def send(self, consumer: Consumer, entry: QueueEntry) -> None:
        self.got.append(entry.message.payload)
        self.entries.append(entry)

    def cancelled(self, consumer: Consumer) -> None:
        self.cancelled_tags.append(consumer.tag)


def make_vpn() -> Vpn:
    return Vpn("test", BrokerStats())


def dead_letters(vpn: Vpn) -> list[tuple[bytes, str]]:
    out: list[tuple[bytes, str]] = []
    vpn.queues.dead_letter = lambda queue, entry, reason: out.append(
        (entry.message.payload, reason)
    )
    return out


def test_fifo_and_round_robin_with_prefetch() -> None:
    vpn = make_vpn()
    queue = vpn.queues.declare("q")
    for i in range(6):
        queue.publish(Message("t", b"%d" % i))
    a, b = Sink(), Sink()
    ca, cb = Consumer("a", a, prefetch=2), Consumer("b", b, prefetch=2)
    queue.add_consumer(ca)
    queue.add_consumer(cb)
    assert a.got == [b"0", b"1"] and b.got == [b"2", b"3"]
    assert queue.ready_count == 2 and queue.unacked_count == 4
    queue.ack(a.entries[0], ca)
    assert a.got[-1] == b"4"
    queue.reject(b.entries[0], cb, requeue=True)  # "2" comes back first, redelivered
    assert b.got[-1] == b"2" and b.entries[-1].redelivered


def test_requeue_restores_publish_order() -> None:
    vpn = make_vpn()
    queue = vpn.queues.declare("q")
    for i in range(3):
        queue.publish(Message("t", b"%d" % i))
    entries = [queue.get() for _ in range(3)]
    for entry in entries:
        assert entry is not None
        queue.took(entry, None)
    for entry in (entries[2], entries[0], entries[1]):
        assert entry is not None
        queue.reject(entry, None, requeue=True)
    assert [e.message.payload for e in queue.iter_ready()] == [b"0", b"1", b"2"]


def test_router_delivers_to_bound_queue_once() -> None:
    vpn = make_vpn()
    queue = vpn.queues.declare("q")
    vpn.router.add(Subscription(queue, "a.*", parse_amqp_binding_key("a.*"), qos=1))
    vpn.router.add(Subscription(queue, "a.#", parse_amqp_binding_key("a.#"), qos=1))
    session = Session("mqtt", vpn)
    vpn.router.add(Subscription(session, "a/+", parse_mqtt_filter("a/+"), qos=1))
    assert vpn.router.publish(Message("a/b", b"x", qos=1)) == 2
    assert queue.ready_count == 1
    vpn.queues.delete(queue)
    assert vpn.router.publish(Message("a/b", b"y", qos=1)) == 1  # the queue unsubscribed


def test_overflow_policies() -> None:
    vpn = make_vpn()
    dead = dead_letters(vpn)
    limits = QueueLimits(max_length=2, dead_letter_exchange="dlx")
    drop = vpn.queues.declare("drop", limits=limits)
    for i in range(3):
        assert drop.publish(Message("t", b"%d" % i))
    assert [e.message.payload for e in drop.iter_ready()] == [b"1", b"2"]
    assert dead == [(b"0", "maxlen")]
    reject = vpn.queues.declare(
        "reject", limits=QueueLimits(max_length=1, overflow=Overflow.REJECT_PUBLISH)
    )
    assert reject.publish(Message("t", b"a"))
    assert not reject.publish(Message("t", b"b"))
    vpn.router.add(Subscription(reject, "t", ("t",)))
    vpn.router.publish(Message("t", b"c"))
    assert vpn.queues.rejections == 1


def test_ttl_expiry_and_queue_expiry_with_explicit_time() -> None:
    vpn = make_vpn()
    dead = dead_letters(vpn)
    wakeups: list[float] = []
    vpn.queues.timer = lambda deadline, callback: wakeups.append(deadline)
    queue = vpn.queues.declare(
        "q", limits=QueueLimits(message_ttl=5.0, expires=60.0, dead_letter_exchange="dlx")
    )
    queue.publish(Message("t", b"old"))
    assert wakeups, "a wake-up is booked for the expiry"
    now = time.monotonic()
    queue.expire(now + 1)
    assert queue.ready_count == 1
    queue.expire(now + 6)
    assert queue.ready_count == 0 and dead == [(b"old", "expired")]
    queue.expire(queue.last_used + 61)
    assert queue.deleted and vpn.queues.get("q") is None


def test_priorities_and_get() -> None:
    vpn = make_vpn()
    queue: Queue = vpn.queues.declare("q", limits=QueueLimits(max_priority=3))
    for body, priority in ((b"a", 0), (b"b", 7), (b"c", 2)):
        queue.publish(Message("t", body, priority=priority))
    got = []
    while (entry := queue.get()) is not None:
        got.append(entry.message.payload)
    assert got == [b"b", b"c", b"a"]


def test_delete_cancels_consumers_and_auto_delete() -> None:
    vpn = make_vpn()
    sink = Sink()
    queue = vpn.queues.declare("q")
    queue.add_consumer(Consumer("c", sink))
    assert vpn.queues.delete(queue) == 0
    assert sink.cancelled_tags == ["c"]
    auto = vpn.queues.declare("auto", auto_delete=True)
    consumer = Consumer("c", sink)
    auto.add_consumer(consumer)
    auto.remove_consumer(consumer)
    assert auto.deleted
