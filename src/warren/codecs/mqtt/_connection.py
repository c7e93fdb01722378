"""The MQTT connection state machine: everything that affects which packet may be
received or sent next lives in this file.

Receive side, per role::

    SERVER  AWAIT_CONNECT --CONNECT--> CONNECTED --DISCONNECT--> CLOSED
    CLIENT  IDLE --send(Connect)--> AWAIT_CONNACK --CONNACK--> CONNECTED
                                                  (refusing CONNACK -> CLOSED)
            CONNECTED --DISCONNECT--> CLOSED

In CLOSED nothing more is parsed: the peer has said it sends nothing more
[MQTT-3.14.4-1] and the connection is going away, so later bytes are kept as
``trailing_data`` rather than reported as errors.

Send side, per role::

    SERVER  BEFORE_CONNACK --send(ConnAck)--> CONNECTED --send(Disconnect)--> CLOSED
            (a refusing ConnAck -> CLOSED)
    CLIENT  BEFORE_CONNECT --send(Connect)--> CONNECTED --send(Disconnect)--> CLOSED

Receiving is driven by a 256-entry table indexed by the packet's first byte: the
entry is the decoder for that packet type and version, or ``None`` when the type is
reserved, its flags are wrong or it is not allowed in this role and phase (then
:meth:`MQTTConnection._unexpected` works out which, and the reason code). One
lookup therefore checks the fixed header and the state; the tables are shared by
all connections in the same role, phase and version.
"""

from __future__ import annotations

import enum
from typing import Final

from warren.errors import LocalProtocolError, RemoteProtocolError

from . import _reason as rc
from ._datatypes import malformed
from ._decode import Decoder, decoders, peek_connect_level
from ._encode import ENCODERS
from ._packets import ConnAck, Connect, Disconnect, Packet, PacketType, Publish

_T = PacketType


class Role(enum.Enum):
    """Which end of the connection we are."""

    CLIENT = "client"
    SERVER = "server"


class _Phase(enum.Enum):
    # receive side
    AWAIT_CONNECT = enum.auto()  # server: nothing received yet
    IDLE = enum.auto()  # client: CONNECT not sent yet
    AWAIT_CONNACK = enum.auto()  # client: CONNECT sent, CONNACK not received
    CONNECTED = enum.auto()
    CLOSED = enum.auto()  # DISCONNECT (or a refusing CONNACK) received / sent
    # send side
    BEFORE_CONNACK = enum.auto()  # server: CONNACK not sent yet
    BEFORE_CONNECT = enum.auto()  # client: CONNECT not sent yet


# What each side may send once connected (MQTT 3.1.1 and 5.0 section 2.1.2, "Direction").
_FROM_CLIENT: Final = frozenset(
    {_T.PUBLISH, _T.PUBACK, _T.PUBREC, _T.PUBREL, _T.PUBCOMP, _T.SUBSCRIBE,
     _T.UNSUBSCRIBE, _T.PINGREQ, _T.DISCONNECT, _T.AUTH}
)  # fmt: skip
_FROM_SERVER: Final = frozenset(
    {_T.PUBLISH, _T.PUBACK, _T.PUBREC, _T.PUBREL, _T.PUBCOMP, _T.SUBACK, _T.UNSUBACK,
     _T.PINGRESP, _T.DISCONNECT, _T.AUTH}
)  # fmt: skip

# (role, receive phase) -> packet types that may arrive.
_RECEIVABLE: Final[dict[tuple[Role, _Phase], frozenset[PacketType]]] = {
    (Role.SERVER, _Phase.AWAIT_CONNECT): frozenset({_T.CONNECT}),  # [MQTT-3.1.0-1]
    (Role.SERVER, _Phase.CONNECTED): _FROM_CLIENT,  # a 2nd CONNECT is not [MQTT-3.1.0-2]
    (Role.SERVER, _Phase.CLOSED): frozenset(),  # not parsed: bytes stay trailing data
    (Role.CLIENT, _Phase.IDLE): frozenset(),
    # The server's first packet is CONNACK [MQTT-3.2.0-1], or AUTH (5.0 section 4.12).
    (Role.CLIENT, _Phase.AWAIT_CONNACK): frozenset({_T.CONNACK, _T.AUTH}),
    (Role.CLIENT, _Phase.CONNECTED): _FROM_SERVER,
    (Role.CLIENT, _Phase.CLOSED): frozenset(),
}

