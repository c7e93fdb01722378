"""What the store keeps: typed records, and the mutations that change them.

Two kinds of data, stored differently (docs/storage.md, "Schema"):

- **High-volume** data has its own tables with integer keys: :class:`StoredMessage`
  (stored once, referenced by any number of queue entries, session deliveries and
  retained topics), :class:`StoredEntry` (one message in one durable queue),
  :class:`SessionDelivery` (one message owed to one persistent MQTT session) and
  :class:`RetainedRecord`. At recovery a store may hand a queue's entries over in
  its own compact rows instead (:class:`StoredEntryRows`), decoded one at a time
  when the core needs them.
- **Runtime objects** (queues, exchanges, bindings, subscriptions, sessions, and
  anything else created at run time: VPNs, users, ACL profiles, bridges) are few. Each
  is a frozen dataclass of scalars, stored as JSON under ``(kind, owner, key)``, so a
  field added later needs no schema migration (a missing field takes its default).

Everything here is immutable, so it is safe to hand to the store. The
high-volume records are named tuples: built once per publish on the event loop
and a million times at recovery, they cost a tenth of a frozen dataclass (whose
``__init__`` goes through ``object.__setattr__`` per field). The rest are frozen
dataclasses with slots.

Times are **wall-clock** seconds (``time.time()``), never ``time.monotonic()``
deadlines, which mean nothing after a restart; see :func:`monotonic_to_wall`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, TypeAlias

__all__ = [
    "ENTRY_RECORDS",
    "AddQueueSubscription",
    "BindingRecord",
    "DeleteBinding",
    "DeleteExchange",
    "DeleteIncomingQos2",
    "DeleteObject",
    "DeleteQueue",
    "DeleteRetained",
    "DeleteSession",
    "DeleteSessionDelivery",
    "DeleteSessionSubscription",
    "Dequeue",
    "Enqueue",
    "EntryRowCodec",
    "ExchangeRecord",
    "IncomingQos2Record",
    "Mutation",
    "ObjectRecord",
    "PurgeQueue",
    "PutBinding",
    "PutExchange",
    "PutIncomingQos2",
    "PutObject",
    "PutQueue",
    "PutSession",
    "PutSessionDelivery",
    "PutSessionSubscription",
    "QueueRecord",
    "QueueSubscriptionRecord",
    "Recovered",
    "Redeliver",
    "RemoveQueueSubscription",
    "RetainedRecord",
    "RuntimeRecord",
    "SessionDelivery",
    "SessionRecord",
    "SessionSubscriptionRecord",
    "SetRetained",
    "StoredEntry",
    "StoredEntryRows",
    "StoredMessage",
    "UpdateSessionDelivery",
    "monotonic_to_wall",
    "wall_to_monotonic",
]


def monotonic_to_wall(deadline: float | None) -> float | None:
    """A ``time.monotonic()`` deadline as wall-clock seconds (what the store keeps)."""
    if deadline is None:
        return None
    return time.time() + (deadline - time.monotonic())


def wall_to_monotonic(at: float | None) -> float | None:
    """A stored wall-clock time as a ``time.monotonic()`` deadline (after recovery)."""
    if at is None:
        return None
    return time.monotonic() + (at - time.time())


# --- high-volume records ---------------------------------------------------------------


class StoredMessage(NamedTuple):
    """A message as stored: the fields of ``core.Message`` that outlive a restart.

    ``id`` comes from :meth:`Store.next_id`; one message is written once however many
    entries refer to it, and deleted with its last reference. ``extra`` is an opaque
    blob its protocol adapter may keep (e.g. the AMQP properties it arrived with).
    """

    id: int
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    payload_format_utf8: bool = False
    content_type: str | None = None
    correlation_data: bytes | None = None
    response_topic: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    expires_at: float | None = None  # wall clock
    priority: int | None = None
    message_id: str | None = None
    sender_id: str | None = None
    extra: bytes | None = None


class StoredEntry(NamedTuple):
    """One message in one durable queue (``core.queues.QueueEntry``).

    ``id`` is the entry's sequence number: entries come back in ``id`` order within
    their queue. ``expires_at`` is the TTL deadline (wall clock); ``redeliveries``
    counts requeues (the redelivered flag is ``redeliveries > 0``).
    """

    queue_id: int
    id: int
    message: StoredMessage
    source: str | None = None
    key: str | None = None
    expires_at: float | None = None
    priority: int = 0
    redeliveries: int = 0


class EntryRowCodec(Protocol):
    """How the core reads the rows of a :class:`StoredEntryRows` (one per store).

    A row is whatever the store keeps for one entry; the core never looks inside
    it. Each row is passed to :meth:`entry` or :meth:`drop` at most once, after
    recovery has finished (the store may then release what only that row used).
    """

    def entry(self, row: Any) -> StoredEntry:
        """The entry the row holds, with its message."""
        ...

    def drop(self, row: Any) -> tuple[int, int]:
        """The row's entry leaves unbuilt (purge, delete): its (entry id, message id)."""
        ...

    def priority(self, row: Any) -> int:
        """The entry's priority, without building it."""
        ...


