"""Crash test for native guaranteed messaging: sustained persistent publishing
(warren.messaging, receipts) into a durable queue while the broker is SIGKILLed.
After the restart every message whose receipt said "persisted" is received from
the queue; duplicates are allowed (and counted), losses are not.

Synchronised on receipts and bounded receives, never on sleeps."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from warren.messaging import (
    MessagingService,
    MissingResourcesCreationStrategy,
    PublishReceipt,
    Queue,
    Topic,
    TopicSubscription,
)

IN_FLIGHT = 200  # at most this many publishes without a receipt: sustained, bounded
ACKED_BEFORE_KILL = 2000


def _service(broker: Any) -> MessagingService:
    svc = MessagingService.builder().from_properties({
        "solace.messaging.transport.host": f"tcp://{broker.host}:{broker.native_port}",
        "solace.messaging.service.vpn-name": "default",
        "solace.messaging.authentication.scheme.basic.username": "tester",
        "solace.messaging.authentication.scheme.basic.password": "secret",
    }).build()
    svc.connect()
    return svc


class Receipts:
    """Receipt listener: which payloads the broker acknowledged, waitable."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.persisted: set[bytes] = set()
        self.settled = 0

    def on_publish_receipt(self, receipt: PublishReceipt) -> None:
        with self.cond:
            self.settled += 1
            if receipt.is_persisted:
                self.persisted.add(receipt.user_context)
            self.cond.notify_all()


def test_kill_9_during_persistent_publishing_loses_no_acknowledged_message(
    make_broker: Any, uid: str
) -> None:
    b = make_broker()
    queue = Queue.durable_exclusive_queue(f"{uid}-crash")
    topic = f"{uid}/crash"
    svc = _service(b)
    after: MessagingService | None = None
    stop = threading.Event()
    receipts = Receipts()
    try:
        # Create the durable queue with its topic subscription, then leave it
        # without a consumer: each message exists only in the queue.
        receiver = svc.create_persistent_message_receiver_builder() \
            .with_missing_resources_creation_strategy(
                MissingResourcesCreationStrategy.CREATE_ON_START) \
            .with_subscriptions([TopicSubscription.of(topic)]).build(queue)
        receiver.start()
        receiver.terminate()

        publisher = svc.create_persistent_message_publisher_builder().build()
        publisher.set_message_publish_receipt_listener(receipts)
        publisher.start()
        sent = 0

        def publish() -> None:
            nonlocal sent
            for i in range(1_000_000):
                with receipts.cond:
                    while sent - receipts.settled >= IN_FLIGHT and not stop.is_set():
                        receipts.cond.wait(1.0)
                if stop.is_set():
                    return
                payload = str(i).encode()
                try:
                    publisher.publish(payload, Topic.of(topic), user_context=payload)
                except Exception:
                    return  # the broker is gone
                sent += 1

        thread = threading.Thread(target=publish, name="persistent-publisher", daemon=True)
        thread.start()
        with receipts.cond:
            assert receipts.cond.wait_for(
                lambda: len(receipts.persisted) >= ACKED_BEFORE_KILL, 60
            ), f"only {len(receipts.persisted)} receipts"
        b2 = make_broker.launcher.restart(b, crash=True)
        stop.set()
        with receipts.cond:
            receipts.cond.notify_all()
        thread.join(30)
        assert not thread.is_alive()
        with receipts.cond:
            acknowledged = set(receipts.persisted)
        assert len(acknowledged) >= ACKED_BEFORE_KILL

        after = _service(b2)
        back = after.create_persistent_message_receiver_builder().build(queue)
        back.start()
        received: list[bytes] = []
        deadline = time.monotonic() + 60
        while acknowledged - set(received) and time.monotonic() < deadline:
            m = back.receive_message(10_000)
            if m is None:
                break  # the queue has nothing more for us
            received.append(bytes(m.get_payload_as_bytes()))
            back.ack(m)
        lost = acknowledged - set(received)
        duplicates = len(received) - len(set(received))
        print(f"acknowledged {len(acknowledged)}, received {len(received)} "
              f"({duplicates} duplicates), lost {len(lost)}")
        assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:10]}"
    finally:
        stop.set()
        with receipts.cond:
            receipts.cond.notify_all()
        for s in (svc, after):
            if s is not None:
                with contextlib.suppress(Exception):
                    s.disconnect()
