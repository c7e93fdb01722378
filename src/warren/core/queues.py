"""Queues: the one guaranteed-delivery concept (DESIGN.md, "Delivery modes").

A :class:`Queue` is a named, ordered store of messages with:

- topic subscriptions: it is a subscriber of its VPN's router (it has the
  ``deliver`` signature of :class:`~warren.core.sessions.Session`, so a router
  :class:`~warren.core.sessions.Subscription` may point at it), and protocols with
  their own routing (AMQP exchanges) hand it messages with :meth:`Queue.publish`;
- consumers with a prefetch window, served round robin; a message given to a
  consumer that must acknowledge it stays "unacked" until :meth:`Queue.ack`, or goes
  back to the head with :meth:`Queue.reject` (requeue) or is dead-lettered;
- limits: a message TTL, a per-message expiry, a maximum length in messages and in
  bytes with an overflow policy, priorities, and an idle expiry of the queue itself;
- redelivery counting: every requeue (a consumer's negative settlement, or its
  channel, flow or connection ending with the message unsettled) adds one to the
  entry's ``redeliveries``; with ``max_redelivery`` set, a message that would be
  redelivered more often than that is dead-lettered instead (reason
  ``"delivery_limit"``, as RabbitMQ's quorum queues say);
- dead-lettering: an expired, rejected, overflowing or delivery-limited message
  goes to the queue's dead-letter target: a dead-letter exchange through the
  registry's ``dead_letter`` hook, which the protocol that owns exchanges (AMQP)
  installs, or a dead-letter queue of the same VPN (the native protocol's
  dead-message queue). Without a target it is dropped, and counted.

The core is synchronous and knows no protocol: consumers are reached through
:class:`ConsumerSink`, time-based work (TTL, queue expiry) through the registry's
``timer`` hook, which the I/O layer installs.

Storage: queues live in memory. Every point where a queue's durable state changes
is marked ``# STORE:`` — enqueue, remove (ack, drop, dead-letter), requeue (the
redelivery count), purge, declare and delete. With a store (``registry.journal``),
a durable queue (``store_id`` set) journals its **persistent** messages (``qos`` >= 1:
AMQP delivery mode 2, MQTT QoS >= 1) there; transient messages and non-durable
queues never reach the store.

Recovery is lazy (:meth:`Queue.restore_rows`): a recovered queue keeps its entries
in the store's rows (a :class:`_Backlog` in each priority level) and builds the
:class:`QueueEntry` and :class:`Message` of one when it is needed — at the head of
its level (dispatch, get, expiry, overflow, the next TTL deadline) or browsed. All
access to a level's contents goes through ``_head``, ``_take`` and the backlog.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from warren.core.message import Message
from warren.core.persistence import MessageCache, message_from_stored, stored_message
from warren.store.journal import Journal
from warren.store.records import (
    AddQueueSubscription,
    DeleteQueue,
    Dequeue,
    Enqueue,
    EntryRowCodec,
    PutQueue,
    QueueRecord,
    QueueSubscriptionRecord,
    Redeliver,
    RemoveQueueSubscription,
    StoredEntry,
    StoredEntryRows,
    monotonic_to_wall,
    wall_to_monotonic,
)

if TYPE_CHECKING:
    from warren.core.router import Router
    from warren.core.sessions import DeliverySink, Subscription
    from warren.core.topics import Filter
    from warren.core.watermark import MemoryWatermark

__all__ = [
    "Consumer",
    "ConsumerSink",
    "Overflow",
    "Queue",
    "QueueEntry",
    "QueueLimits",
    "QueueRegistry",
]


class Overflow(enum.Enum):
    """What a full queue does with one more message."""

    DROP_HEAD = "drop-head"  # drop (dead-letter) the oldest message, accept the new one
    REJECT_PUBLISH = "reject-publish"  # refuse the new message (publisher is told)
    REJECT_PUBLISH_DLX = "reject-publish-dlx"  # refuse it and dead-letter it


@dataclass(frozen=True, slots=True)
class QueueLimits:
    """A queue's limits and dead-letter target; None means "no limit"."""

    message_ttl: float | None = None  # seconds a message may wait in the queue
    expires: float | None = None  # seconds of disuse after which the queue is deleted
    max_length: int | None = None  # ready messages
    max_length_bytes: int | None = None  # bytes of ready message payloads
    overflow: Overflow = Overflow.DROP_HEAD
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    max_priority: int | None = None  # 1..255: priorities 0..max_priority are kept apart
    # Redeliveries a message may have; one more dead-letters it (0: never redeliver).
    max_redelivery: int | None = None
    dead_letter_queue: str | None = None  # used when there is no dead-letter exchange


