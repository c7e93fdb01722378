"""The public surface of warren.codecs.mqtt matches the contract other code uses."""

from __future__ import annotations

import ast
import dataclasses
import pathlib

import pytest

import warren.codecs.mqtt as mqtt
from warren.codecs.mqtt import (
    NO_PROPERTIES,
    Connect,
    MQTTConnection,
    PacketType,
    Properties,
    Publish,
    Role,
)

CONTRACT_NAMES = {
    "Auth", "ConnAck", "Connect", "Disconnect", "MQTTConnection", "NO_PROPERTIES", "Packet",
    "PacketType", "PingReq", "PingResp", "Properties", "PubAck", "PubComp", "PubRec",
    "PubRel", "Publish", "Role", "SubAck", "Subscribe", "SubscriptionRequest", "UnsubAck",
    "Unsubscribe", "Will", "encode_properties", "encode_publish",
}  # fmt: skip

# (class name, [(field, default)]) in contract order; ... = required.
FIELDS = {
    "Will": [("topic", ...), ("payload", ...), ("qos", 0), ("retain", False),
             ("properties", NO_PROPERTIES)],
    "Connect": [("client_id", ...), ("protocol_level", 4), ("clean_start", True),
                ("keep_alive", 60), ("username", None), ("password", None), ("will", None),
                ("properties", NO_PROPERTIES), ("protocol_name", "MQTT")],
    "ConnAck": [("session_present", False), ("reason_code", 0),
                ("properties", NO_PROPERTIES)],
    "Publish": [("topic", ...), ("payload", b""), ("qos", 0), ("retain", False),
                ("dup", False), ("packet_id", None), ("properties", NO_PROPERTIES)],
    "PubAck": [("packet_id", ...), ("reason_code", 0), ("properties", NO_PROPERTIES)],
    "PubRec": [("packet_id", ...), ("reason_code", 0), ("properties", NO_PROPERTIES)],
    "PubRel": [("packet_id", ...), ("reason_code", 0), ("properties", NO_PROPERTIES)],
    "PubComp": [("packet_id", ...), ("reason_code", 0), ("properties", NO_PROPERTIES)],
    "SubscriptionRequest": [("topic_filter", ...), ("qos", 0), ("no_local", False),
                            ("retain_as_published", False), ("retain_handling", 0)],
    "Subscribe": [("packet_id", ...), ("subscriptions", ...),
                  ("properties", NO_PROPERTIES)],
    "SubAck": [("packet_id", ...), ("reason_codes", ...), ("properties", NO_PROPERTIES)],
    "Unsubscribe": [("packet_id", ...), ("topic_filters", ...),
                    ("properties", NO_PROPERTIES)],
    "UnsubAck": [("packet_id", ...), ("reason_codes", ()), ("properties", NO_PROPERTIES)],
    "PingReq": [],
    "PingResp": [],
    "Disconnect": [("reason_code", 0), ("properties", NO_PROPERTIES)],
    "Auth": [("reason_code", 0), ("properties", NO_PROPERTIES)],
}  # fmt: skip

PROPERTY_IDS = [
    ("payload_format_indicator", 0x01), ("message_expiry_interval", 0x02),
    ("content_type", 0x03), ("response_topic", 0x08), ("correlation_data", 0x09),
    ("subscription_identifiers", 0x0B), ("session_expiry_interval", 0x11),
    ("assigned_client_identifier", 0x12), ("server_keep_alive", 0x13),
    ("authentication_method", 0x15), ("authentication_data", 0x16),
    ("request_problem_information", 0x17), ("will_delay_interval", 0x18),
    ("request_response_information", 0x19), ("response_information", 0x1A),
    ("server_reference", 0x1C), ("reason_string", 0x1F), ("receive_maximum", 0x21),
    ("topic_alias_maximum", 0x22), ("topic_alias", 0x23), ("maximum_qos", 0x24),
    ("retain_available", 0x25), ("user_properties", 0x26), ("maximum_packet_size", 0x27),
    ("wildcard_subscription_available", 0x28), ("subscription_identifier_available", 0x29),
    ("shared_subscription_available", 0x2A),
]  # fmt: skip


def test_exports_every_contract_name() -> None:
    assert set(mqtt.__all__) >= CONTRACT_NAMES
    for name in mqtt.__all__:
        assert hasattr(mqtt, name), name
    # Additions beyond the contract are deliberate and few.
    assert set(mqtt.__all__) - CONTRACT_NAMES == {"ReasonCode"}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_packet_fields_order_and_defaults(name: str) -> None:
    cls = getattr(mqtt, name)
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == [f for f, _ in FIELDS[name]]
    for field, (_, default) in zip(fields, FIELDS[name], strict=True):
        if default is ...:
            assert field.default is dataclasses.MISSING
        else:
            assert field.default == default
            assert field.default is default or not isinstance(default, Properties)


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_packets_are_slotted_and_frozen_except_publish(name: str) -> None:
    cls = getattr(mqtt, name)
    assert "__slots__" in cls.__dict__
    params = cls.__dataclass_params__
    assert params.frozen is (name != "Publish")


def test_publish_is_mutable_for_topic_alias_resolution() -> None:
    packet = Publish("", b"x", properties=Properties(topic_alias=3))
    packet.topic = "a/b"
    assert packet.topic == "a/b"


def test_properties_field_order_matches_identifiers() -> None:
    assert [f.name for f in dataclasses.fields(Properties)] == [n for n, _ in PROPERTY_IDS]
    assert all(f.default in (None, ()) for f in dataclasses.fields(Properties)), (
        "every property defaults to absent"
    )
    assert Properties.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert Properties() == NO_PROPERTIES


def test_packet_types() -> None:
    assert [(t.name, t.value) for t in PacketType] == [
        ("CONNECT", 1), ("CONNACK", 2), ("PUBLISH", 3), ("PUBACK", 4), ("PUBREC", 5),
        ("PUBREL", 6), ("PUBCOMP", 7), ("SUBSCRIBE", 8), ("SUBACK", 9),
        ("UNSUBSCRIBE", 10), ("UNSUBACK", 11), ("PINGREQ", 12), ("PINGRESP", 13),
        ("DISCONNECT", 14), ("AUTH", 15),
    ]  # fmt: skip
    assert Connect.packet_type is PacketType.CONNECT


def test_roles_and_connection_surface() -> None:
    assert {r.name for r in Role} == {"CLIENT", "SERVER"}
    conn = MQTTConnection(Role.SERVER, max_packet_size=1024)
    assert conn.protocol_level is None
    assert conn.trailing_data == b""
    assert conn.next_event() is None
    assert conn.receive(b"") == []


def test_max_packet_size_below_two_is_refused() -> None:
    with pytest.raises(ValueError):
        MQTTConnection(Role.SERVER, max_packet_size=1)


def test_codec_imports_no_io_and_no_core() -> None:
    package = pathlib.Path(mqtt.__file__).parent
    forbidden = {"asyncio", "socket", "ssl", "selectors", "warren.core"}
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
                root = ".".join(name.split(".")[:2]) if name.startswith("warren") else name
                assert root.split(".")[0] not in forbidden and root not in forbidden, (
                    f"{path.name} imports {name}"
                )
