"""One end of a native-protocol connection, without any I/O.

Frame-level checks (preamble, header, size, direction and phase) happen here, in
that order, before a body is buffered or decoded; the body itself is decoded by
:mod:`._frames`; which frame may come next is decided by the tables of
:mod:`._state`. Flow control (credit) and the peer's frame size limit are counted
here too, because both ends must count them the same way.
"""

from __future__ import annotations

from typing import Final

from warren.errors import LocalProtocolError, RemoteProtocolError

from ._codes import ErrorCode
from ._events import (
    DEFAULT_MAX_FRAME_SIZE,
    MAX_ID,
    MIN_FRAME_SIZE,
    Connect,
    Connected,
    Credit,
    Deliver,
    Event,
    FrameType,
)
from ._frames import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME_SIZE,
    PREAMBLE_SIZE,
    SUPPORTED_VERSIONS,
    check_magic,
    decode_body,
    encode_deliver,
    encode_frame,
    malformed,
    preamble,
    problem,
)
from ._state import (
    INITIAL,
    MOVES_STATE,
    RECEIVABLE,
    SENDABLE,
    Phase,
    Role,
    after_receive,
    after_send,
    refusal_problem,
)

MAX_CREDIT: Final = 0xFFFF_FFFF
"""Outstanding credit saturates here: more CREDIT beyond it is ignored by both ends."""

_FRAME_TYPES: Final = frozenset(int(t) for t in FrameType)
# Frames whose receipt changes counters or phases, beyond being returned.
_RECEIVE_HOOKS: Final = MOVES_STATE | {int(FrameType.DELIVER), int(FrameType.CREDIT)}
# Frames whose sending changes counters or phases.
_SEND_HOOKS: Final = _RECEIVE_HOOKS
# Frames sent on the hot path: not re-validated by decoding what was encoded.
_HOT: Final = frozenset(
    {int(FrameType.PUBLISH), int(FrameType.DELIVER), int(FrameType.PING), int(FrameType.PONG)}
)


def _ints(types: frozenset[FrameType]) -> frozenset[int]:
    return frozenset(int(t) for t in types)


_RECEIVABLE: Final = {key: _ints(value) for key, value in RECEIVABLE.items()}
_SENDABLE: Final = {key: _ints(value) for key, value in SENDABLE.items()}


