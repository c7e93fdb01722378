"""Hand-built packets, laid out byte by byte from the specs, both ways.

Each case: the packet, who sends it, the protocol level, and the exact bytes (spaces
separate the fixed header, variable header fields and payload for reading). The
encoder must produce exactly these bytes and the decoder must read them back.
"""

from __future__ import annotations

import pytest
from mqtt_support import receiver_for, sender_for

from warren.codecs.mqtt import (
    Auth,
    ConnAck,
    Connect,
    Disconnect,
    MQTTConnection,
    Packet,
    PingReq,
    PingResp,
    Properties,
    PubAck,
    PubComp,
    Publish,
    PubRec,
    PubRel,
    Role,
    SubAck,
    Subscribe,
    SubscriptionRequest,
    UnsubAck,
    Unsubscribe,
    Will,
    encode_properties,
    encode_publish,
)

C, S = Role.CLIENT, Role.SERVER

CASES: list[tuple[str, Role, int, Packet, str]] = [
    # -- PUBLISH: type 3, flags DUP(3) QoS(2-1) RETAIN(0) ------------------------
    ("publish-v4-qos0", C, 4, Publish("a/b", b"hi"), "30 07 0003 612f62 6869"),
    ("publish-v4-qos1-dup-retain", C, 4,
     Publish("a/b", b"hi", qos=1, retain=True, dup=True, packet_id=10),
     "3b 09 0003 612f62 000a 6869"),
    ("publish-v4-qos2", S, 4, Publish("a", b"", qos=2, packet_id=0xFFFF), "34 05 0001 61 ffff"),
    ("publish-v5-qos0-no-properties", C, 5, Publish("a/b", b"hi"), "30 08 0003 612f62 00 6869"),
    ("publish-v5-qos2-expiry-alias", C, 5,
     Publish("a/b", b"hi", qos=2, packet_id=1,
             properties=Properties(message_expiry_interval=10, topic_alias=5)),
     "34 12 0003 612f62 0001 08 02 0000000a 23 0005 6869"),
    ("publish-v5-alias-only", C, 5, Publish("", b"x", properties=Properties(topic_alias=1)),
     "30 07 0000 03 23 0001 78"),
    ("publish-v5-two-subscription-ids", S, 5,
     Publish("t", b"", properties=Properties(subscription_identifiers=(1, 200))),
     "30 09 0001 74 05 0b 01 0b c801"),
    ("publish-v4-two-byte-remaining-length", C, 4, Publish("a/b", b"\x01" * 200),
     "30 cd01 0003 612f62" + " 01" * 200),
    # -- CONNECT ------------------------------------------------------------------
    ("connect-v4-minimal", C, 4, Connect("abc"),
     "10 0f 0004 4d515454 04 02 003c 0003 616263"),
    ("connect-v5-minimal", C, 5, Connect("abc", protocol_level=5),
     "10 10 0004 4d515454 05 02 003c 00 0003 616263"),
    # flags: user(7) password(6) will retain(5) will qos 1(4-3) will(2) clean(1) = ee
    ("connect-v4-will-user-password", C, 4,
     Connect("c", username="u", password=b"p", will=Will("w", b"bye", qos=1, retain=True)),
     "10 1b 0004 4d515454 04 ee 003c 0001 63 0001 77 0003 627965 0001 75 0001 70"),
    ("connect-v5-not-clean-properties-will", C, 5,
     Connect("", protocol_level=5, clean_start=False, keep_alive=0,
             will=Will("w", b"", properties=Properties(will_delay_interval=7)),
             properties=Properties(session_expiry_interval=30, receive_maximum=20)),
     "10 20 0004 4d515454 05 04 0000 08 11 0000001e 21 0014 0000 05 18 00000007 0001 77 0000"),
    ("connect-v5-password-without-user", C, 5,
     Connect("c", protocol_level=5, password=b"pw"),
     "10 12 0004 4d515454 05 42 003c 00 0001 63 0002 7077"),
    # -- CONNACK --------------------------------------------------------------------
    ("connack-v4-session-present", S, 4, ConnAck(session_present=True), "20 02 01 00"),
    ("connack-v4-refused-identifier", S, 4, ConnAck(reason_code=2), "20 02 00 02"),
    ("connack-v5", S, 5, ConnAck(), "20 03 00 00 00"),
    ("connack-v5-properties", S, 5,
     ConnAck(reason_code=0x87, properties=Properties(reason_string="no", maximum_qos=1)),
     "20 0a 00 87 07 1f 0002 6e6f 24 01"),
    # -- PUBACK / PUBREC / PUBREL / PUBCOMP ------------------------------------------
    ("puback-v4", C, 4, PubAck(1), "40 02 0001"),
    ("puback-v4-drops-v5-fields", C, 4, PubAck(1), "40 02 0001"),
    ("puback-v5-success-short", S, 5, PubAck(1), "40 02 0001"),
    ("puback-v5-code-only", S, 5, PubAck(1, 0x10), "40 03 0001 10"),
    ("puback-v5-reason-string", S, 5, PubAck(1, 0x10, Properties(reason_string="r")),
     "40 08 0001 10 04 1f 0001 72"),
    ("pubrec-v4", S, 4, PubRec(0x1234), "50 02 1234"),
    ("pubrec-v5-code", C, 5, PubRec(7, 0x80), "50 03 0007 80"),
    ("pubrel-v4", C, 4, PubRel(2), "62 02 0002"),
    ("pubrel-v5-not-found", S, 5, PubRel(2, 0x92), "62 03 0002 92"),
    ("pubcomp-v4", S, 4, PubComp(3), "70 02 0003"),
    ("pubcomp-v5-user-property", C, 5, PubComp(3, 0, Properties(user_properties=(("k", "v"),))),
     "70 0b 0003 00 07 26 0001 6b 0001 76"),
    # -- SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK ------------------------------------
    ("subscribe-v4", C, 4, Subscribe(1, (SubscriptionRequest("a/#", 1),)),
     "82 08 0001 0003 612f23 01"),
    ("subscribe-v4-two", C, 4,
     Subscribe(2, (SubscriptionRequest("a", 0), SubscriptionRequest("b", 2))),
     "82 0a 0002 0001 61 00 0001 62 02"),
    # options: retain handling 2 (5-4), retain as published (3), no local (2), qos 2
    ("subscribe-v5-options-id", C, 5,
     Subscribe(1, (SubscriptionRequest("a/#", 2, True, True, 2),),
               Properties(subscription_identifiers=(5,))),
     "82 0b 0001 02 0b 05 0003 612f23 2e"),
    ("suback-v4", S, 4, SubAck(1, (1, 0x80)), "90 04 0001 01 80"),
    ("suback-v5", S, 5, SubAck(1, (0, 0xA2)), "90 05 0001 00 00 a2"),
    ("unsubscribe-v4", C, 4, Unsubscribe(1, ("a",)), "a2 05 0001 0001 61"),
    ("unsubscribe-v5", C, 5, Unsubscribe(1, ("a", "bc")), "a2 0a 0001 00 0001 61 0002 6263"),
    ("unsuback-v4", S, 4, UnsubAck(1), "b0 02 0001"),
    ("unsuback-v5", S, 5, UnsubAck(1, (0x11,)), "b0 04 0001 00 11"),
    # -- PINGREQ / PINGRESP / DISCONNECT / AUTH ---------------------------------------------
    ("pingreq-v4", C, 4, PingReq(), "c0 00"),
    ("pingreq-v5", C, 5, PingReq(), "c0 00"),
    ("pingresp-v4", S, 4, PingResp(), "d0 00"),
    ("pingresp-v5", S, 5, PingResp(), "d0 00"),
    ("disconnect-v4", C, 4, Disconnect(), "e0 00"),
    ("disconnect-v5-normal", C, 5, Disconnect(), "e0 00"),
    ("disconnect-v5-with-will", C, 5, Disconnect(0x04), "e0 01 04"),
    ("disconnect-v5-session-expiry", C, 5,
     Disconnect(0, Properties(session_expiry_interval=0)), "e0 07 00 05 11 00000000"),
    ("disconnect-v5-server-moved", S, 5,
     Disconnect(0x9D, Properties(server_reference="h")), "e0 06 9d 04 1c 0001 68"),
    ("auth-v5-success", C, 5, Auth(), "f0 00"),
    ("auth-v5-continue", S, 5, Auth(0x18, Properties(authentication_method="m")),
     "f0 06 18 04 15 0001 6d"),
    ("auth-v5-data", C, 5,
     Auth(0x18, Properties(authentication_method="m", authentication_data=b"\x01")),
     "f0 0a 18 08 15 0001 6d 16 0001 01"),
]  # fmt: skip


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def _encode(sender: Role, level: int, packet: Packet) -> bytes:
    if isinstance(packet, Connect):
        return MQTTConnection(Role.CLIENT).send(packet)
    if isinstance(packet, ConnAck):
        server = MQTTConnection(Role.SERVER)
        server.receive(MQTTConnection(Role.CLIENT).send(Connect("x", protocol_level=level)))
        return server.send(packet)
    return sender_for(sender, level).send(packet)