# (role, send phase) -> packet types we may send.
_SENDABLE: Final[dict[tuple[Role, _Phase], frozenset[PacketType]]] = {
    # Before CONNACK the server sends nothing else, except 5.0 AUTH [MQTT-3.2.0-1]
    # (a DISCONNECT before CONNACK is forbidden too [MQTT-3.14.0-1]).
    (Role.SERVER, _Phase.BEFORE_CONNACK): frozenset({_T.CONNACK, _T.AUTH}),
    (Role.SERVER, _Phase.CONNECTED): _FROM_SERVER,
    (Role.SERVER, _Phase.CLOSED): frozenset(),
    (Role.CLIENT, _Phase.BEFORE_CONNECT): frozenset({_T.CONNECT}),  # [MQTT-3.1.0-1]
    (Role.CLIENT, _Phase.CONNECTED): _FROM_CLIENT,
    (Role.CLIENT, _Phase.CLOSED): frozenset(),
}

# Fixed-header flags each packet type must carry [MQTT-2.1.3-1]; PUBLISH varies.
_FLAGS: Final = {t: (0x02 if t in (_T.PUBREL, _T.SUBSCRIBE, _T.UNSUBSCRIBE) else 0) for t in _T}

# First bytes of the packets that move the receive phase on.
_PHASE_BYTES: Final = frozenset({0x10, 0x20, 0xE0})

_Table = list[Decoder | None]
_TABLES: dict[tuple[Role, _Phase, int | None], _Table] = {}


def _table(role: Role, phase: _Phase, level: int | None) -> _Table:
    """The shared first-byte dispatch table for a role, receive phase and version."""
    key = (role, phase, level)
    table = _TABLES.get(key)
    if table is not None:
        return table
    table = [None] * 256
    allowed = _RECEIVABLE[role, phase]
    by_type = decoders(level or 5, from_client=role is Role.SERVER)
    for packet_type in allowed:
        if packet_type is _T.AUTH and level != 5:
            continue  # type 15 is reserved in 3.1.1
        decode = by_type[packet_type]
        if packet_type is _T.PUBLISH:
            for flags in range(16):
                qos = (flags >> 1) & 0x03
                # [MQTT-3.3.1-4] no QoS 3; [MQTT-3.3.1-2] no DUP on QoS 0.
                if qos != 3 and not (flags & 0x08 and qos == 0):
                    table[0x30 | flags] = decode
        else:
            table[(packet_type << 4) | _FLAGS[packet_type]] = decode
    _TABLES[key] = table
    return table


