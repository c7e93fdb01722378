"""08 - MQTT over WebSocket: handshake, framing, cross-transport delivery."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest
import websockets
from mqtt_peers import Peers
from mqtt_wire import connect, publish, subscribe


async def _ws(broker, subprotocols=("mqtt",)):  # type: ignore[no-untyped-def]
    return await websockets.connect(broker.ws_url, subprotocols=list(subprotocols), open_timeout=5)


async def _recv(ws, timeout=5.0) -> bytes:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        data = await ws.recv()
    assert isinstance(data, bytes), f"MQTT must come in binary frames, got text {data!r}"
    return data


def test_08_handshake_selects_mqtt_subprotocol_and_exact_connack(broker, uid):
    async def scenario() -> None:
        ws = await _ws(broker)
        try:
            assert ws.subprotocol == "mqtt", f"Sec-WebSocket-Protocol answered {ws.subprotocol!r}"
            await ws.send(connect(f"{uid}w", version=4))
            assert await _recv(ws) == b"\x20\x02\x00\x00"
            await ws.send(b"\xc0\x00")
            assert await _recv(ws) == b"\xd0\x00"
        finally:
            await ws.close()

    asyncio.run(scenario())


def test_08_packets_split_across_and_packed_into_frames(broker, uid):
    # MQTT 6.0: a WebSocket frame can hold part of a packet or several packets.
    async def scenario() -> list[bytes]:
        ws = await _ws(broker)
        try:
            pkt = connect(f"{uid}w", version=4)
            await ws.send(pkt[:3])
            await ws.send(pkt[3:])
            assert await _recv(ws) == b"\x20\x02\x00\x00"
            both = subscribe(1, [(f"{uid}/t", 0)]) + publish(f"{uid}/t", b"self") + b"\xc0\x00"
            await ws.send(both)
            buf = b""
            while len(buf) < 5 + 4 + len(f"{uid}/t") + 4 + 2:
                buf += await _recv(ws)
            return [buf]
        finally:
            await ws.close()

    topic = f"{uid}/t".encode()
    buf = asyncio.run(scenario())[0]
    suback = b"\x90\x03\x00\x01\x00"
    pub = bytes([0x30, 2 + len(topic) + 4]) + len(topic).to_bytes(2, "big") + topic + b"self"
    assert buf == suback + pub + b"\xd0\x00", buf.hex(" ")


def test_08_text_frame_closes_connection(broker, uid):
    # [MQTT-6.0.0-1]: a non-binary data frame MUST close the network connection.
    async def scenario() -> None:
        ws = await _ws(broker)
        await ws.send(connect(f"{uid}w", version=4))
        assert await _recv(ws) == b"\x20\x02\x00\x00"
        await ws.send("\xc0\x00")  # a text frame
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()

    asyncio.run(scenario())


@pytest.mark.parametrize(("pub_t", "sub_t"), [("tcp", "ws"), ("ws", "tcp"), ("ws", "ws")])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_08_cross_transport_paho(peers: Peers, uid, pub_t, sub_t, qos):
    sub = peers.paho(version=5, transport=sub_t)
    sub.subscribe(f"{uid}/x", 2)
    pub = peers.paho(version=4, transport=pub_t)
    pub.publish(f"{uid}/x", b"\x00binary\xff", qos)
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"\x00binary\xff", qos)


def test_08_round_trip_tcp_to_ws_and_back(peers: Peers, uid):
    tcp = peers.paho(version=5, transport="tcp")
    ws = peers.js(version=5, transport="ws")
    tcp.subscribe(f"{uid}/back", 1)
    ws.subscribe(f"{uid}/there", 1)
    tcp.publish(f"{uid}/there", b"over tcp", 1)
    m = ws.expect_one()
    ws.publish(f"{uid}/back", m.payload + b", back over ws", 1)
    assert tcp.expect_one().payload == b"over tcp, back over ws"


@pytest.mark.parametrize("version", [4, 5])
def test_08_mqttjs_ws_and_tcp(peers: Peers, uid, version):
    ws = peers.js(version=version, transport="ws")
    tcp = peers.js(version=version, transport="tcp")
    ws.subscribe(f"{uid}/#", 2)
    tcp.subscribe(f"{uid}/#", 2)
    tcp.publish(f"{uid}/from-tcp", b"a", 2)
    ws.publish(f"{uid}/from-ws", b"b", 1)
    for peer in (ws, tcp):
        got = sorted((m.topic, m.payload) for m in peer.expect(2))
        assert got == [(f"{uid}/from-tcp", b"a"), (f"{uid}/from-ws", b"b")], (peer.name, got)


def test_08_aiomqtt_over_websocket(broker, uid):
    async def scenario() -> tuple[bytes, int]:
        async with aiomqtt.Client(
            broker.host,
            broker.ws_port,
            identifier=f"{uid}a",
            transport="websockets",
            websocket_path=broker.ws_path,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as c:
            await c.subscribe(f"{uid}/t", qos=2)
            await c.publish(f"{uid}/t", b"aio-ws", qos=2)
            async with asyncio.timeout(5):
                async for message in c.messages:
                    return bytes(message.payload), message.qos
        raise AssertionError("unreachable")

    assert asyncio.run(scenario()) == (b"aio-ws", 2)


def test_08_large_message_over_websocket(peers: Peers, uid):
    sub = peers.paho(version=5, transport="ws")
    sub.subscribe(f"{uid}/big", 1)
    pub = peers.paho(version=5, transport="tcp")
    big = bytes(range(256)) * 2048  # 512 KiB: many WebSocket frames / TCP segments
    pub.publish(f"{uid}/big", big, 1)
    assert sub.expect_one(timeout=10).payload == big
