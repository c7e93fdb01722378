"""The storage contract, checked against both stores (conftest.open_store)."""

from __future__ import annotations

import asyncio

from tests.store.conftest import OpenStore

from warren.store import (
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
    RetainedRecord,
    SessionDelivery,
    SessionRecord,
    SessionSubscriptionRecord,
    SetRetained,
    StorageError,
    Store,
    StoredEntry,
    StoredEntryRows,
    StoredMessage,
    UpdateSessionDelivery,
    write_sync,
)
from warren.store.records import Mutation


def full_message(mid: int) -> StoredMessage:
    return StoredMessage(
        mid,
        "a/b",
        b"\x00payload\xff",
        qos=2,
        retain=True,
        payload_format_utf8=True,
        content_type="text/plain",
        correlation_data=b"corr",
        response_topic="reply/here",
        user_properties=(("k", "v"), ("k", "v2")),
        expires_at=1_900_000_000.5,
        priority=7,
        message_id="m-1",
        sender_id="client-1",
        extra=b"\x01\x02",
    )


def write(store: Store, mutations: list[Mutation]) -> None:
    write_sync(store, mutations, timeout=10)


def restart(open_store: OpenStore) -> tuple[Store, list[Recovered]]:
    store = open_store()
    return store, list(store.recover())


def of_type(items: list[Recovered], cls: type) -> list[Recovered]:
    return [item for item in items if isinstance(item, cls)]


def test_empty_store_recovers_nothing(open_store: OpenStore) -> None:
    store = open_store()
    assert list(store.recover()) == []
    assert store.failure is None