def _remaining_length(src: bytes | bytearray, pos: int, n: int) -> tuple[int, int]:
    """Decode the fixed header's Remaining Length at ``pos``: (length, body start).

    Returns (-1, -1) when the bytes so far end inside it.
    """
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= n:
            return -1, -1
        byte = src[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise malformed("remaining length is longer than four bytes")  # [MQTT-1.5.5], 2.2.3


class MQTTConnection:
    """One end of one MQTT 3.1.1 or 5.0 network connection, without any I/O.

    Feed it the bytes that arrive (:meth:`receive`, or :meth:`receive_data` then
    :meth:`next_event`) and get packets back; hand it packets (:meth:`send`) and get
    the bytes to write. It enforces the order of packets in both directions.

    A packet the peer should not have sent raises :class:`RemoteProtocolError` whose
    ``reason_code`` is the MQTT 5 reason code to close with; from then on every
    receive call raises again. A packet we must not send raises
    :class:`LocalProtocolError` and changes nothing.

    ``max_packet_size`` is the largest packet we accept, fixed header included; a
    larger one is refused (0x95) as soon as its fixed header has arrived.

    ``protocol_level`` is 4 (3.1.1) or 5 (5.0), ``None`` until known. SERVER: set
    when the client's CONNECT is decoded, and also when a CONNECT that names level 4
    or 5 fails later on, so the refusing CONNACK can be sent in the client's version
    (with ``None``, ``send(ConnAck(...))`` writes 3.1.1). CLIENT: set when a Connect
    is passed to :meth:`send`.
    """

    __slots__ = (
        "_buf",
        "_error",
        "_max_packet_size",
        "_need",
        "_receive_phase",
        "_role",
        "_send_allowed",
        "_send_phase",
        "_table",
        "protocol_level",
    )

    def __init__(self, role: Role, *, max_packet_size: int = 268_435_455) -> None:
        if max_packet_size < 2:
            raise ValueError(f"max_packet_size {max_packet_size} is below 2 bytes")
        self._role = role
        self._max_packet_size = max_packet_size
        self.protocol_level: int | None = None
        self._buf = bytearray()
        self._need = 2  # bytes the buffer must hold before a packet can be complete
        self._error: RemoteProtocolError | None = None
        if role is Role.SERVER:
            self._receive_phase = _Phase.AWAIT_CONNECT
            self._send_phase = _Phase.BEFORE_CONNACK
        else:
            self._receive_phase = _Phase.IDLE
            self._send_phase = _Phase.BEFORE_CONNECT
        self._table = _table(role, self._receive_phase, None)
        self._send_allowed = _SENDABLE[role, self._send_phase]

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not yet parsed into a packet."""
        return bytes(self._buf)

    # -- receiving ---------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append received bytes to the buffer; :meth:`next_event` parses them."""
        self._buf += data

    def next_event(self) -> Packet | None:
        """The next complete packet in the buffer, or ``None`` if more data is needed."""
        if self._error is not None:
            raise self._failed_again()
        buf = self._buf
        n = len(buf)
        if n < self._need or self._receive_phase is _Phase.CLOSED:
            return None
        first_byte = buf[0]
        try:
            decode = self._table[first_byte]
            if decode is None:
                raise self._unexpected(first_byte)
            length, start = _remaining_length(buf, 1, n)
            if start < 0:
                self._need = n + 1
                return None
            end = start + length
            if end > self._max_packet_size:
                raise self._too_large(end)
            if end > n:
                self._need = end
                return None
            with memoryview(buf) as view:
                src = bytes(view[:end])
            packet = decode(src, start, end, first_byte)
        except RemoteProtocolError as exc:
            self._fail(exc, buf, 0)
            raise
        del buf[:end]
        self._need = 2
        if first_byte in _PHASE_BYTES:
            self._received(packet)
        return packet

    def receive(self, data: bytes) -> list[Packet]:
        """Feed ``data`` and return every packet it completes, in order.

        The fast path: parses all complete packets in one pass and keeps only the
        unparsed tail. If a packet is invalid, :class:`RemoteProtocolError` is
        raised and the packets before it in the same call are not returned (the
        connection is closing; none of them has been acknowledged). Use
        :meth:`receive_data` and :meth:`next_event` to get packets one at a time.
        """
        if self._error is not None:
            raise self._failed_again()
        buf = self._buf
        if self._receive_phase is _Phase.CLOSED:
            buf += data
            return []
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            src = bytes(buf)  # one copy; decoders slice immutable bytes
            buf.clear()
        elif data.__class__ is bytes:
            src = data
        else:
            src = bytes(data)
        n = len(src)
        out: list[Packet] = []
        append = out.append
        table = self._table
        limit = self._max_packet_size
        # A one-byte Remaining Length means a packet of at most 129 bytes: when the
        # limit allows that, such packets skip the length check.
        short = 0x80 if limit >= 129 else 0
        phase_bytes = _PHASE_BYTES
        off = 0
        need = 2
        try:
            while n - off >= 2:
                first_byte = src[off]
                decode = table[first_byte]
                if decode is None:
                    raise self._unexpected(first_byte)
                length = src[off + 1]
                if length < short:
                    start = off + 2
                    end = start + length
                else:
                    length, start = _remaining_length(src, off + 1, n)
                    if start < 0:
                        need = n - off + 1
                        break
                    end = start + length
                    if end - off > limit:
                        raise self._too_large(end - off)
                if end > n:
                    need = end - off
                    break
                append(decode(src, start, end, first_byte))
                off = end
                if first_byte in phase_bytes:
                    if self._received(out[-1]):
                        break  # closed: what follows is left as trailing data
                    table = self._table
        except RemoteProtocolError as exc:
            self._fail(exc, src, off)
            raise
        if off < n:
            buf += memoryview(src)[off:] if off else src
        self._need = need
        return out

    def _received(self, packet: Packet) -> bool:
        """Move the receive phase on after CONNECT, CONNACK or DISCONNECT.

        Returns whether the connection is now closed for receiving.
        """
        if isinstance(packet, Connect):
            self.protocol_level = packet.protocol_level
            phase = _Phase.CONNECTED
        elif isinstance(packet, ConnAck):
            refused = packet.reason_code >= (0x80 if self.protocol_level == 5 else 0x01)
            # After a refusal the server closes the connection (3.2.2.3 / 3.2.2.2).
            phase = _Phase.CLOSED if refused else _Phase.CONNECTED
        else:  # DISCONNECT: the sender sends nothing more [MQTT-3.14.4-1]
            phase = _Phase.CLOSED
        self._set_receive_phase(phase)
        return phase is _Phase.CLOSED

    def _set_receive_phase(self, phase: _Phase) -> None:
        self._receive_phase = phase
        self._table = _table(self._role, phase, self.protocol_level)

    def _fail(self, exc: RemoteProtocolError, src: bytes | bytearray, off: int) -> None:
        self._error = exc
        if self._receive_phase is _Phase.AWAIT_CONNECT and self.protocol_level is None:
            self.protocol_level = peek_connect_level(src, off)

    def _failed_again(self) -> RemoteProtocolError:
        assert self._error is not None
        return RemoteProtocolError(
            f"the connection already failed: {self._error.message}", self._error.reason_code
        )

    def _too_large(self, size: int) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"packet of {size} bytes exceeds the maximum of {self._max_packet_size}",
            rc.PACKET_TOO_LARGE,
        )

    def _unexpected(self, first_byte: int) -> RemoteProtocolError:
        """Why the first byte has no decoder: a malformed header, else the wrong state."""
        code = first_byte >> 4
        flags = first_byte & 0x0F
        if code == 0:
            return malformed("packet type 0 is reserved")  # MQTT 3.1.1 / 5.0 table 2.1
        packet_type = PacketType(code)
        name = packet_type.name
        if packet_type is _T.AUTH and self.protocol_level == 4:
            return malformed("packet type 15 (AUTH) is reserved in MQTT 3.1.1")
        if packet_type is _T.PUBLISH:
            qos = (flags >> 1) & 0x03
            if qos == 3:
                return malformed("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
            if flags & 0x08 and qos == 0:
                return malformed("PUBLISH with DUP set on QoS 0")  # [MQTT-3.3.1-2]
        elif flags != _FLAGS[packet_type]:
            # [MQTT-2.1.3-1]
            return malformed(f"{name} with invalid fixed header flags {flags:#06b}")
        phase = self._receive_phase
        if phase is _Phase.AWAIT_CONNECT:
            reason = f"the first packet must be CONNECT, not {name}"  # [MQTT-3.1.0-1]
        elif phase is _Phase.IDLE:
            reason = f"{name} received before CONNECT was sent"
        elif phase is _Phase.AWAIT_CONNACK:
            reason = f"the first packet from the server must be CONNACK, not {name}"
        elif packet_type is _T.CONNECT:
            reason = "a second CONNECT"  # [MQTT-3.1.0-2]
        elif packet_type is _T.CONNACK:
            reason = "a second CONNACK"
        else:
            sender = "client" if self._role is Role.SERVER else "server"
            reason = f"a {sender} must not send {name}"  # section 2.1.2, "Direction"
        return RemoteProtocolError(reason, rc.PROTOCOL_ERROR)

    # -- sending -----------------------------------------------------------

    def send(self, packet: Packet) -> bytes:
        """Encode ``packet`` for this connection's protocol version.

        Raises :class:`LocalProtocolError` if this role may not send it now, or the
        version cannot carry it (e.g. AUTH on 3.1.1), or it is invalid (qos,
        packet identifier, topic, properties...).
        """
        packet_type = packet.packet_type
        if packet_type not in self._send_allowed:
            raise self._unsendable(packet_type)
        level = self.protocol_level
        if level is None:
            # A server refusing a CONNECT it could not read answers in 3.1.1
            # [MQTT-3.1.2-2]; a client's level comes from its Connect.
            level = 4
        if packet.__class__ is Publish:
            if (
                self._role is Role.CLIENT
                and level == 5
                and packet.properties.subscription_identifiers
            ):
                raise LocalProtocolError(
                    "a client must not send a subscription identifier in PUBLISH",
                    rc.PROTOCOL_ERROR,
                )  # [MQTT-3.3.4-6]
        elif (
            isinstance(packet, Disconnect)
            and self._role is Role.SERVER
            and level == 5
            and packet.properties.session_expiry_interval is not None
        ):
            raise LocalProtocolError(
                "a server must not send a session expiry interval in DISCONNECT",
                rc.PROTOCOL_ERROR,
            )  # [MQTT-3.14.2-2]
        data = ENCODERS[packet_type](packet, level)
        if packet_type is _T.CONNECT or packet_type is _T.CONNACK or packet_type is _T.DISCONNECT:
            self._sent(packet)
        return data

    def _sent(self, packet: Packet) -> None:
        """Move the phases on after sending CONNECT, CONNACK or DISCONNECT."""
        if isinstance(packet, Connect):
            self.protocol_level = packet.protocol_level
            self._send_phase = _Phase.CONNECTED
            if self._receive_phase is _Phase.IDLE:
                self._set_receive_phase(_Phase.AWAIT_CONNACK)
        elif isinstance(packet, ConnAck):
            refused = packet.reason_code >= (0x80 if self.protocol_level == 5 else 0x01)
            # After a refusing CONNACK the server closes the connection
            # (3.1.1 [MQTT-3.2.2-5], 5.0 [MQTT-3.2.2-7]).
            self._send_phase = _Phase.CLOSED if refused else _Phase.CONNECTED
        else:
            self._send_phase = _Phase.CLOSED  # [MQTT-3.14.4-1]
        self._send_allowed = _SENDABLE[self._role, self._send_phase]

    def _unsendable(self, packet_type: PacketType) -> LocalProtocolError:
        phase = self._send_phase
        name = packet_type.name
        if phase is _Phase.BEFORE_CONNECT:
            reason = f"cannot send {name} before CONNECT"
        elif phase is _Phase.BEFORE_CONNACK:
            reason = f"cannot send {name} before CONNACK"
        elif phase is _Phase.CLOSED:
            reason = f"cannot send {name} after the connection was closed"
        else:
            reason = f"a {self._role.value} must not send {name}"
        return LocalProtocolError(reason, rc.PROTOCOL_ERROR)
