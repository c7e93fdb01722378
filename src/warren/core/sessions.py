"""Sessions: what a client has asked for, and what is owed to it.

A :class:`Session` outlives its network connection when the client asked for a
persistent session. It holds the client's subscriptions and the deliveries owed to
it: ``inflight`` (sent, awaiting acknowledgement, in send order) and ``pending``
(not yet sent: the client is offline, its receive window is full, or its connection
cannot take more bytes right now).

The session is protocol-neutral. Whatever connection is attached implements
:class:`DeliverySink` and turns deliveries into its own protocol's packets; the
session only counts and keeps order. Packet identifiers are a session-wide counter
because MQTT requires them unique per session direction [MQTT-2.2.1-3]; other
protocols use them as delivery tags.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from warren.core.message import Message
from warren.core.persistence import stored_message
from warren.core.topics import Filter
from warren.store.records import (
    DeleteSessionDelivery,
    PutSessionDelivery,
    SessionDelivery,
    UpdateSessionDelivery,
)

if TYPE_CHECKING:
    from warren.core.vpn import Vpn

__all__ = [
    "Delivery",
    "DeliverySink",
    "Session",
    "SharedGroup",
    "Subscriber",
    "Subscription",
]

# Outbound QoS 2 states (MQTT-4.3.3): PUBLISH sent awaiting PUBREC, then PUBREL sent
# awaiting PUBCOMP.
AWAIT_ACK = 1
AWAIT_COMP = 2


class Subscriber(Protocol):
    """What a :class:`Subscription` delivers to: a :class:`Session`, or a queue
    (:class:`warren.core.queues.Queue`, whose topic subscriptions are AMQP bindings)."""

    subscriptions: dict[str, Subscription]
    username: str | None
    sink: DeliverySink | None

    def deliver(
        self, message: Message, qos: int, retain: bool, subscription_ids: tuple[int, ...] = ()
    ) -> None:
        """Hand one matching message over."""
        ...


@dataclass(slots=True, eq=False)
class Subscription:
    """One subscription of one session. Hashes by identity (it is a trie value)."""

    session: Subscriber
    key: str  # the filter as the client wrote it, share prefix included
    filter: Filter
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None
    share_group: str | None = None
    filtered: bool = False  # ACL must approve each message before delivery


@dataclass(slots=True, eq=False)
class SharedGroup:
    """Members of ``$share/<name>/<filter>``: each message goes to one of them.

    The group, not its members, sits in the subscription trie, so a message costs
    one trie entry however many members the group has.
    """

    name: str
    filter_text: str
    filter: Filter
    members: list[Subscription] = field(default_factory=list)
    next_index: int = 0

    def choose(self) -> Subscription | None:
        """Round robin over members, preferring connected ones."""
        members = self.members
        n = len(members)
        if n == 0:
            return None
        start = self.next_index % n
        for step in range(n):
            sub = members[(start + step) % n]
            if sub.session.sink is not None:
                self.next_index = start + step + 1
                return sub
        # Nobody is connected: queue on the next member's session.
        self.next_index = start + 1
        return members[start]


@dataclass(slots=True, eq=False)
class Delivery:
    """A message owed to one session, with what that session's subscription granted."""

    message: Message
    qos: int
    retain: bool
    subscription_ids: tuple[int, ...] = ()
    packet_id: int = 0
    state: int = 0  # 0 not sent; AWAIT_ACK; AWAIT_COMP
    store_id: int = 0  # its id in the store; 0 while not stored


class DeliverySink(Protocol):
    """What a connection offers its session: send a delivery now."""

    def can_send(self) -> bool:
        """False while the connection's output is backed up (slow consumer)."""
        ...

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        packet_id: int,
        dup: bool,
    ) -> None:
        """Write one message to the client now (packet_id is 0 for QoS 0)."""
        ...

    def send_release(self, packet_id: int) -> None:
        """Resend the second half of an outbound QoS 2 exchange (MQTT PUBREL)."""
        ...

    def queue_full(self) -> None:
        """The session's queue is full and a message was dropped (slow consumer)."""
        ...


