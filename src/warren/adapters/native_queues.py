"""Guaranteed messaging for native connections: persistent publish, queue flows.

docs/protocol.md, "Guaranteed messaging". One :class:`Guaranteed` per native
connection that was granted the ``guaranteed`` capability. It owns:

- persistent publishing: :meth:`Guaranteed.publish` routes the messages of a
  PUBLISH with ``id`` and :meth:`Guaranteed.acknowledge` answers them. That one
  method is where the answers go out. When a publish journalled something (a
  persistent message enqueued in a durable queue, or retained), its answer waits
  for that commit, like MQTT's PUBACK and AMQP's confirm; later answers queue
  behind it so they keep PUBLISH order. A store that refuses the write gets the
  message NACKed with SERVER_BUSY, never ACKed;
- flows (BIND/UNBIND): each is a :class:`~warren.core.queues.Consumer` of a core
  queue, whose sink is the flow. Deliveries get connection-wide delivery ids and
  stay unsettled until the client's ACK (accepted), NACK (failed: requeued, up to
  the queue's max redelivery, then to the dead-message queue) or NACK ``rj``
  (rejected: to the dead-message queue);
- the end: unsettled messages go back to their queues, the connection's
  non-durable queues are deleted.

Only the existing core queue API is used (warren.core.queues).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Final

import msgspec

from warren.adapters.amqp import queue_arguments
from warren.codecs.native import (
    ACCESS_EXCLUSIVE,
    Ack,
    Bind,
    ErrorCode,
    Nack,
    Unbind,
    encode_message,
)
from warren.codecs.native import Message as NativeMessage
from warren.core.acl import AclDecision
from warren.core.message import Message
from warren.core.queues import Consumer, Queue, QueueEntry, QueueError, QueueLimits
from warren.core.router import NotAuthorized
from warren.core.topics import InvalidTopic, parse_native_filter
from warren.store.errors import StorageError

if TYPE_CHECKING:
    from warren.adapters.native import NativeConnection

__all__ = ["DEAD_MESSAGE_QUEUE", "Guaranteed"]

log = logging.getLogger("warren.native")

DEAD_MESSAGE_QUEUE: Final = "#DEAD_MSG_QUEUE"
"""Where REJECTED messages go, if a queue of that name exists in the VPN."""

# Standby flows of exclusive queues, in BIND order: the first becomes the active
# consumer when the active one goes (Solace PubSub+ exclusive-queue semantics).
_STANDBY: weakref.WeakKeyDictionary[Queue, list[_Flow]] = weakref.WeakKeyDictionary()


@dataclass(slots=True, eq=False)
class _Flow:
    """One BIND: a consumer (or browser) of one queue."""

    guaranteed: Guaranteed
    subscription_id: int
    queue: Queue
    consumer: Consumer | None = None
    browse: bool = False
    started: bool = False  # the RESULT of the BIND went first
    unsettled: set[int] = field(default_factory=set)
    browsing: deque[QueueEntry] = field(default_factory=deque)  # a browser's snapshot

    # ConsumerSink
    def ready(self, consumer: Consumer) -> bool:
        return self.started and self.guaranteed.conn.can_send()

    def send(self, consumer: Consumer, entry: QueueEntry) -> None:
        self.guaranteed.deliver(self, entry)

    def cancelled(self, consumer: Consumer) -> None:
        # The queue was deleted: its messages are gone, so are our unsettled ids.
        g = self.guaranteed
        for delivery_id in self.unsettled:
            g.unsettled.pop(delivery_id, None)
        self.unsettled.clear()
        g.flows.pop(self.subscription_id, None)


class Guaranteed:
    """The guaranteed-messaging state of one native connection (module docstring)."""

    def __init__(self, conn: NativeConnection) -> None:
        self.conn = conn
        self.flows: dict[int, _Flow] = {}
        # delivery id -> (flow, entry)
        self.unsettled: dict[int, tuple[_Flow, QueueEntry]] = {}
        self._next_delivery = 0
        # Persistent-publish answers waiting for a store commit: while any is, later
        # ones queue behind it, so answers keep PUBLISH order.
        self._acks_waiting = 0

    # --- persistent publish -------------------------------------------------------

    def publish(
        self,
        first_id: int,
        messages: tuple[NativeMessage, ...],
        convert: Callable[[NativeMessage, float], Message],
    ) -> None:
        """Route persistent messages; each id is then ACKed or NACKed exactly once."""
        conn = self.conn
        session = conn.session
        assert session is not None
        router = conn.vpn.router
        registry = conn.vpn.queues
        journal = conn.vpn.journal
        now = time.monotonic()
        outcomes: list[tuple[int, int, str]] = []  # (id, code, text); code 0: stored
        journalled: set[int] = set()  # ids whose message the store must keep
        for offset, m in enumerate(messages):
            pid = first_id + offset
            topic = m.topic
            if "\0" in topic:
                outcomes.append((pid, ErrorCode.INVALID_TOPIC, "a topic must not contain U+0000"))
                continue
            try:
                if topic.startswith("$SYS"):
                    raise NotAuthorized(f"$SYS topics are written by the broker only: {topic!r}")
                if not router.acl.is_open:
                    router.check_publish(session.username, topic)
            except NotAuthorized as exc:
                outcomes.append((pid, ErrorCode.NOT_AUTHORIZED, str(exc)))
                continue
            message = convert(m, now)
            if message.qos < 1:
                message.qos = 1
            before = registry.rejections
            pending = len(journal.pending) if journal is not None else 0
            router.publish(message, session)
            if journal is not None and len(journal.pending) > pending:
                journalled.add(pid)
            if registry.rejections != before:
                outcomes.append((pid, ErrorCode.LIMIT_EXCEEDED, "a full queue refused it"))
            else:
                outcomes.append((pid, 0, ""))
        if journal is not None and (journalled or self._acks_waiting):
            # Answer only once the store has committed what these messages left
            # there (and, commit order being submission order, everything before).
            self._acks_waiting += 1
            journal.commit(partial(self._committed, outcomes, journalled))
            return
        self.acknowledge(outcomes)

    def _committed(
        self,
        outcomes: list[tuple[int, int, str]],
        journalled: set[int],
        error: StorageError | None,
    ) -> None:
        """The store committed (or refused) what a persistent PUBLISH left there."""
        self._acks_waiting -= 1
        if error is not None and journalled:
            # Never acknowledge what was not kept.
            log.warning("native client %r: %d persistent message(s) not acknowledged: %s",
                        self.conn.client_name, len(journalled), error)
            text = f"the broker could not store the message: {error}"
            outcomes = [
                (pid, ErrorCode.SERVER_BUSY, text) if pid in journalled and not code
                else (pid, code, reason)
                for pid, code, reason in outcomes
            ]
        self.acknowledge(outcomes)

    def acknowledge(self, outcomes: list[tuple[int, int, str]]) -> None:
        """Answer persistent publishes: ACK the stored ids, NACK the others.

        The one place publish receipts are sent; :meth:`publish` calls it after the
        store's commit when the messages were journalled.
        """
        conn = self.conn
        if conn.closing:
            return
        ack_ranges: list[tuple[int, int]] = []
        for pid, code, text in outcomes:
            if code:
                conn.send_event(Nack(((pid, pid),), code, text))
            elif ack_ranges and ack_ranges[-1][1] == pid - 1:
                ack_ranges[-1] = (ack_ranges[-1][0], pid)
            else:
                ack_ranges.append((pid, pid))
        if ack_ranges:
            conn.send_event(Ack(tuple(ack_ranges)))

    # --- flows --------------------------------------------------------------------

    def bind(self, event: Bind) -> tuple[int, str]:
        """Start a flow; the RESULT code and text."""
        conn = self.conn
        session = conn.session
        assert session is not None
        if event.subscription_id in self.flows:
            return ErrorCode.LIMIT_EXCEEDED, f"flow {event.subscription_id} is already bound"
        vpn = conn.vpn
        registry = vpn.queues
        router = vpn.router
        filters = []
        for text in event.topics:
            try:
                topic_filter = parse_native_filter(text)
            except InvalidTopic as exc:
                return ErrorCode.INVALID_FILTER, str(exc)
            decision = router.check_subscribe(session.username, topic_filter)
            if decision is AclDecision.DENY:
                return ErrorCode.NOT_AUTHORIZED, f"not authorized to subscribe to {text!r}"
            filters.append((text, topic_filter))
        queue = registry.get(event.queue)
        if queue is None:
            if not event.create:
                return ErrorCode.UNKNOWN_QUEUE, f"queue {event.queue!r} does not exist"
            # As Solace PubSub+ endpoints: dead messages (max redelivery exceeded)
            # go to the VPN's dead-message queue.
            limits = QueueLimits(
                max_redelivery=event.max_redelivery,
                dead_letter_queue=None if event.queue == DEAD_MESSAGE_QUEUE
                else DEAD_MESSAGE_QUEUE,
            )
            queue = registry.declare(
                event.queue,
                durable=event.durable,
                owner=None if event.durable else conn,
                limits=limits,
                arguments=queue_arguments(limits),  # for AMQP clients redeclaring it
                single_consumer=event.access == ACCESS_EXCLUSIVE,
            )
            log.debug("native client %r created queue %r (%s, %s, max redelivery %s)",
                      conn.client_name, queue.name,
                      "durable" if event.durable else "non-durable", event.access,
                      "unlimited" if event.max_redelivery is None else event.max_redelivery)
        elif queue.owner is not None and queue.owner is not conn:
            return ErrorCode.QUEUE_IN_USE, f"queue {queue.name!r} belongs to another connection"
        for text, topic_filter in filters:
            registry.subscribe(queue, text, topic_filter, "native")
        flow = _Flow(self, event.subscription_id, queue, browse=event.browse)
        if event.browse:
            self.flows[flow.subscription_id] = flow
            return 0, ""
        consumer = Consumer(
            f"native-{conn.client_name}-{event.subscription_id}",
            flow,
            exclusive=queue.single_consumer,
            owner=queue.owner if queue.owner is not None else conn,
        )
        flow.consumer = consumer
        self.flows[flow.subscription_id] = flow
        try:
            queue.add_consumer(consumer)
        except QueueError as exc:
            if exc.reason == QueueError.IN_USE and consumer.exclusive:
                # Another flow is active: this one stands by, in order.
                _STANDBY.setdefault(queue, []).append(flow)
                return 0, ""
            del self.flows[flow.subscription_id]
            return ErrorCode.QUEUE_IN_USE, str(exc)
        return 0, ""

    def start(self, subscription_id: int) -> None:
        """The BIND's RESULT is out: the flow's deliveries may follow."""
        flow = self.flows.get(subscription_id)
        if flow is None or flow.started:
            return
        flow.started = True
        if flow.consumer is not None:
            flow.queue.dispatch()
            return
        flow.browsing.extend(flow.queue.iter_ready())  # a browser: a snapshot of copies
        self._browse(flow)

    def _browse(self, flow: _Flow) -> None:
        """Send a browser's next copies, as far as the credit goes."""
        browsing = flow.browsing
        can_send = self.conn.can_send
        while browsing and can_send():
            self.deliver(flow, browsing.popleft())

    def unbind(self, event: Unbind) -> tuple[int, str]:
        flow = self.flows.get(event.subscription_id)
        if flow is None:
            return ErrorCode.UNKNOWN_SUBSCRIPTION, f"no flow {event.subscription_id}"
        self._end_flow(flow)
        return 0, ""

    def _end_flow(self, flow: _Flow) -> None:
        self.flows.pop(flow.subscription_id, None)
        queue = flow.queue
        consumer = flow.consumer
        standby = _STANDBY.get(queue)
        if standby is not None and flow in standby:
            standby.remove(flow)  # it never consumed
            return
        if consumer is not None:
            queue.remove_consumer(consumer)
        ids = sorted(flow.unsettled)
        flow.unsettled.clear()
        for delivery_id in ids:
            _, entry = self.unsettled.pop(delivery_id)
            if consumer is not None:
                queue.reject(entry, consumer, True, dispatch=False)
        if consumer is not None:
            _promote(queue)
            queue.dispatch()

    def deliver(self, flow: _Flow, entry: QueueEntry) -> None:
        """Send one queued message as a guaranteed DELIVER."""
        message = entry.message
        ttl_ms = None
        if message.expires_at is not None:
            ttl_ms = max(1, int((message.expires_at - time.monotonic()) * 1000))
        from warren.adapters.native import to_native

        native = to_native(message, False, ttl_ms)
        if native.qos < 1:
            native = _with_qos1(native)
        self._next_delivery += 1
        delivery_id = self._next_delivery
        self.unsettled[delivery_id] = (flow, entry)
        flow.unsettled.add(delivery_id)
        self.conn.send_guaranteed(
            flow.subscription_id, encode_message(native), delivery_id, entry.redelivered
        )

    def settle(self, event: Ack | Nack) -> None:
        """The client settled delivery ids: ACCEPTED, FAILED or REJECTED."""
        queues: set[Queue] = set()
        accepted = isinstance(event, Ack)
        reject = isinstance(event, Nack) and event.reject
        unsettled = self.unsettled
        for first, last in event.ranges:
            for delivery_id in _ids(first, last, unsettled):
                found = unsettled.pop(delivery_id, None)
                if found is None:
                    continue  # settled before, or never delivered: no effect
                flow, entry = found
                flow.unsettled.discard(delivery_id)
                queue = flow.queue
                consumer = flow.consumer
                if consumer is None:  # a browser: ACK takes the message, NACK leaves it
                    if accepted:
                        queue.remove_ready(entry)  # QueueBrowser.remove
                    continue
                queues.add(queue)
                if accepted:
                    queue.ack(entry, consumer, dispatch=False)
                elif reject:
                    queue.ack(entry, consumer, dispatch=False)
                    dmq = self.conn.vpn.queues.get(DEAD_MESSAGE_QUEUE)
                    if dmq is not None and dmq is not queue:
                        dmq.publish(entry.message)
                else:
                    queue.reject(entry, consumer, True, dispatch=False)
        for queue in queues:
            queue.dispatch()

    def writable(self) -> None:
        """Credit or transport room came back: let the queues send again."""
        for flow in list(self.flows.values()):
            if flow.consumer is not None:
                flow.queue.dispatch()
            elif flow.browsing:
                self._browse(flow)

    def close(self) -> None:
        """The connection ended: requeue what is unsettled, delete non-durable queues."""
        for flow in list(self.flows.values()):
            self._end_flow(flow)
        registry = self.conn.vpn.queues
        for queue in registry.owned_by(self.conn):
            registry.delete(queue)


def _promote(queue: Queue) -> None:
    """The exclusive queue has no active flow: the first standby flow takes over."""
    standby = _STANDBY.get(queue)
    while standby and not queue.consumers and not queue.deleted:
        flow = standby.pop(0)
        if flow.consumer is None or flow.guaranteed.conn.closing:
            continue
        try:
            queue.add_consumer(flow.consumer)
        except QueueError:
            standby.insert(0, flow)
            return


def _with_qos1(m: NativeMessage) -> NativeMessage:
    return msgspec.structs.replace(m, qos=1)


def _ids(first: int, last: int, unsettled: Mapping[int, object]) -> list[int]:
    """The unsettled ids in ``[first, last]``, without walking a huge range."""
    if last - first < len(unsettled):
        return list(range(first, last + 1))
    return sorted(i for i in unsettled if first <= i <= last)
