"""Every invalid input of the contract raises RemoteProtocolError with its reason code.

Each case is hand-built bytes (fixed header first; spaces for reading) fed to a
receiver in a given state:

* ``new-server``: nothing received yet (the bytes start with CONNECT);
* ``server``: connected, receiving from a client;
* ``await-client``: has sent CONNECT, waiting for CONNACK;
* ``client``: connected, receiving from a server.
"""

from __future__ import annotations

import pytest
from mqtt_support import FEEDERS, connected_client, connected_server

from warren.codecs.mqtt import Connect, MQTTConnection, Role
from warren.errors import RemoteProtocolError

MALFORMED, PROTOCOL, VERSION, TOPIC, ALIAS = 0x81, 0x82, 0x84, 0x90, 0x94

CASES: list[tuple[str, str, int, str, int]] = [
    # -- fixed header [MQTT-2.1.3-1], reserved types ----------------------------------
    ("puback-flags", "server", 4, "41 02 0001", MALFORMED),
    ("pubrel-flags-0", "server", 4, "60 02 0001", MALFORMED),
    ("pubrel-flags-3", "client", 5, "63 02 0001", MALFORMED),
    ("subscribe-flags", "server", 4, "80 06 0001 0001 61 00", MALFORMED),
    ("unsubscribe-flags", "server", 5, "a0 06 0001 00 0001 61", MALFORMED),
    ("pingreq-flags", "server", 4, "c1 00", MALFORMED),
    ("disconnect-flags", "server", 5, "e2 00", MALFORMED),
    ("connect-flags", "new-server", 4, "11 0d 0004 4d515454 04 02 003c 0001 63", MALFORMED),
    ("suback-flags", "client", 4, "92 03 0001 00", MALFORMED),
    ("type-0-server", "server", 4, "00 00", MALFORMED),
    ("type-0-new-server", "new-server", 4, "00 00", MALFORMED),
    ("type-0-client", "client", 5, "00 00", MALFORMED),
    ("auth-on-3.1.1-server", "server", 4, "f0 00", MALFORMED),
    ("auth-on-3.1.1-client", "client", 4, "f0 00", MALFORMED),
    # -- remaining length ---------------------------------------------------------------
    ("remaining-length-5-bytes", "server", 4, "30 ff ff ff ff 01", MALFORMED),
    ("remaining-length-4-continued", "server", 5, "30 80 80 80 80", MALFORMED),
    # -- fields overrun the packet / leftover bytes -----------------------------------------
    ("publish-topic-overrun", "server", 4, "30 03 0005 61", MALFORMED),
    ("publish-topic-length-cut", "server", 4, "30 01 00", MALFORMED),
    ("publish-packet-id-cut", "server", 4, "32 04 0002 6162", MALFORMED),
    ("publish-v5-no-property-length", "server", 5, "30 03 0001 61", MALFORMED),
    ("puback-v4-long", "server", 4, "40 03 0001 00", MALFORMED),
    ("puback-short", "server", 5, "40 01 00", MALFORMED),
    ("puback-v5-leftover", "server", 5, "40 05 0001 00 00 ff", MALFORMED),
    ("pingreq-long", "server", 4, "c0 01 00", MALFORMED),
    ("pingresp-long", "client", 5, "d0 01 00", MALFORMED),
    ("disconnect-v4-long", "server", 4, "e0 01 00", MALFORMED),
    ("disconnect-v5-leftover", "server", 5, "e0 03 00 00 ff", MALFORMED),
    ("connect-leftover", "new-server", 4, "10 0e 0004 4d515454 04 02 003c 0001 63 ff",
     MALFORMED),
    ("connect-client-id-missing", "new-server", 4, "10 0c 0004 4d515454 04 02 003c 0001",
     MALFORMED),
    ("connect-short-header", "new-server", 5, "10 08 0004 4d515454 05 02", MALFORMED),
    ("connect-level-missing", "new-server", 5, "10 06 0004 4d515454", MALFORMED),
    ("connect-password-length-cut", "new-server", 5,
     "10 0f 0004 4d515454 05 42 003c 00 0001 63 00", MALFORMED),
    ("publish-v5-packet-id-cut", "server", 5, "32 04 0001 61 00", MALFORMED),
    ("subscribe-options-missing", "server", 4, "82 05 0001 0001 61", MALFORMED),
    ("unsubscribe-filter-overrun", "server", 4, "a2 05 0001 0005 61", MALFORMED),
    ("unsuback-v4-with-codes", "client", 4, "b0 03 0001 00", MALFORMED),
    ("connack-v4-long", "await-client", 4, "20 03 00 00 00", MALFORMED),
    ("connack-short", "await-client", 4, "20 01 00", MALFORMED),
    ("connack-v5-no-properties", "await-client", 5, "20 02 00 00", MALFORMED),
    ("auth-no-property-length", "server", 5, "f0 01 00", MALFORMED),
    # -- UTF-8 strings [MQTT-1.5.4-1, -2] ---------------------------------------------------
    ("topic-ill-formed", "server", 4, "30 04 0002 c328", MALFORMED),
    ("topic-nul", "server", 4, "30 05 0003 610062", MALFORMED),
    ("topic-surrogate", "server", 5, "30 06 0003 eda080 00", MALFORMED),
    ("topic-overlong", "server", 4, "30 04 0002 c0af", MALFORMED),
    ("client-id-ill-formed", "new-server", 4, "10 0e 0004 4d515454 04 02 003c 0002 c328",
     MALFORMED),
    ("filter-nul", "server", 4, "82 07 0001 0002 6100 00", MALFORMED),
    ("unsubscribe-filter-surrogate", "server", 4, "a2 07 0001 0003 edbfbf", MALFORMED),
    ("content-type-ill-formed", "server", 5, "30 09 0001 61 05 03 0002 c328", MALFORMED),
    ("user-property-nul", "server", 5, "30 0c 0001 61 08 26 0001 6b 0002 7600", MALFORMED),
    # -- PUBLISH --------------------------------------------------------------------------
    ("publish-qos-3", "server", 4, "36 05 0001 61 0001", MALFORMED),
    ("publish-dup-qos-0", "server", 4, "38 03 0001 61", MALFORMED),
    ("publish-dup-qos-0-client", "client", 5, "38 04 0001 61 00", MALFORMED),
    ("publish-plus", "server", 4, "30 05 0003 612b62", TOPIC),
    ("publish-hash", "server", 5, "30 04 0001 23 00", TOPIC),
    ("publish-hash-client", "client", 4, "30 05 0003 612f23", TOPIC),
    ("publish-packet-id-0", "server", 4, "32 05 0001 61 0000", PROTOCOL),
    ("publish-qos2-packet-id-0", "client", 5, "34 06 0001 61 0000 00", PROTOCOL),
    ("publish-v4-empty-topic", "server", 4, "30 02 0000", PROTOCOL),
    ("publish-v5-empty-topic-no-alias", "server", 5, "30 03 0000 00", PROTOCOL),
    ("publish-topic-alias-0", "server", 5, "30 06 0000 03 23 0000", ALIAS),
    ("publish-client-subscription-id", "server", 5, "30 06 0001 61 02 0b 01", PROTOCOL),
    # -- CONNECT -----------------------------------------------------------------------------
    ("connect-reserved-flag", "new-server", 4, "10 0d 0004 4d515454 04 03 003c 0001 63",
     MALFORMED),
    ("connect-will-qos-no-will", "new-server", 4, "10 0d 0004 4d515454 04 0a 003c 0001 63",
     MALFORMED),
    ("connect-will-retain-no-will", "new-server", 5,
     "10 0e 0004 4d515454 05 22 003c 00 0001 63", MALFORMED),
    ("connect-will-qos-3", "new-server", 4,
     "10 12 0004 4d515454 04 1e 003c 0001 63 0001 77 0000", MALFORMED),
    ("connect-v4-password-no-user", "new-server", 4,
     "10 10 0004 4d515454 04 42 003c 0001 63 0001 70", MALFORMED),
    ("connect-will-topic-wildcard", "new-server", 4,
     "10 12 0004 4d515454 04 06 003c 0001 63 0001 23 0000", TOPIC),
    ("connect-will-topic-empty", "new-server", 5,
     "10 12 0004 4d515454 05 06 003c 00 0001 63 00 0000 0000", TOPIC),
    ("connect-mqisdp-3", "new-server", 4, "10 0f 0006 4d5149736470 03 02 003c 0001 63",
     VERSION),
    ("connect-mqtt-level-3", "new-server", 4, "10 0d 0004 4d515454 03 02 003c 0001 63",
     VERSION),
    ("connect-mqtt-level-6", "new-server", 4, "10 0d 0004 4d515454 06 02 003c 0001 63",
     VERSION),
    ("connect-other-name", "new-server", 4, "10 0d 0004 48545450 04 02 003c 0001 63", VERSION),
    ("connect-receive-maximum-0", "new-server", 5,
     "10 11 0004 4d515454 05 02 003c 03 21 0000 0001 63", PROTOCOL),
    ("connect-maximum-packet-size-0", "new-server", 5,
     "10 13 0004 4d515454 05 02 003c 05 27 00000000 0001 63", PROTOCOL),
    ("connect-request-problem-2", "new-server", 5,
     "10 10 0004 4d515454 05 02 003c 02 17 02 0001 63", PROTOCOL),
    ("connect-request-response-2", "new-server", 5,
     "10 10 0004 4d515454 05 02 003c 02 19 02 0001 63", PROTOCOL),
    ("connect-auth-data-no-method", "new-server", 5,
     "10 12 0004 4d515454 05 02 003c 04 16 0001 00 0001 63", PROTOCOL),
    ("connect-will-property-not-allowed", "new-server", 5,
     "10 17 0004 4d515454 05 06 003c 00 0001 63 03 23 0001 0001 77 0000", MALFORMED),
    # -- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------------------------
    ("subscribe-v4-no-filter", "server", 4, "82 02 0001", PROTOCOL),
    ("subscribe-v5-no-filter", "server", 5, "82 03 0001 00", PROTOCOL),
    ("unsubscribe-v4-no-filter", "server", 4, "a2 02 0001", PROTOCOL),
    ("unsubscribe-v5-no-filter", "server", 5, "a2 03 0001 00", PROTOCOL),
    ("subscribe-v5-reserved-option-bits", "server", 5, "82 07 0001 00 0001 61 40", MALFORMED),
    ("subscribe-v5-qos-3", "server", 5, "82 07 0001 00 0001 61 03", MALFORMED),
    ("subscribe-v5-retain-handling-3", "server", 5, "82 07 0001 00 0001 61 30", MALFORMED),
    ("subscribe-v4-upper-bits", "server", 4, "82 06 0001 0001 61 04", MALFORMED),
    ("subscribe-v4-qos-3", "server", 4, "82 06 0001 0001 61 03", MALFORMED),
    ("subscribe-v5-no-local-shared", "server", 5,
     "82 10 0001 00 000a 247368617265 2f672f61 04", PROTOCOL),
    ("subscribe-subscription-id-0", "server", 5, "82 09 0001 02 0b 00 0001 61 00", PROTOCOL),
    ("subscribe-two-subscription-ids", "server", 5, "82 0b 0001 04 0b 01 0b 02 0001 61 00",
     PROTOCOL),
    # -- packet identifier 0 [MQTT-2.2.1-3] -------------------------------------------------------
    ("subscribe-packet-id-0", "server", 4, "82 06 0000 0001 61 00", PROTOCOL),
    ("unsubscribe-packet-id-0", "server", 5, "a2 06 0000 00 0001 61", PROTOCOL),
    ("puback-packet-id-0", "server", 4, "40 02 0000", PROTOCOL),
    ("pubrec-packet-id-0", "client", 5, "50 02 0000", PROTOCOL),
    ("pubrel-packet-id-0", "server", 4, "62 02 0000", PROTOCOL),
    ("pubcomp-packet-id-0", "client", 5, "70 03 0000 00", PROTOCOL),
    ("suback-packet-id-0", "client", 4, "90 03 0000 00", PROTOCOL),
    ("unsuback-packet-id-0", "client", 4, "b0 02 0000", PROTOCOL),
    # -- properties ----------------------------------------------------------------------------
    ("property-unknown-id", "server", 5, "30 06 0001 61 02 05 00", MALFORMED),
    ("property-not-allowed-in-packet", "server", 5, "30 09 0001 61 05 11 00000000", MALFORMED),
    ("property-not-allowed-in-puback", "server", 5, "40 06 0001 00 02 01 00", MALFORMED),
    ("property-twice", "server", 5, "30 0e 0001 61 0a 02 00000001 02 00000002", PROTOCOL),
    ("property-length-overrun", "server", 5, "30 04 0001 61 0a", MALFORMED),
    ("property-value-overrun", "server", 5, "30 06 0001 61 02 02 00", MALFORMED),
    ("property-u16-overrun", "server", 5, "30 06 0001 61 02 23 00", MALFORMED),
    ("property-byte-missing", "server", 5, "30 05 0001 61 01 01", MALFORMED),
    ("property-varint-5-bytes", "server", 5, "30 0a 0001 61 06 0b ff ff ff ff 01", MALFORMED),
    ("payload-format-indicator-2", "server", 5, "30 06 0001 61 02 01 02", PROTOCOL),
    ("response-topic-wildcard", "server", 5, "30 08 0001 61 04 08 0001 23", PROTOCOL),
    ("maximum-qos-2", "await-client", 5, "20 05 00 00 02 24 02", PROTOCOL),
    ("retain-available-2", "await-client", 5, "20 05 00 00 02 25 02", PROTOCOL),
    ("server-disconnect-session-expiry", "client", 5, "e0 07 00 05 11 00000000", PROTOCOL),
    # -- reason codes outside the packet's table ---------------------------------------------------
    ("puback-v5-undefined-code", "server", 5, "40 03 0001 01", PROTOCOL),
    ("pubrel-v5-undefined-code", "server", 5, "62 03 0001 10", PROTOCOL),
    ("connack-v4-code-6", "await-client", 4, "20 02 00 06", PROTOCOL),
    ("connack-refused-session-present", "await-client", 4, "20 02 01 05", PROTOCOL),
    ("connack-reserved-flags", "await-client", 5, "20 03 02 00 00", MALFORMED),
    ("suback-v4-code-3", "client", 4, "90 03 0001 03", PROTOCOL),
    ("suback-empty", "client", 4, "90 02 0001", PROTOCOL),
    ("unsuback-v5-empty", "client", 5, "b0 03 0001 00", PROTOCOL),
    ("disconnect-v5-undefined-code", "server", 5, "e0 01 05", PROTOCOL),
    ("auth-undefined-code", "server", 5, "f0 02 01 00", PROTOCOL),
]  # fmt: skip


