"""Bad input from the peer raises RemoteProtocolError with the right code, and nothing
else ever escapes: arbitrary bytes and mutated valid streams are fuzzed."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from native_support import (
    CONNECT,
    CONNECTED,
    connected_client,
    connected_server,
    events_from,
    sender_for,
)

from warren.codecs.native import (
    Connect,
    Error,
    ErrorCode,
    NativeConnection,
    Role,
)
from warren.errors import RemoteProtocolError

PREAMBLE = b"WRN\x01"
MINIMAL_CONNECT = PREAMBLE + bytes.fromhex("010000000000")


def frame(frame_type: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([frame_type, flags]) + len(body).to_bytes(4, "big") + body


def _raises(conn: NativeConnection, data: bytes, code: ErrorCode) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive(data)
    assert info.value.reason_code == code, info.value.message
    return info.value


def _raises_both_ways(make: Callable[[], NativeConnection], data: bytes, code: ErrorCode) -> None:
    """Same error through receive() and through receive_data() + next_event()."""
    _raises(make(), data, code)
    conn = make()
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError) as info:
        while conn.next_event() is not None:
            pass
    assert info.value.reason_code == code


def _server() -> NativeConnection:
    return NativeConnection(Role.SERVER)


# -- preamble and header ---------------------------------------------------------------


@pytest.mark.parametrize("data", [b"G", b"GET / HTTP/1.1\r\n", b"WX", b"\x10\x0c\x00\x04MQTT"])
def test_bad_magic_fails_at_the_first_wrong_byte(data: bytes) -> None:
    _raises_both_ways(_server, data, ErrorCode.MALFORMED_FRAME)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unsupported_version(version: int) -> None:
    error = _raises(_server(), b"WRN" + bytes([version]), ErrorCode.UNSUPPORTED_VERSION)
    assert "speaks 1" in error.message


def test_refusal_can_be_sent_after_a_bad_preamble() -> None:
    """The adapter answers a version it cannot read with the version-invariant ERROR."""
    server = _server()
    _raises(server, b"WRN\x09", ErrorCode.UNSUPPORTED_VERSION)
    wire = server.send(Error(ErrorCode.UNSUPPORTED_VERSION, "this server speaks 1"))
    assert wire[0] == 0x0D


@pytest.mark.parametrize("frame_type", [0x00, 0x11, 0x42, 0xFF])
def test_unknown_frame_type(frame_type: int) -> None:
    _raises_both_ways(connected_server, frame(frame_type, b""), ErrorCode.MALFORMED_FRAME)


@pytest.mark.parametrize("flags", [0x01, 0x80])
def test_flags_must_be_zero(flags: int) -> None:
    _raises_both_ways(connected_server, frame(0x0B, b"", flags), ErrorCode.MALFORMED_FRAME)


def test_frame_too_large_is_refused_from_the_header_alone() -> None:
    server = NativeConnection(Role.SERVER, max_frame_size=2048)
    server.receive(MINIMAL_CONNECT)
    header = bytes.fromhex("03 00 00 00 07 fb")  # 6 + 2043 = 2049 bytes
    _raises(server, header, ErrorCode.FRAME_TOO_LARGE)
    at_limit = NativeConnection(Role.SERVER, max_frame_size=2048)
    at_limit.receive(MINIMAL_CONNECT)
    assert at_limit.receive(bytes.fromhex("03 00 00 00 07 fa")) == []  # waits for the body


def test_frame_too_large_before_connect() -> None:
    """The CONNECT itself is bounded: a server cannot be made to buffer 4 GiB."""
    _raises(_server(), PREAMBLE + bytes.fromhex("01 00 ff ff ff ff"), ErrorCode.FRAME_TOO_LARGE)


# -- bodies -------------------------------------------------------------------------------


def _pack(body: dict[str, object]) -> bytes:
    return msgspec.msgpack.encode(body)


BAD_BODIES = {
    "not msgpack": (0x08, b"\xc1"),
    "truncated map": (0x08, b"\x81\xa1n"),
    "trailing bytes": (0x08, b"\x81\xa1n\x05\x00"),
    "array, not map": (0x08, b"\x91\x05"),
    "missing required key": (0x08, b"\x81\xa1m\x05"),
    "wrong type": (0x08, b"\x81\xa1n\xa15"),
    "credit 0": (0x08, b"\x81\xa1n\x00"),
    "credit above uint32": (0x08, b"\x81\xa1n\xcf" + (2**32).to_bytes(8, "big")),
    "negative": (0x08, b"\x81\xa1n\xff"),
    "subscription id 0": (
        0x05,
        bytes.fromhex(
            "83aa726571756573745f696401af737562736372697074696f6e5f696400a666696c746572a161"
        ),
    ),
    "empty filter": (
        0x05,
        bytes.fromhex(
            "83aa726571756573745f696401af737562736372697074696f6e5f696401a666696c746572a0"
        ),
    ),
    "BIND access not a known one": (
        0x0F,
        _pack({"request_id": 1, "subscription_id": 1, "queue": "q", "access": "shared"}),
    ),
    "BIND empty queue name": (
        0x0F,
        _pack({"request_id": 1, "subscription_id": 1, "queue": ""}),
    ),
    "BIND empty topic": (
        0x0F,
        _pack({"request_id": 1, "subscription_id": 1, "queue": "q", "topics": [""]}),
    ),
    "UNBIND subscription id 0": (
        0x10,
        _pack({"request_id": 1, "subscription_id": 0}),
    ),
    "NACK rj as int": (
        0x0A,
        _pack({"r": [[1, 1]], "rj": 1}),
    ),
    "empty batch": (0x03, b"\x81\xa1m\x90"),
    "empty topic": (0x03, b"\x81\xa1m\x91\x81\xa1t\xa0"),
    "payload as str": (0x03, b"\x81\xa1m\x91\x82\xa1t\xa1a\xa1p\xa1x"),
    "qos 3": (0x03, b"\x81\xa1m\x91\x82\xa1t\xa1a\xa1q\x03"),
    "priority 256": (0x03, b"\x81\xa1m\x91\x82\xa1t\xa1a\xa2pr\xcd\x01\x00"),
    "retain as int": (0x03, b"\x81\xa1m\x91\x82\xa1t\xa1a\xa1r\x01"),
    "ttl beyond 2^53": (
        0x03,
        b"\x81\xa1m\x91\x82\xa1t\xa1a\xa3ttl\xcf" + (2**53).to_bytes(8, "big"),
    ),
    "user property not a pair": (0x03, b"\x81\xa1m\x91\x82\xa1t\xa1a\xa2up\x91\x91\xa1k"),
    "ids overflow": (
        0x03,
        b"\x82\xa1m\x92\x81\xa1t\xa1a\x81\xa1t\xa1a\xa2id\xcf" + (2**53 - 1).to_bytes(8, "big"),
    ),
    "invalid utf-8": (0x03, b"\x81\xa1m\x91\x81\xa1t\xa2\xff\xfe"),
    "reversed range": (0x09, b"\x81\xa1r\x91\x92\x05\x03"),
    "no ranges": (0x09, b"\x81\xa1r\x90"),
    "range of three": (0x09, b"\x81\xa1r\x91\x93\x01\x02\x03"),
    "deeply nested unknown key": (0x08, b"\x82\xa1n\x05\xa1z" + b"\x91" * 100_000 + b"\x01"),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_malformed_bodies(name: str) -> None:
    frame_type, body = BAD_BODIES[name]
    error = _raises(connected_server(), frame(frame_type, body), ErrorCode.MALFORMED_FRAME)
    assert error.message


def test_malformed_connect() -> None:
    body = bytes.fromhex("81a96b656570616c697665ce00010000")  # keepalive 65536
    _raises_both_ways(_server, PREAMBLE + frame(0x01, body), ErrorCode.MALFORMED_FRAME)
    small = bytes.fromhex("81ae6d61785f6672616d655f73697a65cd03ff")  # max_frame_size 1023
    _raises_both_ways(_server, PREAMBLE + frame(0x01, small), ErrorCode.MALFORMED_FRAME)


def test_deliver_with_no_subscription_ids() -> None:
    body = b"\x82\xa1s\x90\xa1m\x91\x81\xa1t\xa1a"
    _raises(connected_client(), frame(0x04, body), ErrorCode.MALFORMED_FRAME)


# -- state and direction -----------------------------------------------------------------


@pytest.mark.parametrize("frame_type", [0x03, 0x0B, 0x0E, 0x0D, 0x02, 0x04])
def test_first_frame_must_be_connect(frame_type: int) -> None:
    error = _raises(_server(), PREAMBLE + frame(frame_type, b""), ErrorCode.PROTOCOL_ERROR)
    assert "first frame must be CONNECT" in error.message


def test_second_connect() -> None:
    error = _raises(connected_server(), frame(0x01, b""), ErrorCode.PROTOCOL_ERROR)
    assert "second CONNECT" in error.message


@pytest.mark.parametrize("frame_type", [0x02, 0x04, 0x07])
def test_client_must_not_send_server_frames(frame_type: int) -> None:
    error = _raises(connected_server(), frame(frame_type, b""), ErrorCode.PROTOCOL_ERROR)
    assert "client must not send" in error.message


@pytest.mark.parametrize("frame_type", [0x01, 0x03, 0x05, 0x06, 0x08])
def test_server_must_not_send_client_frames(frame_type: int) -> None:
    error = _raises(connected_client(), frame(frame_type, b""), ErrorCode.PROTOCOL_ERROR)
    assert "server must not send" in error.message


def test_client_receives_nothing_before_sending_connect() -> None:
    client = NativeConnection(Role.CLIENT)
    assert client.receive(b"\x0b\x00\x00") == []  # not a whole header yet
    error = _raises(client, b"\x00\x00\x00", ErrorCode.PROTOCOL_ERROR)
    assert "before CONNECT was sent" in error.message


def test_server_first_frame_must_be_connected_or_error() -> None:
    client = NativeConnection(Role.CLIENT)
    client.send(Connect())
    error = _raises(client, frame(0x0B, b""), ErrorCode.PROTOCOL_ERROR)
    assert "CONNECTED or ERROR" in error.message


def test_refusal_must_close() -> None:
    client = NativeConnection(Role.CLIENT)
    client.send(Connect())
    body = bytes.fromhex("82a4636f6465ccc9a5636c6f7365c2")  # code 201, close false
    _raises(client, frame(0x0D, body), ErrorCode.PROTOCOL_ERROR)


def _connected_bytes() -> bytes:
    server = NativeConnection(Role.SERVER)
    server.receive(NativeConnection(Role.CLIENT).send(Connect()))
    return server.send(CONNECTED)


def _client_with_credit(credit: int) -> NativeConnection:
    client = NativeConnection(Role.CLIENT)
    client.send(Connect(initial_credit=credit))
    client.receive(_connected_bytes())
    return client


def _deliver(count: int) -> bytes:
    return frame(
        0x04, b"\x82\xa1s\x91\x01\xa1m" + bytes([0x90 + count]) + b"\x81\xa1t\xa1a" * count
    )


def test_delivery_beyond_credit() -> None:
    client = _client_with_credit(2)
    assert len(client.receive(_deliver(2))) == 1
    assert client.credit == 0
    error = _raises(client, _deliver(1), ErrorCode.CREDIT_EXCEEDED)
    assert "credit for 0" in error.message
    _raises(_client_with_credit(2), _deliver(3), ErrorCode.CREDIT_EXCEEDED)


def test_credit_while_flow_control_is_off() -> None:
    server = connected_server(Connect())
    _raises(server, frame(0x08, b"\x81\xa1n\x05"), ErrorCode.PROTOCOL_ERROR)


def test_a_failed_connection_keeps_failing() -> None:
    server = connected_server()
    _raises(server, frame(0x42, b""), ErrorCode.MALFORMED_FRAME)
    again = _raises(server, frame(0x0B, b""), ErrorCode.MALFORMED_FRAME)
    assert "already failed" in again.message
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_frames_before_a_bad_one_in_the_same_chunk_are_not_returned() -> None:
    server = connected_server()
    _raises(server, frame(0x0B, b"") + frame(0x42, b""), ErrorCode.MALFORMED_FRAME)


# -- fuzzing ------------------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_remote_errors(conn: NativeConnection, data: bytes) -> None:
    try:
        conn.receive(data)
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason_code, int) and exc.message


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes(data: bytes) -> None:
    _only_remote_errors(_server(), data)
    _only_remote_errors(_server(), PREAMBLE + data)
    _only_remote_errors(connected_server(), data)
    _only_remote_errors(connected_client(), data)


@FUZZ
@given(
    frame_type=st.integers(0, 0x10),
    body=st.binary(max_size=120),
    role=st.sampled_from(Role),
)
def test_fuzz_well_framed_random_bodies(frame_type: int, body: bytes, role: Role) -> None:
    conn = connected_server() if role is Role.SERVER else connected_client()
    _only_remote_errors(conn, frame(frame_type, body))


@st.composite
def _mutated_streams(draw: st.DrawFn) -> tuple[Role, bytes]:
    sender = draw(st.sampled_from(Role))
    events = draw(st.lists(events_from(sender), min_size=1, max_size=4))
    out = sender_for(sender)
    prefix = NativeConnection(Role.CLIENT).send(CONNECT) if sender is Role.CLIENT else b""
    wire = bytearray(prefix)
    for event in events:
        try:
            wire += out.send(event)
        except Exception:  # a closing frame ends what may be sent
            break
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        pos = draw(st.integers(0, max(0, len(wire) - 1)))
        if kind == "flip" and wire:
            wire[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and wire:
            wire[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and wire:
            del wire[pos : pos + draw(st.integers(1, 4))]
        elif kind == "truncate":
            del wire[pos:]
    return sender, bytes(wire)


@FUZZ
@given(stream=_mutated_streams(), split=st.integers(1, 64))
def test_fuzz_mutated_valid_streams(stream: tuple[Role, bytes], split: int) -> None:
    sender, wire = stream

    def receiver() -> NativeConnection:
        if sender is Role.CLIENT:
            return _server()  # the stream starts with the preamble and CONNECT
        return connected_client()

    _only_remote_errors(receiver(), wire)
    conn = receiver()
    try:
        for i in range(0, len(wire), split):
            conn.receive_data(wire[i : i + split])
            while conn.next_event() is not None:
                pass
    except RemoteProtocolError:
        pass


_KEYS = [
    "vpn", "username", "password", "client_name", "capabilities", "keepalive",
    "initial_credit", "max_frame_size", "session_id", "inbox_prefix", "m", "id", "s",
    "request_id", "subscription_id", "filter", "code", "text", "n", "r", "c", "x", "close",
    "topic", "t", "p", "q", "ct", "cd", "rt", "up", "u8", "ttl", "pr", "mid", "sid",
]  # fmt: skip
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.sampled_from([0, 1, 2, 3, 255, 256, 1023, 1024, 2**32 - 1, 2**32, 2**53 - 1, 2**53])
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.binary(max_size=6)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    frame_type=st.integers(1, 0x0E),
    body=st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=3), _values, max_size=6),
    role=st.sampled_from(Role),
)
def test_fuzz_structured_bodies(frame_type: int, body: dict[str, object], role: Role) -> None:
    """Maps with the protocol's own keys and values of every type and edge value."""
    conn = connected_server() if role is Role.SERVER else connected_client()
    _only_remote_errors(conn, frame(frame_type, msgspec.msgpack.encode(body)))
    first = _server()
    _only_remote_errors(first, PREAMBLE + frame(frame_type, msgspec.msgpack.encode(body)))
