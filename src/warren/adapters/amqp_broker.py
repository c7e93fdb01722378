"""The AMQP 0-9-1 model of one VPN: exchanges, bindings, routing, dead-lettering.

AMQP routes a publish through an exchange to queues; Warren's queues are the core's
(:mod:`warren.core.queues`), shared with every protocol. One exchange is special:
``amq.topic`` *is* the VPN's topic space. A queue bound to it holds a router
subscription (binding key -> canonical filter), so MQTT and native publishes reach
it; a publish to it goes through ``router.publish``, so MQTT and native subscribers
get it. Routing keys and topics map by swapping ``.`` and ``/`` (DESIGN.md).

This module is also the one place where AMQP properties are translated to and from
:class:`~warren.core.message.Message` (DESIGN.md, "Message properties across
protocols"). A message that arrived over AMQP keeps its original properties in its
``wire`` cache, so AMQP-to-AMQP delivery passes every property on unchanged, as
RabbitMQ does; messages from other protocols get properties built from the mapping.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final

from warren.codecs.amqp import (
    NO_PROPERTIES,
    BasicProperties,
    FieldTable,
    FieldValue,
    Int64,
    Timestamp,
    decode_table,
    encode_properties,
    encode_table,
)
from warren.core.message import Message
from warren.core.queues import Queue, QueueEntry
from warren.core.sessions import DeliverySink, Subscription
from warren.core.topics import (
    amqp_routing_key_to_topic,
    parse_amqp_binding_key,
    topic_to_amqp_routing_key,
)
from warren.core.trie import SubscriptionTrie
from warren.core.vpn import Vpn
from warren.store.records import (
    BindingRecord,
    DeleteBinding,
    DeleteExchange,
    ExchangeRecord,
    PutBinding,
    PutExchange,
)

__all__ = [
    "AMQ_TOPIC",
    "EXCHANGE_TYPES",
    "AmqpVhost",
    "Binding",
    "Exchange",
    "InvalidExpiration",
    "message_from_amqp",
    "properties_for",
    "redelivery_properties",
    "restore_binding",
    "restore_exchange",
    "vhost_of",
]

AMQ_TOPIC: Final = "amq.topic"
EXCHANGE_TYPES: Final = frozenset({"direct", "fanout", "topic", "headers"})
PREDECLARED: Final = {
    "": "direct",
    "amq.direct": "direct",
    "amq.fanout": "fanout",
    AMQ_TOPIC: "topic",
    "amq.headers": "headers",
    "amq.match": "headers",
}
_WIRE_PROPERTIES: Final = "amqp"  # Message.wire key: the BasicProperties it arrived with
_WIRE_ENCODED: Final = "amqp.bin"  # ... and their encoding (or the mapped ones')


class InvalidExpiration(ValueError):
    """A publish's ``expiration`` property is not a non-negative integer in text."""


# --- exchanges ----------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class Binding:
    """``source`` routes to ``destination`` (a queue or an exchange) by ``key``/``arguments``."""

    source: Exchange
    destination: Queue | Exchange
    key: str
    arguments: FieldTable = field(default_factory=dict)

    def same(self, destination: Queue | Exchange, key: str, arguments: FieldTable) -> bool:
        return self.destination is destination and self.key == key and self.arguments == arguments


