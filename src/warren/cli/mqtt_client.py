"""A small asyncio MQTT client on Warren's sans-I/O codec, for ``warren pub`` / ``warren sub``.

It speaks MQTT 3.1.1 and 5.0 over TCP, TLS and WebSocket (subprotocol ``mqtt``), keeps
the connection alive with PINGREQ, runs the QoS 1 and 2 flows in both directions and
turns every refusal by the broker into an exception whose text names the fix.

Per connection there is one reader task, one writer task (it batches whatever is queued
into one write) and, when keep-alive is on, one pinger task. Outgoing QoS 1/2 messages
hold a slot of the in-flight window (the smaller of ``max_inflight`` and the broker's
Receive Maximum) and one future per packet id until they are acknowledged. Incoming
QoS 1/2 messages are acknowledged when the application takes them from
:meth:`MQTTClient.next_message`, so a message that was never handed over is never acked.

Errors::

    WarrenError
    └── MQTTClientError              base class; str() is a sentence for the user
        ├── ConnectionFailed         no connection: DNS, TCP, TLS, WebSocket handshake, timeout
        ├── ConnectRefused           the broker answered CONNECT with a failure code
        ├── ConnectionLost           the connection ended (broker DISCONNECT, EOF, bad packet)
        └── PublishRefused           PUBACK/PUBREC carried a failure reason code (MQTT 5)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from warren.codecs.mqtt import (
    NO_PROPERTIES,
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MQTTConnection,
    Packet,
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
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
)
from warren.errors import LocalProtocolError, RemoteProtocolError, WarrenError

__all__ = [
    "ConnectRefused",
    "ConnectionFailed",
    "ConnectionLost",
    "Endpoint",
    "MQTTClient",
    "MQTTClientError",
    "PublishRefused",
    "TraceHook",
    "reason_text",
]

log = logging.getLogger(__name__)

#: Called with ("sending" | "received", packet) for every packet; ``-d`` prints them.
TraceHook = Callable[[str, Packet], None]

_READ_SIZE = 65_536
_INBOX_SIZE = 1_000  # received messages waiting for the application (backpressure)
_OUTBOX_SIZE = 1_000  # encoded packets waiting for the writer task (backpressure)
_MAX_PACKET_ID = 65_535


class MQTTClientError(WarrenError):
    """Base class of the client's errors; the text is meant for the user."""


class ConnectionFailed(MQTTClientError):
    """No MQTT connection could be opened (name lookup, TCP, TLS, WebSocket, time-out)."""


class ConnectRefused(MQTTClientError):
    """The broker refused the connection (CONNACK with a failure code)."""

    def __init__(self, message: str, reason_code: int) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class ConnectionLost(MQTTClientError):
    """The connection ended: the broker disconnected, went away or broke the protocol."""

    def __init__(self, message: str, reason_code: int | None = None) -> None:
        super().__init__(message)
        self.reason_code = reason_code


class PublishRefused(MQTTClientError):
    """The broker acknowledged a QoS 1/2 message with a failure reason code (MQTT 5)."""

    def __init__(self, message: str, reason_code: int) -> None:
        super().__init__(message)
        self.reason_code = reason_code


# --- reason codes -> words ------------------------------------------------------------
# One table for the whole client: MQTT 5 reason code -> (what it means, what to do).
# The hints name command-line options because this client exists for the CLI.

