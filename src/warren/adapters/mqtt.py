"""MQTT 3.1.1 / 5.0 server connections.

One :class:`MQTTConnection` per network connection, for TCP and WebSocket alike (the
WebSocket adapter hands it a transport of its own). It is a
:class:`~warren.adapters.connection.Connection`, an ``asyncio.Protocol`` that
brings what every protocol shares:

- the reader is ``data_received``: bytes go into the sans-I/O codec and every
  complete packet is handled synchronously, in arrival order — no task per packet;
- the writer is one flush per event-loop iteration: everything produced while
  handling input or fanning out deliveries is appended to a list, and a single
  ``transport.write`` sends it (batched writes, one syscall per wake-up);
- backpressure: when the transport's buffer passes its high-water mark,
  ``pause_writing`` makes the session queue (bounded) instead of writing; a
  congested subscriber pauses reading from its publishers (``Throttle``);
- the connect timeout, the keep-alive check and lingering close.

This module holds MQTT's part: the packet handlers, sessions and wills, and how a
protocol error becomes a CONNACK or DISCONNECT reason code.

This module is the only place where MQTT's topic syntax and properties are
translated to and from :class:`warren.core.message.Message`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from warren.adapters.connection import Connection
from warren.codecs.mqtt import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Role,
    SubAck,
    Subscribe,
    UnsubAck,
    Unsubscribe,
    encode_properties,
    encode_publish,
)
from warren.codecs.mqtt import (
    MQTTConnection as MQTTCodec,
)
from warren.core.acl import AclDecision
from warren.core.message import Message
from warren.core.persistence import MessageCache
from warren.core.router import NotAuthorized
from warren.core.sessions import Delivery, Session, Subscription
from warren.core.topics import InvalidTopic, parse_mqtt_filter, parse_shared_subscription
from warren.core.vpn import Vpn
from warren.errors import RemoteProtocolError
from warren.store.errors import StorageError
from warren.store.records import (
    DeleteIncomingQos2,
    DeleteSession,
    DeleteSessionSubscription,
    IncomingQos2Record,
    PutIncomingQos2,
    PutSession,
    PutSessionSubscription,
    SessionDelivery,
    SessionRecord,
    SessionSubscriptionRecord,
)

__all__ = [
    "MQTTConnection",
    "MqttSettings",
    "ReasonCode",
    "restore_delivery",
    "restore_incoming_qos2",
    "restore_session",
    "restore_subscription",
]

log = logging.getLogger("warren.mqtt")


class ReasonCode:
    """MQTT 5 reason codes used by the server (MQTT 5.0 section 2.4)."""

    SUCCESS = 0x00
    DISCONNECT_WITH_WILL = 0x04
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_ID_NOT_VALID = 0x85
    BAD_USERNAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_ID_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    QUOTA_EXCEEDED = 0x97
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E


# MQTT 3.1.1 CONNACK return codes (MQTT 3.1.1 section 3.2.2.3), mapped from the
# MQTT 5 reason codes the rest of the code uses. The one place this mapping lives.
_V3_CONNACK = {
    ReasonCode.UNSUPPORTED_PROTOCOL_VERSION: 0x01,
    ReasonCode.CLIENT_ID_NOT_VALID: 0x02,
    ReasonCode.SERVER_UNAVAILABLE: 0x03,
    ReasonCode.BAD_USERNAME_OR_PASSWORD: 0x04,
    ReasonCode.NOT_AUTHORIZED: 0x05,
}

# A 3.1.1 CONNACK refusing the protocol level, for when we never learnt the version.
_V3_CONNACK_BAD_VERSION = bytes((0x20, 0x02, 0x00, 0x01))

_SESSION_NEVER_EXPIRES = 0xFFFFFFFF
_PUBACK_HEADER = bytes((0x40, 0x02))


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """The MQTT listener settings (built by the server from ``[mqtt]``)."""

    max_packet_size: int = 1_048_576
    server_keep_alive: int = 0
    receive_maximum: int = 1024
    topic_alias_maximum: int = 16
    max_queued_messages: int = 1000
    queue_qos0_messages: bool = False
    max_session_expiry: int = _SESSION_NEVER_EXPIRES
    max_outbound_bytes: int = 8 * 1024 * 1024
    slow_consumer: str = "queue"  # or "disconnect"
    max_client_id_length: int = 128
    connect_timeout: float = 10.0
    acl_refusal_code: int = 0x87  # MQTT 5 SUBACK code for an ACL-refused filter


class _Violation(RemoteProtocolError):
    """A protocol rule broken by the client, found by this adapter (not the codec)."""

    def __init__(self, reason_code: int, message: str) -> None:
        super().__init__(message, reason_code)


class _SessionTimers:
    """Per-session timers owned by this adapter: delayed will and session expiry."""

    __slots__ = ("expiry_handle", "will", "will_handle")

    def __init__(self) -> None:
        self.will_handle: asyncio.TimerHandle | None = None
        self.will: Publish | None = None
        self.expiry_handle: asyncio.TimerHandle | None = None

    def cancel(self) -> None:
        if self.will_handle is not None:
            self.will_handle.cancel()
            self.will_handle = None
            self.will = None
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
            self.expiry_handle = None


def _timers(session: Session) -> _SessionTimers:
    state = session.protocol_state
    if not isinstance(state, _SessionTimers):
        state = _SessionTimers()
        session.protocol_state = state
    return state


class MQTTConnection(Connection):
    """The server side of one MQTT connection (see module docstring)."""

    protocol_name = "MQTT"  # [MQTT-3.1.4] no CONNECT in time: closed (connect timer)
    logger = log
    _codec: MQTTCodec

    def __init__(
        self,
        vpn: Vpn,
        settings: MqttSettings,
        *,
        transport_name: str = "tcp",
        on_close: Callable[[MQTTConnection], None] | None = None,
    ) -> None:
        super().__init__(vpn, settings, on_close)
        self.settings = settings
        self.transport_name = transport_name
        self._codec = MQTTCodec(Role.SERVER, max_packet_size=settings.max_packet_size)
        self.v5 = False
        self.level = 4
        self.client_id = ""
        self.username: str | None = None
        self.will: Publish | None = None
        self._will_delay = 0
        self.keep_alive = 0
        self._client_max_packet = 268_435_455
        self._problem_info = True
        self._aliases_in: dict[int, str] = {}
        self._alias_out_max = 0
        self._aliases_out: dict[str, int] = {}
        self._queue_full_warned = 0.0
        # PUBACK/PUBREC waiting for a store commit: while any is, later ones queue
        # behind it, so acknowledgements keep PUBLISH order [MQTT-4.6.0-2].
        self._acks_waiting = 0
        self._dispatch: dict[type, Callable[[Any], None]] = {
            Publish: self._on_publish,
            PubAck: self._on_puback,
            PubRec: self._on_pubrec,
            PubRel: self._on_pubrel,
            PubComp: self._on_pubcomp,
            Subscribe: self._on_subscribe,
            Unsubscribe: self._on_unsubscribe,
            PingReq: self._on_pingreq,
            Disconnect: self._on_disconnect,
            Connect: self._on_connect,
            Auth: self._on_auth,
        }

    def __repr__(self) -> str:
        return f"<MQTTConnection {self.client_id!r} from {self.peer} over {self.transport_name}>"

    # --- Connection ------------------------------------------------------------------

    def _release(self, exc: Exception | None) -> None:
        if self.connected:
            log.debug("client %r (%s) disconnected%s", self.client_id, self.peer,
                      f": {exc}" if exc else "")
        if self.session is not None:
            self._end_connection(publish_will=True)

    def close_for_shutdown(self) -> None:
        """Server shutdown: DISCONNECT 0x8B for MQTT 5 clients, then close."""
        if self.connected and self.v5 and not self.closing:
            self._send(Disconnect(ReasonCode.SERVER_SHUTTING_DOWN))
        self._close()

    # --- DeliverySink (called by the session) --------------------------------------

    def can_send(self) -> bool:
        return not self.write_paused and not self.closing

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        packet_id: int,
        dup: bool,
    ) -> None:
        data = self._encode_publish(message, qos, retain, subscription_ids, packet_id, dup)
        if len(data) > self._client_max_packet:
            # [MQTT-3.1.2-25] never send a packet larger than the client's maximum:
            # the message is discarded for this client as if delivered.
            self.stats.dropped += 1
            if packet_id and self.session is not None:
                self.session.acknowledge(packet_id)
            return
        stats = self.stats
        stats.publish_sent += 1
        stats.messages_sent += 1
        self._out.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def send_release(self, packet_id: int) -> None:
        self._send(PubRel(packet_id))

    def queue_full(self) -> None:
        now = self._loop.time()
        if self.settings.slow_consumer == "disconnect":
            log.info(
                "client %r (%s) is not reading fast enough: its queue of %d messages is "
                "full; disconnecting (slow_consumer = \"disconnect\")",
                self.client_id, self.peer, self.settings.max_queued_messages,
            )
            self._disconnect_client(ReasonCode.QUOTA_EXCEEDED, "message queue full")
        elif now - self._queue_full_warned > 10.0:
            self._queue_full_warned = now
            log.warning(
                "client %r (%s) is not reading fast enough: queue full, dropping new "
                "messages (raise [mqtt] max_queued_messages or set slow_consumer = "
                "\"disconnect\")",
                self.client_id, self.peer,
            )

    def _encode_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        subscription_ids: tuple[int, ...],
        packet_id: int,
        dup: bool,
    ) -> bytes:
        wire = message.wire
        if wire is None:
            wire = message.wire = {}
        level = self.level
        if not self.v5:
            if qos == 0:
                key = (4, retain)
                data = wire.get(key)
                if data is None:
                    data = wire[key] = encode_publish(
                        _topic_bytes(message, wire), message.payload, 0, retain, False, None,
                        None, 4,
                    )
                return data
            return encode_publish(
                _topic_bytes(message, wire), message.payload, qos, retain, dup, packet_id,
                None, 4,
            )
        # MQTT 5: properties may differ per delivery (subscription identifiers,
        # remaining expiry, topic alias); the common case is cached whole.
        plain = not subscription_ids and message.expires_at is None and not self._alias_out_max
        if plain:
            if qos == 0:
                key = (5, retain)
                data = wire.get(key)
                if data is None:
                    data = wire[key] = encode_publish(
                        _topic_bytes(message, wire), message.payload, 0, retain, False, None,
                        _v5_properties_block(message, wire), 5,
                    )
                return data
            return encode_publish(
                _topic_bytes(message, wire), message.payload, qos, retain, dup, packet_id,
                _v5_properties_block(message, wire), 5,
            )
        topic = _topic_bytes(message, wire)
        alias: int | None = None
        if self._alias_out_max:
            existing = self._aliases_out.get(message.topic)
            if existing is not None:
                alias, topic = existing, b""
            elif len(self._aliases_out) < self._alias_out_max:
                alias = len(self._aliases_out) + 1
                self._aliases_out[message.topic] = alias
        props = _message_properties(message, subscription_ids, alias)
        return encode_publish(
            topic, message.payload, qos, retain, dup, packet_id or None,
            encode_properties(props), level,
        )

    # --- errors and closing ---------------------------------------------------------

    def _protocol_error(self, reason_code: int, message: str) -> None:
        """The client broke the protocol: report with the reason code and close."""
        self.stats.protocol_errors += 1
        log.info(
            "closing %s connection from %s (client %r): %s [reason 0x%02X]",
            self.transport_name, self.peer, self.client_id or "-", message, reason_code,
        )
        if not self.connected:
            if reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
                # [MQTT-3.1.2-2] answer CONNACK 0x01 (3.1.1) / 0x84 (5.0), then close.
                if self._codec.protocol_level == 5:
                    self._send(ConnAck(False, reason_code))
                else:
                    self._write(_V3_CONNACK_BAD_VERSION)
            elif self._codec.protocol_level == 5 and reason_code >= 0x80:
                self._send(ConnAck(False, reason_code, self._reason(message)))
            self.stats.connections_refused += 1
        else:
            self._send_disconnect(reason_code, message)
        # [MQTT-4.13.1-1] a protocol error closes the connection; the will is published.
        self._end_connection(publish_will=True)
        self._close(linger=True)

    def _send_disconnect(self, reason_code: int, message: str) -> None:
        # 3.1.1 has no server DISCONNECT: closing the connection is the signal.
        if self.v5 and self.connected:
            self._send(Disconnect(reason_code, self._reason(message)))

    def _disconnect_client(self, reason_code: int, message: str) -> None:
        self._send_disconnect(reason_code, message)
        self._end_connection(publish_will=True)
        self._close(linger=True)

    def _reason(self, message: str) -> Properties:
        if not self._problem_info:
            return NO_PROPERTIES
        return Properties(reason_string=message)

    def _keepalive_timeout(self, idle: float) -> None:
        # [MQTT-3.1.2-24] nothing received for 1.5 x keep alive: the client is gone.
        log.info("client %r (%s) silent for %.1f s (keep alive %d s): closing",
                 self.client_id, self.peer, idle, self.keep_alive)
        self._disconnect_client(ReasonCode.KEEP_ALIVE_TIMEOUT, "keep alive timeout")

    def _end_connection(self, publish_will: bool) -> None:
        """Detach from the session; publish or schedule the will; expire the session."""
        session = self.session
        if session is None:
            return
        self.session = None
        stats = self.stats
        if self.connected:
            stats.clients_connected -= 1
        if session.sink is self:
            session.detach()
        will = self.will
        self.will = None
        vpn = self.vpn
        timers = _timers(session)
        if will is not None and publish_will:
            delay = self._will_delay
            if delay and session.persistent:
                # [MQTT-3.1.3-9] the will waits for the delay or the session's end,
                # whichever is first; a reconnect before then cancels it.
                expiry = session.expiry_interval
                if expiry != _SESSION_NEVER_EXPIRES:
                    delay = min(delay, expiry)
                timers.will = will
                timers.will_handle = self._loop.call_later(
                    delay, _publish_will, vpn, session, will
                )
            else:
                _publish_will(vpn, session, will)
        if not session.persistent:
            vpn.end_session(session)
            return
        if session.store_id and vpn.journal is not None:
            # STORE: the disconnect time starts the session's expiry, across restarts.
            vpn.journal.append(PutSession(_session_record(session, time.time())))
        if session.expiry_interval != _SESSION_NEVER_EXPIRES:
            timers.expiry_handle = self._loop.call_later(
                session.expiry_interval, _expire_session, vpn, session
            )

    def take_over(self) -> None:
        """Another connection claims this client id [MQTT-3.1.4-3]."""
        log.info("client %r: session taken over by a new connection; closing %s",
                 self.client_id, self.peer)
        self._send_disconnect(ReasonCode.SESSION_TAKEN_OVER, "session taken over")
        self._end_connection(publish_will=True)
        self._close()

    # --- packet handlers ------------------------------------------------------------

    def _on_connect(self, packet: Connect) -> None:
        settings = self.settings
        vpn = self.vpn
        self.level = packet.protocol_level
        self.v5 = v5 = packet.protocol_level == 5
        props = packet.properties
        if v5 and props.request_problem_information == 0:
            self._problem_info = False
        client_id = packet.client_id
        assigned: str | None = None
        if not client_id:
            if not v5 and not packet.clean_start:
                # [MQTT-3.1.3-8] an empty client id needs a clean session in 3.1.1.
                self._refuse(ReasonCode.CLIENT_ID_NOT_VALID,
                             "an empty client id requires clean session = 1")
                return
            client_id = assigned = "warren-" + uuid.uuid4().hex[:16]
        elif len(client_id) > settings.max_client_id_length:
            self._refuse(
                ReasonCode.CLIENT_ID_NOT_VALID,
                f"client id is {len(client_id)} characters; the limit is "
                f"{settings.max_client_id_length} ([mqtt] max_client_id_length)",
            )
            return
        if v5 and props.authentication_method is not None:
            # Enhanced authentication (AUTH exchanges) is not offered.
            self._refuse(ReasonCode.BAD_AUTHENTICATION_METHOD,
                         f"authentication method {props.authentication_method!r} "
                         "is not supported")
            return
        self.client_id = client_id
        self.username = packet.username

        # Keep alive: the server may shorten it [MQTT-3.2.2-21] (5.0 only: 3.1.1
        # cannot tell the client, so its value is honoured).
        keep_alive = packet.keep_alive
        server_keep_alive: int | None = None
        if v5 and settings.server_keep_alive and (
            keep_alive == 0 or keep_alive > settings.server_keep_alive
        ):
            keep_alive = server_keep_alive = settings.server_keep_alive
        self.keep_alive = keep_alive

        # Session expiry: 3.1.1 clean session 0 means "never expires".
        if v5:
            expiry = props.session_expiry_interval or 0
        else:
            expiry = 0 if packet.clean_start else _SESSION_NEVER_EXPIRES
        granted_expiry = min(expiry, settings.max_session_expiry)

        # Take over an existing connection with this client id [MQTT-3.1.4-3].
        session = vpn.find_session(client_id)
        if session is not None and session.sink is not None:
            # Whatever protocol holds the id, its connection is closed (the native
            # adapter has the same take_over); a foreign session is not resumed.
            take_over = getattr(session.sink, "take_over", None)
            if take_over is not None:
                take_over()
            session = vpn.find_session(client_id)
        foreign = session is not None and not isinstance(
            session.protocol_state, (_SessionTimers, type(None))
        )
        if session is not None and foreign:
            vpn.end_session(session)  # another protocol's session: start afresh
            session = None
        session_present = False
        if session is not None:
            _timers(session).cancel()  # a reconnect cancels a delayed will and expiry
            if packet.clean_start:
                vpn.end_session(session)
                session = None
            else:
                session_present = True
        if session is None:
            session = Session(
                client_id,
                vpn,
                username=packet.username,
                max_queued=settings.max_queued_messages,
                queue_qos0=settings.queue_qos0_messages,
            )
            vpn.add_session(session)
        session.username = packet.username
        session.persistent = granted_expiry > 0
        session.expiry_interval = granted_expiry
        session.receive_maximum = (
            props.receive_maximum if v5 and props.receive_maximum else 65535
        )
        journal = vpn.journal
        if journal is not None:
            if session.persistent:
                if not session.store_id:
                    session.store_id = journal.store.next_id()
                journal.append(PutSession(_session_record(session, None)))  # STORE
            elif session.store_id:
                # Resumed without expiry: it ends with this connection, so the store
                # forgets it now.
                journal.append(DeleteSession(session.store_id))  # STORE
                session.forget_store()
        if v5:
            if props.maximum_packet_size:
                self._client_max_packet = props.maximum_packet_size
            self._alias_out_max = props.topic_alias_maximum or 0
        self.session = session

        if packet.will is not None:
            will = packet.will
            self.will = Publish(will.topic, will.payload, will.qos, will.retain,
                                properties=will.properties)
            self._will_delay = will.properties.will_delay_interval or 0 if v5 else 0

        connack_props = NO_PROPERTIES
        if v5:
            connack_props = Properties(
                session_expiry_interval=granted_expiry if granted_expiry != expiry else None,
                receive_maximum=settings.receive_maximum,
                topic_alias_maximum=settings.topic_alias_maximum,
                maximum_packet_size=settings.max_packet_size,
                assigned_client_identifier=assigned,
                server_keep_alive=server_keep_alive,
            )
        self._send(ConnAck(session_present, ReasonCode.SUCCESS, connack_props))
        self._established(keep_alive)
        vpn.stats.client_connected()
        log.debug("client %r connected from %s over %s (MQTT %s, keep alive %d s)",
                  client_id, self.peer, self.transport_name, "5.0" if v5 else "3.1.1",
                  keep_alive)
        session.attach(self)

    def _refuse(self, reason_code: int, message: str) -> None:
        """Answer CONNECT with a failure CONNACK and close."""
        self.stats.connections_refused += 1
        log.info("refused connection from %s: %s", self.peer, message)
        if self.v5:
            self._send(ConnAck(False, reason_code, self._reason(message)))
        else:
            self._send(ConnAck(False, _V3_CONNACK.get(reason_code, 0x03)))
        self._close(linger=True)

    def _on_auth(self, packet: Auth) -> None:
        raise _Violation(ReasonCode.PROTOCOL_ERROR, "AUTH without an authentication method")

    def _on_publish(self, packet: Publish) -> None:
        session = self.session
        assert session is not None
        topic = packet.topic
        props = packet.properties
        qos = packet.qos
        if self.v5 and props is not NO_PROPERTIES:
            alias = props.topic_alias
            if alias is not None:
                if alias > self.settings.topic_alias_maximum:
                    # [MQTT-3.3.2-9] alias 0 or above our maximum: protocol violation.
                    raise _Violation(
                        ReasonCode.TOPIC_ALIAS_INVALID,
                        f"topic alias {alias} exceeds the maximum "
                        f"{self.settings.topic_alias_maximum}",
                    )
                if topic:
                    self._aliases_in[alias] = topic
                else:
                    known = self._aliases_in.get(alias)
                    if known is None:
                        raise _Violation(ReasonCode.PROTOCOL_ERROR,
                                         f"topic alias {alias} was never set")
                    topic = known
            message = _inbound_message(packet, topic, props)
        else:
            message = Message(topic, packet.payload, qos, packet.retain)
        if qos == 2 and packet.packet_id in session.incoming_qos2:
            # [MQTT-4.3.3-9] a resent QoS 2 PUBLISH is acknowledged, not routed again
            # (after the first one's commit, when that is still to come).
            journal = self.vpn.journal
            if self._acks_waiting and journal is not None:
                self._acks_waiting += 1
                journal.commit(partial(self._ack_committed, 2, packet.packet_id))
            else:
                self._send(PubRec(packet.packet_id))
            return
        if qos and len(session.incoming_qos2) >= self.settings.receive_maximum:
            # [MQTT-3.3.4-7] more unacknowledged QoS > 0 publishes than we allow.
            raise _Violation(ReasonCode.RECEIVE_MAXIMUM_EXCEEDED,
                             f"more than {self.settings.receive_maximum} QoS 2 messages "
                             "awaiting PUBREL")
        router = self.vpn.router
        try:
            if topic.startswith("$SYS"):
                raise NotAuthorized(f"$SYS topics are written by the broker only: {topic!r}")
            if not router.acl.is_open:
                router.check_publish(session.username, topic)
        except NotAuthorized as exc:
            log.debug("client %r: %s", self.client_id, exc)
            self._ack_refused(packet, str(exc))
            return
        journal = self.vpn.journal
        journalled = len(journal.pending) if qos and journal is not None else 0
        router.publish(message, session)
        if router.congested is not None:
            self._throttle.engage(router.congested, session)
        if journal is not None and qos and (
            len(journal.pending) > journalled or self._acks_waiting
        ):
            # The message is owed to a persistent session (or retained): acknowledge
            # it only once that is committed (DESIGN.md, step 5).
            packet_id: int = packet.packet_id  # type: ignore[assignment]
            if qos == 2:
                session.incoming_qos2.add(packet_id)
                if session.store_id:
                    journal.append(PutIncomingQos2(  # STORE
                        IncomingQos2Record(session.store_id, packet_id)
                    ))
            self._acks_waiting += 1
            journal.commit(partial(self._ack_committed, qos, packet_id))
            return
        if qos == 1:
            # A success PUBACK without properties is the same 4 bytes in 3.1.1 and 5.0
            # (MQTT 5.0 3.4.2.1: reason code and properties may be omitted).
            self.stats.messages_sent += 1
            self._write(_PUBACK_HEADER + packet.packet_id.to_bytes(2, "big"))  # type: ignore[union-attr]
        elif qos == 2:
            session.incoming_qos2.add(packet.packet_id)  # type: ignore[arg-type]
            self._send(PubRec(packet.packet_id))  # type: ignore[arg-type]

    def _ack_committed(self, qos: int, packet_id: int, error: StorageError | None) -> None:
        """The store committed (or refused) what a QoS >= 1 PUBLISH was owed."""
        self._acks_waiting -= 1
        if self.closing:
            return
        if error is None:
            if qos == 1:
                self.stats.messages_sent += 1
                self._write(_PUBACK_HEADER + packet_id.to_bytes(2, "big"))
            else:
                self._send(PubRec(packet_id))
            return
        # Never acknowledge what was not kept: 5.0 is told (0x80), 3.1.1 has no
        # failure code for PUBACK/PUBREC, so its connection is closed.
        log.warning("client %r: message not acknowledged: %s", self.client_id, error)
        if self.session is not None:
            self.session.incoming_qos2.discard(packet_id)
        if not self.v5:
            self._disconnect_client(ReasonCode.UNSPECIFIED_ERROR, "storage failure")
            return
        props = self._reason("the broker could not store the message")
        if qos == 1:
            self._send(PubAck(packet_id, ReasonCode.UNSPECIFIED_ERROR, props))
        else:
            self._send(PubRec(packet_id, ReasonCode.UNSPECIFIED_ERROR, props))

    def _ack_refused(self, packet: Publish, why: str) -> None:
        if packet.qos == 0:
            return
        assert packet.packet_id is not None
        code = ReasonCode.NOT_AUTHORIZED if self.v5 else 0
        props = self._reason(why) if self.v5 else NO_PROPERTIES
        if packet.qos == 1:
            self._send(PubAck(packet.packet_id, code, props))
        else:
            # A failed PUBREC ends the exchange [MQTT-4.3.3]; 3.1.1 has no failure
            # code, so it completes normally and the message is discarded.
            if not self.v5:
                assert self.session is not None
                self.session.incoming_qos2.add(packet.packet_id)
            self._send(PubRec(packet.packet_id, code, props))

    def _on_puback(self, packet: PubAck) -> None:
        assert self.session is not None
        self.session.acknowledge(packet.packet_id)

    def _on_pubrec(self, packet: PubRec) -> None:
        session = self.session
        assert session is not None
        if packet.reason_code >= 0x80:
            session.acknowledge(packet.packet_id)  # the receiver refused: exchange over
            return
        if session.received(packet.packet_id):
            self._send(PubRel(packet.packet_id))
        elif self.v5:
            self._send(PubRel(packet.packet_id, ReasonCode.PACKET_ID_NOT_FOUND))
        else:
            self._send(PubRel(packet.packet_id))

    def _on_pubrel(self, packet: PubRel) -> None:
        session = self.session
        assert session is not None
        if packet.packet_id in session.incoming_qos2:
            session.incoming_qos2.discard(packet.packet_id)
            if session.store_id and self.vpn.journal is not None:
                self.vpn.journal.append(  # STORE
                    DeleteIncomingQos2(session.store_id, packet.packet_id)
                )
            self._send(PubComp(packet.packet_id))
        elif self.v5:
            self._send(PubComp(packet.packet_id, ReasonCode.PACKET_ID_NOT_FOUND))
        else:
            self._send(PubComp(packet.packet_id))

    def _on_pubcomp(self, packet: PubComp) -> None:
        assert self.session is not None
        self.session.acknowledge(packet.packet_id)

    def _on_subscribe(self, packet: Subscribe) -> None:
        session = self.session
        assert session is not None
        router = self.vpn.router
        acl = router.acl
        sub_id = packet.properties.subscription_identifiers
        identifier = sub_id[0] if sub_id else None
        codes: list[int] = []
        retained: list[tuple[Message, int, tuple[int, ...]]] = []
        for request in packet.subscriptions:
            text = request.topic_filter
            try:
                shared = parse_shared_subscription(text)
                group: str | None = None
                filter_text = text
                if shared is not None:
                    group, filter_text = shared
                    if request.no_local and self.v5:
                        # [MQTT-3.8.3-4] no local on a shared subscription.
                        raise _Violation(ReasonCode.PROTOCOL_ERROR,
                                         "no local is not allowed on a shared subscription")
                topic_filter = parse_mqtt_filter(filter_text)
            except InvalidTopic as exc:
                log.debug("client %r: refused subscription: %s", self.client_id, exc)
                codes.append(ReasonCode.TOPIC_FILTER_INVALID if self.v5 else 0x80)
                continue
            # Broker rules (no subscribing into reply inboxes), then the ACL.
            decision = router.check_subscribe(session.username, topic_filter)
            if decision is AclDecision.DENY:
                log.debug("client %r: not authorized to subscribe to %r",
                          self.client_id, text)
                codes.append(self.settings.acl_refusal_code if self.v5 else 0x80)
                continue
            sub = Subscription(
                session,
                text,
                topic_filter,
                qos=request.qos,
                no_local=request.no_local,
                retain_as_published=request.retain_as_published if self.v5 else False,
                retain_handling=request.retain_handling,
                identifier=identifier,
                share_group=group,
                filtered=decision is AclDecision.FILTERED,
            )
            is_new = router.add(sub)
            if session.store_id and self.vpn.journal is not None:
                self.vpn.journal.append(PutSessionSubscription(  # STORE
                    _subscription_record(session.store_id, sub)
                ))
            codes.append(request.qos)
            # [MQTT-3.3.1-9..11] retained messages per retain handling; none for a
            # shared subscription [MQTT 5.0 4.8.2].
            if group is None and (
                sub.retain_handling == 0 or (sub.retain_handling == 1 and is_new)
            ):
                ids: tuple[int, ...] = (identifier,) if identifier is not None else ()
                for message in router.retained_for(topic_filter):
                    if sub.filtered and not acl.can_read(session.username, message.topic):
                        continue
                    retained.append((message, min(message.qos, request.qos), ids))
        self._send(SubAck(packet.packet_id, tuple(codes)))
        # Retained messages follow the SUBACK, flagged retained [MQTT-3.3.1-8].
        for message, qos, ids in retained:
            session.deliver(message, qos, True, ids)

    def _on_unsubscribe(self, packet: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        router = self.vpn.router
        journal = self.vpn.journal if session.store_id else None
        codes = []
        for text in packet.topic_filters:
            if router.remove(session, text):
                codes.append(ReasonCode.SUCCESS)
                if journal is not None:
                    journal.append(DeleteSessionSubscription(session.store_id, text))  # STORE
            else:
                codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
        self._send(UnsubAck(packet.packet_id, tuple(codes)))

    def _on_pingreq(self, packet: PingReq) -> None:
        self._send(PingResp())

    def _on_disconnect(self, packet: Disconnect) -> None:
        session = self.session
        assert session is not None
        new_expiry = packet.properties.session_expiry_interval
        if new_expiry is not None:
            if session.expiry_interval == 0 and new_expiry != 0:
                # [MQTT-3.14.2-2] cannot turn a non-persistent session persistent.
                raise _Violation(ReasonCode.PROTOCOL_ERROR,
                                 "session expiry cannot be set on DISCONNECT when it "
                                 "was 0 at CONNECT")
            session.expiry_interval = min(new_expiry, self.settings.max_session_expiry)
            session.persistent = session.expiry_interval > 0
        # [MQTT-3.14.4-3] a normal DISCONNECT discards the will; 0x04 asks for it.
        publish_will = packet.reason_code == ReasonCode.DISCONNECT_WITH_WILL
        self._end_connection(publish_will=publish_will)
        self._close()


# --- translation between MQTT and core.Message ---------------------------------------


def _inbound_message(packet: Publish, topic: str, props: Properties) -> Message:
    expiry = props.message_expiry_interval
    return Message(
        topic,
        packet.payload,
        packet.qos,
        packet.retain,
        content_type=props.content_type,
        correlation_data=props.correlation_data,
        response_topic=props.response_topic,
        user_properties=props.user_properties,
        payload_format_utf8=props.payload_format_indicator == 1,
        expires_at=None if expiry is None else time.monotonic() + expiry,
    )


def _topic_bytes(message: Message, wire: dict[Any, Any]) -> bytes:
    topic = wire.get("topic")
    if topic is None:
        topic = wire["topic"] = message.topic.encode()
    return topic


def _message_properties(
    message: Message, subscription_ids: tuple[int, ...] = (), alias: int | None = None
) -> Properties:
    return Properties(
        payload_format_indicator=1 if message.payload_format_utf8 else None,
        # [MQTT-3.3.2-6] forward the remaining lifetime, not the original one.
        message_expiry_interval=message.remaining_expiry(),
        content_type=message.content_type,
        response_topic=message.response_topic,
        correlation_data=message.correlation_data,
        subscription_identifiers=subscription_ids,
        topic_alias=alias,
        user_properties=message.user_properties,
    )


def _v5_properties_block(message: Message, wire: dict[Any, Any]) -> bytes | None:
    """The message's MQTT 5 property block, encoded once per message."""
    if "p5" in wire:
        return wire["p5"]  # type: ignore[no-any-return]
    block = encode_properties(_message_properties(message)) if message.has_properties else None
    wire["p5"] = block
    return block