def test_entries_survive_a_restart_in_id_order_per_queue(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    queue = QueueRecord(store.next_id(), "default", "orders", max_redelivery=3, message_ttl=60)
    other = QueueRecord(store.next_id(), "default", "audit")
    write(store, [PutQueue(queue), PutQueue(other)])
    entries = []
    for i in range(5):
        message = full_message(store.next_id()) if i == 0 else StoredMessage(
            store.next_id(), f"t/{i}", bytes([i])
        )
        entries.append(
            StoredEntry(queue.id, store.next_id(), message, "amq.direct", "rk", 123.25, 2, 0)
        )
    # Submitted out of order: recovery returns id order within the queue.
    write(store, [Enqueue(e) for e in reversed(entries)])
    write(store, [Redeliver(queue.id, entries[1].id, 2)])

    store, items = restart(open_store)
    assert items[:2] == [queue, other]  # runtime objects come first
    recovered = of_type(items, StoredEntry)
    expected = list(entries)
    expected[1] = expected[1]._replace(redeliveries=2)
    assert recovered == expected
    assert recovered[0].message == full_message(entries[0].message.id)


def test_a_message_is_stored_once_for_many_queues(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    message = StoredMessage(store.next_id(), "fan/out", b"x" * 100, qos=1)
    queues = [store.next_id() for _ in range(3)]
    entries = [StoredEntry(q, store.next_id(), message) for q in queues]
    write(store, [Enqueue(e) for e in entries])
    store, items = restart(open_store)
    stats = store.stats()
    assert (stats.messages, stats.entries) == (1, 3)
    recovered = of_type(items, StoredEntry)
    assert len(recovered) == 3
    assert recovered[0].message is recovered[1].message is recovered[2].message  # shared

    write(store, [Dequeue(queues[0], entries[0].id, message.id),
                  Dequeue(queues[1], entries[1].id, message.id)])
    assert store.stats().messages == 1
    write(store, [Dequeue(queues[2], entries[2].id, message.id)])
    write(store, [Dequeue(queues[2], entries[2].id, message.id)])  # twice: no effect
    store, items = restart(open_store)
    assert items == []
    assert (store.stats().messages, store.stats().entries) == (0, 0)


def test_dead_lettering_moves_a_message_within_one_commit(open_store: OpenStore) -> None:
    """Remove from the source, then enqueue on the dead-message queue: the body stays."""
    store = open_store()
    list(store.recover())
    message = StoredMessage(store.next_id(), "t", b"body")
    source = StoredEntry(1, store.next_id(), message)
    write(store, [Enqueue(source)])
    moved = StoredEntry(2, store.next_id(), message, redeliveries=5)
    write(store, [Dequeue(1, source.id, message.id), Enqueue(moved)])
    store, items = restart(open_store)
    assert of_type(items, StoredEntry) == [moved]
    assert store.stats().messages == 1


def test_purge_and_delete_queue(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    q1 = QueueRecord(store.next_id(), "default", "q1")
    q2 = QueueRecord(store.next_id(), "default", "q2")
    sub = QueueSubscriptionRecord(q1.id, "sensors/+/temp")
    exchange = ExchangeRecord("default", "logs", "topic", arguments=b"\x00\x01")
    to_q1 = BindingRecord("default", "logs", "q1", "#", queue_id=q1.id)
    to_q2 = BindingRecord("default", "logs", "q2", "a.*", queue_id=q2.id, arguments=b"\x05")
    muts: list[Mutation] = [
        PutQueue(q1), PutQueue(q2), AddQueueSubscription(sub), PutExchange(exchange),
        PutBinding(to_q1), PutBinding(to_q2),
    ]
    for q in (q1, q2, q1):
        muts.append(
            Enqueue(StoredEntry(q.id, store.next_id(), StoredMessage(store.next_id(), "t", b"")))
        )
    write(store, muts)
    write(store, [PurgeQueue(q2.id), DeleteQueue(q1.id)])
    store, items = restart(open_store)
    assert items == [exchange, q2, to_q2]
    assert store.stats().messages == 0


def test_exchanges_bindings_and_objects(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    logs = ExchangeRecord("default", "logs", "fanout", internal=True)
    alerts = ExchangeRecord("default", "alerts", "direct")
    e2e = BindingRecord("default", "logs", "alerts", "")
    from_alerts = BindingRecord("default", "alerts", "logs", "x")
    user = ObjectRecord("user", "default", "alice", '{"hash": "scrypt$..."}')
    vpn = ObjectRecord("vpn", "", "default", "{}")
    write(store, [PutExchange(logs), PutExchange(alerts), PutBinding(e2e),
                  PutBinding(from_alerts), PutObject(user), PutObject(vpn)])
    _, items = restart(open_store)
    assert set(items) == {logs, alerts, e2e, from_alerts, user, vpn}
    assert items.index(user) < items.index(logs) < items.index(e2e)  # dependency order

    store = open_store()
    list(store.recover())
    # Deleting an exchange takes the bindings from it; bindings to it are the caller's.
    write(store, [DeleteExchange("default", "logs"), DeleteObject("user", "default", "alice"),
                  DeleteBinding(from_alerts)])
    _, items = restart(open_store)
    assert set(items) == {alerts, vpn}


def test_sessions_with_subscriptions_and_deliveries(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    session = SessionRecord(store.next_id(), "default", "sensor-1", "bob", 3600, None, 5)
    subs = [
        SessionSubscriptionRecord(session.id, "a/#", qos=1, identifier=7),
        SessionSubscriptionRecord(session.id, "$share/g/b/+", qos=2, no_local=True),
    ]
    message = StoredMessage(store.next_id(), "a/1", b"m", qos=1)
    inflight = SessionDelivery(session.id, store.next_id(), message, 1, False, (7, 9))
    pending = SessionDelivery(session.id, store.next_id(), message, 2, True)
    write(store, [PutSession(session), *(PutSessionSubscription(s) for s in subs),
                  PutSessionDelivery(inflight), PutSessionDelivery(pending),
                  PutIncomingQos2(IncomingQos2Record(session.id, 42))])
    write(store, [UpdateSessionDelivery(session.id, inflight.id, 17, 2),
                  DeleteSessionSubscription(session.id, "a/#"),
                  PutSession(SessionRecord(session.id, "default", "sensor-1", "bob", 3600,
                                           1_800_000_000.0, 5))])
    store, items = restart(open_store)
    assert of_type(items, SessionRecord)[0].disconnected_at == 1_800_000_000.0  # type: ignore[union-attr]
    assert of_type(items, SessionSubscriptionRecord) == [subs[1]]
    assert of_type(items, IncomingQos2Record) == [IncomingQos2Record(session.id, 42)]
    assert of_type(items, SessionDelivery) == [
        inflight._replace(packet_id=17, state=2), pending,
    ]
    assert store.stats().messages == 1

    write(store, [DeleteSessionDelivery(session.id, inflight.id, message.id),
                  DeleteIncomingQos2(session.id, 42)])
    store, items = restart(open_store)
    assert of_type(items, SessionDelivery) == [pending]
    assert of_type(items, IncomingQos2Record) == []
    write(store, [DeleteSession(session.id)])
    store, items = restart(open_store)
    assert items == []
    assert store.stats().messages == 0


def test_retained_messages(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    first = StoredMessage(store.next_id(), "home/temp", b"20", retain=True)
    second = StoredMessage(store.next_id(), "home/temp", b"21", retain=True)
    shared = StoredMessage(store.next_id(), "home/door", b"open", retain=True)
    write(store, [SetRetained(RetainedRecord("default", "home/temp", first)),
                  SetRetained(RetainedRecord("default", "home/door", shared)),
                  Enqueue(StoredEntry(1, store.next_id(), shared))])
    write(store, [SetRetained(RetainedRecord("default", "home/temp", second)),
                  SetRetained(RetainedRecord("other", "home/temp", second))])
    store, items = restart(open_store)
    assert of_type(items, RetainedRecord) == [
        RetainedRecord("default", "home/door", shared),
        RetainedRecord("default", "home/temp", second),
        RetainedRecord("other", "home/temp", second),
    ]
    assert store.stats().messages == 2  # 'first' went with its last reference
    write(store, [DeleteRetained("default", "home/door"), DeleteRetained("default", "nope")])
    store, items = restart(open_store)
    assert [r.topic for r in of_type(items, RetainedRecord)] == ["home/temp", "home/temp"]
    assert of_type(items, StoredEntry)[0].message == shared  # still referenced by the queue


def expand(items: list[Recovered]) -> list[Recovered]:
    """A compact recovery stream with each run of rows decoded into its entries."""
    out: list[Recovered] = []
    for item in items:
        if isinstance(item, StoredEntryRows):
            entries = [item.codec.entry(row) for row in item.rows]
            assert {e.queue_id for e in entries} == {item.queue_id}
            assert item.size == sum(len(e.message.payload) for e in entries)
            out.extend(entries)
        else:
            out.append(item)
    return out


def test_compact_recovery_streams_the_same_entries_as_rows(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    q1, q2 = QueueRecord(store.next_id(), "default", "q1"), QueueRecord(
        store.next_id(), "default", "q2", max_priority=9
    )
    shared = full_message(store.next_id())
    muts: list[Mutation] = [PutQueue(q1), PutQueue(q2)]
    for i in range(30):
        message = shared if i % 10 == 0 else StoredMessage(
            store.next_id(), f"t/{i}", b"x" * i, qos=1, expires_at=1_900_000_000.0 + i
        )
        queue = q1 if i % 3 else q2
        muts.append(Enqueue(StoredEntry(
            queue.id, store.next_id(), message, "ex" if i % 2 else None, "k", None, i % 10,
            i % 4,
        )))
    session = SessionRecord(store.next_id(), "default", "c", None, 60, None, 5)
    muts += [PutSession(session),
             PutSessionDelivery(SessionDelivery(session.id, store.next_id(), shared, 1)),
             SetRetained(RetainedRecord("default", "r", shared))]
    write(store, muts)
    store, items = restart(open_store)
    compact = list(open_store().recover(compact=True))
    assert of_type(compact, StoredEntry) == []
    assert {r.queue_id for r in of_type(compact, StoredEntryRows)} == {q1.id, q2.id}  # type: ignore[union-attr]
    assert expand(compact) == items
    assert len(of_type(items, StoredEntry)) == 30


def test_ids_keep_growing_across_restarts(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())
    ids = [store.next_id() for _ in range(3)]
    write(store, [PutObject(ObjectRecord("k", "v", "n"))])
    store = open_store()
    list(store.recover())
    assert store.next_id() > max(ids)
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_completions_on_the_loop_and_futures(open_store: OpenStore) -> None:
    store = open_store()
    list(store.recover())

    async def main() -> list[StorageError | None]:
        outcomes: list[StorageError | None] = []
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def on_commit(error: StorageError | None) -> None:
            # Called on the submitting loop's thread: the core is not thread-safe.
            assert asyncio.get_running_loop() is loop
            outcomes.append(error)
            done.set_result(None)

        store.submit([PutObject(ObjectRecord("k", "v", "a"))], on_commit)
        await done
        await store.write([PutObject(ObjectRecord("k", "v", "b"))])
        return outcomes

    assert asyncio.run(main()) == [None]
    store.close()
    store.close()  # idempotent
    raised: list[BaseException] = []

    async def after_close() -> None:
        try:
            await store.write([PutObject(ObjectRecord("k", "v", "c"))])
        except StorageError as exc:
            raised.append(exc)

    asyncio.run(after_close())
    assert raised and "closed" in str(raised[0])
