"""Exact bytes: the examples of docs/protocol.md are what the codec writes and reads.

The hex dumps are parsed out of the document itself, so the specification and the
reference implementation cannot drift apart silently.
"""

from __future__ import annotations

import pathlib
import re

import pytest
from native_support import connected_pair

from warren.codecs.native import (
    Ack,
    Bind,
    Connect,
    Connected,
    Credit,
    Deliver,
    Disconnect,
    Error,
    Event,
    Message,
    Nack,
    NativeConnection,
    Ping,
    Publish,
    Result,
    Role,
    Subscribe,
)

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

REQUEST = Message("svc/time", b"?", correlation_data=b"\x01", response_topic="$inbox/c1/1")
EXAMPLES: list[tuple[str, Event]] = [
    (
        "client",
        Connect(vpn="default", username="u", password="p", client_name="c1", initial_credit=100),
    ),
    ("client", Connect()),
    ("server", Connected("s1", "c1", "$inbox/c1/", 1_048_576, 60)),
    ("client", Publish((Message("a/b", b"hi"),))),
    ("client", Publish((Message("a/b", b"hi"), Message("a/c", qos=1)), first_id=7)),
    ("client", Publish((REQUEST,))),
    ("server", Deliver((1,), (Message("a/b", b"hi"),))),
    ("client", Subscribe(1, 7, "a/>")),
    ("server", Result(1)),
    ("client", Credit(5)),
    ("client", Ack(((1, 3),))),
    ("client", Ping()),
    ("client", Disconnect()),
    ("client", Bind(1, 3, "q", create=True, topics=("a/>",))),
    ("client", Nack(((4, 4),), reject=True)),
    ("server", Error(201, "bad credentials")),
]


def _doc_examples() -> list[bytes]:
    """Every ```hexdump block of the document: the hex before two spaces on each line."""
    blocks = re.findall(r"```hexdump\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    out = []
    for block in blocks:
        hex_part = " ".join(line.split("  ", 1)[0] for line in block.splitlines())
        out.append(bytes.fromhex(hex_part))
    return out


def _encode(sender: str, event: Event) -> bytes:
    if isinstance(event, Connect):
        return NativeConnection(Role.CLIENT).send(event)
    if isinstance(event, Connected):
        server = NativeConnection(Role.SERVER)
        server.receive(NativeConnection(Role.CLIENT).send(Connect()))
        return server.send(event)
    client, server = connected_pair()
    return (client if sender == "client" else server).send(event)


def _decode(sender: str, data: bytes) -> list[Event]:
    if data.startswith(b"WRN"):
        return NativeConnection(Role.SERVER).receive(data)
    if data[0] == 0x02:
        client = NativeConnection(Role.CLIENT)
        client.send(Connect())
        return client.receive(data)
    client, server = connected_pair()
    return (server if sender == "client" else client).receive(data)


def test_document_has_every_example_in_order() -> None:
    assert _doc_examples() == [_encode(sender, event) for sender, event in EXAMPLES]


@pytest.mark.parametrize(("sender", "event"), EXAMPLES, ids=lambda v: getattr(v, "__name__", ""))
def test_document_examples_decode(sender: str, event: Event) -> None:
    data = _encode(sender, event)
    assert _decode(sender, data) == [event]


def test_header_layout() -> None:
    """type, flags, big-endian length: a 300-byte body has length 00 00 01 2c."""
    client, _ = connected_pair()
    data = client.send(Publish((Message("t", bytes(286)),)))  # 14 bytes of map around it
    assert data[:6] == bytes.fromhex("03 00 00 00 01 2c")
    assert len(data) == 6 + 300


def test_every_empty_frame_is_six_bytes() -> None:
    client, server = connected_pair()
    assert client.send(Ping()) == bytes.fromhex("0b0000000000")
    assert server.send(Disconnect()) == bytes.fromhex("0e0000000000")


def test_empty_map_body_is_accepted_like_an_empty_body() -> None:
    _, server = connected_pair()
    assert server.receive(bytes.fromhex("0b000000000180")) == [Ping()]


def test_other_msgpack_encodings_of_the_same_values_are_accepted() -> None:
    """Receivers accept any MessagePack encoding: uint32 5, str8 "n", and key order."""
    _, server = connected_pair()
    body = bytes.fromhex("81d9016ece00000005")  # {"n" (str 8): 5 (uint 32)}
    assert server.receive(bytes.fromhex("0800000000") + bytes([len(body)]) + body) == [Credit(5)]
    # {"p": "hi", "t": "a/b"} inside {"m": [...]}, keys in the other order
    body = bytes.fromhex("81a16d9182a170c4026869a174a3612f62")
    frame = bytes.fromhex("0300000000") + bytes([len(body)]) + body
    assert server.receive(frame) == [Publish((Message("a/b", b"hi"),))]


def test_unknown_keys_are_ignored() -> None:
    """Forward compatibility: a later version's optional key does not break v1."""
    _, server = connected_pair()
    # {"n": 5, "zz": {"a": [1, nil, 2.5]}}
    body = bytes.fromhex("82 a16e 05 a27a7a 81 a161 93 01 c0 cb4004000000000000")
    assert server.receive(bytes.fromhex("0800000000") + bytes([len(body)]) + body) == [Credit(5)]