def _publish_will(vpn: Vpn, session: Session, will: Publish) -> None:
    timers = session.protocol_state
    if isinstance(timers, _SessionTimers):
        timers.will_handle = None
        timers.will = None
    message = _inbound_message(will, will.topic, will.properties)
    try:
        if not vpn.router.acl.is_open:
            vpn.router.check_publish(session.username, will.topic)
    except NotAuthorized as exc:
        log.info("will of client %r not published: %s", session.client_id, exc)
        return
    vpn.router.publish(message, None)


def _expire_session(vpn: Vpn, session: Session) -> None:
    timers = _timers(session)
    timers.expiry_handle = None
    if session.sink is not None:
        return
    if timers.will_handle is not None and timers.will is not None:
        # The session ends before the will delay: the will goes now [MQTT-3.1.3-9].
        will = timers.will
        timers.cancel()
        _publish_will(vpn, session, will)
    log.debug("session %r expired", session.client_id)
    vpn.end_session(session)


# --- durable sessions: records and recovery (docs/storage.md) -----------------------


def _session_record(session: Session, disconnected_at: float | None) -> SessionRecord:
    return SessionRecord(
        session.store_id,
        session.vpn.name,
        session.client_id,
        session.username,
        session.expiry_interval,
        disconnected_at,
    )