@dataclass(slots=True, eq=False)
class QueueEntry:
    """One message in one queue.

    ``source`` and ``key`` say how it was routed here (for AMQP: exchange and routing
    key); both are None for messages that arrived through a topic subscription.
    ``redeliveries`` counts how often it was put back after a delivery (a small int:
    the same slot a bool flag would take).
    """

    message: Message
    seq: int
    source: str | None = None
    key: str | None = None
    expires_at: float | None = None
    priority: int = 0
    redeliveries: int = 0
    size: int = 0
    store_id: int = 0  # its id in the store; 0 while not stored

    @property
    def redelivered(self) -> bool:
        """Whether it was delivered before (AMQP ``redelivered``, native ``rd``)."""
        return self.redeliveries > 0


class ConsumerSink(Protocol):
    """What a connection offers the queues its consumers read from."""

    def ready(self, consumer: Consumer) -> bool:
        """Whether ``consumer`` can take a message now (beyond its own prefetch)."""
        ...

    def send(self, consumer: Consumer, entry: QueueEntry) -> None:
        """Deliver ``entry`` to ``consumer`` now."""
        ...

    def cancelled(self, consumer: Consumer) -> None:
        """The queue went away: the consumer no longer exists (broker-side cancel)."""
        ...


@dataclass(slots=True, eq=False)
class Consumer:
    """One consumer of one queue. ``prefetch`` 0 means no limit of its own."""

    tag: str
    sink: ConsumerSink
    no_ack: bool = False
    prefetch: int = 0
    exclusive: bool = False
    owner: object = None  # the connection, for exclusive-queue checks
    unacked: int = 0


class QueueError(Exception):
    """A queue operation was refused; ``reason`` is one of the class constants."""

    IN_USE = "in-use"
    NOT_EMPTY = "not-empty"
    EXCLUSIVE = "exclusive"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


_seq = itertools.count(1)  # QueueEntry.seq: publish order, across queues


def _reserve_seqs(count: int) -> int:
    """The first of ``count`` consecutive ``seq`` values that ``_seq`` will not give."""
    global _seq
    first = next(_seq)
    _seq = itertools.count(first + count)
    return first


class _Backlog:
    """Recovered entries of one priority level, still in their store's rows.

    It sits in its level's deque where those entries belong: behind anything
    requeued since, ahead of anything published since. ``items[start:]`` are the
    entries still queued, in order: ``items[start:built]`` built already (browsed,
    or peeked at as a head), the rest rows. Entries are built in order and take
    ``seq`` from a range reserved at recovery, so ``seq`` order stays queue order
    (``Queue.requeue`` relies on it).
    """

    __slots__ = ("built", "codec", "items", "next_seq", "priority", "start")

    def __init__(self, codec: EntryRowCodec, items: list[Any], priority: int) -> None:
        self.codec = codec
        self.items = items
        self.priority = priority
        self.start = 0
        self.built = 0
        self.next_seq = _reserve_seqs(len(items))

    def __len__(self) -> int:
        return len(self.items) - self.start

    def _build(self) -> QueueEntry:
        """Build the first entry still a row (at ``built``)."""
        index = self.built
        stored = self.codec.entry(self.items[index])
        message = message_from_stored(stored.message)
        seq = self.next_seq
        self.next_seq = seq + 1
        entry = QueueEntry(
            message, seq, stored.source, stored.key, wall_to_monotonic(stored.expires_at),
            self.priority, stored.redeliveries, len(message.payload), stored.id,
        )
        self.items[index] = entry
        self.built = index + 1
        return entry

    def head(self) -> QueueEntry:
        """The first queued entry (the backlog is not empty)."""
        start = self.start
        if start == self.built:
            return self._build()
        entry: QueueEntry = self.items[start]
        return entry

    def take(self) -> QueueEntry:
        """Remove and return the first queued entry (the backlog is not empty)."""
        entry = self.head()
        start = self.start
        self.items[start] = None  # the entry belongs to its consumer now
        self.start = start + 1
        return entry

    def first_seq(self) -> int:
        """The ``seq`` of the first queued entry, built or not."""
        if self.start < self.built:
            seq: int = self.items[self.start].seq
            return seq
        return self.next_seq

    def entries(self) -> Iterator[QueueEntry]:
        """The queued entries in order, each built as it comes (browsing)."""
        index = self.start
        while True:
            index = max(index, self.start)  # entries taken meanwhile are not queued
            if index >= len(self.items):
                return
            yield self.items[index] if index < self.built else self._build()
            index += 1

    def remove(self, entry: QueueEntry) -> bool:
        """Take out ``entry`` if it is one of the queued ones (built: browsed)."""
        items = self.items
        for index in range(self.start, self.built):
            if items[index] is entry:
                del items[index]
                self.built -= 1
                return True
        return False

    def clear(self, queue: Queue) -> None:
        """Drop every queued entry (purge), journalling their removal if stored."""
        items = self.items
        journal = queue.registry.journal if queue.store_id else None
        for index in range(self.start, self.built):
            entry: QueueEntry = items[index]
            if journal is not None and entry.store_id:
                queue._unstore(entry)  # STORE: remove (purged)
        drop = self.codec.drop
        for index in range(self.built, len(items)):
            entry_id, message_id = drop(items[index])
            if journal is not None:
                journal.append(Dequeue(queue.store_id, entry_id, message_id))  # STORE: ditto
        items.clear()
        self.start = self.built = 0


