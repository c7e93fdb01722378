"""AMQP 0-9-1 server connections (RabbitMQ clients: pika, aio-pika, kombu ...).

One :class:`AMQPConnection` per network connection, a
:class:`~warren.adapters.connection.Connection` (an ``asyncio.Protocol``) like the
MQTT adapter: ``data_received`` feeds the sans-I/O codec and handles every event
synchronously in arrival order; output is appended to a list and written once per
event-loop iteration; when the transport passes its high-water mark, consumers stop
being offered messages (they stay in their queues) until it drains. A publisher
whose messages fill an MQTT or native subscriber's queue is not read until that
subscriber drains (``Throttle``). While the broker's memory alarm is raised
(:mod:`warren.core.watermark`), a connection that publishes is sent
connection.blocked and is not read until the alarm clears.

Errors follow the spec and RabbitMQ (section 1.2 of the spec's "constants"):

- a *channel exception* (403, 404, 405, 406) closes the channel with channel.close;
  frames on that channel are discarded until the client's channel.close-ok;
- a *connection exception* (501-506, 530, 540, 541) closes the connection with
  connection.close; everything but close/close-ok is discarded until close-ok;
- the reply text names what was wrong, in RabbitMQ's words where clients match on
  them (``NOT_FOUND - no queue 'q' in vhost '/'``).

Exchanges, bindings and the property mapping are in :mod:`.amqp_broker`; queues are
the core's (:mod:`warren.core.queues`).
"""

from __future__ import annotations

import base64
import logging
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, cast

from warren import __version__
from warren.adapters.connection import Connection
from warren.codecs.amqp import HEARTBEAT as HEARTBEAT_EVENT
from warren.codecs.amqp import AMQPConnection as AMQPCodec
from warren.codecs.amqp import (
    AMQPRemoteError,
    BasicAck,
    BasicCancel,
    BasicCancelOk,
    BasicConsume,
    BasicConsumeOk,
    BasicGet,
    BasicGetEmpty,
    BasicGetOk,
    BasicNack,
    BasicPublish,
    BasicQos,
    BasicQosOk,
    BasicRecover,
    BasicRecoverAsync,
    BasicRecoverOk,
    BasicReject,
    BasicReturn,
    ChannelClose,
    ChannelCloseOk,
    ChannelFlow,
    ChannelFlowOk,
    ChannelOpen,
    ChannelOpenOk,
    ConfirmSelect,
    ConfirmSelectOk,
    ConnectionBlocked,
    ConnectionClose,
    ConnectionCloseOk,
    ConnectionOpen,
    ConnectionOpenOk,
    ConnectionSecureOk,
    ConnectionStart,
    ConnectionStartOk,
    ConnectionTune,
    ConnectionTuneOk,
    ConnectionUnblocked,
    ConnectionUpdateSecret,
    ConnectionUpdateSecretOk,
    ExchangeBind,
    ExchangeBindOk,
    ExchangeDeclare,
    ExchangeDeclareOk,
    ExchangeDelete,
    ExchangeDeleteOk,
    ExchangeUnbind,
    ExchangeUnbindOk,
    FieldTable,
    Heartbeat,
    Method,
    ProtocolHeader,
    ProtocolHeaderMismatch,
    QueueBind,
    QueueBindOk,
    QueueDeclare,
    QueueDeclareOk,
    QueueDelete,
    QueueDeleteOk,
    QueuePurge,
    QueuePurgeOk,
    QueueUnbind,
    QueueUnbindOk,
    ReplyCode,
    Role,
    TxCommit,
    TxCommitOk,
    TxRollback,
    TxRollbackOk,
    TxSelect,
    TxSelectOk,
    decode_table,
    encode_table,
)
from warren.core.acl import AclDecision
from warren.core.message import Message
from warren.core.queues import (
    Consumer,
    Overflow,
    Queue,
    QueueEntry,
    QueueError,
    QueueLimits,
)
from warren.core.router import NotAuthorized
from warren.core.topics import parse_amqp_binding_key
from warren.core.vpn import Vpn
from warren.core.watermark import MemoryWatermark
from warren.errors import LocalProtocolError, RemoteProtocolError
from warren.store.errors import StorageError
from warren.store.records import QueueRecord

from .amqp_broker import (
    AMQ_TOPIC,
    EXCHANGE_TYPES,
    AmqpVhost,
    Exchange,
    InvalidExpiration,
    delivery_origin,
    encoded_properties,
    message_from_amqp,
    properties_for,
    redelivery_properties,
    vhost_of,
)

__all__ = ["AMQPConnection", "AmqpSettings", "queue_arguments", "restore_queue"]

log = logging.getLogger("warren.amqp")

_CLOSE_TIMEOUT: Final = 3.0  # seconds to wait for close-ok after our connection.close
_MAX_THROTTLE_SECONDS: Final = 5.0


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    """Limits an AMQP listener offers (connection.tune) and enforces."""

    channel_max: int = 2047  # RabbitMQ's default
    frame_max: int = 131_072
    heartbeat: int = 60
    max_body_size: int = 134_217_728
    connect_timeout: float = 10.0
    max_outbound_bytes: int = 4 * 1024 * 1024


