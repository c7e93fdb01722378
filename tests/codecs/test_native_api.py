"""The public surface of warren.codecs.native, and misuse raising LocalProtocolError."""

from __future__ import annotations

import ast
import pathlib
import re

import msgspec
import pytest
from native_support import CONNECT, CONNECTED, connected_pair

import warren.codecs.native as native
from warren.codecs.native import (
    MAX_CREDIT,
    Ack,
    Bind,
    Connect,
    Connected,
    Credit,
    Deliver,
    Disconnect,
    Error,
    ErrorCode,
    Event,
    FrameType,
    Message,
    Nack,
    NativeConnection,
    Ping,
    Pong,
    Publish,
    Result,
    Role,
    Subscribe,
    Unbind,
    Unsubscribe,
    make_reply,
)
from warren.errors import LocalProtocolError

# (class, [(field, default)]) in contract order; ... = required.
FIELDS: dict[type[msgspec.Struct], list[tuple[str, object]]] = {
    Message: [("topic", ...), ("payload", b""), ("qos", 0), ("retain", False),
              ("content_type", None), ("correlation_data", None), ("response_topic", None),
              ("user_properties", ()), ("payload_format_utf8", False), ("ttl_ms", None),
              ("priority", None), ("message_id", None), ("sender_id", None)],
    Connect: [("vpn", None), ("username", None), ("password", None), ("client_name", None),
              ("capabilities", ()), ("keepalive", 60), ("initial_credit", None),
              ("max_frame_size", 16 * 1024 * 1024)],
    Connected: [("session_id", ...), ("client_name", ...), ("inbox_prefix", ...),
                ("max_frame_size", ...), ("keepalive", ...), ("capabilities", ())],
    Publish: [("messages", ...), ("first_id", None)],
    Deliver: [("subscription_ids", ...), ("messages", ...), ("first_id", None),
              ("redelivered", False)],
    Subscribe: [("request_id", ...), ("subscription_id", ...), ("filter", ...)],
    Unsubscribe: [("request_id", ...), ("subscription_id", ...), ("filter", None)],
    Result: [("request_id", ...), ("code", 0), ("text", "")],
    Credit: [("credit", ...)],
    Ack: [("ranges", ...)],
    Nack: [("ranges", ...), ("code", 0), ("text", ""), ("reject", False)],
    Bind: [("request_id", ...), ("subscription_id", ...), ("queue", ...),
           ("access", "exclusive"), ("durable", True), ("create", False), ("topics", ()),
           ("browse", False), ("max_redelivery", None)],
    Unbind: [("request_id", ...), ("subscription_id", ...)],
    Ping: [],
    Pong: [],
    Error: [("code", ...), ("text", ""), ("close", True), ("topic", None)],
    Disconnect: [("code", 0), ("text", "")],
}  # fmt: skip

# The message fields that mirror warren.core.Message (all but its adapter cache and
# its local-clock expiry, which travels as ttl_ms).
CORE_FIELDS = {
    "topic", "payload", "qos", "retain", "content_type", "correlation_data",
    "response_topic", "user_properties", "payload_format_utf8", "priority", "message_id",
    "sender_id",
}  # fmt: skip


def test_exports() -> None:
    for name in native.__all__:
        assert hasattr(native, name), name
    events = {cls.__name__ for cls in FIELDS} - {"Message"}
    assert events <= set(native.__all__)
    assert {"NativeConnection", "Role", "ErrorCode", "FrameType", "Message"} <= set(native.__all__)


@pytest.mark.parametrize("cls", list(FIELDS), ids=lambda c: c.__name__)
def test_fields_order_defaults_and_frozen(cls: type[msgspec.Struct]) -> None:
    info = msgspec.structs.fields(cls)
    assert [f.name for f in info] == [name for name, _ in FIELDS[cls]]
    for field, (_, default) in zip(info, FIELDS[cls], strict=True):
        if default is ...:
            assert field.required
        else:
            assert field.default == default
    assert cls.__struct_config__.frozen
    assert "__dict__" not in dir(cls)  # slotted


def test_message_mirrors_the_core_message() -> None:
    from warren.core.message import Message as CoreMessage

    core = {name for name in CoreMessage.__dataclass_fields__} - {"wire", "stored", "expires_at"}
    assert core == CORE_FIELDS
    assert {f.name for f in msgspec.structs.fields(Message)} == CORE_FIELDS | {"ttl_ms"}


def test_frame_types() -> None:
    assert [(t.name, t.value) for t in FrameType] == [
        ("CONNECT", 1), ("CONNECTED", 2), ("PUBLISH", 3), ("DELIVER", 4), ("SUBSCRIBE", 5),
        ("UNSUBSCRIBE", 6), ("RESULT", 7), ("CREDIT", 8), ("ACK", 9), ("NACK", 10),
        ("PING", 11), ("PONG", 12), ("ERROR", 13), ("DISCONNECT", 14), ("BIND", 15),
        ("UNBIND", 16),
    ]  # fmt: skip
    for cls in FIELDS:
        if cls is not Message:
            assert issubclass(cls, Event)
            assert cls.frame_type.name == cls.__name__.upper()