class Session:
    """A client's session in one VPN (see module docstring)."""

    __slots__ = (
        "_next_packet_id",
        "client_id",
        "created",
        "disconnected_at",
        "dropped",
        "expiry_interval",
        "incoming_qos2",
        "inflight",
        "max_queued",
        "pending",
        "persistent",
        "protocol_state",
        "queue_qos0",
        "receive_maximum",
        "sink",
        "stalled",
        "store_id",
        "subscriptions",
        "username",
        "vpn",
        "waiters",
    )

    def __init__(
        self,
        client_id: str,
        vpn: Vpn,
        *,
        username: str | None = None,
        persistent: bool = False,
        expiry_interval: int = 0,
        max_queued: int = 1000,
        queue_qos0: bool = False,
    ) -> None:
        self.client_id = client_id
        self.vpn = vpn
        self.username = username
        self.subscriptions: dict[str, Subscription] = {}
        self.sink: DeliverySink | None = None
        self.persistent = persistent
        self.expiry_interval = expiry_interval
        self.inflight: dict[int, Delivery] = {}  # insertion order = send order
        self.pending: deque[Delivery] = deque()
        self.receive_maximum = 65535
        self.max_queued = max_queued
        self.queue_qos0 = queue_qos0
        self.incoming_qos2: set[int] = set()
        self._next_packet_id = 0
        self.dropped = 0
        self.created = time.monotonic()
        self.disconnected_at: float | None = None
        self.protocol_state: object = None
        # Publishers paused because this session's queue is filling (backpressure):
        # each is called once the queue has drained, or when the session goes away.
        self.waiters: list[Callable[[], None]] = []
        # Set when a pause expired without this session draining anything: a stuck
        # client must not throttle publishers; its messages are dropped instead.
        self.stalled = False
        # The session's id in the store, 0 unless it is persistent and the broker
        # has a store: then QoS >= 1 deliveries owed to it are journalled
        # (``vpn.journal``) at each change (STORE points below).
        self.store_id = 0

    def __repr__(self) -> str:
        return f"<Session {self.client_id!r} vpn={self.vpn.name!r} subs={len(self.subscriptions)}>"

    # --- delivery -------------------------------------------------------------

    def deliver(
        self, message: Message, qos: int, retain: bool, subscription_ids: tuple[int, ...] = ()
    ) -> None:
        """Hand one message to this session: send now, or queue it, or drop it."""
        sink = self.sink
        if qos == 0:
            if sink is not None and not self.pending and sink.can_send():
                sink.send_publish(message, 0, retain, subscription_ids, 0, False)
            elif sink is not None or self.queue_qos0:
                self._enqueue(Delivery(message, 0, retain, subscription_ids))
            # Offline, non-persistent QoS 0: nothing is owed [MQTT-3.1.2-4 note].
            return
        delivery = Delivery(message, qos, retain, subscription_ids)
        if (
            sink is not None
            and not self.pending
            and len(self.inflight) < self.receive_maximum
            and sink.can_send()
        ):
            self._send_new(delivery, sink)
        else:
            self._enqueue(delivery)

    def _enqueue(self, delivery: Delivery) -> None:
        pending = len(self.pending)
        if (
            pending >= self.max_queued >> 1
            and self.sink is not None
            and not self.stalled
        ):
            # Half full: ask the router's caller to slow the publisher down.
            self.vpn.router.congested = self
        if pending >= self.max_queued:
            # Bounded queue: the newest message is refused, never memory without end.
            self.dropped += 1
            self.vpn.stats.dropped += 1
            if self.sink is not None:
                self.sink.queue_full()
            return
        self.pending.append(delivery)
        if self.store_id and delivery.qos:
            self._store_delivery(delivery)  # STORE: put (owed, not sent)

    def _send_new(self, delivery: Delivery, sink: DeliverySink) -> None:
        packet_id = self.next_packet_id()
        delivery.packet_id = packet_id
        delivery.state = AWAIT_ACK
        self.inflight[packet_id] = delivery
        if self.store_id:
            self._store_delivery(delivery)  # STORE: put or update (sent)
        sink.send_publish(
            delivery.message, delivery.qos, delivery.retain, delivery.subscription_ids,
            packet_id, False,
        )

    def next_packet_id(self) -> int:
        """A packet id in 1..65535 not currently in flight."""
        inflight = self.inflight
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in inflight:
                return self._next_packet_id
        raise RuntimeError("no free packet identifier: 65535 messages in flight")

    def drain(self) -> None:
        """Send pending deliveries while the window and the connection allow."""
        sink = self.sink
        if sink is None:
            return
        pending = self.pending
        now = time.monotonic()
        while pending and sink.can_send():
            delivery = pending[0]
            if delivery.message.expires_at is not None and delivery.message.expired(now):
                # [MQTT-3.3.2-5] an expired message is not delivered.
                pending.popleft()
                if delivery.store_id:
                    self._unstore_delivery(delivery)  # STORE: delete (expired)
                continue
            if delivery.qos == 0:
                pending.popleft()
                sink.send_publish(
                    delivery.message, 0, delivery.retain, delivery.subscription_ids, 0, False
                )
                continue
            if len(self.inflight) >= self.receive_maximum:
                break
            pending.popleft()
            self._send_new(delivery, sink)
        if self.waiters and len(pending) <= self.max_queued >> 2:
            self.stalled = False
            self.wake_waiters()

    def add_waiter(self, resume: Callable[[], None]) -> None:
        """Call ``resume`` once this session's queue has drained (backpressure)."""
        if resume not in self.waiters:
            self.waiters.append(resume)

    def remove_waiter(self, resume: Callable[[], None]) -> None:
        if resume in self.waiters:
            self.waiters.remove(resume)

    def wake_waiters(self) -> None:
        waiters, self.waiters = self.waiters, []
        for resume in waiters:
            resume()

    def acknowledge(self, packet_id: int) -> bool:
        """PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived: the delivery is complete."""
        delivery = self.inflight.pop(packet_id, None)
        if delivery is None:
            return False
        if delivery.store_id:
            self._unstore_delivery(delivery)  # STORE: delete (acknowledged)
        if self.pending:
            self.drain()
        return True

    def received(self, packet_id: int) -> bool:
        """PUBREC arrived for an outbound QoS 2 delivery; PUBREL follows."""
        delivery = self.inflight.get(packet_id)
        if delivery is None or delivery.qos != 2:
            return False
        delivery.state = AWAIT_COMP
        if self.store_id and delivery.store_id:
            self._store_delivery(delivery)  # STORE: update (PUBREL sent)
        return True

    # --- STORE points ---------------------------------------------------------------

    def _store_delivery(self, delivery: Delivery) -> None:
        """Journal a new delivery, or the new state of a stored one."""
        journal = self.vpn.journal
        assert journal is not None  # store_id is only set when there is a store
        if delivery.store_id:
            journal.append(UpdateSessionDelivery(
                self.store_id, delivery.store_id, delivery.packet_id, delivery.state
            ))
            return
        delivery.store_id = journal.store.next_id()
        journal.append(PutSessionDelivery(SessionDelivery(
            self.store_id,
            delivery.store_id,
            stored_message(delivery.message, journal),
            delivery.qos,
            delivery.retain,
            delivery.subscription_ids,
            delivery.packet_id,
            delivery.state,
        )))

    def forget_store(self) -> None:
        """The store no longer holds this session (it stopped being persistent)."""
        self.store_id = 0
        for delivery in self.inflight.values():
            delivery.store_id = 0
        for delivery in self.pending:
            delivery.store_id = 0

    def _unstore_delivery(self, delivery: Delivery) -> None:
        journal = self.vpn.journal
        if journal is not None and self.store_id:
            stored = delivery.message.stored
            assert stored is not None  # set when the delivery was stored / recovered
            journal.append(
                DeleteSessionDelivery(self.store_id, delivery.store_id, stored.id)
            )

    def attach(self, sink: DeliverySink) -> None:
        """A connection takes this session: resend what is in flight, then drain.

        [MQTT-4.4.0-1] on reconnect with a session, unacknowledged PUBLISH packets
        are resent with DUP set and PUBRELs are resent, in their original order.
        """
        self.sink = sink
        self.disconnected_at = None
        for delivery in list(self.inflight.values()):
            if delivery.state == AWAIT_COMP:
                sink.send_release(delivery.packet_id)
            else:
                sink.send_publish(
                    delivery.message, delivery.qos, delivery.retain,
                    delivery.subscription_ids, delivery.packet_id, True,
                )
        self.drain()

    def detach(self) -> None:
        """The connection is gone. QoS 0 owed to a non-persistent session is dropped."""
        self.sink = None
        self.disconnected_at = time.monotonic()
        self.stalled = False
        if self.waiters:
            self.wake_waiters()
        if not self.queue_qos0 and self.pending:
            self.pending = deque(d for d in self.pending if d.qos > 0)

    def discard_state(self) -> None:
        """Forget everything owed (clean start or expiry)."""
        if self.waiters:
            self.wake_waiters()
        self.inflight.clear()
        self.pending.clear()
        self.incoming_qos2.clear()

    def iter_subscriptions(self) -> Iterator[Subscription]:
        return iter(self.subscriptions.values())