class NativeConnection:
    """One end of one native-protocol connection, without any I/O.

    Feed it the bytes that arrive (:meth:`receive`, or :meth:`receive_data` then
    :meth:`next_event`) and get events back; hand it events (:meth:`send`) and get
    the bytes to write. It enforces which frames each side may send and when, the
    frame size limits and the flow-control credit.

    A frame the peer should not have sent raises :class:`RemoteProtocolError` whose
    ``reason_code`` is the :class:`ErrorCode` to put in the ERROR frame sent before
    closing; from then on every receive call raises again (sending still works, so
    that ERROR can be sent). A frame we must not send raises
    :class:`LocalProtocolError` and changes nothing.

    ``max_frame_size`` is the largest frame we accept, header included; a larger
    one is refused (FRAME_TOO_LARGE) as soon as its header has arrived. Sending a
    Connect or Connected makes the ``max_frame_size`` it announces the limit (so a
    client's limit is always the one its Connect announced).
    ``protocol_version`` is the version a client asks for in its preamble.
    """

    __slots__ = (
        "_buf",
        "_credit",
        "_error",
        "_max_frame_size",
        "_need",
        "_peer_max_frame_size",
        "_receivable",
        "_receive_phase",
        "_role",
        "_send_phase",
        "_sendable",
        "protocol_version",
    )

    def __init__(
        self,
        role: Role,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        protocol_version: int = SUPPORTED_VERSIONS[-1],
    ) -> None:
        if not MIN_FRAME_SIZE <= max_frame_size <= MAX_FRAME_SIZE:
            raise ValueError(
                f"max_frame_size {max_frame_size} is outside {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE}"
            )
        if protocol_version not in SUPPORTED_VERSIONS:
            raise ValueError(
                f"protocol version {protocol_version} is not one of {SUPPORTED_VERSIONS}"
            )
        self._role = role
        self._max_frame_size = max_frame_size
        self._peer_max_frame_size = MAX_FRAME_SIZE
        self._credit: int | None = None
        self.protocol_version: int | None = protocol_version if role is Role.CLIENT else None
        """The protocol version in use: a client's is the one it asks for; a
        server's is read from the client's preamble (None until then)."""
        self._buf = bytearray()
        self._need = 1  # bytes the buffer must hold before anything can be parsed
        self._error: RemoteProtocolError | None = None
        self._receive_phase, self._send_phase = INITIAL[role]
        self._receivable = _RECEIVABLE[role, self._receive_phase]
        self._sendable = _SENDABLE[role, self._send_phase]

    @property
    def role(self) -> Role:
        """Which end of the connection this is."""
        return self._role

    @property
    def trailing_data(self) -> bytes:
        """Bytes received but not yet parsed into an event."""
        return bytes(self._buf)

    @property
    def max_frame_size(self) -> int:
        """The largest frame we accept, header included."""
        return self._max_frame_size

    @property
    def peer_max_frame_size(self) -> int:
        """The largest frame the peer accepts (the protocol's maximum until it says)."""
        return self._peer_max_frame_size

    @property
    def credit(self) -> int | None:
        """Messages the server may still deliver; None while flow control is off."""
        return self._credit

    # -- receiving -----------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes to the buffer; :meth:`next_event` parses them."""
        self._buf += data

    def next_event(self) -> Event | None:
        """The next complete event in the buffer, or None if more data is needed."""
        if self._error is not None:
            raise self._failed_again()
        buf = self._buf
        if len(buf) < self._need or self._receive_phase is Phase.CLOSED:
            return None
        try:
            event, off = self._parse(buf, 0, len(buf))
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        del buf[:off]
        if event is not None:
            self._need = 1
        return event

    def receive(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Feed ``data`` and return every event it completes, in order.

        The fast path: parses all complete frames in one pass and keeps only the
        unparsed tail. If a frame is invalid, :class:`RemoteProtocolError` is raised
        and the events before it in the same call are not returned (the connection
        is closing; none of them has been acknowledged).
        """
        if self._error is not None:
            raise self._failed_again()
        buf = self._buf
        if self._receive_phase is Phase.CLOSED:
            buf += data
            return []
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            src = bytes(buf)  # one copy; bodies are decoded from views of it
            buf.clear()
        elif data.__class__ is bytes:
            src = data
        else:
            src = bytes(data)
        n = len(src)
        out: list[Event] = []
        off = 0
        try:
            while off < n:
                event, off = self._parse(src, off, n)
                if event is None:
                    break
                out.append(event)
                if self._closed_for_receiving():
                    break  # what follows is left as trailing data
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        if off < n:
            buf += memoryview(src)[off:] if off else src
        else:
            self._need = 1
        return out

    def _parse(self, src: bytes | bytearray, off: int, n: int) -> tuple[Event | None, int]:
        """Parse one frame at ``off``: (event, offset after it), or (None, offset of
        what is still incomplete) after setting ``_need`` to the bytes it needs."""
        if self._receive_phase is Phase.AWAIT_PREAMBLE:
            check_magic(src, off, n)
            if n - off < PREAMBLE_SIZE:
                self._need = n - off + 1
                return None, off
            self._read_version(src[off + len(MAGIC)])
            off += PREAMBLE_SIZE
        if n - off < HEADER_SIZE:
            self._need = HEADER_SIZE
            return None, off
        frame_type, flags, length = HEADER.unpack_from(src, off)
        if frame_type not in self._receivable:
            raise self._unexpected(frame_type)
        if flags:
            raise malformed(f"{FrameType(frame_type).name} with flags {flags:#04x}: v1 has none")
        size = HEADER_SIZE + length
        if size > self._max_frame_size:
            raise RemoteProtocolError(
                f"{FrameType(frame_type).name} frame of {size} bytes exceeds the maximum "
                f"of {self._max_frame_size}",
                ErrorCode.FRAME_TOO_LARGE,
            )
        end = off + size
        if end > n:
            self._need = size
            return None, off
        if src.__class__ is bytes:
            with memoryview(src) as view:
                event = decode_body(frame_type, view[off + HEADER_SIZE : end])
        else:
            # A sliced copy: a bytearray with live views of it could not be resized.
            event = decode_body(frame_type, src[off + HEADER_SIZE : end])
        if frame_type in _RECEIVE_HOOKS:
            self._received(event)
        return event, end

    def _closed_for_receiving(self) -> bool:
        return self._receive_phase is Phase.CLOSED

    def _read_version(self, version: int) -> None:
        if version not in SUPPORTED_VERSIONS:
            supported = ", ".join(map(str, SUPPORTED_VERSIONS))
            raise RemoteProtocolError(
                f"protocol version {version} is not supported; this server speaks {supported}",
                ErrorCode.UNSUPPORTED_VERSION,
            )
        self.protocol_version = version
        self._set_receive_phase(Phase.AWAIT_CONNECT)

    def _received(self, event: Event) -> None:
        """Count credit and move the receive phase on after a frame with a hook."""
        cls = event.__class__
        if cls is Deliver:
            assert isinstance(event, Deliver)
            if self._credit is not None:
                count = len(event.messages)
                if count > self._credit:
                    raise RemoteProtocolError(
                        f"DELIVER of {count} messages with credit for {self._credit}",
                        ErrorCode.CREDIT_EXCEEDED,
                    )
                self._credit -= count
            return
        if cls is Credit:
            assert isinstance(event, Credit)
            if self._credit is None:
                raise RemoteProtocolError(
                    "CREDIT while flow control is off (CONNECT had no initial_credit)",
                    ErrorCode.PROTOCOL_ERROR,
                )
            self._credit = min(self._credit + event.credit, MAX_CREDIT)
            return
        text = refusal_problem(self._receive_phase, event)
        if text is not None:
            raise RemoteProtocolError(text, ErrorCode.PROTOCOL_ERROR)
        if cls is Connect:
            assert isinstance(event, Connect)
            self._credit = event.initial_credit
            self._peer_max_frame_size = event.max_frame_size
        elif cls is Connected:
            assert isinstance(event, Connected)
            self._peer_max_frame_size = event.max_frame_size
        self._set_receive_phase(after_receive(self._receive_phase, event))

    def _set_receive_phase(self, phase: Phase) -> None:
        self._receive_phase = phase
        self._receivable = _RECEIVABLE[self._role, phase]

    def _failed_again(self) -> RemoteProtocolError:
        assert self._error is not None
        return RemoteProtocolError(
            f"the connection already failed: {self._error.message}", self._error.reason_code
        )

    def _unexpected(self, frame_type: int) -> RemoteProtocolError:
        """Why a frame type is refused: unknown (malformed), else the wrong state."""
        if frame_type not in _FRAME_TYPES:
            return malformed(f"unknown frame type {frame_type:#04x}")
        name = FrameType(frame_type).name
        phase = self._receive_phase
        if phase is Phase.AWAIT_CONNECT:
            reason = f"the first frame must be CONNECT, not {name}"
        elif phase is Phase.IDLE:
            reason = f"{name} received before CONNECT was sent"
        elif phase is Phase.AWAIT_CONNECTED:
            reason = f"the server's first frame must be CONNECTED or ERROR, not {name}"
        elif frame_type == (
            FrameType.CONNECT if self._role is Role.SERVER else FrameType.CONNECTED
        ):
            reason = f"a second {name}"
        else:
            sender = "client" if self._role is Role.SERVER else "server"
            reason = f"a {sender} must not send {name}"
        return RemoteProtocolError(reason, ErrorCode.PROTOCOL_ERROR)

    # -- sending -------------------------------------------------------------

    def send(self, event: Event) -> bytes:
        """The bytes of ``event``, the preamble included before a client's Connect.

        Raises :class:`LocalProtocolError` if this role may not send it now, if it
        would exceed the peer's frame size limit or the delivery credit, or if a
        control frame's fields are invalid. Messages in PUBLISH and DELIVER are not
        re-validated (the hot path): build them from valid values.
        """
        frame_type = int(event.frame_type)
        if frame_type not in self._sendable:
            raise self._unsendable(event.frame_type)
        hooked = frame_type in _SEND_HOOKS
        if hooked:
            self._check_sendable(event)
        try:
            data = encode_frame(event)
        except (TypeError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(
                f"cannot encode {event.frame_type.name}: {exc}", ErrorCode.MALFORMED_FRAME
            ) from exc
        if frame_type in _HOT:
            text = problem(event)
            if text is not None:
                raise LocalProtocolError(
                    f"{event.frame_type.name}: {text}", ErrorCode.MALFORMED_FRAME
                )
        else:
            # Control frames are rare: decoding what we encoded proves a peer will
            # accept it, with the same checks and messages as on receipt.
            try:
                decode_body(frame_type, memoryview(data)[HEADER_SIZE:])
            except RemoteProtocolError as exc:
                raise LocalProtocolError(exc.message, exc.reason_code) from None
        if len(data) > self._peer_max_frame_size:
            raise LocalProtocolError(
                f"{event.frame_type.name} frame of {len(data)} bytes exceeds the peer's "
                f"maximum of {self._peer_max_frame_size}",
                ErrorCode.FRAME_TOO_LARGE,
            )
        if hooked:
            self._sent(event)
            if frame_type == FrameType.CONNECT:
                assert self.protocol_version is not None
                return preamble(self.protocol_version) + data
        return data

    def send_deliver(
        self,
        subscription_ids: tuple[int, ...],
        encoded_messages: list[bytes],
        first_id: int | None = None,
        redelivered: bool = False,
    ) -> bytes:
        """The bytes of a DELIVER of messages already encoded with ``encode_message``.

        The fan-out path of a server: a message going to many subscribers is encoded
        once. The result is byte for byte what ``send(Deliver(...))`` gives for the
        same messages, with the same checks of state, credit and the peer's frame
        size limit (:class:`LocalProtocolError`); the messages are not re-validated.
        """
        if FrameType.DELIVER not in self._sendable:
            raise self._unsendable(FrameType.DELIVER)
        count = len(encoded_messages)
        if not subscription_ids or not count:
            raise LocalProtocolError(
                "DELIVER: a delivery needs at least one subscription id and one message",
                ErrorCode.MALFORMED_FRAME,
            )
        if first_id is not None and not 0 <= first_id <= MAX_ID - count + 1:
            raise LocalProtocolError(
                f"DELIVER: ids {first_id}..{first_id + count - 1} are outside 0..{MAX_ID}",
                ErrorCode.MALFORMED_FRAME,
            )
        credit = self._credit
        if credit is not None and count > credit:
            raise LocalProtocolError(
                f"DELIVER of {count} messages with credit for {credit}",
                ErrorCode.CREDIT_EXCEEDED,
            )
        data = encode_deliver(subscription_ids, encoded_messages, first_id, redelivered)
        if len(data) > self._peer_max_frame_size:
            raise LocalProtocolError(
                f"DELIVER frame of {len(data)} bytes exceeds the peer's maximum of "
                f"{self._peer_max_frame_size}",
                ErrorCode.FRAME_TOO_LARGE,
            )
        if credit is not None:
            self._credit = credit - count
        return data

    def _check_sendable(self, event: Event) -> None:
        """Raise LocalProtocolError if ``event`` may not be sent in the current state."""
        cls = event.__class__
        if cls is Deliver:
            assert isinstance(event, Deliver)
            if self._credit is not None and len(event.messages) > self._credit:
                raise LocalProtocolError(
                    f"DELIVER of {len(event.messages)} messages with credit for {self._credit}",
                    ErrorCode.CREDIT_EXCEEDED,
                )
        elif cls is Credit:
            if self._credit is None:
                raise LocalProtocolError(
                    "cannot send CREDIT: flow control is off (CONNECT had no initial_credit)",
                    ErrorCode.PROTOCOL_ERROR,
                )
        elif cls is Connected:
            if self._receive_phase is not Phase.CONNECTED:
                raise LocalProtocolError(
                    "cannot send CONNECTED before CONNECT was received", ErrorCode.PROTOCOL_ERROR
                )
        else:
            text = refusal_problem(self._send_phase, event)
            if text is not None:
                raise LocalProtocolError(text, ErrorCode.PROTOCOL_ERROR)

    def _sent(self, event: Event) -> None:
        """Count credit and move the phases on after sending a frame with a hook."""
        cls = event.__class__
        if cls is Deliver:
            assert isinstance(event, Deliver)
            if self._credit is not None:
                self._credit -= len(event.messages)
            return
        if cls is Credit:
            assert isinstance(event, Credit) and self._credit is not None
            self._credit = min(self._credit + event.credit, MAX_CREDIT)
            return
        if cls is Connect:
            assert isinstance(event, Connect)
            self._credit = event.initial_credit
            self._max_frame_size = event.max_frame_size
            self._set_receive_phase(Phase.AWAIT_CONNECTED)
        elif cls is Connected:
            assert isinstance(event, Connected)
            self._max_frame_size = event.max_frame_size
        self._send_phase = after_send(self._send_phase, event)
        self._sendable = _SENDABLE[self._role, self._send_phase]

    def _unsendable(self, frame_type: FrameType) -> LocalProtocolError:
        phase = self._send_phase
        name = frame_type.name
        if phase is Phase.BEFORE_CONNECT:
            reason = f"cannot send {name} before CONNECT"
        elif phase is Phase.BEFORE_CONNECTED:
            reason = f"cannot send {name} before CONNECTED"
        elif phase is Phase.CLOSED:
            reason = f"cannot send {name} after the connection was closed"
        elif frame_type is (
            FrameType.CONNECT if self._role is Role.CLIENT else FrameType.CONNECTED
        ):
            reason = f"cannot send a second {name}"
        else:
            reason = f"a {self._role.value} must not send {name}"
        return LocalProtocolError(reason, ErrorCode.PROTOCOL_ERROR)
