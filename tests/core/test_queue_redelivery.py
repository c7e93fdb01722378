"""Queues, protocol-free: the redelivery count and ``max_redelivery``.

Every requeue counts; past the limit a message is dead-lettered (reason
``delivery_limit``) to the dead-letter exchange hook or the dead-letter queue, or
dropped and counted; durable queues journal the count and recovery restores it.
"""

from __future__ import annotations

import asyncio

from warren.core.message import Message
from warren.core.persistence import MessageCache
from warren.core.queues import Consumer, Queue, QueueEntry, QueueLimits
from warren.core.stats import BrokerStats
from warren.core.vpn import Vpn
from warren.store import MemoryImage, MemoryStore
from warren.store.journal import Journal
from warren.store.records import QueueRecord, Redeliver, StoredEntry


class Sink:
    def __init__(self) -> None:
        self.entries: list[QueueEntry] = []
        self.settled = 0  # entries settled by nack_until_gone

    def ready(self, consumer: Consumer) -> bool:
        return True

    def send(self, consumer: Consumer, entry: QueueEntry) -> None:
        self.entries.append(entry)

    def cancelled(self, consumer: Consumer) -> None:
        pass


def make_vpn() -> Vpn:
    return Vpn("test", BrokerStats())


def consume(queue: Queue) -> tuple[Sink, Consumer]:
    sink = Sink()
    consumer = Consumer("c", sink, prefetch=1)
    queue.add_consumer(consumer)
    return sink, consumer


def nack_until_gone(queue: Queue, sink: Sink, consumer: Consumer) -> list[int]:
    """Requeue every delivery until none comes; the redelivery counts seen."""
    seen: list[int] = []
    while len(sink.entries) > sink.settled:
        entry = sink.entries[sink.settled]
        sink.settled += 1
        seen.append(entry.redeliveries)
        queue.reject(entry, consumer, requeue=True)
    return seen


def test_every_requeue_counts_and_sets_the_redelivered_flag() -> None:
    queue = make_vpn().queues.declare("q")
    queue.publish(Message("t", b"x"))
    sink, consumer = consume(queue)
    first = sink.entries[0]
    assert first.redeliveries == 0 and not first.redelivered
    for expected in (1, 2, 3):
        queue.reject(sink.entries[-1], consumer, requeue=True)
        assert sink.entries[-1] is first
        assert first.redeliveries == expected and first.redelivered
    assert queue.dead_lettered == queue.dropped == queue.redelivery_exceeded == 0


def test_unlimited_by_default() -> None:
    queue = make_vpn().queues.declare("q")
    assert queue.limits.max_redelivery is None
    queue.publish(Message("t", b"x"))
    sink, consumer = consume(queue)
    for _ in range(1000):
        queue.reject(sink.entries[-1], consumer, requeue=True)
    assert len(sink.entries) == 1001 and sink.entries[-1].redeliveries == 1000


def test_max_redelivery_dead_letters_after_n_plus_one_deliveries() -> None:
    vpn = make_vpn()
    dead: list[tuple[bytes, str, int]] = []

    def hook(queue: Queue, entry: QueueEntry, reason: str) -> bool:
        dead.append((entry.message.payload, reason, entry.redeliveries))
        return True

    vpn.queues.dead_letter = hook
    queue = vpn.queues.declare(
        "q", limits=QueueLimits(max_redelivery=3, dead_letter_exchange="dlx")
    )
    queue.publish(Message("t", b"poison"))
    queue.publish(Message("t", b"next"))
    sink, consumer = consume(queue)
    seen = nack_until_gone(queue, sink, consumer)
    # 4 deliveries of "poison" (3 redeliveries), then "next", then its own 4.
    assert [e.message.payload for e in sink.entries[:5]] == [b"poison"] * 4 + [b"next"]
    assert seen == [0, 1, 2, 3, 0, 1, 2, 3]
    assert dead == [(b"poison", "delivery_limit", 3), (b"next", "delivery_limit", 3)]
    assert queue.redelivery_exceeded == 2 and queue.dead_lettered == 2 and queue.dropped == 0
    assert queue.ready_count == queue.unacked_count == 0


def _dead_lettering_queue(max_redelivery: int) -> tuple[Queue, list[str]]:
    """A queue with ``max_redelivery`` whose dead-letter hook records the reasons."""
    vpn = make_vpn()
    reasons: list[str] = []

    def hook(queue: Queue, entry: QueueEntry, reason: str) -> bool:
        reasons.append(reason)
        return True

    vpn.queues.dead_letter = hook
    queue = vpn.queues.declare(
        "q", limits=QueueLimits(max_redelivery=max_redelivery, dead_letter_exchange="dlx")
    )
    return queue, reasons


def test_max_redelivery_zero_never_redelivers() -> None:
    queue, reasons = _dead_lettering_queue(0)
    queue.publish(Message("t", b"once"))
    sink, consumer = consume(queue)
    assert nack_until_gone(queue, sink, consumer) == [0]
    assert reasons == ["delivery_limit"]


