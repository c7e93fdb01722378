"""09 - Bad input on raw sockets: the offender is cut off with the exact bytes the
spec requires, and a well-behaved client connected meanwhile is undisturbed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mqtt_peers import PahoPeer, Peers
from mqtt_wire import (
    CONNACK,
    DISCONNECT,
    PUBACK,
    SUBACK,
    ConnectionClosed,
    RawClient,
    connect,
    packet,
    props,
    publish,
    subscribe,
    unsubscribe,
    utf8,
    varint,
)


class Witness:
    """A normal subscriber that must not notice anybody else's bad input."""

    def __init__(self, peers: Peers, uid: str) -> None:
        self.uid = uid
        self.sub: PahoPeer = peers.paho(version=5)
        self.sub.subscribe(f"{uid}/witness", 1)
        self.pub: PahoPeer = peers.paho(version=4)

    def check(self) -> None:
        self.pub.publish(f"{self.uid}/witness", b"still fine", 1)
        m = self.sub.expect_one()
        assert m.payload == b"still fine"
        assert self.sub.connected and self.pub.connected, (
            f"witness disconnected: {self.sub.disconnects} {self.pub.disconnects}"
        )


@pytest.fixture
def witness(peers: Peers, uid: str) -> Iterator[Witness]:
    w = Witness(peers, uid)
    yield w
    w.check()


def v4_connect(c: RawClient, cid: str) -> None:
    c.send(connect(cid, version=4))
    c.expect_bytes(b"\x20\x02\x00\x00")


# ------------------------------------------------------------ CONNECT errors


def test_09_v311_unacceptable_protocol_level_connack_0x01(broker, witness):
    # [MQTT-3.1.2-2]: CONNACK return code 0x01, then close.
    c = RawClient.to(broker)
    c.send(connect("lvl", version=4, level=3))  # "MQTT" with the 3.1 level
    c.expect_bytes(b"\x20\x02\x00\x01")
    assert c.expect_closed() == b""


def test_09_unknown_protocol_level_refused(broker, witness):
    c = RawClient.to(broker)
    c.send(connect("lvl", version=4, level=6))
    data = c.expect_closed()
    # The level is unknown, so the client's CONNACK format is too: either the
    # 3.1.1 form (0x01) or the MQTT 5 form (0x84 Unsupported Protocol Version).
    assert data in (b"", b"\x20\x02\x00\x01") or (data[:1] == b"\x20" and data[3:4] == b"\x84"), (
        f"level 6 not refused as unsupported: {data.hex(' ')}"
    )
    assert data != b"", "no CONNACK: the spec asks for return code 0x01 / reason 0x84"


def test_09_v5_connect_refused_unsupported_version_0x84(broker, witness):
    # An MQTT 5 client whose CONNECT cannot be accepted for its version gets
    # the MQTT 5 CONNACK form: 0x84 Unsupported Protocol Version [MQTT-3.1.2-2].
    c = RawClient.to(broker, version=5)
    c.send(connect("lvl", version=5, level=7))
    data = c.expect_closed()
    assert data[:1] == b"\x20" and (data[3:4] in (b"\x84", b"\x01")), data.hex(" ")


@pytest.mark.parametrize("version", [4, 5])
def test_09_wrong_protocol_name_closes(broker, witness, version):
    # [MQTT-3.1.2-1]: a wrong protocol name MAY get CONNACK (v5: 0x84), then close.
    c = RawClient.to(broker, version=version)
    c.send(connect("name", version=version, protocol_name=b"hj"))
    data = c.expect_closed()
    assert data in (b"", b"\x20\x02\x00\x01") or (data[:1] == b"\x20" and data[3] >= 0x80), (
        f"CONNECT with protocol name 'hj' accepted: {data.hex(' ')}"
    )


@pytest.mark.parametrize("version", [4, 5])
def test_09_connect_reserved_flag_closes(broker, witness, version):
    # [MQTT-3.1.2-3]: the reserved flag must be 0; otherwise Malformed.
    c = RawClient.to(broker, version=version)
    c.send(connect("rsv", version=version, reserved_flag=True))
    data = c.expect_closed()
    ok = (
        data == b""
        if version == 4
        else data in (b"", b"\x20\x03\x00\x81\x00")
        or (data[:1] == b"\x20" and data[3:4] == b"\x81")
    )
    assert ok, f"reserved CONNECT flag: got {data.hex(' ')}"