class _ChannelException(Exception):
    """A soft error: close the channel with ``code`` and ``text``."""

    def __init__(self, code: int, text: str, method: type[Method] | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.method = method


class _ConnectionException(Exception):
    """A hard error: close the connection with ``code`` and ``text``."""

    def __init__(self, code: int, text: str, method: type[Method] | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.method = method


def _reply_text(code: int, text: str) -> str:
    """RabbitMQ's form: ``NOT_FOUND - no queue 'q' in vhost '/'``, cut to a shortstr."""
    full = f"{ReplyCode(code).name} - {text}"
    raw = full.encode()
    if len(raw) > 255:
        full = raw[:252].decode(errors="ignore") + "..."
    return full


def _server_name(prefix: str) -> str:
    return prefix + base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


_OPEN, _CLOSING = 1, 2


class _Channel:
    """One open channel: its consumers, unacked deliveries and publish modes."""

    def __init__(self, conn: AMQPConnection, number: int) -> None:
        self.conn = conn
        self.number = number
        self.state = _OPEN
        self.flow = True
        self.confirm = False
        self.publish_seq = 0
        self.tx = False
        self.tx_ops: list[Callable[[], None]] = []
        self.consumers: dict[str, Consumer] = {}
        self.consumer_queue: dict[str, Queue] = {}
        # delivery tag -> (queue, entry, consumer or None for basic.get); insertion
        # order is delivery order, which ack "multiple" and recover rely on.
        self.unacked: dict[int, tuple[Queue, QueueEntry, Consumer | None]] = {}
        self.next_tag = 1
        self.prefetch = 0  # basic.qos global=false: for consumers created from now on
        self.global_prefetch = 0  # basic.qos global=true: shared by the channel
        self.last_queue = ""  # the queue last declared (an empty queue name means it)
        self.confirm_upto = 0  # highest publish seq to ack at the next flush
        # Confirms waiting for a store commit: while any is, later ones wait behind
        # it, so a "multiple" ack never confirms a message not yet stored.
        self.confirms_waiting = 0

    # --- ConsumerSink --------------------------------------------------------------

    def ready(self, consumer: Consumer) -> bool:
        conn = self.conn
        if conn.write_paused or conn.closing or self.state != _OPEN or not self.flow:
            return False
        return not (
            self.global_prefetch and not consumer.no_ack
            and len(self.unacked) >= self.global_prefetch
        )

    def send(self, consumer: Consumer, entry: QueueEntry) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        if not consumer.no_ack:
            self.unacked[tag] = (self.consumer_queue[consumer.tag], entry, consumer)
        exchange, key = delivery_origin(entry)
        message = entry.message
        conn = self.conn
        conn.write(
            conn._codec.send_deliver(
                self.number, consumer.tag, tag, exchange, key, message.payload,
                redelivery_properties(message, entry.redeliveries) if entry.redeliveries
                else encoded_properties(message),
                redelivered=entry.redeliveries > 0,
            )
        )
        stats = conn.stats
        stats.publish_sent += 1
        stats.messages_sent += 1

    def cancelled(self, consumer: Consumer) -> None:
        """The queue was deleted: tell the client if it understands (consumer_cancel_notify)."""
        self.consumers.pop(consumer.tag, None)
        self.consumer_queue.pop(consumer.tag, None)
        if self.state == _OPEN and self.conn.capable("consumer_cancel_notify"):
            self.conn.send(BasicCancel(consumer.tag, True, channel=self.number))

    # --- teardown ------------------------------------------------------------------

    def release(self) -> None:
        """Channel closed: cancel its consumers and requeue what it had not acknowledged."""
        self.state = _CLOSING
        for tag, consumer in list(self.consumers.items()):
            queue = self.consumer_queue[tag]
            queue.remove_consumer(consumer)
        self.consumers.clear()
        self.requeue_all()

    def requeue_all(self) -> None:
        touched: dict[int, Queue] = {}
        unacked, self.unacked = self.unacked, {}
        for queue, entry, consumer in unacked.values():
            queue.reject(entry, consumer, True, dispatch=False)
            touched[id(queue)] = queue
        for queue in touched.values():
            queue.dispatch()


class AMQPConnection(Connection):
    """The server side of one AMQP 0-9-1 connection (see module docstring)."""

    protocol_name = "AMQP"
    handshake_name = "connection.open"
    logger = log
    throttle_max_pause = _MAX_THROTTLE_SECONDS
    _codec: AMQPCodec

    def __init__(
        self,
        vpns: dict[str, Vpn],
        default_vpn: str,
        settings: AmqpSettings,
        *,
        on_close: Callable[[AMQPConnection], None] | None = None,
        memory: MemoryWatermark | None = None,
    ) -> None:
        super().__init__(vpns[default_vpn], settings, on_close)  # until connection.open
        self.vpns = vpns
        self.default_vpn = default_vpn
        self.settings = settings
        self._codec = AMQPCodec(Role.SERVER, max_body_size=settings.max_body_size)
        self._close_sent = False  # our connection.close is out; awaiting close-ok
        self.username: str | None = None
        self.client_properties: FieldTable = {}
        self.vhost: AmqpVhost | None = None
        self.channels: dict[int, _Channel] = {}
        self.channel_max = settings.channel_max
        self.heartbeat = 0
        self._wrote = False
        self._memory = memory
        self._blocked = False  # memory alarm: connection.blocked sent, not reading
        self._published = False  # a basic.publish in the input being handled
        self._reading_paused = False
        self._stage = "header"  # header, start-ok, tune-ok, open, open-done
        self._channel_methods: dict[type, Callable[[_Channel, Any], None]] = {
            ExchangeDeclare: self._exchange_declare,
            ExchangeDelete: self._exchange_delete,
            ExchangeBind: self._exchange_bind,
            ExchangeUnbind: self._exchange_unbind,
            QueueDeclare: self._queue_declare,
            QueueBind: self._queue_bind,
            QueueUnbind: self._queue_unbind,
            QueuePurge: self._queue_purge,
            QueueDelete: self._queue_delete,
            BasicQos: self._basic_qos,
            BasicConsume: self._basic_consume,
            BasicCancel: self._basic_cancel,
            BasicPublish: self._basic_publish,
            BasicGet: self._basic_get,
            BasicAck: self._basic_ack,
            BasicNack: self._basic_nack,
            BasicReject: self._basic_reject,
            BasicRecover: self._basic_recover,
            BasicRecoverAsync: self._basic_recover,
            ConfirmSelect: self._confirm_select,
            TxSelect: self._tx_select,
            TxCommit: self._tx_commit,
            TxRollback: self._tx_rollback,
            ChannelFlow: self._channel_flow,
        }

    def __repr__(self) -> str:
        return f"<AMQPConnection {self.username!r} from {self.peer}>"

    # --- Connection ------------------------------------------------------------------

    def _handle(self, events: list[Any]) -> None:
        """Handle one read's events.

        Unlike MQTT and the native protocol, a connection exception does not end the
        input (close/close-ok are still awaited), and a congested subscriber or the
        memory alarm stops reading after the whole read, not in the middle of it.
        """
        for event in events:
            try:
                self._handle_event(event)
            except _ConnectionException as exc:
                self._connection_error(exc.code, exc.text, exc.method)
            if self.closing:
                return
        congested = self.vpn.router.congested
        if self.vhost is not None and congested is not None:
            self._throttle.engage(congested, None)
        if self._published:
            self._published = False
            memory = self._memory
            if memory is not None and memory.alarmed:
                self.block("low on memory")

    def _input_error(self, exc: RemoteProtocolError) -> None:
        if isinstance(exc, ProtocolHeaderMismatch):
            # 4.2.2: answer with the header we speak, and close (no connection.close).
            log.info("AMQP connection from %s: %s", self.peer, exc.message)
            self.write(exc.response)
            self._close()
            return
        self.stats.protocol_errors += 1
        log.info("closing AMQP connection from %s: %s [%d]", self.peer, exc.message,
                 exc.reason_code)
        if self._stage != "header" and isinstance(exc, AMQPRemoteError):
            self.write(self._codec.send(exc.close_method()))
        self._close()

    def _writable(self) -> None:
        self._dispatch_all()

    def _release(self, exc: Exception | None) -> None:
        if self._memory is not None:
            self._memory.forget(self)
        for channel in list(self.channels.values()):
            channel.release()
        self.channels.clear()
        if self.vhost is not None:
            queues = self.vhost.queues
            for queue in queues.owned_by(self):
                queues.delete(queue)
        if self.connected:
            self.stats.clients_connected -= 1

    # --- output ---------------------------------------------------------------------

    # The channels and handlers write through the base class's batched output.
    write = Connection._write
    send = Connection._send

    def _flush(self) -> None:
        for channel in self.channels.values():
            if channel.confirm_upto:
                # Confirms gathered during this wake-up go out as one "multiple" ack.
                upto, channel.confirm_upto = channel.confirm_upto, 0
                if channel.state == _OPEN:
                    self._out.append(self._codec.send(BasicAck(upto, True, channel=channel.number)))
        if self._out:
            self._wrote = True  # no heartbeat needed this interval
        super()._flush()

    def close_for_shutdown(self) -> None:
        """Server shutdown: connection.close 320 (CONNECTION_FORCED), as RabbitMQ does."""
        if self.closing:
            return
        if self.connected and not self._close_sent:
            self.send(ConnectionClose(320, "CONNECTION_FORCED - broker shutdown", 0, 0))
        self._close()

    def capable(self, capability: str) -> bool:
        """Whether the client announced ``capability`` in its client properties."""
        caps = self.client_properties.get("capabilities")
        return isinstance(caps, dict) and bool(caps.get(capability))

    # --- errors ----------------------------------------------------------------------

    def _connection_error(self, code: int, text: str, method: type[Method] | None) -> None:
        """Connection exception: send connection.close, then await close-ok (bounded)."""
        self.stats.protocol_errors += 1
        log.info("closing AMQP connection from %s (user %r): %s [%d]", self.peer,
                 self.username, text, code)
        if self._close_sent:
            return
        self._close_sent = True
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        self.send(ConnectionClose(code, _reply_text(code, text), class_id, method_id))
        for channel in list(self.channels.values()):
            channel.release()
        # Only close-ok counts now: no handshake deadline, no heartbeats; the wait for
        # it is bounded like a lingering close.
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        if self._keepalive_handle is not None:
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        self._linger_handle = self._loop.call_later(_CLOSE_TIMEOUT, self._close)

    def _channel_error(self, channel: _Channel, exc: _ChannelException) -> None:
        log.debug("closing channel %d of %s: %s [%d]", channel.number, self.peer, exc.text,
                  exc.code)
        method = exc.method
        class_id, method_id = (method.CLASS_ID, method.METHOD_ID) if method else (0, 0)
        channel.release()
        self.send(
            ChannelClose(exc.code, _reply_text(exc.code, exc.text), class_id, method_id,
                         channel=channel.number)
        )

    # --- dispatch ----------------------------------------------------------------------

    def _handle_event(self, event: Any) -> None:
        if isinstance(event, Heartbeat):
            return
        if isinstance(event, ProtocolHeader):
            self._stage = "start-ok"
            self.send(ConnectionStart(0, 9, self._server_properties(), b"PLAIN AMQPLAIN",
                                      b"en_US"))
            return
        number = event.channel
        if self._close_sent:
            # 2.2.4: after connection.close, only close/close-ok count.
            if isinstance(event, ConnectionCloseOk | ConnectionClose):
                if isinstance(event, ConnectionClose):
                    self.send(ConnectionCloseOk())
                self._close()
            return
        if number == 0:
            self._connection_method(event)
            return
        if not self.connected:
            raise _ConnectionException(
                ReplyCode.CHANNEL_ERROR, f"{event.NAME} before connection.open", type(event)
            )
        channel = self.channels.get(number)
        if isinstance(event, ChannelOpen):
            if channel is not None:
                raise _ConnectionException(
                    ReplyCode.CHANNEL_ERROR, f"second 'channel.open' seen on channel {number}",
                    ChannelOpen,
                )
            if number > self.channel_max:
                raise _ConnectionException(
                    ReplyCode.NOT_ALLOWED,
                    f"channel {number} is above the negotiated channel_max {self.channel_max}",
                    ChannelOpen,
                )
            self.channels[number] = _Channel(self, number)
            self.send(ChannelOpenOk(channel=number))
            return
        if channel is None:
            raise _ConnectionException(
                ReplyCode.CHANNEL_ERROR,
                f"expected 'channel.open' on channel {number}, got '{event.NAME}'",
                type(event),
            )
        if channel.state == _CLOSING:
            # 2.2.4: a closing channel discards everything but close and close-ok.
            if isinstance(event, ChannelCloseOk):
                del self.channels[number]
            elif isinstance(event, ChannelClose):
                self.send(ChannelCloseOk(channel=number))
            return
        if isinstance(event, ChannelClose):
            channel.release()
            del self.channels[number]
            self.send(ChannelCloseOk(channel=number))
            return
        if isinstance(event, ChannelCloseOk | ChannelOpenOk):
            raise _ConnectionException(
                ReplyCode.COMMAND_INVALID, f"unexpected '{event.NAME}' on channel {number}",
                type(event),
            )
        handler = self._channel_methods.get(type(event))
        if handler is None:
            raise _ConnectionException(
                ReplyCode.NOT_IMPLEMENTED, f"'{event.NAME}' is not supported", type(event)
            )
        try:
            handler(channel, event)
        except _ChannelException as exc:
            if exc.method is None:
                exc.method = type(event)
            self._channel_error(channel, exc)

    def _connection_method(self, event: Method) -> None:
        stage = self._stage
        if isinstance(event, ConnectionStartOk) and stage == "start-ok":
            self._start_ok(event)
        elif isinstance(event, ConnectionSecureOk):
            raise _ConnectionException(
                ReplyCode.COMMAND_INVALID, "no connection.secure was sent", ConnectionSecureOk
            )
        elif isinstance(event, ConnectionTuneOk) and stage == "tune-ok":
            self._tune_ok(event)
        elif isinstance(event, ConnectionOpen) and stage == "open":
            self._open(event)
        elif isinstance(event, ConnectionClose):
            self.send(ConnectionCloseOk())
            self._close()
        elif isinstance(event, ConnectionCloseOk):
            self._close()
        elif isinstance(event, ConnectionUpdateSecret) and self.connected:
            self.send(ConnectionUpdateSecretOk())
        else:
            raise _ConnectionException(
                ReplyCode.COMMAND_INVALID,
                f"'{event.NAME}' is not expected now (handshake stage: {stage})",
                type(event),
            )

    # --- connection class ------------------------------------------------------------

    def _server_properties(self) -> FieldTable:
        return {
            "product": "Warren",
            "version": __version__,
            "platform": "Python",
            "copyright": "Warren contributors",
            "information": "Warren event broker; AMQP 0-9-1 (RabbitMQ dialect)",
            "capabilities": {
                "publisher_confirms": True,
                "exchange_exchange_bindings": True,
                "basic.nack": True,
                "consumer_cancel_notify": True,
                "connection.blocked": True,
                "authentication_failure_close": True,
                "per_consumer_qos": True,
                "consumer_priorities": False,
                "direct_reply_to": False,
            },
        }

    def _start_ok(self, event: ConnectionStartOk) -> None:
        self.client_properties = event.client_properties or {}
        mechanism = event.mechanism
        response = event.response
        if mechanism == "PLAIN":
            parts = response.split(b"\x00")
            if len(parts) != 3:
                raise _ConnectionException(
                    ReplyCode.ACCESS_REFUSED, "malformed PLAIN response", ConnectionStartOk
                )
            username = parts[1].decode("utf-8", "replace")
        elif mechanism == "AMQPLAIN":
            login = _amqplain_login(response)
            if login is None:
                raise _ConnectionException(
                    ReplyCode.ACCESS_REFUSED, "malformed AMQPLAIN response", ConnectionStartOk
                )
            username = login
        else:
            raise _ConnectionException(
                ReplyCode.ACCESS_REFUSED,
                f"unsupported authentication mechanism {mechanism!r}; "
                "supported: PLAIN, AMQPLAIN",
                ConnectionStartOk,
            )
        # Authentication: the VPN admits anonymous clients (any username and password)
        # until it has users (DESIGN.md, "Tenancy and security").
        self.username = username or None
        self._stage = "tune-ok"
        s = self.settings
        self.send(ConnectionTune(s.channel_max, s.frame_max, s.heartbeat))

    def _tune_ok(self, event: ConnectionTuneOk) -> None:
        s = self.settings
        if event.frame_max and event.frame_max < 4096:
            raise _ConnectionException(
                ReplyCode.NOT_ALLOWED,
                f"frame_max={event.frame_max} < 4096 min size", ConnectionTuneOk,
            )
        if event.frame_max > s.frame_max or (event.frame_max == 0 and s.frame_max):
            raise _ConnectionException(
                ReplyCode.NOT_ALLOWED,
                f"frame_max={event.frame_max} > {s.frame_max} max size", ConnectionTuneOk,
            )
        if event.channel_max > s.channel_max or (event.channel_max == 0 and s.channel_max):
            self.channel_max = s.channel_max
        else:
            self.channel_max = event.channel_max or 0xFFFF
        self.heartbeat = event.heartbeat
        self._stage = "open"

    def _open(self, event: ConnectionOpen) -> None:
        name = event.virtual_host
        vpn_name = self.default_vpn if name in ("/", "") else name.lstrip("/") or name
        vpn = self.vpns.get(vpn_name) or self.vpns.get(name)
        if vpn is None:
            raise _ConnectionException(
                ReplyCode.NOT_ALLOWED,
                f"vhost {name} not found (Warren VPNs: {', '.join(sorted(self.vpns))}; "
                "'/' is the listener's VPN)",
                ConnectionOpen,
            )
        self.vpn = vpn
        self.stats = vpn.stats
        self.vhost = vhost_of(vpn)
        self._vhost_name = name
        self._install_timer(vpn)
        self._stage = "open-done"
        self._established(0)  # not the base's keep-alive check: heartbeats (4.2.7)
        if self.heartbeat:
            self._keepalive_handle = self._loop.call_later(
                self.heartbeat / 2, self._heartbeat_tick
            )
        vpn.stats.client_connected()
        self.send(ConnectionOpenOk(""))
        log.debug("AMQP client %r connected from %s to vpn %r", self.username, self.peer,
                  vpn.name)

    def _install_timer(self, vpn: Vpn) -> None:
        queues = vpn.queues
        if queues.timer is not None:
            return
        loop = self._loop

        def timer(deadline: float, callback: Callable[[], None]) -> None:
            loop.call_later(max(0.0, deadline - time.monotonic()), callback)

        queues.timer = timer

    def _heartbeat_tick(self) -> None:
        self._keepalive_handle = None
        if self.closing:
            return
        now = self._loop.time()
        if self._reading_paused:
            # We are not reading (blocked, throttled): the peer's silence is ours,
            # as RabbitMQ pauses its heartbeat monitor for a blocked connection.
            self._last_rx = now
        if now - self._last_rx > 2 * self.heartbeat:
            # 4.2.7: a peer silent for two heartbeat intervals is gone.
            log.info("AMQP client %r (%s): missed heartbeats; closing", self.username, self.peer)
            self._close()
            return
        if not self._wrote:
            self.send(HEARTBEAT_EVENT)
        self._wrote = False
        self._keepalive_handle = self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    @property
    def vhost_name(self) -> str:
        return getattr(self, "_vhost_name", "/")

    # --- helpers -------------------------------------------------------------------------

    def _model(self) -> AmqpVhost:
        assert self.vhost is not None
        return self.vhost

    def _exchange(self, name: str) -> Exchange:
        exchange = self._model().exchanges.get(name)
        if exchange is None:
            raise _ChannelException(
                ReplyCode.NOT_FOUND, f"no exchange '{name}' in vhost '{self.vhost_name}'"
            )
        return exchange

    def _queue(self, channel: _Channel, name: str) -> Queue:
        if not name:
            name = channel.last_queue
            if not name:
                raise _ConnectionException(
                    ReplyCode.NOT_ALLOWED, "no previously declared queue (empty queue name)"
                )
        queue = self._model().queues.get(name)
        if queue is None:
            raise _ChannelException(
                ReplyCode.NOT_FOUND, f"no queue '{name}' in vhost '{self.vhost_name}'"
            )
        if queue.owner is not None and queue.owner is not self:
            raise _ChannelException(
                ReplyCode.RESOURCE_LOCKED,
                f"cannot obtain exclusive access to locked queue '{name}' in vhost "
                f"'{self.vhost_name}'. It could be originally declared on another connection "
                "or the exclusive property value does not match that of the original declaration.",
            )
        return queue

    def _dispatch_all(self) -> None:
        seen: set[int] = set()
        for channel in list(self.channels.values()):
            for queue in list(channel.consumer_queue.values()):
                if id(queue) not in seen:
                    seen.add(id(queue))
                    queue.dispatch()

    # --- exchange class -------------------------------------------------------------------

    def _exchange_declare(self, channel: _Channel, m: ExchangeDeclare) -> None:
        model = self._model()
        name = m.exchange
        existing = model.exchanges.get(name)
        if m.passive:
            if existing is None:
                raise _ChannelException(
                    ReplyCode.NOT_FOUND, f"no exchange '{name}' in vhost '{self.vhost_name}'"
                )
        else:
            if m.type not in EXCHANGE_TYPES:
                raise _ConnectionException(
                    ReplyCode.COMMAND_INVALID, f"unknown exchange type '{m.type}'", ExchangeDeclare
                )
            if existing is None:
                if name.startswith("amq.") or name == "":
                    raise _ChannelException(
                        ReplyCode.ACCESS_REFUSED,
                        f"exchange name '{name}' contains reserved prefix 'amq.*'",
                    )
                model.declare_exchange(
                    name, m.type, durable=m.durable, auto_delete=m.auto_delete,
                    internal=m.internal, arguments=m.arguments,
                )
            else:
                for what, received, current in (
                    ("type", m.type, existing.type),
                    ("durable", m.durable, existing.durable),
                    ("auto_delete", m.auto_delete, existing.auto_delete),
                    ("internal", m.internal, existing.internal),
                ):
                    if received != current:
                        raise _ChannelException(
                            ReplyCode.PRECONDITION_FAILED,
                            f"inequivalent arg '{what}' for exchange '{name}' in vhost "
                            f"'{self.vhost_name}': received {_show(received)} but current is "
                            f"{_show(current)}",
                        )
        if not m.nowait:
            self.send(ExchangeDeclareOk(channel=channel.number))

    def _exchange_delete(self, channel: _Channel, m: ExchangeDelete) -> None:
        name = m.exchange
        if name == "" or name.startswith("amq."):
            raise _ChannelException(
                ReplyCode.ACCESS_REFUSED,
                f"operation not permitted on exchange '{name or '(AMQP default)'}'",
            )
        model = self._model()
        exchange = model.exchanges.get(name)
        if exchange is not None:
            if m.if_unused and exchange.bindings:
                raise _ChannelException(
                    ReplyCode.PRECONDITION_FAILED,
                    f"exchange '{name}' in vhost '{self.vhost_name}' in use",
                )
            model.delete_exchange(exchange)
        if not m.nowait:
            self.send(ExchangeDeleteOk(channel=channel.number))

    def _bind_check(self, source: Exchange, destination_name: str) -> None:
        if source.name == "" or destination_name == "":
            raise _ChannelException(
                ReplyCode.ACCESS_REFUSED, "operation not permitted on the default exchange"
            )

    def _check_topic_binding(self, source: Exchange, key: str) -> None:
        if source.name != AMQ_TOPIC:
            return
        decision = self.vpn.router.check_subscribe(self.username, parse_amqp_binding_key(key))
        if decision is not AclDecision.ALLOW:
            raise _ChannelException(
                ReplyCode.ACCESS_REFUSED,
                f"access to topic '{key}' in exchange '{AMQ_TOPIC}' in vhost "
                f"'{self.vhost_name}' refused for user '{self.username}'",
            )

    def _exchange_bind(self, channel: _Channel, m: ExchangeBind) -> None:
        self._bind_check(self._exchange(m.source), m.destination)
        destination = self._exchange(m.destination)
        source = self._exchange(m.source)
        self._check_topic_binding(source, m.routing_key)
        self._model().bind(source, destination, m.routing_key, m.arguments, self.username)
        if not m.nowait:
            self.send(ExchangeBindOk(channel=channel.number))

    def _exchange_unbind(self, channel: _Channel, m: ExchangeUnbind) -> None:
        self._bind_check(self._exchange(m.source), m.destination)
        destination = self._exchange(m.destination)
        source = self._exchange(m.source)
        self._model().unbind(source, destination, m.routing_key, m.arguments)
        if not m.nowait:
            self.send(ExchangeUnbindOk(channel=channel.number))

    # --- queue class -------------------------------------------------------------------------

    def _queue_declare(self, channel: _Channel, m: QueueDeclare) -> None:
        model = self._model()
        name = m.queue
        queues = model.queues
        if m.passive:
            queue = self._queue(channel, name)
        else:
            if not name:
                name = _server_name("amq.gen-")
            elif name.startswith("amq."):
                raise _ChannelException(
                    ReplyCode.ACCESS_REFUSED,
                    f"queue name '{name}' contains reserved prefix 'amq.*'",
                )
            existing = queues.get(name)
            if existing is not None:
                queue = self._queue(channel, name)  # exclusive check
                self._check_equivalent(queue, m)
            else:
                limits = _queue_limits(name, self.vhost_name, m.arguments)
                queue = queues.declare(
                    name, durable=m.durable, auto_delete=m.auto_delete,
                    owner=self if m.exclusive else None, limits=limits,
                    arguments=dict(m.arguments),
                    stored_arguments=encode_table(m.arguments) if m.durable else None,
                )
        queue.touch()
        channel.last_queue = queue.name
        if not m.nowait:
            self.send(
                QueueDeclareOk(queue.name, queue.message_count, len(queue.consumers),
                               channel=channel.number)
            )

    def _check_equivalent(self, queue: Queue, m: QueueDeclare) -> None:
        where = f"for queue '{queue.name}' in vhost '{self.vhost_name}'"
        for what, received, current in (
            ("durable", m.durable, queue.durable),
            ("exclusive", m.exclusive, queue.owner is not None),
            ("auto_delete", m.auto_delete, queue.auto_delete),
        ):
            if received != current:
                raise _ChannelException(
                    ReplyCode.PRECONDITION_FAILED,
                    f"inequivalent arg '{what}' {where}: received {_show(received)} but current "
                    f"is {_show(current)}",
                )
        current_args = queue.arguments if isinstance(queue.arguments, dict) else {}
        for key in sorted(set(m.arguments) | set(current_args)):
            if not key.startswith("x-") or key in _IGNORED_ARGUMENTS:
                continue
            if m.arguments.get(key) != current_args.get(key):
                raise _ChannelException(
                    ReplyCode.PRECONDITION_FAILED,
                    f"inequivalent arg '{key}' {where}: received {_show(m.arguments.get(key))} "
                    f"but current is {_show(current_args.get(key))}",
                )

    def _queue_bind(self, channel: _Channel, m: QueueBind) -> None:
        queue = self._queue(channel, m.queue)
        source = self._exchange(m.exchange)
        self._bind_check(source, queue.name)
        self._check_topic_binding(source, m.routing_key)
        self._model().bind(source, queue, m.routing_key, m.arguments, self.username)
        if not m.nowait:
            self.send(QueueBindOk(channel=channel.number))

    def _queue_unbind(self, channel: _Channel, m: QueueUnbind) -> None:
        queue = self._queue(channel, m.queue)
        source = self._exchange(m.exchange)
        self._bind_check(source, queue.name)
        self._model().unbind(source, queue, m.routing_key, m.arguments)
        self.send(QueueUnbindOk(channel=channel.number))

    def _queue_purge(self, channel: _Channel, m: QueuePurge) -> None:
        queue = self._queue(channel, m.queue)
        count = queue.purge()
        if not m.nowait:
            self.send(QueuePurgeOk(count, channel=channel.number))

    def _queue_delete(self, channel: _Channel, m: QueueDelete) -> None:
        name = m.queue or channel.last_queue
        queue = self._model().queues.get(name)
        count = 0
        if queue is not None:
            queue = self._queue(channel, name)
            where = f"queue '{name}' in vhost '{self.vhost_name}'"
            if m.if_unused and queue.consumers:
                raise _ChannelException(ReplyCode.PRECONDITION_FAILED, f"{where} in use")
            if m.if_empty and queue.message_count:
                raise _ChannelException(ReplyCode.PRECONDITION_FAILED, f"{where} is not empty")
            count = self._model().queues.delete(queue)
        if not m.nowait:
            self.send(QueueDeleteOk(count, channel=channel.number))

    # --- basic class --------------------------------------------------------------------------

    def _basic_qos(self, channel: _Channel, m: BasicQos) -> None:
        if m.prefetch_size:
            raise _ConnectionException(
                ReplyCode.NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})", BasicQos
            )
        if m.global_:
            channel.global_prefetch = m.prefetch_count
        else:
            channel.prefetch = m.prefetch_count
        self.send(BasicQosOk(channel=channel.number))
        for queue in list(channel.consumer_queue.values()):
            queue.dispatch()

    def _basic_consume(self, channel: _Channel, m: BasicConsume) -> None:
        queue = self._queue(channel, m.queue)
        tag = m.consumer_tag or _server_name("amq.ctag-")
        if tag in channel.consumers:
            raise _ConnectionException(
                ReplyCode.NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'", BasicConsume
            )
        if queue.consumers and (  # single_consumer: exclusive access (management API)
            queue.single_consumer or m.exclusive or any(c.exclusive for c in queue.consumers)
        ):
            raise _ChannelException(
                ReplyCode.ACCESS_REFUSED,
                f"queue '{queue.name}' in vhost '{self.vhost_name}' in exclusive use",
            )
        consumer = Consumer(
            tag, channel, no_ack=m.no_ack, prefetch=channel.prefetch, exclusive=m.exclusive,
            owner=self,
        )
        channel.consumers[tag] = consumer
        channel.consumer_queue[tag] = queue
        if not m.nowait:
            self.send(BasicConsumeOk(tag, channel=channel.number))  # before any delivery
        try:
            queue.add_consumer(consumer)
        except QueueError as exc:  # pragma: no cover - checked above
            raise _ChannelException(ReplyCode.ACCESS_REFUSED, str(exc)) from exc

    def _basic_cancel(self, channel: _Channel, m: BasicCancel) -> None:
        consumer = channel.consumers.pop(m.consumer_tag, None)
        queue = channel.consumer_queue.pop(m.consumer_tag, None)
        if not m.nowait:
            self.send(BasicCancelOk(m.consumer_tag, channel=channel.number))
        if consumer is not None and queue is not None:
            queue.remove_consumer(consumer)

    def _basic_publish(self, channel: _Channel, m: BasicPublish) -> None:
        self._published = True  # a publisher: blocked while the memory alarm is on
        model = self._model()
        exchange = model.exchanges.get(m.exchange)
        if exchange is None:
            raise _ChannelException(
                ReplyCode.NOT_FOUND, f"no exchange '{m.exchange}' in vhost '{self.vhost_name}'"
            )
        if exchange.internal:
            raise _ChannelException(
                ReplyCode.ACCESS_REFUSED,
                f"cannot publish to internal exchange '{m.exchange}' in vhost "
                f"'{self.vhost_name}'",
            )
        try:
            message = message_from_amqp(m.routing_key, m.properties, m.body, time.monotonic())
        except InvalidExpiration as exc:
            raise _ChannelException(ReplyCode.PRECONDITION_FAILED, str(exc)) from exc
        if exchange.name == AMQ_TOPIC:
            router = self.vpn.router
            try:
                if message.topic.startswith("$SYS"):
                    raise NotAuthorized(
                        f"$SYS topics are written by the broker only: {message.topic!r}"
                    )
                if not router.acl.is_open:
                    router.check_publish(self.username, message.topic)
            except NotAuthorized as exc:
                raise _ChannelException(
                    ReplyCode.ACCESS_REFUSED,
                    f"access to topic '{m.routing_key}' in exchange '{AMQ_TOPIC}' in vhost "
                    f"'{self.vhost_name}' refused for user '{self.username}' ({exc})",
                ) from exc
        if channel.confirm:
            channel.publish_seq += 1
        seq = channel.publish_seq
        if channel.tx:
            channel.tx_ops.append(lambda: self._route(channel, exchange, m, message, 0))
            return
        self._route(channel, exchange, m, message, seq if channel.confirm else 0)

    def _route(
        self, channel: _Channel, exchange: Exchange, m: BasicPublish, message: Message, seq: int
    ) -> None:
        self.stats.publish_received += 1
        journal = self.vpn.journal
        journalled = len(journal.pending) if seq and journal is not None else 0
        result = self._model().publish(exchange, m.routing_key, message)
        if not result.routed and m.mandatory:
            self.send(
                BasicReturn(
                    ReplyCode.NO_ROUTE, "NO_ROUTE", m.exchange, m.routing_key,
                    channel=channel.number, properties=m.properties, body=m.body,
                )
            )
        if seq and journal is not None and (
            len(journal.pending) > journalled or channel.confirms_waiting
        ):
            # Persistent, and in a durable queue (or retained): confirm after the commit.
            channel.confirms_waiting += 1
            journal.commit(partial(self._confirm_committed, channel, seq, result.rejected))
        elif seq:
            if result.rejected:
                # A queue refused it (x-overflow reject-publish): nack, after any
                # confirms gathered so far, which must go first to keep the order.
                if channel.confirm_upto:
                    upto, channel.confirm_upto = channel.confirm_upto, 0
                    self.send(BasicAck(upto, True, channel=channel.number))
                self.send(BasicNack(seq, False, False, channel=channel.number))
            else:
                channel.confirm_upto = seq
                if not self._flush_scheduled:  # the ack goes out with this wake-up's flush
                    self._flush_scheduled = True
                    self._loop.call_soon(self._flush)

    def _confirm_committed(
        self, channel: _Channel, seq: int, rejected: bool, error: StorageError | None
    ) -> None:
        """The store committed (or refused) what publish ``seq`` was owed."""
        channel.confirms_waiting -= 1
        if self.closing or channel.state != _OPEN:
            return
        if error is None and not rejected:
            channel.confirm_upto = seq
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
            return
        if error is not None:
            log.warning("AMQP client %r: message not confirmed: %s", self.username, error)
        # A nack goes after the confirms gathered so far (they must keep their order).
        if channel.confirm_upto:
            upto, channel.confirm_upto = channel.confirm_upto, 0
            self.send(BasicAck(upto, True, channel=channel.number))
        self.send(BasicNack(seq, False, False, channel=channel.number))

    def _basic_get(self, channel: _Channel, m: BasicGet) -> None:
        queue = self._queue(channel, m.queue)
        entry = queue.get()
        if entry is None:
            self.send(BasicGetEmpty("", channel=channel.number))
            return
        tag = channel.next_tag
        channel.next_tag += 1
        if not m.no_ack:
            queue.took(entry, None)
            channel.unacked[tag] = (queue, entry, None)
        else:
            queue.forget(entry)
        exchange, key = delivery_origin(entry)
        message = entry.message
        self.send(
            BasicGetOk(
                tag, entry.redelivered, exchange, key, queue.message_count,
                channel=channel.number,
                properties=redelivery_properties(message, entry.redeliveries)
                if entry.redeliveries else properties_for(message),
                body=message.payload,
            )
        )

    def _settle(
        self, channel: _Channel, tag: int, multiple: bool, action: Callable[..., None],
        method: type[Method],
    ) -> None:
        unacked = channel.unacked
        if multiple:
            tags = [t for t in unacked if t <= tag] if tag else list(unacked)
        elif tag in unacked:
            tags = [tag]
        else:
            tags = []
        if not tags and (tag or not multiple):
            raise _ChannelException(
                ReplyCode.PRECONDITION_FAILED, f"unknown delivery tag {tag}", method
            )
        touched: dict[int, Queue] = {}
        for t in tags:
            queue, entry, consumer = unacked.pop(t)
            action(queue, entry, consumer)
            touched[id(queue)] = queue
        for queue in touched.values():
            queue.dispatch()
        if channel.global_prefetch:
            for queue in list(channel.consumer_queue.values()):
                queue.dispatch()

    def _basic_ack(self, channel: _Channel, m: BasicAck) -> None:
        def ack(queue: Queue, entry: QueueEntry, consumer: Consumer | None) -> None:
            queue.ack(entry, consumer, dispatch=False)

        self._settle_or_buffer(channel, m.delivery_tag, m.multiple, ack, BasicAck)

    def _basic_nack(self, channel: _Channel, m: BasicNack) -> None:
        requeue = m.requeue

        def nack(queue: Queue, entry: QueueEntry, consumer: Consumer | None) -> None:
            queue.reject(entry, consumer, requeue, dispatch=False)

        self._settle_or_buffer(channel, m.delivery_tag, m.multiple, nack, BasicNack)

    def _basic_reject(self, channel: _Channel, m: BasicReject) -> None:
        requeue = m.requeue

        def reject(queue: Queue, entry: QueueEntry, consumer: Consumer | None) -> None:
            queue.reject(entry, consumer, requeue, dispatch=False)

        self._settle_or_buffer(channel, m.delivery_tag, False, reject, BasicReject)

    def _settle_or_buffer(
        self, channel: _Channel, tag: int, multiple: bool,
        action: Callable[[Queue, QueueEntry, Consumer | None], None], method: type[Method],
    ) -> None:
        if channel.tx:
            # Validate now (an unknown tag fails at once), apply at commit.
            if not multiple and tag not in channel.unacked:
                raise _ChannelException(
                    ReplyCode.PRECONDITION_FAILED, f"unknown delivery tag {tag}", method
                )
            channel.tx_ops.append(lambda: self._settle(channel, tag, multiple, action, method))
            return
        self._settle(channel, tag, multiple, action, method)

    def _basic_recover(self, channel: _Channel, m: BasicRecover | BasicRecoverAsync) -> None:
        # As RabbitMQ: requeue=true puts every unacknowledged delivery of the channel
        # back in its queue (marked redelivered, in its original place), to be
        # delivered to any consumer; requeue=false (redeliver to the original
        # recipient only) is a 540 connection error.
        if not m.requeue:
            raise _ConnectionException(ReplyCode.NOT_IMPLEMENTED, "requeue=false", type(m))
        channel.requeue_all()
        if isinstance(m, BasicRecover):
            self.send(BasicRecoverOk(channel=channel.number))

    def _confirm_select(self, channel: _Channel, m: ConfirmSelect) -> None:
        if channel.tx:
            raise _ChannelException(
                ReplyCode.PRECONDITION_FAILED, "cannot switch from tx to confirm mode"
            )
        channel.confirm = True
        if not m.nowait:
            self.send(ConfirmSelectOk(channel=channel.number))

    def _tx_select(self, channel: _Channel, m: TxSelect) -> None:
        if channel.confirm:
            raise _ChannelException(
                ReplyCode.PRECONDITION_FAILED, "cannot switch from confirm to tx mode"
            )
        channel.tx = True
        self.send(TxSelectOk(channel=channel.number))

    def _tx_commit(self, channel: _Channel, m: TxCommit) -> None:
        if not channel.tx:
            raise _ChannelException(ReplyCode.PRECONDITION_FAILED, "channel is not transactional")
        ops, channel.tx_ops = channel.tx_ops, []
        for op in ops:
            op()
        self.send(TxCommitOk(channel=channel.number))

    def _tx_rollback(self, channel: _Channel, m: TxRollback) -> None:
        if not channel.tx:
            raise _ChannelException(ReplyCode.PRECONDITION_FAILED, "channel is not transactional")
        channel.tx_ops = []
        self.send(TxRollbackOk(channel=channel.number))

    def _channel_flow(self, channel: _Channel, m: ChannelFlow) -> None:
        channel.flow = m.active
        self.send(ChannelFlowOk(m.active, channel=channel.number))
        if m.active:
            for queue in list(channel.consumer_queue.values()):
                queue.dispatch()

    # --- backpressure -------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        self._update_reading()

    def _resume_reading(self) -> None:
        self._update_reading()

    def _update_reading(self) -> None:
        """Read from the socket unless blocked (memory alarm) or throttled (slow subscriber)."""
        paused = self._blocked or self._throttle.paused
        if paused == self._reading_paused or self.closing or self._transport is None:
            return
        self._reading_paused = paused
        if paused:
            self._transport.pause_reading()
        else:
            self._transport.resume_reading()

    def block(self, reason: str) -> None:
        """Memory alarm: tell the client (connection.blocked) and stop reading it.

        As RabbitMQ does, only a connection that publishes is blocked (a consumer must
        keep acknowledging, or the alarm would never clear), and a client that did not
        announce the ``connection.blocked`` capability is blocked without being told.
        Consumers on this connection keep receiving: writing goes on.
        """
        if self._blocked or not self.connected or self.closing:
            return
        self._blocked = True
        log.info("AMQP client %r (%s) blocked: %s", self.username, self.peer, reason)
        if self.capable("connection.blocked"):
            self.send(ConnectionBlocked(reason))
        self._update_reading()
        if self._memory is not None:
            self._memory.on_clear(self, self._memory_cleared)

    def _memory_cleared(self) -> None:
        # Called from inside a queue operation: resume on the next loop turn.
        self._loop.call_soon(self.unblock)

    def unblock(self) -> None:
        """The alarm is cleared: connection.unblocked, and read again."""
        if not self._blocked or self.closing:
            return
        self._blocked = False
        log.info("AMQP client %r (%s) unblocked", self.username, self.peer)
        if self.capable("connection.blocked"):
            self.send(ConnectionUnblocked())
        self._update_reading()