def _decode(sender: Role, level: int, data: bytes) -> list[Packet]:
    if sender is Role.CLIENT and data[0] == 0x10:
        return MQTTConnection(Role.SERVER).receive(data)
    if data[0] == 0x20:
        client = MQTTConnection(Role.CLIENT)
        client.send(Connect("x", protocol_level=level))
        return client.receive(data)
    return receiver_for(sender, level).receive(data)


@pytest.mark.parametrize(("sender", "level", "packet", "wire"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_encode_exact_bytes(sender: Role, level: int, packet: Packet, wire: str) -> None:
    assert _encode(sender, level, packet).hex(" ") == _hex(wire).hex(" ")


@pytest.mark.parametrize(("sender", "level", "packet", "wire"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_decode_exact_bytes(sender: Role, level: int, packet: Packet, wire: str) -> None:
    assert _decode(sender, level, _hex(wire)) == [packet]


def test_v4_does_not_write_v5_only_fields() -> None:
    props = Properties(reason_string="x")
    client = sender_for(Role.CLIENT, 4)
    server = sender_for(Role.SERVER, 4)
    assert client.send(PubAck(1, 0x80, props)) == _hex("40 02 0001")
    assert client.send(Publish("a", b"", properties=props)) == _hex("30 03 0001 61")
    sub = Subscribe(1, (SubscriptionRequest("a", 1, True, True, 2),), props)
    assert client.send(sub) == _hex("82 06 0001 0001 61 01")
    assert client.send(Disconnect(0x04, props)) == _hex("e0 00")
    assert server.send(UnsubAck(1, (0x80,), props)) == _hex("b0 02 0001")
    connack = MQTTConnection(Role.SERVER)
    connack.receive(MQTTConnection(Role.CLIENT).send(Connect("x")))
    assert connack.send(ConnAck(False, 0, props)) == _hex("20 02 00 00")
    connect = Connect("c", properties=props, will=Will("w", b"", properties=props))
    assert MQTTConnection(Role.CLIENT).send(connect) == _hex(
        "10 12 0004 4d515454 04 06 003c 0001 63 0001 77 0000"
    )


def test_encode_publish_fast_helper_matches_send() -> None:
    block = encode_properties(Properties(message_expiry_interval=10, topic_alias=5))
    assert block == _hex("08 02 0000000a 23 0005")
    assert encode_publish(b"a/b", b"hi", 2, False, False, 1, block, 5) == _hex(
        "34 12 0003 612f62 0001 08 02 0000000a 23 0005 6869"
    )
    assert encode_publish(b"a/b", b"hi", 0, True, False, None, None, 5) == _hex(
        "31 08 0003 612f62 00 6869"
    )
    assert encode_publish(b"a/b", b"hi", 1, False, True, 10, block, 4) == _hex(
        "3a 09 0003 612f62 000a 6869"
    )
    # Remaining length 128 needs two bytes: 80 01.
    assert encode_publish(b"t", b"\x00" * 125, 0, False, False, None, None, 4)[:5] == _hex(
        "30 80 01 0001"
    )
    big = encode_publish(b"t", b"\x00" * 2_097_152, 0, False, False, None, None, 4)
    assert big[:7] == _hex("30 83 80 80 01 0001")  # 2_097_155 in four bytes


def test_encode_properties_empty_and_order() -> None:
    from warren.codecs.mqtt import NO_PROPERTIES

    assert encode_properties(NO_PROPERTIES) == b"\x00"
    assert encode_properties(Properties()) == b"\x00"
    props = Properties(
        user_properties=(("a", "1"), ("a", "2")), content_type="t", payload_format_indicator=1
    )
    assert encode_properties(props) == _hex(
        "14 01 01 03 0001 74 26 0001 61 0001 31 26 0001 61 0001 32"
    )