class _EntryRecords:
    """The codec of rows that are :class:`StoredEntry` records already."""

    __slots__ = ()

    def entry(self, row: Any) -> StoredEntry:
        return row  # type: ignore[no-any-return]

    def drop(self, row: Any) -> tuple[int, int]:
        return row.id, row.message.id

    def priority(self, row: Any) -> int:
        return row.priority  # type: ignore[no-any-return]


ENTRY_RECORDS: EntryRowCodec = _EntryRecords()
"""The :class:`EntryRowCodec` of rows that are :class:`StoredEntry` records."""


class StoredEntryRows(NamedTuple):
    """Consecutive entries of one durable queue, in id order, as the store keeps them.

    What ``Store.recover(compact=True)`` may yield instead of one
    :class:`StoredEntry` per entry: the core keeps ``rows`` as they are and decodes
    a row through ``codec`` only when its entry is needed (delivered, browsed,
    expired, dropped), so a million recovered entries are not a million objects
    built at start-up (docs/storage.md, "Broker recovery"). ``size`` is the sum of
    the entries' payload lengths (each entry counts its message, shared or not).
    """

    queue_id: int
    rows: Sequence[Any]
    size: int
    codec: EntryRowCodec = ENTRY_RECORDS


class SessionDelivery(NamedTuple):
    """One delivery owed to a persistent session (``core.sessions.Delivery``).

    ``state`` 0 is pending (not sent); 1 sent awaiting PUBACK/PUBREC, 2 PUBREL sent
    awaiting PUBCOMP (MQTT-4.3.3), with ``packet_id`` set once sent.
    """

    session_id: int
    id: int
    message: StoredMessage
    qos: int
    retain: bool = False
    subscription_ids: tuple[int, ...] = ()
    packet_id: int = 0
    state: int = 0


class RetainedRecord(NamedTuple):
    """The message retained for ``topic`` in ``vpn``."""

    vpn: str
    topic: str
    message: StoredMessage


# --- runtime objects (JSON bodies) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """A durable queue: identity, access type and limits (``core.queues.Queue``).

    ``id`` is the integer its entries and subscriptions refer to (from
    :meth:`Store.next_id`). ``arguments`` is the declaring protocol's own encoding of
    what it declared with (AMQP: the field table), kept for equivalence checks.
    """

    KIND: ClassVar[str] = "queue"

    id: int
    vpn: str
    name: str
    exclusive: bool = False
    auto_delete: bool = False
    message_ttl: float | None = None
    expires: float | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = "drop-head"
    max_redelivery: int | None = None
    max_priority: int | None = None
    dead_letter_queue: str | None = None
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    arguments: bytes | None = None

    @property
    def owner(self) -> int:
        return self.id

    @property
    def key(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class QueueSubscriptionRecord:
    """A queue's topic subscription; ``key`` is the filter as written in ``syntax``."""

    KIND: ClassVar[str] = "queue-subscription"

    queue_id: int
    key: str
    syntax: str = "mqtt"

    @property
    def owner(self) -> int:
        return self.queue_id