def _receiver(kind: str, level: int) -> MQTTConnection:
    if kind == "new-server":
        return MQTTConnection(Role.SERVER)
    if kind == "server":
        return connected_server(level)
    if kind == "client":
        return connected_client(level)
    client = MQTTConnection(Role.CLIENT)
    client.send(Connect("c", protocol_level=level))
    return client


@pytest.mark.parametrize("feeder", sorted(FEEDERS))
@pytest.mark.parametrize(("kind", "level", "wire", "code"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_invalid_input_raises_with_reason_code(
    feeder: str, kind: str, level: int, wire: str, code: int
) -> None:
    data = bytes.fromhex(wire.replace(" ", ""))
    receiver = _receiver(kind, level)
    with pytest.raises(RemoteProtocolError) as info:
        FEEDERS[feeder](receiver, data)
    assert info.value.reason_code == code, info.value
    assert type(info.value.reason_code) is int
    # A remote error is final: every later receive call raises it again.
    with pytest.raises(RemoteProtocolError) as again:
        receiver.receive(b"")
    assert again.value.reason_code == code
    with pytest.raises(RemoteProtocolError):
        receiver.next_event()


def test_case_ids_are_unique() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)


def test_valid_neighbours_of_the_cases_parse() -> None:
    """Guard against cases failing for the wrong reason: the fixed versions parse."""
    server = connected_server(5)
    assert len(server.receive(bytes.fromhex("30060000032300017a"))) == 1  # empty topic + alias
    server = connected_server(5)
    assert len(server.receive(bytes.fromhex("3006000161020101"))) == 1  # format indicator 1
    server = connected_server(4)
    assert len(server.receive(bytes.fromhex("8206000100016102"))) == 1
    new = MQTTConnection(Role.SERVER)
    v5_password_no_user = "10 11 0004 4d515454 05 42 003c 00 0001 63 0001 70"
    assert len(new.receive(bytes.fromhex(v5_password_no_user.replace(" ", "")))) == 1


def _smallest_publish_over(limit: int) -> tuple[bytes, int]:
    """The fixed header of the smallest PUBLISH larger than ``limit``, and its size."""
    body = 0
    while 1 + len(_varint(body)) + body <= limit:
        body += 1
    header = bytes([0x30]) + _varint(body)
    return header, len(header) + body


@pytest.mark.parametrize("limit", [20, 127, 128, 129, 130, 131, 1000, 20000])
def test_packet_too_large_is_refused_on_its_fixed_header(limit: int) -> None:
    for feeder in ("receive-whole", "next_event-whole"):
        server = connected_server(4, max_packet_size=limit)
        header, size = _smallest_publish_over(limit)
        assert size > limit
        with pytest.raises(RemoteProtocolError) as info:
            FEEDERS[feeder](server, header)  # the body has not arrived: refused anyway
        assert info.value.reason_code == 0x95


def test_connect_too_large_for_a_tiny_limit() -> None:
    server = MQTTConnection(Role.SERVER, max_packet_size=2)
    with pytest.raises(RemoteProtocolError) as info:
        server.receive(b"\x10\x0d")
    assert info.value.reason_code == 0x95


@pytest.mark.parametrize("limit", [20, 129, 130, 1000])
def test_packet_at_the_size_limit_is_accepted(limit: int) -> None:
    server = connected_server(4, max_packet_size=limit)
    body = limit - 2
    while 1 + len(_varint(body)) + body > limit:
        body -= 1
    data = bytes([0x30]) + _varint(body) + b"\x00\x01t" + bytes(body - 3)
    assert len(data) in (limit, limit - 1)  # some sizes cannot be hit exactly
    assert len(server.receive(data)) == 1


def test_packet_too_large_via_next_event() -> None:
    server = connected_server(5, max_packet_size=100)
    server.receive_data(b"\x30\xc8\x01")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.reason_code == 0x95


def test_packets_before_an_invalid_one_in_the_same_chunk() -> None:
    """next_event hands out the valid packets before raising on the invalid one."""
    server = connected_server(4)
    server.receive_data(bytes.fromhex("c000 c000 c101"))
    assert server.next_event() is not None
    assert server.next_event() is not None
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