class Exchange:
    """An AMQP exchange: where a publish goes, by type, key and headers."""

    def __init__(
        self,
        name: str,
        type_: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: FieldTable | None = None,
    ) -> None:
        self.name = name
        self.type = type_
        self.durable = durable
        self.auto_delete = auto_delete
        self.internal = internal
        self.arguments = arguments or {}
        self.bindings: list[Binding] = []  # this exchange as source
        self.incoming: list[Binding] = []  # exchange-to-exchange bindings with it as destination
        self._direct: dict[str, list[Binding]] = {}
        self._topic: SubscriptionTrie[Binding] = SubscriptionTrie(1024)
        self.deleted = False
        # When bound as a destination of amq.topic: its router subscriber.
        self.subscriber: ExchangeSubscriber | None = None

    def __repr__(self) -> str:
        return f"<Exchange {self.name!r} {self.type}>"

    def add(self, binding: Binding) -> None:
        self.bindings.append(binding)
        if self.type == "direct":
            self._direct.setdefault(binding.key, []).append(binding)
        elif self.type == "topic":
            self._topic.add(parse_amqp_binding_key(binding.key), binding)

    def discard(self, binding: Binding) -> None:
        self.bindings.remove(binding)
        if self.type == "direct":
            same_key = self._direct.get(binding.key, [])
            if binding in same_key:
                same_key.remove(binding)
            if not same_key:
                self._direct.pop(binding.key, None)
        elif self.type == "topic":
            self._topic.remove(parse_amqp_binding_key(binding.key), binding)

    def find(
        self, destination: Queue | Exchange, key: str, arguments: FieldTable
    ) -> Binding | None:
        for binding in self.bindings:
            if binding.same(destination, key, arguments):
                return binding
        return None

    def match(self, routing_key: str, headers: FieldTable | None) -> list[Binding]:
        """The bindings a publish with ``routing_key`` and ``headers`` goes through."""
        kind = self.type
        if kind == "direct":
            return self._direct.get(routing_key, [])
        if kind == "fanout":
            return self.bindings
        if kind == "topic":
            return self._topic.match(amqp_routing_key_to_topic(routing_key))
        return [b for b in self.bindings if _headers_match(b.arguments, headers or {})]


def _headers_match(arguments: FieldTable, headers: FieldTable) -> bool:
    """The headers exchange rule: x-match all (default) or any; ``x-`` keys are ignored
    unless x-match is all-with-x or any-with-x (RabbitMQ 3.10+)."""
    mode = arguments.get("x-match", "all")
    with_x = mode in ("all-with-x", "any-with-x")
    pairs = [
        (k, v)
        for k, v in arguments.items()
        if k != "x-match" and (with_x or not k.startswith("x-"))
    ]
    if mode in ("any", "any-with-x"):
        return any(k in headers and (v is None or headers[k] == v) for k, v in pairs)
    return all(k in headers and (v is None or headers[k] == v) for k, v in pairs)


class ExchangeSubscriber:
    """An exchange bound to ``amq.topic``: the router delivers into it."""

    def __init__(self, vhost: AmqpVhost, exchange: Exchange) -> None:
        self.vhost = vhost
        self.exchange = exchange
        self.subscriptions: dict[str, Subscription] = {}
        self.username: str | None = None
        self.sink: DeliverySink | None = None

    def deliver(
        self, message: Message, qos: int, retain: bool, subscription_ids: tuple[int, ...] = ()
    ) -> None:
        key = topic_to_amqp_routing_key(message.topic)
        # Deliveries report amq.topic, where the message entered AMQP routing.
        self.vhost.route_to_queues(
            self.exchange, key, message, headers_of(message), set(), origin=AMQ_TOPIC
        )


# --- the vhost ----------------------------------------------------------------------------


@dataclass(slots=True)
class RouteResult:
    """Where one publish went."""

    routed: bool = False  # at least one queue or topic subscriber took it
    rejected: bool = False  # a full queue refused it (x-overflow reject-publish)