class Queue:
    """A named queue in one VPN (see module docstring).

    It is also a router subscriber: ``subscriptions``, ``username``, ``sink`` and
    :meth:`deliver` are what :class:`~warren.core.router.Router` uses.
    """

    def __init__(
        self,
        registry: QueueRegistry,
        name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        owner: object = None,
        limits: QueueLimits | None = None,
        arguments: object = None,
    ) -> None:
        self.registry = registry
        self.name = name
        self.durable = durable
        self.auto_delete = auto_delete
        self.owner = owner  # the exclusive owner (a connection), or None
        self.limits = limits if limits is not None else QueueLimits()
        self.arguments = arguments  # as declared, for equivalence checks by the protocol
        levels = (self.limits.max_priority or 0) + 1
        # One FIFO per priority level: dispatch takes the highest non-empty one.
        # A deque per level keeps push/pop O(1); there are at most 256 levels.
        # Recovered entries wait in a _Backlog (one deque item for many entries).
        self._levels: list[deque[QueueEntry | _Backlog]] = [deque() for _ in range(levels)]
        self._backlogs = False  # whether any level ever held a _Backlog
        self.ready_count = 0
        self.ready_bytes = 0
        self.unacked_count = 0
        # Counters since start-up (management API, metrics): messages handed to the
        # dead-letter target, dropped for want of one, and how many of either went
        # because they reached max_redelivery.
        self.dead_lettered = 0
        self.dropped = 0
        self.redelivery_exceeded = 0
        self.consumers: list[Consumer] = []
        self._next_consumer = 0
        self.had_consumers = False
        self.single_consumer = False  # exclusive access: one consumer at a time
        self.deleted = False
        self.last_used = time.monotonic()
        self._timer_at: float | None = None
        self.store_id = 0  # set when the queue is durable and there is a store
        # Router subscriber interface (warren.core.sessions.Subscriber).
        self.subscriptions: dict[str, Subscription] = {}
        self.username: str | None = None
        self.sink: DeliverySink | None = None

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={self.ready_count} unacked={self.unacked_count}>"

    @property
    def message_count(self) -> int:
        """Messages ready for delivery (not counting unacknowledged ones)."""
        return self.ready_count

    # --- enqueue --------------------------------------------------------------------

    def deliver(
        self, message: Message, qos: int, retain: bool, subscription_ids: tuple[int, ...] = ()
    ) -> None:
        """A message matched one of this queue's topic subscriptions (router side)."""
        if not self.publish(message):
            self.registry.rejections += 1

    def publish(
        self, message: Message, source: str | None = None, key: str | None = None
    ) -> bool:
        """Append ``message``; False if the queue refused it (full, reject-publish)."""
        if self.deleted:
            return False
        now = time.monotonic()
        limits = self.limits
        expires_at = message.expires_at
        if limits.message_ttl is not None:
            ttl_at = now + limits.message_ttl
            if expires_at is None or ttl_at < expires_at:
                expires_at = ttl_at
        priority = 0
        if limits.max_priority is not None and message.priority:
            priority = min(message.priority, limits.max_priority)
        entry = QueueEntry(
            message, next(_seq), source, key, expires_at, priority, 0, len(message.payload)
        )
        if expires_at is not None and expires_at <= now and not self.consumers:
            # A message that expires on arrival (TTL 0) is only delivered to a
            # consumer that can take it at once; otherwise it expires here.
            self._dead_letter(entry, "expired")
            return True
        if self._full(entry.size):
            if limits.overflow is Overflow.DROP_HEAD:
                while self.ready_count and self._full(entry.size):
                    dropped = self._pop_oldest()
                    self._dead_letter(dropped, "maxlen")
                if self._full(entry.size):  # max-length 0, or one message too big
                    self._dead_letter(entry, "maxlen")
                    return True
            else:
                if limits.overflow is Overflow.REJECT_PUBLISH_DLX:
                    self._dead_letter(entry, "maxlen")
                return False
        if self.store_id and message.qos:
            self._store(entry)  # STORE: enqueue (durable queue, persistent message)
        self._push(entry)
        self.dispatch()
        if self.ready_count and entry.expires_at is not None:
            self._schedule()
        return True

    def _account(self, delta: int) -> None:
        """Ready bytes changed by ``delta``: here and in the broker's memory alarm."""
        self.ready_bytes += delta
        memory = self.registry.memory
        if memory is not None:
            memory.add(delta)

    def _full(self, size: int) -> bool:
        limits = self.limits
        if limits.max_length is not None and self.ready_count + 1 > limits.max_length:
            return True
        return (
            limits.max_length_bytes is not None
            and self.ready_bytes + size > limits.max_length_bytes
        )

    def _push(self, entry: QueueEntry) -> None:
        self._levels[entry.priority].append(entry)
        self.ready_count += 1
        self._account(entry.size)

    @staticmethod
    def _head(level: deque[QueueEntry | _Backlog]) -> QueueEntry:
        """The first entry of a non-empty level (built now if it was recovered)."""
        item = level[0]
        return item if isinstance(item, QueueEntry) else item.head()

    @staticmethod
    def _take(level: deque[QueueEntry | _Backlog]) -> QueueEntry:
        """Remove and return the first entry of a non-empty level."""
        item = level[0]
        if isinstance(item, QueueEntry):
            level.popleft()
            return item
        entry = item.take()
        if not item:
            level.popleft()
        return entry

    def _pop_oldest(self) -> QueueEntry:
        """The head of the lowest non-empty priority level (what overflow drops)."""
        for level in self._levels:
            if level:
                entry = self._take(level)
                self.ready_count -= 1
                self._account(-entry.size)
                return entry
        raise IndexError("pop from an empty queue")

    def _pop(self, now: float) -> QueueEntry | None:
        """The next message to deliver (highest priority first), dropping expired ones.

        Only a level's head is checked for expiry, as RabbitMQ does for per-message
        TTLs: a message behind a longer-lived one expires when it reaches the head.
        """
        for level in reversed(self._levels):
            while level:
                item = level.popleft()  # the dispatch hot path: one type test added
                if type(item) is _Backlog:  # recovered entries: one is built as it leaves
                    level.appendleft(item)
                    entry = self._take(level)
                else:
                    entry = item  # type: ignore[assignment]
                self.ready_count -= 1
                self._account(-entry.size)
                if entry.expires_at is not None and entry.expires_at <= now:
                    self._dead_letter(entry, "expired")
                    continue
                return entry
        return None

    # --- consumers ------------------------------------------------------------------

    def add_consumer(self, consumer: Consumer) -> None:
        if self.owner is not None and consumer.owner is not self.owner:
            raise QueueError(QueueError.EXCLUSIVE, f"queue {self.name!r} is exclusive")
        if self.consumers and (
            self.single_consumer or consumer.exclusive or any(c.exclusive for c in self.consumers)
        ):
            raise QueueError(
                QueueError.IN_USE, f"queue {self.name!r} in exclusive use by another consumer"
            )
        self.consumers.append(consumer)
        self.had_consumers = True
        self.touch()
        self.dispatch()

    def remove_consumer(self, consumer: Consumer) -> None:
        """The consumer is cancelled; its unacked messages stay with its channel."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        self.touch()
        if self.auto_delete and self.had_consumers and not self.consumers:
            self.registry.delete(self)

    def dispatch(self) -> None:
        """Give ready messages to consumers, round robin, while any can take one."""
        consumers = self.consumers
        if not consumers or not self.ready_count:
            return
        now = time.monotonic()
        n = len(consumers)
        idle = 0
        index = self._next_consumer
        while self.ready_count and idle < n:
            if n != len(consumers):  # a sink cancelled a consumer while we were sending
                n = len(consumers)
                if not n:
                    break
                idle = 0
            consumer = consumers[index % n]
            index += 1
            if (
                consumer.prefetch and consumer.unacked >= consumer.prefetch and not consumer.no_ack
            ) or not consumer.sink.ready(consumer):
                idle += 1
                continue
            idle = 0
            entry = self._pop(now)
            if entry is None:
                break
            if not consumer.no_ack:
                consumer.unacked += 1
                self.unacked_count += 1
            if consumer.no_ack and entry.store_id:
                self._unstore(entry)  # STORE: a no-ack delivery removes the message
            consumer.sink.send(consumer, entry)
        self._next_consumer = index % n if n else 0

    def get(self) -> QueueEntry | None:
        """Take the next ready message for a pull (basic.get); the caller acks it."""
        self.touch()
        entry = self._pop(time.monotonic())
        return entry

    # --- settlement -----------------------------------------------------------------

    def took(self, entry: QueueEntry, consumer: Consumer | None) -> None:
        """A pulled message (:meth:`get`) awaits acknowledgement."""
        self.unacked_count += 1

    def ack(self, entry: QueueEntry, consumer: Consumer | None, *, dispatch: bool = True) -> None:
        """The message was processed: it leaves the queue for good."""
        self._settle(consumer)
        if entry.store_id:
            self._unstore(entry)  # STORE: remove (acknowledged)
        if dispatch:
            self.dispatch()

    def reject(
        self,
        entry: QueueEntry,
        consumer: Consumer | None,
        requeue: bool,
        *,
        dispatch: bool = True,
    ) -> None:
        """Not processed: back to the head (``requeue``, within ``max_redelivery``) or
        dead-lettered."""
        self._settle(consumer)
        if requeue and not self.deleted:
            self.requeue(entry)
        else:
            self._dead_letter(entry, "rejected")
        if dispatch:
            self.dispatch()

    def requeue(self, entry: QueueEntry) -> bool:
        """Put an unacked message back in its original place, one redelivery more.

        Past the queue's ``max_redelivery`` it is dead-lettered instead (reason
        ``"delivery_limit"``); then the answer is False.
        """
        redeliveries = entry.redeliveries + 1
        limit = self.limits.max_redelivery
        if limit is not None and redeliveries > limit:
            self.redelivery_exceeded += 1
            self._dead_letter(entry, "delivery_limit")
            return False
        entry.redeliveries = redeliveries
        if entry.store_id and self.store_id:
            journal = self.registry.journal
            assert journal is not None
            # STORE: requeue (the new count)
            journal.append(Redeliver(self.store_id, entry.store_id, redeliveries))
        level = self._levels[entry.priority]
        if not level or _first_seq(level[0]) > entry.seq:
            level.appendleft(entry)
        else:
            # Keep publish order among requeued messages (they come back in any order).
            # A backlog is never split: all of it was behind a message taken from
            # this level, so all of it has a greater seq.
            index = 0
            for index, queued in enumerate(level):  # noqa: B007
                if _first_seq(queued) > entry.seq:
                    break
            else:
                index = len(level)
            level.insert(index, entry)
        self.ready_count += 1
        self._account(entry.size)
        if entry.expires_at is not None:
            self._schedule()
        return True

    def release(self, consumer: Consumer | None) -> None:
        """An unacked message's acknowledgement is no longer expected (requeued elsewhere)."""
        self._settle(consumer)

    def _settle(self, consumer: Consumer | None) -> None:
        if consumer is not None and not consumer.no_ack and consumer.unacked:
            consumer.unacked -= 1
        if self.unacked_count:
            self.unacked_count -= 1

    # --- maintenance ----------------------------------------------------------------

    def purge(self) -> int:
        """Drop every ready message; returns how many."""
        count = self.ready_count
        for level in self._levels:
            # STORE: remove (purged). Ready entries only: unacknowledged ones
            # stay stored until they are settled (PurgeQueue would drop them).
            if self.store_id or self._backlogs:
                for item in level:
                    if not isinstance(item, QueueEntry):
                        item.clear(self)  # recovered entries: dropped without being built
                    elif self.store_id and item.store_id:
                        self._unstore(item)
            level.clear()
        self.ready_count = 0
        self._account(-self.ready_bytes)
        return count

    def touch(self) -> None:
        """The queue was used (declare, consume, get): restart its idle expiry."""
        self.last_used = time.monotonic()
        if self.limits.expires is not None:
            self._schedule()

    def iter_ready(self) -> Iterator[QueueEntry]:
        """The ready entries in delivery order (recovered ones are built as they come)."""
        for level in reversed(self._levels):
            for item in level:
                if isinstance(item, QueueEntry):
                    yield item
                else:
                    yield from item.entries()

    def remove_ready(self, entry: QueueEntry) -> bool:
        """Take a ready ``entry`` (one :meth:`iter_ready` gave) out of the queue for
        good (a browser's removal): a stored one leaves the store too. False if it is
        not ready.
        """
        level = self._levels[entry.priority]
        for index, item in enumerate(level):
            if item is entry:
                del level[index]
                break
            if isinstance(item, _Backlog) and item.remove(entry):
                if not item:
                    del level[index]
                break
        else:
            return False
        self.ready_count -= 1
        self._account(-entry.size)
        self.forget(entry)  # STORE: remove (taken by a browser)
        return True

    def next_deadline(self) -> float | None:
        """When this queue next has time-based work: a head message or itself expires."""
        deadline: float | None = None
        for level in self._levels:
            if level:
                head = level[0]
                at = (head if isinstance(head, QueueEntry) else head.head()).expires_at
                if at is not None and (deadline is None or at < deadline):
                    deadline = at
        expires = self.limits.expires
        if expires is not None and not self.consumers:
            at = self.last_used + expires
            deadline = at if deadline is None or at < deadline else deadline
        return deadline

    def expire(self, now: float | None = None) -> None:
        """Do the time-based work that is due: expire head messages, or the queue."""
        if self.deleted:
            return
        now = time.monotonic() if now is None else now
        expires = self.limits.expires
        if expires is not None and not self.consumers and now >= self.last_used + expires:
            self.registry.delete(self)
            return
        for level in self._levels:
            while level:
                at = self._head(level).expires_at
                if at is None or at > now:
                    break
                entry = self._take(level)
                self.ready_count -= 1
                self._account(-entry.size)
                self._dead_letter(entry, "expired")
        self._schedule()

    def _schedule(self) -> None:
        deadline = self.next_deadline()
        if deadline is None or self.deleted:
            return
        if self._timer_at is not None and self._timer_at <= deadline:
            return  # an earlier wake-up is booked; it reschedules
        self._timer_at = deadline
        self.registry.wake_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer_at = None
        self.expire()

    def _dead_letter(self, entry: QueueEntry, reason: str) -> None:
        """Hand ``entry`` to the dead-letter target: the exchange (through the
        registry's hook), else the dead-letter queue; without one it is dropped."""
        if entry.store_id:
            # STORE: remove (dead-lettered; the target re-publishes it, in the same
            # submission)
            self._unstore(entry)
        limits = self.limits
        if limits.dead_letter_exchange is not None:
            hook = self.registry.dead_letter
            if hook is not None and hook(self, entry, reason):
                self.dead_lettered += 1
                return
        elif limits.dead_letter_queue is not None:
            target = self.registry.get(limits.dead_letter_queue)
            # The message as it is (no x-death: the queue has no protocol of its
            # own); a full target's overflow policy applies (refused: dropped).
            if target is not None and target is not self and target.publish(entry.message):
                self.dead_lettered += 1
                return
        self.dropped += 1
        self.registry.router.stats.dropped += 1

    # --- STORE points -----------------------------------------------------------------

    def _store(self, entry: QueueEntry) -> None:
        journal = self.registry.journal
        assert journal is not None  # store_id is only set when there is a store
        entry.store_id = journal.store.next_id()
        journal.append(Enqueue(StoredEntry(
            self.store_id,
            entry.store_id,
            stored_message(entry.message, journal),
            entry.source,
            entry.key,
            monotonic_to_wall(entry.expires_at),
            entry.priority,
            entry.redeliveries,
        )))

    def _unstore(self, entry: QueueEntry) -> None:
        journal = self.registry.journal
        if journal is not None and self.store_id:
            stored = entry.message.stored
            assert stored is not None  # set by _store / recovery with store_id
            journal.append(Dequeue(self.store_id, entry.store_id, stored.id))
        entry.store_id = 0

    def forget(self, entry: QueueEntry) -> None:
        """A pulled message needs no acknowledgement (basic.get no-ack): it is gone."""
        if entry.store_id:
            self._unstore(entry)

    def restore(self, stored: StoredEntry, messages: MessageCache) -> None:
        """Start-up: put a stored entry back at the tail (entries come in id order)."""
        message = messages.get(stored.message)
        entry = QueueEntry(
            message, next(_seq), stored.source, stored.key,
            wall_to_monotonic(stored.expires_at), stored.priority, stored.redeliveries,
            len(message.payload), stored.id,
        )
        if entry.priority >= len(self._levels):
            entry.priority = len(self._levels) - 1
        self._push(entry)
        if entry.expires_at is not None:
            self._schedule()

    def restore_many(self, stored: list[StoredEntry], messages: MessageCache) -> None:
        """Start-up: :meth:`restore` for many entries (in id order), with the
        per-entry work cut to building the :class:`QueueEntry` and appending it
        (bytes accounted and the expiry timer armed once, at the end)."""
        levels = self._levels
        top = len(levels) - 1
        by_id = messages.by_id
        cached = by_id.get
        seq = _seq
        total = 0
        expiring = False
        monotonic_now = time.monotonic()
        wall_now = time.time()
        for item in stored:
            # MessageCache.get and message_from_stored, inlined (once per entry).
            record = item.message
            message = cached(record[0])
            if message is None:
                (mid, topic, payload, qos, retain, utf8, content_type, correlation_data,
                 response_topic, props, deadline, prio, message_id, sender_id,
                 _extra) = record
                message = by_id[mid] = Message(
                    topic, payload, qos, retain, content_type, correlation_data,
                    response_topic, tuple(tuple(p) for p in props) if props else (),  # type: ignore[misc]
                    utf8,
                    None if deadline is None else monotonic_now + (deadline - wall_now),
                    prio, message_id, sender_id, None, record,
                )
            expires_at = item.expires_at
            if expires_at is not None:
                expires_at = monotonic_now + (expires_at - wall_now)
                expiring = True
            priority = item.priority
            if priority > top:
                priority = top
            size = len(message.payload)
            total += size
            levels[priority].append(QueueEntry(
                message, next(seq), item.source, item.key, expires_at, priority,
                item.redeliveries, size, item.id,
            ))
        self.ready_count += len(stored)
        self._account(total)
        if expiring:
            self._schedule()

    def restore_rows(self, runs: Sequence[StoredEntryRows]) -> None:
        """Start-up, lazily: put recovered entries back (runs in id order) as their
        store's rows, to be built one at a time when needed (module docstring).

        Per entry nothing runs here for a queue without priorities; with priorities,
        a loop sorts the rows into their levels.
        """
        levels = self._levels
        top = len(levels) - 1
        count = 0
        size = 0
        # Runs of one store share their codec: one backlog per level and codec.
        pending: list[list[Any]] = [[] for _ in levels]
        codec: EntryRowCodec | None = None
        for run in runs:
            if run.codec is not codec:
                if codec is not None:
                    self._add_backlogs(codec, pending)
                    pending = [[] for _ in levels]
                codec = run.codec
            rows = run.rows
            count += len(rows)
            size += run.size
            if not top:
                pending[0].extend(rows)
                continue
            priority_of = codec.priority
            for row in rows:
                priority = priority_of(row)
                pending[priority if priority < top else top].append(row)
        if codec is not None:
            self._add_backlogs(codec, pending)
        self.ready_count += count
        self._account(size)
        self._schedule()

    def _add_backlogs(self, codec: EntryRowCodec, rows: list[list[Any]]) -> None:
        for priority, items in enumerate(rows):
            if items:
                self._levels[priority].append(_Backlog(codec, items, priority))
                self._backlogs = True


