"""Malformed input raises AMQPRemoteError with the reply code for connection.close.

Each case is fed whole and a byte at a time: the error must be the same, and come
no later than the byte that makes the input wrong. Frame-level faults are frame
errors (501) and faults in the order of content frames unexpected frames (505), as
the spec's sections 4.2.3 to 4.2.7 say; where RabbitMQ picks the code, the case says.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from amqp_codec_support import HEADER, new_client, new_server, tuned_pair

from warren.codecs.amqp import (
    PROTOCOL_HEADER,
    AMQPConnection,
    AMQPRemoteError,
    BasicDeliver,
    BasicPublish,
    ConnectionClose,
    ProtocolHeaderMismatch,
    ReplyCode,
    Role,
)
from warren.errors import RemoteProtocolError

R = ReplyCode


def frame(ftype: int, channel: int, payload: bytes, end: int = 0xCE) -> bytes:
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes((end,))


def method(channel: int, class_id: int, method_id: int, args: bytes = b"") -> bytes:
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


def header(channel: int, body_size: int, props: bytes = b"\x00\x00", class_id: int = 60) -> bytes:
    return frame(2, channel, struct.pack(">HHQ", class_id, 0, body_size) + props)


def body(channel: int, data: bytes) -> bytes:
    return frame(3, channel, data)


def shortstr(text: bytes) -> bytes:
    return bytes((len(text),)) + text


PUBLISH = method(1, 60, 40, b"\x00\x00" + shortstr(b"") + shortstr(b"q") + b"\x00")
ACK = method(1, 60, 80, struct.pack(">QB", 1, 0))


def expect_error(
    make: Callable[[], AMQPConnection],
    data: bytes,
    code: int,
    *,
    class_method: tuple[int, int] | None = None,
    match: str | None = None,
) -> AMQPRemoteError:
    """``data`` raises ``code`` fed whole, and fed bytewise no later than its end."""
    conn = make()
    with pytest.raises(AMQPRemoteError, match=match) as whole:
        conn.receive(data)
    assert whole.value.reason_code == code, whole.value
    if class_method is not None:
        assert (whole.value.class_id, whole.value.method_id) == class_method
    conn = make()
    with pytest.raises(AMQPRemoteError) as bytewise:
        for i in range(len(data)):
            conn.receive(data[i : i + 1])
    assert bytewise.value.reason_code == code
    conn = make()
    conn.receive_data(data)
    with pytest.raises(AMQPRemoteError) as stepwise:
        while conn.next_event() is not None:
            pass
    assert stepwise.value.reason_code == code
    return whole.value


# -- frame layer (4.2.3) ------------------------------------------------------------------

FRAME_CASES = [
    pytest.param(PUBLISH[:-1] + b"\x00", R.FRAME_ERROR, id="bad-frame-end"),
    pytest.param(frame(4, 1, b""), R.FRAME_ERROR, id="frame-type-4"),
    pytest.param(frame(0, 0, b""), R.FRAME_ERROR, id="frame-type-0"),
    pytest.param(frame(0xCE, 0, b""), R.FRAME_ERROR, id="frame-type-206"),
    pytest.param(frame(8, 1, b""), R.FRAME_ERROR, id="heartbeat-on-channel-1"),  # 4.2.7
    pytest.param(frame(8, 0, b"x"), R.FRAME_ERROR, id="heartbeat-with-payload"),
    pytest.param(frame(1, 1, b"\x00\x3c\x00"), R.FRAME_ERROR, id="method-frame-too-short"),
    pytest.param(frame(2, 1, b"\x00" * 13), R.UNEXPECTED_FRAME, id="header-without-method"),
]


@pytest.mark.parametrize(("data", "code"), FRAME_CASES)
def test_frame_errors(data: bytes, code: int) -> None:
    expect_error(new_server, data, code)


def test_frame_end_is_checked_before_the_payload() -> None:
    """4.2.3: a bad frame-end is reported, not what the payload would have caused."""
    junk = frame(1, 1, b"\xff\xff\xff\xff", end=0x00)
    expect_error(new_server, junk, R.FRAME_ERROR, match="frame-end")


def test_frame_max_is_enforced_from_the_header_before_buffering() -> None:
    """Until tune-ok, frames of more than 4096 bytes are refused (connection.tune,
    rule "minimum"), as soon as the 7-byte frame header is in."""
    server = new_server()
    with pytest.raises(AMQPRemoteError) as exc:
        server.receive(struct.pack(">BHI", 3, 1, 4089))
    assert exc.value.reason_code == R.FRAME_ERROR
    server = new_server()
    assert server.receive(struct.pack(">BHI", 1, 1, 4088)) == []  # 4096 in all: fine


def test_negotiated_frame_max_is_enforced() -> None:
    _, server = tuned_pair(8192)
    assert server.frame_max == 8192
    assert server.receive(struct.pack(">BHI", 3, 1, 8184)) == []
    _, server = tuned_pair(8192)
    with pytest.raises(AMQPRemoteError, match="8193 bytes exceeds frame-max 8192") as exc:
        server.receive(struct.pack(">BHI", 3, 1, 8185))
    assert exc.value.reason_code == R.FRAME_ERROR


# -- methods ------------------------------------------------------------------------------

METHOD_CASES = [
    pytest.param(method(1, 60, 41), R.COMMAND_INVALID, (60, 41), id="unknown-method"),
    pytest.param(method(1, 99, 10), R.COMMAND_INVALID, (99, 10), id="unknown-class"),
    pytest.param(  # the server sends basic.deliver; a client must not
        method(1, 60, 60, shortstr(b"t") + struct.pack(">QB", 1, 0) + b"\x00\x00"),
        R.COMMAND_INVALID,
        (60, 60),
        id="deliver-from-client",
    ),
    pytest.param(  # connection methods live on channel 0
        method(1, 10, 51), R.COMMAND_INVALID, (10, 51), id="connection-method-on-channel-1"
    ),
    pytest.param(  # RabbitMQ: CHANNEL_ERROR "unexpected method in connection state"
        method(0, 60, 80, struct.pack(">QB", 1, 0)),
        R.CHANNEL_ERROR,
        (60, 80),
        id="basic-method-on-channel-0",
    ),
    pytest.param(method(1, 60, 80, b"\x00" * 8), R.FRAME_ERROR, (60, 80), id="truncated-args"),
    pytest.param(method(1, 60, 80, b"\x00" * 10), R.FRAME_ERROR, (60, 80), id="bytes-after-args"),
    pytest.param(  # a shortstr longer than the frame
        method(1, 20, 10, b"\x05ab"), R.FRAME_ERROR, (20, 10), id="shortstr-overruns"
    ),
    pytest.param(  # RabbitMQ: frame_error "Malformed UTF-8 in shortstr"
        method(1, 50, 10, b"\x00\x00" + shortstr(b"\xff\xfe") + b"\x00" + b"\x00" * 4),
        R.FRAME_ERROR,
        (50, 10),
        id="shortstr-not-utf8",
    ),
    pytest.param(  # table of 100 bytes in a frame of far fewer
        method(1, 50, 10, b"\x00\x00" + shortstr(b"q") + b"\x00" + struct.pack(">I", 100)),
        R.FRAME_ERROR,
        (50, 10),
        id="table-overruns",
    ),
    pytest.param(
        method(1, 50, 10, b"\x00\x00\x01q\x00" + struct.pack(">I", 3) + b"\x01aZ"),
        R.FRAME_ERROR,
        (50, 10),
        id="unknown-field-type",
    ),
    pytest.param(
        method(1, 50, 10, b"\x00\x00\x01q\x00" + struct.pack(">I", 4) + b"\x01aS\x00"),
        R.FRAME_ERROR,
        (50, 10),
        id="field-value-overruns-table",
    ),
    pytest.param(
        method(1, 50, 10, b"\x00\x00\x01q\x00" + struct.pack(">I", 2) + b"\x05a"),
        R.FRAME_ERROR,
        (50, 10),
        id="field-name-overruns-table",
    ),
]


@pytest.mark.parametrize(("data", "code", "ids"), METHOD_CASES)
def test_method_errors(data: bytes, code: int, ids: tuple[int, int]) -> None:
    expect_error(new_server, data, code, class_method=ids)


def nested_arrays(depth: int) -> bytes:
    value = b"A\x00\x00\x00\x00"
    for _ in range(depth - 1):
        value = b"A" + struct.pack(">I", len(value)) + value
    return value


def test_tables_nested_too_deep_are_refused() -> None:
    """Nesting is bounded so that decoding never hits the recursion limit."""
    for depth, accepted in ((31, True), (40, False), (3000, False)):
        table = b"\x01a" + nested_arrays(depth)
        args = b"\x00\x00\x01q\x00" + struct.pack(">I", len(table)) + table
        data = method(1, 50, 10, args)
        if accepted:
            assert len(tuned_pair()[1].receive(data)) == 1
        else:
            expect_error(lambda: tuned_pair()[1], data, R.FRAME_ERROR, match="nest deeper")


# -- content (4.2.6) ----------------------------------------------------------------------

CONTENT_CASES = [
    pytest.param(body(1, b"x"), R.UNEXPECTED_FRAME, id="body-without-method"),
    pytest.param(PUBLISH + body(1, b"x"), R.UNEXPECTED_FRAME, id="body-before-header"),
    pytest.param(PUBLISH + ACK, R.UNEXPECTED_FRAME, id="method-instead-of-header"),
    pytest.param(PUBLISH + header(1, 2) + ACK, R.UNEXPECTED_FRAME, id="method-instead-of-body"),
    pytest.param(PUBLISH + header(1, 2) + header(1, 2), R.UNEXPECTED_FRAME, id="second-header"),
    pytest.param(
        PUBLISH + header(1, 0, class_id=50), R.UNEXPECTED_FRAME, id="header-class-mismatch"
    ),
    pytest.param(
        PUBLISH + frame(2, 1, struct.pack(">HHQ", 60, 1, 0) + b"\x00\x00"),
        R.UNEXPECTED_FRAME,
        id="header-weight-not-zero",
    ),
    pytest.param(
        PUBLISH + header(1, 2) + body(1, b"abc"), R.FRAME_ERROR, id="body-larger-than-declared"
    ),
    pytest.param(
        PUBLISH + header(1, 4) + body(1, b"abc") + body(1, b"de"),
        R.FRAME_ERROR,
        id="bodies-larger-than-declared",
    ),
    pytest.param(PUBLISH + frame(2, 1, b"\x00" * 13), R.FRAME_ERROR, id="header-too-short"),
    pytest.param(PUBLISH + header(0, 0), R.UNEXPECTED_FRAME, id="header-on-channel-0"),
    pytest.param(PUBLISH + header(2, 0), R.UNEXPECTED_FRAME, id="header-on-other-channel"),
    pytest.param(PUBLISH + header(1, 0, b"\x80\x00"), R.FRAME_ERROR, id="property-list-truncated"),
    pytest.param(
        PUBLISH + header(1, 0, b"\x00\x00\x00"), R.FRAME_ERROR, id="bytes-after-properties"
    ),
    pytest.param(  # bit 1 would be a fifteenth property: an illegal value
        PUBLISH + header(1, 0, b"\x00\x02"), R.SYNTAX_ERROR, id="property-flag-bit-1"
    ),
    pytest.param(  # a continuation word may only say "no more"
        PUBLISH + header(1, 0, b"\x00\x01\x80\x00"), R.SYNTAX_ERROR, id="continuation-flags"
    ),
    pytest.param(
        PUBLISH + header(1, 0, b"\x20\x00" + struct.pack(">I", 3) + b"\x01aZ"),
        R.FRAME_ERROR,
        id="headers-table-bad-type",
    ),
]


@pytest.mark.parametrize(("data", "code"), CONTENT_CASES)
def test_content_errors(data: bytes, code: int) -> None:
    expect_error(new_server, data, code)


def test_content_errors_name_the_content_method() -> None:
    error = expect_error(new_server, PUBLISH + header(1, 2) + body(1, b"abc"), R.FRAME_ERROR)
    assert (error.class_id, error.method_id) == (60, 40)


def test_empty_continuation_flags_are_accepted() -> None:
    data = PUBLISH + header(1, 0, b"\x80\x01\x00\x00" + shortstr(b"text/plain"))
    (event,) = new_server().receive(data)
    assert isinstance(event, BasicPublish)
    assert event.properties.content_type == "text/plain"


def test_body_size_above_the_maximum_is_refused_before_buffering() -> None:
    server = new_server(max_body_size=1000)
    with pytest.raises(AMQPRemoteError, match="exceeds the maximum of 1000") as exc:
        server.receive(PUBLISH + header(1, 1001))
    assert exc.value.reason_code == R.FRAME_ERROR
    server = new_server(max_body_size=1000)
    assert server.receive(PUBLISH + header(1, 1000) + body(1, b"x" * 1000)) != []


def test_content_errors_from_the_server_side_too() -> None:
    deliver = method(1, 60, 60, shortstr(b"t") + struct.pack(">QB", 1, 0) + b"\x00\x00")
    expect_error(new_client, deliver + ACK, R.UNEXPECTED_FRAME)
    expect_error(new_client, deliver + header(1, 1) + body(1, b"xx"), R.FRAME_ERROR)


# -- the protocol header (4.2.2) ------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"AMQP\x00\x00\x09\x02",  # another revision
        b"AMQP\x01\x01\x00\x09",  # AMQP 0-9 (0-8 style header)
        b"AMQP\x00\x01\x00\x00",  # AMQP 1.0
        b"AMQP\x03\x01\x00\x00",  # AMQP 1.0, SASL
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x01\x00\x00\x00\x00\x00\x04",  # a frame before the header
        b"\x00",
    ],
)
def test_a_wrong_protocol_header_gets_ours_back(data: bytes) -> None:
    wrong_at = next(i for i, (a, b) in enumerate(zip(data, HEADER, strict=False)) if a != b)
    server = AMQPConnection(Role.SERVER)
    assert server.receive(data[:wrong_at]) == []
    with pytest.raises(ProtocolHeaderMismatch) as exc:
        server.receive(data[wrong_at : wrong_at + 1])  # refused at the first wrong byte
    assert exc.value.response == PROTOCOL_HEADER
    assert exc.value.received == data[: wrong_at + 1]
    assert isinstance(exc.value, RemoteProtocolError)
    server = AMQPConnection(Role.SERVER)
    server.receive_data(data)
    with pytest.raises(ProtocolHeaderMismatch):
        server.next_event()


def test_a_client_refused_by_the_server() -> None:
    """A server that does not speak 0-9-1 answers with its own header (4.2.2)."""
    client = new_client()
    assert client.receive(b"AMQP\x00\x01") == []
    with pytest.raises(ProtocolHeaderMismatch) as exc:
        client.receive(b"\x00\x00")
    assert exc.value.response == b""
    assert exc.value.received == b"AMQP\x00\x01\x00\x00"


# -- after an error -----------------------------------------------------------------------


def test_every_receive_fails_again_and_sending_still_works() -> None:
    server = new_server()
    with pytest.raises(AMQPRemoteError):
        server.receive(frame(4, 1, b""))
    for call in (lambda: server.receive(ACK), server.next_event):
        with pytest.raises(AMQPRemoteError, match="already failed") as again:
            call()
        assert again.value.reason_code == R.FRAME_ERROR
    assert server.send(ConnectionClose(501, "bye")).startswith(b"\x01\x00\x00")


def test_close_method_reports_the_code_and_the_failing_method() -> None:
    error = expect_error(new_server, method(1, 60, 80, b"\x00" * 8), R.FRAME_ERROR)
    close = error.close_method()
    assert close == ConnectionClose(501, close.reply_text, 60, 80)
    assert close.reply_text.startswith("FRAME_ERROR - cannot decode basic.ack")
    long = AMQPRemoteError("é" * 300, R.SYNTAX_ERROR)
    text = long.close_method().reply_text
    assert len(text.encode()) <= 255
    assert text.endswith("...")
    new_server().send(long.close_method())  # fits a shortstr


def test_malformed_content_on_the_fast_path_matches_the_slow_path() -> None:
    """A content whose frames all arrive at once is decoded without being held per
    channel; any fault there must still raise the frame-by-frame error."""
    bad = PUBLISH + header(1, 3, b"\x80\x00\x05ab") + body(1, b"abc")
    expect_error(new_server, bad, R.FRAME_ERROR, class_method=(60, 40))
    deliver = BasicDeliver("t", 1, channel=1, body=b"abc")
    client, server = tuned_pair()
    assert client.receive(server.send(deliver)) == [deliver]
