"""Guaranteed messaging in warren.messaging: persistent publisher with receipts,
queue receivers (client and auto acknowledgement, FAILED / REJECTED outcomes,
exclusive and non-exclusive queues, pause/resume), the queue browser, the asyncio
variants, and other protocols: MQTT QoS 1 into a native queue. Waits are bounded
receives and receipts, never sleeps."""

from __future__ import annotations

import asyncio
import queue as std_queue
import socket
import threading
from typing import Any

import pytest

from warren.messaging import (
    AsyncMessagingService,
    IllegalArgumentError,
    IllegalStateError,
    InvalidDataTypeError,
    MissingResourcesCreationStrategy,
    Outcome,
    PublishReceipt,
    PubSubPlusClientError,
    Queue,
    RetryStrategy,
    Topic,
    TopicSubscription,
)

WAIT_MS = 10_000
CREATE = MissingResourcesCreationStrategy.CREATE_ON_START


def _receiver(svc: Any, queue: Queue, *topics: str, auto: bool = False,
              outcomes: tuple[Outcome, ...] = ()) -> Any:
    builder = svc.create_persistent_message_receiver_builder() \
        .with_missing_resources_creation_strategy(CREATE) \
        .with_subscriptions([TopicSubscription.of(t) for t in topics])
    if auto:
        builder = builder.with_message_auto_acknowledgement()
    if outcomes:
        builder = builder.with_required_message_outcome_support(*outcomes)
    receiver = builder.build(queue)
    receiver.start()
    return receiver


def _take(receiver: Any, count: int) -> list[str]:
    """Receive and acknowledge ``count`` messages; their payloads."""
    got: list[str] = []
    for _ in range(count):
        m = receiver.receive_message(WAIT_MS)
        assert m is not None, f"only {got} arrived"
        got.append(m.get_payload_as_string())
        receiver.ack(m)
    return got


def _publisher(svc: Any) -> Any:
    publisher = svc.create_persistent_message_publisher_builder().build()
    publisher.start()
    return publisher


