"""Native protocol server connections (docs/protocol.md), over TCP and WebSocket.

One :class:`NativeConnection` per network connection; the WebSocket listener
(:mod:`warren.adapters.native_ws`) hands it a transport of its own, so behaviour is
identical on both. Like the MQTT adapter it is a
:class:`~warren.adapters.connection.Connection` (an ``asyncio.Protocol``), which
brings the reader, the batched writer, publisher backpressure, the connect timeout,
the keepalive check and lingering close:

- the reader is ``data_received``: bytes go into the sans-I/O codec and each frame
  is handled synchronously, in arrival order (no task per frame);
- the writer is one flush per event-loop iteration. Deliveries are gathered into
  DELIVER batches (consecutive messages for the same subscription ids share one
  frame) and every frame produced in the iteration goes out in one write;
- a message fanned out to many native subscribers is encoded once
  (``Message.wire``) and spliced into each DELIVER (``send_deliver``);
- flow control: with ``initial_credit`` the session sends only while credit is
  left; otherwise, and while the transport is paused, deliveries wait in the
  session's bounded queue, and a full queue applies the slow-consumer policy.

This module is the only place where native messages are translated to and from
:class:`warren.core.message.Message` (DESIGN.md, "Message properties across
protocols"): every field has a core counterpart, except that expiry travels as
time left (``ttl`` ms) where the core keeps a monotonic deadline.

Client names share the VPN's client namespace with MQTT client ids. A name held by
another native connection is taken over (the old one gets DISCONNECT
SESSION_TAKEN_OVER: a client reconnecting after a network failure must not wait for
the broker to notice the dead connection); a name held by another protocol's
session is refused with CLIENT_NAME_IN_USE.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from warren.adapters.connection import Connection
from warren.adapters.native_queues import Guaranteed
from warren.codecs.native import (
    DEFAULT_MAX_FRAME_SIZE,
    Ack,
    Bind,
    Connect,
    Connected,
    Credit,
    Disconnect,
    Error,
    ErrorCode,
    Event,
    Nack,
    Ping,
    Pong,
    Publish,
    Result,
    Role,
    Subscribe,
    Unbind,
    Unsubscribe,
    deliver_size_bound,
    encode_message,
)
from warren.codecs.native import (
    Message as NativeMessage,
)
from warren.codecs.native import (
    NativeConnection as NativeCodec,
)
from warren.core.acl import AclDecision
from warren.core.inbox import inbox_filter, inbox_prefix
from warren.core.message import Message
from warren.core.router import NotAuthorized
from warren.core.sessions import Session, Subscription
from warren.core.topics import InvalidTopic, parse_native_filter, parse_shared_subscription
from warren.core.vpn import Vpn
from warren.errors import LocalProtocolError

__all__ = ["NativeConnection", "NativeSettings", "from_native", "to_native"]

log = logging.getLogger("warren.native")

SHARE_MARKER: Final = "#share"
INBOX_SLOT: Final = 0  # the core subscription identifier of the reply inbox
_NAME_FORBIDDEN: Final = ("/", "\0", "+", "#", "*", ">")
# Message.wire keys of this adapter's encoded forms (direct delivery, by retain flag).
_WIRE_KEYS: Final = (("native", False), ("native", True))
GUARANTEED: Final = "guaranteed"  # the capability (docs/protocol.md)


@dataclass(frozen=True, slots=True)
class NativeSettings:
    """Native listener settings (the server derives them from its configuration)."""

    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    server_keepalive: int = 0  # 0: honour the client's; else the longest allowed
    max_queued_messages: int = 1000
    max_outbound_bytes: int = 8 * 1024 * 1024
    slow_consumer: str = "queue"  # or "disconnect"
    max_client_name_length: int = 128
    connect_timeout: float = 10.0


@dataclass(slots=True, eq=False)
class _Slot:
    """One distinct filter of a connection: one core subscription, several ids.

    A shared subscription (``#share/g/f``) under several ids of one connection is
    one member of the group for the broker (a session holds a filter once); the
    connection then gives each message to one of those ids in turn.
    """

    identifier: int  # the core Subscription.identifier
    subscription_ids: list[int] = field(default_factory=list)
    shared: bool = False
    turn: int = 0


@dataclass(slots=True, eq=False)
class _Batch:
    """Deliveries for the same subscription ids, to go out as one DELIVER."""

    ids: tuple[int, ...]
    messages: list[bytes]
    size: int


# --- translation between native messages and core.Message ------------------------


def from_native(m: NativeMessage, now: float | None = None) -> Message:
    """The core message for a message received in a PUBLISH."""
    ttl = m.ttl_ms
    expires_at = None
    if ttl is not None:
        expires_at = (time.monotonic() if now is None else now) + ttl / 1000
    return Message(
        m.topic,
        m.payload,
        m.qos,
        m.retain,
        content_type=m.content_type,
        correlation_data=m.correlation_data,
        response_topic=m.response_topic,
        user_properties=m.user_properties,
        payload_format_utf8=m.payload_format_utf8,
        expires_at=expires_at,
        priority=m.priority,
        message_id=m.message_id,
        sender_id=m.sender_id,
    )


def to_native(message: Message, retain: bool, ttl_ms: int | None) -> NativeMessage:
    """The native message for a delivery; ``ttl_ms`` is the time left, if any.

    ``q`` says how the message was published (persistent or not), as an AMQP
    delivery mode would: a DELIVER without ``id`` is direct whatever it says.
    """
    return NativeMessage(
        message.topic,
        message.payload,
        message.qos,
        retain,
        content_type=message.content_type,
        correlation_data=message.correlation_data,
        response_topic=message.response_topic,
        user_properties=message.user_properties,
        payload_format_utf8=message.payload_format_utf8,
        ttl_ms=ttl_ms,
        priority=message.priority,
        message_id=message.message_id,
        sender_id=message.sender_id,
    )


class NativeConnection(Connection):
    """The server side of one native-protocol connection (see module docstring)."""

    protocol_name = "native"
    logger = log
    _codec: NativeCodec

    def __init__(
        self,
        vpns: Mapping[str, Vpn],
        default_vpn: str,
        settings: NativeSettings,
        *,
        transport_name: str = "tcp",
        on_close: Callable[[NativeConnection], None] | None = None,
    ) -> None:
        super().__init__(vpns[default_vpn], settings, on_close)  # until CONNECT names a VPN
        self._vpns = vpns
        self.settings = settings
        self.transport_name = transport_name
        self._codec = NativeCodec(Role.SERVER, max_frame_size=settings.max_frame_size)
        self._batches: list[_Batch] = []
        self._queued = 0  # messages in _batches (they use credit once sent)
        self.client_name = ""
        self.keepalive = 0
        self._slots: dict[str, _Slot] = {}  # filter text -> slot
        self._slots_by_identifier: dict[int, _Slot] = {INBOX_SLOT: _Slot(INBOX_SLOT, [0])}
        self._filters_by_id: dict[int, set[str]] = {}  # subscription id -> filter texts
        self._ids_cache: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._next_slot = INBOX_SLOT
        self._queue_full_warned = 0.0
        # What a throttle interrupted of a PUBLISH: its messages not yet routed. They
        # go first once the congestion clears, then the frames in _backlog.
        self._held_messages: deque[NativeMessage] = deque()
        # Persistent publish and queue flows, once 'guaranteed' is granted.
        self._guaranteed: Guaranteed | None = None
        self._dispatch: dict[type, Callable[[Any], None]] = {
            Publish: self._on_publish,
            Credit: self._on_credit,
            Subscribe: self._on_subscribe,
            Unsubscribe: self._on_unsubscribe,
            Ping: self._on_ping,
            Pong: self._on_pong,
            Ack: self._on_settle,
            Nack: self._on_settle,
            Error: self._on_error,
            Disconnect: self._on_disconnect,
            Connect: self._on_connect,
            Bind: self._on_bind,
            Unbind: self._on_unbind,
        }

    def __repr__(self) -> str:
        return (
            f"<native.NativeConnection {self.client_name!r} from {self.peer} "
            f"over {self.transport_name}>"
        )

    # --- Connection ------------------------------------------------------------------

    def _writable(self) -> None:
        super()._writable()
        if self._guaranteed is not None:
            self._guaranteed.writable()

    def _release(self, exc: Exception | None) -> None:
        if self.connected:
            log.debug("native client %r (%s) disconnected%s", self.client_name, self.peer,
                      f": {exc}" if exc else "")
        self._batches.clear()
        self._held_messages.clear()
        self._end_session()

    # --- output -------------------------------------------------------------------

    def _seal_batches(self) -> None:
        """Encode the pending DELIVER batches into the output, in order."""
        codec = self._codec
        out = self._out
        for batch in self._batches:
            try:
                out.append(codec.send_deliver(batch.ids, batch.messages))
            except LocalProtocolError as exc:  # pragma: no cover - guarded by can_send
                log.error("native client %r: DELIVER not sent: %s", self.client_name, exc)
                self.stats.dropped += len(batch.messages)
        self._batches.clear()
        self._queued = 0

    def _flush(self) -> None:
        if self._batches:
            self._seal_batches()
        super()._flush()

    def _send(self, event: Event) -> None:
        """Queue a control frame after everything produced before it."""
        if self._batches:
            self._seal_batches()
        super()._send(event)

    def send_event(self, event: Event) -> None:
        """Queue a control frame (for native_queues)."""
        if not self.closing:
            self._send(event)

    def send_guaranteed(
        self, subscription_id: int, encoded: bytes, delivery_id: int, redelivered: bool
    ) -> None:
        """Queue one guaranteed DELIVER (a queue message with a delivery id)."""
        if self._batches:
            self._seal_batches()
        try:
            self._out.append(self._codec.send_deliver(
                (subscription_id,), [encoded], delivery_id, redelivered
            ))
        except LocalProtocolError as exc:  # pragma: no cover - guarded by can_send
            log.error("native client %r: guaranteed DELIVER not sent: %s", self.client_name, exc)
            return
        stats = self.stats
        stats.publish_sent += 1
        stats.messages_sent += 1
        self._schedule_flush()

    def _send_error(self, code: int, text: str, *, close: bool, topic: str | None = None) -> None:
        # LocalProtocolError: the connection already ended its sending side.
        with contextlib.suppress(LocalProtocolError):
            self._send(Error(code, text, close, topic))

    def close_for_shutdown(self) -> None:
        """Server shutdown: DISCONNECT SERVER_SHUTTING_DOWN, then close."""
        if self.connected and not self.closing:
            self._send(Disconnect(ErrorCode.SERVER_SHUTTING_DOWN, "the server is shutting down"))
        self._close()

    def take_over(self) -> None:
        """A newer connection claims this client name."""
        log.info("native client %r: taken over by a new connection; closing %s",
                 self.client_name, self.peer)
        if self.connected and not self.closing:
            self._send(Disconnect(ErrorCode.SESSION_TAKEN_OVER,
                                  "a newer connection with this client name replaced this one"))
        self._end_session()
        self._close()

    # --- DeliverySink (called by the session) --------------------------------------

    def can_send(self) -> bool:
        if self.write_paused or self.closing:
            return False
        credit = self._codec.credit
        return credit is None or credit > self._queued

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        packet_id: int,
        dup: bool,
    ) -> None:
        ids = self._ids_cache.get(subscription_ids)
        if ids is None:
            ids = self._native_ids(subscription_ids)
        encoded = self._encode(message, retain)
        if encoded is None or not ids:
            self.stats.dropped += 1  # expired on the way, or unsubscribed meanwhile
            return
        size = len(encoded)
        limit = self._codec.peer_max_frame_size
        batches = self._batches
        batch = batches[-1] if batches else None
        if (
            batch is not None
            and batch.ids == ids
            and deliver_size_bound(len(ids), batch.size + size) <= limit
        ):
            batch.messages.append(encoded)
            batch.size += size
        elif deliver_size_bound(len(ids), size) > limit:
            # Never send a frame larger than the client accepts: the message is
            # dropped for this client (as MQTT does beyond Maximum Packet Size).
            log.debug("native client %r: message of %d bytes to %r exceeds its frame limit "
                      "of %d; dropped", self.client_name, size, message.topic, limit)
            self.stats.dropped += 1
            return
        else:
            batches.append(_Batch(ids, [encoded], size))
        self._queued += 1
        stats = self.stats
        stats.publish_sent += 1
        stats.messages_sent += 1
        self._schedule_flush()

    def send_release(self, packet_id: int) -> None:  # pragma: no cover - no QoS 2 here
        raise NotImplementedError("the native protocol has no PUBREL")

    def queue_full(self) -> None:
        if self.settings.slow_consumer == "disconnect":
            log.info(
                "native client %r (%s) is not reading fast enough: its queue of %d messages "
                "is full; disconnecting (slow_consumer = \"disconnect\")",
                self.client_name, self.peer, self.settings.max_queued_messages,
            )
            self._send_error(ErrorCode.LIMIT_EXCEEDED,
                             "message queue full: the client is not reading fast enough",
                             close=True)
            self._end_session()
            self._close(linger=True)
            return
        now = self._loop.time()
        if now - self._queue_full_warned > 10.0:
            self._queue_full_warned = now
            log.warning(
                "native client %r (%s) is not reading fast enough (or grants no credit): "
                "queue full, dropping new messages",
                self.client_name, self.peer,
            )

    def _native_ids(self, slots: tuple[int, ...]) -> tuple[int, ...]:
        """The native subscription ids of core subscription identifiers (cached,
        unless a shared subscription takes turns among several ids)."""
        by_identifier = self._slots_by_identifier
        found: set[int] = set()
        rotating = False
        for identifier in slots:
            slot = by_identifier.get(identifier)
            if slot is None:
                continue
            ids = slot.subscription_ids
            if slot.shared and len(ids) > 1:
                rotating = True
                found.add(ids[slot.turn % len(ids)])
                slot.turn += 1
            else:
                found.update(ids)
        result = tuple(sorted(found))
        if not rotating:
            self._ids_cache[slots] = result
        return result

    def _encode(self, message: Message, retain: bool) -> bytes | None:
        """The message's DELIVER form: cached on the message unless it expires."""
        wire = message.wire
        if wire is None:
            wire = message.wire = {}
        if message.expires_at is None:
            key = _WIRE_KEYS[retain]
            data: bytes | None = wire.get(key)
            if data is None:
                data = wire[key] = encode_message(to_native(message, retain, None))
            return data
        left = message.expires_at - time.monotonic()
        if left <= 0:
            return None
        return encode_message(to_native(message, retain, max(1, int(left * 1000))))

    # --- errors and closing ---------------------------------------------------------

    def _protocol_error(self, code: int, text: str) -> None:
        """The client broke the protocol: ERROR with the code, then close."""
        self.stats.protocol_errors += 1
        if not self.connected:
            self.stats.connections_refused += 1
        log.info("closing native %s connection from %s (client %r): %s [code %d]",
                 self.transport_name, self.peer, self.client_name or "-", text, code)
        self._send_error(code, text, close=True)
        self._end_session()  # at once: nothing is delivered to a closing connection
        self._close(linger=True)

    def _refuse(self, code: ErrorCode, text: str) -> None:
        """Answer CONNECT with a refusal (an ERROR, which always closes)."""
        self.stats.connections_refused += 1
        log.info("refused native connection from %s: %s", self.peer, text)
        self._send_error(code, text, close=True)
        self._close(linger=True)

    def _keepalive_timeout(self, idle: float) -> None:
        # docs/protocol.md, "Keepalive": nothing for 1.5 x the period closes.
        log.info("native client %r (%s) silent for %.1f s (keepalive %d s): closing",
                 self.client_name, self.peer, idle, self.keepalive)
        self._send_error(ErrorCode.KEEPALIVE_TIMEOUT,
                         f"nothing received for {idle:.1f} s (keepalive {self.keepalive} s)",
                         close=True)
        self._end_session()
        self._close(linger=True)

    # --- backpressure on publishers (the router's congestion signal) -----------------

    def _resume(self) -> None:
        """Route the messages the throttle held back, then the frames (base class)."""
        if self._held_messages and not self.closing and not self._throttle.paused:
            self._route(self._held_messages)
        super()._resume()

    def _end_session(self) -> None:
        guaranteed = self._guaranteed
        if guaranteed is not None:
            # Unsettled queue messages go back (for others); our temporary queues go.
            self._guaranteed = None
            guaranteed.close()
        session = self.session
        if session is None:
            return
        self.session = None
        if self.connected:
            self.stats.clients_connected -= 1
        if session.sink is self:
            session.detach()
        # Native sessions are not persistent: subscriptions and the inbox go too.
        self.vpn.end_session(session)

    # --- frame handlers -----------------------------------------------------------

    def _on_connect(self, event: Connect) -> None:
        vpn_name = event.vpn
        vpn = self.vpn if vpn_name is None else self._vpns.get(vpn_name)
        if vpn is None:
            self._refuse(ErrorCode.UNKNOWN_VPN, f"VPN {vpn_name!r} does not exist on this broker")
            return
        self.vpn = vpn
        # Authentication is not implemented yet: every VPN admits any username and
        # password (the server says so in its start-up log).
        name = event.client_name
        if name is None:
            name = "warren-" + uuid.uuid4().hex[:16]
        else:
            problem = self._name_problem(name)
            if problem is not None:
                self._refuse(ErrorCode.INVALID_CLIENT_NAME, problem)
                return
        existing = vpn.find_session(name)
        if existing is not None:
            holder = existing.sink
            if isinstance(holder, NativeConnection) and holder is not self:
                holder.take_over()
            else:
                self._refuse(
                    ErrorCode.CLIENT_NAME_IN_USE,
                    f"client name {name!r} is in use in VPN {vpn.name!r} by another "
                    "protocol's session",
                )
                return
        self.client_name = name
        session = Session(
            name,
            vpn,
            username=event.username,
            max_queued=self.settings.max_queued_messages,
            queue_qos0=False,
        )
        vpn.add_session(session)
        self.session = session
        prefix = inbox_prefix(name)
        # The reply inbox: delivered with subscription id 0, without SUBSCRIBE. Added
        # directly: Router.check_subscribe refuses inbox filters to everyone else.
        vpn.router.add(Subscription(session, prefix + ">", inbox_filter(name),
                                    identifier=INBOX_SLOT))
        keepalive = event.keepalive
        server_max = self.settings.server_keepalive
        if server_max and (keepalive == 0 or keepalive > server_max):
            keepalive = server_max
        self.keepalive = keepalive
        self._send(Connected(
            session_id=uuid.uuid4().hex,
            client_name=name,
            inbox_prefix=prefix,
            max_frame_size=self.settings.max_frame_size,
            keepalive=keepalive,
            capabilities=(GUARANTEED,) if GUARANTEED in event.capabilities else (),
        ))
        if GUARANTEED in event.capabilities:
            self._guaranteed = Guaranteed(self)
        self._established(keepalive)
        self.stats.client_connected()
        log.debug("native client %r connected from %s over %s to VPN %r (keepalive %d s)",
                  name, self.peer, self.transport_name, vpn.name, keepalive)
        session.attach(self)

    def _name_problem(self, name: str) -> str | None:
        limit = self.settings.max_client_name_length
        if len(name) > limit:
            return f"client name is {len(name)} characters; the limit is {limit}"
        for char in _NAME_FORBIDDEN:
            if char in name:
                return f"client name {name!r} must not contain {char!r}"
        return None

    def _on_publish(self, event: Publish) -> None:
        session = self.session
        assert session is not None
        if event.first_id is not None:
            if self._guaranteed is not None:
                self._guaranteed.publish(event.first_id, event.messages, from_native)
                return
            last = event.first_id + len(event.messages) - 1
            self._send(Nack(((event.first_id, last),), ErrorCode.NOT_SUPPORTED,
                            "persistent publishing needs the 'guaranteed' capability "
                            "(ask for it in CONNECT)"))
            return
        self._route(deque(event.messages))

    def _route(self, messages: deque[NativeMessage]) -> None:
        """Publish messages in order; a congested subscriber stops the rest (they
        are held until it drains, see _throttle)."""
        session = self.session
        assert session is not None
        router = self.vpn.router
        acl_open = router.acl.is_open
        now = time.monotonic()
        while messages:
            m = messages.popleft()
            topic = m.topic
            if "\0" in topic:
                self._send_error(ErrorCode.INVALID_TOPIC, "a topic must not contain U+0000",
                                 close=False, topic=topic)
                continue
            try:
                if topic.startswith("$SYS"):
                    raise NotAuthorized(f"$SYS topics are written by the broker only: {topic!r}")
                if not acl_open:
                    router.check_publish(session.username, topic)
            except NotAuthorized as exc:
                log.debug("native client %r: %s", self.client_name, exc)
                self._send_error(ErrorCode.NOT_AUTHORIZED, str(exc), close=False, topic=topic)
                continue
            router.publish(from_native(m, now), session)
            if router.congested is not None:
                self._throttle.engage(router.congested, self.session)
                if self._throttle.paused:
                    if messages is not self._held_messages:
                        self._held_messages.extend(messages)
                    return

    def _on_credit(self, event: Credit) -> None:
        # The codec has added the credit; deliveries that waited can go.
        session = self.session
        if session is not None and session.pending:
            session.drain()
        if self._guaranteed is not None:
            self._guaranteed.writable()

    def _result(self, request_id: int, code: int = 0, text: str = "") -> None:
        self._send(Result(request_id, code, text))

    def _on_subscribe(self, event: Subscribe) -> None:
        session = self.session
        assert session is not None
        text = event.filter
        try:
            group: str | None = None
            filter_text = text
            shared = parse_shared_subscription(text, SHARE_MARKER)
            if shared is not None:
                group, filter_text = shared
            topic_filter = parse_native_filter(filter_text)
        except InvalidTopic as exc:
            self._result(event.request_id, ErrorCode.INVALID_FILTER, str(exc))
            return
        router = self.vpn.router
        decision = router.check_subscribe(session.username, topic_filter)
        if decision is AclDecision.DENY:
            log.debug("native client %r: not authorized to subscribe to %r",
                      self.client_name, text)
            self._result(event.request_id, ErrorCode.NOT_AUTHORIZED,
                         f"not authorized to subscribe to {text!r}")
            return
        slot = self._slots.get(text)
        if slot is None:
            self._next_slot += 1
            slot = _Slot(self._next_slot, shared=group is not None)
            router.add(Subscription(
                session,
                text,
                topic_filter,
                qos=0,
                identifier=slot.identifier,
                share_group=group,
                filtered=decision is AclDecision.FILTERED,
            ))
            self._slots[text] = slot
            self._slots_by_identifier[slot.identifier] = slot
        sub_id = event.subscription_id
        if sub_id not in slot.subscription_ids:
            slot.subscription_ids.append(sub_id)
            self._filters_by_id.setdefault(sub_id, set()).add(text)
            self._ids_cache.clear()
        self._result(event.request_id)
        if group is None:
            # Retained messages follow the RESULT, flagged retained (as in MQTT).
            acl = router.acl
            ids = (slot.identifier,)
            for message in router.retained_for(topic_filter):
                if decision is AclDecision.FILTERED and not acl.can_read(
                    session.username, message.topic
                ):
                    continue
                session.deliver(message, 0, True, ids)

    def _on_unsubscribe(self, event: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        sub_id = event.subscription_id
        texts = self._filters_by_id.get(sub_id)
        if not texts or (event.filter is not None and event.filter not in texts):
            what = f"filter {event.filter!r} of " if event.filter is not None else ""
            self._result(event.request_id, ErrorCode.UNKNOWN_SUBSCRIPTION,
                         f"no {what}subscription {sub_id}")
            return
        targets = list(texts) if event.filter is None else [event.filter]
        router = self.vpn.router
        for text in targets:
            texts.discard(text)
            slot = self._slots[text]
            slot.subscription_ids.remove(sub_id)
            if not slot.subscription_ids:
                router.remove(session, text)
                del self._slots[text]
                del self._slots_by_identifier[slot.identifier]
        if not texts:
            del self._filters_by_id[sub_id]
        self._ids_cache.clear()
        self._result(event.request_id)

    def _on_ping(self, event: Ping) -> None:
        self._send(Pong())

    def _on_pong(self, event: Pong) -> None:
        pass  # arrival alone counts for the keepalive

    def _on_bind(self, event: Bind) -> None:
        if self._guaranteed is None:
            self._result(event.request_id, ErrorCode.NOT_SUPPORTED,
                         "BIND needs the 'guaranteed' capability (ask for it in CONNECT)")
            return
        code, text = self._guaranteed.bind(event)
        self._result(event.request_id, code, text)
        if not code:
            self._guaranteed.start(event.subscription_id)  # deliveries after the RESULT

    def _on_unbind(self, event: Unbind) -> None:
        if self._guaranteed is None:
            self._result(event.request_id, ErrorCode.NOT_SUPPORTED,
                         "UNBIND needs the 'guaranteed' capability (ask for it in CONNECT)")
            return
        code, text = self._guaranteed.unbind(event)
        self._result(event.request_id, code, text)

    def _on_settle(self, event: Ack | Nack) -> None:
        if self._guaranteed is not None:
            self._guaranteed.settle(event)
            return
        # Only guaranteed deliveries are settled, and 'guaranteed' was not granted.
        self._protocol_error(ErrorCode.PROTOCOL_ERROR,
                             f"{event.frame_type.name} without the 'guaranteed' capability")

    def _on_error(self, event: Error) -> None:
        log.info("native client %r (%s) reported error %d: %s", self.client_name, self.peer,
                 event.code, event.text)
        if event.close:
            self._close()

    def _on_disconnect(self, event: Disconnect) -> None:
        if event.code:
            log.info("native client %r (%s) disconnected with code %d: %s",
                     self.client_name, self.peer, event.code, event.text)
        self._end_session()
        self._close()