def test_error_codes_match_the_document() -> None:
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    table = doc.split("## Error codes", 1)[1].split("##", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ")]
    documented = {name.strip(): int(code) for code, name in rows[1:] if code.strip().isdigit()}
    assert documented == {code.name: code.value for code in ErrorCode}


def test_frame_types_match_the_document() -> None:
    doc = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    table = doc.split("## Frames", 1)[1].split("###", 1)[0]
    documented = {
        name: int(code, 16) for code, name in re.findall(r"^\| `0x(\w\w)` \| (\w+)", table, re.M)
    }
    assert documented == {t.name: t.value for t in FrameType}


def test_a_refusal_closes_the_client() -> None:
    client = NativeConnection(Role.CLIENT)
    client.send(Connect(username="u", password="wrong"))
    refusal = Error(ErrorCode.BAD_CREDENTIALS, "bad credentials")
    server = NativeConnection(Role.SERVER)
    server.receive(NativeConnection(Role.CLIENT).send(Connect()))
    wire = server.send(refusal) + bytes.fromhex("0b0000000000")
    assert client.receive(wire) == [refusal]
    assert client.trailing_data == bytes.fromhex("0b0000000000")  # never parsed


def test_connection_surface() -> None:
    conn = NativeConnection(Role.SERVER, max_frame_size=4096)
    assert conn.role is Role.SERVER
    assert conn.protocol_version is None
    assert conn.max_frame_size == 4096
    assert conn.credit is None
    assert conn.trailing_data == b""
    assert conn.next_event() is None
    assert conn.receive(b"") == []
    assert NativeConnection(Role.CLIENT).protocol_version == 1


@pytest.mark.parametrize("size", [0, 1023, 2**32 + 6])
def test_bad_max_frame_size(size: int) -> None:
    with pytest.raises(ValueError):
        NativeConnection(Role.SERVER, max_frame_size=size)


def test_unsupported_protocol_version_for_a_client() -> None:
    with pytest.raises(ValueError):
        NativeConnection(Role.CLIENT, protocol_version=2)


def test_codec_imports_no_io_and_no_core() -> None:
    package = pathlib.Path(native.__file__).parent
    forbidden = {"asyncio", "socket", "ssl", "selectors", "warren.core", "warren.codecs.mqtt"}
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                assert not any(name == bad or name.startswith(bad + ".") for bad in forbidden), (
                    f"{path.name} imports {name}"
                )


def test_make_reply() -> None:
    request = Message("svc/time", b"?", correlation_data=b"c1", response_topic="#inbox/a/1")
    reply = make_reply(request, b"12:00", content_type="text/plain")
    assert reply == Message(
        "#inbox/a/1", b"12:00", content_type="text/plain", correlation_data=b"c1"
    )
    with pytest.raises(ValueError, match="no reply-to"):
        make_reply(Message("a", b""), b"x")


# -- misuse: LocalProtocolError, and nothing changes -------------------------------------


def _local(conn: NativeConnection, event: Event, code: ErrorCode, text: str) -> None:
    before = (conn.credit, conn.max_frame_size, conn.peer_max_frame_size)
    with pytest.raises(LocalProtocolError) as info:
        conn.send(event)
    assert info.value.reason_code == code
    assert text in info.value.message
    assert (conn.credit, conn.max_frame_size, conn.peer_max_frame_size) == before


PUBLISH = Publish((Message("a", b"x"),))
DELIVER = Deliver((1,), (Message("a", b"x"),))


def test_client_sends_connect_first() -> None:
    client = NativeConnection(Role.CLIENT)
    _local(client, PUBLISH, ErrorCode.PROTOCOL_ERROR, "before CONNECT")
    _local(client, Ping(), ErrorCode.PROTOCOL_ERROR, "before CONNECT")
    client.send(Connect())
    _local(client, Connect(), ErrorCode.PROTOCOL_ERROR, "second CONNECT")


@pytest.mark.parametrize("event", [DELIVER, Result(1), CONNECTED], ids=repr)
def test_client_cannot_send_server_frames(event: Event) -> None:
    client, _ = connected_pair()
    _local(client, event, ErrorCode.PROTOCOL_ERROR, "client must not send")


@pytest.mark.parametrize(
    "event", [PUBLISH, Subscribe(1, 1, "a"), Unsubscribe(1, 1), Credit(1), CONNECT], ids=repr
)
def test_server_cannot_send_client_frames(event: Event) -> None:
    _, server = connected_pair()
    _local(server, event, ErrorCode.PROTOCOL_ERROR, "server must not send")


def test_server_sends_connected_or_a_refusal_first() -> None:
    server = NativeConnection(Role.SERVER)
    _local(server, CONNECTED, ErrorCode.PROTOCOL_ERROR, "before CONNECT was received")
    server.receive(NativeConnection(Role.CLIENT).send(CONNECT))
    _local(server, DELIVER, ErrorCode.PROTOCOL_ERROR, "before CONNECTED")
    _local(server, Ping(), ErrorCode.PROTOCOL_ERROR, "before CONNECTED")
    _local(server, Error(201, close=False), ErrorCode.PROTOCOL_ERROR, "must close")
    server.send(Error(ErrorCode.BAD_CREDENTIALS, "bad credentials"))
    _local(server, CONNECTED, ErrorCode.PROTOCOL_ERROR, "after the connection was closed")


def test_nothing_after_disconnect_or_a_closing_error() -> None:
    client, server = connected_pair()
    client.send(Disconnect())
    _local(client, Ping(), ErrorCode.PROTOCOL_ERROR, "after the connection was closed")
    server.send(Error(ErrorCode.INTERNAL_ERROR, "oops"))
    _local(server, Ping(), ErrorCode.PROTOCOL_ERROR, "after the connection was closed")
    client, server = connected_pair()
    server.send(Error(ErrorCode.NOT_AUTHORIZED, "denied", close=False))
    assert server.send(Ping())


def test_delivering_beyond_credit() -> None:
    client, server = connected_pair(Connect(initial_credit=2))
    _local(server, Deliver((1,), (Message("a"),) * 3), ErrorCode.CREDIT_EXCEEDED, "credit for 2")
    server.send(Deliver((1,), (Message("a"),) * 2))
    assert server.credit == 0
    _local(server, DELIVER, ErrorCode.CREDIT_EXCEEDED, "credit for 0")
    client.send(Credit(5))
    assert client.credit == 7  # the client counts what it granted, not what it received
    server.receive(client.send(Credit(1)))
    assert server.credit == 1


def test_credit_saturates_the_same_way_on_both_sides() -> None:
    client, server = connected_pair(Connect(initial_credit=MAX_CREDIT - 1))
    server.receive(client.send(Credit(10)))
    assert client.credit == server.credit == MAX_CREDIT


def test_credit_needs_flow_control() -> None:
    client, _ = connected_pair(Connect())
    _local(client, Credit(1), ErrorCode.PROTOCOL_ERROR, "flow control is off")


def test_frame_larger_than_the_peer_accepts() -> None:
    connected = Connected("s", "c", "#inbox/c/", 2048, 60)
    client, server = connected_pair(Connect(max_frame_size=1024), connected)
    assert client.peer_max_frame_size == 2048
    assert server.peer_max_frame_size == 1024
    assert client.max_frame_size == 1024 and server.max_frame_size == 2048
    _local(client, Publish((Message("a", bytes(2048)),)), ErrorCode.FRAME_TOO_LARGE, "2048")
    _local(server, Deliver((1,), (Message("a", bytes(1024)),)), ErrorCode.FRAME_TOO_LARGE, "1024")
    client.send(Publish((Message("a", bytes(1500)),)))


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (Subscribe(-1, 1, "a"), "request_id"),
        (Subscribe(1, 0, "a"), "subscription_id"),
        (Subscribe(1, 1, ""), "filter"),
        (Credit(0), "$.n"),
        (Ack(((3, 1),)), "ends before it starts"),
        (Ack(()), "$.r"),
        (Nack(((1, 2),), code=70000), "$.c"),
        (Error(-1), "code"),
        (Publish((Message("a"),), first_id=2**53), "beyond the largest id"),
        (Publish((Message("a"), Message("b")), first_id=2**53 - 1), "beyond the largest id"),
        (Publish(()), "at least one message"),
        (Deliver((), (Message("a"),)), "at least one subscription id"),
        (Publish((Message("a", payload=object()),)), "cannot encode"),  # type: ignore[arg-type]
    ],
    ids=repr,
)
def test_invalid_frames_are_not_sent(event: Event, text: str) -> None:
    client, server = connected_pair()
    with pytest.raises(LocalProtocolError) as info:
        (server if isinstance(event, Deliver) else client).send(event)
    assert info.value.reason_code == ErrorCode.MALFORMED_FRAME
    assert text in info.value.message


def test_connected_limits_the_server_to_what_it_announced() -> None:
    client = NativeConnection(Role.CLIENT)
    server = NativeConnection(Role.SERVER)
    server.receive(client.send(Connect()))
    server.send(Connected("s", "c", "#inbox/c/", 1024, 0))
    assert server.max_frame_size == 1024