_IGNORED_ARGUMENTS: Final = frozenset({"x-queue-type", "x-queue-mode"})  # as RabbitMQ does


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if value is None:
        return "none"
    return f"'{value}'"


def _amqplain_login(response: bytes) -> str | None:
    """LOGIN from an AMQPLAIN response: a field table without its length prefix."""
    from warren.codecs.amqp._fields import read_table

    data = struct.pack(">I", len(response)) + response
    try:
        table, _ = read_table(data, 0, len(data))
    except (ValueError, IndexError, struct.error, LocalProtocolError):
        return None
    login = table.get("LOGIN")
    if isinstance(login, bytes):
        return login.decode("utf-8", "replace")
    return login if isinstance(login, str) else ""


def _int_argument(
    arguments: FieldTable, key: str, queue: str, vhost: str, minimum: int = 0
) -> int | None:
    value = arguments.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _ChannelException(
            ReplyCode.PRECONDITION_FAILED,
            f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': "
            f"{value!r} is not an integer >= {minimum}",
        )
    return int(value)


def _queue_limits(queue: str, vhost: str, arguments: FieldTable) -> QueueLimits:
    """The core limits for queue.declare's ``x-`` arguments (RabbitMQ's names)."""
    ttl = _int_argument(arguments, "x-message-ttl", queue, vhost)
    expires = _int_argument(arguments, "x-expires", queue, vhost, minimum=1)
    max_length = _int_argument(arguments, "x-max-length", queue, vhost)
    max_bytes = _int_argument(arguments, "x-max-length-bytes", queue, vhost)
    max_priority = _int_argument(arguments, "x-max-priority", queue, vhost, minimum=1)
    delivery_limit = _int_argument(arguments, "x-delivery-limit", queue, vhost)
    if max_priority is not None and max_priority > 255:
        raise _ChannelException(
            ReplyCode.PRECONDITION_FAILED,
            f"invalid arg 'x-max-priority' for queue '{queue}' in vhost '{vhost}': "
            f"{max_priority} is above 255",
        )
    overflow_text = arguments.get("x-overflow", "drop-head")
    try:
        overflow = Overflow(overflow_text)
    except ValueError as exc:
        raise _ChannelException(
            ReplyCode.PRECONDITION_FAILED,
            f"invalid arg 'x-overflow' for queue '{queue}' in vhost '{vhost}': "
            f"{overflow_text!r}; valid: drop-head, reject-publish, reject-publish-dlx",
        ) from exc
    dlx = arguments.get("x-dead-letter-exchange")
    dlrk = arguments.get("x-dead-letter-routing-key")
    for key, value in (("x-dead-letter-exchange", dlx), ("x-dead-letter-routing-key", dlrk)):
        if value is not None and not isinstance(value, str):
            raise _ChannelException(
                ReplyCode.PRECONDITION_FAILED,
                f"invalid arg '{key}' for queue '{queue}' in vhost '{vhost}': not a string",
            )
    if dlrk is not None and dlx is None:
        raise _ChannelException(
            ReplyCode.PRECONDITION_FAILED,
            f"invalid arg 'x-dead-letter-routing-key' for queue '{queue}' in vhost '{vhost}': "
            "Key 'x-dead-letter-exchange' is mandatory if 'x-dead-letter-routing-key' is set",
        )
    return QueueLimits(
        message_ttl=None if ttl is None else ttl / 1000.0,
        expires=None if expires is None else expires / 1000.0,
        max_length=max_length,
        max_length_bytes=max_bytes,
        overflow=overflow,
        dead_letter_exchange=cast(str | None, dlx),
        dead_letter_routing_key=cast(str | None, dlrk),
        max_priority=max_priority,
        max_redelivery=delivery_limit,
    )