def test_rejected_without_requeue_is_not_a_delivery_limit() -> None:
    queue, reasons = _dead_lettering_queue(5)
    queue.publish(Message("t", b"x"))
    sink, consumer = consume(queue)
    queue.reject(sink.entries[0], consumer, requeue=False)
    assert reasons == ["rejected"] and queue.redelivery_exceeded == 0


def test_without_a_target_the_message_is_dropped_and_counted() -> None:
    vpn = make_vpn()
    queue = vpn.queues.declare("q", limits=QueueLimits(max_redelivery=1))
    queue.publish(Message("t", b"x"))
    sink, consumer = consume(queue)
    assert nack_until_gone(queue, sink, consumer) == [0, 1]
    assert queue.dropped == 1 and queue.redelivery_exceeded == 1 and queue.dead_lettered == 0
    assert vpn.stats.dropped == 1


def test_a_missing_dead_letter_exchange_drops() -> None:
    vpn = make_vpn()
    vpn.queues.dead_letter = lambda queue, entry, reason: False  # no such exchange
    queue = vpn.queues.declare(
        "q", limits=QueueLimits(max_redelivery=0, dead_letter_exchange="gone")
    )
    queue.publish(Message("t", b"x"))
    sink, consumer = consume(queue)
    nack_until_gone(queue, sink, consumer)
    assert queue.dropped == 1 and queue.dead_lettered == 0


def test_dead_letter_queue_takes_the_message_as_it_is() -> None:
    vpn = make_vpn()
    dmq = vpn.queues.declare("#DEAD_MSG_QUEUE")
    queue = vpn.queues.declare(
        "q", limits=QueueLimits(max_redelivery=2, dead_letter_queue="#DEAD_MSG_QUEUE")
    )
    message = Message("orders/1", b"poison", 1, user_properties=(("k", "v"),))
    queue.publish(message)
    sink, consumer = consume(queue)
    assert nack_until_gone(queue, sink, consumer) == [0, 1, 2]
    assert [e.message for e in dmq.iter_ready()] == [message]
    assert next(dmq.iter_ready()).redeliveries == 0  # a new entry there
    assert queue.dead_lettered == 1 and queue.dropped == 0


def test_a_missing_or_full_dead_letter_queue_drops() -> None:
    from warren.core.queues import Overflow

    vpn = make_vpn()
    queue = vpn.queues.declare(
        "q", limits=QueueLimits(max_redelivery=0, dead_letter_queue="dmq")
    )
    queue.publish(Message("t", b"1"))
    sink, consumer = consume(queue)
    nack_until_gone(queue, sink, consumer)
    assert queue.dropped == 1  # no queue "dmq" yet
    vpn.queues.declare("dmq", limits=QueueLimits(max_length=0,
                                                 overflow=Overflow.REJECT_PUBLISH))
    queue.publish(Message("t", b"2"))
    nack_until_gone(queue, sink, consumer)
    assert queue.dropped == 2 and queue.dead_lettered == 0  # refused by the full one


def test_the_count_is_journalled_and_recovered() -> None:
    image = MemoryImage()

    async def before_restart() -> None:
        store = MemoryStore(image)
        vpn = make_vpn()
        vpn.attach_journal(Journal(store, asyncio.get_running_loop()))
        queue = vpn.queues.declare("q", durable=True, limits=QueueLimits(max_redelivery=3))
        queue.publish(Message("t", b"kept", 1))  # persistent: stored
        queue.publish(Message("t", b"transient", 0))  # never stored
        sink, consumer = consume(queue)
        queue.reject(sink.entries[-1], consumer, requeue=True)
        queue.reject(sink.entries[-1], consumer, requeue=True)
        assert [m for m in vpn.journal.pending if isinstance(m, Redeliver)] == [  # type: ignore[union-attr]
            Redeliver(queue.store_id, sink.entries[0].store_id, 1),
            Redeliver(queue.store_id, sink.entries[0].store_id, 2),
        ]
        vpn.journal.flush()  # type: ignore[union-attr]
        store.close()

    asyncio.run(before_restart())
    records = list(MemoryStore(image).recover())
    [record] = [r for r in records if isinstance(r, QueueRecord)]
    assert record.max_redelivery == 3
    entries = [r for r in records if isinstance(r, StoredEntry)]
    assert [e.redeliveries for e in entries] == [2]

    async def after_restart() -> None:
        store = MemoryStore(image)
        vpn = make_vpn()
        vpn.attach_journal(Journal(store, asyncio.get_running_loop()))
        queue = vpn.queues.declare(
            record.name, durable=True, store_id=record.id,
            limits=QueueLimits(max_redelivery=record.max_redelivery),
        )
        queue.restore_many(entries, MessageCache())
        [restored] = list(queue.iter_ready())
        assert restored.redeliveries == 2 and restored.redelivered
        other = vpn.queues.declare("other")
        other.restore(entries[0], MessageCache())  # the one-entry path keeps the count
        assert next(other.iter_ready()).redeliveries == 2
        sink, consumer = consume(queue)
        assert nack_until_gone(queue, sink, consumer) == [2, 3]  # two deliveries left
        assert queue.dropped == 1  # no dead-letter target
        assert [type(m).__name__ for m in vpn.journal.pending] == ["Redeliver", "Dequeue"]  # type: ignore[union-attr]
        store.close()

    asyncio.run(after_restart())
