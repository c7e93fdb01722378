"""The memory store: the storage interface without durability, for tests.

It applies each submission at once and completes it on the next loop iteration (or
at once without a loop), so callers see the same "later" as with SQLite. State lives
in a :class:`MemoryImage`; a new :class:`MemoryStore` over the same image behaves
like a restart, which is how the contract tests check recovery for both stores.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from warren.store.base import Done, StoreStats, fire, future_done, waiter
from warren.store.errors import StorageError, StoreClosedError
from warren.store.records import (
    RUNTIME_KINDS,
    AddQueueSubscription,
    BindingRecord,
    DeleteBinding,
    DeleteExchange,
    DeleteIncomingQos2,
    DeleteObject,
    DeleteQueue,
    DeleteRetained,
    DeleteSession,
    DeleteSessionDelivery,
    DeleteSessionSubscription,
    Dequeue,
    Enqueue,
    ExchangeRecord,
    IncomingQos2Record,
    Mutation,
    ObjectRecord,
    PurgeQueue,
    PutBinding,
    PutExchange,
    PutIncomingQos2,
    PutObject,
    PutQueue,
    PutSession,
    PutSessionDelivery,
    PutSessionSubscription,
    QueueRecord,
    QueueSubscriptionRecord,
    Recovered,
    Redeliver,
    RemoveQueueSubscription,
    RetainedRecord,
    RuntimeRecord,
    SessionDelivery,
    SessionRecord,
    SessionSubscriptionRecord,
    SetRetained,
    StoredEntry,
    StoredEntryRows,
    StoredMessage,
    UpdateSessionDelivery,
)

__all__ = ["MemoryImage", "MemoryStore"]

RecordKey = tuple[str, int, str]  # (kind, owner, key), as in the SQLite records table


@dataclass
class MemoryImage:
    """Everything a :class:`MemoryStore` keeps; outlives the store object."""

    messages: dict[int, StoredMessage] = field(default_factory=dict)
    refs: dict[int, int] = field(default_factory=dict)
    entries: dict[int, dict[int, StoredEntry]] = field(default_factory=dict)
    deliveries: dict[int, dict[int, SessionDelivery]] = field(default_factory=dict)
    retained: dict[tuple[str, str], RetainedRecord] = field(default_factory=dict)
    records: dict[RecordKey, RuntimeRecord] = field(default_factory=dict)
    next_id: int = 1


class MemoryStore:
    """A non-durable :class:`~warren.store.base.Store`."""

    def __init__(self, image: MemoryImage | None = None) -> None:
        self.image = image if image is not None else MemoryImage()
        self._ids = itertools.count(self.image.next_id)
        self._closed = False
        self._stats = StoreStats()

    @property
    def failure(self) -> StorageError | None:
        return None

    def next_id(self) -> int:
        value = next(self._ids)
        self.image.next_id = value + 1
        return value

    # --- recovery ---------------------------------------------------------------------

    def recover(self, *, compact: bool = False) -> Iterator[Recovered]:
        image = self.image
        for cls in RUNTIME_KINDS:
            keys = sorted(k for k in image.records if k[0] == cls.KIND)
            for key in keys:
                yield image.records[key]
        for queue_id in sorted(image.entries):
            entries = image.entries[queue_id]
            ordered = [entries[entry_id] for entry_id in sorted(entries)]
            if compact:  # one run per queue, its rows the records themselves
                if ordered:
                    yield StoredEntryRows(
                        queue_id, ordered, sum(len(e.message.payload) for e in ordered)
                    )
            else:
                yield from ordered
        for session_id in sorted(image.deliveries):
            deliveries = image.deliveries[session_id]
            for delivery_id in sorted(deliveries):
                yield deliveries[delivery_id]
        for vpn_topic in sorted(image.retained):
            yield image.retained[vpn_topic]

    # --- writes -----------------------------------------------------------------------

    def submit(
        self,
        mutations: Sequence[Mutation],
        done: Done | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if self._closed:
            error = StoreClosedError("the store is closed: nothing more can be written")
            if done is not None:
                fire([waiter(done, loop)], error)
            return
        for mutation in mutations:
            self._apply(mutation)
        self._stats.count_batch(1, len(mutations))
        if done is not None:
            fire([waiter(done, loop)], None)

    def flush(self) -> None:
        pass  # submissions apply at once

    def write(self, mutations: Sequence[Mutation]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.submit(mutations, future_done(future))
        return future

    def stats(self) -> StoreStats:
        image = self.image
        return replace(
            self._stats,
            messages=len(image.messages),
            entries=sum(len(e) for e in image.entries.values()),
            deliveries=sum(len(d) for d in image.deliveries.values()),
            retained=len(image.retained),
            records=len(image.records),
            batch_histogram=dict(self._stats.batch_histogram),
        )

    def close(self) -> None:
        self._closed = True

    # --- applying mutations (the same semantics as sqlite.py) ---------------------------

    def _ref(self, message: StoredMessage) -> None:
        image = self.image
        count = image.refs.get(message.id, 0)
        if not count:
            image.messages[message.id] = message
        image.refs[message.id] = count + 1

    def _unref(self, message_id: int) -> None:
        image = self.image
        count = image.refs.get(message_id, 0) - 1
        if count > 0:
            image.refs[message_id] = count
        else:
            image.refs.pop(message_id, None)
            image.messages.pop(message_id, None)

    def _put_record(self, record: RuntimeRecord) -> None:
        self.image.records[(record.KIND, record.owner, record.key)] = record

    def _drop_records(self, owner: int, kinds: tuple[str, ...]) -> None:
        records = self.image.records
        for key in [k for k in records if k[1] == owner and k[0] in kinds]:
            del records[key]

    def _purge(self, queue_id: int) -> None:
        for entry in self.image.entries.pop(queue_id, {}).values():
            self._unref(entry.message.id)

    def _apply(self, mutation: Mutation) -> None:
        image = self.image
        match mutation:
            case Enqueue(entry):
                old = image.entries.setdefault(entry.queue_id, {}).get(entry.id)
                self._ref(entry.message)
                image.entries[entry.queue_id][entry.id] = entry
                if old is not None:
                    self._unref(old.message.id)
            case Dequeue(queue_id, entry_id):
                removed = image.entries.get(queue_id, {}).pop(entry_id, None)
                if removed is not None:
                    self._unref(removed.message.id)
            case Redeliver(queue_id, entry_id, redeliveries):
                entries = image.entries.get(queue_id, {})
                found = entries.get(entry_id)
                if found is not None:
                    entries[entry_id] = found._replace(redeliveries=redeliveries)
            case PurgeQueue(queue_id):
                self._purge(queue_id)
            case PutQueue(queue):
                self._put_record(queue)
            case DeleteQueue(queue_id):
                self._purge(queue_id)
                self._drop_records(
                    queue_id,
                    (QueueRecord.KIND, QueueSubscriptionRecord.KIND, BindingRecord.KIND),
                )
            case AddQueueSubscription(subscription):
                self._put_record(subscription)
            case RemoveQueueSubscription(queue_id, key):
                image.records.pop((QueueSubscriptionRecord.KIND, queue_id, key), None)
            case PutExchange(exchange):
                self._put_record(exchange)
            case DeleteExchange(vpn, name):
                image.records.pop((ExchangeRecord.KIND, 0, f"{vpn}\x00{name}"), None)
                prefix = f"{vpn}\x00{name}\x00"
                for record_key in [
                    k for k in image.records
                    if k[0] == BindingRecord.KIND and k[2].startswith(prefix)
                ]:
                    del image.records[record_key]
            case PutBinding(binding):
                self._put_record(binding)
            case DeleteBinding(binding):
                image.records.pop((binding.KIND, binding.owner, binding.key), None)
            case PutSession(session):
                self._put_record(session)
            case DeleteSession(session_id):
                for delivery in image.deliveries.pop(session_id, {}).values():
                    self._unref(delivery.message.id)
                self._drop_records(
                    session_id,
                    (
                        SessionRecord.KIND,
                        SessionSubscriptionRecord.KIND,
                        IncomingQos2Record.KIND,
                    ),
                )
            case PutSessionSubscription(subscription):
                self._put_record(subscription)
            case DeleteSessionSubscription(session_id, key):
                image.records.pop((SessionSubscriptionRecord.KIND, session_id, key), None)
            case PutSessionDelivery(delivery):
                previous = image.deliveries.setdefault(delivery.session_id, {}).get(delivery.id)
                self._ref(delivery.message)
                image.deliveries[delivery.session_id][delivery.id] = delivery
                if previous is not None:
                    self._unref(previous.message.id)
            case UpdateSessionDelivery(session_id, delivery_id, packet_id, state):
                deliveries = image.deliveries.get(session_id, {})
                current = deliveries.get(delivery_id)
                if current is not None:
                    deliveries[delivery_id] = current._replace(packet_id=packet_id, state=state)
            case DeleteSessionDelivery(session_id, delivery_id):
                gone = image.deliveries.get(session_id, {}).pop(delivery_id, None)
                if gone is not None:
                    self._unref(gone.message.id)
            case PutIncomingQos2(record):
                self._put_record(record)
            case DeleteIncomingQos2(session_id, packet_id):
                image.records.pop((IncomingQos2Record.KIND, session_id, str(packet_id)), None)
            case SetRetained(retained):
                before = image.retained.get((retained.vpn, retained.topic))
                self._ref(retained.message)
                image.retained[(retained.vpn, retained.topic)] = retained
                if before is not None:
                    self._unref(before.message.id)
            case DeleteRetained(vpn, topic):
                dropped = image.retained.pop((vpn, topic), None)
                if dropped is not None:
                    self._unref(dropped.message.id)
            case PutObject(record):
                self._put_record(record)
            case DeleteObject(kind, vpn, name):
                image.records.pop((ObjectRecord.KIND, 0, f"{kind}\x00{vpn}\x00{name}"), None)