class AmqpVhost:
    """The AMQP view of one VPN: its exchanges; queues are the VPN's (core)."""

    def __init__(self, vpn: Vpn) -> None:
        self.vpn = vpn
        self.queues = vpn.queues
        self.exchanges: dict[str, Exchange] = {
            name: Exchange(name, kind) for name, kind in PREDECLARED.items()
        }
        vpn.queues.dead_letter = self._dead_letter
        vpn.queues.on_delete.append(self._queue_deleted)

    @property
    def name(self) -> str:
        return self.vpn.name

    # bindings

    def bind(
        self,
        source: Exchange,
        destination: Queue | Exchange,
        key: str,
        arguments: FieldTable,
        username: str | None = None,
    ) -> None:
        """Add a binding (idempotent)."""
        if source.name == AMQ_TOPIC:
            subscriber = self._subscriber(destination)
            if key in subscriber.subscriptions:
                return
            f = parse_amqp_binding_key(key)
            subscriber.username = username
            self.vpn.router.add(Subscription(subscriber, key, f, qos=1))
            binding = Binding(source, destination, key, arguments)
            source.bindings.append(binding)  # listed, not indexed: the router routes
        else:
            if source.find(destination, key, arguments) is not None:
                return
            binding = Binding(source, destination, key, arguments)
            source.add(binding)
        if isinstance(destination, Exchange):
            destination.incoming.append(binding)
        record = self._binding_record(binding)
        if record is not None:
            self.vpn.journal.append(PutBinding(record))  # type: ignore[union-attr]  # STORE

    def _binding_record(self, binding: Binding) -> BindingRecord | None:
        """What the store keeps of ``binding``: None unless both ends are durable."""
        if self.vpn.journal is None or not binding.source.durable:
            return None
        destination = binding.destination
        if isinstance(destination, Queue):
            if not destination.store_id:
                return None
            queue_id = destination.store_id
        elif destination.durable:
            queue_id = 0
        else:
            return None
        return BindingRecord(
            self.vpn.name, binding.source.name, destination.name, binding.key, queue_id,
            encode_table(binding.arguments) if binding.arguments else None,
        )

    def unbind(
        self, source: Exchange, destination: Queue | Exchange, key: str, arguments: FieldTable
    ) -> bool:
        """Remove a binding; False if there was none."""
        if source.name == AMQ_TOPIC:
            binding = next(
                (b for b in source.bindings if b.destination is destination and b.key == key),
                None,
            )
            if binding is None:
                return False
            source.bindings.remove(binding)
            self.vpn.router.remove(self._subscriber(destination), key)
        else:
            found = source.find(destination, key, arguments)
            if found is None:
                return False
            binding = found
            source.discard(binding)
        if isinstance(destination, Exchange) and binding in destination.incoming:
            destination.incoming.remove(binding)
        record = self._binding_record(binding)
        if record is not None:
            self.vpn.journal.append(DeleteBinding(record))  # type: ignore[union-attr]  # STORE
        if source.auto_delete and not source.bindings:
            self.delete_exchange(source)
        return True

    def _subscriber(self, destination: Queue | Exchange) -> Queue | ExchangeSubscriber:
        if isinstance(destination, Queue):
            return destination
        if destination.subscriber is None:
            destination.subscriber = ExchangeSubscriber(self, destination)
        return destination.subscriber

    def delete_exchange(self, exchange: Exchange) -> None:
        if exchange.deleted:
            return
        exchange.deleted = True
        self.exchanges.pop(exchange.name, None)
        if exchange.durable and self.vpn.journal is not None:
            self.vpn.journal.append(DeleteExchange(self.vpn.name, exchange.name))  # STORE
        for binding in list(exchange.bindings):
            self.unbind(exchange, binding.destination, binding.key, binding.arguments)
        for binding in list(exchange.incoming):
            self.unbind(binding.source, exchange, binding.key, binding.arguments)

    def _queue_deleted(self, queue: Queue) -> None:
        # The router subscriptions are gone already (QueueRegistry.delete).
        for exchange in list(self.exchanges.values()):
            for binding in [b for b in exchange.bindings if b.destination is queue]:
                if exchange.name == AMQ_TOPIC:
                    exchange.bindings.remove(binding)
                else:
                    exchange.discard(binding)
            if exchange.auto_delete and not exchange.bindings and not exchange.deleted:
                self.delete_exchange(exchange)

    def declare_exchange(
        self, name: str, type_: str, *, durable: bool, auto_delete: bool, internal: bool,
        arguments: FieldTable,
    ) -> Exchange:
        """A new exchange (the caller checked the name); a durable one is stored."""
        exchange = self.exchanges[name] = Exchange(
            name, type_, durable=durable, auto_delete=auto_delete, internal=internal,
            arguments=arguments,
        )
        if durable and self.vpn.journal is not None:
            self.vpn.journal.append(PutExchange(ExchangeRecord(  # STORE
                self.vpn.name, name, type_, auto_delete, internal,
                encode_table(arguments) if arguments else None,
            )))
        return exchange

    # publishing

    def publish(self, exchange: Exchange, routing_key: str, message: Message) -> RouteResult:
        """Route one publish: to queues, and through ``amq.topic`` to the topic space."""
        result = RouteResult()
        self.route_to_queues(exchange, routing_key, message, headers_of(message), set(), result)
        return result

    def route_to_queues(
        self,
        exchange: Exchange,
        routing_key: str,
        message: Message,
        headers: FieldTable | None,
        seen: set[int],
        result: RouteResult | None = None,
        origin: str | None = None,
    ) -> None:
        """Route to the queues bound (directly or through other exchanges) to ``exchange``.

        ``origin`` is the exchange the message was published to, which deliveries
        report (as RabbitMQ does); by default ``exchange`` itself.
        """
        if result is None:
            result = RouteResult()
        if origin is None:
            origin = exchange.name
        if id(exchange) in seen:  # exchange-to-exchange bindings may form cycles
            return
        seen.add(id(exchange))
        if exchange.name == AMQ_TOPIC:
            topic = amqp_routing_key_to_topic(routing_key)
            topic_message = message if topic == message.topic else _with_topic(message, topic)
            queues = self.queues
            before = queues.rejections
            if self.vpn.router.publish(topic_message, None):
                result.routed = True
            if queues.rejections != before:
                result.rejected = True
            return
        if exchange.name == "":
            queue = self.queues.get(routing_key)
            if queue is not None:
                self._to_queue(queue, origin, routing_key, message, result)
            return
        delivered: set[int] = set()
        for binding in exchange.match(routing_key, headers):
            destination = binding.destination
            if isinstance(destination, Queue):
                if id(destination) not in delivered:  # once per queue however many bindings
                    delivered.add(id(destination))
                    self._to_queue(destination, origin, routing_key, message, result)
            else:
                self.route_to_queues(
                    destination, routing_key, message, headers, seen, result, origin
                )

    @staticmethod
    def _to_queue(
        queue: Queue, source: str, key: str, message: Message, result: RouteResult
    ) -> None:
        if queue.publish(message, source, key):
            result.routed = True
        else:
            result.rejected = True

    # dead-lettering

    def _dead_letter(self, queue: Queue, entry: QueueEntry, reason: str) -> bool:
        """Re-publish ``entry`` to the queue's dead-letter exchange with an x-death
        record; False if there is no such exchange (RabbitMQ drops it then too)."""
        limits = queue.limits
        exchange = self.exchanges.get(limits.dead_letter_exchange or "")
        if exchange is None or limits.dead_letter_exchange is None:
            return False
        source, key = delivery_origin(entry)
        props = properties_for(entry.message, now=time.monotonic())
        headers: dict[str, FieldValue] = dict(props.headers or {})
        previous = headers.get("x-death")
        deaths: list[FieldValue] = [
            dict(d) for d in (previous if isinstance(previous, list) else []) if isinstance(d, dict)
        ]
        for index, death in enumerate(deaths):
            assert isinstance(death, dict)
            if death.get("queue") == queue.name and death.get("reason") == reason:
                count = death.get("count", 0)
                death["count"] = Int64((count if isinstance(count, int) else 0) + 1)
                death["time"] = Timestamp(int(time.time()))
                deaths.insert(0, deaths.pop(index))
                break
        else:
            deaths.insert(
                0,
                {
                    "count": Int64(1),
                    "reason": reason,
                    "queue": queue.name,
                    "time": Timestamp(int(time.time())),
                    "exchange": source,
                    "routing-keys": [key],
                },
            )
        headers["x-death"] = deaths
        headers.setdefault("x-first-death-reason", reason)
        headers.setdefault("x-first-death-queue", queue.name)
        headers.setdefault("x-first-death-exchange", source)
        headers["x-last-death-reason"] = reason
        headers["x-last-death-queue"] = queue.name
        headers["x-last-death-exchange"] = source
        expiration = props.expiration
        if expiration is not None:
            # The message must not expire again in the dead-letter queue because of
            # its old TTL; RabbitMQ keeps it in a header.
            headers["original-expiration"] = expiration
        new_props = replace(props, headers=headers, expiration=None)
        topic_key = limits.dead_letter_routing_key or key
        dead = message_from_amqp(topic_key, new_props, entry.message.payload, 0.0)
        self.route_to_queues(exchange, topic_key, dead, new_props.headers, set())
        return True


