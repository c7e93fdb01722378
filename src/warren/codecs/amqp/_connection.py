"""One end of an AMQP 0-9-1 connection, without I/O: frames, content assembly, state.

Everything that affects what may be received or sent next lives in this file:

Receive side::

    SERVER  AWAIT_HEADER --protocol header--> FRAMES --connection.close-ok--> CLOSED
    CLIENT  FIRST_FRAME --any frame--> FRAMES --connection.close-ok--> CLOSED
            (a protocol header instead: the server refused our version, 4.2.2)

Send side::

    CLIENT  BEFORE_HEADER --send(ProtocolHeader)--> FRAMES --connection.close-ok--> CLOSED
    SERVER  BEFORE_HEADER --header received------> FRAMES --connection.close-ok--> CLOSED

In CLOSED nothing more is parsed (the peer that sent close-ok sends nothing after
it), so later bytes stay as ``trailing_data``; nothing more may be sent after our
close-ok.

Per frame, in this order (4.2.3): the size against the negotiated frame-max as soon
as the 7-byte header is in (before the payload is buffered), the frame-end octet,
then the frame type and the channel rules, then the payload. A method is allowed
only from the peer's role (the spec's chassis), connection methods only on channel
0 and the others never there. Content (4.2.6) is assembled per channel — frames of
other channels may come in between — and returned as one event when its last body
frame arrives: a method frame, then a content header whose class matches and whose
weight is 0, then body frames adding up to exactly the size the header declared.

Until connection.tune-ok both ends accept frames of at most FRAME_MIN_SIZE (the
rule "minimum" of connection.tune); from then on the negotiated frame-max applies
to both directions and body frames are cut to fit it.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any, Final, TypeAlias, cast

from warren.errors import LocalProtocolError

from ._constants import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_MAX_UNLIMITED,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    FRAME_OVERHEAD,
    MAX_CHANNEL,
    PROTOCOL_HEADER,
    ReplyCode,
)
from ._errors import AMQPRemoteError, ProtocolHeaderMismatch
from ._events import AMQP_0_9_1, HEARTBEAT, ContentMethod, Heartbeat, Method, ProtocolHeader
from ._fields import MalformedError, encode_shortstr
from ._methods import (
    CONTENT_BUILDERS,
    DECODERS,
    ENCODERS,
    METHODS,
    BasicDeliver,
    ConnectionCloseOk,
    ConnectionTune,
    ConnectionTuneOk,
)
from ._properties import NO_PROPERTIES, BasicProperties, decode_properties, encode_properties

Event: TypeAlias = Method | ProtocolHeader | Heartbeat
"""What :meth:`AMQPConnection.receive` returns and :meth:`AMQPConnection.send` takes."""

DEFAULT_MAX_BODY_SIZE: Final = 134_217_728
"""The largest content body accepted by default: RabbitMQ's default max_message_size
(128 MiB, 3.8 to 3.13)."""

_FRAME_HEAD: Final = struct.Struct(">BHI")  # type, channel, payload size
_METHOD_HEAD: Final = struct.Struct(">BHIHH")  # ... then class id, method id
_CONTENT_HEAD: Final = struct.Struct(">HHQ")  # class id, weight, body size
_CONTENT_FRAME_HEAD: Final = struct.Struct(">BHIHHQ")  # a content header frame's start
_U32: Final = struct.Struct(">I")
_END: Final = bytes((FRAME_END,))
_HEARTBEAT_FRAME: Final = bytes((FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END))
_NO_PROPERTIES: Final = b"\x00\x00"  # property flags 0: no properties
_U8: Final = struct.Struct(">B")
_DELIVERY_TAG: Final = struct.Struct(">QB")  # basic.deliver: delivery-tag, redelivered
_CONNECTION_CLASS: Final = 10

# Errors a decoder raises when the bytes are malformed: reading past the end of the
# buffer (struct.error, IndexError), bad UTF-8 or a table it cannot read (ValueError).
_DECODE_ERRORS: Final = (struct.error, IndexError, ValueError)
# Errors an encoder raises for a value the wire cannot carry.
_ENCODE_ERRORS: Final = (struct.error, ValueError, OverflowError, TypeError, AttributeError)


class Role(enum.Enum):
    """Which end of the connection we are."""

    CLIENT = "client"
    SERVER = "server"


class _Phase(enum.Enum):
    AWAIT_HEADER = enum.auto()  # server receiving: the protocol header has not arrived
    FIRST_FRAME = enum.auto()  # client receiving: nothing from the server yet
    BEFORE_HEADER = enum.auto()  # sending: no header yet (sent by a client, received by a server)
    FRAMES = enum.auto()
    CLOSED = enum.auto()


# A method class, called with its arguments and channel; for content methods, its
# fast constructor, called with (channel, arguments, properties, body).
_Make: TypeAlias = Callable[..., Method]
_Decoder: TypeAlias = Callable[[bytes, int, int], tuple[Any, ...]]
# (class, constructor, decoder, carries content, connection class)
_ReceiveEntry: TypeAlias = tuple[type[Method], _Make, _Decoder, bool, bool]
# (encoder, class id, method id, carries content, connection class)
_SendEntry: TypeAlias = tuple[Callable[[Any], bytes], int, int, bool, bool]

_BY_INDEX: Final = {(m.CLASS_ID << 16) | m.METHOD_ID: m for m in METHODS}


def _receive_table(role: Role) -> dict[int, _ReceiveEntry]:
    """The methods the peer of ``role`` may send, by index (class id << 16 | method id)."""
    return {
        index: (
            m,
            CONTENT_BUILDERS[m] if m.CONTENT else cast(_Make, m),
            DECODERS[m],
            m.CONTENT,
            m.CLASS_ID == _CONNECTION_CLASS,
        )
        for index, m in _BY_INDEX.items()
        if (m.FROM_CLIENT if role is Role.SERVER else m.FROM_SERVER)
    }


def _send_table(role: Role) -> dict[type, _SendEntry]:
    """The methods ``role`` may send."""
    return {
        m: (ENCODERS[m], m.CLASS_ID, m.METHOD_ID, m.CONTENT, m.CLASS_ID == _CONNECTION_CLASS)
        for m in METHODS
        if (m.FROM_SERVER if role is Role.SERVER else m.FROM_CLIENT)
    }


_RECEIVE_TABLES: Final = {role: _receive_table(role) for role in Role}
_SEND_TABLES: Final = {role: _send_table(role) for role in Role}


class _Content:
    """A content being assembled on one channel: its method, then header, then body."""

    __slots__ = ("args", "body_size", "make", "method", "parts", "properties", "received")

    def __init__(self, method: type[Method], make: _Make, args: tuple[Any, ...]) -> None:
        self.method = method
        self.make = make
        self.args = args
        self.body_size = -1  # -1 until the content header arrives
        self.properties: BasicProperties = NO_PROPERTIES
        self.parts: list[bytes] = []
        self.received = 0


def _frame_error(message: str) -> AMQPRemoteError:
    return AMQPRemoteError(message, ReplyCode.FRAME_ERROR)


def _unexpected_frame(message: str, method: type[Method] | None = None) -> AMQPRemoteError:
    if method is None:
        return AMQPRemoteError(message, ReplyCode.UNEXPECTED_FRAME)
    return AMQPRemoteError(message, ReplyCode.UNEXPECTED_FRAME, method.CLASS_ID, method.METHOD_ID)


def negotiate_frame_max(offered: int | None, accepted: int) -> int:
    """The frame-max in force after tune (``offered``, None if not seen) and tune-ok.

    0 means "no limit" on either side; the smaller real limit wins, and no
    negotiated value is below FRAME_MIN_SIZE (connection.tune, rule "minimum").
    """
    limits = [value for value in (offered, accepted) if value]
    frame_max = min(limits) if limits else FRAME_MAX_UNLIMITED
    return max(frame_max, FRAME_MIN_SIZE)


class AMQPConnection:
    """One end of one AMQP 0-9-1 connection, without any I/O.

    Feed it the bytes that arrive (:meth:`receive`, or :meth:`receive_data` then
    :meth:`next_event`) and get events back: a :class:`ProtocolHeader` (server
    role, first), method events, with the content of basic.publish, deliver,
    return and get-ok assembled into the method's ``properties`` and ``body``,
    and :class:`Heartbeat`. Hand it events (:meth:`send`) and get the bytes to
    write; content is cut into body frames that fit the negotiated frame-max.

    Bytes the peer should not have sent raise :class:`AMQPRemoteError` (a
    :class:`RemoteProtocolError`) whose ``reason_code`` is the reply code for
    connection.close — send :meth:`AMQPRemoteError.close_method` — or, for a bad
    protocol header, :class:`ProtocolHeaderMismatch` whose ``response`` is what to
    write before closing. From then on every receive call raises again; sending
    still works. An event we must not send raises :class:`LocalProtocolError` and
    changes nothing.

    ``max_body_size`` is the largest content body accepted: a content header that
    declares more is a frame error, raised before any of its body is buffered.
    """

    __slots__ = (
        "_buf",
        "_contents",
        "_error",
        "_frame_max",
        "_max_body_size",
        "_methods",
        "_need",
        "_offered_frame_max",
        "_payload_max",
        "_receive_phase",
        "_role",
        "_send_phase",
        "_sendable",
    )

    def __init__(self, role: Role, *, max_body_size: int = DEFAULT_MAX_BODY_SIZE) -> None:
        if max_body_size < 0:
            raise ValueError(f"max_body_size {max_body_size} is negative")
        self._role = role
        self._max_body_size = max_body_size
        self._buf = bytearray()
        self._error: AMQPRemoteError | None = None
        self._contents: dict[int, _Content] = {}
        self._methods = _RECEIVE_TABLES[role]
        self._sendable = _SEND_TABLES[role]
        self._offered_frame_max: int | None = None
        self._frame_max = FRAME_MIN_SIZE
        self._payload_max = FRAME_MIN_SIZE - FRAME_OVERHEAD
        self._send_phase = _Phase.BEFORE_HEADER
        if role is Role.SERVER:
            self._receive_phase = _Phase.AWAIT_HEADER
            self._need = 1  # a wrong header is refused from its first wrong byte
        else:
            self._receive_phase = _Phase.FIRST_FRAME
            self._need = 1

    @property
    def role(self) -> Role:
        """Which end of the connection this is."""
        return self._role

    @property
    def frame_max(self) -> int:
        """The largest frame accepted and sent, header and frame-end included.

        FRAME_MIN_SIZE until tune-ok; then the negotiated value (see
        :func:`negotiate_frame_max`): a server takes it from the tune it sent and
        the tune-ok it receives, a client from the tune it receives and the tune-ok
        it sends.
        """
        return self._frame_max

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not yet parsed into frames.

        Frames of a content that is still incomplete have been parsed: they are
        held, decoded, until the content's last body frame arrives.
        """
        return bytes(self._buf)

    # -- receiving -----------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes to the buffer; :meth:`next_event` parses them."""
        self._buf += data

    def next_event(self) -> Event | None:
        """The next complete event in the buffer, or ``None`` if more data is needed."""
        if self._error is not None:
            raise self._failed_again()
        buf = self._buf
        out: list[Event] = []
        try:
            while not out and len(buf) >= self._need:
                phase = self._receive_phase
                if phase is _Phase.CLOSED:
                    return None
                if phase is _Phase.AWAIT_HEADER or phase is _Phase.FIRST_FRAME:
                    with memoryview(buf) as view:
                        src = bytes(view[:8])
                    used = self._start(src, out)
                    if used < 0:
                        return None
                    del buf[:used]
                    continue
                (size,) = _U32.unpack_from(buf, 3)
                if size > self._payload_max:
                    raise self._too_large(size)
                end = FRAME_OVERHEAD + size
                if len(buf) < end:
                    self._need = end
                    return None
                with memoryview(buf) as view:
                    frame = bytes(view[:end])
                self._parse(frame, 0, end, out)
                del buf[:end]
                self._need = 7
        except AMQPRemoteError as exc:
            self._error = exc
            raise
        return out[0] if out else None

    def receive(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed ``data`` and return every event it completes, in order.

        The fast path: parses all complete frames in one pass and keeps only the
        unparsed tail. If a frame is invalid, :class:`AMQPRemoteError` is raised and
        the events before it in the same call are not returned (the connection is
        closing; none of them has been acted on).
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
        elif isinstance(data, bytes):
            src = data
        else:
            src = bytes(data)
        n = len(src)
        out: list[Event] = []
        off = 0
        try:
            if self._receive_phase is not _Phase.FRAMES:
                off = self._start(src, out)
                if off < 0:
                    buf += src
                    return []
            off = self._parse(src, off, n, out)
        except AMQPRemoteError as exc:
            self._error = exc
            raise
        if off < n:
            buf += memoryview(src)[off:] if off else src
        return out

    def _start(self, src: bytes, out: list[Event]) -> int:
        """Handle what comes before the first frame; the bytes used, -1 for "need more".

        Server: the client's protocol header (4.2.2). Client: the server's first
        bytes, which are a protocol header only if it refused our version.
        """
        if self._receive_phase is _Phase.FIRST_FRAME:
            if src[:1] != b"A":
                self._receive_phase = _Phase.FRAMES
                self._need = 7
                return 0
            if len(src) < 8:
                self._need = 8
                return -1
            raise ProtocolHeaderMismatch(
                f"the server refused AMQP 0-9-1 and answered with {bytes(src[:8])!r}",
                received=bytes(src[:8]),
                response=b"",
            )
        got = bytes(src[:8])
        if got != PROTOCOL_HEADER[: len(got)]:
            raise ProtocolHeaderMismatch(
                f"protocol header {got!r} is not AMQP 0-9-1 ({PROTOCOL_HEADER!r})",
                received=got,
                response=PROTOCOL_HEADER,
            )
        if len(got) < 8:
            self._need = len(got) + 1  # so a wrong byte is refused as soon as it arrives
            return -1
        out.append(AMQP_0_9_1)
        self._receive_phase = _Phase.FRAMES
        self._send_phase = _Phase.FRAMES
        self._need = 7
        return 8

    def _parse(self, src: bytes, off: int, n: int, out: list[Event]) -> int:
        """Parse the frames in ``src[off:n]`` into ``out``; return where parsing stopped.

        Sets ``_need`` to the buffer size at which the next frame can be complete.
        """
        methods = self._methods
        contents = self._contents
        payload_max = self._payload_max
        frame_head = _FRAME_HEAD.unpack_from
        u32 = _U32.unpack_from
        append = out.append
        need = 7
        while True:
            if n - off < 7:
                break
            ftype, channel, size = frame_head(src, off)
            if size > payload_max:
                raise self._too_large(size)
            start = off + 7
            end = start + size
            if end >= n:
                need = end + 1 - off
                break
            if src[end] != FRAME_END:
                raise _frame_error(f"frame-end octet is {src[end]:#04x}, not 0xce")  # 4.2.3
            if ftype == FRAME_METHOD:
                if size < 4:
                    raise _frame_error(f"method frame of {size} bytes has no method id")
                entry = methods.get(u32(src, start)[0])
                if entry is None:
                    raise self._unknown_method(u32(src, start)[0], channel)
                cls, make, decode, content, connection_class = entry
                if connection_class:
                    if channel != 0:
                        raise AMQPRemoteError(
                            f"{cls.NAME} on channel {channel}: connection methods belong on "
                            "channel 0",
                            ReplyCode.COMMAND_INVALID,
                            cls.CLASS_ID,
                            cls.METHOD_ID,
                        )
                elif channel == 0:
                    raise AMQPRemoteError(  # RabbitMQ: "unexpected method in connection state"
                        f"{cls.NAME} on channel 0, which is for connection methods only",
                        ReplyCode.CHANNEL_ERROR,
                        cls.CLASS_ID,
                        cls.METHOD_ID,
                    )
                if contents and channel in contents:
                    raise self._content_expected(contents[channel], channel, "a method frame")
                try:
                    args = decode(src, start + 4, end)
                except _DECODE_ERRORS as exc:
                    raise self._malformed(cls, exc) from exc
                off = end + 1
                if content:
                    whole = self._whole_content(src, off, n, channel, cls, make, args)
                    if whole is None:  # the content's frames come one by one
                        contents[channel] = _Content(cls, make, args)
                        continue
                    event, off = whole
                    append(event)
                    continue
                event = make(*args, channel=channel)
                append(event)
                if connection_class:
                    if self._received(event):
                        break  # closed: what follows stays trailing data
                    payload_max = self._payload_max  # tune-ok may have changed it
            elif ftype == FRAME_HEADER:
                self._content_header(src, start, end, channel, out)
                off = end + 1
            elif ftype == FRAME_BODY:
                assembly = contents.get(channel)
                if assembly is None or assembly.body_size < 0:
                    raise self._stray_content("content body", channel, assembly)
                received = assembly.received + size
                if received > assembly.body_size:
                    raise AMQPRemoteError(  # RabbitMQ's wording; a frame error there too
                        f"content body frame exceeds remaining content size: "
                        f"{received} bytes of {assembly.body_size}",
                        ReplyCode.FRAME_ERROR,
                        assembly.method.CLASS_ID,
                        assembly.method.METHOD_ID,
                    )
                off = end + 1
                if received < assembly.body_size:
                    assembly.parts.append(src[start:end])
                    assembly.received = received
                    continue
                if assembly.parts:
                    assembly.parts.append(src[start:end])
                    body = b"".join(assembly.parts)
                else:
                    body = src[start:end]
                del contents[channel]
                append(assembly.make(channel, assembly.args, assembly.properties, body))
            elif ftype == FRAME_HEARTBEAT:
                if channel != 0 or size != 0:  # 4.2.7: a frame error
                    raise _frame_error(
                        f"heartbeat frame on channel {channel} with {size} payload bytes"
                    )
                off = end + 1
                append(HEARTBEAT)
            else:
                raise _frame_error(f"unknown frame type {ftype}")  # 4.2.3
        self._need = need
        return off

    def _whole_content(
        self,
        src: bytes,
        off: int,
        n: int,
        channel: int,
        cls: type[Method],
        make: _Make,
        args: tuple[Any, ...],
    ) -> tuple[Method, int] | None:
        """The content method whose header and body frames are all at ``src[off:n]``.

        The fast path for the common case — a content header and one body frame
        right behind the method frame — without holding the content per channel.
        Returns (event, offset after it), or None for anything else, including
        anything wrong: the frame-by-frame path then raises the right error.
        """
        if n - off < 22:  # the smallest content header frame
            return None
        ftype, header_channel, size, class_id, weight, body_size = _CONTENT_FRAME_HEAD.unpack_from(
            src, off
        )
        header_end = off + 7 + size
        if (
            ftype != FRAME_HEADER
            or header_channel != channel
            or size > self._payload_max
            or header_end >= n
            or src[header_end] != FRAME_END
            or class_id != cls.CLASS_ID
            or weight != 0
            or body_size > self._max_body_size
        ):
            return None
        if body_size:
            body_off = header_end + 1
            if n - body_off < 8:
                return None
            ftype, body_channel, size = _FRAME_HEAD.unpack_from(src, body_off)
            body_end = body_off + 7 + size
            if (
                ftype != FRAME_BODY
                or body_channel != channel
                or size != body_size
                or body_end >= n
                or src[body_end] != FRAME_END
            ):
                return None
            body = src[body_off + 7 : body_end]
        else:
            body_end = header_end
            body = b""
        if size == 14 and src[off + 19] == 0 and src[off + 20] == 0:
            return make(channel, args, NO_PROPERTIES, body), body_end + 1
        try:
            properties = decode_properties(src, off + 19, header_end)
        except (AMQPRemoteError, *_DECODE_ERRORS):
            return None
        return make(channel, args, properties, body), body_end + 1

    def _content_header(
        self, src: bytes, start: int, end: int, channel: int, out: list[Event]
    ) -> None:
        assembly = self._contents.get(channel)
        if assembly is None or assembly.body_size >= 0:
            raise self._stray_content("content header", channel, assembly)
        method = assembly.method
        if end - start < 14:
            raise AMQPRemoteError(
                f"content header frame of {end - start} bytes is too short",
                ReplyCode.FRAME_ERROR,
                method.CLASS_ID,
                method.METHOD_ID,
            )
        class_id, weight, body_size = _CONTENT_HEAD.unpack_from(src, start)
        if class_id != method.CLASS_ID or weight != 0:  # 4.2.6.1; RabbitMQ: unexpected frame
            raise _unexpected_frame(
                f"content header for class {class_id} with weight {weight} after {method.NAME}",
                method,
            )
        if body_size > self._max_body_size:
            raise AMQPRemoteError(
                f"content body size {body_size} exceeds the maximum of {self._max_body_size}",
                ReplyCode.FRAME_ERROR,
                method.CLASS_ID,
                method.METHOD_ID,
            )
        try:
            properties = decode_properties(src, start + 12, end)
        except AMQPRemoteError as exc:
            exc.class_id, exc.method_id = method.CLASS_ID, method.METHOD_ID
            raise
        except _DECODE_ERRORS as exc:
            raise AMQPRemoteError(
                f"malformed content header after {method.NAME}: {_explain(exc)}",
                ReplyCode.FRAME_ERROR,
                method.CLASS_ID,
                method.METHOD_ID,
            ) from exc
        if body_size == 0:  # no body frames follow (4.2.6)
            del self._contents[channel]
            out.append(assembly.make(channel, assembly.args, properties, b""))
        else:
            assembly.body_size = body_size
            assembly.properties = properties

    def _received(self, event: Method) -> bool:
        """Apply a received connection method; return whether receiving is now closed."""
        if isinstance(event, ConnectionTuneOk):
            if self._role is Role.SERVER:
                self._set_frame_max(negotiate_frame_max(self._offered_frame_max, event.frame_max))
        elif isinstance(event, ConnectionTune):
            self._offered_frame_max = event.frame_max
        elif isinstance(event, ConnectionCloseOk):
            self._receive_phase = _Phase.CLOSED
            return True
        return False

    def _set_frame_max(self, frame_max: int) -> None:
        self._frame_max = frame_max
        self._payload_max = frame_max - FRAME_OVERHEAD

    # -- errors on receipt ---------------------------------------------------------

    def _failed_again(self) -> AMQPRemoteError:
        error = self._error
        assert error is not None
        return AMQPRemoteError(
            f"the connection already failed: {error.message}",
            error.reason_code,
            error.class_id,
            error.method_id,
        )

    def _too_large(self, size: int) -> AMQPRemoteError:
        return _frame_error(  # 4.2.3, and connection.tune rule "minimum"
            f"frame of {size + FRAME_OVERHEAD} bytes exceeds frame-max {self._frame_max}"
        )

    def _unknown_method(self, index: int, channel: int) -> AMQPRemoteError:
        class_id, method_id = index >> 16, index & 0xFFFF
        known = _BY_INDEX.get(index)
        if known is None:
            message = f"unknown method ({class_id}, {method_id}) on channel {channel}"
        else:
            sender = "client" if self._role is Role.SERVER else "server"
            message = f"a {sender} does not send {known.NAME}"
        return AMQPRemoteError(message, ReplyCode.COMMAND_INVALID, class_id, method_id)

    def _malformed(self, cls: type[Method], exc: Exception) -> AMQPRemoteError:
        return AMQPRemoteError(
            f"cannot decode {cls.NAME}: {_explain(exc)}",  # RabbitMQ: a frame error too
            ReplyCode.FRAME_ERROR,
            cls.CLASS_ID,
            cls.METHOD_ID,
        )

    def _content_expected(self, assembly: _Content, channel: int, got: str) -> AMQPRemoteError:
        wanted = "content header" if assembly.body_size < 0 else "content body"
        return _unexpected_frame(  # 4.2.6: a content must be complete; RabbitMQ's wording
            f"expected {wanted} for {assembly.method.NAME} on channel {channel}, got {got}",
            assembly.method,
        )

    def _stray_content(self, what: str, channel: int, assembly: _Content | None) -> AMQPRemoteError:
        if assembly is not None:
            return self._content_expected(assembly, channel, f"a {what} frame")
        return _unexpected_frame(f"{what} frame on channel {channel} without a content method")

    # -- sending -------------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes of ``event``: one frame, or a method with its content frames.

        Raises :class:`LocalProtocolError` if this role may not send it now, if its
        channel is wrong for its class, if a value does not fit its field, or if a
        frame would exceed frame-max.
        """
        entry = self._sendable.get(event.__class__)
        if entry is None or self._send_phase is not _Phase.FRAMES:
            return self._send_other(event)
        encode, class_id, method_id, content, connection_class = entry
        channel = cast(Method, event).channel
        if (channel == 0) is not connection_class or not 0 <= channel <= MAX_CHANNEL:
            raise self._wrong_channel(cast(Method, event))
        try:
            args = encode(event)
        except _ENCODE_ERRORS as exc:
            raise _unencodable(cast(Method, event), exc) from exc
        size = len(args) + 4
        if size > self._payload_max:
            raise LocalProtocolError(
                f"{_name(event)} frame of {size + FRAME_OVERHEAD} bytes exceeds frame-max "
                f"{self._frame_max}",
                ReplyCode.FRAME_ERROR,
            )
        frame = _METHOD_HEAD.pack(FRAME_METHOD, channel, size, class_id, method_id) + args
        if content:
            event = cast(ContentMethod, event)
            properties = event.properties
            packed = (
                _NO_PROPERTIES if properties is NO_PROPERTIES else encode_properties(properties)
            )
            return self._content_frames(frame, packed, event.body, class_id, channel)
        if connection_class:
            self._sent(cast(Method, event))
        return frame + _END

    def send_deliver(
        self,
        channel: int,
        consumer_tag: str,
        delivery_tag: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: BasicProperties | bytes = NO_PROPERTIES,
        *,
        redelivered: bool = False,
    ) -> bytes:
        """``send(BasicDeliver(...))`` without building the event: the fan-out fast path.

        ``properties`` may also be what :func:`encode_properties` returned, so that a
        message delivered to many consumers has its properties encoded once. The
        checks are those of :meth:`send`.
        """
        if self._role is not Role.SERVER or self._send_phase is not _Phase.FRAMES:
            return self.send(BasicDeliver(consumer_tag, delivery_tag, channel=channel))
        if not 0 < channel <= MAX_CHANNEL:
            raise self._wrong_channel(BasicDeliver(consumer_tag, delivery_tag, channel=channel))
        try:
            tag = consumer_tag.encode()
            exchange_ = exchange.encode()
            key = routing_key.encode()
            args = b"".join(
                (
                    _U8.pack(len(tag)),
                    tag,
                    _DELIVERY_TAG.pack(delivery_tag, 1 if redelivered else 0),
                    _U8.pack(len(exchange_)),
                    exchange_,
                    _U8.pack(len(key)),
                    key,
                )
            )
        except _ENCODE_ERRORS as exc:
            event = BasicDeliver(
                consumer_tag, delivery_tag, redelivered, exchange, routing_key, channel=channel
            )
            raise _unencodable(event, exc) from exc
        size = len(args) + 4
        if size > self._payload_max:
            raise LocalProtocolError(
                f"basic.deliver frame of {size + FRAME_OVERHEAD} bytes exceeds frame-max "
                f"{self._frame_max}",
                ReplyCode.FRAME_ERROR,
            )
        if properties is NO_PROPERTIES:
            packed = _NO_PROPERTIES
        elif isinstance(properties, BasicProperties):
            packed = encode_properties(properties)
        else:
            packed = properties
        frame = _METHOD_HEAD.pack(FRAME_METHOD, channel, size, 60, 60) + args
        return self._content_frames(frame, packed, body, 60, channel)

    def _content_frames(
        self, frame: bytes, packed: bytes, body: bytes, class_id: int, channel: int
    ) -> bytes:
        """``frame`` (a method frame without its frame-end) and its content frames."""
        body_size = len(body)
        if 12 + len(packed) > self._payload_max:
            raise LocalProtocolError(
                f"content header of {20 + len(packed)} bytes exceeds frame-max {self._frame_max}",
                ReplyCode.FRAME_ERROR,
            )
        parts: list[bytes | memoryview] = [
            frame,
            _END,
            _CONTENT_FRAME_HEAD.pack(
                FRAME_HEADER, channel, 12 + len(packed), class_id, 0, body_size
            ),
            packed,
            _END,
        ]
        chunk = self._payload_max
        if body_size <= chunk:
            if body_size:  # an empty body has no body frame (4.2.6)
                parts += (_FRAME_HEAD.pack(FRAME_BODY, channel, body_size), body, _END)
        else:
            view = memoryview(body)
            for at in range(0, body_size, chunk):
                piece = view[at : at + chunk]
                parts += (_FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)), piece, _END)
        return b"".join(parts)

    def _send_other(self, event: Event) -> bytes:
        """Send what is not a method this role may send in the FRAMES phase."""
        phase = self._send_phase
        if isinstance(event, ProtocolHeader):
            if self._role is Role.SERVER:
                raise LocalProtocolError(  # it is in ProtocolHeaderMismatch.response
                    "a server sends a protocol header only to refuse a client's",
                    ReplyCode.COMMAND_INVALID,
                )
            if phase is not _Phase.BEFORE_HEADER:
                raise LocalProtocolError(
                    "the protocol header was already sent", ReplyCode.COMMAND_INVALID
                )
            self._send_phase = _Phase.FRAMES
            return event.to_bytes()
        if phase is _Phase.BEFORE_HEADER:
            waiting = "sent" if self._role is Role.CLIENT else "received"
            raise LocalProtocolError(
                f"cannot send {_name(event)} before the protocol header was {waiting}",
                ReplyCode.COMMAND_INVALID,
            )
        if phase is _Phase.CLOSED:
            raise LocalProtocolError(
                f"cannot send {_name(event)} after connection.close-ok",
                ReplyCode.COMMAND_INVALID,
            )
        if isinstance(event, Heartbeat):
            return _HEARTBEAT_FRAME
        if isinstance(event, Method):  # a method of the spec, but the other peer sends it
            raise LocalProtocolError(
                f"a {self._role.value} does not send {event.NAME}", ReplyCode.COMMAND_INVALID
            )
        raise LocalProtocolError(f"not an AMQP event: {event!r}", ReplyCode.COMMAND_INVALID)

    def _sent(self, event: Method) -> None:
        """Apply a connection method we sent."""
        if isinstance(event, ConnectionTune):
            self._offered_frame_max = event.frame_max
        elif isinstance(event, ConnectionTuneOk):
            if self._role is Role.CLIENT:
                self._set_frame_max(negotiate_frame_max(self._offered_frame_max, event.frame_max))
        elif isinstance(event, ConnectionCloseOk):
            self._send_phase = _Phase.CLOSED

    def _wrong_channel(self, event: Method) -> LocalProtocolError:
        channel = event.channel
        if not isinstance(channel, int) or not 0 <= channel <= MAX_CHANNEL:
            reason = f"channel {channel!r} is not a number in 0..{MAX_CHANNEL}"
        elif channel == 0:
            reason = f"{event.NAME} cannot be sent on channel 0 (connection methods only)"
        else:
            reason = f"{event.NAME} belongs on channel 0, not {channel}"
        return LocalProtocolError(reason, ReplyCode.CHANNEL_ERROR)


def _name(event: object) -> str:
    return event.NAME if isinstance(event, Method) else type(event).__name__


def _explain(exc: Exception) -> str:
    """Why decoding failed, in words."""
    if isinstance(exc, UnicodeDecodeError):
        return "a short string is not valid UTF-8"  # RabbitMQ: a frame error too
    if isinstance(exc, MalformedError):
        return str(exc)
    return "its fields overrun the frame"  # struct.error, IndexError


_INT_RANGES: Final = {
    "octet": 0xFF,
    "short": 0xFFFF,
    "long": 0xFFFF_FFFF,
    "longlong": 0xFFFF_FFFF_FFFF_FFFF,
    "timestamp": 0xFFFF_FFFF_FFFF_FFFF,
}


def _unencodable(event: Method, exc: Exception) -> LocalProtocolError:
    """Which argument of ``event`` its encoder choked on, and why (the slow path)."""
    for name, amqp_type in event.ARGUMENTS:
        value = getattr(event, name)
        problem = None
        if amqp_type in _INT_RANGES:
            if not isinstance(value, int) or not 0 <= value <= _INT_RANGES[amqp_type]:
                problem = f"is not an integer in 0..{_INT_RANGES[amqp_type]}"
        elif amqp_type == "shortstr":
            try:
                encode_shortstr(value)
            except LocalProtocolError as too_long:
                problem = too_long.message
            except (AttributeError, UnicodeEncodeError):
                problem = "is not a string of UTF-8 text"
        elif amqp_type == "longstr" and not isinstance(value, bytes | bytearray | memoryview):
            problem = "is not bytes"
        if problem is not None:
            return LocalProtocolError(
                f"{event.NAME} {name}={value!r:.60} {problem}", ReplyCode.SYNTAX_ERROR
            )
    return LocalProtocolError(f"cannot encode {event.NAME}: {exc}", ReplyCode.SYNTAX_ERROR)