@dataclass(frozen=True, slots=True)
class ExchangeRecord:
    """A durable AMQP exchange."""

    KIND: ClassVar[str] = "exchange"

    vpn: str
    name: str
    type: str
    auto_delete: bool = False
    internal: bool = False
    arguments: bytes | None = None

    @property
    def owner(self) -> int:
        return 0

    @property
    def key(self) -> str:
        return f"{self.vpn}\x00{self.name}"


@dataclass(frozen=True, slots=True)
class BindingRecord:
    """An AMQP binding from exchange ``source`` to a queue or an exchange.

    ``queue_id`` is set when the destination is a queue (then the binding goes with
    the queue); ``destination`` is the queue's or exchange's name.
    """

    KIND: ClassVar[str] = "binding"

    vpn: str
    source: str
    destination: str
    routing_key: str
    queue_id: int = 0  # 0: the destination is an exchange
    arguments: bytes | None = None

    @property
    def owner(self) -> int:
        return self.queue_id

    @property
    def key(self) -> str:
        args = self.arguments.hex() if self.arguments else ""
        kind = "q" if self.queue_id else "e"
        return "\x00".join((self.vpn, self.source, kind, self.destination, self.routing_key, args))


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A persistent MQTT session. ``disconnected_at`` (wall clock) starts its expiry."""

    KIND: ClassVar[str] = "session"

    id: int
    vpn: str
    client_id: str
    username: str | None = None
    expiry_interval: int = 0
    disconnected_at: float | None = None
    protocol_version: int = 5

    @property
    def owner(self) -> int:
        return self.id

    @property
    def key(self) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class SessionSubscriptionRecord:
    """One subscription of a persistent session (``core.sessions.Subscription``)."""

    KIND: ClassVar[str] = "session-subscription"

    session_id: int
    key: str  # the filter as the client wrote it, share prefix included
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    identifier: int | None = None

    @property
    def owner(self) -> int:
        return self.session_id


@dataclass(frozen=True, slots=True)
class IncomingQos2Record:
    """An inbound QoS 2 packet id: PUBREC sent, PUBREL not yet received (MQTT-4.3.3)."""

    KIND: ClassVar[str] = "incoming-qos2"

    session_id: int
    packet_id: int

    @property
    def owner(self) -> int:
        return self.session_id

    @property
    def key(self) -> str:
        return str(self.packet_id)


@dataclass(frozen=True, slots=True)
class ObjectRecord:
    """Any other object created at run time (VPN, user, ACL profile, bridge, ...).

    ``kind`` names the object type (one namespace per type), ``data`` is its JSON
    text, owned and validated by whoever defines that type.
    """

    KIND: ClassVar[str] = "object"

    kind: str
    vpn: str
    name: str
    data: str = "{}"

    @property
    def owner(self) -> int:
        return 0

    @property
    def key(self) -> str:
        return f"{self.kind}\x00{self.vpn}\x00{self.name}"


RuntimeRecord: TypeAlias = (
    ObjectRecord
    | ExchangeRecord
    | QueueRecord
    | BindingRecord
    | QueueSubscriptionRecord
    | SessionRecord
    | SessionSubscriptionRecord
    | IncomingQos2Record
)

# The order in which recovery streams runtime objects: whatever a record refers to
# comes before it.
RUNTIME_KINDS: tuple[type[RuntimeRecord], ...] = (
    ObjectRecord,
    ExchangeRecord,
    QueueRecord,
    BindingRecord,
    QueueSubscriptionRecord,
    SessionRecord,
    SessionSubscriptionRecord,
    IncomingQos2Record,
)

Recovered: TypeAlias = (
    RuntimeRecord | StoredEntry | StoredEntryRows | SessionDelivery | RetainedRecord
)
"""One item of the recovery stream (see ``Store.recover``)."""


# --- mutations: the journal the core emits at its STORE points ---------------------------


@dataclass(frozen=True, slots=True)
class Enqueue:
    """A persistent message entered a durable queue (stores the message if new)."""

    entry: StoredEntry


@dataclass(frozen=True, slots=True)
class Dequeue:
    """An entry left its queue: acknowledged, dropped, expired or dead-lettered.

    ``message_id`` is the entry's message (the store drops one reference to it
    without reading the entry back)."""

    queue_id: int
    entry_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class Redeliver:
    """An entry was requeued; ``redeliveries`` is its new redelivery count."""

    queue_id: int
    entry_id: int
    redeliveries: int


@dataclass(frozen=True, slots=True)
class PurgeQueue:
    """Every entry of a queue is gone (purge); the queue stays."""

    queue_id: int


@dataclass(frozen=True, slots=True)
class PutQueue:
    """A durable queue was declared or changed."""

    queue: QueueRecord


@dataclass(frozen=True, slots=True)
class DeleteQueue:
    """A queue was deleted, with its entries, subscriptions and bindings to it."""

    queue_id: int


@dataclass(frozen=True, slots=True)
class AddQueueSubscription:
    subscription: QueueSubscriptionRecord


@dataclass(frozen=True, slots=True)
class RemoveQueueSubscription:
    queue_id: int
    key: str


@dataclass(frozen=True, slots=True)
class PutExchange:
    exchange: ExchangeRecord


@dataclass(frozen=True, slots=True)
class DeleteExchange:
    """An exchange was deleted (the core deletes bindings from/to it explicitly)."""

    vpn: str
    name: str


@dataclass(frozen=True, slots=True)
class PutBinding:
    binding: BindingRecord


@dataclass(frozen=True, slots=True)
class DeleteBinding:
    binding: BindingRecord


@dataclass(frozen=True, slots=True)
class PutSession:
    """A persistent session was created or changed (expiry, disconnect time)."""

    session: SessionRecord


@dataclass(frozen=True, slots=True)
class DeleteSession:
    """A session ended (clean start, expiry): its subscriptions and deliveries go too."""

    session_id: int


@dataclass(frozen=True, slots=True)
class PutSessionSubscription:
    subscription: SessionSubscriptionRecord


@dataclass(frozen=True, slots=True)
class DeleteSessionSubscription:
    session_id: int
    key: str


@dataclass(frozen=True, slots=True)
class PutSessionDelivery:
    """A QoS >= 1 delivery is owed to a persistent session (stores the message if new)."""

    delivery: SessionDelivery


@dataclass(frozen=True, slots=True)
class UpdateSessionDelivery:
    """A delivery was sent (``packet_id``, state 1) or its PUBREC arrived (state 2)."""

    session_id: int
    delivery_id: int
    packet_id: int
    state: int


@dataclass(frozen=True, slots=True)
class DeleteSessionDelivery:
    """A delivery is complete (PUBACK/PUBCOMP), expired or dropped (``message_id``:
    its message, as for :class:`Dequeue`)."""

    session_id: int
    delivery_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class PutIncomingQos2:
    record: IncomingQos2Record


@dataclass(frozen=True, slots=True)
class DeleteIncomingQos2:
    session_id: int
    packet_id: int


@dataclass(frozen=True, slots=True)
class SetRetained:
    """Retain a message for a topic, replacing the one retained before."""

    retained: RetainedRecord


@dataclass(frozen=True, slots=True)
class DeleteRetained:
    vpn: str
    topic: str


@dataclass(frozen=True, slots=True)
class PutObject:
    record: ObjectRecord


@dataclass(frozen=True, slots=True)
class DeleteObject:
    kind: str
    vpn: str
    name: str


Mutation: TypeAlias = (
    Enqueue
    | Dequeue
    | Redeliver
    | PurgeQueue
    | PutQueue
    | DeleteQueue
    | AddQueueSubscription
    | RemoveQueueSubscription
    | PutExchange
    | DeleteExchange
    | PutBinding
    | DeleteBinding
    | PutSession
    | DeleteSession
    | PutSessionSubscription
    | DeleteSessionSubscription
    | PutSessionDelivery
    | UpdateSessionDelivery
    | DeleteSessionDelivery
    | PutIncomingQos2
    | DeleteIncomingQos2
    | SetRetained
    | DeleteRetained
    | PutObject
    | DeleteObject
)
"""One change to durable state. A submitted sequence of mutations commits atomically."""