_VHOSTS: weakref.WeakKeyDictionary[Vpn, AmqpVhost] = weakref.WeakKeyDictionary()


def vhost_of(vpn: Vpn) -> AmqpVhost:
    """The AMQP model of ``vpn``, created on first use."""
    vhost = _VHOSTS.get(vpn)
    if vhost is None:
        vhost = _VHOSTS[vpn] = AmqpVhost(vpn)
    return vhost


def delivery_origin(entry: QueueEntry) -> tuple[str, str]:
    """(exchange, routing key) to report for a queued message."""
    if entry.source is not None and entry.key is not None:
        return entry.source, entry.key
    return AMQ_TOPIC, topic_to_amqp_routing_key(entry.message.topic)


def _with_topic(message: Message, topic: str) -> Message:
    copy = Message(
        topic,
        message.payload,
        message.qos,
        message.retain,
        content_type=message.content_type,
        correlation_data=message.correlation_data,
        response_topic=message.response_topic,
        user_properties=message.user_properties,
        payload_format_utf8=message.payload_format_utf8,
        expires_at=message.expires_at,
        priority=message.priority,
        message_id=message.message_id,
        sender_id=message.sender_id,
    )
    if message.wire is not None and _WIRE_PROPERTIES in message.wire:
        copy.wire = {_WIRE_PROPERTIES: message.wire[_WIRE_PROPERTIES]}
    return copy