def _first_seq(item: QueueEntry | _Backlog) -> int:
    """The ``seq`` of a level item's first entry."""
    return item.seq if isinstance(item, QueueEntry) else item.first_seq()


DeadLetterHook = Callable[[Queue, QueueEntry, str], bool]
"""Route a dead-lettered entry to the queue's dead-letter exchange (queue, entry,
reason); False when that exchange does not exist (the message is dropped)."""
Timer = Callable[[float, Callable[[], None]], None]
DeleteHook = Callable[[Queue], None]


class QueueRegistry:
    """The queues of one VPN, by name."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.vpn_name = ""
        self.queues: dict[str, Queue] = {}
        # Hooks installed by the I/O and protocol layers:
        self.timer: Timer | None = None  # call back at a time.monotonic() deadline
        self.dead_letter: DeadLetterHook | None = None
        self.on_delete: list[DeleteHook] = []  # e.g. remove the queue's exchange bindings
        # The broker-wide count of queued bytes (core/watermark.py), shared by every
        # VPN's registry; the server installs it.
        self.memory: MemoryWatermark | None = None
        # Messages refused by full queues (reject-publish) on the router path; a
        # publisher compares it before and after router.publish to learn of refusals.
        self.rejections = 0
        # Where durable queues journal (Vpn.attach_journal); None: nothing is stored.
        self.journal: Journal | None = None

    def __len__(self) -> int:
        return len(self.queues)

    def get(self, name: str) -> Queue | None:
        return self.queues.get(name)

    def declare(
        self,
        name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        owner: object = None,
        limits: QueueLimits | None = None,
        arguments: object = None,
        stored_arguments: bytes | None = None,
        store_id: int = 0,
        single_consumer: bool = False,
    ) -> Queue:
        """Create queue ``name`` (the caller checked it does not exist).

        A durable queue without an owner is stored when there is a store;
        ``stored_arguments`` is the declaring protocol's encoding of ``arguments``,
        ``store_id`` the id of a queue being recovered (then nothing is journalled).
        ``single_consumer``: exclusive access (one active consumer at a time).
        """
        queue = Queue(
            self,
            name,
            durable=durable,
            auto_delete=auto_delete,
            owner=owner,
            limits=limits,
            arguments=arguments,
        )
        queue.single_consumer = single_consumer
        self.queues[name] = queue
        journal = self.journal
        if store_id:
            queue.store_id = store_id
        elif durable and owner is None and journal is not None:
            queue.store_id = journal.store.next_id()
            lim = queue.limits
            journal.append(PutQueue(QueueRecord(  # STORE: declare (durable queue)
                queue.store_id, self.vpn_name, name, single_consumer, auto_delete,
                lim.message_ttl, lim.expires, lim.max_length, lim.max_length_bytes,
                lim.overflow.value, lim.max_redelivery, lim.max_priority, lim.dead_letter_queue,
                lim.dead_letter_exchange, lim.dead_letter_routing_key, stored_arguments,
            )))
        queue.touch()
        return queue

    def subscribe(
        self, queue: Queue, text: str, topic_filter: Filter, syntax: str = "mqtt"
    ) -> bool:
        """Subscribe ``queue`` to topic filter ``text`` (written in ``syntax``, "mqtt"
        or "native", parsed as ``topic_filter``): matching messages are queued
        (guaranteed delivery). A stored queue keeps its subscriptions across a
        restart. False if it had it already."""
        from warren.core.sessions import Subscription  # sessions imports this module

        if text in queue.subscriptions:
            return False
        self.router.add(Subscription(queue, text, topic_filter, qos=1))
        if queue.store_id and self.journal is not None:
            self.journal.append(AddQueueSubscription(  # STORE: a queue's subscription
                QueueSubscriptionRecord(queue.store_id, text, syntax)
            ))
        return True

    def unsubscribe(self, queue: Queue, text: str) -> bool:
        """Remove ``queue``'s subscription ``text``; False if it had none."""
        if text not in queue.subscriptions:
            return False
        self.router.remove(queue, text)
        if queue.store_id and self.journal is not None:
            self.journal.append(RemoveQueueSubscription(queue.store_id, text))  # STORE
        return True

    def delete(self, queue: Queue) -> int:
        """Delete ``queue``: unsubscribe it, cancel its consumers; returns its ready count."""
        if queue.deleted:
            return 0
        queue.deleted = True
        if self.queues.get(queue.name) is queue:
            del self.queues[queue.name]
        if queue.store_id and self.journal is not None:
            self.journal.append(DeleteQueue(queue.store_id))  # STORE: delete
            queue.store_id = 0
        self.router.remove_all(queue)
        for hook in self.on_delete:
            hook(queue)
        consumers, queue.consumers = queue.consumers, []
        for consumer in consumers:
            consumer.sink.cancelled(consumer)
        return queue.purge()

    def wake_at(self, deadline: float, callback: Callable[[], None]) -> None:
        """Ask the I/O layer to call ``callback`` at ``deadline`` (lazy without one)."""
        if self.timer is not None:
            self.timer(deadline, callback)

    def owned_by(self, owner: object) -> list[Queue]:
        """The exclusive queues of a connection (deleted when it closes)."""
        return [q for q in self.queues.values() if q.owner is owner]

