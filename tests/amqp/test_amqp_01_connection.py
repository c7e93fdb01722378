"""Connection and channel: handshake, tune, vhosts, close handshakes, hard errors."""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import pika
import pika.exceptions
import pytest
from amqp_support import WAIT

from warren.codecs.amqp import (
    AMQPConnection,
    ChannelOpen,
    ConnectionClose,
    ConnectionCloseOk,
    ConnectionOpen,
    ConnectionOpenOk,
    ConnectionStart,
    ConnectionStartOk,
    ConnectionTune,
    ConnectionTuneOk,
    ProtocolHeader,
    Role,
)


class RawClient:
    """A hand-driven AMQP client on Warren's own codec (client role)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=WAIT)
        self.codec = AMQPConnection(Role.CLIENT)
        self.events: list[Any] = []

    def send(self, event: Any) -> None:
        self.sock.sendall(self.codec.send(event))

    def next(self) -> Any:
        while not self.events:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.events.extend(self.codec.receive(data))
        return self.events.pop(0)

    def handshake(self, vhost: str = "/") -> Any:
        self.send(ProtocolHeader())
        start = self.next()
        assert isinstance(start, ConnectionStart)
        self.send(ConnectionStartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US"))
        tune = self.next()
        assert isinstance(tune, ConnectionTune)
        self.send(ConnectionTuneOk(tune.channel_max, tune.frame_max, 0))
        self.send(ConnectionOpen(vhost))
        return self.next()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(broker: Any, amqp_port: int) -> Any:
    clients: list[RawClient] = []

    def make() -> RawClient:
        client = RawClient(broker.host, amqp_port)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_connect_and_server_properties(connect: Callable[..., pika.BlockingConnection]) -> None:
    conn = connect()
    props = conn._impl.server_properties
    assert props["product"] == "Warren"
    caps = props["capabilities"]
    for capability in (
        "publisher_confirms", "exchange_exchange_bindings", "basic.nack",
        "consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
        "per_consumer_qos",
    ):
        assert caps[capability] is True, capability
    channel = conn.channel()
    assert channel.is_open
    channel.close()
    conn.close()
    assert conn.is_closed


def test_tune_negotiates_frame_max_channel_max_heartbeat(
    connect: Callable[..., pika.BlockingConnection],
) -> None:
    conn = connect(frame_max=8192, channel_max=16, heartbeat=5)
    params = conn._impl.params
    assert params.frame_max == 8192
    assert params.channel_max == 16
    assert params.heartbeat == 5
    # A body bigger than frame_max is cut into several body frames and reassembled.
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    body = bytes(range(256)) * 200
    channel.basic_publish("", queue, body)
    method, _, got = channel.basic_get(queue, auto_ack=True)
    assert method is not None and got == body


def test_unknown_vhost_is_refused(connect: Callable[..., pika.BlockingConnection]) -> None:
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(virtual_host="no-such-vhost", connection_attempts=1)
    assert "no-such-vhost" in str(info.value)


def test_vhost_names_a_vpn(connect: Callable[..., pika.BlockingConnection]) -> None:
    conn = connect(virtual_host="default")
    assert conn.channel().is_open


def test_amqplain_login(raw: Callable[[], RawClient]) -> None:
    client = raw()
    client.send(ProtocolHeader())
    start = client.next()
    assert b"AMQPLAIN" in start.mechanisms.split()
    login = b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x05guest"
    client.send(ConnectionStartOk({}, "AMQPLAIN", login, "en_US"))
    assert isinstance(client.next(), ConnectionTune)


def test_unsupported_mechanism_closes_with_403(raw: Callable[[], RawClient]) -> None:
    client = raw()
    client.send(ProtocolHeader())
    client.next()
    client.send(ConnectionStartOk({}, "EXTERNAL", b"", "en_US"))
    close = client.next()
    assert isinstance(close, ConnectionClose)
    assert close.reply_code == 403
    assert "EXTERNAL" in close.reply_text


def test_wrong_protocol_header_gets_ours_back(broker: Any, amqp_port: int) -> None:
    with socket.create_connection((broker.host, amqp_port), timeout=WAIT) as sock:
        sock.sendall(b"AMQP\x01\x01\x00\x0a")
        assert sock.recv(8) == b"AMQP\x00\x00\x09\x01"
        assert sock.recv(8) == b""  # then the server closes


def test_malformed_frame_closes_only_that_connection(
    raw: Callable[[], RawClient], connect: Callable[..., pika.BlockingConnection]
) -> None:
    bystander = connect()
    channel = bystander.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    client = raw()
    assert isinstance(client.handshake(), ConnectionOpenOk)
    # A method frame whose end octet is wrong: a frame error (501).
    client.sock.sendall(struct.pack(">BHI", 1, 1, 4) + b"\x00\x14\x00\x0a" + b"\x00")
    close = client.next()
    assert isinstance(close, ConnectionClose)
    assert close.reply_code == 501
    assert "FRAME_ERROR" in close.reply_text
    # The other connection is untouched.
    channel.basic_publish("", queue, b"still here")
    _, _, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"still here"


def test_channel_open_twice_is_a_connection_error(raw: Callable[[], RawClient]) -> None:
    client = raw()
    client.handshake()
    client.send(ChannelOpen(channel=1))
    client.next()  # channel.open-ok
    client.send(ChannelOpen(channel=1))
    close = client.next()
    assert isinstance(close, ConnectionClose)
    assert close.reply_code == 504
    assert "channel.open" in close.reply_text
    client.send(ConnectionCloseOk())


def test_method_on_unopened_channel_is_504(raw: Callable[[], RawClient]) -> None:
    from warren.codecs.amqp import QueueDeclare

    client = raw()
    client.handshake()
    client.send(QueueDeclare(queue="x", channel=7))
    close = client.next()
    assert isinstance(close, ConnectionClose)
    assert close.reply_code == 504
    assert (close.class_id, close.method_id) == (50, 10)


def test_channel_error_leaves_connection_open(
    connect: Callable[..., pika.BlockingConnection],
) -> None:
    conn = connect()
    channel = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        channel.queue_declare("no-such-queue-anywhere", passive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == "NOT_FOUND - no queue 'no-such-queue-anywhere' in vhost '/'"
    assert conn.is_open
    assert conn.channel().is_open


def test_reusing_consumer_tag_is_530(raw: Callable[[], RawClient]) -> None:
    from warren.codecs.amqp import BasicConsume, BasicConsumeOk, QueueDeclare, QueueDeclareOk

    client = raw()
    client.handshake()
    client.send(ChannelOpen(channel=1))
    client.next()
    client.send(QueueDeclare(queue="", exclusive=True, channel=1))
    declared = client.next()
    assert isinstance(declared, QueueDeclareOk)
    client.send(BasicConsume(queue=declared.queue, consumer_tag="same", channel=1))
    assert isinstance(client.next(), BasicConsumeOk)
    client.send(BasicConsume(queue=declared.queue, consumer_tag="same", channel=1))
    close = client.next()
    assert isinstance(close, ConnectionClose)
    assert close.reply_code == 530
    assert "reuse consumer tag 'same'" in close.reply_text