# --- property mapping (DESIGN.md) ------------------------------------------------------------


def parse_expiration(text: str) -> float:
    """The ``expiration`` property (milliseconds, as text) in seconds."""
    if not text.isdigit():
        raise InvalidExpiration(f"invalid expiration {text!r}: not a number of milliseconds")
    return int(text) / 1000.0


def message_from_amqp(
    routing_key: str, properties: BasicProperties, body: bytes, now: float
) -> Message:
    """The core message for a publish with ``routing_key`` (the topic, on amq.topic).

    ``now`` is ``time.monotonic()`` for the expiry deadline; 0 means "do not apply
    the expiration property" (dead-lettered copies).
    """
    p = properties
    expires_at = None
    if p.expiration is not None and now:
        expires_at = now + parse_expiration(p.expiration)
    user_properties: tuple[tuple[str, str], ...] = ()
    if p.headers:
        user_properties = tuple(
            (name, text)
            for name, value in p.headers.items()
            if (text := _as_text(value)) is not None
        )
    message = Message(
        amqp_routing_key_to_topic(routing_key),
        body,
        1 if p.delivery_mode == 2 else 0,
        content_type=p.content_type,
        correlation_data=(
            None
            if p.correlation_id is None
            else p.correlation_id.encode("utf-8", "surrogateescape")
        ),
        response_topic=None if p.reply_to is None else amqp_routing_key_to_topic(p.reply_to),
        user_properties=user_properties,
        expires_at=expires_at,
        priority=p.priority,
        message_id=p.message_id,
    )
    message.wire = {_WIRE_PROPERTIES: p}
    return message