def test_09_first_packet_not_connect_closes_silently(broker, witness):
    for first in (b"\xc0\x00", subscribe(1, [("a", 0)]), publish("a", b"x")):
        c = RawClient.to(broker)
        c.send(first)
        # [MQTT-3.1.0-1]: the first packet must be CONNECT; nothing is sent back.
        assert c.expect_closed() == b"", f"reply to first packet {first.hex(' ')}"


@pytest.mark.parametrize("version", [4, 5])
def test_09_second_connect_is_protocol_violation(broker, witness, uid, version):
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    c.send(connect(f"{uid}x", version=version))
    if version == 5:
        c.expect_disconnect_and_close({0x82})  # [MQTT-3.1.0-2] Protocol Error
    else:
        assert c.expect_closed() == b""


def test_09_v5_will_qos_3_malformed(broker, witness):
    c = RawClient.to(broker, version=5)
    c.send(connect("wq", version=5, will={"topic": "w", "payload": b"x", "qos": 3}))
    data = c.expect_closed()
    assert not data.startswith(b"\x20\x03\x00\x00") and (data == b"" or data[3] >= 0x80), data.hex(
        " "
    )


def test_09_password_without_username_v311_refused(broker, witness):
    # 3.1.1 [MQTT-3.1.2-22]: password flag without username flag is malformed.
    body = utf8("MQTT") + bytes([4, 0x40 | 0x02]) + b"\x00\x3c" + utf8("pw") + utf8(b"secret")
    c = RawClient.to(broker)
    c.send(packet(0x10, body))
    data = c.expect_closed()
    assert data in (b"", b"\x20\x02\x00\x04", b"\x20\x02\x00\x05"), data.hex(" ")


def test_09_connect_truncated_then_eof(broker, witness):
    c = RawClient.to(broker)
    c.send(connect("trunc", version=4)[:-3])
    c.sock.shutdown(1)  # SHUT_WR: the broker sees EOF mid-packet
    assert c.expect_closed() == b""


# ---------------------------------------------------------------- framing


@pytest.mark.parametrize("version", [4, 5])
def test_09_remaining_length_over_four_bytes(broker, witness, uid, version):
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    c.send(b"\x30\xff\xff\xff\xff\x01")
    if version == 5:
        c.expect_disconnect_and_close({0x81})
    else:
        assert c.expect_closed() == b""


@pytest.mark.parametrize("version", [4, 5])
def test_09_reserved_packet_type_zero(broker, witness, uid, version):
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    c.send(b"\x00\x00")
    if version == 5:
        c.expect_disconnect_and_close({0x81, 0x82})
    else:
        assert c.expect_closed() == b""


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(
            b"\x83" + varint(6) + b"\x00\x01" + utf8("a") + b"\x00", id="subscribe-flags-0011"
        ),
        pytest.param(b"\xa0" + varint(5) + b"\x00\x01" + utf8("a"), id="unsubscribe-flags-0000"),
        pytest.param(b"\xc1\x00", id="pingreq-flags-0001"),
        pytest.param(b"\x60\x02\x00\x01", id="pubrel-flags-0000"),
        pytest.param(b"\x36" + varint(5) + utf8("a") + b"\x00\x01", id="publish-qos-3"),
    ],
)
def test_09_v311_wrong_fixed_header_flags_close(broker, witness, uid, bad):
    # [MQTT-2.2.2-1/2]: reserved flag values are malformed -> close, no reply.
    c = RawClient.to(broker)
    c.connect(f"{uid}x")
    c.send(bad)
    assert c.expect_closed() == b""


def test_09_v5_publish_qos3_malformed(broker, witness, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}x")
    c.send(b"\x36" + varint(6) + utf8("a") + b"\x00\x01\x00")
    c.expect_disconnect_and_close({0x81})


def test_09_v5_oversized_packet_disconnect_0x95(make_broker, peers: Peers, uid):
    b = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = RawClient.to(b, version=5)
    assert c.connect(f"{uid}x").fields["props"].get("MaximumPacketSize") == 1024
    c.send(publish(f"{uid}/t", b"x" * 2000, version=5))
    c.expect_disconnect_and_close({0x95})  # Packet too large
    # A packet just under the limit is fine.
    ok = RawClient.to(b, version=5)
    ok.connect(f"{uid}y")
    ok.send(publish(f"{uid}/t", b"x" * 900, qos=1, pid=1, version=5))
    assert ok.expect(PUBACK).fields["pid"] == 1


def test_09_v311_oversized_packet_closes(make_broker, uid):
    b = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = RawClient.to(b)
    c.connect(f"{uid}x")
    c.send(publish(f"{uid}/t", b"x" * 2000))
    assert c.expect_closed() == b""