def queue_arguments(limits: QueueLimits) -> dict[str, Any]:
    """The ``x-`` arguments equivalent to ``limits`` (RabbitMQ's names): what an AMQP
    client redeclaring a queue created by other means must pass."""
    def ms(seconds: float | None) -> int | None:
        return None if seconds is None else round(seconds * 1000)

    pairs = {
        "x-message-ttl": ms(limits.message_ttl),
        "x-expires": ms(limits.expires),
        "x-max-length": limits.max_length,
        "x-max-length-bytes": limits.max_length_bytes,
        "x-max-priority": limits.max_priority,
        "x-dead-letter-exchange": limits.dead_letter_exchange,
        "x-dead-letter-routing-key": limits.dead_letter_routing_key,
        "x-overflow": None if limits.overflow is Overflow.DROP_HEAD else limits.overflow.value,
        "x-delivery-limit": limits.max_redelivery,
    }
    return {k: v for k, v in pairs.items() if v is not None}


def restore_queue(vpn: Vpn, record: QueueRecord) -> Queue | None:
    """Start-up: a durable queue as created, with its limits (the record's fields,
    whichever protocol or API created it) and its declare arguments."""
    queues = vpn.queues
    if queues.get(record.name) is not None:
        return None
    try:
        overflow = Overflow(record.overflow)
    except ValueError:
        log.warning("durable queue %r not restored: unknown overflow %r", record.name,
                    record.overflow)
        return None
    limits = QueueLimits(
        message_ttl=record.message_ttl,
        expires=record.expires,
        max_length=record.max_length,
        max_length_bytes=record.max_length_bytes,
        overflow=overflow,
        dead_letter_exchange=record.dead_letter_exchange,
        dead_letter_routing_key=record.dead_letter_routing_key,
        max_priority=record.max_priority,
        max_redelivery=record.max_redelivery,
        dead_letter_queue=record.dead_letter_queue,
    )
    # A queue declared over AMQP keeps its field table; one created otherwise (the
    # management API, the native protocol) gets the arguments its limits mean.
    arguments = decode_table(record.arguments) if record.arguments else queue_arguments(limits)
    if limits.dead_letter_exchange is not None:
        vhost_of(vpn)  # the exchanges and the dead-letter hook, before any connection
    return queues.declare(
        record.name, durable=True, auto_delete=record.auto_delete, limits=limits,
        arguments=dict(arguments), stored_arguments=record.arguments, store_id=record.id,
        single_consumer=record.exclusive,
    )
