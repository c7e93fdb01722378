"""The native protocol over WebSocket: subprotocol, streaming across messages."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from warren.codecs.native import (
    Connect,
    Connected,
    Deliver,
    Event,
    Message,
    NativeConnection,
    Result,
    Role,
    Subscribe,
)


def _events(ws: ClientConnection, codec: NativeConnection, count: int) -> list[Event]:
    out: list[Event] = []
    while len(out) < count:
        data = ws.recv(timeout=5)
        assert isinstance(data, bytes)
        out.extend(codec.receive(data))
    return out


def test_native_over_websocket(broker, wire, uid: str) -> None:  # type: ignore[no-untyped-def]
    url = f"ws://{broker.host}:{broker.native_ws_port}/any/path"
    with connect(url, subprotocols=["warren-native"], open_timeout=5) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "warren-native"
        codec = NativeConnection(Role.CLIENT)
        hello = codec.send(Connect(client_name=f"{uid}-ws"))
        ws.send(hello[:3])  # a frame may span WebSocket messages
        ws.send(hello[3:] + codec.send(Subscribe(1, 5, f"{uid}/w/>")))
        connected, result = _events(ws, codec, 2)
        assert isinstance(connected, Connected) and connected.client_name == f"{uid}-ws"
        assert result == Result(1)
        wire().publish(Message(f"{uid}/w/1", b"over tcp"))
        [deliver] = _events(ws, codec, 1)
        assert isinstance(deliver, Deliver) and deliver.subscription_ids == (5,)
        assert deliver.messages[0].payload == b"over tcp"


def test_text_messages_close_the_websocket(broker) -> None:  # type: ignore[no-untyped-def]
    url = f"ws://{broker.host}:{broker.native_ws_port}/"
    with connect(url, subprotocols=["warren-native"], open_timeout=5) as ws:  # type: ignore[list-item]
        ws.send("WRN")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1003