def test_09_oversized_connect_refused(make_broker, uid):
    b = make_broker("[mqtt]\nmax_packet_size = 1024\n")
    c = RawClient.to(b, version=5)
    c.send(connect(f"{uid}x", version=5, will={"topic": "w", "payload": b"p" * 2000}))
    data = c.expect_closed()
    assert data == b"" or (data[:1] == b"\x20" and data[3] == 0x95), data.hex(" ")


# -------------------------------------------------------- topics, UTF-8, ids


@pytest.mark.parametrize("topic", ["a/+", "a/#", "+", "#"])
@pytest.mark.parametrize("version", [4, 5])
def test_09_wildcard_in_publish_topic(broker, witness, uid, topic, version):
    # [MQTT-3.3.2-2]: a topic name must not contain wildcards.
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    c.send(publish(topic, b"x", qos=1, pid=1, version=version))
    if version == 5:
        c.expect_disconnect_and_close({0x90, 0x81, 0x82})  # Topic Name invalid
    else:
        assert c.expect_closed() == b""


@pytest.mark.parametrize(
    "raw_topic",
    [
        pytest.param(b"a/\xff", id="invalid-byte"),
        pytest.param(b"a/\xc3", id="truncated-sequence"),
        pytest.param(b"a/\xed\xa0\x80", id="surrogate"),
        pytest.param(b"a/\xc0\xaf", id="overlong"),
        pytest.param(b"a/\x00b", id="nul"),
    ],
)
@pytest.mark.parametrize("version", [4, 5])
def test_09_invalid_utf8_topic(broker, witness, uid, raw_topic, version):
    # [MQTT-1.5.3-1/2]: ill-formed UTF-8 or U+0000 -> malformed, close.
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    c.send(publish(raw_topic, b"x", version=version))
    if version == 5:
        c.expect_disconnect_and_close({0x81})
    else:
        assert c.expect_closed() == b""


def test_09_invalid_utf8_in_subscribe_filter(broker, witness, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}x")
    c.send(subscribe(1, [(b"a/\xfe", 0)]))
    assert c.expect_closed() == b""


def test_09_invalid_utf8_client_id(broker, witness):
    c = RawClient.to(broker)
    c.send(connect(b"bad\xff", version=4))
    data = c.expect_closed()
    assert data in (b"", b"\x20\x02\x00\x02"), data.hex(" ")


def test_09_v5_invalid_utf8_user_property(broker, witness, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}x")
    body = utf8("t") + b"\x26" + utf8(b"k") + utf8(b"\xff")
    c.send(packet(0x30, varint(len(body) - 2) + body))
    c.expect_disconnect_and_close({0x81})


def test_09_empty_topic_without_alias(broker, witness, uid):
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}x")
    c.send(publish("", b"x", version=5))
    c.expect_disconnect_and_close({0x82, 0x81, 0x90})


@pytest.mark.parametrize("bad", ["a/#/b", "a#", "a/b+", "#/a"])
@pytest.mark.parametrize("version", [4, 5])
def test_09_invalid_subscribe_filters(broker, witness, uid, version, bad):
    # [MQTT-4.7.1-1/2]: '#' last and alone in its level, '+' alone in its level.
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    c.send(subscribe(1, [(bad, 0)], version=version))
    try:
        pkt = c.recv(what=f"SUBACK or close for {bad!r}")
    except ConnectionClosed:
        # 3.1.1 may simply close; MQTT 5 should say why with a DISCONNECT.
        assert version == 4, f"filter {bad!r}: closed without DISCONNECT"
        return
    if pkt.type == SUBACK:
        # 3.1.1: 0x80 Failure; 5: 0x8F Topic Filter invalid (or another >= 0x80).
        assert pkt.fields["codes"][0] >= 0x80, f"filter {bad!r} accepted: {pkt!r}"
        if version == 4:
            assert pkt.raw == b"\x90\x03\x00\x01\x80", pkt
    else:
        assert version == 5 and pkt.type == DISCONNECT, pkt
        assert pkt.fields["code"] in (0x81, 0x82, 0x8F), pkt


@pytest.mark.parametrize("version", [4, 5])
def test_09_subscribe_without_filters(broker, witness, uid, version):
    # [MQTT-3.8.3-3]: at least one filter -> otherwise protocol violation.
    c = RawClient.to(broker, version=version)
    c.connect(f"{uid}x")
    body = b"\x00\x01" + (props() if version == 5 else b"")
    c.send(packet(0x82, body))
    if version == 5:
        c.expect_disconnect_and_close({0x81, 0x82})
    else:
        assert c.expect_closed() == b""