def _subscription_record(session_id: int, sub: Subscription) -> SessionSubscriptionRecord:
    return SessionSubscriptionRecord(
        session_id,
        sub.key,
        sub.qos,
        sub.no_local,
        sub.retain_as_published,
        sub.retain_handling,
        sub.identifier,
    )


def restore_session(vpn: Vpn, record: SessionRecord, settings: MqttSettings) -> Session:
    """Start-up: a stored persistent session, offline, its expiry running again."""
    session = Session(
        record.client_id,
        vpn,
        username=record.username,
        persistent=True,
        expiry_interval=record.expiry_interval,
        max_queued=settings.max_queued_messages,
        queue_qos0=settings.queue_qos0_messages,
    )
    session.store_id = record.id
    # A crash leaves no disconnect time: the session is offline from now on.
    offline_for = 0.0 if record.disconnected_at is None else time.time() - record.disconnected_at
    session.disconnected_at = time.monotonic() - max(0.0, offline_for)
    vpn.add_session(session)
    if record.expiry_interval != _SESSION_NEVER_EXPIRES:
        remaining = max(0.0, record.expiry_interval - offline_for)
        _timers(session).expiry_handle = asyncio.get_running_loop().call_later(
            remaining, _expire_session, vpn, session
        )
    return session


def restore_subscription(session: Session, record: SessionSubscriptionRecord) -> None:
    """Start-up: one subscription of a restored session (the ACL is asked again)."""
    router = session.vpn.router
    text = record.key
    try:
        shared = parse_shared_subscription(text)
        group, filter_text = shared if shared is not None else (None, text)
        topic_filter = parse_mqtt_filter(filter_text)
    except InvalidTopic as exc:
        log.warning("session %r: stored subscription %r dropped: %s",
                    session.client_id, text, exc)
        return
    decision = router.check_subscribe(session.username, topic_filter)
    if decision is AclDecision.DENY:
        log.warning("session %r: stored subscription %r dropped: the ACL now refuses it",
                    session.client_id, text)
        return
    router.add(Subscription(
        session,
        text,
        topic_filter,
        qos=record.qos,
        no_local=record.no_local,
        retain_as_published=record.retain_as_published,
        retain_handling=record.retain_handling,
        identifier=record.identifier,
        share_group=group,
        filtered=decision is AclDecision.FILTERED,
    ))


def restore_delivery(session: Session, record: SessionDelivery, messages: MessageCache) -> None:
    """Start-up: a delivery owed to a restored session; one sent before is resent
    with DUP (or its PUBREL) when the client comes back [MQTT-4.4.0-1]."""
    delivery = Delivery(
        messages.get(record.message),
        record.qos,
        record.retain,
        tuple(record.subscription_ids),
        record.packet_id,
        record.state,
        record.id,
    )
    if delivery.state and delivery.packet_id not in session.inflight:
        session.inflight[delivery.packet_id] = delivery
    else:
        delivery.packet_id = delivery.state = 0
        session.pending.append(delivery)


def restore_incoming_qos2(session: Session, record: IncomingQos2Record) -> None:
    """Start-up: an inbound QoS 2 id whose PUBREL is still to come [MQTT-4.3.3-9]."""
    session.incoming_qos2.add(record.packet_id)