def test_publish_to_queue_with_client_ack(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    q = Queue.durable_exclusive_queue(f"{uid}-orders")
    receiver = _receiver(svc, q, f"{uid}/orders/>")
    publisher = _publisher(svc)
    for i in range(3):
        publisher.publish_await_acknowledgement(f"o{i}", Topic.of(f"{uid}/orders/{i}"), WAIT_MS)
    got = []
    for _ in range(3):
        m = receiver.receive_message(WAIT_MS)
        assert m is not None
        got.append(m.get_payload_as_string())
        receiver.ack(m)
    assert got == ["o0", "o1", "o2"]
    assert receiver.receive_message(0) is None
    receiver.terminate()
    # Everything was acknowledged: a new receiver of the queue gets nothing.
    again = _receiver(svc, q)
    publisher.publish_await_acknowledgement("marker", Topic.of(f"{uid}/orders/m"), WAIT_MS)
    m = again.receive_message(WAIT_MS)
    assert m is not None and m.get_payload_as_string() == "marker"


def test_receipts_carry_message_context_and_persisted_flag(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    receipts: std_queue.Queue[PublishReceipt] = std_queue.Queue()

    class Listener:
        def on_publish_receipt(self, receipt: PublishReceipt) -> None:
            receipts.put(receipt)

    publisher = _publisher(svc)
    publisher.set_message_publish_receipt_listener(Listener())
    message = svc.message_builder().build("hello")
    publisher.publish(message, Topic.of(f"{uid}/r"), user_context={"n": 1})
    publisher.publish("denied", Topic.of("$SYS/nope"), user_context="ctx-2")
    first = receipts.get(timeout=10)
    second = receipts.get(timeout=10)
    assert first.user_context == {"n": 1} and first.is_persisted and first.exception is None
    assert first.message is message
    assert second.user_context == "ctx-2" and not second.is_persisted
    assert isinstance(second.exception, PubSubPlusClientError)
    with pytest.raises(PubSubPlusClientError):
        publisher.publish_await_acknowledgement("x", Topic.of("$SYS/nope"), WAIT_MS)


def test_failed_is_redelivered_and_rejected_goes_to_the_dmq(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    dmq = _receiver(svc, Queue.durable_non_exclusive_queue("#DEAD_MSG_QUEUE"))
    receiver = _receiver(svc, Queue.durable_exclusive_queue(f"{uid}-work"), f"{uid}/work",
                         outcomes=(Outcome.FAILED, Outcome.REJECTED))
    publisher = _publisher(svc)
    publisher.publish_await_acknowledgement("job", Topic.of(f"{uid}/work"), WAIT_MS)
    m = receiver.receive_message(WAIT_MS)
    assert m is not None
    receiver.settle(m, Outcome.FAILED)
    again = receiver.receive_message(WAIT_MS)
    assert again is not None and again.get_payload_as_string() == "job"
    assert not m.is_redelivered() and again.is_redelivered()
    receiver.settle(again, Outcome.REJECTED)
    while True:
        dead = dmq.receive_message(WAIT_MS)
        assert dead is not None, "nothing reached the dead-message queue"
        dmq.ack(dead)
        if dead.get_destination_name() == f"{uid}/work":
            break
    assert dead.get_payload_as_string() == "job"


def _dead_message(dmq: Any, topic: str) -> Any:
    """The next message of ``topic`` in the shared dead-message queue (others'
    are acknowledged and skipped)."""
    while True:
        dead = dmq.receive_message(WAIT_MS)
        assert dead is not None, "nothing reached the dead-message queue"
        dmq.ack(dead)
        if dead.get_destination_name() == topic:
            return dead


def _limited_receiver(svc: Any, queue: Queue, topic: str, max_redelivery: int) -> Any:
    receiver = svc.create_persistent_message_receiver_builder() \
        .with_missing_resources_creation_strategy(CREATE) \
        .with_subscriptions([TopicSubscription.of(topic)]) \
        .with_required_message_outcome_support(Outcome.FAILED) \
        .with_max_redelivery(max_redelivery) \
        .build(queue)
    receiver.start()
    return receiver


def _settle_failed(receiver: Any, times: int) -> list[bool]:
    """Receive and settle FAILED ``times`` times; the redelivered flags seen."""
    flags = []
    for _ in range(times):
        m = receiver.receive_message(WAIT_MS)
        assert m is not None, f"delivery {len(flags) + 1} of {times} did not come"
        assert m.get_payload_as_string() == "poison"
        flags.append(m.is_redelivered())
        receiver.settle(m, Outcome.FAILED)
    return flags


def test_max_redelivery_moves_a_failing_message_to_the_dmq(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    dmq = _receiver(svc, Queue.durable_non_exclusive_queue("#DEAD_MSG_QUEUE"))
    receiver = _limited_receiver(svc, Queue.durable_exclusive_queue(f"{uid}-limited"),
                                 f"{uid}/work", 2)
    publisher = _publisher(svc)
    publisher.publish_await_acknowledgement("poison", Topic.of(f"{uid}/work"), WAIT_MS)
    # One delivery and two redeliveries, each settled FAILED: then the DMQ has it.
    assert _settle_failed(receiver, 3) == [False, True, True]
    dead = _dead_message(dmq, f"{uid}/work")
    assert dead.get_payload_as_string() == "poison" and not dead.is_redelivered()
    # Not redelivered a third time: the next message is the one published after it.
    publisher.publish_await_acknowledgement("next", Topic.of(f"{uid}/work"), WAIT_MS)
    m = receiver.receive_message(WAIT_MS)
    assert m is not None and m.get_payload_as_string() == "next" and not m.is_redelivered()
    receiver.ack(m)


def test_max_redelivery_from_properties_and_checked(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    builder = svc.create_persistent_message_receiver_builder()
    with pytest.raises(IllegalArgumentError):
        builder.with_max_redelivery(-1)
    with pytest.raises(InvalidDataTypeError):
        builder.with_max_redelivery("3")
    dmq = _receiver(svc, Queue.durable_non_exclusive_queue("#DEAD_MSG_QUEUE"))
    receiver = builder.from_properties({
        "warren.messaging.receiver.persistent.max-redelivery": 0,
    }).with_missing_resources_creation_strategy(CREATE) \
        .with_subscriptions([TopicSubscription.of(f"{uid}/zero")]) \
        .with_required_message_outcome_support(Outcome.FAILED) \
        .build(Queue.non_durable_exclusive_queue())
    receiver.start()
    _publisher(svc).publish_await_acknowledgement("poison", Topic.of(f"{uid}/zero"), WAIT_MS)
    assert _settle_failed(receiver, 1) == [False]  # 0: never redelivered
    assert _dead_message(dmq, f"{uid}/zero").get_payload_as_string() == "poison"


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_redelivery_count_survives_a_restart(make_broker, service, uid: str, crash: bool) -> None:  # type: ignore[no-untyped-def]
    broker = make_broker()
    svc = service(target=broker, reconnect=RetryStrategy.never_retry())
    topic = f"{uid}/durable"
    queue = Queue.durable_exclusive_queue(f"{uid}-durable")
    _receiver(svc, Queue.durable_non_exclusive_queue("#DEAD_MSG_QUEUE")).terminate()
    _receiver(svc, Queue.durable_exclusive_queue(f"{uid}-barrier"), f"{uid}/barrier").terminate()
    receiver = _limited_receiver(svc, queue, topic, 3)
    publisher = _publisher(svc)
    publisher.publish_await_acknowledgement("poison", Topic.of(topic), WAIT_MS)
    assert _settle_failed(receiver, 1) == [False]
    # Redelivered (and held by the receiver, unsettled) when the broker stops. A
    # message stored in a durable queue is acknowledged after its commit, and so
    # after the commit of the count journalled before it.
    publisher.publish_await_acknowledgement("barrier", Topic.of(f"{uid}/barrier"), WAIT_MS)
    restarted = make_broker.launcher.restart(broker, crash=crash)
    svc.disconnect()

    after = service(target=restarted)
    dmq = _receiver(after, Queue.durable_non_exclusive_queue("#DEAD_MSG_QUEUE"))
    receiver = after.create_persistent_message_receiver_builder() \
        .with_required_message_outcome_support(Outcome.FAILED).build(queue)
    receiver.start()
    # Returns counted so far: the FAILED settlement, and (graceful stop only) the
    # delivery the receiver held. A limit of 3 means 4 deliveries in all.
    counted = 1 if crash else 2
    left = 3 + 1 - counted
    assert _settle_failed(receiver, left) == [True] * left
    assert _dead_message(dmq, topic).get_payload_as_string() == "poison"


def test_outcomes_must_be_asked_for(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    receiver = _receiver(svc, Queue.durable_exclusive_queue(f"{uid}-plain"), f"{uid}/plain")
    _publisher(svc).publish_await_acknowledgement("x", Topic.of(f"{uid}/plain"), WAIT_MS)
    m = receiver.receive_message(WAIT_MS)
    assert m is not None
    with pytest.raises(IllegalStateError):
        receiver.settle(m, Outcome.REJECTED)
    receiver.ack(m)


def test_unsettled_messages_are_redelivered_to_another_receiver(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = Queue.durable_non_exclusive_queue(f"{uid}-handover")
    first_svc = service()
    first = _receiver(first_svc, q, f"{uid}/h")
    _publisher(first_svc).publish_await_acknowledgement("keep", Topic.of(f"{uid}/h"), WAIT_MS)
    m = first.receive_message(WAIT_MS)
    assert m is not None
    second = _receiver(service(), q)
    first_svc.disconnect()  # never acknowledged: the broker gives it to the other receiver
    again = second.receive_message(WAIT_MS)
    assert again is not None and again.get_payload_as_string() == "keep"
    second.ack(again)


def test_exclusive_queue_second_receiver_takes_over(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = Queue.durable_exclusive_queue(f"{uid}-excl")
    first = _receiver(service(), q, f"{uid}/x")
    second = _receiver(service(), q)  # standing by
    publisher = _publisher(service())
    publisher.publish_await_acknowledgement("a", Topic.of(f"{uid}/x"), WAIT_MS)
    m = first.receive_message(WAIT_MS)
    assert m is not None and m.get_payload_as_string() == "a"
    first.ack(m)
    first.terminate()
    publisher.publish_await_acknowledgement("b", Topic.of(f"{uid}/x"), WAIT_MS)
    m = second.receive_message(WAIT_MS)
    assert m is not None and m.get_payload_as_string() == "b"
    second.ack(m)


def test_non_exclusive_queue_shares_messages(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    q = Queue.durable_non_exclusive_queue(f"{uid}-shared")
    a = _receiver(service(), q, f"{uid}/s", auto=True)
    b = _receiver(service(), q, auto=True)
    publisher = _publisher(service())
    for i in range(4):
        publisher.publish_await_acknowledgement(str(i), Topic.of(f"{uid}/s"), WAIT_MS)
    got = []
    for r in (a, b, a, b):
        m = r.receive_message(WAIT_MS)
        assert m is not None
        got.append(m.get_payload_as_string())
    assert sorted(got) == ["0", "1", "2", "3"]


def test_missing_queue_without_creation_fails(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    receiver = service().create_persistent_message_receiver_builder().build(
        Queue.durable_exclusive_queue(f"{uid}-absent"))
    with pytest.raises(PubSubPlusClientError):
        receiver.start()


def test_receive_async_auto_ack_and_pause_resume(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    receiver = _receiver(svc, Queue.non_durable_exclusive_queue(), f"{uid}/async", auto=True)
    got: std_queue.Queue[str] = std_queue.Queue()
    receiver.receive_async(lambda m: got.put(m.get_payload_as_string()))
    publisher = _publisher(svc)
    publisher.publish_await_acknowledgement("a", Topic.of(f"{uid}/async"), WAIT_MS)
    assert got.get(timeout=10) == "a"
    receiver.pause()
    publisher.publish_await_acknowledgement("b", Topic.of(f"{uid}/async"), WAIT_MS)
    assert got.empty()
    receiver.resume()
    assert got.get(timeout=10) == "b"


def test_browser_sees_messages_without_taking_them(service, uid: str) -> None:  # type: ignore[no-untyped-def]
    svc = service()
    q = Queue.durable_exclusive_queue(f"{uid}-browse")
    _receiver(svc, q, f"{uid}/b").terminate()  # creates the queue and its subscription
    publisher = _publisher(svc)
    for p in ("1", "2"):
        publisher.publish_await_acknowledgement(p, Topic.of(f"{uid}/b"), WAIT_MS)
    browser = svc.create_message_queue_browser_builder().build(q)
    browser.start()
    first = browser.receive_message(WAIT_MS)
    second = browser.receive_message(WAIT_MS)
    assert first is not None and second is not None
    assert [first.get_payload_as_string(), second.get_payload_as_string()] == ["1", "2"]
    browser.remove(first)
    browser.terminate()
    receiver = _receiver(svc, q)
    m = receiver.receive_message(WAIT_MS)
    assert m is not None and m.get_payload_as_string() == "2"


def test_mqtt_qos1_publish_reaches_a_queue_receiver(service, peers, uid: str) -> None:  # type: ignore[no-untyped-def]
    receiver = _receiver(service(), Queue.durable_exclusive_queue(f"{uid}-mqtt"),
                         f"{uid}/sensors/>")
    mqtt = peers.paho()
    assert mqtt.publish(f"{uid}/sensors/t1", b"21.5", qos=1) == 0
    m = receiver.receive_message(WAIT_MS)
    assert m is not None and m.get_payload_as_string() == "21.5"
    receiver.ack(m)


def test_async_variants(props, uid: str) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        async with AsyncMessagingService.builder().from_properties(props).build() as svc:
            receiver = await svc.create_persistent_message_receiver_builder() \
                .with_missing_resources_creation_strategy(CREATE) \
                .with_subscriptions([TopicSubscription.of(f"{uid}/aq")]) \
                .with_required_message_outcome_support(Outcome.FAILED) \
                .build(Queue.non_durable_exclusive_queue(f"{uid}-aq")).start()
            publisher = await svc.create_persistent_message_publisher_builder().build().start()
            await publisher.publish_await_acknowledgement("one", Topic.of(f"{uid}/aq"), WAIT_MS)
            m = await receiver.receive_message(WAIT_MS)
            assert m is not None and m.get_payload_as_string() == "one"
            receiver.settle(m, Outcome.FAILED)
            m = await receiver.receive_message(WAIT_MS)
            assert m is not None and m.get_payload_as_string() == "one"
            receiver.ack(m)
            assert await receiver.receive_message(0) is None
            await receiver.terminate()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_queue_receiver_binds_again_after_reconnecting(make_broker, service, uid: str) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    extra = (
        '[[listener]]\nprotocol = "mqtt"\nhost = "127.0.0.1"\nport = 0\n'
        f'[[listener]]\nprotocol = "native"\nhost = "127.0.0.1"\nport = {port}\n'
    )
    broker = make_broker(extra)
    svc = service(target=broker, reconnect=RetryStrategy.forever_retry(20))
    reconnected = threading.Event()
    svc.add_reconnection_listener(lambda event: reconnected.set())
    receiver = _receiver(svc, Queue.durable_exclusive_queue(f"{uid}-rebind"), f"{uid}/rb")
    publisher = _publisher(svc)
    publisher.publish_await_acknowledgement("before", Topic.of(f"{uid}/rb"), WAIT_MS)
    before = receiver.receive_message(WAIT_MS)
    assert before is not None and before.get_payload_as_string() == "before"
    assert broker.stop() == 0
    make_broker.launcher.start(extra, workdir=broker.workdir)  # same port and data dir
    assert reconnected.wait(10)
    receiver.ack(before)  # from the old connection: dropped, not misapplied
    # The durable queue survived the restart with "before" unacknowledged: it comes
    # again on the flow that was bound again, ahead of anything newer.
    again = receiver.receive_message(WAIT_MS)
    assert again is not None and again.get_payload_as_string() == "before"
    receiver.ack(again)
    publisher.publish_await_acknowledgement("after", Topic.of(f"{uid}/rb"), WAIT_MS)
    after = receiver.receive_message(WAIT_MS)
    assert after is not None and after.get_payload_as_string() == "after"
    receiver.ack(after)


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_a_created_queue_keeps_its_subscription_across_a_restart(  # type: ignore[no-untyped-def]
    make_broker, service, uid: str, crash: bool
) -> None:
    """A durable queue created by a receiver (missing-resources creation) with a topic
    subscription still attracts that topic after a restart, before any receiver binds."""
    broker = make_broker()
    svc = service(target=broker, reconnect=RetryStrategy.never_retry())
    queue = Queue.durable_exclusive_queue(f"{uid}-kept")
    _receiver(svc, queue, f"{uid}/kept/>").terminate()  # native syntax: > is many levels
    # Acknowledged once stored in the queue: after the subscription's commit.
    _publisher(svc).publish_await_acknowledgement("before", Topic.of(f"{uid}/kept/1"), WAIT_MS)
    restarted = make_broker.launcher.restart(broker, crash=crash)
    svc.disconnect()

    after = service(target=restarted)
    _publisher(after).publish_await_acknowledgement("after", Topic.of(f"{uid}/kept/2"), WAIT_MS)
    receiver = after.create_persistent_message_receiver_builder().build(queue)  # no topics
    receiver.start()
    assert _take(receiver, 2) == ["before", "after"]


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "kill-9"])
def test_a_message_a_browser_removed_stays_removed_after_a_restart(  # type: ignore[no-untyped-def]
    make_broker, service, uid: str, crash: bool
) -> None:
    broker = make_broker()
    svc = service(target=broker, reconnect=RetryStrategy.never_retry())
    q = Queue.durable_exclusive_queue(f"{uid}-taken")
    _receiver(svc, q, f"{uid}/t").terminate()
    publisher = _publisher(svc)
    for p in ("1", "2"):
        publisher.publish_await_acknowledgement(p, Topic.of(f"{uid}/t"), WAIT_MS)
    browser = svc.create_message_queue_browser_builder().build(q)
    browser.start()
    first = browser.receive_message(WAIT_MS)
    assert first is not None and first.get_payload_as_string() == "1"
    browser.remove(first)
    # Stored after the removal (one connection, in order), acknowledged after its
    # commit, so after the removal's: a barrier for the kill -9 case.
    publisher.publish_await_acknowledgement("3", Topic.of(f"{uid}/t"), WAIT_MS)
    restarted = make_broker.launcher.restart(broker, crash=crash)
    svc.disconnect()

    receiver = _receiver(service(target=restarted), q)
    assert _take(receiver, 2) == ["2", "3"]