def _as_text(value: Any) -> str | None:
    """A header value as an MQTT user property value; None for tables and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return None


def headers_of(message: Message) -> FieldTable | None:
    """The AMQP headers table of ``message`` (for the headers exchange)."""
    wire = message.wire
    if wire is not None:
        props = wire.get(_WIRE_PROPERTIES)
        if isinstance(props, BasicProperties):
            return props.headers
    if not message.user_properties:
        return None
    return dict(message.user_properties)


def properties_for(message: Message, now: float | None = None) -> BasicProperties:
    """The AMQP properties to deliver ``message`` with."""
    wire = message.wire
    if wire is not None:
        props = wire.get(_WIRE_PROPERTIES)
        if isinstance(props, BasicProperties):
            return props
    correlation = message.correlation_data
    correlation_id = None
    if correlation is not None and len(correlation) <= 255:
        correlation_id = correlation.decode("utf-8", "surrogateescape")
    expiration = None
    if message.expires_at is not None:
        left = message.expires_at - (time.monotonic() if now is None else now)
        expiration = str(max(0, int(left * 1000)))
    headers: dict[str, FieldValue] | None = None
    if message.user_properties:
        headers = {}
        for name, value in message.user_properties:
            headers[name] = value  # MQTT allows repeated names; a table cannot: last wins
    if not (
        message.content_type or correlation_id or message.response_topic or headers
        or expiration or message.priority is not None or message.message_id or message.qos
    ):
        return NO_PROPERTIES
    return BasicProperties(
        content_type=message.content_type,
        headers=headers,
        delivery_mode=2 if message.qos else None,
        priority=message.priority,
        correlation_id=correlation_id,
        reply_to=(
            None if message.response_topic is None
            else topic_to_amqp_routing_key(message.response_topic)
        ),
        expiration=expiration,
        message_id=message.message_id,
    )


def encoded_properties(message: Message) -> bytes | BasicProperties:
    """The delivery's content-header property list, encoded once per message when possible."""
    wire = message.wire
    if wire is None:
        wire = message.wire = {}
    cached = wire.get(_WIRE_ENCODED)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    props = properties_for(message)
    if props is NO_PROPERTIES:
        return props
    if message.expires_at is not None and _WIRE_PROPERTIES not in wire:
        return props  # the remaining lifetime changes: not cacheable
    data = encode_properties(props)
    wire[_WIRE_ENCODED] = data
    return data


def redelivery_properties(message: Message, redeliveries: int) -> BasicProperties:
    """The properties of a redelivery: ``message``'s plus the ``x-delivery-count``
    header (how often it was returned before), as RabbitMQ's quorum queues send it."""
    props = properties_for(message)
    headers: dict[str, FieldValue] = dict(props.headers or {})
    headers["x-delivery-count"] = Int64(redeliveries)
    return replace(props, headers=headers)


# --- recovery (docs/storage.md) --------------------------------------------------------------


def _table(data: bytes | None) -> FieldTable:
    return decode_table(data) if data else {}


def restore_exchange(vpn: Vpn, record: ExchangeRecord) -> None:
    """Start-up: a durable exchange as declared."""
    vhost = vhost_of(vpn)
    if record.name not in vhost.exchanges:
        vhost.exchanges[record.name] = Exchange(
            record.name, record.type, durable=True, auto_delete=record.auto_delete,
            internal=record.internal, arguments=_table(record.arguments),
        )


def restore_binding(vpn: Vpn, record: BindingRecord) -> bool:
    """Start-up: a binding between durable ends; False if an end is gone."""
    vhost = vhost_of(vpn)
    source = vhost.exchanges.get(record.source)
    destination: Queue | Exchange | None
    if record.queue_id:
        destination = vpn.queues.get(record.destination)
    else:
        destination = vhost.exchanges.get(record.destination)
    if source is None or destination is None:
        return False
    # Recovery runs before the VPN has a journal: nothing stored is journalled again.
    vhost.bind(source, destination, record.routing_key, _table(record.arguments))
    return True
