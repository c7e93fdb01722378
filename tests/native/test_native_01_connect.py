"""Native protocol, connecting: CONNECTED, refusals, names, takeover, preamble."""

from __future__ import annotations

import socket

from native_wire import Wire

from warren.codecs.native import (
    DEFAULT_MAX_FRAME_SIZE,
    Connect,
    Connected,
    Disconnect,
    Error,
    ErrorCode,
    Message,
    NativeConnection,
    Ping,
    Pong,
    Role,
)


def test_connected_names_the_client_and_its_inbox(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    w = wire(connect=False)
    connected = w.connect(client_name=f"{uid}-a", keepalive=30)
    assert connected.client_name == f"{uid}-a"
    assert connected.inbox_prefix == f"$inbox/{uid}-a/"
    assert connected.keepalive == 30
    assert connected.max_frame_size == DEFAULT_MAX_FRAME_SIZE
    assert connected.capabilities == ()  # 'guaranteed' is not offered yet
    assert connected.session_id


def test_the_broker_assigns_a_name(wire) -> None:  # type: ignore[no-untyped-def]
    a = wire(connect=False).connect()
    b = wire(connect=False).connect()
    assert a.client_name != b.client_name
    assert a.inbox_prefix == f"$inbox/{a.client_name}/"


def test_only_known_capabilities_are_granted(wire) -> None:  # type: ignore[no-untyped-def]
    connected = wire(connect=False).connect(capabilities=("guaranteed", "x-future"))
    assert connected.capabilities == ("guaranteed",)


def test_pipelined_frames_before_connected_are_handled(broker, uid: str) -> None:  # type: ignore[no-untyped-def]
    w = Wire(broker.host, broker.native_port)
    try:
        codec = w.codec
        w._armed = True
        data = codec.send(Connect(client_name=f"{uid}-p")) + codec.send(Ping())
        w.send_raw(data)
        assert isinstance(w.next(), Connected)
        assert isinstance(w.next(), Pong)
    finally:
        w.close()


def test_unknown_vpn_is_refused(wire) -> None:  # type: ignore[no-untyped-def]
    w = wire(connect=False)
    w.send(Connect(vpn="nope"))
    error = w.closing_frame()
    assert isinstance(error, Error) and error.close
    assert error.code == ErrorCode.UNKNOWN_VPN
    assert "nope" in error.text


def test_client_name_with_a_slash_is_refused(wire) -> None:  # type: ignore[no-untyped-def]
    w = wire(connect=False)
    w.send(Connect(client_name="a/b"))
    error = w.closing_frame()
    assert isinstance(error, Error) and error.code == ErrorCode.INVALID_CLIENT_NAME


def test_a_new_connection_takes_the_name_over(wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    old = wire(client_name=f"{uid}-t")
    new = wire(client_name=f"{uid}-t")
    assert new.connected is not None
    frame = old.closing_frame()
    assert isinstance(frame, Disconnect) and frame.code == ErrorCode.SESSION_TAKEN_OVER
    # The new connection owns the inbox now.
    new.publish(Message(f"$inbox/{uid}-t/1", b"r"))
    [(ids, m)] = new.messages(1)
    assert ids == (0,) and m.payload == b"r"


def test_a_name_held_by_an_mqtt_session_is_refused(wire, peers) -> None:  # type: ignore[no-untyped-def]
    mqtt = peers.paho()
    w = wire(connect=False)
    w.send(Connect(client_name=mqtt.client_id))
    error = w.closing_frame()
    assert isinstance(error, Error) and error.code == ErrorCode.CLIENT_NAME_IN_USE


def test_a_wrong_preamble_is_malformed(broker) -> None:  # type: ignore[no-untyped-def]
    w = Wire(broker.host, broker.native_port)
    try:
        w.send_raw(b"GET / HTTP/1.1\r\n\r\n")
        error = w.closing_frame()
        assert isinstance(error, Error) and error.code == ErrorCode.MALFORMED_FRAME
    finally:
        w.close()


def test_an_unsupported_version_names_the_supported_ones(broker) -> None:  # type: ignore[no-untyped-def]
    w = Wire(broker.host, broker.native_port)
    try:
        w.send_raw(b"WRN\x07" + NativeConnection(Role.CLIENT).send(Connect())[4:])
        error = w.closing_frame()
        assert isinstance(error, Error) and error.code == ErrorCode.UNSUPPORTED_VERSION
        assert "1" in error.text
    finally:
        w.close()


def test_a_frame_before_connect_is_a_protocol_error(broker) -> None:  # type: ignore[no-untyped-def]
    w = Wire(broker.host, broker.native_port)
    try:
        w.send_raw(b"WRN\x01" + bytes.fromhex("0b0000000000"))  # PING first
        error = w.closing_frame()
        assert isinstance(error, Error) and error.code == ErrorCode.PROTOCOL_ERROR
    finally:
        w.close()


def test_disconnect_closes_the_connection(wire) -> None:  # type: ignore[no-untyped-def]
    w = wire()
    w.send(Disconnect())
    w.expect_closed()


def test_keepalive_timeout(wire) -> None:  # type: ignore[no-untyped-def]
    # Keepalive 1 s: the broker gives up after 1.5 s of silence (the one wait
    # here is the behaviour under test, bounded by the helper's deadline).
    w = wire(keepalive=1)
    error = w.closing_frame()
    assert isinstance(error, Error) and error.code == ErrorCode.KEEPALIVE_TIMEOUT


def test_half_open_socket_does_not_leak(broker, uid: str) -> None:  # type: ignore[no-untyped-def]
    # A client that vanishes mid-frame: the broker keeps serving others.
    s = socket.create_connection((broker.host, broker.native_port))
    s.sendall(b"WRN\x01\x01\x00\x00\x00\x00\x10")  # CONNECT announcing 16 body bytes
    s.close()
    w = Wire(broker.host, broker.native_port)
    try:
        assert w.connect(client_name=f"{uid}-h").client_name == f"{uid}-h"
    finally:
        w.close()