_REASONS_V5: dict[int, tuple[str, str]] = {
    0x00: ("success", ""),
    0x04: ("disconnect with will message", ""),
    0x10: ("no matching subscribers", ""),
    0x11: ("no subscription existed", ""),
    0x80: ("unspecified error", ""),
    0x81: ("malformed packet", "this is a bug in the client or the broker"),
    0x82: ("protocol error", "this is a bug in the client or the broker"),
    0x83: ("implementation specific error", "see the broker's log"),
    0x84: ("unsupported protocol version", "try -V mqttv311"),
    0x85: ("client identifier not valid", "choose another -i/--id"),
    0x86: ("bad user name or password", "check --username/--password"),
    0x87: ("not authorized", "check --username/--password and the broker's ACL"),
    0x88: ("server unavailable", "try again later"),
    0x89: ("server busy", "try again later"),
    0x8A: ("banned", "ask the broker's administrator"),
    0x8B: ("server shutting down", "try again later"),
    0x8C: ("bad authentication method", "check the authentication settings"),
    0x8D: ("keep alive timeout", "use a shorter -k/--keepalive"),
    0x8E: ("session taken over", "another client connected with the same -i/--id"),
    0x8F: ("topic filter invalid", "check -t/--topic"),
    0x90: ("topic name invalid", "check -t/--topic"),
    0x91: ("packet identifier in use", "this is a bug in the client"),
    0x92: ("packet identifier not found", "this is a bug in the client"),
    0x93: ("receive maximum exceeded", "lower -M/--max-inflight"),
    0x94: ("topic alias invalid", "this is a bug in the client"),
    0x95: ("packet too large", "send a smaller message"),
    0x96: ("message rate too high", "publish more slowly"),
    0x97: ("quota exceeded", "ask the broker's administrator for a larger quota"),
    0x98: ("administrative action", "an administrator disconnected this client"),
    0x99: ("payload format invalid", "the payload is not UTF-8: drop --payload-format-utf8"),
    0x9A: ("retain not supported", "drop -r/--retain"),
    0x9B: ("QoS not supported", "use a lower -q/--qos"),
    0x9C: ("use another server", "connect to the server the broker names"),
    0x9D: ("server moved", "connect to the server the broker names"),
    0x9E: ("shared subscriptions not supported", "subscribe without $share/"),
    0x9F: ("connection rate exceeded", "try again later"),
    0xA0: ("maximum connect time", "reconnect"),
    0xA1: ("subscription identifiers not supported", ""),
    0xA2: ("wildcard subscriptions not supported", "subscribe without + or #"),
}

# MQTT 3.1.1 CONNACK return codes [MQTT-3.2.2-3] -> the MQTT 5 code with the same meaning.
_CONNACK_V311_TO_V5 = {1: 0x84, 2: 0x85, 3: 0x88, 4: 0x86, 5: 0x87}


def reason_text(code: int, *, hint: bool = True) -> str:
    """Readable text for an MQTT 5 reason code, e.g. ``"not authorized: check ..."``."""
    text, fix = _REASONS_V5.get(code, (f"reason code 0x{code:02X}", ""))
    return f"{text}: {fix}" if hint and fix else text


def _connack_refusal(connack: ConnAck, protocol_level: int) -> ConnectRefused:
    code = connack.reason_code
    if protocol_level == 4:
        v5_code = _CONNACK_V311_TO_V5.get(code, 0x80)
        # Return code 1: the broker does not speak 3.1.1 (it may speak only 5.0).
        text = "unacceptable protocol version: try -V mqttv5" if code == 1 else reason_text(v5_code)
        return ConnectRefused(f"connection refused: {text}", v5_code)
    if code < 0x80:
        # Not a MQTT 5 failure code: a 3.1.1 return code (1 = unacceptable protocol
        # version) from a broker that does not speak 5.0.
        return ConnectRefused(
            f"connection refused with 3.1.1 return code {code}: the broker does not speak "
            "MQTT 5; try -V mqttv311",
            0x84,
        )
    message = f"connection refused: {reason_text(code)}"
    extra = []
    if connack.properties.reason_string:
        extra.append(f"broker says: {connack.properties.reason_string}")
    if connack.properties.server_reference:
        extra.append(f"server reference: {connack.properties.server_reference}")
    if extra:
        message += f" ({'; '.join(extra)})"
    return ConnectRefused(message, code)