def test_09_unsubscribe_without_filters(broker, witness, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}x")
    c.send(packet(0xA2, b"\x00\x01"))
    assert c.expect_closed() == b""


def test_09_subscribe_qos3_malformed(broker, witness, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}x")
    c.send(subscribe(1, [("a", 3)]))
    assert c.expect_closed() == b""


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(publish("a", b"x", qos=1, pid=0), id="publish-qos1-id-0"),
        pytest.param(publish("a", b"x", qos=2, pid=0), id="publish-qos2-id-0"),
        pytest.param(subscribe(0, [("a", 0)]), id="subscribe-id-0"),
        pytest.param(unsubscribe(0, ["a"]), id="unsubscribe-id-0"),
    ],
)
def test_09_packet_id_zero(broker, witness, uid, bad):
    # [MQTT-2.3.1-1]: packets that need an identifier need a non-zero one.
    c = RawClient.to(broker)
    c.connect(f"{uid}x")
    c.send(bad)
    assert c.expect_closed() == b""


def test_09_puback_for_unknown_id_is_harmless(broker, witness, uid):
    c = RawClient.to(broker)
    c.connect(f"{uid}x")
    c.send(b"\x40\x02\x01\x01")  # PUBACK 257: the broker never sent PUBLISH 257
    c.send(b"\x70\x02\x01\x03")  # PUBCOMP 259
    c.ping()  # ignored: still connected, nothing sent back


def test_09_garbage_then_normal_client(broker, witness):
    c = RawClient.to(broker)
    c.send(bytes(range(256)) * 4)
    assert c.expect_closed() == b""


def test_09_http_request_on_mqtt_port(broker, witness):
    c = RawClient.to(broker)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.expect_closed() == b""


def test_09_byte_at_a_time_connect_still_works(broker, witness, uid):
    c = RawClient.to(broker)
    for byte in connect(f"{uid}slow", version=4):
        c.send(bytes([byte]))
    c.expect_bytes(b"\x20\x02\x00\x00")
    for byte in publish(f"{uid}/s", b"x", qos=1, pid=9):
        c.send(bytes([byte]))
    c.expect_bytes(b"\x40\x02\x00\x09")


def test_09_many_packets_in_one_write(broker, witness, uid):
    c = RawClient.to(broker)
    burst = (
        connect(f"{uid}burst", version=4)
        + b"".join(publish(f"{uid}/b", b"x", qos=1, pid=i) for i in range(1, 51))
        + b"\xc0\x00"
    )
    c.send(burst)
    c.expect_bytes(b"\x20\x02\x00\x00")
    for i in range(1, 51):
        c.expect_bytes(b"\x40\x02" + i.to_bytes(2, "big"))
    c.expect_bytes(b"\xd0\x00")


def test_09_v5_connect_property_duplicated_is_protocol_error(broker, witness):
    c = RawClient.to(broker, version=5)
    c.send(
        connect(
            "dup",
            version=5,
            properties=[("SessionExpiryInterval", 1), ("SessionExpiryInterval", 2)],
        )
    )
    data = c.expect_closed()
    assert data == b"" or (data[:1] == b"\x20" and data[3] in (0x81, 0x82)), data.hex(" ")


def test_09_v5_receive_maximum_zero_is_protocol_error(broker, witness):
    c = RawClient.to(broker, version=5)
    c.send(connect("rm0", version=5, properties={"ReceiveMaximum": 0}))
    pkt_or_close = c.expect_closed()
    assert pkt_or_close == b"" or (pkt_or_close[:1] == b"\x20" and pkt_or_close[3] in (0x81, 0x82))


def test_09_v5_disconnect_session_expiry_from_zero_is_protocol_error(broker, witness, uid):
    # [MQTT-3.14.2-2]: CONNECT said 0, so DISCONNECT may not set a non-zero expiry.
    c = RawClient.to(broker, version=5)
    c.connect(f"{uid}x")
    c.send(packet(0xE0, b"\x00" + props({"SessionExpiryInterval": 30})))
    data = c.expect_closed()
    assert data in (b"",) or (data[:1] == b"\xe0" and data[2] == 0x82), data.hex(" ")


def test_09_connack_never_sent_twice(broker, witness, uid):
    c = RawClient.to(broker, version=5)
    c.send(connect(f"{uid}x", version=5) + b"\xc0\x00")
    assert c.expect(CONNACK).fields["code"] == 0
    assert c.recv(what="PINGRESP").raw == b"\xd0\x00"
