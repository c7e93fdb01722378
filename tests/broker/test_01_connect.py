"""01 - CONNECT / CONNACK, client identifiers, takeover, keep-alive (3.1.1 and 5)."""

from __future__ import annotations

import asyncio
import time

import aiomqtt
import pytest
from mqtt_peers import Peers
from mqtt_wire import (
    CONNACK,
    DISCONNECT_V4,
    PINGREQ_BYTES,
    PINGRESP_BYTES,
    RawClient,
    connect,
    disconnect,
)

TRANSPORTS = ["tcp", "ws"]


def test_01_v311_connect_exact_connack_ping_disconnect(broker, uid):
    c = RawClient.to(broker)
    c.send(connect(f"{uid}a", version=4))
    c.expect_bytes(b"\x20\x02\x00\x00")  # CONNACK, session present 0, accepted
    c.send(PINGREQ_BYTES)
    c.expect_bytes(PINGRESP_BYTES)
    c.send(DISCONNECT_V4)
    assert c.expect_closed() == b"", "broker sent bytes after a client DISCONNECT"


def test_01_v5_connect_connack(broker, uid):
    c = RawClient.to(broker, version=5)
    c.send(connect(f"{uid}a", version=5))
    ack = c.expect(CONNACK)
    assert ack.raw[0] == 0x20
    assert ack.fields["session_present"] is False
    assert ack.fields["code"] == 0, ack
    props = ack.fields["props"]
    # A server that lacks a feature must say so; if it says anything, it is 1.
    for flag in (
        "WildcardSubscriptionAvailable",
        "SharedSubscriptionAvailable",
        "SubscriptionIdentifierAvailable",
        "RetainAvailable",
    ):
        assert props.get(flag, 1) == 1, f"{flag} = {props.get(flag)}: feature not available"
    assert props.get("MaximumQoS", 2) == 2, props
    c.send(disconnect(0))
    assert c.expect_closed() == b""


def test_01_v5_connack_advertises_configured_limits(make_broker, uid):
    b = make_broker(
        "[mqtt]\nreceive_maximum = 50\ntopic_alias_maximum = 7\nmax_packet_size = 4096\n"
    )
    c = RawClient.to(b, version=5)
    props = c.connect(f"{uid}a").fields["props"]
    assert props.get("ReceiveMaximum") == 50, props
    assert props.get("TopicAliasMaximum") == 7, props
    assert props.get("MaximumPacketSize") == 4096, props


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", [4, 5])
def test_01_paho_connects(peers: Peers, version, transport):
    p = peers.paho(version=version, transport=transport, connect=False)
    ack = p.connect()
    assert ack.reason_code == 0 and ack.session_present is False
    p.disconnect()
    assert p.disconnects[-1][0] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", [4, 5])
def test_01_mqttjs_connects(peers: Peers, version, transport):
    js = peers.js(version=version, transport=transport, connect=False)
    ev = js.connect()
    assert ev["reasonCode"] == 0 and ev["sessionPresent"] is False
    js.disconnect()


@pytest.mark.parametrize("version", [aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5])
def test_01_aiomqtt_connects_and_round_trips(broker, uid, version):
    async def scenario() -> bytes:
        async with aiomqtt.Client(
            broker.host, broker.mqtt_port, identifier=f"{uid}a", protocol=version
        ) as client:
            await client.subscribe(f"{uid}/t", qos=1)
            await client.publish(f"{uid}/t", b"aio", qos=1)
            async with asyncio.timeout(5):
                async for message in client.messages:
                    return bytes(message.payload)
        raise AssertionError("unreachable")

    assert asyncio.run(scenario()) == b"aio"


def test_01_username_password_accepted_while_authentication_off(peers: Peers):
    p = peers.paho(version=4, username="anyone", password="anything")
    assert p.connected


def test_01_v311_zero_length_client_id_needs_clean_session(broker):
    ok = RawClient.to(broker)
    ok.send(connect("", version=4, clean=True))
    ok.expect_bytes(b"\x20\x02\x00\x00")
    # [MQTT-3.1.3-8]: zero-length id with CleanSession=0 -> CONNACK 0x02, close.
    bad = RawClient.to(broker)
    bad.send(connect("", version=4, clean=False))
    bad.expect_bytes(b"\x20\x02\x00\x02")
    assert bad.expect_closed() == b""
    ok.ping()