# --- transports ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where to connect: host and port, TCP or WebSocket, TLS when ``ssl_context`` is set."""

    host: str = "localhost"
    port: int = 1883
    transport: Literal["tcp", "websockets"] = "tcp"
    ws_path: str = "/mqtt"
    ssl_context: ssl.SSLContext | None = None

    def describe(self) -> str:
        """The endpoint as a URL, for messages."""
        if self.transport == "websockets":
            scheme = "wss" if self.ssl_context else "ws"
            return f"{scheme}://{_host_for_url(self.host)}:{self.port}{self.ws_path}"
        scheme = "mqtts" if self.ssl_context else "mqtt"
        return f"{scheme}://{_host_for_url(self.host)}:{self.port}"


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Transport(Protocol):
    async def read(self) -> bytes:
        """The next bytes; b"" once the peer has closed the connection."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class _StreamTransport:
    """MQTT over TCP, optionally TLS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        return await self._reader.read(_READ_SIZE)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()


class _WebSocketTransport:
    """MQTT over WebSocket: binary frames, any split of packets into frames [MQTT-6.0.0-1]."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        try:
            frame = await self._ws.recv()
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code not in (1000, 1001):
                raise ConnectionLost(
                    f"the broker closed the WebSocket (code {exc.rcvd.code}"
                    f"{': ' + exc.rcvd.reason if exc.rcvd.reason else ''})"
                ) from exc
            return b""
        if isinstance(frame, str):
            # MQTT-6.0.0-1: MQTT control packets travel in binary data frames only.
            raise ConnectionLost("the broker sent a WebSocket text frame; MQTT needs binary")
        return frame

    async def write(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionLost("the broker closed the WebSocket") from exc

    async def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionClosed, TimeoutError):
            async with asyncio.timeout(2):
                await self._ws.close()


async def _open_transport(endpoint: Endpoint, timeout: float) -> _Transport:
    where = endpoint.describe()
    try:
        async with asyncio.timeout(timeout):
            if endpoint.transport == "websockets":
                ws = await websocket_connect(
                    endpoint.describe(),
                    subprotocols=[Subprotocol("mqtt")],
                    ssl=endpoint.ssl_context,
                    compression=None,
                    max_size=None,  # MQTT enforces its own packet size limits
                    ping_interval=None,  # MQTT keep-alive does this job
                    open_timeout=None,  # covered by the timeout above
                )
                return _WebSocketTransport(ws)
            reader, writer = await asyncio.open_connection(
                endpoint.host,
                endpoint.port,
                ssl=endpoint.ssl_context,
                server_hostname=endpoint.host if endpoint.ssl_context else None,
            )
            return _StreamTransport(reader, writer)
    except TimeoutError as exc:
        raise ConnectionFailed(f"cannot connect to {where}: timed out after {timeout:g} s") from exc
    except socket.gaierror as exc:
        raise ConnectionFailed(
            f"cannot connect to {where}: unknown host {endpoint.host!r} ({exc.strerror})"
        ) from exc
    except ssl.SSLCertVerificationError as exc:
        raise ConnectionFailed(
            f"cannot connect to {where}: the broker's TLS certificate was not accepted "
            f"({exc.verify_message}): pass its CA with --cafile, or --insecure to skip checks"
        ) from exc
    except ssl.SSLError as exc:
        raise ConnectionFailed(
            f"cannot connect to {where}: TLS handshake failed ({exc.reason or exc}); "
            "is this a TLS port?"
        ) from exc
    except ConnectionRefusedError as exc:
        raise ConnectionFailed(
            f"cannot connect to {where}: connection refused: is the broker running? "
            "check -h/--host and -p/--port"
        ) from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        raise ConnectionFailed(
            f"cannot connect to {where}: the WebSocket handshake got HTTP {status}: "
            "check the URL path (Warren serves MQTT over WebSocket on /mqtt)"
        ) from exc
    except (InvalidHandshake, InvalidURI) as exc:
        raise ConnectionFailed(f"cannot connect to {where}: WebSocket: {exc}") from exc
    except OSError as exc:
        raise ConnectionFailed(f"cannot connect to {where}: {exc.strerror or exc}") from exc


# --- the client ---------------------------------------------------------------------


@dataclass(slots=True)
class _OutgoingFlight:
    """A QoS 1/2 PUBLISH waiting for its acknowledgement."""

    topic: str
    qos: int
    future: asyncio.Future[None]
    released: bool = False  # QoS 2: PUBREC received and PUBREL sent


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # Futures we fail on teardown may never be awaited; this keeps asyncio from logging
    # "exception was never retrieved" while a caller that awaits still gets the error.
    if not future.cancelled():
        future.exception()


class MQTTClient:
    """One MQTT connection: connect, publish, subscribe, receive, disconnect.

    Use as ``async with MQTTClient(endpoint, Connect(...)) as client:``; leaving the
    block sends DISCONNECT (or just closes the connection after an error).
    """

    def __init__(
        self,
        endpoint: Endpoint,
        connect: Connect,
        *,
        max_inflight: int = 20,
        connect_timeout: float = 10.0,
        trace: TraceHook | None = None,
    ) -> None:
        if max_inflight < 1:
            raise ValueError("max_inflight must be at least 1")
        self.endpoint = endpoint
        self._connect_packet = connect
        self.client_id = connect.client_id
        self._max_inflight = max_inflight
        self._connect_timeout = connect_timeout
        self._trace = trace
        self._codec = MQTTConnection(Role.CLIENT)
        self._transport: _Transport | None = None
        self.connack: ConnAck | None = None
        self._connack_waiter: asyncio.Future[ConnAck] | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(_OUTBOX_SIZE)
        self._inbox: asyncio.Queue[Publish | None] = asyncio.Queue(_INBOX_SIZE)
        self._tasks: list[asyncio.Task[None]] = []
        self._window = asyncio.Semaphore(max_inflight)
        self._next_id = 0
        self._flights: dict[int, _OutgoingFlight] = {}
        self._suback_waiters: dict[int, asyncio.Future[SubAck]] = {}
        self._unsuback_waiters: dict[int, asyncio.Future[UnsubAck]] = {}
        # Incoming QoS 2 ids not yet released by PUBREL -> whether PUBREC has been sent.
        self._incoming_qos2: dict[int, bool] = {}
        self._error: MQTTClientError | None = None
        self._reader_done = False
        self._first_bytes = b""  # the start of what the broker sent first, for diagnosis
        self._closed = asyncio.Event()
        self._last_send = 0.0
        self._ping_sent_at: float | None = None
        self._max_qos = 2
        self._retain_available = True
        self._max_packet_size: int | None = None

    # -- public API -------------------------------------------------------------------

    @property
    def protocol_level(self) -> int:
        """4 for MQTT 3.1.1, 5 for MQTT 5.0."""
        return self._connect_packet.protocol_level

    @property
    def error(self) -> MQTTClientError | None:
        """Why the connection ended; None while it is open."""
        return self._error

    @property
    def is_connected(self) -> bool:
        """True between a successful CONNACK and the end of the connection."""
        return self.connack is not None and self._error is None

    async def __aenter__(self) -> MQTTClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        # Also after an error of ours (a refused message, Ctrl-C): while the connection
        # is sound, say goodbye, so the broker does not publish the will.
        await self.disconnect()

    async def connect(self) -> ConnAck:
        """Open the connection, send CONNECT and wait for a successful CONNACK."""
        self._transport = await _open_transport(self.endpoint, self._connect_timeout)
        loop = asyncio.get_running_loop()
        self._connack_waiter = loop.create_future()
        self._connack_waiter.add_done_callback(_consume_exception)
        self._tasks = [
            loop.create_task(self._read_loop(), name="mqtt-reader"),
            loop.create_task(self._write_loop(), name="mqtt-writer"),
        ]
        try:
            await self._send(self._connect_packet)
            async with asyncio.timeout(self._connect_timeout):
                # Shielded: a Ctrl-C just as CONNACK arrives must not cancel the waiter,
                # so that the handler below can tell an accepted connection.
                connack = await asyncio.shield(self._connack_waiter)
        except TimeoutError:
            await self.close()
            raise ConnectionFailed(
                f"connected to {self.endpoint.describe()} but got no CONNACK within "
                f"{self._connect_timeout:g} s: is this an MQTT port?"
            ) from None
        except BaseException:
            # Cancelled (Ctrl-C) just after a successful CONNACK arrived: say goodbye.
            waiter = self._connack_waiter
            accepted = (
                waiter.done()
                and not waiter.cancelled()
                and waiter.exception() is None
                and waiter.result().reason_code == 0
            )
            await (self.disconnect() if accepted else self.close())
            raise
        if connack.reason_code != 0:
            await self.close()
            raise _connack_refusal(connack, self.protocol_level)
        self.connack = connack
        self._apply_connack(connack)
        keep_alive = self._connect_packet.keep_alive
        if connack.properties.server_keep_alive is not None:
            keep_alive = connack.properties.server_keep_alive  # MQTT-3.2.2-21
        if keep_alive > 0:
            self._tasks.append(loop.create_task(self._keepalive_loop(keep_alive), name="mqtt-ping"))
        return connack

    async def publish(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
    ) -> None:
        """Publish and wait until the QoS flow is complete (QoS 0: handed to the writer)."""
        done = await self.start_publish(
            topic, payload, qos=qos, retain=retain, properties=properties
        )
        await done

    async def start_publish(
        self,
        topic: str,
        payload: bytes = b"",
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
    ) -> asyncio.Future[None]:
        """Send a PUBLISH once the in-flight window has room; return its completion future.

        The future completes when PUBACK (QoS 1) or PUBCOMP (QoS 2) arrives, at once for
        QoS 0, and fails with :class:`PublishRefused` or :class:`ConnectionLost`.
        """
        self._check_open()
        if qos > self._max_qos:
            raise PublishRefused(
                f"the broker supports QoS up to {self._max_qos}: use -q {self._max_qos}", 0x9B
            )
        if retain and not self._retain_available:
            raise PublishRefused("the broker does not support retained messages: drop -r", 0x9A)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(_consume_exception)
        if qos == 0:
            await self._send(Publish(topic, payload, 0, retain, properties=properties))
            future.set_result(None)
            return future
        await self._window.acquire()
        packet_id: int | None = None
        try:
            self._check_open()
            packet_id = self._allocate_packet_id()
            self._flights[packet_id] = _OutgoingFlight(topic, qos, future)
            await self._send(Publish(topic, payload, qos, retain, False, packet_id, properties))
        except BaseException:
            # Not sent (too large, cancelled, connection gone): free the id and the slot.
            # (_fail() already released the slots of the flights it cleared.)
            if packet_id is None or self._flights.pop(packet_id, None) is not None:
                self._window.release()
            raise
        return future

    async def wait_published(self) -> None:
        """Wait until every QoS 1/2 message sent so far is acknowledged (or has failed)."""
        futures = [flight.future for flight in self._flights.values()]
        if futures:
            await asyncio.gather(*futures, return_exceptions=True)

    async def subscribe(
        self,
        subscriptions: tuple[SubscriptionRequest, ...],
        properties: Properties = NO_PROPERTIES,
    ) -> SubAck:
        """Subscribe and return the SUBACK; its reason codes say what was granted."""
        self._check_open()
        future: asyncio.Future[SubAck] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume_exception)
        packet_id = self._allocate_packet_id()
        self._suback_waiters[packet_id] = future
        try:
            await self._send(Subscribe(packet_id, subscriptions, properties))
            return await future
        finally:
            self._suback_waiters.pop(packet_id, None)

    async def unsubscribe(self, topic_filters: tuple[str, ...]) -> UnsubAck:
        """Unsubscribe and return the UNSUBACK."""
        self._check_open()
        future: asyncio.Future[UnsubAck] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume_exception)
        packet_id = self._allocate_packet_id()
        self._unsuback_waiters[packet_id] = future
        try:
            await self._send(Unsubscribe(packet_id, topic_filters))
            return await future
        finally:
            self._unsuback_waiters.pop(packet_id, None)

    async def next_message(self) -> Publish:
        """The next message from the broker; it is acknowledged now (QoS 1/2).

        Raises :class:`ConnectionLost` once the connection has ended and every message
        received before that has been taken.
        """
        if self._reader_done and self._inbox.empty():
            raise self._error or ConnectionLost("the connection is closed")
        message = await self._inbox.get()
        if message is None:
            self._inbox.put_nowait(None)  # later calls fail the same way
            raise self._error or ConnectionLost("the connection is closed")
        if message.packet_id is not None and self._error is None:
            if message.qos == 1:
                await self._send(PubAck(message.packet_id))
            elif message.qos == 2:
                self._incoming_qos2[message.packet_id] = True
                await self._send(PubRec(message.packet_id))
        return message

    async def disconnect(self, reason_code: int = 0) -> None:
        """Send DISCONNECT, let the writer flush it and close the connection."""
        if self._error is None and self._transport is not None:
            with contextlib.suppress(MQTTClientError, TimeoutError):
                async with asyncio.timeout(5):
                    await self._send(Disconnect(reason_code))
                    await self._outbox.join()
        await self.close()

    async def close(self) -> None:
        """Close the connection at once (no DISCONNECT: the broker sends the will)."""
        self._fail(ConnectionLost("the client closed the connection"))
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.close()

    async def wait_closed(self) -> MQTTClientError:
        """Wait until the connection ends; return why."""
        await self._closed.wait()
        assert self._error is not None
        return self._error

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._error is not None:
            raise self._error

    def _apply_connack(self, connack: ConnAck) -> None:
        props = connack.properties
        if props.assigned_client_identifier:
            self.client_id = props.assigned_client_identifier
        if props.receive_maximum is not None and props.receive_maximum < self._max_inflight:
            # MQTT-3.3.4-7: never more unacknowledged QoS>0 PUBLISHes than Receive Maximum.
            self._window = asyncio.Semaphore(props.receive_maximum)
        if props.maximum_qos is not None:  # MQTT-3.2.2-11
            self._max_qos = props.maximum_qos
        if props.retain_available == 0:  # MQTT-3.2.2-14
            self._retain_available = False
        self._max_packet_size = props.maximum_packet_size

    def _allocate_packet_id(self) -> int:
        for _ in range(_MAX_PACKET_ID):
            self._next_id = self._next_id % _MAX_PACKET_ID + 1
            candidate = self._next_id
            if (
                candidate not in self._flights
                and candidate not in self._suback_waiters
                and candidate not in self._unsuback_waiters
            ):
                return candidate
        raise ConnectionLost("all 65535 packet identifiers are in use")

    async def _send(self, packet: Packet) -> None:
        self._check_open()
        try:
            data = self._codec.send(packet)
        except LocalProtocolError as exc:
            raise MQTTClientError(f"cannot send {type(packet).__name__}: {exc.message}") from exc
        if self._max_packet_size is not None and len(data) > self._max_packet_size:
            # MQTT-3.2.2-15: never send a packet larger than the broker's Maximum Packet Size.
            raise PublishRefused(
                f"{type(packet).__name__.upper()} of {len(data)} bytes is larger than the broker "
                f"accepts ({self._max_packet_size} bytes)",
                0x95,
            )
        if self._trace is not None:
            self._trace("sending", packet)
        self._last_send = asyncio.get_running_loop().time()
        await self._outbox.put(data)

    def _send_nowait(self, packet: Packet) -> None:
        """Queue an acknowledgement from the reader task without blocking it."""
        if self._error is not None:
            return
        data = self._codec.send(packet)
        if self._trace is not None:
            self._trace("sending", packet)
        self._last_send = asyncio.get_running_loop().time()
        try:
            self._outbox.put_nowait(data)
        except asyncio.QueueFull:
            self._fail(ConnectionLost("the broker does not read what we send"))

    async def _write_loop(self) -> None:
        assert self._transport is not None
        try:
            while True:
                chunks = [await self._outbox.get()]
                while not self._outbox.empty():
                    chunks.append(self._outbox.get_nowait())
                try:
                    await self._transport.write(b"".join(chunks))
                finally:
                    for _ in chunks:
                        self._outbox.task_done()
        except MQTTClientError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(ConnectionLost(f"the connection broke while sending: {exc}"))
        except Exception as exc:  # a bug of ours: end the connection, never hang the caller
            log.exception("MQTT writer failed")
            self._fail(ConnectionLost(f"internal error while sending: {exc!r}"))

    async def _read_loop(self) -> None:
        assert self._transport is not None
        try:
            while True:
                data = await self._transport.read()
                if not data:
                    self._fail(self._eof_error())
                    break
                if not self._first_bytes:
                    self._first_bytes = data[:4]
                    self._check_not_mqtt(data)
                for packet in self._codec.receive(data):
                    if self._trace is not None:
                        self._trace("received", packet)
                    if isinstance(packet, Publish):
                        await self._on_publish(packet)
                    else:
                        self._on_packet(packet)
        except RemoteProtocolError as exc:
            if self.protocol_level == 5 and self.connack is not None:
                self._send_nowait(Disconnect(exc.reason_code))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1):
                        await self._outbox.join()
            self._fail(self._protocol_error(exc))
        except MQTTClientError as exc:
            self._fail(exc)
        except OSError as exc:
            self._fail(ConnectionLost(f"the connection broke: {exc.strerror or exc}"))
        except Exception as exc:  # a bug of ours: end the connection, never hang the caller
            log.exception("MQTT reader failed")
            self._fail(ConnectionLost(f"internal error while reading: {exc!r}"))
        finally:
            self._reader_done = True
            # Wakes a waiting next_message(); when the inbox is full, next_message() sees
            # _reader_done once it has taken the rest.
            with contextlib.suppress(asyncio.QueueFull):
                self._inbox.put_nowait(None)

    def _check_not_mqtt(self, data: bytes) -> None:
        """Name the usual wrong-port mistakes instead of reporting a malformed packet."""
        where = self.endpoint.describe()
        if data.startswith(b"HTTP/"):
            raise ConnectionFailed(
                f"{where} answered in HTTP, not MQTT: check -p/--port (for MQTT over "
                "WebSocket use -L ws://host:port/path)"
            )
        if data[:2] == b"\x15\x03":  # a TLS alert record
            raise ConnectionFailed(
                f"{where} answered with a TLS alert: this port expects TLS; use mqtts:// "
                "or --cafile/--tls"
            )

    def _looks_like_v311_connack(self) -> bool:
        # MQTT 3.1.1 CONNACK: 0x20, remaining length 2 [MQTT-3.2]; a broker that does not
        # speak 5.0 answers a 5.0 CONNECT this way (return code 1).
        return self.protocol_level == 5 and self._first_bytes[:2] == b"\x20\x02"

    def _eof_error(self) -> ConnectionLost:
        if self.connack is None:
            if self.protocol_level == 5:
                return ConnectionLost(
                    "the broker closed the connection before CONNACK (if it does not speak "
                    "MQTT 5, try -V mqttv311)"
                )
            return ConnectionLost("the broker closed the connection before CONNACK")
        return ConnectionLost("the broker closed the connection")

    def _protocol_error(self, exc: RemoteProtocolError) -> ConnectionLost:
        if self.connack is None and self._looks_like_v311_connack():
            return ConnectionLost(
                "the broker answered in MQTT 3.1.1: it does not speak MQTT 5; try -V mqttv311",
                0x84,
            )
        return ConnectionLost(f"the broker sent an invalid packet: {exc.message}", exc.reason_code)

    async def _on_publish(self, packet: Publish) -> None:
        if packet.qos == 2 and packet.packet_id is not None:
            acked = self._incoming_qos2.get(packet.packet_id)
            if acked is not None:
                # A resend of a message we already have: answer PUBREC again but deliver it
                # once [MQTT-4.3.3-10].
                if acked:
                    self._send_nowait(PubRec(packet.packet_id))
                return
            self._incoming_qos2[packet.packet_id] = False
        await self._inbox.put(packet)

    def _on_packet(self, packet: Packet) -> None:
        match packet:
            case ConnAck():
                if self._connack_waiter is None or self._connack_waiter.done():
                    raise ConnectionLost("the broker sent a second CONNACK", 0x82)
                self._connack_waiter.set_result(packet)
            case PubAck(packet_id=packet_id, reason_code=code):
                self._finish_flight(packet_id, code, expected_qos=1)
            case PubRec(packet_id=packet_id, reason_code=code):
                flight = self._flights.get(packet_id)
                if flight is None or flight.qos != 2:
                    if self.protocol_level == 5:
                        self._send_nowait(PubRel(packet_id, 0x92))  # MQTT-4.3.3: not found
                    return
                if code >= 0x80:
                    self._finish_flight(packet_id, code, expected_qos=2)
                    return
                flight.released = True
                self._send_nowait(PubRel(packet_id))
            case PubComp(packet_id=packet_id, reason_code=code):
                flight = self._flights.get(packet_id)
                if flight is not None and flight.released:
                    self._finish_flight(packet_id, code, expected_qos=2)
            case PubRel(packet_id=packet_id):
                known = self._incoming_qos2.pop(packet_id, None) is not None
                code = 0 if known or self.protocol_level == 4 else 0x92
                self._send_nowait(PubComp(packet_id, code))
            case SubAck(packet_id=packet_id):
                waiter = self._suback_waiters.pop(packet_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(packet)
            case UnsubAck(packet_id=packet_id):
                unsub_waiter = self._unsuback_waiters.pop(packet_id, None)
                if unsub_waiter is not None and not unsub_waiter.done():
                    unsub_waiter.set_result(packet)
            case PingResp():
                self._ping_sent_at = None
            case Disconnect(reason_code=code, properties=props):
                message = f"the broker disconnected: {reason_text(code)}"
                if props.reason_string:
                    message += f" (broker says: {props.reason_string})"
                if props.server_reference:
                    message += f" (server reference: {props.server_reference})"
                raise ConnectionLost(message, code)
            case Auth():
                raise ConnectionLost(
                    "the broker asked for enhanced authentication (AUTH), which this client "
                    "does not support",
                    0x8C,
                )
            case _:
                log.debug("ignoring unexpected %s", type(packet).__name__)

    def _finish_flight(self, packet_id: int, code: int, *, expected_qos: int) -> None:
        flight = self._flights.get(packet_id)
        if flight is None or flight.qos != expected_qos:
            log.debug("ignoring acknowledgement for unknown packet id %d", packet_id)
            return
        del self._flights[packet_id]
        self._window.release()
        if flight.future.done():
            return
        if code >= 0x80:
            flight.future.set_exception(
                PublishRefused(
                    f"the broker refused the message to {flight.topic!r}: {reason_text(code)}",
                    code,
                )
            )
        else:
            flight.future.set_result(None)

    async def _keepalive_loop(self, interval: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                due = self._last_send + interval
                now = loop.time()
                if now < due:
                    await asyncio.sleep(due - now)
                    continue
                if self._ping_sent_at is not None:
                    # MQTT 3.1.2.10 leaves "a reasonable amount of time" to us: one interval.
                    self._fail(
                        ConnectionLost(f"the broker did not answer PINGREQ within {interval} s")
                    )
                    if self._transport is not None:
                        await self._transport.close()
                    return
                self._ping_sent_at = now
                await self._send(PingReq())
        except MQTTClientError:
            return

    def _fail(self, error: MQTTClientError) -> None:
        """End the connection's life: remember why and fail everything still waiting."""
        if self._error is not None:
            return
        self._error = error
        self._closed.set()
        waiters: list[asyncio.Future[Any]] = []
        if self._connack_waiter is not None:
            waiters.append(self._connack_waiter)
        waiters.extend(flight.future for flight in self._flights.values())
        waiters.extend(self._suback_waiters.values())
        waiters.extend(self._unsuback_waiters.values())
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
        for _ in self._flights:
            self._window.release()  # wake publishers waiting for a slot; they see the error
        self._flights.clear()
        self._suback_waiters.clear()
        self._unsuback_waiters.clear()