def test_01_v5_server_assigns_distinct_client_ids(broker):
    ids = []
    for _ in range(2):
        c = RawClient.to(broker, version=5)
        ack = c.connect("")
        assigned = ack.fields["props"].get("AssignedClientIdentifier")
        assert assigned, f"no Assigned Client Identifier in CONNACK: {ack!r}"
        ids.append(assigned)
    assert ids[0] != ids[1], f"two clients were assigned the same id {ids[0]!r}"


def test_01_v5_paho_empty_client_id_gets_assigned_id_and_works(peers: Peers, uid):
    p = peers.paho(version=5, client_id="")
    assert p.subscribe(f"{uid}/x", 1) == [1]
    p.publish(f"{uid}/x", b"me", 1)
    assert p.expect_one().payload == b"me"


@pytest.mark.parametrize("client_id", ["a" * 23, "Z9" * 30, "id-with.dots_and:colons"])
def test_01_long_and_punctuated_client_ids_accepted(broker, client_id, uid):
    # 1-23 alphanumerics MUST be accepted [MQTT-3.1.3-5]; longer ones and other
    # characters MAY be: a modern broker accepts them (mosquitto, EMQX, HiveMQ do).
    c = RawClient.to(broker)
    c.send(connect(uid + client_id, version=4))
    c.expect_bytes(b"\x20\x02\x00\x00")


def test_01_v311_takeover_closes_old_connection(broker, uid):
    old = RawClient.to(broker)
    old.connect(f"{uid}same")
    new = RawClient.to(broker)
    new.send(connect(f"{uid}same", version=4))
    new.expect_bytes(b"\x20\x02\x00\x00")
    # [MQTT-3.1.4-2]: the existing client is disconnected (3.1.1: no DISCONNECT).
    assert old.expect_closed() == b""
    new.ping()


def test_01_v5_takeover_sends_disconnect_0x8e(broker, uid):
    old = RawClient.to(broker, version=5)
    old.connect(f"{uid}same")
    new = RawClient.to(broker, version=5)
    new.connect(f"{uid}same")
    # [MQTT-3.1.4-3]: DISCONNECT with 0x8E Session taken over, then close.
    old.expect_disconnect_and_close({0x8E})
    new.ping()


def test_01_paho_takeover_is_reported_to_the_old_client(peers: Peers, uid):
    first = peers.paho(version=5, client_id=f"{uid}x")
    peers.paho(version=5, client_id=f"{uid}x")
    code, _ = first.wait_disconnected()
    assert code == 0x8E, f"old client saw reason {code:#x}, expected 0x8E Session taken over"


def test_01_v311_keep_alive_enforced(broker, uid):
    # [MQTT-3.1.2-24]: no packet within 1.5 x keep-alive -> the server disconnects.
    c = RawClient.to(broker)
    c.connect(f"{uid}k", keepalive=1)
    start = time.monotonic()
    c.expect_closed(timeout=6)
    elapsed = time.monotonic() - start
    # 1.5 s is the rule; allow scheduling slack (mosquitto 2.0.11 takes ~3.7 s).
    assert 1.0 <= elapsed <= 4.5, f"closed after {elapsed:.2f}s, keep-alive 1 s allows 1.5 s"


def test_01_pings_keep_the_connection_alive(broker, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}k", keepalive=1)
    deadline = time.monotonic() + 2.5  # well past 1.5 x keep-alive
    while time.monotonic() < deadline:
        c.ping()
        # One ping per ~0.5 s keeps a 1 s keep-alive satisfied; the wait is the
        # client's own pacing (what a real client does), not synchronisation.
        time.sleep(0.5)
    c.ping()


def test_01_v5_server_keep_alive_caps_client_value(make_broker, uid):
    b = make_broker("[mqtt]\nserver_keep_alive = 2\n")
    asks_long = RawClient.to(b, version=5)
    ack = asks_long.connect(f"{uid}a", keepalive=60)
    assert ack.fields["props"].get("ServerKeepAlive") == 2, ack
    asks_none = RawClient.to(b, version=5)
    ack = asks_none.connect(f"{uid}b", keepalive=0)
    assert ack.fields["props"].get("ServerKeepAlive") == 2, (
        f"keep-alive 0 (none) must be capped too: {ack!r}"
    )
    asks_short = RawClient.to(b, version=5)
    ack = asks_short.connect(f"{uid}c", keepalive=1)
    assert ack.fields["props"].get("ServerKeepAlive", 1) == 1, ack
    # The cap is enforced: silent for 1.5 x 2 s -> disconnected.
    start = time.monotonic()
    asks_long.expect_closed(timeout=6)
    assert time.monotonic() - start >= 2.0
